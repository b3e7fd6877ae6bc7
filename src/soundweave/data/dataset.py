"""Datasets over captioned audio, with fixed-length windows, resampling and padding masks.

Items are dicts: `audio` float32 `(T,)`, `mask` bool `(T,)` (True = real sample, False = padding),
`caption` str, `tags` dict, `path` str, `index` int. `collate_audio` stacks them into a batch dict with
`audio (B, T)`, `mask (B, T)`, `captions`, `tags`, `paths`, `indices`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..audio.io import check_sample_rate, info, load
from ..errors import AudioError, DataError
from .manifest import CaptionRecord, matches, read_manifest

log = logging.getLogger(__name__)
CROPS = ("random", "start", "center")


@dataclass
class SkippedFile:
    path: str
    reason: str


def window(audio: torch.Tensor, length: int, crop: str, generator: torch.Generator | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut or pad `(T,)` audio to `length`; returns (audio, mask). `crop` picks where a long clip is cut."""
    n = audio.shape[-1]
    if n >= length:
        if crop == "random" and n > length:
            start = int(torch.randint(0, n - length + 1, (1,), generator=generator))
        elif crop == "center":
            start = (n - length) // 2
        else:
            start = 0
        return audio[start : start + length], torch.ones(length, dtype=torch.bool)
    mask = torch.zeros(length, dtype=torch.bool)
    mask[:n] = True
    return torch.nn.functional.pad(audio, (0, length - n)), mask


class CaptionedAudioDataset(Dataset):
    """Clips listed in a manifest folder's `captions.jsonl`.

    sample_rate: resample every clip to this rate (None keeps each file's own; then `seconds` needs it).
    seconds: fixed window length (random crop in training, `crop='start'|'center'` for evaluation);
             None returns whole clips (collate pads them and the mask marks the padding).
    where: keep records whose tags match, e.g. {"instrument": "piano"}; or a callable(record) -> bool.
    on_error: 'skip' reports unreadable files (see `.skipped`) and leaves them out; 'raise' stops.
    """

    def __init__(self, folder: str | os.PathLike, split: str | None = "train", sample_rate: int | None = None,
                 seconds: float | None = None, crop: str = "random",
                 where: dict[str, str] | Callable[[CaptionRecord], bool] | None = None, on_error: str = "skip",
                 max_seconds: float | None = 600.0):
        if crop not in CROPS:
            raise DataError(f"crop must be one of {CROPS}, got {crop!r}")
        if on_error not in ("skip", "raise"):
            raise DataError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if seconds is not None and seconds <= 0:
            raise DataError(f"seconds must be positive, got {seconds}")
        if seconds is not None and sample_rate is None:
            raise DataError("a fixed window (seconds=...) needs sample_rate=... so every window has the same length")
        self.folder = Path(folder)
        self.sample_rate = check_sample_rate(sample_rate) if sample_rate is not None else None
        self.seconds, self.crop, self.on_error, self.max_seconds = seconds, crop, on_error, max_seconds
        records = read_manifest(self.folder, split)
        if isinstance(where, dict):
            wanted = where
            records = [r for r in records if matches(r, wanted)]
        elif callable(where):
            records = [r for r in records if where(r)]
        self.skipped: list[SkippedFile] = []
        self.records: list[CaptionRecord] = []
        for record in records:
            reason = self._check(record)
            if reason is None:
                self.records.append(record)
            elif on_error == "raise":
                raise DataError(f"unreadable clip {record.path!r} in {str(self.folder)!r}: {reason}")
            else:
                self.skipped.append(SkippedFile(record.path, reason))
                log.warning("skipping %s: %s", record.path, reason)
        if not self.records:
            what = f"split {split!r}" if split else "the manifest"
            raise DataError(f"no usable clips in {what} of {str(self.folder)!r}"
                            + (f" ({len(self.skipped)} unreadable)" if self.skipped else ""))

    def _check(self, record: CaptionRecord) -> str | None:
        try:
            i = info(self.folder / record.path)
        except AudioError as exc:
            return str(exc)
        if i.frames == 0:
            return "zero samples"
        if self.max_seconds is not None and i.duration > self.max_seconds and self.seconds is None:
            return f"{i.duration:.1f} s is over max_seconds={self.max_seconds}"
        return None

    @property
    def num_samples(self) -> int | None:
        return None if self.seconds is None else int(round(self.seconds * self.sample_rate))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def captions(self) -> list[str]:
        return [r.caption for r in self.records]

    def load_clip(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        return load(self.folder / record.path, sr=self.sample_rate, max_seconds=None)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        try:
            audio, sr = self.load_clip(index)
        except AudioError as exc:
            if self.on_error == "raise":
                raise DataError(f"unreadable clip {record.path!r}: {exc}") from exc
            self.skipped.append(SkippedFile(record.path, str(exc)))
            log.warning("skipping %s: %s", record.path, exc)
            return self[(index + 1) % len(self)]
        if self.num_samples is not None:
            audio, mask = window(audio, self.num_samples, self.crop)
        else:
            mask = torch.ones(audio.shape[-1], dtype=torch.bool)
        return {"audio": audio, "mask": mask, "sample_rate": sr, "caption": record.caption, "tags": record.tags,
                "path": str(self.folder / record.path), "index": index}


def collate_audio(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack items, zero-padding to the longest; `mask` marks real samples."""
    length = max(item["audio"].shape[-1] for item in items)
    audio = torch.zeros(len(items), length)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, item in enumerate(items):
        n = item["audio"].shape[-1]
        audio[i, :n] = item["audio"]
        mask[i, :n] = item["mask"]
    return {"audio": audio, "mask": mask, "sample_rate": items[0].get("sample_rate"),
            "captions": [item.get("caption", "") for item in items], "tags": [item.get("tags", {}) for item in items],
            "paths": [item.get("path", "") for item in items], "indices": [item.get("index", -1) for item in items]}
