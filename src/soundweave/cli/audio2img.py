"""`soundweave train aligner`, `soundweave eval aligner`, `soundweave audio2img`, and the demo step.

    soundweave train aligner corpus/ --out runs/aligner --text-encoder stabilityai/stable-diffusion-2-1-base \\
        --aligner facebook/w2v-bert-2.0
    soundweave audio2img rain.wav --out rain.png --sd stabilityai/stable-diffusion-2-1-base \\
        --aligner runs/aligner/aligner
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import ConfigError
from .common import console, done, print_json
from .groups import app, eval_app, train_app

DEFAULT_SD = "stabilityai/stable-diffusion-2-1-base"
REAL_SD_HOWTO = (
    "Real images need a real Stable Diffusion checkpoint and an aligner trained against ITS text encoder:\n"
    "  soundweave train aligner DATA --out runs/a2i --text-encoder stabilityai/stable-diffusion-2-1-base \\\n"
    "      --aligner facebook/w2v-bert-2.0 --target-len 77\n"
    "  soundweave audio2img clip.wav --out image.png --sd stabilityai/stable-diffusion-2-1-base "
    "--aligner runs/a2i/aligner\n"
    "(on a CPU the defaults are 20 DPM-Solver++ steps, 512x512, and bf16 if the CPU has native bf16 "
    "(AVX512-BF16 / AMX), else fp32; override with --steps/--height/--width/--precision)")


def _hf_options(caption_column: str | None, tag_columns: str) -> dict | None:
    if caption_column is None and not tag_columns:
        return None
    tags = tuple(t.strip() for t in tag_columns.split(",") if t.strip())
    return {"caption_column": caption_column if not tags else None, "tag_columns": tags}


@train_app.command("aligner")
def train_aligner_cmd(
        data: Path = typer.Argument(..., help="Manifest folder (audio + captions.jsonl) or a Hugging Face dataset "
                                              "folder/name (then give --hf-caption-column or --hf-tag-columns)."),
        out: Path = typer.Option(..., "--out", help="Run folder: checkpoints, log.csv, eval.csv, aligner/."),
        text_encoder: str = typer.Option("minilm", help="Target text encoder: a Stable Diffusion id/folder (its "
                                                        "CLIPTextModel), any HF text encoder, or 'minilm' (offline)."),
        aligner: str = typer.Option("small", help="'tiny' | 'small' preset, a Wav2Vec2-BERT id/folder "
                                                  "(e.g. facebook/w2v-bert-2.0) or a saved aligner folder."),
        target_len: int = typer.Option(0, help="Target sequence length (0 = min(77, the encoder's positions))."),
        seconds: float = typer.Option(4.0, help="Training window in seconds (random crop)."),
        max_seconds: float = typer.Option(10.0, help="Longest audio the aligner uses; longer clips are cropped."),
        steps: int = typer.Option(300, help="Optimizer steps."),
        batch_size: int = typer.Option(8, help="Clips per optimizer step (before accumulation)."),
        lr: float = typer.Option(3e-4, help="Peak learning rate (AdamW, warm-up then cosine)."),
        warmup: int = typer.Option(20, help="Warm-up steps."),
        grad_accum: int = typer.Option(1, help="Gradient accumulation micro-batches per step."),
        precision: str = typer.Option("no", help="Mixed precision: 'no' or 'bf16'."),
        ema: float = typer.Option(0.0, help="EMA decay of the published weights (0 = off, e.g. 0.999)."),
        negatives: int = typer.Option(64, help="Extra negative captions per step drawn from the cached targets."),
        temperature: float = typer.Option(0.15, help="Contrastive temperature."),
        symmetric: bool = typer.Option(False, help="Also the text->audio direction of the contrastive loss."),
        regression_weight: float = typer.Option(1.0, help="Weight of the MSE term to the target sequence."),
        eval_every: int = typer.Option(100, help="Evaluate on the valid split every N steps (0 = only at the end)."),
        save_every: int = typer.Option(0, help="Checkpoint every N steps (0 = off)."),
        resume: bool = typer.Option(False, help="Continue from the newest checkpoint in --out."),
        seed: int = typer.Option(0, help="Seed."),
        device: str = typer.Option("", help="Device (default: cuda > mps > cpu)."),
        hf_caption_column: str = typer.Option(None, help="HF dataset: the caption column."),
        hf_tag_columns: str = typer.Option("", help="HF dataset: comma-separated label columns turned into captions."),
) -> None:
    """Train an AudioCLIPAligner so its output sequence stands in for a text encoder's hidden states."""
    from ..training.aligner import AlignerLossConfig, train_aligner

    if precision not in ("no", "bf16"):
        raise ConfigError(f"--precision must be 'no' or 'bf16', got {precision!r}")
    loss = AlignerLossConfig(temperature=temperature, symmetric=symmetric, num_negatives=negatives,
                             regression_weight=regression_weight)
    result = train_aligner(data, out, text_encoder=text_encoder, aligner=aligner, target_len=target_len or None,
                           seconds=seconds, max_seconds=max_seconds, max_steps=steps, batch_size=batch_size, lr=lr,
                           warmup_steps=warmup, grad_accum=grad_accum, mixed_precision=precision,
                           ema_decay=ema or None, eval_every=eval_every or steps, save_every=save_every, loss=loss,
                           seed=seed, resume=resume, hf=_hf_options(hf_caption_column, hf_tag_columns),
                           device=device or None)
    print_json({"steps": result.train.step, "before": result.before, "after": result.after})
    done(f"trained the aligner for {result.train.step} steps", result.aligner_dir, out / "metrics.json")


@eval_app.command("aligner")
def eval_aligner_cmd(
        aligner: Path = typer.Argument(..., help="A saved aligner folder (OUT/aligner of `train aligner`)."),
        data: Path = typer.Argument(..., help="Manifest folder or HF dataset to evaluate on."),
        split: str = typer.Option("valid", help="Split to evaluate."),
        text_encoder: str = typer.Option(None, help="Target text encoder (default: the one the aligner recorded)."),
        seconds: float = typer.Option(0.0, help="Evaluate the first N seconds of each clip (0 = whole clips)."),
        hf_caption_column: str = typer.Option(None, help="HF dataset: the caption column."),
        hf_tag_columns: str = typer.Option("", help="HF dataset: comma-separated label columns turned into captions."),
) -> None:
    """Per-token cosine, MSE, Euclidean distance and audio->caption R@1/R@10; prints JSON."""
    from ..training.aligner import evaluate_aligner_on

    metrics = evaluate_aligner_on(aligner, data, text_encoder=text_encoder, split=split, seconds=seconds or None,
                                  hf=_hf_options(hf_caption_column, hf_tag_columns))
    print_json(metrics)


@app.command("audio2img")
def audio2img_cmd(
        audio: Path = typer.Argument(..., help="Audio file (wav/flac/ogg/mp3, any sample rate)."),
        out: Path = typer.Option(Path("audio2img.png"), "--out", help="Output PNG (several: -1, -2, ... suffixes)."),
        sd: str = typer.Option(DEFAULT_SD, "--sd", help="Stable Diffusion hub id or diffusers folder."),
        aligner: Path = typer.Option(None, "--aligner", help="Trained aligner folder (its target width must equal "
                                                             "the SD UNet's cross-attention width)."),
        prompt: str = typer.Option(None, help="Text prompt to blend with the audio (needs SD's text encoder)."),
        audio_weight: float = typer.Option(1.0, help="Blend: audio_weight * audio + (1 - audio_weight) * prompt."),
        negative_audio: Path = typer.Option(None, help="Audio whose embedding is the negative (default: 4 s of "
                                                       "white noise at amplitude 0.01)."),
        negative_prompt: str = typer.Option(None, help="Use SD's text embedding of this prompt as the negative "
                                                       "instead (\"\" = empty prompt)."),
        steps: int = typer.Option(0, help="Denoising steps (0 = 20 on CPU, 50 on GPU)."),
        guidance: float = typer.Option(7.5, help="Classifier-free guidance scale."),
        height: int = typer.Option(0, help="Image height (0 = min(native, 512) on CPU, native on GPU)."),
        width: int = typer.Option(0, help="Image width (0 = as height)."),
        scheduler: str = typer.Option("", help="'dpm' (DPM-Solver++, CPU default), 'ddim', 'euler' or 'default'."),
        precision: str = typer.Option("", help="'bf16' or 'fp32' (default: bf16 on a CPU with native bf16 - "
                                "AVX512-BF16 / AMX - else fp32; emulated bf16 is many times slower)."),
        num_images: int = typer.Option(1, help="Images to draw."),
        seed: int = typer.Option(0, help="Seed: the same seed gives the same image."),
        device: str = typer.Option("", help="Device (default: cuda > mps > cpu)."),
) -> None:
    """Draw an image from a sound: the aligner's sequence replaces Stable Diffusion's text embeddings."""
    from ..pipelines.audio2img import Audio2ImagePipeline

    if aligner is None:
        raise ConfigError("pass --aligner DIR: an aligner trained for this Stable Diffusion's text encoder "
                          "(train one with `soundweave train aligner DATA --text-encoder SD_ID --aligner "
                          "facebook/w2v-bert-2.0`)")
    pipe = Audio2ImagePipeline.from_pretrained(sd, aligner, device=device or None, precision=precision or None)
    kwargs = dict(negative_prompt=negative_prompt, num_inference_steps=steps or None, guidance_scale=guidance,
                  height=height or None, width=(width or height) or None, scheduler=scheduler or None,
                  precision=precision or None, seed=seed, prompt=prompt,
                  audio_weight=audio_weight if prompt is not None else 1.0, verbose=True,
                  num_images_per_prompt=num_images)
    result = pipe(str(audio), negative_audio=str(negative_audio) if negative_audio else None, **kwargs)
    paths = _save_images(result.images, out)
    print_json(result.settings)
    done(f"{len(paths)} image(s) from {audio.name}", *paths)


def _save_images(images, out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(images) == 1:
        images[0].save(out)
        return [out]
    paths = []
    for i, image in enumerate(images):
        path = out.with_name(f"{out.stem}-{i + 1}{out.suffix or '.png'}")
        image.save(path)
        paths.append(path)
    return paths


# -- demo ------------------------------------------------------------------------------------------------------
def tiny_stable_diffusion(cross_attention_dim: int, sample_size: int = 32, seed: int = 0):
    """A small randomly initialised Stable Diffusion (UNet + VAE + DPM-Solver) built in code, no text parts."""
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=sample_size,
                                in_channels=4, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=cross_attention_dim, norm_num_groups=8, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=8)
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            steps_offset=1)
    sd = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
                                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    sd.set_progress_bar_config(disable=True)
    return sd


def demo(ctx, steps: int = 200, preset: str = "small", target_len: int = 32, seconds: float = 3.0,
         image_steps: int = 10) -> None:
    """Train an aligner briefly on the corpus against MiniLM's hidden states, show audio->caption retrieval
    with it, then draw an image from a clip through a small Stable Diffusion built in code."""
    import torch
    import torch.nn.functional as F

    from ..data import CaptionedAudioDataset
    from ..pipelines.audio2img import Audio2ImagePipeline
    from ..training.aligner import TextTargets, train_aligner

    out = ctx.step_dir("audio2img")
    corpus = ctx.need_corpus()
    minilm = TextTargets("minilm", target_len=target_len)
    result = train_aligner(corpus, out / "run", text_encoder=minilm, aligner=preset, target_len=target_len,
                           seconds=seconds, max_steps=steps, batch_size=8, lr=2e-3, warmup_steps=10,
                           eval_every=steps, seed=ctx.seed, progress=True)
    before, after = result.before, result.after
    console.print(f"aligner vs MiniLM targets on the valid split (retrieval ranks {int(after.get('gallery', 0))} "
                  "captions):")
    for name in ("cosine", "mse", "R_at_1", "R_at_10"):
        if name in after:
            console.print(f"  {name:8s} untrained {before.get(name, float('nan')):.3f} -> trained {after[name]:.3f}")
    ctx.add_output("audio2img", "aligner trained against all-MiniLM-L6-v2 (metrics.json)", result.aligner_dir)
    # retrieval with the trained aligner: the nearest captions of a validation clip
    valid = CaptionedAudioDataset(corpus, split="valid")
    audio, sr = valid.load_clip(0)
    aligner = result.aligner.eval()
    with torch.no_grad():
        seq = aligner.encode(audio, sr)
    captions = sorted(set(valid.captions) | set(CaptionedAudioDataset(corpus, split="train").captions))
    targets = minilm.encode(captions)
    score = (F.normalize(seq[:, 1:], dim=-1) * F.normalize(targets[:, 1:], dim=-1)).sum(-1).mean(-1)
    top = score.topk(3).indices.tolist()
    lines = [f"clip: {valid.records[0].path}", f"its caption: {valid.captions[0]}", "nearest captions:"]
    lines += [f"  {score[i]:.3f}  {captions[i]}" for i in top]
    for line in lines:
        console.print("  " + line)
    # the image: a small SD whose cross-attention width is MiniLM's 384
    sd = tiny_stable_diffusion(cross_attention_dim=aligner.config.target_dim, seed=ctx.seed)
    pipe = Audio2ImagePipeline(sd, aligner)
    image = pipe(audio, sr=sr, seed=ctx.seed, num_inference_steps=image_steps, precision="fp32").images[0]
    image_path = out / "audio2img.png"
    image.save(image_path)
    sd.save_pretrained(out / "stable-diffusion")  # so `soundweave app` finds a Stable Diffusion beside the aligner
    note = ("This image comes from a SMALL, RANDOMLY INITIALISED Stable Diffusion built in code (cross-attention "
            "width 384 = MiniLM's hidden size), so it shows the plumbing (audio -> aligner sequence -> "
            "prompt_embeds -> UNet -> VAE), not a picture.\n" + REAL_SD_HOWTO)
    (out / "README.txt").write_text("\n".join(lines) + "\n\n" + note + "\n")
    (out / "retrieval.json").write_text(json.dumps({"clip": valid.records[0].path, "caption": valid.captions[0],
                                                    "nearest": [[captions[i], float(score[i])] for i in top]},
                                                   indent=2))
    console.print(f"[yellow]note[/yellow]: {note}")
    ctx.add_output("audio2img", "image drawn from a clip by a small random SD (see README.txt)", image_path)
    ctx.add_output("audio2img", "nearest captions of a validation clip", out / "retrieval.json")
    ctx.add_output("audio2img", "the small random Stable Diffusion (for `soundweave app`)", out / "stable-diffusion")


__all__ = ["audio2img_cmd", "demo", "eval_aligner_cmd", "tiny_stable_diffusion", "train_aligner_cmd"]
