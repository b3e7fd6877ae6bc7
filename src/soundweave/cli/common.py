"""Small helpers the command modules share: console output and option parsing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(stderr=True)


def is_main_process() -> bool:
    """False in the non-main processes of `accelerate launch` / torchrun (RANK > 0): they print nothing, so a
    multi-process run reports once."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def print_json(data: Any) -> None:
    """JSON results go to stdout (progress and notes go to stderr), so they can be piped."""
    if is_main_process():
        print(json.dumps(data, indent=2, sort_keys=False, default=str))


def done(message: str, *paths: Path | str) -> None:
    if not is_main_process():
        return
    console.print(f"[green]done[/green]: {message}")
    for p in paths:
        console.print(f"  {p}")
