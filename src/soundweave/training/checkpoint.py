"""Training checkpoints: weights as safetensors, optimizer/scheduler/step/RNG as a tensors-only torch file.

A checkpoint is a folder `checkpoints/step-00000100/` written under a temporary name and renamed into
place when complete, so a crash never leaves a half checkpoint that resume would pick up. Before the rename
every file is flushed to disk (fsync) and `checkpoint.json` records each file's size; a folder whose files do
not have those sizes (a disk or copy that lost data) is not listed, so resume falls back to the one before.
The state file is read with `torch.load(weights_only=True)`: it holds tensors, numbers, strings, lists and
dicts only.
"""

from __future__ import annotations

import json
import os
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
MANIFEST_NAME = "checkpoint.json"
TMP_PREFIX = ".tmp-step-"


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
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and is_complete(p))


def is_complete(folder: Path) -> bool:
    """The state file is there and, when the folder has a manifest, every file has the size it records."""
    if not (folder / STATE_NAME).is_file():
        return False
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return True  # written before manifests existed
    try:
        files = json.loads(manifest.read_text())["files"]
        return all((folder / name).is_file() and (folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def begin_checkpoint(out_dir: Path, step: int) -> Path:
    """Create and return the temporary folder a checkpoint is written into (removing any a killed run left)."""
    root = Path(out_dir) / "checkpoints"
    discard_partial(out_dir)
    tmp = root / f"{TMP_PREFIX}{step:08d}"
    tmp.mkdir(parents=True)
    return tmp


def discard_partial(out_dir: Path) -> None:
    """Remove the temporary folders of checkpoints that were never completed."""
    root = Path(out_dir) / "checkpoints"
    if root.is_dir():
        for stale in root.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in root.glob(".old-step-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_checkpoint(tmp: Path, out_dir: Path, step: int, keep: int) -> Path:
    """Flush the finished temporary folder, record its files in a manifest, rename it into place and prune
    all but the newest `keep`. The rename is the moment the checkpoint exists: a kill before it leaves only
    the temporary folder (ignored and later removed), a kill after it leaves a complete checkpoint."""
    tmp = Path(tmp)
    files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
    (tmp / MANIFEST_NAME).write_text(json.dumps({"step": step, "files": files}))
    for name in (*files, MANIFEST_NAME):
        _fsync(tmp / name)
    final = checkpoint_dir(out_dir, step)
    old = final.with_name(f".old-{final.name}")
    if final.exists():  # re-saving a step (a resume from an older checkpoint): keep it until the new one is in
        final.rename(old)
    tmp.rename(final)
    _fsync(final.parent)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    if keep > 0:
        for stale in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def load_state(folder: Path) -> dict[str, Any]:
    file = Path(folder) / STATE_NAME
    if not file.is_file():
        raise CheckpointError(f"{str(folder)!r} is not a training checkpoint (no {STATE_NAME})")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"could not read training state {str(file)!r}: {exc}") from exc


# -- validating a checkpoint before any of it is applied ------------------------------------------------------

def _fail(where: Path | str, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {str(where)!r} is damaged or does not match this run: {what}")


def read_weights(file: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors weights file, checked against `model` (names it has, same shapes, finite)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"could not read weights {str(file)!r}: {exc}") from exc
    own = model.state_dict()
    present = {own[name].data_ptr() for name in tensors if name in own}
    missing = [name for name in own if name not in tensors and own[name].data_ptr() not in present]
    if missing:  # (a tensor shared with a stored one is stored once)
        raise _fail(file, f"it lacks {sorted(missing)[:5]}")
    for name, tensor in tensors.items():
        if name not in own:
            raise _fail(file, f"{name} is not a tensor of this model")
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise _fail(file, f"{name} has shape {list(tensor.shape)}, the model's is {list(own[name].shape)}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise _fail(file, f"{name} holds NaN/Inf values")
    return tensors


def check_like(value: Any, reference: Any, where: Path | str, name: str) -> None:
    """`value` has the structure and types of `reference` (same keys, list lengths, element types)."""
    if isinstance(reference, dict):
        if not isinstance(value, dict) or set(value) != set(reference):
            raise _fail(where, f"{name} should have the entries {sorted(map(str, reference))}")
        for key in reference:
            check_like(value[key], reference[key], where, f"{name}[{key!r}]")
    elif isinstance(reference, list | tuple):
        if not isinstance(value, list | tuple) or len(value) != len(reference):
            raise _fail(where, f"{name} should be a list of {len(reference)}")
        for i, (v, r) in enumerate(zip(value, reference, strict=True)):
            check_like(v, r, where, f"{name}[{i}]")
    elif isinstance(reference, bool) or reference is None:
        if type(value) is not type(reference):
            raise _fail(where, f"{name} should be {reference!r}-like, got {value!r}")
    elif isinstance(reference, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise _fail(where, f"{name} should be a finite number, got {value!r}")
    elif isinstance(reference, torch.Tensor):
        if not isinstance(value, torch.Tensor) or value.shape != reference.shape or value.dtype != reference.dtype:
            raise _fail(where, f"{name} should be a {reference.dtype} tensor of shape {list(reference.shape)}")
    elif type(value) is not type(reference):
        raise _fail(where, f"{name} should be a {type(reference).__name__}")


def check_optimizer_state(state: Any, optimizer: torch.optim.Optimizer, where: Path | str) -> None:
    """An optimizer state_dict that fits `optimizer`: the same groups and settings, per-parameter tensors of the
    parameters' shapes, all finite."""
    reference = optimizer.state_dict()
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise _fail(where, "the optimizer state should have 'state' and 'param_groups'")
    check_like(state["param_groups"], reference["param_groups"], where, "optimizer param_groups")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ids = [i for group in state["param_groups"] for i in group["params"]]
    if sorted(ids) != list(range(len(params))) or not isinstance(state["state"], dict):
        raise _fail(where, "the optimizer state does not list this model's parameters")
    shapes = {i: p.shape for i, p in zip(ids, params, strict=True)}
    for index, entry in state["state"].items():
        if index not in shapes or not isinstance(entry, dict):
            raise _fail(where, f"optimizer state for an unknown parameter {index!r}")
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                if value.ndim and value.shape != shapes[index]:
                    raise _fail(where, f"optimizer {key} of parameter {index} has shape {list(value.shape)}, "
                                       f"the parameter's is {list(shapes[index])}")
                if value.is_floating_point() and not torch.isfinite(value).all():
                    raise _fail(where, f"optimizer {key} of parameter {index} holds NaN/Inf values")
            elif not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
                raise _fail(where, f"optimizer {key} of parameter {index} is {value!r}")


def check_counters(state: dict[str, Any], where: Path | str) -> tuple[int, int, int]:
    """step, epoch and batch_in_epoch: whole numbers in range."""
    values = []
    for key in ("step", "epoch", "batch_in_epoch"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise _fail(where, f"{key} should be a whole number >= 0, got {value!r}")
        values.append(value)
    return values[0], values[1], values[2]


def check_rng_state(state: Any, where: Path | str) -> None:
    """What `rng_state()` writes (a CUDA state, from a GPU machine, may be there or not)."""
    reference = rng_state()
    reference.pop("cuda", None)
    if not isinstance(state, dict):
        raise _fail(where, "the RNG state is not a dict")
    state = {k: v for k, v in state.items() if k != "cuda"}
    gauss = state.get("python_gauss")
    if gauss is not None and not (isinstance(gauss, float) and np.isfinite(gauss)):
        raise _fail(where, f"python_gauss is {gauss!r}")
    state["python_gauss"] = reference["python_gauss"]
    check_like(state, reference, where, "RNG state")
