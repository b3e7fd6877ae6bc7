"""MuLaN training throughput (clips/s) in fp32 and bf16 at the README configuration; prints JSON.

README configuration: `soundweave train mulan --text-tower minilm` = size 'small' (AST dim 256, depth 4,
16 kHz log-mel 64 bins, 16x16 patches), frozen all-MiniLM-L6-v2 whose caption features are cached, 4 s
clips, batch 64. One step = forward + backward + AdamW update. The scratch text tower is measured too.

    python benchmarks/mulan_throughput.py --steps 5 --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from soundweave.runtime import autocast
from soundweave.training.mulan import build_mulan


def measure(
    model, precision: str, batch_size: int, steps: int, warmup: int, seconds: float, text_features: bool
) -> dict:
    g = torch.Generator().manual_seed(0)
    wavs = torch.randn(batch_size, int(seconds * model.sample_rate), generator=g) * 0.1
    captions = [f"a {'slow fast'.split()[i % 2]} piano melody number {i}" for i in range(batch_size)]
    feats = None
    if text_features:
        with torch.no_grad():
            feats = model.text.embed_texts(captions).float()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with autocast("cpu", precision):
            loss = model(wavs, raw_texts=None if feats is not None else captions, text_features=feats)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    per_step = sum(times) / len(times)
    return {
        "precision": precision,
        "step_s": round(per_step, 3),
        "clips_per_s": round(batch_size / per_step, 2),
        "loss": round(float(loss), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", default="small")
    parser.add_argument("--towers", default="minilm,scratch")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    for tower in [t.strip() for t in args.towers.split(",") if t.strip()]:
        torch.manual_seed(0)
        captions = ["a slow piano melody in C major", "fast rock drums at 140 bpm"] * 50
        model = build_mulan(tower, args.size, captions=captions if tower == "scratch" else None)
        for precision in ("fp32", "bf16"):
            r = measure(
                model,
                precision,
                args.batch_size,
                args.steps,
                args.warmup,
                args.seconds,
                text_features=tower != "scratch",
            )
            r.update(tower=tower, text_features_cached=tower != "scratch")
            results.append(r)
            print(json.dumps(r), flush=True)
    print(
        json.dumps(
            {
                "benchmark": "mulan_throughput",
                "size": args.size,
                "batch_size": args.batch_size,
                "seconds": args.seconds,
                "threads": torch.get_num_threads(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
