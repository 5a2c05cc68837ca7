"""The training log: JSON lines to a file and/or records to a callable."""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


class TrainLog:
    """JSON-lines log to a file and/or a callable taking each record (a dict)."""

    def __init__(self, target: Any, path: Any) -> None:
        self.callback: Callable[[dict], None] | None = target if callable(target) else None
        file_path = target if isinstance(target, (str, os.PathLike)) else path
        self.path = Path(file_path) if file_path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, record: dict) -> None:
        record = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **record}
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, allow_nan=True) + "\n")
        if self.callback is not None:
            self.callback(record)


