"""Faults during training: a full disk while a checkpoint is written, a NaN/Inf loss, a gradient that overflows,
and the logs of a run resumed after it was killed."""

from __future__ import annotations

import csv
import errno
import shutil

import pytest
import torch

import soundweave.training.trainer as trainer_module
from soundweave.errors import CheckpointWriteError, ConfigError, NonFiniteLossError
from soundweave.training import TrainerConfig
from soundweave.training.checkpoint import MANIFEST_NAME, latest_checkpoint, list_checkpoints, load_state
from tests.training.trainer_script import build


@pytest.mark.parametrize("failing", ["weights", "state"])
def test_disk_full_keeps_the_previous_checkpoint_and_names_the_folder(tmp_path, monkeypatch, failing):
    trainer = build(tmp_path, 20)  # a checkpoint every 5 steps
    trainer.fit(stop_at=5)
    good = latest_checkpoint(tmp_path)
    assert good.name == "step-00000005"
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    def full(obj, target, *args, **kwargs):  # half the bytes land, then the disk is full
        with open(target, "wb") as f:
            f.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    if failing == "weights":
        monkeypatch.setattr(trainer_module, "save_model", full)
    else:
        monkeypatch.setattr(trainer_module.torch, "save", full)
    with pytest.raises(CheckpointWriteError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert repr(str(tmp_path / "checkpoints")) in message and "No space left on device" in message
    assert "step-10" in message and repr(str(good)) in message and "intact" in message
    # the previous checkpoint is untouched, nothing half-written is left, and resume picks the good one
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000005"]
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    monkeypatch.undo()
    resumed = build(tmp_path, 20)
    resumed.load_checkpoint(latest_checkpoint(tmp_path))
    assert resumed.step == 5


def test_disk_full_from_the_cli_is_one_error_line(tmp_path, monkeypatch, capsys):
    from soundweave.cli import main
    from soundweave.data.synth import make_corpus

    corpus = tmp_path / "corpus"
    make_corpus(corpus, n=8, seconds=1.0, sr=16000, seed=0, workers=1)

    def full(obj, target, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(trainer_module, "save_model", full)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as code:
        main(["train", "codec", "--data", str(corpus), "--out", str(out), "--kind", "soundstream", "--preset",
              "tiny", "--steps", "2", "--batch-size", "2", "--seconds", "0.2", "--num-quantizers", "2",
              "--codebook-size", "8", "--save-every", "2"])
    assert code.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not write the step-2 checkpoint into")
    assert str(out / "checkpoints") in err and "No space left on device" in err


def _nan_at(call: int, inf: bool = False):
    """A step_fn (the trainer_script's MSE) whose `call`-th micro-batch returns NaN (or +Inf)."""
    calls = {"n": 0}

    def step(model, batch):
        calls["n"] += 1
        xb, yb = batch
        loss = torch.nn.functional.mse_loss(model(xb).squeeze(-1), yb)
        if calls["n"] == call:
            loss = loss * (torch.inf if inf else torch.nan)
        return loss

    return step


@pytest.mark.parametrize("inf", [False, True])
def test_a_nan_or_inf_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, inf):
    trainer = build(tmp_path, 20)
    trainer.step_fn = _nan_at(13, inf)
    with pytest.raises(NonFiniteLossError) as caught:
        trainer.fit()
    message = str(caught.value)
    assert ("loss is inf" if inf else "loss is nan") in message and "at step 13" in message
    assert repr(str(tmp_path / "checkpoints" / "step-00000010")) in message
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000005", "step-00000010"]
    assert trainer.step == 12  # step 13 never happened
    assert all(torch.isfinite(p).all() for p in trainer.unwrapped_model.parameters())  # the bad loss touched nothing
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))


def test_skip_mode_drops_the_bad_step_and_finishes(tmp_path):
    reference = build(tmp_path / "a", 6, ema=None)
    reference.unwrapped_model[1].p = 0.0
    reference.step_fn = _nan_at(0)  # never NaN
    reference.fit(stop_at=3)
    before = [p.detach().clone() for p in reference.unwrapped_model.parameters()]

    trainer = build(tmp_path / "b", 6, ema=None)
    trainer.config.nonfinite = "skip"
    trainer.unwrapped_model[1].p = 0.0
    trainer.step_fn = _nan_at(4)
    trainer.fit(stop_at=3)
    result = trainer.fit(stop_at=4)  # step 4's only micro-batch is NaN: no update
    assert result.skipped == [4] and result.step == 4
    after = [p.detach() for p in trainer.unwrapped_model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    result = trainer.fit()
    assert result.step == 6 and all(torch.isfinite(torch.tensor(result.losses)))


def test_skip_mode_still_stops_when_every_step_is_nan(tmp_path):
    trainer = build(tmp_path, 40, ema=None)
    trainer.config.nonfinite = "skip"
    trainer.config.max_nonfinite_skips = 3

    def always_nan(model, batch):
        return model(batch[0]).sum() * torch.nan

    trainer.step_fn = always_nan
    with pytest.raises(NonFiniteLossError, match="3 non-finite micro-batches in a row up to step 3"):
        trainer.fit()


def test_an_overflowing_gradient_stops_like_a_nan_loss(tmp_path):
    trainer = build(tmp_path, 10, ema=None)
    calls = {"n": 0}

    def step(model, batch):
        calls["n"] += 1
        out = model(batch[0]).squeeze(-1)
        if calls["n"] == 7:  # a finite loss whose gradient is not: d/dx sqrt(x) at 0 is inf
            return torch.sqrt((out * 0.0).clamp(min=0)).sum() + 1.0
        return torch.nn.functional.mse_loss(out, batch[1])

    trainer.step_fn = step
    with pytest.raises(NonFiniteLossError, match="gradient norm is (inf|nan) at step 7"):
        trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.unwrapped_model.parameters())
    assert latest_checkpoint(tmp_path).name == "step-00000005"


def test_bad_nonfinite_setting():
    with pytest.raises(ConfigError, match="nonfinite"):
        TrainerConfig(nonfinite="ignore")
    with pytest.raises(ConfigError, match="max_nonfinite_skips"):
        TrainerConfig(max_nonfinite_skips=0)
    assert TrainerConfig().nonfinite == "stop"  # the default


def test_resume_cuts_the_logs_back_to_the_checkpoint(tmp_path):
    straight = build(tmp_path / "a", 12)
    straight.fit()
    # a run "killed" after step 8 was logged: its last checkpoint is step 5, log.csv and eval.csv go to 8
    killed = build(tmp_path / "b", 12)
    killed.fit(stop_at=8)
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000008")  # fit(stop_at=) saved one; a kill would not
    build(tmp_path / "b", 12).fit(resume=True)

    def rows(folder, name):
        return [{k: v for k, v in r.items() if k not in ("samples_per_s", "elapsed_s")}
                for r in csv.DictReader(open(folder / name))]

    assert rows(tmp_path / "b", "log.csv") == rows(tmp_path / "a", "log.csv")
    assert [r["step"] for r in rows(tmp_path / "b", "eval.csv")] == ["5", "10", "12"]


def test_a_checkpoint_whose_files_lost_bytes_is_not_resumed_from(tmp_path):
    build(tmp_path, 10).fit()
    newest = latest_checkpoint(tmp_path)
    assert newest.name == "step-00000010" and (newest / MANIFEST_NAME).is_file()
    data = (newest / "model.safetensors").read_bytes()
    (newest / "model.safetensors").write_bytes(data[: len(data) // 2])  # a disk or copy that lost the tail
    assert latest_checkpoint(tmp_path).name == "step-00000005"
    trainer = build(tmp_path, 10)
    result = trainer.fit(resume=True)
    assert len(result.losses) == 5  # steps 6-10 again
    redone = latest_checkpoint(tmp_path)
    assert load_state(redone)["step"] == 10
    assert (redone / "model.safetensors").read_bytes() == data  # the same weights as the first time
