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


def check_margin(name: str, measured: float, threshold: float, *, above: bool = False) -> None:
    """Assert `measured < threshold` (or `> threshold` with above=True) with both figures in the message.

    With SOUNDWEAVE_MARGINS=path set, every check is also appended to that file as a JSON line (name, measured,
    threshold, passed, threads, ATEN_CPU_CAPABILITY), so margins can be compared across CPUs and thread counts.
    """
    import os

    measured, threshold = float(measured), float(threshold)
    passed = measured > threshold if above else measured < threshold
    record = os.environ.get("SOUNDWEAVE_MARGINS")
    if record:
        row = {"name": name, "measured": measured, "threshold": threshold, "above": above, "passed": passed,
               "threads": torch.get_num_threads(), "cpu": os.environ.get("ATEN_CPU_CAPABILITY", "default")}
        with open(record, "a") as f:
            f.write(json.dumps(row) + "\n")
    relation = ">" if above else "<"
    assert passed, f"{name}: measured {measured:.6g}, needs {relation} {threshold:.6g}"
