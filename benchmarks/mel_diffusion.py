"""Sampling speed and peak memory of MelDiffusionPipeline: time per sample, DDIM 50 steps, batch 1.

Resolutions 64x64 and 256x256, fp32 and bf16 autocast, for two UNet sizes (random weights; speed does not
depend on them):
  default          the UNet `soundweave train mel-diffusion` builds for that resolution
                   (64: channels 32,64,64,128; 256: 32,64,128,128,256,256; attention at the coarsest level)
  audio-diffusion  the architecture of teticio/audio-diffusion-256 (channels 128,128,256,256,512,512,
                   2 layers per block, attention at the fifth level) - the size of the published checkpoints
Every case runs in its own process so its peak resident memory (VmHWM) is its own. Reported per case:
denoising seconds per sample (median of --repeats after a warm-up), Griffin-Lim decode seconds, peak RSS
and peak RSS above the process's baseline after building the model. The audio-diffusion-size UNet is timed
over --big-model-steps steps and extrapolated to 50 (marked "extrapolated": true). Prints JSON.

    python benchmarks/mel_diffusion.py [--steps 50] [--repeats 1] [--models default,audio-diffusion]
                                       [--resolutions 64,256] [--precisions fp32,bf16] [--threads 2]
                                       [--big-model-steps 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time

from soundweave.runtime import peak_rss_mib, rss_mib


def _build(model: str, resolution: int):
    from diffusers import DDIMScheduler, UNet2DModel

    from soundweave.pipelines.mel_diffusion import MelDiffusionPipeline
    from soundweave.training.mel_diffusion import default_mel, make_unet

    mel = default_mel(resolution, hop_length=512 if resolution == 256 else None)
    if model == "default":
        unet = make_unet(resolution)
    elif model == "audio-diffusion":
        unet = UNet2DModel(sample_size=resolution, in_channels=1, out_channels=1, layers_per_block=2,
                           block_out_channels=(128, 128, 256, 256, 512, 512),
                           down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4)
    else:
        raise SystemExit(f"unknown model {model!r}")
    return MelDiffusionPipeline(unet.eval(), DDIMScheduler(), mel)


def _case(args: tuple) -> dict:
    model, resolution, precision, steps, repeats, threads, measured_steps = args
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    pipe = _build(model, resolution)
    params = sum(p.numel() for p in pipe.unet.parameters())
    baseline = rss_mib()
    pipe(steps=2, seed=0, precision=precision, decode_audio=False)  # warm-up
    times = []
    run = measured_steps or steps
    for i in range(repeats):
        start = time.perf_counter()
        out = pipe(steps=run, seed=i, precision=precision, decode_audio=False)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    pipe.mel.images_to_audio(out.arrays)
    decode = time.perf_counter() - start
    per_step = statistics.median(times) / run
    return {"model": model, "resolution": resolution, "precision": precision, "parameters_M": round(params / 1e6, 2),
            "steps": steps, "measured_steps": run, "extrapolated": run != steps,
            "seconds_per_sample": round(per_step * steps, 3),
            "seconds_per_step": round(per_step, 4), "griffin_lim_s": round(decode, 3),
            "audio_seconds": round(pipe.seconds_per_image(), 2), "peak_rss_mb": round(peak_rss_mib(), 1),
            "peak_above_baseline_mb": round(peak_rss_mib() - baseline, 1), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--models", default="default,audio-diffusion")
    parser.add_argument("--resolutions", default="64,256")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--big-model-steps", type=int, default=5,
                        help="time the audio-diffusion-size UNet over this many steps and extrapolate to --steps "
                             "(0 = run all --steps; ~25 min at 256x256 fp32 on 2 cores)")
    args = parser.parse_args()
    cases = [(m, int(r), p, args.steps, args.repeats, args.threads,
              args.big_model_steps if m == "audio-diffusion" else 0) for m in args.models.split(",")
             for r in args.resolutions.split(",") for p in args.precisions.split(",")]
    results = []
    ctx = mp.get_context("spawn")
    for case in cases:
        with ctx.Pool(1) as pool:
            results.append(pool.apply(_case, (case,)))
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"benchmark": "mel_diffusion_speed", "scheduler": "DDIM", "batch_size": 1, "cases": results},
                     indent=2))


if __name__ == "__main__":
    main()
