"""`soundweave train mel-diffusion`, `soundweave generate mel` and the demo's "mel-diffusion" step."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ConfigError
from .common import console, done, print_json
from .groups import generate_app, train_app


def _channels(text: str) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--channels must be comma-separated integers like 32,64,64,128, got {text!r}") from exc
    if not values or min(values) < 1:
        raise ConfigError(f"--channels must be positive integers, got {text!r}")
    return values


@train_app.command("mel-diffusion")
def train_mel_diffusion_command(
    data: str = typer.Option(..., "--data", help="A manifest folder (captions.jsonl + audio) or a Hugging Face "
                             "audio dataset (saved folder, audiofolder, or hub name); streamed: WebDataset shards "
                             "(a `soundweave data shard` folder, brace pattern or URLs) or hf://datasets/NAME."),
    out: Path = typer.Option(..., "--out", help="Output folder: checkpoints, samples/, logs and, at the end, the "
                             "pipeline (unet/, scheduler/, mel/)."),
    from_pretrained: str = typer.Option("", "--from", help="Fine-tune this pipeline folder or hub id "
                                        "(e.g. an audio-diffusion checkpoint) instead of training from scratch."),
    filter: str = typer.Option("", "--filter", help="Keep clips whose tags match, e.g. instrument=piano; "
                               "several tags comma-separated, several values with |: instrument=bass|flute."),
    resolution: int = typer.Option(64, help="Image size in pixels (64, 128 or 256; 32 for quick tests). "
                                   "Ignored with --from."),
    hop_length: int = typer.Option(0, help="STFT hop in samples (0 = pick so an image is ~3 s)."),
    channels: str = typer.Option("", help="UNet channels per level, e.g. 32,64,64,128 (default by resolution)."),
    layers_per_block: int = typer.Option(1, help="ResNet layers per UNet level (audio-diffusion's 256 model: 2)."),
    workers: int = typer.Option(0, help="Data loader worker processes (0 = in the training process; 2-8 for "
                                "streamed shards)."),
    prediction: str = typer.Option("v_prediction", help="What a new UNet predicts: 'v_prediction' (MSE on v = "
                                   "noise MSE weighted by 1/alpha_bar; learns far faster on a CPU) or 'epsilon' "
                                   "(plain noise MSE, as audio-diffusion). --from keeps the model's own."),
    steps: int = typer.Option(1000, help="Optimizer steps."),
    batch_size: int = typer.Option(16, help="Images per step."),
    lr: float = typer.Option(5e-4, help="Peak learning rate (AdamW, warm-up then cosine decay)."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 mixed precision."),
    ema: bool = typer.Option(False, "--ema", help="Keep an exponential moving average of the weights and save it."),
    sample_every: int = typer.Option(0, help="Every K steps write sample spectrograms (PNG) and audio (WAV) to "
                                     "OUT/samples/ (0 = never)."),
    sample_steps: int = typer.Option(20, help="DDIM steps for those samples."),
    save_every: int = typer.Option(0, help="Checkpoint every K steps (0 = every min(500, steps) and at the end)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    class_tag: str = typer.Option("", "--class-tag", help="Train class-conditional on this tag "
                                  "(e.g. instrument), with a null class for classifier-free guidance."),
    split: str = typer.Option("train", help="Dataset split to train on."),
    mulan: str = typer.Option("", "--mulan", help="A trained MuLaN folder (or hub id): condition the UNet on "
                              "the MuLaN audio latent of every slice (cross-attention), so `soundweave generate "
                              "mel --text ...` can prompt it with captions."),
    seed: int = typer.Option(0, help="Seed for initialisation, data order and samples."),
) -> None:
    """Train (or fine-tune) a diffusion UNet on mel-spectrogram images of random audio slices."""
    from ..data import parse_filter
    from ..training.mel_diffusion import MelDiffusionTrainConfig, train_mel_diffusion

    config = MelDiffusionTrainConfig(
        data=data, out=str(out), from_pretrained=from_pretrained or None, where=parse_filter(filter), split=split,
        resolution=resolution, hop_length=hop_length or None, channels=_channels(channels),
        layers_per_block=layers_per_block, num_workers=workers,
        prediction_type=prediction, steps=steps,
        batch_size=batch_size, lr=lr, bf16=bf16, ema=ema, sample_every=sample_every, sample_steps=sample_steps,
        save_every=save_every, resume=resume, class_tag=class_tag or None, mulan=mulan or None, seed=seed)
    trained = train_mel_diffusion(config)
    r = trained.result
    print_json({"steps": r.step, "final_loss": r.last_loss, "elapsed_s": round(r.elapsed, 1),
                "evals": r.evals[-1:] if r.evals else [], "classes": trained.pipeline.class_names,
                "pipeline": str(out)})
    paths = [out]
    if sample_every:
        paths.append(out / "samples")
    done(f"trained {r.step} steps; load with MelDiffusionPipeline.from_pretrained({str(out)!r}) or "
         f"`soundweave generate mel --model {out}`", *paths)


def _start_step(start_step: int, steps: int, num_train_timesteps: int) -> int:
    """--start-step below --steps counts sampling steps; larger values are read on the scheduler's training
    scale (e.g. 500 of 1000 = start half-way) and converted."""
    if start_step < steps:
        return start_step
    if start_step >= num_train_timesteps:
        raise ConfigError(f"--start-step {start_step} must be below --steps ({steps}) or below the "
                          f"{num_train_timesteps} training timesteps")
    converted = round(start_step * steps / num_train_timesteps)
    console.print(f"[dim]--start-step {start_step} of {num_train_timesteps} training timesteps = step {converted} "
                  f"of {steps}[/dim]")
    return converted


@generate_app.command("mel")
def generate_mel_command(
    model: str = typer.Option(..., "--model", help="Pipeline folder (from `soundweave train mel-diffusion`, or an "
                              "audio-diffusion checkpoint folder) or hub id."),
    n: int = typer.Option(4, "--n", help="Number of samples."),
    steps: int = typer.Option(50, help="Denoising steps."),
    seconds: float = typer.Option(0.0, help="Length of each sample in seconds (0 = one spectrogram). Longer than "
                                  "one spectrogram: chained continuations, or with --audio a wider spectrogram "
                                  "of its first seconds."),
    out: Path = typer.Option(Path("mel-samples"), "--out", help="Folder for sample-NN.wav and sample-NN.png."),
    class_label: str = typer.Option("", "--class", help="Class name (or id) for a class-conditional model."),
    text: str = typer.Option("", "--text", help="A caption, for models trained with --mulan (embedded by that "
                             "MuLaN's text tower)."),
    mulan: str = typer.Option("", "--mulan", help="MuLaN folder for --text (default: the one the model was "
                              "trained with)."),
    guidance: float = typer.Option(1.0, help="Classifier-free guidance scale (1 = off; try 2-4 with --class or "
                                   "--text)."),
    audio: Path | None = typer.Option(None, "--audio", help="Input audio for variations, in/out-painting or "
                                      "--continue."),
    start_step: int = typer.Option(0, help="With --audio: start denoising from the input noised to this step "
                                   "(a variation; 0 = from pure noise). Values >= --steps are read on the "
                                   "1000-step training scale."),
    slice_index: int = typer.Option(0, "--slice", help="Which spectrogram-length slice of --audio to use."),
    mask_start: float = typer.Option(0.0, help="With --audio: keep the first S seconds (continue from them)."),
    mask_end: float = typer.Option(0.0, help="With --audio: keep the last S seconds."),
    continue_audio: bool = typer.Option(False, "--continue", help="Continue --audio to --seconds by chained "
                                        "out-painting."),
    width_multiplier: int = typer.Option(1, help="Wider noise for a k times longer spectrogram per sample."),
    sampler: str = typer.Option("ddim", help="'ddim' or 'ddpm' (built from the model's scheduler config)."),
    eta: float = typer.Option(0.0, help="DDIM eta (0 = deterministic)."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast."),
    device: str = typer.Option("auto", help="cpu, cuda, mps or auto."),
    seed: int = typer.Option(0, help="Seed: the same seed gives the same samples."),
) -> None:
    """Generate spectrograms and audio with a mel-diffusion pipeline; writes WAV + PNG per sample."""
    from ..audio import save
    from ..pipelines.mel_diffusion import MelDiffusionPipeline

    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    if seconds < 0:
        raise ConfigError(f"--seconds must be >= 0, got {seconds}")
    if sampler not in ("ddim", "ddpm"):
        raise ConfigError(f"--sampler must be 'ddim' or 'ddpm', got {sampler!r}")
    if (start_step or mask_start or mask_end or continue_audio) and audio is None:
        raise ConfigError("--start-step, --mask-start, --mask-end and --continue need --audio")
    pipe = MelDiffusionPipeline.from_pretrained(model, device=None if device == "auto" else device)
    label = None
    if class_label:
        label = int(class_label) if class_label.isdigit() and class_label not in (pipe.class_names or []) \
            else class_label
    precision = "bf16" if bf16 else "fp32"
    encoding = None
    if text:
        path = mulan or pipe.metadata.get("mulan")
        if not pipe.is_cross_attention or not path:
            raise ConfigError("--text needs a model trained with --mulan (a cross-attention UNet) and that MuLaN; "
                              "pass --mulan DIR if the model does not record one")
        from ..training.mel_diffusion import load_mulan_encoder

        encoding = load_mulan_encoder(path, pipe.sample_rate).text([text])
    common = dict(steps=steps, seed=seed, eta=eta, class_labels=label, encoding=encoding, guidance_scale=guidance,
                  scheduler=sampler, precision=precision, progress=True)
    one = pipe.seconds_per_image(width_multiplier)
    if continue_audio or (audio is None and seconds > one):
        if not seconds:
            raise ConfigError("--continue needs --seconds (the total length to reach)")
        result = pipe.continue_audio(audio, seconds, batch_size=n, width_multiplier=width_multiplier, **common)
    else:
        while seconds > pipe.seconds_per_image(width_multiplier):  # a wider slice of --audio, varied as a whole
            width_multiplier += 1
        num_train = pipe.scheduler.config.num_train_timesteps
        result = pipe(batch_size=n, audio=str(audio) if audio is not None else None, slice=slice_index,
                      start_step=_start_step(start_step, steps, num_train), mask_start_secs=mask_start,
                      mask_end_secs=mask_end, width_multiplier=width_multiplier, **common)
        if seconds:
            result.audios = result.audios[:, : int(round(seconds * result.sample_rate))]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (image, wave) in enumerate(zip(result.images, result.audios, strict=True)):
        image.save(out / f"sample-{i:02d}.png")
        save(out / f"sample-{i:02d}.wav", wave, result.sample_rate)
        written += [out / f"sample-{i:02d}.wav", out / f"sample-{i:02d}.png"]
    print_json({"samples": len(result.images), "seconds": round(result.audios.shape[-1] / result.sample_rate, 3),
                "sample_rate": result.sample_rate, "image_size": list(result.arrays.shape[1:]), "out": str(out)})
    done(f"{len(result.images)} spectrogram(s) and audio in {out}", *written)


def demo(ctx, steps: int = 200, resolution: int = 64, instruments: tuple[str, ...] = ("bass", "flute", "rock drums"),
         channels: tuple[int, ...] = (16, 32, 64, 64), batch_size: int = 16, sample_steps: int = 25,
         continue_seconds: float = 8.0) -> None:
    """Train a small class-conditional mel-diffusion UNet on a few instruments of the demo corpus
    (~2 minutes on 2 CPU cores), then sample one spectrogram + audio per instrument, vary a held-out
    clip, and chain continuations into a longer clip."""
    from ..audio import load, save
    from ..data.manifest import read_manifest
    from ..training.mel_diffusion import MelDiffusionTrainConfig, train_mel_diffusion

    corpus = ctx.need_corpus()
    out = ctx.step_dir("mel-diffusion")
    present = {r.tags.get("instrument") for r in read_manifest(corpus, "train")}
    chosen = [i for i in instruments if i in present] or sorted(present)[:2]
    config = MelDiffusionTrainConfig(
        data=str(corpus), out=str(out / "model"), where={"instrument": chosen}, resolution=resolution,
        channels=channels, steps=steps, batch_size=batch_size, lr=2e-3, warmup_steps=20, class_tag="instrument",
        seed=ctx.seed, progress=True)
    trained = train_mel_diffusion(config)
    pipe = trained.pipeline
    ctx.add_output("mel-diffusion", f"class-conditional UNet ({', '.join(chosen)}), {steps} steps, "
                   f"{resolution}x{resolution} spectrograms", out / "model")
    samples = pipe(batch_size=len(chosen), steps=sample_steps, seed=ctx.seed, class_labels=chosen,
                   scheduler="ddim", guidance_scale=2.0)
    for name, image, wave in zip(chosen, samples.images, samples.audios, strict=True):
        stem = "sample-" + name.replace(" ", "_")
        image.save(out / f"{stem}.png")
        save(out / f"{stem}.wav", wave, samples.sample_rate)
        console.print(f"  {stem}: {out / stem}.png / .wav")
    ctx.add_output("mel-diffusion", f"one sampled spectrogram + audio per instrument ({len(chosen)})", out)
    held_out = [r for r in read_manifest(corpus) if r.split != "train" and r.tags.get("instrument") in chosen]
    if held_out:  # a variation of a clip the model never saw: noised half-way, denoised as its instrument
        record = held_out[0]
        name = record.tags["instrument"]
        variation = pipe(audio=str(corpus / record.path), start_step=sample_steps // 2, steps=sample_steps,
                         seed=ctx.seed, class_labels=name, scheduler="ddim")
        pipe.mel.audio_to_image(load(corpus / record.path, sr=pipe.sample_rate)[0][: pipe.mel.slice_size]).save(
            out / "variation-source.png")
        variation.images[0].save(out / "variation.png")
        save(out / "variation.wav", variation.audios[0], variation.sample_rate)
        ctx.add_output("mel-diffusion", f"a variation of held-out {name} clip {record.path}", out / "variation.wav")
    longer = pipe.continue_audio(None, continue_seconds, steps=sample_steps, seed=ctx.seed, class_labels=chosen[0],
                                 scheduler="ddim")
    longer.images[0].save(out / "continued.png")
    save(out / "continued.wav", longer.audios[0], longer.sample_rate)
    ctx.add_output("mel-diffusion", f"{continue_seconds:.0f} s {chosen[0]} by chained continuation",
                   out / "continued.wav")
