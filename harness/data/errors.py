"""The error raised for bad task data: it names the file, line and field, and what to do."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError


class TaskDataError(UserError, ValueError):
    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str = "",
    ) -> None:
        where = ""
        if path is not None:
            where = str(path) + (f":{line}" if line is not None else "")
        parts = [p for p in (where, f"field '{field}'" if field else "") if p]
        prefix = ": ".join(parts)
        msg = f"{prefix}: {problem}" if prefix else problem
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
        self.path, self.line, self.field = path, line, field
