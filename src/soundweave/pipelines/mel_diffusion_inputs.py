"""Checking and converting what callers hand to `MelDiffusionPipeline`: images, audio, labels, encodings.

Every bad input becomes a `SoundweaveError` subclass naming the argument and what would be accepted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..audio.io import check_audio, check_sample_rate, load, resample
from ..audio.mel_image import MelImageCodec
from ..errors import ConfigError, ShapeError


def check_int(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(value, name: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return value


def images_to_uint8(images, height: int, name: str = "image") -> torch.Tensor:
    """PIL image(s), or uint8 arrays/tensors `(H, W)` / `(B, H, W)` / `(B, 1, H, W)` -> uint8 `(B, H, W)`."""
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ShapeError(f"{name} is an empty list")
        arrays = []
        for item in images:
            if isinstance(item, Image.Image):
                arrays.append(np.asarray(item.convert("L") if item.mode != "L" else item, dtype=np.uint8))
            else:
                arrays.append(np.asarray(item))
        if len({a.shape for a in arrays}) != 1:
            raise ShapeError(f"{name}: all images must have the same size, got {[a.shape for a in arrays]}")
        images = np.stack(arrays)
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ShapeError(f"{name} must be a PIL image, a list of them, or a uint8 array (B, H, W); "
                         f"got {type(images).__name__}")
    x = images
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ShapeError(f"{name} must be (H, W) or (B, H, W) grayscale, got shape {tuple(images.shape)}")
    if x.shape[1] != height:
        raise ShapeError(f"{name} has {x.shape[1]} rows but the pipeline's spectrograms have {height} (mel y_res)")
    if x.dtype != torch.uint8:
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise ShapeError(f"{name} has NaN/Inf pixels")
        if x.min() < 0 or x.max() > 255:
            raise ShapeError(f"{name} pixels must be 0..255, got range {float(x.min())}..{float(x.max())}")
        x = x.round().to(torch.uint8)
    return x.cpu()


def audio_to_tensor(audio, sample_rate: int, audio_sample_rate: int | None, name: str = "audio") -> torch.Tensor:
    """A path, or samples `(T,)` / `(B, T)` -> float32 `(B, T)` at `sample_rate`."""
    if isinstance(audio, (str, os.PathLike)):
        samples, _ = load(Path(audio), sr=sample_rate)
        return samples[None]
    if isinstance(audio, (list, tuple)):
        audio = np.asarray(audio, dtype=np.float32)
    x = check_audio(torch.as_tensor(audio) if not isinstance(audio, torch.Tensor) else audio, name)
    x = x[None] if x.ndim == 1 else x
    if audio_sample_rate is not None:
        orig = check_sample_rate(audio_sample_rate, "audio_sample_rate")
        if orig != sample_rate:
            x = torch.stack([resample(row, orig, sample_rate) for row in x])
    return x.cpu()


def audio_slice_images(mel: MelImageCodec, audio: torch.Tensor, width: int, slice: int) -> torch.Tensor:
    """Slice `slice` of `width`-column spectrograms of each row of audio `(B, T)` -> uint8 `(B, H, width)`."""
    size = width * mel.hop_length - 1
    if audio.shape[-1] < size:
        audio = torch.nn.functional.pad(audio, (0, size - audio.shape[-1]))
    count = audio.shape[-1] // size
    slice = check_int(slice, "slice")
    if slice >= count:
        raise ShapeError(f"slice {slice} is out of range: the audio holds {count} slice(s) of "
                         f"{size / mel.sample_rate:.2f} s")
    return mel.audio_to_images(audio[:, slice * size : (slice + 1) * size])


def class_label_tensor(class_labels, batch_size: int, class_names: Sequence[str] | None, num_classes: int | None
                       ) -> torch.Tensor:
    """int | str | sequence of them | tensor -> int64 `(batch_size,)`, names looked up in `class_names`."""
    if num_classes is None:
        raise ConfigError("class_labels were given but this model's UNet has no class embedding "
                          "(train it with class labels, e.g. `--class-tag instrument`)")
    if isinstance(class_labels, torch.Tensor):
        values = class_labels.reshape(-1).tolist()
    elif isinstance(class_labels, (str, int, np.integer)):
        values = [class_labels]
    elif isinstance(class_labels, (list, tuple, np.ndarray)):
        values = list(class_labels)
    else:
        raise ConfigError(f"class_labels must be an int, a class name, or a list of them; got {class_labels!r}")
    ids = []
    for value in values:
        if isinstance(value, str):
            if not class_names or value not in class_names:
                known = list(class_names) if class_names else "none (the model stores no class names)"
                raise ConfigError(f"unknown class label {value!r}; known classes: {known}")
            ids.append(list(class_names).index(value))
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not 0 <= int(value) < num_classes:
                raise ConfigError(f"class label {int(value)} is out of range 0..{num_classes - 1}")
            ids.append(int(value))
        else:
            raise ConfigError(f"class labels must be ints or names, got {value!r}")
    if len(ids) == 1:
        ids = ids * batch_size
    if len(ids) != batch_size:
        raise ShapeError(f"got {len(ids)} class labels for a batch of {batch_size}")
    return torch.tensor(ids, dtype=torch.long)


def encoding_tensor(encoding, batch_size: int, dim: int, name: str = "encoding") -> torch.Tensor:
    """`(L, D)` / `(B, L, D)` (or `(B, D)`, one token each) -> float `(batch_size, L, D)`."""
    if isinstance(encoding, np.ndarray):
        encoding = torch.from_numpy(encoding)
    if not isinstance(encoding, torch.Tensor):
        raise ShapeError(f"{name} must be a tensor (B, L, {dim}), got {type(encoding).__name__}")
    x = encoding.float()
    if x.ndim == 2:
        x = x[:, None] if x.shape[0] == batch_size and batch_size > 1 else x[None]
    if x.ndim != 3 or x.shape[-1] != dim:
        raise ShapeError(f"{name} must be (B, L, {dim}) for this UNet's cross_attention_dim={dim}, "
                         f"got {tuple(encoding.shape)}")
    if not torch.isfinite(x).all():
        raise ShapeError(f"{name} has NaN/Inf values")
    if x.shape[0] == 1 and batch_size > 1:
        x = x.expand(batch_size, -1, -1)
    if x.shape[0] != batch_size:
        raise ShapeError(f"{name} has batch {x.shape[0]} but batch_size is {batch_size}")
    return x


def infer_batch(batch_size: int, known, noise, class_labels, encoding) -> int:
    """batch_size, or (when it is 1) the batch of whichever input carries several items."""
    sizes = set()
    if known is not None:
        sizes.add(known.shape[0])
    if isinstance(noise, torch.Tensor) and noise.ndim == 4:
        sizes.add(noise.shape[0])
    if isinstance(class_labels, (list, tuple, np.ndarray)) or (isinstance(class_labels, torch.Tensor)
                                                               and class_labels.ndim == 1):
        sizes.add(len(class_labels))
    if isinstance(encoding, (torch.Tensor, np.ndarray)) and encoding.ndim == 3:
        sizes.add(encoding.shape[0])
    sizes.discard(1)
    if batch_size != 1 or not sizes:
        return batch_size
    if len(sizes) > 1:
        raise ShapeError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()
