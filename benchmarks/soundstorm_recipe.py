"""Which SoundStorm training recipe learns level 0 on a CPU budget? Prints JSON.

    python benchmarks/soundstorm_recipe.py --codec DIR --corpus DIR [--steps 1200] [--recipes paper,half,default]

Each recipe trains the same ConformerWrapper (same seed, same initial weights, same batches and crops) for
`--steps` steps and is measured every `--every` steps on the same held-out crops: level-0 accuracy where half the
frames after a random prompt point are masked and every finer level after it is masked - what SoundStorm faces
when it continues a prompt. References on the same frames: always guessing the most frequent level-0 code of the
training codes, and copying the previous frame's level-0 code.

Recipes: "paper" (all levels uniformly, a learned mask embedding, separate output heads), "half" (half the items
on level 0, zero mask), "untied" (LEVEL0_SHARE of the items on level 0, zero mask, separate heads), "default" (the
training recipe of `soundweave.training.soundstorm`: as "untied" with each level's output head tied to its code
embeddings); or "share:MASK[:tied]" such as "0.9:zero" or "0.5:zero:tied".
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from soundweave.models.codecs import load_codec
from soundweave.models.soundstorm import ConformerWrapper, SoundStorm
from soundweave.training.soundstorm import (
    LEVEL0_SHARE,
    MASK_EMBEDDING,
    TIE_EMBEDDINGS,
    level_probs_for,
    precompute_codes,
)

NAMED = {"paper": (None, "learned", False), "half": (0.5, "zero", False),
         "untied": (LEVEL0_SHARE, MASK_EMBEDDING, False), "default": (LEVEL0_SHARE, MASK_EMBEDDING, TIE_EMBEDDINGS)}


def parse_recipe(text: str) -> tuple[float | None, str, bool]:
    if text in NAMED:
        return NAMED[text]
    share, _, rest = text.partition(":")
    mask, _, tied = rest.partition(":")
    return (float(share) or None), (mask or "zero"), tied == "tied"


def crops(codes: list[torch.Tensor], frames: int, count: int, generator: torch.Generator) -> torch.Tensor:
    long_enough = [c for c in codes if c.shape[0] >= frames]
    picked = []
    for _ in range(count):
        c = long_enough[int(torch.randint(len(long_enough), (1,), generator=generator))]
        start = int(torch.randint(c.shape[0] - frames + 1, (1,), generator=generator))
        picked.append(c[start:start + frames])
    return torch.stack(picked)


def probe_masks(batch: int, frames: int, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe's masks `(B, N)` bool: `after` = the frames after a random prompt point (every finer level masked
    there), `target` = half of those, whose level-0 codes are masked and predicted. The same every call."""
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(batch, generator=g) * (frames * 0.9)).long()
    after = torch.arange(frames)[None] >= t[:, None]
    return after, after & (torch.rand(batch, frames, generator=g) < 0.5)


@torch.no_grad()
def level0_probe(net: ConformerWrapper, batch: torch.Tensor) -> float:
    """Level-0 accuracy on `batch` at the probe's target frames."""
    after, target = probe_masks(batch.shape[0], batch.shape[1])
    x = batch.clone()
    x[..., 0][target] = net.mask_id
    x[..., 1:][after] = net.mask_id
    logits = net(x, level=0, check=False)
    return float((logits.argmax(-1)[target] == batch[..., 0][target]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True, help="codec folder (e.g. a SpectralCodec)")
    parser.add_argument("--corpus", type=Path, required=True, help="manifest folder with train/valid splits")
    parser.add_argument("--cache", type=Path, default=Path("benchmarks/results/soundstorm-recipe-codes"))
    parser.add_argument("--recipes", default="paper,half,untied,default")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec(args.codec)
    train = precompute_codes(codec, args.corpus, "train", args.cache)
    valid = precompute_codes(codec, args.corpus, "valid", args.cache)
    probe = crops(valid, args.frames, 128, torch.Generator().manual_seed(1))
    Q, C = codec.num_quantizers, codec.codebook_size

    # references on the probe's target frames
    _, target = probe_masks(probe.shape[0], probe.shape[1])
    counts = torch.bincount(torch.cat([c[:, 0] for c in train]), minlength=C)
    truth = probe[..., 0]
    previous = torch.cat([truth[:, :1], truth[:, :-1]], dim=1)
    references = {"most_frequent_code": float((truth[target] == counts.argmax()).float().mean()),
                  "copy_previous_frame": float((previous[target] == truth[target]).float().mean())}

    results = {}
    for name in args.recipes.split(","):
        share, mask, tied = parse_recipe(name)
        torch.manual_seed(args.seed)
        net = ConformerWrapper(C, Q, dict(dim=args.dim, depth=args.depth, heads=4, dim_head=args.dim // 4),
                               mask_embedding=mask, tie_embeddings=tied)
        model = SoundStorm(net, level_probs=level_probs_for(share, Q))
        optimizer = torch.optim.AdamW(model.parameters(), args.lr, betas=(0.9, 0.99), weight_decay=0.01)
        g = torch.Generator().manual_seed(args.seed)
        curve, start = {}, time.perf_counter()
        for step in range(args.steps + 1):
            if step % args.every == 0:
                model.eval()
                curve[step] = round(level0_probe(net, probe), 4)
                model.train()
            if step == args.steps:
                break
            batch = crops(train, args.frames, args.batch_size, g)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * min(1.0, (step + 1) / 50)
            loss, _ = model(batch, generator=g)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        results[name] = {"level0_share": share, "mask_embedding": mask, "tie_embeddings": tied,
                         "level0_accuracy_by_step": curve,
                         "final_level0_accuracy": curve[args.steps], "train_s": round(time.perf_counter() - start, 1)}
        print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps({"benchmark": "soundstorm_recipe", "codec": codec.describe(), "levels": Q, "codebook_size": C,
                      "model": {"dim": args.dim, "depth": args.depth, "lr": args.lr, "batch_size": args.batch_size,
                                "frames": args.frames, "steps": args.steps},
                      "references_on_probe_frames": {k: round(v, 4) for k, v in references.items()},
                      "recipes": results, "threads": torch.get_num_threads(), "machine": platform.machine(),
                      "torch": torch.__version__}, indent=2))


if __name__ == "__main__":
    main()
