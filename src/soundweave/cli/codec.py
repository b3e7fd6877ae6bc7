"""Codec commands: `soundweave train codec`, `soundweave codec encode|decode`, `soundweave eval codec`.

Codes files are `.npy` int64 arrays `(B, N, Q)` (B = 1 for one input file).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import ConfigError, ShapeError
from .common import console, done, print_json
from .groups import codec_app, eval_app, train_app

MODEL_HELP = ("Codec: a folder from `soundweave train codec`, a transformers EnCodec / DAC / Mimi folder, or a hub id "
              "(e.g. facebook/encodec_24khz, descript/dac_16khz, kyutai/mimi).")


def _load_codec(model: Path | str, device: str | None = None):
    """Any codec (a soundweave codec folder, or a transformers EnCodec / DAC / Mimi folder or hub id)."""
    from ..models.codecs import load_codec

    return load_codec(model, device=device)


@train_app.command("codec")
def train_codec_command(
        data: str = typer.Option(..., "--data", help="Manifest folder (audio + captions.jsonl) to train on; or, for "
                                 "--kind soundstream, streamed WebDataset shards / hf://datasets/NAME."),
        out: Path = typer.Option(..., "--out", help="Output folder: the codec (config.json + model.safetensors), "
                                                   "logs and checkpoints."),
        steps: int = typer.Option(1000, "--steps", help="Optimizer steps (soundstream)."),
        kmeans_iters: int = typer.Option(10, "--kmeans-iters", help="k-means iterations per level (spectral)."),
        kind: str = typer.Option("spectral", "--kind", help="spectral (SpectralCodec: the fast offline codec, "
                                                             "trains in minutes on a CPU) | soundstream (SoundStream: "
                                                             "the waveform codec of the paper, for GPUs)."),
        preset: str = typer.Option("demo", "--preset", help="Model size: tiny | demo (16 kHz, 50 frames/s; "
                                                            "spectral: 8 x 1024 codes = 4 kbps) | hifi (spectral "
                                                            "only: 256 mels, 40 x 1024 codes = 20 kbps, the quality "
                                                            "the benchmarks measure) | base (24 kHz, 12 x 1024 "
                                                            "codes)."),
        batch_size: int = typer.Option(0, "--batch-size", help="Clips per step (0 = the preset's default)."),
        seconds: float = typer.Option(0.0, "--seconds", help="Training crop length in seconds (0 = preset default)."),
        lr: float = typer.Option(0.0, "--lr", help="Peak learning rate (0 = the preset's default)."),
        num_quantizers: int = typer.Option(0, "--num-quantizers", help="RVQ levels (0 = the preset's)."),
        codebook_size: int = typer.Option(0, "--codebook-size", help="Codes per level (0 = the preset's)."),
        causal: bool = typer.Option(False, "--causal", help="Causal convolutions/attention (streamable codec; "
                                                            "soundstream only)."),
        adversarial: bool = typer.Option(False, "--adversarial", help="Add the multi-scale STFT discriminator "
                                                                      "(hinge + feature matching)."),
        bf16: bool = typer.Option(False, "--bf16", help="bf16 mixed precision."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
        init_from: Path = typer.Option(None, "--init-from", help="Fine-tune this saved codec instead of a new one."),
        eval_every: int = typer.Option(0, "--eval-every", help="Evaluate SI-SDR / mel distance every N steps."),
        save_every: int = typer.Option(0, "--save-every", help="Write a resumable checkpoint every N steps "
                                                              "(0 = every steps/5)."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        log_every: int = typer.Option(10, "--log-every", help="Write a log.csv row every N steps."),
) -> None:
    """Train a codec on a manifest folder; prints SI-SDR / mel distance before and after (same clips)."""
    from ..training.codec import train_codec

    overrides = {}
    if num_quantizers:
        overrides["rq_num_quantizers" if kind == "soundstream" else "num_quantizers"] = num_quantizers
    if codebook_size:
        overrides["codebook_size"] = codebook_size
    if causal:
        if kind != "soundstream":
            raise ConfigError("--causal is a SoundStream option; pass --kind soundstream")
        overrides["causal"] = True
    if save_every <= 0:
        save_every = max(1, steps // 5)
    result = train_codec(data, out, steps, kind=kind, preset=preset, model_config=overrides, init_from=init_from,
                         batch_size=batch_size or None, seconds=seconds or None, lr=lr or None, bf16=bf16,
                         adversarial=adversarial, resume=resume, seed=seed, eval_every=eval_every,
                         save_every=save_every, kmeans_iters=kmeans_iters, log_every=log_every)
    print_json({"kind": kind, "steps": result.train.step, "last_loss": result.train.last_loss,
                "before": result.initial_metrics, "after": result.final_metrics,
                "bitrate_kbps": result.model.bitrate() / 1000, "sample_rate": result.model.sample_rate,
                "hop_length": result.model.hop_length})
    done("codec trained", out)


@codec_app.command("encode")
def encode_command(
        audio: Path = typer.Argument(..., help="Audio file to encode (resampled to the codec's rate)."),
        model: Path = typer.Option(..., "--model", help=MODEL_HELP),
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
        model: Path = typer.Option(..., "--model", help=MODEL_HELP),
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
        model: Path = typer.Option(..., "--model", help=MODEL_HELP),
        data: Path = typer.Option(..., "--data", help="Manifest folder with the clips to reconstruct."),
        split: str = typer.Option("test", "--split", help="Manifest split to evaluate (train | valid | test)."),
        max_clips: int = typer.Option(16, "--max-clips", help="Evaluate at most this many clips."),
        seconds: float = typer.Option(0.0, "--seconds", help="Cut clips to this many seconds (0 = whole clips)."),
        num_quantizers: int = typer.Option(0, "--num-quantizers", help="Levels to keep (0 = all): lower bitrate."),
        bf16: bool = typer.Option(False, "--bf16", help="Run encode/decode in bf16 autocast."),
        mulan: Path = typer.Option(None, "--mulan", help="A MuLaN folder: also report whether the instrument "
                                                         "survives (its zero-shot instrument accuracy on the "
                                                         "reconstructions vs the originals, same clips)."),
        device: str = typer.Option(None, "--device", help="cpu | cuda | mps (default: best available)."),
) -> None:
    """Reconstruct clips through the codec; print mel distance, SI-SDR, bitrate and real-time factor (JSON), and
    with --mulan the instrument-survival figure."""
    from ..runtime import pick_device
    from ..training.codec import evaluate_codec, instrument_survival

    if max_clips < 1:
        raise ConfigError(f"--max-clips must be >= 1, got {max_clips}")
    device = str(pick_device(device))
    codec = _load_codec(model, device)
    report = evaluate_codec(codec, data, split=split, max_clips=max_clips, seconds=seconds or None,
                            num_quantizers=num_quantizers or None, precision="bf16" if bf16 else "fp32")
    if mulan is not None:
        from ..models.mulan import MuLaN

        report["instrument"] = instrument_survival(codec, MuLaN.from_pretrained(mulan, device=device), data, split,
                                                   max_clips, num_quantizers=num_quantizers or None)
    print_json(report)


SOUNDSTORM_LEVELS = 8  # the demo's SoundStorm models the first 8 levels of the codec step's codec
# the codec step fits the "hifi" SpectralCodec as benchmarks/codec_quality.py does: 2000 clips (1600 train; 200k
# of their frames), 4 Lloyd steps per level
DEMO_FIT_CLIPS, DEMO_KMEANS_ITERS = 2000, 4


def codec_demo(ctx, steps: int = 400, max_seconds: float | None = 60.0, preset: str = "demo",
               step_name: str = "codec", model_config: dict | None = None, seconds: float | None = None,
               batch_size: int | None = None, kind: str = "spectral", fit_clips: int | None = None,
               kmeans_iters: int = 10):
    """Fit the demo codec (the offline SpectralCodec: seconds) on the demo corpus, then reconstruct a held-out clip.

    Writes OUT/<step_name>/{model/, original.wav, reconstruction.wav, reconstruction-2q.wav, spectrograms.png,
    metrics.json} and returns the `CodecTrainResult` (its `.model` is the trained codec, saved in `.out_dir`).
    Other demo steps (SoundStorm) call this to get their codec. `kind="soundstream"` trains SoundStream instead
    (`steps` optimizer steps within `max_seconds`). `fit_clips`: fit on that many freshly rendered synthetic clips
    (another seed, in a temporary folder removed afterwards) instead of the demo corpus's few train clips - a
    40-level codec needs more frames than the demo corpus has; the figures are still the demo corpus's test clips.
    """
    import json
    import tempfile

    from ..audio import save
    from ..audio.spectrogram_png import save_spectrograms
    from ..training.codec import evaluate_codec, load_clips, train_codec

    corpus = ctx.need_corpus()
    out = ctx.step_dir(step_name)
    with tempfile.TemporaryDirectory(prefix="soundweave-codec-fit-") as scratch:
        data = corpus
        if fit_clips:
            from ..data.synth import make_corpus

            data = Path(scratch) / "corpus"
            started = time.perf_counter()
            make_corpus(data, n=fit_clips, seconds=4.0, sr=16000, seed=ctx.seed + 1, progress=False)
            console.print(f"  rendered {fit_clips} more synthetic clips (seed {ctx.seed + 1}) to fit the codec on, in "
                          f"{time.perf_counter() - started:.1f} s")
        result = train_codec(data, out / "model", steps, kind=kind, preset=preset, model_config=model_config,
                             seconds=seconds, batch_size=batch_size, max_seconds=max_seconds, seed=ctx.seed,
                             progress=True, eval_clips=4, eval_seconds=None, eval_split="test",
                             warmup_steps=min(10, steps // 10), kmeans_iters=kmeans_iters)
    codec = result.model
    metrics = evaluate_codec(codec, corpus, split="test", max_clips=8)
    clip = load_clips(corpus, "test", codec.sample_rate, max_clips=1)[0]
    recon = codec.reconstruct(clip)[0].cpu()
    low = min(2, codec.num_quantizers)
    coarse = codec.reconstruct(clip, num_quantizers=low)[0].cpu()
    save(out / "original.wav", clip, codec.sample_rate)
    save(out / "reconstruction.wav", recon, codec.sample_rate)
    save(out / f"reconstruction-{low}q.wav", coarse, codec.sample_rate)
    rate = codec.sample_rate
    rows = [("original", clip, rate), (f"reconstruction, {codec.bitrate() / 1000:.1f} kbps", recon, rate)]
    if codec.num_quantizers > SOUNDSTORM_LEVELS:  # what an 8-level SoundStorm on this codec hears
        mid = codec.reconstruct(clip, num_quantizers=SOUNDSTORM_LEVELS)[0].cpu()
        save(out / f"reconstruction-{SOUNDSTORM_LEVELS}q.wav", mid, rate)
        rows.append((f"{SOUNDSTORM_LEVELS} levels, {codec.bitrate(SOUNDSTORM_LEVELS) / 1000:.1f} kbps", mid, rate))
    rows.append((f"{low} levels, {codec.bitrate(low) / 1000:.1f} kbps", coarse, rate))
    picture = save_spectrograms(out / "spectrograms.png", rows, sample_rate=rate)
    report = {"kind": kind, "steps": result.train.step, "before_training": result.initial_metrics, "test": metrics}
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    before = {"si_sdr": float("nan"), "mel_distance": float("nan"), **result.initial_metrics}
    console.print(f"  {codec.describe()}; fitted in {result.train.elapsed:.1f} s; test mel distance "
                  f"{metrics['mel_distance']:.3f} (untrained, on 4 test clips: {before['mel_distance']:.3f}), "
                  f"{1 / max(metrics['rtf'], 1e-9):.0f}x real time")
    ctx.add_output(step_name, f"trained codec ({codec.bitrate() / 1000:.1f} kbps)", result.out_dir)
    ctx.add_output(step_name, "clip -> codes -> audio (all levels)", out / "reconstruction.wav")
    ctx.add_output(step_name, f"the same with only {low} levels (lower bitrate)", out / f"reconstruction-{low}q.wav")
    if codec.num_quantizers > SOUNDSTORM_LEVELS:
        ctx.add_output(step_name, f"the same with the first {SOUNDSTORM_LEVELS} levels (SoundStorm models these)",
                       out / f"reconstruction-{SOUNDSTORM_LEVELS}q.wav")
    ctx.add_output(step_name, "spectrograms: original vs reconstructions", picture)
    return result


def demo(ctx, steps: int = 400, max_seconds: float | None = 60.0) -> None:
    """Demo step `codec`: fit the offline codec on the demo corpus and reconstruct a test clip.

    Later steps (SoundStorm) find the trained codec among this step's outputs and reuse it.
    """
    codec_demo(ctx, steps=steps, max_seconds=max_seconds, preset="hifi", fit_clips=DEMO_FIT_CLIPS,
               kmeans_iters=DEMO_KMEANS_ITERS)
