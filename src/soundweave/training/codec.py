"""Training and evaluation of soundweave's codecs: the fast `SpectralCodec` (default) and `SoundStream`.

    result = train_codec("corpus/", "runs/codec")                             # SpectralCodec: residual k-means
    result = train_codec("corpus/", "runs/ss", steps=300, kind="soundstream")  # the waveform codec
    result.model.encode(audio)                       # the trained codec (also saved in out_dir)
    evaluate_codec(result.model, "corpus/", split="test")   # SI-SDR, mel distance, bitrate, RTF

`SpectralCodec` learns only its codebooks, by residual k-means on the train split's log-mel frames (seconds).
`SoundStream` trains with the shared `Trainer` on its own losses (`compute_loss`): waveform L1, SoundStream's
multi-scale mel loss, multi-resolution STFT loss and the RVQ commitment loss. With `adversarial=True` a
multi-scale STFT discriminator joins (hinge losses + feature matching). Both networks update in the same optimizer
step: the generator's adversarial terms see the discriminator through detached parameters
(`torch.func.functional_call`) and the discriminator's loss sees detached reconstructions, so one
backward pass gives each network exactly its own gradient - and the shared `Trainer` (checkpoints,
resume, bf16, EMA, multi-GPU) runs it unchanged.

Presets (`PRESETS[kind]`), for both kinds: "tiny" (tests: 8 kHz, seconds per hundred steps), "demo"
(16 kHz, hop 320 = 50 frames/s; trains in the demo's minutes on 2 CPU cores) and "base" (24 kHz, hop 480,
12 x 1024 codes = 6 kbps, the SoundStream/SoundStorm configuration).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..data.dataset import CaptionedAudioDataset, collate_audio
from ..data.shards import is_stream, open_stream
from ..errors import ConfigError, DataError
from ..metrics import mel_distance, si_sdr
from ..models.codecs import Codec, SoundStream
from ..models.codecs.spectral import SpectralCodec
from ..nn.discriminator import (
    MultiScaleSTFTDiscriminator,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
)
from ..runtime import autocast, pick_device
from .trainer import Trainer, TrainerConfig, TrainResult

SOUNDSTREAM_PRESETS: dict[str, dict[str, Any]] = {
    # unit tests: 8 kHz, hop 40, 4 x 64 codes; ~0.1 s per step of 8 x 0.25 s on one core
    "tiny": dict(sample_rate=8000, channels=8, channel_mults=(2, 4, 8), strides=(2, 4, 5), dilations=(1, 3),
                 codebook_dim=32, codebook_size=64, rq_num_quantizers=4, attn_window_size=8, attn_depth=1,
                 attn_heads=2, attn_dim_head=16, wave_loss_weight=1.0,
                 multi_spectral_window_powers_of_two=(6, 7, 8, 9), stft_loss_fft_sizes=(128, 256, 512)),
    # the demo: 16 kHz, hop 320 (50 frames/s like the paper), 8 x 256 codes = 3.2 kbps
    "demo": dict(sample_rate=16000, channels=8, channel_mults=(2, 4, 8, 16), strides=(2, 4, 5, 8),
                 dilations=(1, 3), codebook_dim=64, codebook_size=256, rq_num_quantizers=8, attn_window_size=32,
                 attn_depth=1, attn_heads=2, attn_dim_head=32, wave_loss_weight=1.0,
                 multi_spectral_window_powers_of_two=(6, 7, 8, 9, 10), stft_loss_fft_sizes=(256, 512, 1024)),
    # the paper's SoundStream as SoundStorm/MusicLM use it: 24 kHz, hop 480, 12 x 1024 codes = 6 kbps
    "base": dict(),
}

SPECTRAL_PRESETS: dict[str, dict[str, Any]] = {
    # unit tests: 8 kHz, hop 80 (100 frames/s), 64 mels, 4 x 256 codes
    "tiny": dict(sample_rate=8000, hop_length=80, n_mels=64, num_quantizers=4, codebook_size=256),
    # the demo and the offline default: 16 kHz, hop 320 (50 frames/s), 160 mels, 8 x 1024 codes = 4 kbps
    "demo": dict(),
    # the codec the quality goals are measured on (benchmarks/codec_quality.py): 16 kHz, hop 320, 256 mels,
    # 40 x 1024 codes = 20 kbps, 50 NNLS steps; its first 8 levels are a 4 kbps codec for SoundStorm
    # (`first_levels(8)`)
    "hifi": dict(n_mels=256, num_quantizers=40, nnls_iters=50),
    # 24 kHz, hop 480 (50 frames/s), 12 x 1024 codes = 6 kbps
    "base": dict(sample_rate=24000, hop_length=480, n_mels=192, num_quantizers=12),
}

# model kinds: (class, presets)
KINDS: dict[str, tuple[type, dict[str, dict[str, Any]]]] = {
    "spectral": (SpectralCodec, SPECTRAL_PRESETS),
    "soundstream": (SoundStream, SOUNDSTREAM_PRESETS),
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {kind: presets for kind, (_, presets) in KINDS.items()}

# SoundStream training defaults per preset: crop length (s), batch size, learning rate (SpectralCodec has no
# optimizer)
PRESET_TRAINING: dict[str, dict[str, float]] = {
    "tiny": dict(seconds=0.25, batch_size=8, lr=3e-3),
    "demo": dict(seconds=0.5, batch_size=8, lr=2e-3),
    "base": dict(seconds=1.0, batch_size=8, lr=3e-4),
}

TRAIN_STATE = "codec_train.json"


def _check_kind(kind: str) -> tuple[type, dict[str, dict[str, Any]]]:
    if kind not in KINDS:
        raise ConfigError(f"unknown codec kind {kind!r}; choose one of {sorted(KINDS)}")
    return KINDS[kind]


def codec_config(preset: str = "demo", kind: str = "soundstream", **overrides) -> dict[str, Any]:
    """The keyword arguments of a preset of a codec kind ("soundstream" or "spectral"), with `overrides`."""
    _, presets = _check_kind(kind)
    if preset not in presets:
        raise ConfigError(f"unknown codec preset {preset!r}; choose one of {sorted(presets)}")
    return {**presets[preset], **overrides}


def build_codec(kind: str = "spectral", preset: str = "demo", **overrides) -> Codec:
    """A new (untrained) codec of a kind and preset."""
    cls, _ = _check_kind(kind)
    return cls(**codec_config(preset, kind, **overrides))


class AdversarialCodec(nn.Module):
    """A codec plus a multi-scale STFT discriminator, trained together in one optimizer step.

    forward(audio, return_loss_breakdown=False) -> loss (or (loss, breakdown)) - the same call as
    `SoundStream.forward`, so the same step function trains either.
    """

    def __init__(self, codec: SoundStream, fft_sizes=(2048, 1024, 512), channels: int = 32,
                 adversarial_weight: float = 1.0, feature_weight: float = 2.0):
        super().__init__()
        self.codec = codec
        sizes = tuple(min(n, 2 ** int(math.log2(codec.sample_rate // 8))) for n in fft_sizes)
        self.discriminator = MultiScaleSTFTDiscriminator(sizes, channels)
        self.adversarial_weight, self.feature_weight = adversarial_weight, feature_weight

    def forward(self, audio: torch.Tensor, return_loss_breakdown: bool = False):
        out = self.codec.compute_loss(audio)
        real = self.codec._prepare_audio(audio)
        disc = self.discriminator
        real_out = disc(real)
        fake_detached = disc(out.recons.detach())
        d_loss = discriminator_hinge_loss([r for r, _ in real_out], [f for f, _ in fake_detached])
        # the generator sees the discriminator through detached weights: no gradient reaches D from here
        frozen = {name: p.detach() for name, p in disc.named_parameters()}
        frozen.update(dict(disc.named_buffers()))
        fake_out = functional_call(disc, frozen, (out.recons,))
        g_adv = generator_hinge_loss([f for f, _ in fake_out])
        feat = feature_matching_loss([fs for _, fs in real_out], [fs for _, fs in fake_out])
        loss = out.loss + self.adversarial_weight * g_adv + self.feature_weight * feat + d_loss
        if not return_loss_breakdown:
            return loss
        breakdown = {**out.breakdown, "g_adv": float(g_adv.detach()), "feat": float(feat.detach()),
                     "d_loss": float(d_loss.detach()), "total": float(loss.detach())}
        return loss, breakdown


def codec_step(model: nn.Module, batch: dict[str, Any]):
    """Trainer step function: one micro-batch's loss and its breakdown."""
    return model(batch["audio"], return_loss_breakdown=True)


def _unwrap(model: nn.Module) -> Codec:
    return model.codec if isinstance(model, AdversarialCodec) else model


def load_clips(data_dir: str | Path, split: str | None, sample_rate: int, max_clips: int | None = None,
               seconds: float | None = None) -> list[torch.Tensor]:
    """The first `max_clips` clips of a manifest split at `sample_rate` (cut to `seconds` from the start)."""
    dataset = CaptionedAudioDataset(data_dir, split=split, sample_rate=sample_rate, seconds=seconds, crop="start",
                                    on_error="skip")
    count = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    clips = []
    for i in range(count):
        item = dataset[i]
        audio = item["audio"][item["mask"]]
        if audio.numel():
            clips.append(audio)
    if not clips:
        raise DataError(f"no usable clips in split {split!r} of {str(data_dir)!r}")
    return clips


@torch.no_grad()
def reconstruction_metrics(codec: Codec, clips: list[torch.Tensor], num_quantizers: int | None = None,
                           precision: str = "fp32") -> dict[str, float]:
    """Mean SI-SDR (dB, higher is better) and log-mel distance (lower is better) over clips, plus RTF.

    RTF = (encode + decode seconds) / audio seconds, so < 1 is faster than real time.
    """
    was_training = codec.training
    codec.eval()
    device = codec.device
    sdr, mel, elapsed, total = [], [], 0.0, 0.0
    try:
        for clip in clips:
            clip = clip.to(device)
            start = time.perf_counter()
            with autocast(device, precision):
                codes = codec.encode(clip, num_quantizers)
                recon = codec.decode(codes)[:, : clip.shape[-1]].float()
            elapsed += time.perf_counter() - start
            total += clip.shape[-1] / codec.sample_rate
            sdr.append(float(si_sdr(clip[None], recon).mean()))
            mel.append(float(mel_distance(clip[None], recon, codec.sample_rate).mean()))
    finally:
        codec.train(was_training)
    return {"si_sdr": sum(sdr) / len(sdr), "mel_distance": sum(mel) / len(mel), "rtf": elapsed / max(total, 1e-9)}


def evaluate_codec(codec: Codec, data_dir: str | Path, split: str | None = "test", max_clips: int | None = 16,
                   seconds: float | None = None, num_quantizers: int | None = None,
                   precision: str = "fp32") -> dict[str, Any]:
    """SI-SDR, mel distance, bitrate and real-time factor of a codec on a manifest split."""
    q = codec.num_quantizers if num_quantizers is None else num_quantizers
    if not 1 <= q <= codec.num_quantizers:
        raise ConfigError(f"num_quantizers must be in [1, {codec.num_quantizers}], got {num_quantizers}")
    clips = load_clips(data_dir, split, codec.sample_rate, max_clips, seconds)
    metrics = reconstruction_metrics(codec, clips, q, precision)
    return {
        "si_sdr": round(metrics["si_sdr"], 4),
        "mel_distance": round(metrics["mel_distance"], 4),
        "bitrate_kbps": round(codec.bitrate(q) / 1000, 4),
        "rtf": round(metrics["rtf"], 5),
        "num_quantizers": q,
        "frame_rate": codec.frame_rate,
        "sample_rate": codec.sample_rate,
        "clips": len(clips),
        "audio_seconds": round(sum(c.shape[-1] for c in clips) / codec.sample_rate, 3),
        "split": split,
        "precision": precision,
    }


@torch.no_grad()
def instrument_survival(codec: Codec, mulan, data_dir: str | Path, split: str = "test", max_clips: int = 200,
                        seconds: float = 4.0, num_quantizers: int | None = None) -> dict[str, float]:
    """Does the instrument survive the codec? MuLaN's zero-shot instrument accuracy on the original clips and on
    their reconstructions (the same clips, same prompts), and the ratio reconstruction / original."""
    from ..audio.io import resample
    from ..training.mulan import MuLaNEvaluator

    mulan_rate = mulan.audio.sample_rate
    evaluator = MuLaNEvaluator(data_dir, split=split, sample_rate=mulan_rate, seconds=seconds, max_clips=max_clips,
                               tags=("instrument",))
    if "instrument" not in evaluator.classes:
        raise DataError(f"the {split!r} split of {str(data_dir)!r} has no 'instrument' tags to classify")
    original = evaluator(mulan)
    recons = torch.zeros_like(evaluator.audio)
    for i in range(evaluator.audio.shape[0]):
        clip = evaluator.audio[i][evaluator.mask[i]]
        recon = codec.reconstruct(clip, num_quantizers=num_quantizers, sample_rate=mulan_rate)[0].float().cpu()
        recon = resample(recon, codec.sample_rate, mulan_rate)[: clip.shape[-1]]
        recons[i, : recon.shape[-1]] = recon
    evaluator.audio = recons
    rebuilt = evaluator(mulan)
    before, after = original["zero_shot_instrument_acc"], rebuilt["zero_shot_instrument_acc"]
    return {"clips": int(original["clips"]), "instrument_acc_original": round(before, 4),
            "instrument_acc_reconstruction": round(after, 4),
            "instrument_survival": round(after / max(before, 1e-9), 4),
            "chance": round(original["zero_shot_instrument_chance"], 4)}


@dataclass
class CodecTrainResult:
    model: Codec  # the trained codec (eval mode), also saved in out_dir
    out_dir: Path
    train: TrainResult
    initial_metrics: dict[str, float] = field(default_factory=dict)  # on the eval clips, before training
    final_metrics: dict[str, float] = field(default_factory=dict)  # after training


def _eval_clips(data_dir: Path, splits: str | Sequence[str], count: int, seconds: float | None,
                sample_rate: int) -> list[torch.Tensor]:
    """Up to `count` clips from each of `splits` that exists (falling back to 'train' if none does)."""
    from ..data.manifest import read_manifest

    if count <= 0:
        return []
    wanted = [splits] if isinstance(splits, str) else list(splits)
    present = {r.split for r in read_manifest(data_dir)}
    chosen = [s for s in wanted if s in present] or ["train"]
    clips: list[torch.Tensor] = []
    for split in chosen:
        clips += load_clips(data_dir, split, sample_rate, count, seconds)
    return clips


def _stream_eval_clips(data: str, splits: str | Sequence[str], count: int, seconds: float | None,
                       sample_rate: int) -> list[torch.Tensor]:
    """The first `count` clips of each split's stream (the same on every process), cut to `seconds`."""
    clips: list[torch.Tensor] = []
    for split in ([splits] if isinstance(splits, str) else list(splits)) if count > 0 else []:
        try:
            stream = open_stream(data, split, sample_rate=sample_rate, seconds=seconds, crop="start", shuffle=False,
                                 split_nodes=False)
        except DataError:
            continue
        clips += [item["audio"][item["mask"]] for item in itertools.islice(stream, count)]
    return clips


def train_codec(data_dir: str | Path, out_dir: str | Path, steps: int = 1000, *, kind: str = "spectral",
                preset: str = "demo", model_config: dict[str, Any] | None = None, init_from: str | Path | None = None,
                batch_size: int | None = None, seconds: float | None = None, lr: float | None = None,
                warmup_steps: int | None = None, bf16: bool = False, adversarial: bool = False,
                adversarial_weight: float = 1.0, feature_weight: float = 2.0, ema_decay: float | None = None,
                resume: bool = False, seed: int = 0, eval_every: int = 0, save_every: int = 0,
                eval_clips: int = 8, eval_seconds: float | None = 2.0,
                eval_split: str | Sequence[str] = "valid",
                log_every: int = 10, progress: bool = True, device: str | None = None,
                max_seconds: float | None = None, kmeans_iters: int = 10) -> CodecTrainResult:
    """Train a codec on a manifest folder's train split; save it to `out_dir`.

    SpectralCodec has no optimizer: it fits its codebooks by residual k-means (`kmeans_iters` Lloyd steps per
    level, seconds on a CPU); `steps` and the optimizer settings apply to SoundStream.

    kind: "spectral" (`SpectralCodec`, the fast offline codec) or "soundstream" (`SoundStream`).
    preset: "tiny" | "demo" | "base" (see `PRESETS`); `model_config` overrides its entries
    (e.g. `dict(num_quantizers=4)`). `init_from` fine-tunes a saved codec instead. Crop length,
    batch size and learning rate default per preset (`PRESET_TRAINING`). `resume=True` continues from
    the newest checkpoint in out_dir with the model configuration stored there. The metrics
    are measured on `eval_clips` clips (cut to `eval_seconds`) of each split in `eval_split`. `max_seconds` stops
    early once that much wall time has passed (checked between chunks of at most steps/8 steps), e.g. for a demo budget.
    Returns the trained codec with its metrics (SI-SDR, mel distance) before and after, on the same clips.
    """
    streaming = is_stream(data_dir)  # WebDataset shards / hf://datasets/NAME (SoundStream only)
    data_dir, out_dir = (str(data_dir) if streaming else Path(data_dir)), Path(out_dir)
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    state_file = out_dir / TRAIN_STATE
    if resume and state_file.is_file():
        stored = json.loads(state_file.read_text())
        kind, preset = stored.get("kind", "soundstream"), stored.get("preset", preset)
    cls, presets = _check_kind(kind)
    if preset not in presets:
        raise ConfigError(f"unknown codec preset {preset!r}; choose one of {sorted(presets)}")
    if cls is SpectralCodec:
        if streaming:
            raise ConfigError("SpectralCodec fits its codebooks on the frames of a manifest folder; stream shards "
                              "to kind='soundstream', or fit the spectral codec on a manifest folder")
        if adversarial:
            raise ConfigError("adversarial=True trains a discriminator against a learned decoder; SpectralCodec has "
                              "none (it fits k-means codebooks) - use kind='soundstream'")
        return _fit_spectral(data_dir, out_dir, kmeans_iters, preset, model_config, init_from, seed, eval_clips,
                             eval_seconds, eval_split, progress)
    defaults = PRESET_TRAINING[preset]
    from ..runtime import seed_everything

    seed_everything(seed)  # the new codec's initial weights too: two runs with one seed are the same run
    if init_from is not None:
        codec = cls.from_pretrained(init_from)
        codec.train()
    else:
        config = codec_config(preset, kind, **(model_config or {}))
        if resume and state_file.is_file():
            config = json.loads(state_file.read_text())["model_config"]
        codec = cls(**config)
    seconds = float(seconds if seconds is not None else defaults["seconds"])
    batch_size = int(batch_size if batch_size is not None else defaults["batch_size"])
    lr = float(lr if lr is not None else defaults["lr"])
    if seconds * codec.sample_rate < codec.hop_length:
        raise ConfigError(f"training crops of {seconds} s are shorter than one codec frame "
                          f"({codec.hop_length} samples); pass a longer seconds=")
    if streaming:
        dataset = open_stream(data_dir, "train", sample_rate=codec.sample_rate, seconds=seconds, crop="random",
                              seed=seed)
        eval_audio = _stream_eval_clips(data_dir, eval_split, eval_clips, eval_seconds, codec.sample_rate)
    else:
        dataset = CaptionedAudioDataset(data_dir, split="train", sample_rate=codec.sample_rate, seconds=seconds,
                                        crop="random")
        if len(dataset) < batch_size:
            batch_size = len(dataset)
        eval_audio = _eval_clips(data_dir, eval_split, eval_clips, eval_seconds, codec.sample_rate)
    initial = reconstruction_metrics(codec, eval_audio) if eval_audio else {}
    model: nn.Module = AdversarialCodec(codec, adversarial_weight=adversarial_weight,
                                        feature_weight=feature_weight) if adversarial else codec
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {"kind": kind, "model_config": codec.get_config(), "preset": preset, "steps": steps,
             "batch_size": batch_size, "seconds": seconds, "lr": lr, "adversarial": adversarial, "bf16": bf16,
             "seed": seed,
             "data": str(data_dir)}
    state_file.write_text(json.dumps(state, indent=2))
    trainer_config = TrainerConfig(
        out_dir=str(out_dir), max_steps=steps, batch_size=batch_size, lr=lr, betas=(0.8, 0.99),
        warmup_steps=warmup_steps if warmup_steps is not None else min(50, steps // 10),
        mixed_precision="bf16" if bf16 else "no", ema_decay=ema_decay, eval_every=eval_every,
        save_every=save_every, log_every=log_every, seed=seed, progress=progress,
        cpu=device is not None and str(device) == "cpu", weight_decay=0.0)

    def eval_fn(m: nn.Module, step: int) -> dict[str, float]:
        return reconstruction_metrics(_unwrap(m), eval_audio) if eval_audio else {}

    trainer = Trainer(model, dataset, codec_step, trainer_config, collate_fn=collate_audio, eval_fn=eval_fn)
    train = _fit(trainer, resume, max_seconds, steps)
    trained = _unwrap(trainer.final_model())
    trained.eval()
    final = reconstruction_metrics(trained, eval_audio) if eval_audio else {}
    trainer.run_on_main(trained.save_pretrained, out_dir)  # one writer under several processes
    state.update(final_step=train.step, initial_metrics=initial, final_metrics=final,
                 device=str(pick_device(device)), elapsed_s=round(train.elapsed, 2))
    trainer.run_on_main(state_file.write_text, json.dumps(state, indent=2, default=str))
    return CodecTrainResult(model=trained, out_dir=out_dir, train=train, initial_metrics=initial, final_metrics=final)


def _fit_spectral(data_dir: Path, out_dir: Path, iters: int, preset: str, model_config: dict[str, Any] | None,
                  init_from: str | Path | None, seed: int, eval_clips: int, eval_seconds: float | None,
                  eval_split: str | Sequence[str], progress: bool, max_frames: int = 200_000) -> CodecTrainResult:
    """SpectralCodec "training": residual k-means of the train split's log-mel frames (`iters` Lloyd steps)."""
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ConfigError(f"kmeans_iters must be a positive integer, got {iters!r}")
    codec = SpectralCodec.from_pretrained(init_from) if init_from is not None else \
        SpectralCodec(**codec_config(preset, "spectral", **(model_config or {})))
    eval_audio = _eval_clips(data_dir, eval_split, eval_clips, eval_seconds, codec.sample_rate)
    initial = reconstruction_metrics(codec, eval_audio) if eval_audio else {}
    start = time.perf_counter()
    clips = load_clips(data_dir, "train", codec.sample_rate)
    if progress:
        print(f"fitting {codec.num_quantizers} x {codec.codebook_size} codes by residual k-means on the log-mel "
              f"frames of {len(clips)} clips ...", flush=True)
    fit = codec.fit(clips, iters=iters, max_frames=max_frames, generator=torch.Generator().manual_seed(seed))
    elapsed = time.perf_counter() - start
    codec.eval()
    final = reconstruction_metrics(codec, eval_audio) if eval_audio else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    codec.save_pretrained(out_dir)
    state = {"kind": "spectral", "model_config": codec.get_config(), "preset": preset, "steps": iters,
             "final_step": iters, "seed": seed, "data": str(data_dir), "clips": len(clips), "fit": fit,
             "initial_metrics": initial, "final_metrics": final, "elapsed_s": round(elapsed, 2)}
    (out_dir / TRAIN_STATE).write_text(json.dumps(state, indent=2, default=str))
    train = TrainResult(step=iters, elapsed=elapsed)
    return CodecTrainResult(model=codec, out_dir=out_dir, train=train, initial_metrics=initial, final_metrics=final)


def _fit(trainer: Trainer, resume: bool, max_seconds: float | None, steps: int) -> TrainResult:
    """`trainer.fit`, or - with a wall-time budget - fit in chunks (sized from the measured step time)
    until the budget or `steps` is reached."""
    if max_seconds is None:
        return trainer.fit(resume=resume)
    start = time.perf_counter()
    total = TrainResult(step=trainer.step)
    first_step, chunk, first = 0, 5, True
    while True:
        part = trainer.fit(resume=resume if first else False, stop_at=min(steps, trainer.step + chunk))
        if first:  # (a resumed run starts at its checkpoint's step)
            first_step = part.step - len(part.losses)
        first = False
        total.losses += part.losses
        total.evals += part.evals
        total.checkpoint = part.checkpoint or total.checkpoint
        total.step = part.step
        elapsed = trainer.main_value(time.perf_counter() - start)  # every process takes the same decision
        if trainer.step >= steps or elapsed >= max_seconds:
            break
        per_step = elapsed / max(1, trainer.step - first_step)
        chunk = max(1, min(max(5, steps // 8), int((max_seconds - elapsed) / per_step)))
    total.elapsed = time.perf_counter() - start
    return total


__all__ = ["AdversarialCodec", "CodecTrainResult", "KINDS", "PRESETS", "PRESET_TRAINING",
           "SOUNDSTREAM_PRESETS", "SPECTRAL_PRESETS",
           "build_codec", "codec_config",
           "codec_step", "evaluate_codec", "instrument_survival", "load_clips", "reconstruction_metrics",
           "train_codec"]
