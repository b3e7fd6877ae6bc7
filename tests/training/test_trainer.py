import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from soundweave.errors import CheckpointError, ConfigError
from soundweave.training import EMA, TrainerConfig
from soundweave.training.checkpoint import list_checkpoints, load_state
from soundweave.training.schedule import lr_multiplier
from tests.helpers import check_margin
from tests.training.trainer_script import build

SCRIPT = Path(__file__).with_name("trainer_script.py")


def test_loss_falls_and_logs_are_written(tmp_path):
    trainer = build(tmp_path, 40)
    result = trainer.fit()
    assert result.step == 40 and len(result.losses) == 40
    # mean loss over the first epoch (8 batches of 8 = the 64 samples) vs the last one
    check_margin("trainer.loss_falls.last_epoch_vs_0.2_first_epoch", sum(result.losses[-8:]) / 8,
                 0.2 * sum(result.losses[:8]) / 8)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 40 and {"step", "loss", "lr", "samples_per_s", "mean_target"} <= set(rows[0])
    evals = list(csv.DictReader(open(tmp_path / "eval.csv")))
    assert [int(r["step"]) for r in evals] == [5, 10, 15, 20, 25, 30, 35, 40]
    check_margin("trainer.loss_falls.eval_mse_step40_vs_step5", float(evals[-1]["mse"]), float(evals[0]["mse"]))
    assert json.loads((tmp_path / "trainer_config.json").read_text())["max_steps"] == 40


def test_resume_continues_the_same_loss_trajectory(tmp_path):
    straight = build(tmp_path / "a", 20).fit().losses
    first = build(tmp_path / "b", 20).fit(stop_at=10).losses  # "interrupted" at step 10
    rest = build(tmp_path / "b", 20).fit(resume=True).losses
    assert len(first) == 10 and len(rest) == 10
    assert first + rest == pytest.approx(straight, abs=1e-6)


def test_checkpoints_are_complete_and_pruned(tmp_path):
    build(tmp_path, 20).fit()
    found = list_checkpoints(tmp_path)
    assert [p.name for p in found] == ["step-00000015", "step-00000020"]  # keep_checkpoints=2
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))  # written under a temp name, renamed
    state = load_state(found[-1])  # weights_only load: tensors and plain data only
    assert state["step"] == 20 and "optimizer" in state and "scheduler" in state
    assert {p.name for p in found[-1].iterdir()} >= {"model.safetensors", "ema.safetensors", "training_state.pt",
                                                      "rng_0.pt"}


def test_resume_from_a_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        build(tmp_path, 5).fit(resume=tmp_path / "nowhere")


def test_gradient_accumulation_matches_the_big_batch(tmp_path):
    trained = []
    for accum, batch in ((1, 8), (2, 4)):  # one Trainer at a time per process
        trainer = build(tmp_path / f"a{accum}", 6, grad_accum=accum, batch_size=batch, ema=None)
        trainer.unwrapped_model[1].p = 0.0  # without dropout, 2 x 4 accumulated == 1 x 8
        trainer.fit()
        trained.append(trainer)
    big, small = trained
    for p, q in zip(big.unwrapped_model.parameters(), small.unwrapped_model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5)


def test_bf16_autocast_trains_and_does_not_leak_into_the_next_trainer(tmp_path):
    trainer = build(tmp_path / "bf16", 20, precision="bf16", ema=None)
    result = trainer.fit()
    # first epoch (steps 1-8) vs the last complete one (9-16): each sees the 64 samples once
    check_margin("trainer.bf16.second_epoch_loss_vs_first", sum(result.losses[8:16]) / 8, sum(result.losses[:8]) / 8)
    assert trainer.accelerator.mixed_precision == "bf16"
    assert build(tmp_path / "fp32", 2).accelerator.mixed_precision == "no"


def test_bf16_training_on_a_cpu_without_native_bf16_says_it_is_slow(tmp_path, bf16_cpu, caplog):
    bf16_cpu(False)
    with caplog.at_level("WARNING", logger="soundweave.runtime"):
        build(tmp_path / "fp32", 2)
        assert not [r for r in caplog.records if "emulated" in r.getMessage()]
        build(tmp_path / "bf16", 2, precision="bf16", ema=None)
    assert [r for r in caplog.records if "emulated" in r.getMessage()], "bf16 on an AVX2-class CPU must warn"


def test_ema_follows_with_lag(tmp_path):
    # the EMA is the decayed average of the model's weights after each optimizer step (decay
    # min(0.99, (1 + s) / (10 + s)) at step s), so it lags behind them. (Comparing how far each has moved
    # from the start is no test of that: at 10 steps the EMA has moved 2% less than the model, at 30 more.)
    trainer = build(tmp_path, 10, ema=0.99)
    model = trainer.unwrapped_model
    expected = [p.detach().clone() for p in model.parameters()]  # the EMA starts as a copy of the model
    for step in range(1, 11):
        trainer.fit(stop_at=step)
        assert trainer.step == step
        decay = min(0.99, (1 + step) / (10 + step))
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, model.parameters(), strict=True)]
    for ema_p, e in zip(trainer.ema.ema_model.parameters(), expected, strict=True):
        torch.testing.assert_close(ema_p, e, atol=1e-6, rtol=1e-5)
    lag = sum(float((p.detach() - q).abs().sum()) for p, q in zip(model.parameters(), expected, strict=True))
    assert lag > 0  # it has not caught up with the model
    assert trainer.eval_model is trainer.ema.ema_model
    with pytest.raises(ValueError):
        EMA(torch.nn.Linear(2, 2), decay=1.5)


def test_schedule_warmup_then_cosine():
    assert lr_multiplier(0, 10, 100) == pytest.approx(0.1)
    assert lr_multiplier(9, 10, 100) == pytest.approx(1.0)
    assert lr_multiplier(100, 10, 100, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_multiplier(55, 10, 100, "constant") == 1.0


def test_bad_config():
    with pytest.raises(ConfigError):
        TrainerConfig(mixed_precision="fp8")
    with pytest.raises(ConfigError):
        TrainerConfig(max_steps=0)
    with pytest.raises(ConfigError):
        TrainerConfig(lr_schedule="step")


def test_bad_step_fn_output(tmp_path):
    trainer = build(tmp_path, 2)
    trainer.step_fn = lambda m, b: torch.ones(3)
    with pytest.raises(ConfigError, match="scalar"):
        trainer.fit()


def test_runs_unchanged_under_accelerate_launch_with_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    # on a machine without GPUs, `--multi_gpu` makes accelerate start torchrun processes on the CPU (gloo)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", "29517"]
    run = subprocess.run([*launcher, str(SCRIPT), str(tmp_path), "12", "12"], capture_output=True, text=True,
                         env=env, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["processes"] == 2 and out["step"] == 12
    # global batch 8 (4 per process): epoch 1 is steps 1-8, and steps 9-12 are half of epoch 2
    losses = out["losses"]
    check_margin("trainer.accelerate_2proc.last4_loss_vs_first4", sum(losses[-4:]) / 4, sum(losses[:4]) / 4)
    assert (tmp_path / "checkpoints" / "step-00000010").is_dir()
    assert (tmp_path / "checkpoints" / "step-00000010" / "rng_1.pt").is_file()  # one RNG state per process
