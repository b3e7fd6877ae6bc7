"""Audio2ImagePipeline: a sound drives any Stable Diffusion that uses the text encoder the aligner imitates.

    pipe = Audio2ImagePipeline.from_pretrained("stabilityai/stable-diffusion-2-1-base", "runs/aligner")
    image = pipe("rain.wav", seed=0).images[0]

The aligner's (B, 77, D) sequence is passed as `prompt_embeds`; the negative embeddings come from a
negative audio (default: 4 s of white noise at amplitude 0.01, as audio2img did) or, with
`negative_prompt=""`, from the SD text encoder. `prompt=` blends a text prompt's embeddings in:
`audio_weight * audio + (1 - audio_weight) * text`. The SD tokenizer/text encoder are only needed when
text is used (`tokenizer=None`, `text_encoder=None` work otherwise).

CPU-aware defaults (used for every setting left as None): on a CPU, 20 steps of DPM-Solver++ (multistep), at
most 512 x 512, and bf16 where the CPU has native bf16 (AVX512-BF16 / AMX; elsewhere bf16 is emulated and many
times slower, so fp32: `runtime.default_precision`); on a GPU, fp32, the SD pipeline's own scheduler, 50
steps, the model's native size. The expected time is printed before sampling starts (`verbose=True`). The
pipeline owns no weights and keeps no state between calls: the scheduler of a call is a fresh copy.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio.io import check_audio, load
from ..errors import CheckpointError, ConfigError, ShapeError
from ..models.aligner import AudioCLIPAligner
from ..runtime import autocast, check_precision, default_precision, make_generator, pick_device

log = logging.getLogger(__name__)

NOISE_SECONDS = 4.0
NOISE_AMPLITUDE = 0.01
NOISE_SEED = 0
SCHEDULERS = ("dpm", "ddim", "euler", "default")
# effective speed of SD's UNet/VAE relative to the best of a few plain (1024 x 1024) matmuls on the same
# device and dtype (calibrated on 2 CPU cores with benchmarks/sd_cpu.py: SD 2.1 UNet 1.61 TFLOP per guided
# 512 x 512 step in 4.3-5.7 s bf16 against ~355 GFLOP/s matmuls, 13 s fp32 against ~185 GFLOP/s)
EFFICIENCY = {"bf16": 0.9, "fp32": 0.67}


@dataclass
class Audio2ImageOutput:
    images: list[Any]  # PIL images (output_type='pil') or a numpy array (output_type='np')
    prompt_embeds: torch.Tensor  # (B, L, D) what SD was conditioned on
    negative_prompt_embeds: torch.Tensor | None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSettings:
    num_inference_steps: int
    height: int
    width: int
    scheduler: str
    precision: str
    device: str


def _native_size(sd) -> int:
    return int(sd.unet.config.sample_size) * int(getattr(sd, "vae_scale_factor", 8))


def cpu_aware_settings(sd, device: torch.device, num_inference_steps: int | None = None,
                       height: int | None = None, width: int | None = None, scheduler: str | None = None,
                       precision: str | None = None) -> RunSettings:
    """Fill every None with the default for `device` (see the module docstring)."""
    cpu = device.type == "cpu"
    native = _native_size(sd)
    size = min(native, 512) if cpu else native
    multiple = 8 * int(getattr(sd, "vae_scale_factor", 8))
    size = max(multiple, size // multiple * multiple)
    settings = RunSettings(
        num_inference_steps=int(num_inference_steps or (20 if cpu else 50)),
        height=int(height or size), width=int(width or size),
        scheduler=scheduler or ("dpm" if cpu else "default"),
        precision=check_precision(precision or default_precision(device)), device=str(device))
    if settings.scheduler not in SCHEDULERS:
        raise ConfigError(f"scheduler must be one of {SCHEDULERS}, got {settings.scheduler!r}")
    if settings.num_inference_steps < 1:
        raise ConfigError(f"num_inference_steps must be >= 1, got {settings.num_inference_steps}")
    step = max(8, int(getattr(sd, "vae_scale_factor", 8)))
    for name in ("height", "width"):
        value = getattr(settings, name)
        if value < step or value % step:
            raise ConfigError(f"{name} must be a positive multiple of {step} (the VAE's scale), got {value}")
    return settings


def make_scheduler(sd, name: str):
    """A fresh scheduler for one call, built from the SD pipeline's scheduler config."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    config = sd.scheduler.config
    if name == "default":
        return type(sd.scheduler).from_config(config)
    cls = {"dpm": DPMSolverMultistepScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler}[name]
    if name == "dpm":
        return cls.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    return cls.from_config(config)


def prepare_for_cpu(sd) -> None:
    """Put the VAE in channels-last memory format: oneDNN's CPU convolutions decode ~2x faster that way (SD 2.1
    VAE at 512 px in bf16: 6-7.5 s instead of 13.5-18 s on 2 cores; the UNet measured the same in both
    formats, so it is left alone). Same numbers, idempotent."""
    vae = getattr(sd, "vae", None)
    if vae is not None:
        vae.to(memory_format=torch.channels_last)


def _matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 1024, reps: int = 5) -> float:
    """This device's matmul speed: the best of `reps` timed (n x n) products after a warm-up."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for i in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ a
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first call is the warm-up
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / max(best, 1e-9) / 1e9


def count_flops(module: torch.nn.Module, *inputs, method: str | None = None, **kwargs) -> float:
    """FLOPs of one call, counted on a meta-device copy (no compute, no memory)."""
    from torch.utils.flop_counter import FlopCounterMode

    config = dict(module.config)
    with torch.device("meta"):
        copy = type(module).from_config(config)
    meta = [torch.empty(x.shape, device="meta", dtype=torch.float32) if isinstance(x, torch.Tensor) else x
            for x in inputs]
    meta_kwargs = {k: torch.empty(v.shape, device="meta") if isinstance(v, torch.Tensor) else v
                   for k, v in kwargs.items()}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        (getattr(copy, method) if method else copy)(*meta, **meta_kwargs)
    return float(counter.get_total_flops())


def estimate_seconds(sd, settings: RunSettings, batch: int = 1, guided: bool = True,
                     seq_len: int = 77) -> dict[str, float]:
    """Expected time of one run: FLOPs of a UNet step and a VAE decode (counted on meta copies) divided by
    this device's measured matmul speed times the efficiency SD reaches relative to a matmul."""
    device = torch.device(settings.device)
    scale = int(getattr(sd, "vae_scale_factor", 8))
    h, w = settings.height // scale, settings.width // scale
    n = batch * (2 if guided else 1)
    ch = int(sd.unet.config.in_channels)
    unet_flops = count_flops(sd.unet, torch.empty(n, ch, h, w), torch.empty(n),
                             encoder_hidden_states=torch.empty(n, seq_len, int(sd.unet.config.cross_attention_dim)))
    vae_flops = count_flops(sd.vae, torch.empty(batch, int(sd.vae.config.latent_channels), h, w), method="decode")
    dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32
    rate = _matmul_gflops(device, dtype) * 1e9 * EFFICIENCY[settings.precision]
    step = unet_flops / rate
    total = step * settings.num_inference_steps + vae_flops / rate
    return {"seconds_per_step": step, "vae_decode_seconds": vae_flops / rate, "total_seconds": total,
            "unet_tflop_per_step": unet_flops / 1e12}


def _unet_cross_attention_dim(sd_id_or_dir) -> int | None:
    """The UNet's cross_attention_dim from unet/config.json (local, or a small hub download); None if unknown."""
    import json

    path = Path(sd_id_or_dir) / "unet" / "config.json"
    try:
        if not path.is_file():
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(str(sd_id_or_dir), "unet/config.json"))
        value = json.loads(path.read_text()).get("cross_attention_dim")
        return int(value) if isinstance(value, int) else None
    except Exception:  # unknown layout or offline: the full load reports the problem
        return None


class Audio2ImagePipeline:
    """Audio -> image through a Stable Diffusion pipeline and an AudioCLIPAligner (see module docstring).

    sd_pipeline: a diffusers StableDiffusionPipeline (or any SD-family pipeline taking `prompt_embeds` and
        `negative_prompt_embeds`). aligner: an AudioCLIPAligner whose target_dim equals the UNet's
        cross_attention_dim.
    """

    def __init__(self, sd_pipeline, aligner: AudioCLIPAligner):
        if not hasattr(sd_pipeline, "unet") or not hasattr(sd_pipeline, "scheduler"):
            raise ConfigError(f"sd_pipeline must be a diffusers Stable Diffusion pipeline, got "
                              f"{type(sd_pipeline).__name__}")
        if not isinstance(aligner, AudioCLIPAligner):
            raise ConfigError(f"aligner must be an AudioCLIPAligner, got {type(aligner).__name__}")
        cross = int(sd_pipeline.unet.config.cross_attention_dim)
        if aligner.config.target_dim != cross:
            raise ConfigError(
                f"the aligner outputs {aligner.config.target_dim}-d tokens but this Stable Diffusion's UNet expects "
                f"cross_attention_dim={cross}; use an aligner trained for a {cross}-d text encoder "
                f"(e.g. 1024 for SD 2.x, 768 for SD 1.x)")
        encoder = getattr(sd_pipeline, "text_encoder", None)
        if encoder is not None:
            width = int(getattr(encoder.config, "hidden_size", cross))
            positions = int(getattr(encoder.config, "max_position_embeddings", aligner.config.target_len))
            if width != aligner.config.target_dim or positions != aligner.config.target_len:
                raise ConfigError(f"the aligner imitates a {aligner.config.target_len} x {aligner.config.target_dim} "
                                  f"text encoder but this pipeline's text encoder is {positions} x {width}")
        self.sd = sd_pipeline
        self.aligner = aligner

    @classmethod
    def from_pretrained(cls, sd_id_or_dir: str | os.PathLike, aligner_dir: str | os.PathLike, *,
                        device: str | torch.device | None = None, precision: str | None = None,
                        **sd_kwargs) -> Audio2ImagePipeline:
        """Load a diffusers SD pipeline (hub id or folder) and a saved aligner. SD's weights are bf16 on a CPU
        with native bf16 (AVX512-BF16 / AMX) by default, fp32 on other CPUs and GPUs (`runtime.default_precision`;
        `precision=` chooses); the aligner keeps fp32 weights and, on a CPU, runs its CPU path
        (`aligner.cpu_precision()`: int8 products where supported)."""
        from diffusers import DiffusionPipeline

        device = pick_device(device)
        precision = check_precision(precision or default_precision(device))
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        aligner = AudioCLIPAligner.from_pretrained(aligner_dir)
        cross = _unet_cross_attention_dim(sd_id_or_dir)
        if cross is not None and cross != aligner.config.target_dim:  # fail before loading gigabytes
            raise ConfigError(f"the aligner outputs {aligner.config.target_dim}-d tokens but the UNet of "
                              f"{str(sd_id_or_dir)!r} expects cross_attention_dim={cross}; use an aligner trained "
                              f"for a {cross}-d text encoder (e.g. 1024 for SD 2.x, 768 for SD 1.x)")
        kwargs = {"safety_checker": None, "requires_safety_checker": False, **sd_kwargs}
        local = Path(sd_id_or_dir)
        if (local / "model_index.json").is_file():  # a saved pipeline may lack text parts: pass them as None
            for name in ("text_encoder", "tokenizer", "feature_extractor", "image_encoder"):
                if not (local / name).is_dir():
                    kwargs.setdefault(name, None)
        try:
            sd = DiffusionPipeline.from_pretrained(str(sd_id_or_dir), torch_dtype=dtype, **kwargs)
        except Exception as exc:  # missing folder, offline hub, unknown layout: one clear error
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
            raise CheckpointError(f"could not load the Stable Diffusion pipeline {str(sd_id_or_dir)!r}"
                                  f"{' (HF_HUB_OFFLINE is set)' if offline else ''}: {type(exc).__name__}: {exc}") \
                from exc
        sd.to(device)
        # the aligner keeps fp32 weights: its int8 CPU path packs them itself (benchmarks/aligner_latency.py)
        aligner.to(device=device)
        return cls(sd, aligner)

    # -- embeddings ---------------------------------------------------------------------------------
    def _audio(self, audio, sr: int | None) -> tuple[Any, int]:
        if isinstance(audio, (str, Path, bytes, bytearray)):
            return load(audio, sr=None)
        if sr is None:
            raise ConfigError("pass sr=... with raw audio (a tensor or array); file paths carry their own rate")
        if isinstance(audio, (list, tuple)):
            return [check_audio(a) for a in audio], sr
        return check_audio(audio), sr

    def encode_audio(self, audio, sr: int | None = None, precision: str | None = None) -> torch.Tensor:
        """Audio (path, (T,), (B, T) or list of clips) -> (B, target_len, target_dim) prompt embeddings.
        precision None (the default) or "bf16" on a CPU: the aligner's CPU path (`aligner.cpu_precision()`)."""
        audio, sr = self._audio(audio, sr)
        # inference runs the aligner in eval mode (no dropout / SpecAugment) whatever mode it was handed over
        # in, and gives it back in that mode: a module built from a config starts in training mode
        was_training = self.aligner.training
        self.aligner.eval()
        try:
            if precision in (None, "bf16") and self.aligner.device.type == "cpu":
                # the CPU default: the aligner's fastest CPU path (int8 products where supported; see
                # AudioCLIPAligner.cpu_precision and benchmarks/aligner_latency.py)
                precision = self.aligner.cpu_precision()
            elif precision is None:
                precision = default_precision(self.aligner.device)
            with torch.no_grad():
                out = self.aligner.embed(audio, sr, precision=precision)
        finally:
            self.aligner.train(was_training)
        for i in torch.nonzero(out.silent).flatten().tolist():
            log.warning("audio clip %d is silent; it maps to the aligner's fixed 'silence' embedding", i)
        return out.last_hidden_state

    def negative_noise(self, seconds: float = NOISE_SECONDS, amplitude: float = NOISE_AMPLITUDE) -> torch.Tensor:
        """The default negative audio: white noise at `amplitude` (fixed seed, so every call is the same)."""
        g = torch.Generator().manual_seed(NOISE_SEED)
        return amplitude * torch.randn(int(seconds * 16000), generator=g)

    def encode_prompt(self, prompt: str | list[str]) -> torch.Tensor:
        """Text -> the SD text encoder's last_hidden_state (B, L, D); needs the pipeline's tokenizer and encoder."""
        tokenizer, encoder = getattr(self.sd, "tokenizer", None), getattr(self.sd, "text_encoder", None)
        if tokenizer is None or encoder is None:
            raise ConfigError("a text prompt (prompt= or negative_prompt=) needs the Stable Diffusion pipeline's "
                              "tokenizer and text_encoder; this one was built without them")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(encoder.device)
        with torch.no_grad():
            hidden = encoder(ids).last_hidden_state
        if tuple(hidden.shape[1:]) != (self.aligner.config.target_len, self.aligner.config.target_dim):
            raise ShapeError(f"the text encoder gives {tuple(hidden.shape[1:])} but the aligner gives "
                             f"{(self.aligner.config.target_len, self.aligner.config.target_dim)}")
        return hidden

    @staticmethod
    def _match_batch(x: torch.Tensor, b: int, name: str) -> torch.Tensor:
        if x.shape[0] == b:
            return x
        if x.shape[0] == 1:
            return x.expand(b, -1, -1)
        raise ShapeError(f"{name} has {x.shape[0]} items for {b} audio clips; give one or {b}")

    def embeddings(self, audio, sr: int | None = None, negative_audio=None, negative_sr: int | None = None,
                   prompt: str | list[str] | None = None, negative_prompt: str | list[str] | None = None,
                   audio_weight: float = 1.0, precision: str | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt_embeds, negative_prompt_embeds) for one call, both (B, L, D)."""
        if not 0.0 <= audio_weight <= 1.0:
            raise ConfigError(f"audio_weight must be in [0, 1], got {audio_weight}")
        positive = self.encode_audio(audio, sr, precision)
        b = positive.shape[0]
        if prompt is not None and audio_weight < 1.0:
            text = self._match_batch(self.encode_prompt(prompt).to(positive), b, "prompt")
            positive = audio_weight * positive + (1.0 - audio_weight) * text
        elif prompt is not None:
            log.info("prompt ignored: audio_weight=1.0 uses the audio alone")
        if negative_prompt is not None:
            negative = self.encode_prompt(negative_prompt)
        else:
            if negative_audio is None:
                negative_audio, negative_sr = self.negative_noise(), 16000
            negative = self.encode_audio(negative_audio, negative_sr or sr, precision)
        negative = self._match_batch(negative.to(positive), b, "the negative")
        return positive, negative

    # -- sampling -------------------------------------------------------------------------------------
    def __call__(self, audio, sr: int | None = None, negative_audio=None, prompt: str | list[str] | None = None,
                 audio_weight: float = 1.0, guidance_scale: float = 7.5, num_inference_steps: int | None = None,
                 generator: torch.Generator | None = None, height: int | None = None, width: int | None = None, *,
                 negative_sr: int | None = None, negative_prompt: str | list[str] | None = None,
                 seed: int | None = None, scheduler: str | None = None, precision: str | None = None,
                 output_type: str = "pil", verbose: bool = True, **sd_kwargs) -> Audio2ImageOutput:
        """Draw one image per audio clip. Settings left as None take the CPU-aware defaults.

        audio: a file path, or a (T,)/(B, T) tensor/array (then `sr` is required), or a list of clips.
        negative_audio: audio whose embedding is the negative (default: 4 s of white noise, amplitude
            0.01); or `negative_prompt=""` to use the SD text encoder's embedding of an empty prompt.
        prompt + audio_weight: blend `audio_weight * audio + (1 - audio_weight) * text`.
        generator / seed: the same seed gives the same image.
        verbose: print the settings and the expected time before sampling.
        """
        device = self.sd.unet.device
        settings = cpu_aware_settings(self.sd, device, num_inference_steps, height, width, scheduler, precision)
        generator = make_generator(seed, generator)
        positive, negative = self.embeddings(audio, sr, negative_audio, negative_sr, prompt, negative_prompt,
                                             audio_weight, precision)  # None: the aligner's own default
        guided = guidance_scale > 1.0
        estimate = None
        if verbose:
            estimate = estimate_seconds(self.sd, settings, batch=positive.shape[0], guided=guided,
                                        seq_len=positive.shape[1])
            print(f"audio2img: {settings.width}x{settings.height}, {settings.num_inference_steps} steps "
                  f"({settings.scheduler}), {settings.precision} on {settings.device}: expected about "
                  f"{_fmt(estimate['total_seconds'])} ({estimate['seconds_per_step']:.2f} s per step)",
                  file=sys.stderr, flush=True)
        unet_dtype = self.sd.unet.dtype
        original = self.sd.scheduler
        start = time.perf_counter()
        try:
            self.sd.scheduler = make_scheduler(self.sd, settings.scheduler)
            if device.type == "cpu":
                prepare_for_cpu(self.sd)
            with autocast(device, settings.precision if device.type in ("cpu", "cuda") else "fp32"), \
                    torch.no_grad():
                result = self.sd(prompt_embeds=positive.to(device, unet_dtype),
                                 negative_prompt_embeds=negative.to(device, unet_dtype) if guided else None,
                                 guidance_scale=guidance_scale, num_inference_steps=settings.num_inference_steps,
                                 generator=generator, height=settings.height, width=settings.width,
                                 output_type=output_type, **sd_kwargs)
        finally:
            self.sd.scheduler = original
        elapsed = time.perf_counter() - start
        info = {**settings.__dict__, "guidance_scale": guidance_scale, "audio_weight": audio_weight,
                "elapsed_seconds": round(elapsed, 3)}
        if estimate is not None:
            info["estimated_seconds"] = round(estimate["total_seconds"], 3)
        images = result.images
        if output_type == "np" and isinstance(images, np.ndarray):
            images = np.nan_to_num(images)
        return Audio2ImageOutput(images=images, prompt_embeds=positive, negative_prompt_embeds=negative,
                                 settings=info)


def _fmt(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.2f} s"
    return f"{math.floor(seconds / 60)} min {seconds % 60:.0f} s"


__all__ = ["Audio2ImageOutput", "Audio2ImagePipeline", "RunSettings", "cpu_aware_settings", "estimate_seconds",
           "make_scheduler"]
