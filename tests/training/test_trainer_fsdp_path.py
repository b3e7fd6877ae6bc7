"""The Trainer's FSDP checkpoint path (full weights + optimizer state by parameter name, via
torch.distributed.checkpoint's state-dict API), exercised on a plain module in one process: Accelerate runs FSDP
only on GPUs, so the sharding itself is not exercised here; what is tested is that such checkpoints round-trip,
resume to the same losses, load without FSDP, and that `final_model()` carries the trained weights."""

import copy

import pytest
import torch

from soundweave.training.checkpoint import load_state
from tests.training.trainer_script import build


def as_fsdp(trainer):
    trainer.fsdp = True  # take the FSDP branches (a plain module goes through the same state-dict API)
    trainer._template = copy.deepcopy(trainer.unwrapped_model).cpu()
    return trainer


def test_full_state_checkpoints_resume_to_the_same_losses(tmp_path):
    straight = build(tmp_path / "a", 12, ema=None).fit().losses
    first = as_fsdp(build(tmp_path / "b", 12, ema=None)).fit(stop_at=5).losses
    state = load_state(tmp_path / "b" / "checkpoints" / "step-00000005")
    assert state["full_state"] is True and "state" in state["optimizer"]
    assert all(isinstance(k, str) for k in state["optimizer"]["state"])  # by parameter name, not index
    resumed = as_fsdp(build(tmp_path / "b", 12, ema=None))
    rest = resumed.fit(resume=True).losses
    assert first + rest == pytest.approx(straight, abs=1e-6)
    final = resumed.final_model()
    assert final is resumed._template
    for p, q in zip(final.parameters(), resumed.unwrapped_model.parameters(), strict=True):
        torch.testing.assert_close(p, q.detach().cpu())


def test_a_full_state_checkpoint_resumes_without_fsdp(tmp_path):
    straight = build(tmp_path / "a", 10, ema=None).fit().losses
    first = as_fsdp(build(tmp_path / "b", 10, ema=None)).fit(stop_at=5).losses
    rest = build(tmp_path / "b", 10, ema=None).fit(resume=True).losses  # DDP / one process
    assert first + rest == pytest.approx(straight, abs=1e-6)


def test_a_ddp_checkpoint_under_fsdp_is_a_clear_error(tmp_path):
    from soundweave.errors import CheckpointError

    build(tmp_path, 10, ema=None).fit(stop_at=5)
    with pytest.raises(CheckpointError, match="written without FSDP"):
        as_fsdp(build(tmp_path, 10, ema=None)).fit(resume=True)
