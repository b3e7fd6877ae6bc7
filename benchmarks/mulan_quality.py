"""MuLaN quality vs training time on the synthetic corpus; prints JSON.

Goal (issue 3): train on >= 2000 clips of 4 s, evaluate on 200 held-out clips; within 30 minutes of
training on 2 CPU cores reach zero-shot instrument accuracy >= 80% and text->audio R@10 >= 60%.
Reports, for each text tower (MiniLM frozen, scratch), the curve of both metrics (and the others)
against training time (evaluation time excluded).

    python benchmarks/mulan_quality.py --corpus /tmp/sw_mulan_corpus --minutes 30 --towers minilm,scratch
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from soundweave.data.dataset import CaptionedAudioDataset, collate_audio
from soundweave.data.manifest import read_manifest
from soundweave.runtime import default_precision, seed_everything
from soundweave.training.mulan import (
    ClipCache,
    MuLaNEvaluator,
    TextFeatureCache,
    build_mulan,
    mulan_step_fn,
)
from soundweave.training.trainer import Trainer, TrainerConfig

GOAL_INSTRUMENT, GOAL_R10 = 0.80, 0.60


def ensure_corpus(folder: Path, n: int, sr: int, seed: int) -> Path:
    if not (folder / "captions.jsonl").is_file():
        from soundweave.data.synth import make_corpus

        make_corpus(folder, n=n, seconds=4.0, sr=sr, seed=seed, progress=False)
    return folder


def run_tower(args, tower: str, corpus: Path) -> dict:
    seed_everything(args.seed)
    train_set = CaptionedAudioDataset(
        corpus, split="train", sample_rate=args.sample_rate, seconds=4.0, crop="random"
    )
    model = build_mulan(tower, args.size, args.sample_rate, captions=train_set.captions)
    cache = None
    if tower != "scratch":
        cache = TextFeatureCache(model)
        t0 = time.perf_counter()
        cache.add(train_set.captions)
        cache_time = time.perf_counter() - t0
    else:
        cache_time = 0.0
    evaluator = MuLaNEvaluator(corpus, split="test", sample_rate=args.sample_rate, seconds=4.0, max_clips=200)
    out = Path(args.out) / tower
    cfg = TrainerConfig(
        out_dir=str(out),
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup,
        mixed_precision="bf16" if args.precision == "bf16" else "no",
        log_every=10,
        seed=args.seed,
        progress=False,
        lr_schedule="cosine",
    )
    clips = ClipCache(train_set, min_seconds=args.min_seconds)
    trainer = Trainer(model, clips, mulan_step_fn(cache), cfg, collate_fn=collate_audio)
    curve, spent, budget = [], cache_time, args.minutes * 60.0
    next_eval = args.eval_every_min * 60.0
    losses: list[float] = []
    while trainer.step < args.max_steps and spent < budget:
        part = trainer.fit(stop_at=min(args.max_steps, trainer.step + args.chunk_steps))
        spent += part.elapsed
        losses += part.losses
        if spent >= next_eval or spent >= budget or trainer.step >= args.max_steps:
            next_eval += args.eval_every_min * 60.0
            metrics = evaluator(trainer.eval_model, cache)
            point = {
                "train_time_s": round(spent, 1),
                "step": trainer.step,
                "loss": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4),
                **{k: round(v, 4) for k, v in metrics.items() if not k.endswith("_chance")},
            }
            curve.append(point)
            print(json.dumps({"tower": tower, **point}), flush=True)
    final = curve[-1]
    model_dir = trainer.eval_model.save_pretrained(out / "model")  # for `soundweave eval mulan --model`
    reached = [
        p
        for p in curve
        if p.get("zero_shot_instrument_acc", 0) >= GOAL_INSTRUMENT and p["text_to_audio_R@10"] >= GOAL_R10
    ]
    return {
        "tower": tower,
        "text_frozen": cache is not None,
        "parameters": model.num_parameters(),
        "trainable_parameters": model.num_parameters(trainable_only=True),
        "text_cache_time_s": round(cache_time, 1),
        "final": final,
        "goal_met": bool(reached),
        "time_to_goal_s": reached[0]["train_time_s"] if reached else None,
        "model": str(model_dir),
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", default="/tmp/sw_mulan_corpus", help="corpus folder (rendered if missing)"
    )
    parser.add_argument(
        "--n", type=int, default=2500, help="clips to render if the corpus is missing (80%% train)"
    )
    parser.add_argument("--out", default="/tmp/sw_mulan_quality", help="training runs go here")
    parser.add_argument("--towers", default="minilm,scratch")
    parser.add_argument("--minutes", type=float, default=30.0, help="training-time budget per tower")
    parser.add_argument("--eval-every-min", type=float, default=3.0)
    parser.add_argument("--chunk-steps", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=3000, help="the LR schedule spans this many steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--size", default="small")
    parser.add_argument("--precision", default=default_precision("cpu"), choices=["fp32", "bf16"])
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="train on random-length excerpts of min..4 s (e.g. 1.5, for a MuLaN that scores "
                        "short continuations); default: whole 4 s clips")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    corpus = ensure_corpus(Path(args.corpus), args.n, args.sample_rate, seed=1)
    splits = {s: len(read_manifest(corpus, s)) for s in ("train", "valid", "test")}
    results = [run_tower(args, t.strip(), corpus) for t in args.towers.split(",") if t.strip()]
    print(
        json.dumps(
            {
                "benchmark": "mulan_quality",
                "corpus": str(corpus),
                "splits": splits,
                "threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "config": vars(args),
                "goal": {
                    "zero_shot_instrument_acc": GOAL_INSTRUMENT,
                    "text_to_audio_R@10": GOAL_R10,
                    "minutes": 30,
                },
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
