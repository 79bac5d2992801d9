"""The run log (``--log-file``): stage timings, counts, rule ids, record ids — never values."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any


class RunLog:
    def __init__(self, path: str | None, fmt: str = "text") -> None:
        self.path = Path(path) if path else None
        self.fmt = fmt
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.close(fd)

    def event(self, event: str, level: str = "INFO", **fields: Any) -> None:
        if not self.path:
            return
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if self.fmt == "json":
            line = json.dumps({"ts": stamp, "level": level, "event": event, **fields}, sort_keys=True, default=str)
        else:
            rest = " ".join(f"{k}={json.dumps(v, default=str) if not isinstance(v, str | int | float) else v}" for k, v in fields.items())
            line = f"{stamp} {level} crmclean {event} {rest}".rstrip()
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
