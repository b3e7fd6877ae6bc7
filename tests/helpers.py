"""Small helpers for tests: `from tests.helpers import tone`."""

from __future__ import annotations

import json

import torch


def tone(freq: float = 440.0, seconds: float = 1.0, sr: int = 16000, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return amp * torch.sin(2 * torch.pi * freq * t)


def invoke_cli(*args):
    """Run `soundweave ARGS...` in-process (typer's CliRunner); arguments may be paths or numbers."""
    from typer.testing import CliRunner

    from soundweave.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def parse_json(text: str):
    """The JSON object printed in `text` (progress and notes around it are ignored)."""
    return json.loads(text[text.index("{"): text.rindex("}") + 1])
