"""Cache entries that are whole or absent: built in a temporary sibling under a file lock,
renamed into place, and checked against a manifest of sizes and SHA-256 sums on every use.

A directory entry's `.complete` file is its manifest. An entry without one (a build that
was killed) or whose files no longer match it (truncated, corrupted, edited) is discarded
with a warning and rebuilt. Two processes asking for one entry at once: the second waits on
the lock and reuses what the first built.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from harness.ranks import is_main, world

log = logging.getLogger(__name__)

MANIFEST = ".complete"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _manifest(root: Path) -> dict[str, dict[str, object]]:
    return {str(p.relative_to(root)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def problem(entry: Path) -> str | None:
    """Why a cache entry cannot be used, or None when it is whole."""
    marker = entry / MANIFEST
    if not marker.is_file():
        return "incomplete cache entry (no manifest: its build was interrupted)"
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable manifest"
    for rel, want in files.items():
        path = entry / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != want["bytes"]:
            return f"{rel} has {path.stat().st_size} bytes, the manifest says {want['bytes']}"
        if sha256_file(path) != want["sha256"]:
            return f"{rel} fails its checksum"
    return None


def is_whole(entry: Path) -> bool:
    """A cache entry that is there and matches its manifest."""
    return entry.is_dir() and problem(entry) is None


def cached_dir(target: Path, build: Callable[[Path], None], what: str = "cache entry",
               rebuild: bool = False) -> Path:
    """`target`, built by `build(tmp_dir)` unless a whole entry is already there (with
    `rebuild`: built and replaced in any case); `what` names the entry in the warning when a
    broken one is discarded. In a process other than rank 0 of a multi-process run
    (harness.ranks) nothing is written: a whole entry is read, anything else is built in a
    private temporary folder, removed when the process exits."""
    if not is_main():
        if not rebuild and is_whole(target):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f"rank{world()[0]}-{target.name}-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        build(tmp)
        return tmp
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if rebuild and target.exists():
            shutil.rmtree(target)
        for stale in target.parent.glob(target.name + ".tmp-*"):  # builds killed midway:
            shutil.rmtree(stale, ignore_errors=True)  # we hold the lock, so none is live
        if target.exists():
            why = problem(target)
            if why is None:
                return target
            log.warning("discarding %s %s (%s); rebuilding it", what, target, why)
            shutil.rmtree(target)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp-"))
        try:
            build(tmp)
            (tmp / MANIFEST).write_text(json.dumps({"files": _manifest(tmp)}, indent=1) + "\n")
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
