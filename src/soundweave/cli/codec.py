"""Codec commands: `soundweave train codec`, `soundweave codec encode|decode`, `soundweave eval codec`.

Codes files are `.npy` int64 arrays `(B, N, Q)` (B = 1 for one input file).
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import CheckpointError, ConfigError, ShapeError
from .common import console, done, print_json
from .groups import codec_app, eval_app, train_app


def _load_codec(model: Path, device: str | None = None):
    from ..models.base import load_pretrained
    from ..models.codecs import SoundStream

    codec = load_pretrained(model, device=device)
    if not isinstance(codec, SoundStream):
        raise CheckpointError(f"{str(model)!r} holds a {type(codec).__name__}, not a SoundStream codec")
    return codec


@train_app.command("codec")
def train_codec_command(
        data: Path = typer.Option(..., "--data", help="Manifest folder (audio + captions.jsonl) to train on."),
        out: Path = typer.Option(..., "--out", help="Output folder: the codec (config.json + model.safetensors), "
                                                   "logs and checkpoints."),
        steps: int = typer.Option(1000, "--steps", help="Optimizer steps."),
        preset: str = typer.Option("demo", "--preset", help="Model size: tiny | demo | base (24 kHz, 12 x 1024)."),
        batch_size: int = typer.Option(0, "--batch-size", help="Clips per step (0 = the preset's default)."),
        seconds: float = typer.Option(0.0, "--seconds", help="Training crop length in seconds (0 = preset default)."),
        lr: float = typer.Option(0.0, "--lr", help="Peak learning rate (0 = the preset's default)."),
        num_quantizers: int = typer.Option(0, "--num-quantizers", help="RVQ levels (0 = the preset's)."),
        codebook_size: int = typer.Option(0, "--codebook-size", help="Codes per level (0 = the preset's)."),
        causal: bool = typer.Option(False, "--causal", help="Causal convolutions/attention (streamable codec)."),
        adversarial: bool = typer.Option(False, "--adversarial", help="Add the multi-scale STFT discriminator "
                                                                      "(hinge + feature matching)."),
        bf16: bool = typer.Option(False, "--bf16", help="bf16 mixed precision."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
        init_from: Path = typer.Option(None, "--init-from", help="Fine-tune this saved codec instead of a new one."),
        eval_every: int = typer.Option(0, "--eval-every", help="Evaluate SI-SDR / mel distance every N steps."),
        save_every: int = typer.Option(0, "--save-every", help="Write a resumable checkpoint every N steps "
                                                              "(0 = every steps/5)."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Train a SoundStream codec on a manifest folder; prints SI-SDR / mel distance before and after."""
    from ..training.codec import train_codec

    overrides = {}
    if num_quantizers:
        overrides["rq_num_quantizers"] = num_quantizers
    if codebook_size:
        overrides["codebook_size"] = codebook_size
    if causal:
        overrides["causal"] = True
    if save_every <= 0:
        save_every = max(1, steps // 5)
    result = train_codec(data, out, steps, preset=preset, model_config=overrides, init_from=init_from,
                         batch_size=batch_size or None, seconds=seconds or None, lr=lr or None, bf16=bf16,
                         adversarial=adversarial, resume=resume, seed=seed, eval_every=eval_every,
                         save_every=save_every)
    print_json({"steps": result.train.step, "last_loss": result.train.last_loss,
                "before": result.initial_metrics, "after": result.final_metrics,
                "bitrate_kbps": result.model.bitrate() / 1000, "sample_rate": result.model.sample_rate,
                "hop_length": result.model.hop_length})
    done("codec trained", out)


@codec_app.command("encode")
def encode_command(
        audio: Path = typer.Argument(..., help="Audio file to encode (resampled to the codec's rate)."),
        model: Path = typer.Option(..., "--model", help="Codec folder (from `soundweave train codec`) or hub id."),
        out: Path = typer.Option(..., "--out", help="Where to write the codes (.npy, int64, shape (1, N, Q))."),
        num_quantizers: int = typer.Option(0, "--num-quantizers", help="Keep only the first Q levels (0 = all)."),
        device: str = typer.Option(None, "--device", help="cpu | cuda | mps (default: best available)."),
) -> None:
    """Encode an audio file to residual-VQ codes."""
    import numpy as np

    from ..audio import load
    from ..runtime import pick_device

    codec = _load_codec(model, str(pick_device(device)))
    wave, _ = load(audio, sr=codec.sample_rate, max_seconds=None)
    codes = codec.encode(wave, num_quantizers or None).cpu().numpy().astype(np.int64)
    if out.suffix != ".npy":
        raise ConfigError(f"--out must end in .npy, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, codes)
    console.print(f"{codes.shape[1]} frames x {codes.shape[2]} levels "
                  f"({codec.bitrate(codes.shape[2]) / 1000:.2f} kbps at {codec.frame_rate:g} frames/s)")
    done("encoded", out)


@codec_app.command("decode")
def decode_command(
        codes: Path = typer.Argument(..., help="Codes file (.npy, int, (B, N, Q) or (N, Q))."),
        model: Path = typer.Option(..., "--model", help="Codec folder (from `soundweave train codec`) or hub id."),
        out: Path = typer.Option(..., "--out", help="Output audio file (.wav/.flac); with B > 1, NAME-i.wav each."),
        device: str = typer.Option(None, "--device", help="cpu | cuda | mps (default: best available)."),
) -> None:
    """Decode residual-VQ codes back to audio (length = frames x hop)."""
    import numpy as np
    import torch

    from ..audio import save
    from ..runtime import pick_device

    if not codes.is_file():
        raise ConfigError(f"codes file {str(codes)!r} does not exist")
    try:
        array = np.load(codes, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ShapeError(f"{str(codes)!r} is not a .npy array of codes: {exc}") from exc
    if not np.issubdtype(array.dtype, np.integer):
        raise ShapeError(f"codes in {str(codes)!r} must be integers, got dtype {array.dtype}")
    codec = _load_codec(model, str(pick_device(device)))
    audio = codec.decode(torch.from_numpy(array.astype(np.int64))).cpu()
    paths = []
    if audio.shape[0] == 1:
        paths.append(save(out, audio[0], codec.sample_rate))
    else:
        for i in range(audio.shape[0]):
            paths.append(save(out.with_name(f"{out.stem}-{i}{out.suffix}"), audio[i], codec.sample_rate))
    done(f"decoded {audio.shape[0]} x {audio.shape[1] / codec.sample_rate:.2f} s at {codec.sample_rate} Hz", *paths)


@eval_app.command("codec")
def eval_codec_command(
        model: Path = typer.Option(..., "--model", help="Codec folder (from `soundweave train codec`) or hub id."),
        data: Path = typer.Option(..., "--data", help="Manifest folder with the clips to reconstruct."),
        split: str = typer.Option("test", "--split", help="Manifest split to evaluate (train | valid | test)."),
        max_clips: int = typer.Option(16, "--max-clips", help="Evaluate at most this many clips."),
        seconds: float = typer.Option(0.0, "--seconds", help="Cut clips to this many seconds (0 = whole clips)."),
        num_quantizers: int = typer.Option(0, "--num-quantizers", help="Levels to keep (0 = all): lower bitrate."),
        bf16: bool = typer.Option(False, "--bf16", help="Run encode/decode in bf16 autocast."),
        device: str = typer.Option(None, "--device", help="cpu | cuda | mps (default: best available)."),
) -> None:
    """Reconstruct clips through the codec; print SI-SDR, mel distance, bitrate and real-time factor (JSON)."""
    from ..runtime import pick_device
    from ..training.codec import evaluate_codec

    if max_clips < 1:
        raise ConfigError(f"--max-clips must be >= 1, got {max_clips}")
    codec = _load_codec(model, str(pick_device(device)))
    print_json(evaluate_codec(codec, data, split=split, max_clips=max_clips, seconds=seconds or None,
                              num_quantizers=num_quantizers or None, precision="bf16" if bf16 else "fp32"))


def codec_demo(ctx, steps: int = 400, max_seconds: float | None = 60.0, preset: str = "demo",
               step_name: str = "codec", model_config: dict | None = None, seconds: float | None = None,
               batch_size: int | None = None):
    """Train the demo codec on the demo corpus (about a minute), then reconstruct a held-out clip.

    Writes OUT/<step_name>/{model/, original.wav, reconstruction.wav, reconstruction-2q.wav, metrics.json}
    and returns the `CodecTrainResult` (its `.model` is the trained codec, saved in `.out_dir`).
    Other demo steps (SoundStorm) call this to get their codec.
    """
    import json

    from ..audio import save
    from ..training.codec import evaluate_codec, load_clips, train_codec

    corpus = ctx.need_corpus()
    out = ctx.step_dir(step_name)
    # a short warm-up: under a time budget only part of `steps` may run
    result = train_codec(corpus, out / "model", steps, preset=preset, model_config=model_config, seconds=seconds,
                         batch_size=batch_size, max_seconds=max_seconds, seed=ctx.seed, progress=True, eval_clips=4,
                         warmup_steps=min(10, steps // 10))
    codec = result.model
    metrics = evaluate_codec(codec, corpus, split="test", max_clips=8)
    clip = load_clips(corpus, "test", codec.sample_rate, max_clips=1)[0]
    save(out / "original.wav", clip, codec.sample_rate)
    save(out / "reconstruction.wav", codec.reconstruct(clip)[0].cpu(), codec.sample_rate)
    low = min(2, codec.num_quantizers)
    save(out / f"reconstruction-{low}q.wav", codec.reconstruct(clip, num_quantizers=low)[0].cpu(), codec.sample_rate)
    report = {"steps": result.train.step, "before_training": result.initial_metrics, "test": metrics}
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    before = {"si_sdr": float("nan"), "mel_distance": float("nan"), **result.initial_metrics}
    console.print(f"  codec: {codec.num_parameters() / 1e6:.2f}M parameters, {codec.bitrate() / 1000:.2f} kbps, "
                  f"{result.train.step} steps; test SI-SDR {metrics['si_sdr']:.2f} dB, mel distance "
                  f"{metrics['mel_distance']:.3f} (untrained, on valid clips: {before['si_sdr']:.2f} dB, "
                  f"{before['mel_distance']:.3f})")
    ctx.add_output(step_name, f"trained codec ({codec.bitrate() / 1000:.1f} kbps)", result.out_dir)
    ctx.add_output(step_name, "clip -> codes -> audio (all levels)", out / "reconstruction.wav")
    ctx.add_output(step_name, f"the same with only {low} levels (lower bitrate)", out / f"reconstruction-{low}q.wav")
    return result


def demo(ctx, steps: int = 400, max_seconds: float | None = 60.0) -> None:
    """Demo step `codec`: train the demo codec for about a minute and reconstruct a test clip.

    Later steps (SoundStorm) find the trained codec among this step's outputs and reuse it.
    """
    codec_demo(ctx, steps=steps, max_seconds=max_seconds)
