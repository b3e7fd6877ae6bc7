"""Data for mel-diffusion training: random spectrogram slices of clips (`MelSliceDataset`, `collate_images`),
the sources they come from (`open_source`: a manifest folder or a Hugging Face audio dataset, filtered on tags
with `normalize_where`) and the MuLaN audio encoder whose latents condition a UNet (`MuLaNEncoder`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..audio.mel_image import MelImageCodec
from ..errors import DataError


class MelSliceDataset(Dataset):
    """Random spectrogram slices of the clips of `source` (items with "audio" at the codec's rate, "tags").

    Every `__getitem__` draws a new random offset, so each epoch sees different slices. Slices that are
    silent (all pixels 255 after normalisation, or peak below `silence_peak`) are skipped. `length` may be
    larger than the number of clips (items wrap around). Items: {"image": uint8 (H, W), "label": int}
    (+ "audio": the slice's samples with `return_audio`, for an audio encoder such as MuLaN).
    """

    def __init__(self, source: Dataset, mel: MelImageCodec, *, tags: list[dict] | None = None,
                 class_tag: str | None = None, class_names: list[str] | None = None, null_class: int | None = None,
                 length: int | None = None, width: int | None = None, silence_peak: float = 1e-4,
                 tries: int = 8, cache_samples: int = 150_000_000, return_audio: bool = False):
        if len(source) == 0:
            raise DataError("no clips to train on (the dataset or filter matched nothing)")
        self.source, self.mel = source, mel
        self.width = width or mel.x_res
        self.tags = tags
        self.class_tag, self.class_names, self.null_class = class_tag, class_names, null_class
        self.length = max(len(source), length or 0)
        self.silence_peak, self.tries, self.return_audio = silence_peak, tries, return_audio
        self.cache: dict[int, torch.Tensor] = {}
        self.cache_left = cache_samples

    @property
    def slice_size(self) -> int:
        return self.width * self.mel.hop_length - 1

    def __len__(self) -> int:
        return self.length

    def _audio(self, index: int) -> torch.Tensor:
        if index in self.cache:
            return self.cache[index]
        item = self.source[index]
        audio = item["audio"]
        if "mask" in item and not bool(item["mask"].all()):
            audio = audio[item["mask"]]
        if audio.shape[-1] <= self.cache_left:
            self.cache[index] = audio
            self.cache_left -= audio.shape[-1]
        return audio

    def label_of(self, index: int) -> int:
        if self.class_tag is None:
            return -1
        value = (self.tags[index] if self.tags is not None else self.source[index]["tags"]).get(self.class_tag)
        if value is None or str(value) not in self.class_names:
            return self.null_class if self.null_class is not None else -1
        return self.class_names.index(str(value))

    def random_slice(self, audio: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        size = self.slice_size
        if audio.shape[-1] < size:
            audio = torch.nn.functional.pad(audio, (0, size - audio.shape[-1]))
        start = int(torch.randint(0, audio.shape[-1] - size + 1, (1,), generator=generator))
        return audio[start : start + size]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.source)
        for attempt in range(n):
            j = (index + attempt) % n
            audio = self._audio(j)
            for _ in range(self.tries):
                piece = self.random_slice(audio)
                if float(piece.abs().max()) < self.silence_peak:
                    continue
                image = self.mel.audio_to_images(piece)
                if MelImageCodec.is_silent_image(image):
                    continue
                item = {"image": image, "label": self.label_of(j % n)}
                if self.return_audio:
                    item["audio"] = piece
                return item
        raise DataError("every slice of every clip is silent; nothing to train on")


def collate_images(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    batch = {"images": torch.stack([item["image"] for item in items]),
             "labels": torch.tensor([item["label"] for item in items], dtype=torch.long)}
    if "audio" in items[0]:
        batch["audio"] = torch.stack([item["audio"] for item in items])
    return batch


class MuLaNEncoder:
    """Audio slices `(B, T)` -> MuLaN audio latents as one cross-attention token `(B, 1, dim_latent)`.
    Text prompts map to the same space at sampling time (`text(...)`), which is what makes a model
    trained on audio alone answer to captions."""

    def __init__(self, mulan, sample_rate: int):
        self.mulan, self.sample_rate = mulan.eval().requires_grad_(False), sample_rate

    @property
    def dim(self) -> int:
        return int(self.mulan.dim_latent)

    @torch.no_grad()
    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        return self.mulan.get_audio_latents(audio.to(self.mulan.device), sample_rate=self.sample_rate)[:, None].float()

    @torch.no_grad()
    def text(self, texts: list[str]) -> torch.Tensor:
        return self.mulan.get_text_latents(raw_texts=list(texts))[:, None].float()


def load_mulan_encoder(path_or_id: str, sample_rate: int) -> MuLaNEncoder:
    from ..models.mulan import MuLaN

    return MuLaNEncoder(MuLaN.from_pretrained(path_or_id, device="cpu"), sample_rate)


def normalize_where(where: dict | None) -> dict[str, list[str]]:
    """{"instrument": "piano"} / {"instrument": "bass|flute"} / {"instrument": ["bass", "flute"]}
    -> {"instrument": [allowed values]} (a clip matches when every tag has one of its allowed values)."""
    out: dict[str, list[str]] = {}
    for key, value in (where or {}).items():
        values = value.split("|") if isinstance(value, str) else [str(v) for v in value]
        values = [v.strip() for v in values if v.strip()]
        if not values:
            raise DataError(f"filter {key}= has no value")
        out[str(key)] = values
    return out


def open_source(data: str | os.PathLike, sample_rate: int, where: dict[str, str] | None, split: str,
                class_tag: str | None, audio_column: str = "audio") -> tuple[Dataset, list[dict]]:
    """A manifest folder (captions.jsonl) or a Hugging Face dataset -> (whole clips at `sample_rate`, tags)."""
    from ..data import CaptionedAudioDataset, HFAudioDataset

    path = Path(data)
    wanted = normalize_where(where)
    if (path / "captions.jsonl").is_file():
        def keep_record(record) -> bool:
            return all(str(record.tags.get(k)) in values for k, values in wanted.items())

        source = CaptionedAudioDataset(path, split=split, sample_rate=sample_rate, seconds=None,
                                       where=keep_record if wanted else None)
        return source, [r.tags for r in source.records]
    if path.is_dir() and not any(path.iterdir()):
        raise DataError(f"data folder {str(path)!r} is empty")
    if not path.exists() and (str(data).startswith((".", "/", "~")) or str(data).count("/") > 1):
        raise DataError(f"data folder {str(path)!r} does not exist")
    columns = tuple(dict.fromkeys([*wanted, *([class_tag] if class_tag else [])]))
    source = HFAudioDataset(str(data), split=split, audio_column=audio_column, caption_column=None,
                            tag_columns=columns, sample_rate=sample_rate)
    if wanted:
        def keep(*values) -> bool:
            return all(str(v) in wanted[k] for k, v in zip(wanted, values, strict=True))

        source.ds = source.ds.filter(keep, input_columns=list(wanted))
        if len(source.ds) == 0:
            raise DataError(f"no rows of {str(data)!r} match the filter {wanted}")
    tags = [{c: row for c, row in zip(columns, values, strict=True)}
            for values in zip(*(source.ds[c] for c in columns), strict=True)] if columns else [{}] * len(source)
    return source, tags


__all__ = ["MelSliceDataset", "MuLaNEncoder", "collate_images", "load_mulan_encoder", "normalize_where",
           "open_source"]
