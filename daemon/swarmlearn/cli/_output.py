"""Where commands write: rich consoles for people, one JSON document on stdout for scripts."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

err = Console(stderr=True)
out = Console()


def _jsonable(value: Any) -> Any:
    """``value`` as JSON types; non-finite floats (a job without a best objective is NaN on the
    wire) become None, since strict JSON parsers refuse NaN and Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(value), indent=2, allow_nan=False) + "\n")
