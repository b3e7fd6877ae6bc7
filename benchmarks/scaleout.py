"""Scale-out figures on this machine's CPUs; prints JSON.

1. Per trainer: samples/s of the unchanged `soundweave train ...` command launched by `accelerate launch` with 1
   and with 2 CPU processes (gloo, one thread each), and the scaling efficiency sps(2) / (2 x sps(1)). Rates are
   taken from log.csv between the first logged step and the last (start-up, code caching and the first step's
   warm-up are left out). The global batch is the same for both, so 2 processes each compute half of it.
2. Data loading: clips/s of a DataLoader with 2 workers reading (a) WebDataset shards written by
   `soundweave data shard` and (b) the manifest folder (CaptionedAudioDataset), decoding, resampling to 16 kHz and
   cutting 4 s windows, over the same clips.

    python benchmarks/scaleout.py                        # all trainers + the data loader
    python benchmarks/scaleout.py --only mulan,loader --steps 12

Under load from other jobs the figures move a lot: compare the 1- and 2-process runs of one invocation only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SOUNDWEAVE = Path(sys.executable).with_name("soundweave")


def launch(args: list[str], processes: int, port: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes), "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]
    if processes > 1:
        cmd.append("--multi_gpu")  # without GPUs: CPU processes on gloo
    start = time.perf_counter()
    run = subprocess.run([*cmd, str(SOUNDWEAVE), *args], capture_output=True, text=True, env=env)
    if run.returncode:
        raise RuntimeError(f"{' '.join(args[:2])} on {processes} processes failed:\n{run.stderr[-3000:]}")
    return time.perf_counter() - start


def samples_per_second(out: Path, batch: int) -> float:
    rows = list(csv.DictReader(open(out / "log.csv")))
    first, last = rows[0], rows[-1]
    steps = int(last["step"]) - int(first["step"])
    return steps * batch / (float(last["elapsed_s"]) - float(first["elapsed_s"]))


def trainer_commands(corpus: Path, codec: Path, steps: int, batch: int) -> dict[str, list[str]]:
    common = ["--steps", str(steps), "--batch-size", str(batch)]
    logged_every_10 = ["--steps", str(max(20, steps)), "--batch-size", str(batch)]  # these log every 10 steps
    return {
        "mulan": ["train", "mulan", "--data", str(corpus), "--text-tower", "scratch", "--size", "tiny", "--seconds",
                  "4", "--log-every", "1", *common],
        "soundstorm": ["train", "soundstorm", "--data", str(corpus), "--codec", str(codec), "--preset", "tiny",
                       "--seconds", "4", "--log-every", "1", "--save-every", "0", *common],
        "mel_diffusion": ["train", "mel-diffusion", "--data", str(corpus), "--resolution", "64", *common],
        "codec": ["train", "codec", "--data", str(corpus), "--kind", "soundstream", "--preset", "tiny", "--seconds",
                  "0.5", *logged_every_10],
        "aligner": ["train", "aligner", str(corpus), "--aligner", "tiny", "--text-encoder", "minilm", "--target-len",
                    "16", "--seconds", "4", "--eval-every", "0", *logged_every_10],
    }


def bench_trainers(corpus: Path, work: Path, names: list[str], steps: int, batch: int) -> dict:
    from soundweave import SoundStream

    codec = work / "codec"
    torch.manual_seed(0)
    SoundStream(sample_rate=16000, channels=8, channel_mults=(1, 2, 4), strides=(4, 8, 10), codebook_dim=16,
                codebook_size=256, rq_num_quantizers=4, attn_depth=0).save_pretrained(codec)
    results = {}
    for i, (name, args) in enumerate(trainer_commands(corpus, codec, steps, batch).items()):
        if name not in names:
            continue
        row = {"global_batch": batch, "steps": int(args[args.index("--steps") + 1])}
        for processes in (1, 2):
            out = work / f"{name}-{processes}"
            shutil.rmtree(out, ignore_errors=True)
            wall = launch([*args, "--out", str(out)], processes, 29600 + 10 * i + processes)
            row[f"samples_per_s_{processes}proc"] = round(samples_per_second(out, batch), 2)
            row[f"wall_s_{processes}proc"] = round(wall, 1)
        row["scaling_efficiency"] = round(row["samples_per_s_2proc"] / (2 * row["samples_per_s_1proc"]), 3)
        results[name] = row
        print(json.dumps({name: row}), file=sys.stderr, flush=True)
    return results


def loader_rate(dataset, workers: int, batch: int, repeats: int) -> float:
    from torch.utils.data import DataLoader

    from soundweave.data import collate_audio

    best = 0.0
    for r in range(repeats):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(r)
        loader = DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate_audio,
                            shuffle=not hasattr(dataset, "set_epoch"))
        start = time.perf_counter()
        clips = sum(b["audio"].shape[0] for b in loader)
        best = max(best, clips / (time.perf_counter() - start))
    return best


def bench_loader(corpus: Path, work: Path, workers: int, repeats: int) -> dict:
    from soundweave.data import CaptionedAudioDataset, read_manifest
    from soundweave.data.shards import ShardStream, write_shards

    shards = work / "shards"
    write_shards(corpus, shards, shard_size=50)
    n = len(read_manifest(corpus, "train"))
    folder = CaptionedAudioDataset(corpus, "train", sample_rate=16000, seconds=4.0, crop="random")
    stream = ShardStream(shards, "train", sample_rate=16000, seconds=4.0, crop="random")
    return {"clips": n, "workers": workers, "decode": "wav 22050 Hz -> 16 kHz (soxr), 4 s random window",
            "shards_clips_per_s": round(loader_rate(stream, workers, 16, repeats), 1),
            "manifest_folder_clips_per_s": round(loader_rate(folder, workers, 16, repeats), 1),
            "shard_files": len(list(shards.glob("train-*.tar")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="mulan,soundstorm,mel_diffusion,codec,aligner,loader")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    names = args.only.split(",")
    from soundweave.data.synth import make_corpus

    work = Path(tempfile.mkdtemp(prefix="soundweave-scaleout-"))
    try:
        corpus = work / "corpus"
        make_corpus(corpus, n=args.clips, seconds=4.0, sr=22050, seed=0, renderer="additive")
        report = {"cpu_cores": os.cpu_count(), "threads_per_process": 1, "torch": torch.__version__,
                  "trainers": bench_trainers(corpus, work, names, args.steps, args.batch_size)}
        if "loader" in names:
            report["data_loader"] = bench_loader(corpus, work, args.workers, args.repeats)
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
