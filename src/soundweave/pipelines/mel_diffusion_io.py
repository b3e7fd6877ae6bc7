"""Folder layout of a `MelDiffusionPipeline` (the diffusers layout audio-diffusion checkpoints use).

```
folder/
  model_index.json          {"_class_name": ..., "unet": ["diffusers", "UNet2DModel"], ...}
  unet/                     config.json + diffusion_pytorch_model.safetensors (or .bin)
  scheduler/                scheduler_config.json (DDPMScheduler or DDIMScheduler)
  mel/mel_config.json       {"_class_name": "Mel", x_res, y_res, sample_rate, n_fft, hop_length, top_db, n_iter}
  vae/ or vqvae/            optional AutoencoderKL (latent mode)
```

A teticio/audio-diffusion-* folder (model_index.json naming `AudioDiffusionPipeline`, `vqvae: [null, null]`,
mel `["audio_diffusion", "Mel"]`) loads as is. soundweave's own extras (class names for class-conditional
models, the null class used for classifier-free guidance) live under the private key `_soundweave` of
model_index.json, which diffusers ignores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..audio.mel_image import MEL_CONFIG_NAME, MelImageCodec
from ..errors import CheckpointError
from ..models.base import resolve_pretrained

MODEL_INDEX = "model_index.json"
SCHEDULER_CONFIG = "scheduler_config.json"
VAE_FOLDERS = ("vae", "vqvae")
UNET_CLASSES = ("UNet2DModel", "UNet2DConditionModel")
SCHEDULER_CLASSES = ("DDPMScheduler", "DDIMScheduler")


def read_json(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise CheckpointError(f"missing {str(file)!r}")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(file)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{str(file)!r} must hold a JSON object")
    return data


def resolve_folder(path_or_id: str | os.PathLike, revision: str | None = None) -> Path:
    """A local pipeline folder, or a hub id fetched with huggingface_hub.snapshot_download."""
    folder = resolve_pretrained(path_or_id, revision=revision)
    if not (folder / "unet").is_dir():
        raise CheckpointError(f"{str(folder)!r} is not a mel-diffusion pipeline folder: it has no unet/ subfolder "
                              "(expected unet/, scheduler/, mel/mel_config.json as written by save_pretrained)")
    return folder


def load_unet(folder: Path):
    from diffusers import UNet2DConditionModel, UNet2DModel

    config = read_json(folder / "unet" / "config.json")
    name = config.get("_class_name", "UNet2DModel")
    if name not in UNET_CLASSES:
        raise CheckpointError(f"unet in {str(folder)!r} is a {name!r}; supported: {UNET_CLASSES}")
    cls = UNet2DModel if name == "UNet2DModel" else UNet2DConditionModel
    try:
        return cls.from_pretrained(str(folder), subfolder="unet")
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"could not load the unet from {str(folder / 'unet')!r}: {exc}") from exc


def load_scheduler(folder: Path):
    from diffusers import DDIMScheduler, DDPMScheduler

    file = folder / "scheduler" / SCHEDULER_CONFIG
    config = read_json(file)
    name = config.get("_class_name", "DDPMScheduler")
    if name not in SCHEDULER_CLASSES:
        raise CheckpointError(f"scheduler in {str(folder)!r} is a {name!r}; supported: {SCHEDULER_CLASSES}")
    cls = DDPMScheduler if name == "DDPMScheduler" else DDIMScheduler
    try:
        return cls.from_config(config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"bad scheduler config {str(file)!r}: {exc}") from exc


def load_mel(folder: Path) -> MelImageCodec:
    if (folder / "mel" / MEL_CONFIG_NAME).is_file():
        return MelImageCodec.from_pretrained(folder, subfolder="mel")
    if (folder / MEL_CONFIG_NAME).is_file():
        return MelImageCodec.from_pretrained(folder)
    raise CheckpointError(f"{str(folder)!r} has no mel/{MEL_CONFIG_NAME} (the spectrogram settings)")


def load_vae(folder: Path):
    from diffusers import AutoencoderKL

    for name in VAE_FOLDERS:
        sub = folder / name
        if (sub / "config.json").is_file():
            config = read_json(sub / "config.json")
            if config.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
                raise CheckpointError(f"{str(sub)!r} holds a {config.get('_class_name')!r}; only AutoencoderKL "
                                      "is supported in latent mode")
            try:
                return AutoencoderKL.from_pretrained(str(folder), subfolder=name)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise CheckpointError(f"could not load the VAE from {str(sub)!r}: {exc}") from exc
    return None


def read_extras(folder: Path) -> dict[str, Any]:
    file = folder / MODEL_INDEX
    if not file.is_file():
        return {}
    extras = read_json(file).get("_soundweave", {})
    return extras if isinstance(extras, dict) else {}


def write_model_index(folder: Path, unet, scheduler, vae, extras: dict[str, Any]) -> None:
    import diffusers

    index = {
        "_class_name": "MelDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", type(unet).__name__],
        "scheduler": ["diffusers", type(scheduler).__name__],
        "mel": ["soundweave", "MelImageCodec"],
        "vae": ["diffusers", type(vae).__name__] if vae is not None else [None, None],
        "_soundweave": extras,
    }
    (folder / MODEL_INDEX).write_text(json.dumps(index, indent=2))
