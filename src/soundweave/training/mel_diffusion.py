"""Training a mel-spectrogram diffusion UNet (from scratch, or fine-tuning a pipeline folder / hub id).

Data: a manifest folder (`captions.jsonl`) or a Hugging Face audio dataset, optionally filtered on tags
(`{"instrument": "piano"}`), resampled to the pipeline's rate. Every item is a *random* slice of a random
clip (a different slice each time it is drawn), turned into a spectrogram image by `MelImageCodec`;
silent slices are skipped. Loss: the DDPM objective at uniform random timesteps, as MSE on whatever the
scheduler's `prediction_type` names - new models predict v (MSE on v equals the noise MSE weighted by
1/alpha_bar_t, and a tiny CPU model learns it several times faster), `prediction_type="epsilon"` gives
plain noise MSE as audio-diffusion, and fine-tuned models keep their own. In latent mode images are encoded
by the frozen VAE first. Class conditioning uses the UNet's class embedding with one extra "null" class,
dropped in with probability `class_dropout` so the model supports classifier-free guidance; with a MuLaN,
each slice's MuLaN audio latent is the cross-attention state (zeroed with the same probability).

The shared `Trainer` runs the loop (bf16, EMA, checkpoints, resume); its `eval_fn` writes sample
spectrograms (PNG) and audio (WAV) to `OUT/samples/step-N/` every `sample_every` steps and logs how far
their mean per-mel-bin profile is from real slices. At the end OUT is itself a pipeline folder
(unet/, scheduler/, mel/, model_index.json) that `MelDiffusionPipeline.from_pretrained(OUT)` loads; it is
saved with a DDIMScheduler over the training noise schedule (50 steps by default; `scheduler="ddpm"` for
ancestral sampling).

The slices and their sources live in `training/mel_slices.py`, the image statistics in
`metrics/spectrogram_images.py`; both are importable from here as before.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio.io import save
from ..audio.mel_image import MelImageCodec
from ..data.shards import is_stream
from ..errors import CheckpointError, ConfigError, DataError
from ..metrics.spectrogram_images import (  # noqa: F401  (public here too)
    frechet_distance,
    log_mel_features,
    profile_distance,
    spectrogram_profile,
)
from ..models.base import atomic_write_bytes
from ..pipelines.mel_diffusion import MelDiffusionPipeline
from .mel_slices import (  # noqa: F401  (public here too)
    MelSliceDataset,
    MuLaNEncoder,
    collate_images,
    load_mulan_encoder,
    normalize_where,
    open_source,
)
from .mel_stream import MelSliceStream, open_stream_source
from .trainer import Trainer, TrainerConfig, TrainResult

SPEC_NAME = "model_spec.json"
RESOLUTIONS = (32, 64, 128, 256)
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
DEFAULT_CHANNELS = {32: (32, 64, 64), 64: (32, 64, 64, 128), 128: (32, 64, 128, 128, 256),
                    256: (32, 64, 128, 128, 256, 256)}


# -- model construction ------------------------------------------------------------------------------------
def default_mel(resolution: int, hop_length: int | None = None, sample_rate: int = 22050, n_fft: int = 2048,
                n_iter: int = 32) -> MelImageCodec:
    """Square `resolution` images; the default hop makes one image ~3 s at 22050 Hz (64 -> 1024, 256 -> 256)."""
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    hop = hop_length or max(64, 1024 * 64 // resolution)
    return MelImageCodec(x_res=resolution, y_res=resolution, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop,
                         n_iter=n_iter)


def make_unet(sample_size: int | tuple[int, int], channels: tuple[int, ...] | None = None, layers_per_block: int = 1,
              attention: bool = True, num_class_embeds: int | None = None, cross_attention_dim: int | None = None,
              in_channels: int = 1, norm_num_groups: int = 8):
    """A diffusers UNet for spectrogram images: `UNet2DModel` (optionally class-conditional), or a
    `UNet2DConditionModel` when `cross_attention_dim` is given. Attention only at the coarsest level."""
    from diffusers import UNet2DConditionModel, UNet2DModel

    size = (sample_size, sample_size) if isinstance(sample_size, int) else tuple(sample_size)
    channels = tuple(channels or DEFAULT_CHANNELS.get(max(size), (32, 64, 64, 128)))
    n = len(channels)
    if any(c % norm_num_groups for c in channels):
        raise ConfigError(f"every channel count must be divisible by norm_num_groups={norm_num_groups}: {channels}")
    if min(size) % 2 ** (n - 1):
        raise ConfigError(f"sample size {size} must be divisible by 2**{n - 1} for {n} UNet levels")
    if cross_attention_dim is not None:
        down = ["DownBlock2D"] * (n - 1) + ["CrossAttnDownBlock2D"]
        up = ["CrossAttnUpBlock2D"] + ["UpBlock2D"] * (n - 1)
        return UNet2DConditionModel(sample_size=size, in_channels=in_channels, out_channels=in_channels,
                                    block_out_channels=channels, layers_per_block=layers_per_block,
                                    down_block_types=tuple(down), up_block_types=tuple(up),
                                    cross_attention_dim=cross_attention_dim, norm_num_groups=norm_num_groups,
                                    attention_head_dim=8, num_class_embeds=num_class_embeds)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(sample_size=size, in_channels=in_channels, out_channels=in_channels,
                       block_out_channels=channels, layers_per_block=layers_per_block, down_block_types=tuple(down),
                       up_block_types=tuple(up), norm_num_groups=norm_num_groups, attention_head_dim=8,
                       add_attention=attention, num_class_embeds=num_class_embeds)


def new_pipeline(resolution: int = 64, hop_length: int | None = None, sample_rate: int = 22050,
                 channels: tuple[int, ...] | None = None, layers_per_block: int = 1, attention: bool = True,
                 class_names: list[str] | None = None, cross_attention_dim: int | None = None,
                 num_train_timesteps: int = 1000, prediction_type: str = "v_prediction") -> MelDiffusionPipeline:
    """An untrained pixel-space pipeline (DDPM scheduler, linear betas, as audio-diffusion)."""
    from diffusers import DDPMScheduler

    if prediction_type not in PREDICTION_TYPES:
        raise ConfigError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")

    mel = default_mel(resolution, hop_length, sample_rate)
    num_classes = len(class_names) + 1 if class_names else None
    unet = make_unet((mel.y_res, mel.x_res), channels, layers_per_block, attention, num_classes, cross_attention_dim)
    scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="linear",
                              prediction_type=prediction_type)
    return MelDiffusionPipeline(unet, scheduler, mel, class_names=class_names)


# -- training ----------------------------------------------------------------------------------------------
@dataclass
class MelDiffusionTrainConfig:
    data: str
    out: str
    from_pretrained: str | None = None
    where: dict[str, Any] = field(default_factory=dict)  # tag -> value, 'a|b', or a list of values
    split: str = "train"
    resolution: int = 64
    hop_length: int | None = None
    sample_rate: int = 22050
    channels: tuple[int, ...] | None = None
    layers_per_block: int = 1
    attention: bool = True
    prediction_type: str = "v_prediction"
    steps: int = 1000
    batch_size: int = 16
    lr: float = 5e-4
    warmup_steps: int = 50
    weight_decay: float = 1e-6
    bf16: bool = False
    ema: bool = False
    ema_decay: float = 0.999
    sample_every: int = 0
    sample_count: int = 4
    sample_steps: int = 20
    save_every: int = 0  # 0: every min(500, steps) steps (and at the end), so --resume always has a checkpoint
    resume: bool = False
    class_tag: str | None = None
    class_dropout: float = 0.1
    seed: int = 0
    progress: bool = True
    audio_column: str = "audio"
    mulan: str | None = None  # condition on MuLaN audio latents of each slice (cross-attention); prompt with text
    num_workers: int = 0  # DataLoader workers (2-8 for streamed shards)
    max_minutes: float | None = None  # also stop when this much wall time has passed (checked every steps/20)

    def __post_init__(self):
        if self.resolution not in RESOLUTIONS:
            raise ConfigError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution}")
        if not 0 <= self.class_dropout < 1:
            raise ConfigError(f"class_dropout must be in [0, 1), got {self.class_dropout}")
        for name in ("steps", "batch_size", "sample_count", "sample_steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sample_every", "save_every", "warmup_steps"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ConfigError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")


@dataclass
class MelDiffusionTrainResult:
    pipeline: MelDiffusionPipeline
    result: TrainResult
    out: Path


def make_step_fn(scheduler, vae=None, class_dropout: float = 0.1, null_class: int | None = None,
                 encoder: Callable[[torch.Tensor], torch.Tensor] | None = None, cross_attention_dim: int | None = None
                 ) -> Callable[[torch.nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]:
    """DDPM training step: noise an image batch at random timesteps, predict the noise (or v), MSE.

    Class labels (with `null_class`) and encoder states (`encoder(batch["audio"]) -> (B, L, D)`) are each
    replaced by "no condition" (the null class / zeros) with probability `class_dropout`, so the model
    also learns the unconditional score classifier-free guidance needs. A cross-attention UNet without an
    encoder gets zeros."""
    num_t = scheduler.config.num_train_timesteps
    prediction = scheduler.config.prediction_type

    def step_fn(model, batch):
        images, labels = batch["images"], batch["labels"]
        device = next(model.parameters()).device
        x = (images.to(device).float() / 255.0 * 2.0 - 1.0)[:, None]
        if vae is not None:
            with torch.no_grad():
                x = vae.encode(x.to(vae.dtype)).latent_dist.sample().float() * vae.config.scaling_factor
        noise = torch.randn_like(x)
        t = torch.randint(0, num_t, (x.shape[0],), device=device)
        noisy = scheduler.add_noise(x, noise, t)
        kwargs = {}
        if null_class is not None:
            labels = labels.to(device).clone()
            labels[labels < 0] = null_class
            if class_dropout > 0:
                drop = torch.rand(labels.shape, device=device) < class_dropout
                labels[drop] = null_class
            kwargs["class_labels"] = labels
        if encoder is not None:
            states = encoder(batch["audio"]).to(device)
            if class_dropout > 0:
                keep = (torch.rand(states.shape[0], device=device) >= class_dropout).to(states.dtype)
                states = states * keep[:, None, None]
            kwargs["encoder_hidden_states"] = states
        elif "encoder_hidden_states" in batch:
            kwargs["encoder_hidden_states"] = batch["encoder_hidden_states"].to(device)
        elif cross_attention_dim is not None:
            kwargs["encoder_hidden_states"] = torch.zeros(x.shape[0], 1, cross_attention_dim, device=device)
        if prediction == "v_prediction":
            target = scheduler.get_velocity(x, noise, t)
        elif prediction == "sample":
            target = x
        else:
            target = noise
        pred = model(noisy, t, **kwargs).sample
        loss = torch.nn.functional.mse_loss(pred.float(), target.float())
        return loss, {}

    return step_fn


def _spec(pipe: MelDiffusionPipeline, from_pretrained: str | None) -> dict[str, Any]:
    return {"unet_class": type(pipe.unet).__name__, "unet": dict(pipe.unet.config),
            "scheduler_class": type(pipe.scheduler).__name__, "scheduler": dict(pipe.scheduler.config),
            "mel": pipe.mel.get_config(), "class_names": pipe.class_names, "null_class": pipe.null_class,
            "metadata": pipe.metadata, "from_pretrained": from_pretrained}


def _from_spec(spec: dict[str, Any]) -> MelDiffusionPipeline:
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel, UNet2DModel

    try:
        if spec.get("from_pretrained"):
            base = MelDiffusionPipeline.from_pretrained(spec["from_pretrained"], device="cpu")
            vae = base.vae
        else:
            vae = None
        unet_cls = UNet2DConditionModel if spec["unet_class"] == "UNet2DConditionModel" else UNet2DModel
        sched_cls = DDIMScheduler if spec["scheduler_class"] == "DDIMScheduler" else DDPMScheduler
        config = {k: v for k, v in spec["unet"].items() if not k.startswith("_")}
        return MelDiffusionPipeline(unet_cls.from_config(config), sched_cls.from_config(spec["scheduler"]),
                                    MelImageCodec.from_config(spec["mel"]), vae, class_names=spec["class_names"],
                                    null_class=spec["null_class"], metadata=spec.get("metadata"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{SPEC_NAME} in the output folder is not usable for --resume: {exc}") from exc


def _initial_pipeline(cfg: MelDiffusionTrainConfig, out: Path, class_values: list[str],
                      cross_attention_dim: int | None = None) -> MelDiffusionPipeline:
    spec_file = out / SPEC_NAME
    if cfg.resume and spec_file.is_file():
        return _from_spec(json.loads(spec_file.read_text()))
    if cfg.from_pretrained:
        pipe = MelDiffusionPipeline.from_pretrained(cfg.from_pretrained, device="cpu")
        if cfg.class_tag and pipe.num_classes is None:
            raise ConfigError(f"--class-tag {cfg.class_tag}: the pretrained model {cfg.from_pretrained!r} is not "
                              "class-conditional; fine-tune it without --class-tag, or train from scratch")
        if cfg.class_tag and pipe.class_names is not None:
            missing = sorted(set(class_values) - set(pipe.class_names))
            if missing:
                raise ConfigError(f"the pretrained model knows classes {pipe.class_names}, not {missing}")
        if cross_attention_dim is not None and (not pipe.is_cross_attention
                                                or pipe.unet.config.cross_attention_dim != cross_attention_dim):
            raise ConfigError(f"--mulan needs a pretrained UNet2DConditionModel with cross_attention_dim="
                              f"{cross_attention_dim}; {cfg.from_pretrained!r} has a {type(pipe.unet).__name__}")
        return pipe
    pipe = new_pipeline(cfg.resolution, cfg.hop_length, cfg.sample_rate, cfg.channels, cfg.layers_per_block,
                        cfg.attention, class_names=class_values or None, cross_attention_dim=cross_attention_dim,
                        prediction_type=cfg.prediction_type)
    return pipe


def make_sample_fn(pipe: MelDiffusionPipeline, out: Path, reference: np.ndarray, count: int = 4, steps: int = 20,
                   seed: int = 0, encodings: torch.Tensor | None = None
                   ) -> Callable[[torch.nn.Module, int], dict[str, float]]:
    """eval_fn for the Trainer: DDIM-sample `count` spectrograms with the (EMA) unet, write PNG + WAV to
    OUT/samples/step-N/, and return the profile distance of the samples to the `reference` real slices."""

    def sample_fn(model, step: int) -> dict[str, float]:
        current = MelDiffusionPipeline(model, pipe.scheduler, pipe.mel, pipe.vae, class_names=pipe.class_names,
                                       null_class=pipe.null_class)
        labels = None
        if current.class_names:
            labels = [i % len(current.class_names) for i in range(count)]
        result = current(batch_size=count, steps=steps, seed=seed, scheduler="ddim", class_labels=labels,
                         encoding=encodings)
        folder = out / "samples" / f"step-{step:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, (image, audio) in enumerate(zip(result.images, result.audios, strict=True)):
            name = f"sample-{i:02d}" + (f"-{current.class_names[labels[i]]}" if labels else "")
            name = name.replace(" ", "_")
            image.save(folder / f"{name}.png")
            save(folder / f"{name}.wav", audio, result.sample_rate)
        return {"profile_dist": profile_distance(result.arrays, reference)}

    return sample_fn


def _fit_within(trainer: Trainer, steps: int, seconds: float, resume: bool) -> TrainResult:
    """`trainer.fit` in chunks of steps/20 until `steps` or until `seconds` of wall time have passed."""
    start = time.perf_counter()
    chunk = max(1, steps // 20)
    total: TrainResult | None = None
    while trainer.step < steps and (total is None or trainer.main_value(time.perf_counter() - start) < seconds):
        part = trainer.fit(resume=resume and total is None, stop_at=min(steps, trainer.step + chunk))
        if total is None:
            total = part
        else:
            total.losses += part.losses
            total.evals += part.evals
            total.step, total.checkpoint = part.step, part.checkpoint
    if total is None:  # already at `steps` (a finished run resumed)
        total = trainer.fit(resume=resume)
    total.elapsed = time.perf_counter() - start
    return total


def train_mel_diffusion(config: MelDiffusionTrainConfig | None = None, **kwargs) -> MelDiffusionTrainResult:
    """Train (or fine-tune) and save the pipeline into `config.out`. See `MelDiffusionTrainConfig`."""
    cfg = config or MelDiffusionTrainConfig(**kwargs)
    from ..runtime import seed_everything

    seed_everything(cfg.seed)  # the new UNet's initial weights too: two runs with one seed are the same run
    out = Path(cfg.out)
    spec_file = out / SPEC_NAME
    if cfg.resume and not spec_file.is_file() and out.is_dir() and (out / "checkpoints").is_dir():
        raise CheckpointError(f"cannot resume: {str(out)!r} has checkpoints but no {SPEC_NAME}")
    # the rate is needed before reading data: the pretrained pipeline's, or ours
    rate = cfg.sample_rate
    if cfg.resume and spec_file.is_file():
        rate = json.loads(spec_file.read_text())["mel"]["sample_rate"]
    elif cfg.from_pretrained:
        from ..pipelines.mel_diffusion_io import load_mel, resolve_folder

        rate = load_mel(resolve_folder(cfg.from_pretrained)).sample_rate
    streaming = is_stream(cfg.data)
    if streaming:  # WebDataset shards / HF streaming (training/mel_stream.py)
        source, class_values = open_stream_source(str(cfg.data), rate, normalize_where(cfg.where), cfg.split,
                                                  cfg.class_tag, cfg.audio_column, cfg.seed)
    else:
        source, tags = open_source(cfg.data, rate, cfg.where, cfg.split, cfg.class_tag, cfg.audio_column)
        class_values = []
    if cfg.class_tag and not streaming:
        class_values = sorted({str(t[cfg.class_tag]) for t in tags if t.get(cfg.class_tag) is not None})
        if not class_values:
            raise DataError(f"no clip has the tag {cfg.class_tag!r}; tags present: "
                            f"{sorted({k for t in tags for k in t})}")
    mulan = cfg.mulan
    if mulan is None and cfg.resume and spec_file.is_file():  # a resumed MuLaN-conditioned run keeps its encoder
        mulan = (json.loads(spec_file.read_text()).get("metadata") or {}).get("mulan")
    encoder = load_mulan_encoder(mulan, rate) if mulan else None
    pipe = _initial_pipeline(cfg, out, class_values, encoder.dim if encoder is not None else None)
    if encoder is not None:
        local = Path(mulan).expanduser()
        pipe.metadata.update(conditioning="mulan", mulan=str(local.resolve()) if local.is_dir() else mulan)
    if pipe.mel.sample_rate != rate:
        raise ConfigError(f"data were read at {rate} Hz but the pipeline runs at {pipe.mel.sample_rate} Hz")
    class_names = pipe.class_names if cfg.class_tag else None
    if cfg.class_tag and class_names is None:
        raise ConfigError("--class-tag needs a model with class names")
    if streaming:
        dataset = MelSliceStream(source, pipe.mel, class_tag=cfg.class_tag if class_names else None,
                                 class_names=class_names, null_class=pipe.null_class, return_audio=encoder is not None)
    else:
        dataset = MelSliceDataset(source, pipe.mel, tags=tags, class_tag=cfg.class_tag if class_names else None,
                                  class_names=class_names, null_class=pipe.null_class, length=cfg.batch_size,
                                  return_audio=encoder is not None)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in ((SPEC_NAME, _spec(pipe, cfg.from_pretrained)), ("mel_diffusion_train.json", asdict(cfg))):
        # atomically: under several processes another one may be reading the spec (on --resume)
        text = json.dumps(data, indent=2, default=list)
        atomic_write_bytes(out / name, lambda tmp, text=text: Path(tmp).write_text(text))
    if pipe.vae is not None:
        pipe.vae.requires_grad_(False).eval()
    null = pipe.null_class if pipe.num_classes is not None else None
    cross_dim = pipe.unet.config.cross_attention_dim if pipe.is_cross_attention else None
    dropout = cfg.class_dropout if (class_names or encoder is not None) else 0.0
    step_fn = make_step_fn(pipe.scheduler, pipe.vae, dropout, null, encoder=encoder, cross_attention_dim=cross_dim)
    eval_fn = None
    if cfg.sample_every:
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        if streaming:
            ref_items = list(itertools.islice(iter(dataset), 32))
        else:
            ref_items = [dataset[int(i)] for i in torch.randint(0, len(dataset), (32,), generator=generator)]
        reference = torch.stack([item["image"] for item in ref_items]).numpy()
        encodings = None
        if encoder is not None:  # samples conditioned on the MuLaN latents of real slices
            encodings = encoder(torch.stack([item["audio"] for item in ref_items[: cfg.sample_count]]))
        eval_fn = make_sample_fn(pipe, out, reference, cfg.sample_count, cfg.sample_steps, cfg.seed, encodings)
    pipe.unet.train()
    trainer = Trainer(pipe.unet, dataset, step_fn, TrainerConfig(
        out_dir=str(out), max_steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
        warmup_steps=min(cfg.warmup_steps, cfg.steps // 5), weight_decay=cfg.weight_decay, betas=(0.95, 0.999),
        mixed_precision="bf16" if cfg.bf16 else "no", ema_decay=cfg.ema_decay if cfg.ema else None,
        eval_every=cfg.sample_every, save_every=cfg.save_every or max(1, min(500, cfg.steps)),
        log_every=max(1, min(50, cfg.steps // 20)), seed=cfg.seed, progress=cfg.progress,
        num_workers=cfg.num_workers),
        collate_fn=collate_images, eval_fn=eval_fn)
    if cfg.max_minutes:
        result = _fit_within(trainer, cfg.steps, cfg.max_minutes * 60.0, cfg.resume)
    else:
        result = trainer.fit(resume=cfg.resume)
    # saved with DDIM over the same noise schedule: 50 steps by default; scheduler="ddpm" per call for DDPM
    from diffusers import DDIMScheduler

    final = MelDiffusionPipeline(trainer.final_model(), DDIMScheduler.from_config(pipe.scheduler.config), pipe.mel,
                                 pipe.vae, class_names=pipe.class_names, null_class=pipe.null_class,
                                 metadata=pipe.metadata)
    final.unet.eval()
    trainer.run_on_main(final.save_pretrained, out)
    return MelDiffusionTrainResult(pipeline=final, result=result, out=out)

