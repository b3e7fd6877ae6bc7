"""The `soundweave` command line: thin over the public API.

Errors that soundweave raises on purpose print one line (`error: ...`) and exit with status 1.
"""

from __future__ import annotations

import importlib
import sys

from ..errors import SoundweaveError
from .groups import app

# foundation commands first, then one module per capability
COMMAND_MODULES = [
    "soundweave.cli.data",
    "soundweave.cli.audio",
    "soundweave.cli.demo",
    "soundweave.cli.mulan",
    "soundweave.cli.codec",
    "soundweave.cli.soundstorm",
    "soundweave.cli.musiclm",
    "soundweave.cli.speech",
    "soundweave.cli.mel_diffusion",
    "soundweave.cli.audio2img",
    "soundweave.cli.webapp",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="soundweave", standalone_mode=True)
    except SoundweaveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


__all__ = ["app", "main"]
