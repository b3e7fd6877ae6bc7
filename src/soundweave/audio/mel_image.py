"""`MelImageCodec`: audio <-> 8-bit grayscale mel-spectrogram images (the audio-diffusion `Mel`).

Defaults follow audio-diffusion (x_res=256, y_res=256, 22050 Hz, n_fft 2048, hop 512, top_db 80,
32 Griffin-Lim iterations). An image has `y_res` rows (mel bins, row 0 = lowest) and `x_res`
columns (frames). audio -> image: power mel, dB relative to the slice maximum floored at -top_db,
byte = (dB + top_db) * 255 / top_db (+0.5, clipped). image -> audio: the inverse dB mapping,
non-negative mel inversion, then Griffin-Lim, all in torch and batched. One slice is
`x_res * hop_length - 1` samples; an image of width W decodes to `(W - 1) * hop_length` samples.

Code written for audio-diffusion's `Mel` moves over: `load_audio(audio_file=..., raw_audio=...)`,
`get_number_of_slices()`, `get_audio_slice(i)`, `audio_slice_to_image(i)`, `image_to_audio(image)`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, ShapeError
from .griffin_lim import griffin_lim, mel_to_linear
from .io import check_audio, check_sample_rate, load
from .mel import db_to_power, mel_filterbank, power_to_db, stft

MEL_CONFIG_NAME = "mel_config.json"


@dataclass
class MelImageConfig:
    x_res: int = 256
    y_res: int = 256
    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    top_db: int = 80
    n_iter: int = 32
    momentum: float = 0.99

    def __post_init__(self):
        check_sample_rate(self.sample_rate)
        for name in ("x_res", "y_res", "n_fft", "hop_length", "n_iter"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"MelImageCodec {name} must be positive, got {getattr(self, name)}")
        if self.top_db <= 0:
            raise ConfigError(f"top_db must be positive, got {self.top_db}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")


class MelImageCodec:
    """Audio <-> spectrogram images. Stateless apart from the audio given to `load_audio`."""

    def __init__(self, x_res: int = 256, y_res: int = 256, sample_rate: int = 22050, n_fft: int = 2048,
                 hop_length: int = 512, top_db: int = 80, n_iter: int = 32, momentum: float = 0.99,
                 device: str | torch.device = "cpu"):
        self.config = MelImageConfig(x_res, y_res, sample_rate, n_fft, hop_length, top_db, n_iter, momentum)
        self.device = torch.device(device)
        self.audio: torch.Tensor | None = None
        self._build()

    def _build(self):
        c = self.config
        self.filters = mel_filterbank(c.sample_rate, c.n_fft, c.y_res).to(self.device)
        self.filters_pinv = torch.linalg.pinv(self.filters)
        self.window = torch.hann_window(c.n_fft, device=self.device)

    # -- properties in audio-diffusion's naming ----------------------------------------------------
    x_res = property(lambda self: self.config.x_res)
    y_res = property(lambda self: self.config.y_res)
    sr = property(lambda self: self.config.sample_rate)
    sample_rate = property(lambda self: self.config.sample_rate)
    n_fft = property(lambda self: self.config.n_fft)
    hop_length = property(lambda self: self.config.hop_length)
    top_db = property(lambda self: self.config.top_db)
    n_iter = property(lambda self: self.config.n_iter)

    @property
    def slice_size(self) -> int:
        return self.config.x_res * self.config.hop_length - 1

    def set_resolution(self, x_res: int, y_res: int) -> None:
        self.config = MelImageConfig(**{**asdict(self.config), "x_res": x_res, "y_res": y_res})
        self._build()

    def get_sample_rate(self) -> int:
        return self.config.sample_rate

    def seconds_per_image(self, width: int | None = None) -> float:
        return ((width or self.x_res) - 1) * self.hop_length / self.sample_rate

    def pixels_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    # -- audio-diffusion compatible stateful API ---------------------------------------------------
    def load_audio(self, audio_file: str | os.PathLike | None = None, raw_audio=None) -> None:
        """Keep audio (a file, resampled to our rate, or raw samples at our rate); pads to one slice."""
        if audio_file is not None:
            audio, _ = load(audio_file, sr=self.sample_rate)
        elif raw_audio is not None:
            audio = check_audio(torch.as_tensor(np.asarray(raw_audio, dtype=np.float32)), "raw_audio")
            if audio.ndim != 1:
                raise ShapeError(f"raw_audio must be 1-D mono samples, got shape {tuple(audio.shape)}")
        else:
            raise ShapeError("load_audio needs audio_file or raw_audio")
        if audio.shape[-1] < self.slice_size:
            audio = torch.nn.functional.pad(audio, (0, self.slice_size - audio.shape[-1]))
        self.audio = audio

    def _need_audio(self) -> torch.Tensor:
        if self.audio is None:
            raise ShapeError("no audio loaded: call load_audio(audio_file=...) or load_audio(raw_audio=...) first")
        return self.audio

    def get_number_of_slices(self) -> int:
        return self._need_audio().shape[-1] // self.slice_size

    def get_audio_slice(self, slice: int = 0) -> np.ndarray:
        n = self.get_number_of_slices()
        if not 0 <= slice < n:
            raise ShapeError(f"slice {slice} out of range: the loaded audio has {n} slice(s)")
        audio = self._need_audio()
        return audio[self.slice_size * slice : self.slice_size * (slice + 1)].numpy()

    def audio_slice_to_image(self, slice: int) -> Image.Image:
        return self.audio_to_image(self.get_audio_slice(slice))

    # -- conversions ---------------------------------------------------------------------------------
    def audio_to_power_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) -> power mel (B, y_res, T // hop + 1)."""
        spec = stft(audio.to(self.device), self.n_fft, self.hop_length, window=self.window).abs().pow(2)
        return torch.matmul(self.filters, spec)

    def audio_to_images(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Audio `(B, T)` or `(T,)` -> uint8 images `(B, y_res, T // hop + 1)` (x_res for one slice)."""
        audio = check_audio(torch.as_tensor(audio))
        squeeze = audio.ndim == 1
        x = audio[None] if squeeze else audio
        db = power_to_db(self.audio_to_power_mel(x), top_db=self.top_db)
        images = ((db + self.top_db) * 255.0 / self.top_db).clamp(0, 255).add(0.5).floor().to(torch.uint8)
        return images[0] if squeeze else images

    def audio_to_image(self, audio: torch.Tensor | np.ndarray) -> Image.Image:
        """One slice of audio (`slice_size` samples gives exactly x_res columns) -> PIL grayscale image."""
        image = self.audio_to_images(torch.as_tensor(audio).reshape(-1))
        return Image.fromarray(image.cpu().numpy(), mode="L")

    def images_to_power_mel(self, images: torch.Tensor) -> torch.Tensor:
        db = images.float() * self.top_db / 255.0 - self.top_db
        return db_to_power(db)

    def images_to_audio(self, images: torch.Tensor | np.ndarray, generator: torch.Generator | None = None,
                        n_iter: int | None = None) -> torch.Tensor:
        """uint8 (or 0..255 float) images `(B, y_res, W)` -> audio `(B, (W - 1) * hop_length)`."""
        images = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        squeeze = images.ndim == 2
        x = images[None] if squeeze else images
        if x.ndim != 3 or x.shape[-2] != self.y_res:
            raise ShapeError(f"images must be (B, {self.y_res}, W) with y_res={self.y_res} rows, got {tuple(x.shape)}")
        if x.shape[-1] < 2:
            raise ShapeError(f"images need at least 2 columns to make audio, got width {x.shape[-1]}")
        mel = self.images_to_power_mel(x.to(self.device))
        magnitude = mel_to_linear(mel, self.filters, pinv=self.filters_pinv).sqrt()
        audio = griffin_lim(magnitude, self.n_fft, self.hop_length, n_iter=n_iter or self.n_iter,
                            momentum=self.config.momentum, generator=generator)
        return audio[0] if squeeze else audio

    def image_to_audio(self, image: Image.Image | np.ndarray | torch.Tensor,
                       generator: torch.Generator | None = None) -> np.ndarray:
        """One image (PIL 'L', or a 2-D uint8 array) -> float32 numpy audio of (width - 1) * hop samples."""
        if isinstance(image, Image.Image):
            if image.mode != "L":
                image = image.convert("L")
            array = np.asarray(image, dtype=np.uint8)
        else:
            array = np.asarray(image)
        if array.ndim != 2:
            raise ShapeError(f"image must be 2-D grayscale (rows, columns), got shape {array.shape}")
        return self.images_to_audio(torch.from_numpy(array.copy()), generator=generator).cpu().numpy()

    # -- silence ------------------------------------------------------------------------------------
    @staticmethod
    def is_silent_image(image: Image.Image | np.ndarray | torch.Tensor) -> bool:
        """audio-diffusion's rule: a slice whose pixels are all 255 came from digital silence."""
        array = np.asarray(image) if not isinstance(image, torch.Tensor) else image.cpu().numpy()
        return bool((array == 255).all())

    # -- persistence (diffusers `Mel` layout: mel_config.json) ---------------------------------------
    def get_config(self) -> dict:
        return asdict(self.config)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MEL_CONFIG_NAME).write_text(json.dumps({"_class_name": "Mel", **self.get_config()}, indent=2))
        return folder

    @classmethod
    def from_config(cls, config: dict, device: str | torch.device = "cpu") -> MelImageCodec:
        known = {f.name for f in fields(MelImageConfig)}
        return cls(**{k: v for k, v in config.items() if k in known}, device=device)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, subfolder: str | None = None,
                        device: str | torch.device = "cpu") -> MelImageCodec:
        """Read `mel_config.json` (ours or diffusers'/audio-diffusion's) from a folder or its subfolder."""
        from ..errors import CheckpointError

        path = Path(folder) / (subfolder or "")
        file = path / MEL_CONFIG_NAME if path.is_dir() else path
        if not file.is_file():
            raise CheckpointError(f"no {MEL_CONFIG_NAME} in {str(path)!r}")
        return cls.from_config(json.loads(file.read_text()), device=device)

    def __repr__(self) -> str:
        return f"MelImageCodec({', '.join(f'{k}={v}' for k, v in asdict(self.config).items())})"
