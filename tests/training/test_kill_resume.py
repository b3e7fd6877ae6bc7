"""kill -9 at any moment, then `--resume`: the run ends with exactly the losses and weights of an uninterrupted
one, and a checkpoint that was being written when the process died is never the one loaded.

Each trainer runs a tiny `soundweave train ...` in a subprocess (16 steps, a checkpoint every 4) and is killed
three times: between checkpoints (after step 5 is logged), in the middle of writing a checkpoint (its weights
file half written: tests/training/stalled_checkpoint.py stalls the write there), and the instant a checkpoint
folder appears. Two trainers: mel-diffusion (a diffusers UNet) and the SoundStream codec (GAN-free recon
losses, RVQ with k-means init).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).parents[2]
SOUNDWEAVE = Path(sys.executable).with_name("soundweave")
STEPS, SAVE_EVERY = 16, 4  # 16 steps: a kill that lands a checkpoint late still leaves steps to run
TIMING_COLUMNS = {"samples_per_s", "elapsed_s"}  # wall-clock figures; every other column must match exactly


def command(trainer: str, corpus: Path, out: Path) -> list[str]:
    common = ["--data", str(corpus), "--out", str(out), "--steps", str(STEPS), "--save-every", str(SAVE_EVERY)]
    if trainer == "mel-diffusion":  # under 40 steps it logs every step
        return ["train", "mel-diffusion", *common, "--resolution", "32", "--hop-length", "512", "--channels", "8,16",
                "--batch-size", "4", "--ema"]
    return ["train", "codec", *common, "--kind", "soundstream", "--preset", "tiny", "--batch-size", "2",
            "--seconds", "0.2", "--num-quantizers", "3", "--codebook-size", "16", "--log-every", "1"]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def run(argv: list[str], timeout: float = 180) -> str:
    done = subprocess.run([str(SOUNDWEAVE), *argv], capture_output=True, text=True, env=env(), timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def run_and_kill(argv: list[str], when, log: Path, *, stalled: bool = False, timeout: float = 180) -> str:
    """Start `soundweave ARGV` and SIGKILL it the moment `when()` is true; fail if it ends first.
    Returns what it printed."""
    cmd = [sys.executable, "-m", "tests.training.stalled_checkpoint", *argv] if stalled else [str(SOUNDWEAVE), *argv]
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env(), cwd=ROOT)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if when():
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    assert proc.returncode == -signal.SIGKILL
                    return log.read_text()
                time.sleep(0.002)
            pytest.fail(f"the run ended (code {proc.returncode}) before the kill point: {log.read_text()[-2000:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def logged_steps(out: Path) -> list[dict[str, str]]:
    try:
        with (out / "log.csv").open(newline="") as f:
            return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]
    except (OSError, csv.Error):
        return []


def last_logged(out: Path) -> int:
    rows = logged_steps(out)
    try:
        return int(rows[-1]["step"]) if rows else 0
    except (ValueError, KeyError, TypeError):  # a row being written
        return 0


def checkpoints(out: Path) -> list[str]:
    root = out / "checkpoints"
    return sorted(p.name for p in root.iterdir() if p.name.startswith("step-")) if root.is_dir() else []


def final_weights(out: Path) -> dict:
    return load_file(str(out / "checkpoints" / f"step-{STEPS:08d}" / "model.safetensors"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from soundweave.data.synth import make_corpus

    folder = tmp_path_factory.mktemp("kill-corpus")
    make_corpus(folder, n=16, seconds=1.0, sr=16000, seed=0, workers=1)
    return folder


@pytest.mark.parametrize("trainer", ["mel-diffusion", "codec"])
def test_kill_9_anywhere_then_resume_matches_the_uninterrupted_run(trainer, corpus, tmp_path):
    straight = tmp_path / "straight"
    run(command(trainer, corpus, straight))
    reference = logged_steps(straight)
    assert [int(r["step"]) for r in reference] == list(range(1, STEPS + 1))

    out = tmp_path / "killed"
    argv = command(trainer, corpus, out)
    # 1. between checkpoints: killed once step 5 is logged (checkpoint 4 exists; step 5 is lost work)
    run_and_kill(argv, lambda: last_logged(out) >= 5, tmp_path / "run1.txt")
    kept = checkpoints(out)
    assert kept and kept[-1] >= "step-00000004", kept

    # 2. in the middle of a checkpoint write: the weights file of the next checkpoint is half on disk
    mark = tmp_path / "stalled-at"
    os.environ["SOUNDWEAVE_STALL_MARK"] = str(mark)
    try:
        run_and_kill([*argv, "--resume"], mark.is_file, tmp_path / "run2.txt", stalled=True)
    finally:
        del os.environ["SOUNDWEAVE_STALL_MARK"]
    partial = Path(mark.read_text())
    assert partial.parent.name.startswith(".tmp-step-") and partial.parent.is_dir()
    assert not (partial.parent / "training_state.pt").exists()
    half_step = partial.parent.name.removeprefix(".tmp-step-")
    assert f"step-{half_step}" not in checkpoints(out)  # never renamed into place
    before_resume = checkpoints(out)[-1]

    # 3. the resume picks the newest complete checkpoint, not the half-written one; killed the instant the
    # next checkpoint folder is renamed into place
    target = f"step-{int(half_step):08d}"
    text = run_and_kill([*argv, "--resume"], lambda: target in checkpoints(out), tmp_path / "run3.txt")
    assert f"resumed from {out / 'checkpoints' / before_resume}" in text
    assert not partial.parent.exists()  # the dead write's leftovers were cleared

    # 4. resume to the end
    text = run([*argv, "--resume"])
    assert f"resumed from {out / 'checkpoints' / target}" in text
    assert before_resume < target
    assert logged_steps(out) == reference  # every step once, the same loss (and per-term losses) as straight
    a, b = final_weights(straight), final_weights(out)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit for bit
