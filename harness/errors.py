"""Errors that are the user's to fix, not bugs: a bad data file or a bad config value.

`harness-run` prints them as one line (file:line:field or the config key, and what to do)
and exits non-zero, without a traceback; HYDRA_FULL_ERROR=1 shows the traceback. Any
other exception is a bug and keeps its traceback."""

from __future__ import annotations

import os


class UserError(Exception):
    """Bad input the user can fix; the message says where and what to do."""


class ConfigError(UserError, ValueError):
    """A config value that is out of range, unknown or inconsistent."""


def full_errors() -> bool:
    """HYDRA_FULL_ERROR=1: show the traceback of user errors too."""
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")
