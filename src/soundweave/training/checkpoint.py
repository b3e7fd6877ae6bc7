"""Training checkpoints: weights as safetensors, optimizer/scheduler/step/RNG as a tensors-only torch file.

A checkpoint is a folder `checkpoints/step-00000100/` written under a temporary name and renamed into
place when complete, so a crash never leaves a half checkpoint that resume would pick up. The state file
is read with `torch.load(weights_only=True)`: it holds tensors, numbers, strings, lists and dicts only.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

STATE_NAME = "training_state.pt"
MODEL_NAME = "model.safetensors"
EMA_NAME = "ema.safetensors"


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step-{step:08d}"


def list_checkpoints(out_dir: Path) -> list[Path]:
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / STATE_NAME).is_file())


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def begin_checkpoint(out_dir: Path, step: int) -> Path:
    """Create and return the temporary folder a checkpoint is written into."""
    tmp = Path(out_dir) / "checkpoints" / f".tmp-step-{step:08d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit_checkpoint(tmp: Path, out_dir: Path, step: int, keep: int) -> Path:
    """Rename the finished temporary folder into place and prune all but the newest `keep`."""
    final = checkpoint_dir(out_dir, step)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    if keep > 0:
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(folder: Path) -> dict[str, Any]:
    file = Path(folder) / STATE_NAME
    if not file.is_file():
        raise CheckpointError(f"{str(folder)!r} is not a training checkpoint (no {STATE_NAME})")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"could not read training state {str(file)!r}: {exc}") from exc
