"""Stable Diffusion 2.1-sized UNet + VAE on the CPU (random weights, built from a config in code).

Times one guided denoising step (batch 2: conditional + unconditional) and one VAE decode at the CLI's
CPU default size and precision, then projects the time of one image with the CPU defaults of
`soundweave audio2img` (20 DPM-Solver++ steps at 512 x 512; bf16 on a CPU with native bf16, else fp32) plus the
aligner. `--both` also times the other precision in the same run. Also prints what the pipeline's own estimate
(FLOPs x this machine's matmul speed) predicts, to check the printed figure. Goal: under 2 minutes per image.
Prints JSON.

    python benchmarks/sd_cpu.py [--size 512] [--steps 20] [--precision bf16|fp32] [--repeats 2] [--both]
"""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import torch

from soundweave.pipelines.audio2img import prepare_for_cpu
from soundweave.runtime import cpu_bf16_native, default_precision, time_call

SD21_UNET = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                 layers_per_block=2, attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
                 use_linear_projection=True, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD21_VAE = dict(block_out_channels=[128, 256, 512, 512], in_channels=3, out_channels=3, latent_channels=4,
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                layers_per_block=2, sample_size=512)
ALIGNER_SECONDS = 1.5  # the aligner's goal on this CPU (see benchmarks/aligner_latency.py)


def measure(precision: str, size: int, repeats: int) -> dict[str, float]:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD21_UNET).eval().to(dtype)
    vae = AutoencoderKL(**SD21_VAE).eval().to(dtype)
    prepare_for_cpu(SimpleNamespace(unet=unet, vae=vae))  # the VAE channels-last, as the pipeline does on a CPU
    h = size // 8
    latents = torch.randn(2, 4, h, h, dtype=dtype)
    text = torch.randn(2, 77, 1024, dtype=dtype)
    t = torch.tensor([500, 500])
    with torch.inference_mode():
        step = time_call(lambda: unet(latents, t, encoder_hidden_states=text), repeats)
        decode = time_call(lambda: vae.decode(latents[:1] / 0.18215), max(1, repeats - 1))
    return {"unet_params_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 1),
            "seconds_per_guided_step": round(step, 3), "vae_decode_seconds": round(decode, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="image size (the CLI's CPU default is 512)")
    parser.add_argument("--steps", type=int, default=20, help="steps of the CLI's CPU default")
    parser.add_argument("--precision", default=default_precision("cpu"), choices=["bf16", "fp32"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--both", "--fp32-too", dest="both", action="store_true",
                        help="also time the other precision (bf16 or fp32), side by side")
    args = parser.parse_args()
    result = {"benchmark": "sd_cpu", "model": "SD 2.1-sized UNet + VAE, random weights", "size": args.size,
              "threads": torch.get_num_threads(), "steps": args.steps,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_bf16_native": cpu_bf16_native()}
    result[args.precision] = measure(args.precision, args.size, args.repeats)
    if args.both:
        other = "fp32" if args.precision == "bf16" else "bf16"
        result[other] = measure(other, args.size, args.repeats)
    m = result[args.precision]
    projected = args.steps * m["seconds_per_guided_step"] + m["vae_decode_seconds"] + ALIGNER_SECONDS
    result["projected_image_seconds"] = round(projected, 1)
    result["goal_seconds"] = 120
    result["meets_goal"] = projected < 120
    # what the pipeline would print before starting (FLOP count x matmul speed)
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from soundweave.pipelines.audio2img import RunSettings, estimate_seconds

    with torch.device("meta"):
        sd = SimpleNamespace(unet=UNet2DConditionModel(**SD21_UNET), vae=AutoencoderKL(**SD21_VAE), vae_scale_factor=8)
    settings = RunSettings(num_inference_steps=args.steps, height=args.size, width=args.size, scheduler="dpm",
                           precision=args.precision, device="cpu")
    estimate = estimate_seconds(sd, settings)
    result["pipeline_estimate"] = {k: round(v, 2) for k, v in estimate.items()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
