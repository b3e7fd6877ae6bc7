"""Quality of a mel-diffusion model trained from scratch on CPU within a time budget.

1. Render the synthetic corpus (or use --corpus): 4 s clips at 22050 Hz, train/valid/test splits.
2. Train the default unconditional pipeline (`soundweave train mel-diffusion` settings: v-prediction DDPM,
   EMA) on random slices of the train split for --minutes of wall time (the number of steps is set from
   a short speed calibration).
3. Sample --samples spectrograms (DDIM, --sample-steps steps) and compare them with the same number of
   random slices of the held-out clips (valid + test): the Frechet distance between Gaussians fitted to
   log-mel statistics (per image, the mean and standard deviation over time of each mel row; pixels are
   dB). References on the same footing: training-set slices vs held-out slices (the distance real data
   itself has: the floor a perfect model would reach) and samples of the untrained model (the ceiling).
   The mean per-mel-bin profile distance is reported beside it. With --mulan DIR (a trained MuLaN), the
   same Frechet distances are also computed on MuLaN audio embeddings of the audio (generated images and
   real slices alike decoded by Griffin-Lim, so both sides carry the same phase-reconstruction artefacts).

    python benchmarks/mel_diffusion_quality.py --minutes 30              # the full figure
    python benchmarks/mel_diffusion_quality.py --quick                   # ~3 minutes, small everything

Prints JSON (and writes it, with sample PNGs, to --out).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def slices(corpus: Path, mel, splits: tuple[str, ...], n: int, seed: int) -> np.ndarray:
    from torch.utils.data import ConcatDataset

    from soundweave.training.mel_diffusion import MelSliceDataset, open_source

    sources = [open_source(corpus, mel.sample_rate, None, split, None)[0] for split in splits]
    data = MelSliceDataset(ConcatDataset(sources) if len(sources) > 1 else sources[0], mel)
    torch.manual_seed(seed)
    order = torch.randint(0, len(data), (n,)).tolist()
    return torch.stack([data[i]["image"] for i in order]).numpy()


def sample(pipe, n: int, steps: int, precision: str, batch: int = 32) -> np.ndarray:
    out = []
    for start in range(0, n, batch):
        k = min(batch, n - start)
        out.append(pipe(batch_size=k, steps=steps, seed=10_000 + start, scheduler="ddim", precision=precision,
                        decode_audio=False).arrays)
    return np.concatenate(out)


def seconds_per_step(pipe, corpus: Path, batch_size: int, bf16: bool) -> float:
    """Time a few optimizer steps of the training step function on real batches."""
    from soundweave.training.mel_diffusion import MelSliceDataset, collate_images, make_step_fn, open_source

    source, _ = open_source(corpus, pipe.mel.sample_rate, None, "train", None)
    data = MelSliceDataset(source, pipe.mel)
    step_fn = make_step_fn(pipe.scheduler)
    unet = pipe.unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    times = []
    for i in range(4):
        start = time.perf_counter()
        batch = collate_images([data[j] for j in range(i * batch_size, (i + 1) * batch_size)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = step_fn(unet, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget")
    parser.add_argument("--quick", action="store_true", help="2 minutes, 200 clips, 64 samples, 20 DDIM steps")
    parser.add_argument("--corpus", type=Path, default=None, help="an existing manifest folder (else rendered)")
    parser.add_argument("--clips", type=int, default=600, help="clips to render when --corpus is not given")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--samples", type=int, default=256, help="generated and real slices per set")
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision for training and sampling")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-output/mel_diffusion_quality"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mulan", default=None, help="a trained MuLaN folder: also Frechet on its audio embeddings")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.clips, args.samples, args.sample_steps = min(args.minutes, 2.0), 200, 64, 20
    if args.threads:
        torch.set_num_threads(args.threads)
    from soundweave.data.synth import make_corpus
    from soundweave.training.mel_diffusion import (
        MelDiffusionTrainConfig,
        frechet_distance,
        log_mel_features,
        new_pipeline,
        profile_distance,
        train_mel_diffusion,
    )

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus
    if corpus is None:
        corpus = args.out / f"corpus-{args.clips}"
        if not (corpus / "captions.jsonl").is_file():
            make_corpus(corpus, n=args.clips, seconds=4.0, sr=22050, seed=args.seed)
    precision = "bf16" if args.bf16 else "fp32"

    probe = new_pipeline(args.resolution)
    per_step = seconds_per_step(probe, corpus, args.batch_size, args.bf16)
    steps = max(10, int(args.minutes * 60 * 0.9 / per_step))  # the LR schedule; training also stops at --minutes
    untrained = new_pipeline(args.resolution)  # the ceiling: an untrained UNet of the same size

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    trained = train_mel_diffusion(MelDiffusionTrainConfig(
        data=str(corpus), out=str(args.out / "model"), resolution=args.resolution, steps=steps,
        batch_size=args.batch_size, lr=args.lr, warmup_steps=min(100, steps // 10), ema=True, bf16=args.bf16,
        save_every=steps, seed=args.seed, progress=False, max_minutes=args.minutes))
    train_seconds = time.perf_counter() - start
    pipe = trained.pipeline

    start = time.perf_counter()
    generated = sample(pipe, args.samples, args.sample_steps, precision)
    sample_seconds = time.perf_counter() - start
    baseline = sample(untrained, args.samples, args.sample_steps, precision)
    heldout = slices(corpus, pipe.mel, ("valid", "test"), args.samples, seed=1)
    train_real = slices(corpus, pipe.mel, ("train",), args.samples, seed=2)
    feats = {name: log_mel_features(x) for name, x in
             (("generated", generated), ("untrained", baseline), ("heldout", heldout), ("train", train_real))}
    fd = {name: round(frechet_distance(feats[name], feats["heldout"]), 4)
          for name in ("generated", "train", "untrained")}
    mulan_fd = None
    if args.mulan:
        from soundweave.training.mel_diffusion import load_mulan_encoder

        encoder = load_mulan_encoder(args.mulan, pipe.sample_rate)

        def embed(images: np.ndarray) -> np.ndarray:
            rows = []
            for start in range(0, len(images), 32):
                audio = pipe.mel.images_to_audio(torch.from_numpy(images[start : start + 32]),
                                                 generator=torch.Generator().manual_seed(start))
                rows.append(encoder(audio)[:, 0].numpy())
            return np.concatenate(rows)

        emb = {name: embed(x) for name, x in
               (("generated", generated), ("untrained", baseline), ("heldout", heldout), ("train", train_real))}
        mulan_fd = {f"{name}_vs_heldout": round(frechet_distance(emb[name], emb["heldout"]), 4)
                    for name in ("generated", "train", "untrained")}
    for i, image in enumerate(generated[:8]):
        from PIL import Image

        Image.fromarray(image).save(args.out / f"sample-{i:02d}.png")
    losses = trained.result.losses
    result = {
        "benchmark": "mel_diffusion_quality", "corpus": str(corpus), "resolution": args.resolution,
        "hop_length": pipe.mel.hop_length, "seconds_per_image": round(pipe.seconds_per_image(), 2),
        "unet_parameters_M": round(sum(p.numel() for p in pipe.unet.parameters()) / 1e6, 2),
        "budget_minutes": args.minutes, "train_minutes": round(train_seconds / 60, 2), "steps": trained.result.step,
        "scheduled_steps": steps,
        "batch_size": args.batch_size, "precision": precision, "threads": torch.get_num_threads(),
        "loss_first_50": round(float(np.mean(losses[:50])), 4), "loss_last_50": round(float(np.mean(losses[-50:])), 4),
        "samples": args.samples, "sample_steps": args.sample_steps,
        "sampling_seconds_per_sample": round(sample_seconds / args.samples, 3),
        "frechet_logmel": {"generated_vs_heldout": fd["generated"], "train_vs_heldout": fd["train"],
                           "untrained_vs_heldout": fd["untrained"]},
        "profile_distance": {"generated_vs_heldout": round(profile_distance(generated, heldout), 4),
                             "train_vs_heldout": round(profile_distance(train_real, heldout), 4),
                             "untrained_vs_heldout": round(profile_distance(baseline, heldout), 4)},
        "frechet_mulan": mulan_fd,
        "samples_dir": str(args.out),
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
