"""Small helpers the command modules share: console output and option parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(stderr=True)


def print_json(data: Any) -> None:
    """JSON results go to stdout (progress and notes go to stderr), so they can be piped."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def done(message: str, *paths: Path | str) -> None:
    console.print(f"[green]done[/green]: {message}")
    for p in paths:
        console.print(f"  {p}")
