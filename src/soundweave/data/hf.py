"""Hugging Face `datasets` audio datasets as soundweave items.

Audio is decoded by soundweave (soundfile + soxr) from the raw bytes/paths, not by `datasets`' own
decoder, so no extra audio backend is needed. Works with a folder saved by `save_to_disk`, an
`audiofolder`-style local folder (audio files + metadata.jsonl/csv with a `file_name` column: the table is
read with `datasets`, the audio by us, so no torchcodec is needed), or a hub name when online.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..audio.io import check_sample_rate, load
from ..errors import AudioError, DataError
from .dataset import window
from .manifest import check_relative_path


def _open_dataset(name_or_path: str | os.PathLike, split: str):
    """-> (dataset, folder that relative audio paths are resolved against, or None)."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise DataError("the `datasets` package is needed to read Hugging Face datasets") from exc
    path = Path(name_or_path)
    base = None
    try:
        if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
            ds = datasets.load_from_disk(str(path))
        elif path.is_dir():
            tables = [path / "metadata.jsonl", path / "metadata.csv"]
            found = [t for t in tables if t.is_file()]
            if not found:
                raise DataError(f"{str(path)!r} is neither a saved dataset (save_to_disk) nor an audio folder "
                                "with metadata.jsonl/metadata.csv")
            kind = "json" if found[0].suffix == ".jsonl" else "csv"
            ds = datasets.load_dataset(kind, data_files=str(found[0]), split="train")
            base = path
        else:
            ds = datasets.load_dataset(str(name_or_path))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"could not open Hugging Face dataset {str(name_or_path)!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"dataset {str(name_or_path)!r} has splits {sorted(ds)}, not {split!r}")
        ds = ds[split]
    return ds, base


class HFAudioDataset(Dataset):
    """Items like `CaptionedAudioDataset`'s: audio, mask, caption, tags, path, index.

    caption_column: a text column, or None to build captions from `tag_columns` ("dog bark, outdoor").
    """

    def __init__(self, name_or_path: str | os.PathLike, split: str = "train", audio_column: str = "audio",
                 caption_column: str | None = "caption", tag_columns: tuple[str, ...] = (),
                 sample_rate: int | None = None, seconds: float | None = None, crop: str = "random"):
        import datasets

        ds, self.base = _open_dataset(name_or_path, split)
        if audio_column not in ds.column_names and "file_name" in ds.column_names:
            audio_column = "file_name"  # audiofolder layout
        if audio_column not in ds.column_names:
            raise DataError(f"dataset has columns {ds.column_names}, no audio column {audio_column!r}")
        for column in [caption_column, *tag_columns]:
            if column is not None and column not in ds.column_names:
                raise DataError(f"dataset has columns {ds.column_names}, no column {column!r}")
        if isinstance(ds.features[audio_column], datasets.Audio):
            ds = ds.cast_column(audio_column, datasets.Audio(decode=False))
        if seconds is not None and sample_rate is None:
            raise DataError("a fixed window (seconds=...) needs sample_rate=...")
        self.ds, self.audio_column, self.caption_column = ds, audio_column, caption_column
        self.tag_columns = tuple(tag_columns)
        self.sample_rate = check_sample_rate(sample_rate) if sample_rate else None
        self.seconds, self.crop = seconds, crop

    def __len__(self) -> int:
        return len(self.ds)

    def _caption(self, row: dict[str, Any]) -> str:
        if self.caption_column is not None:
            return str(row[self.caption_column])
        parts = []
        for column in self.tag_columns:
            value = row[column]
            parts.extend(str(v).replace("_", " ") for v in (value if isinstance(value, list) else [value]))
        return ", ".join(parts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.ds[index]
        cell = row[self.audio_column]
        source = cell.get("bytes") or cell.get("path") if isinstance(cell, dict) else cell
        if source is None:
            raise DataError(f"row {index} has no audio bytes or path")
        if isinstance(source, str) and self.base is not None:
            source = str(self.base / check_relative_path(source, f"row {index} of {str(self.base)!r}"))
        try:
            audio, sr = load(source, sr=self.sample_rate, max_seconds=None)
        except AudioError as exc:
            raise DataError(f"row {index} of the dataset is not usable audio: {exc}") from exc
        if self.seconds is not None:
            audio, mask = window(audio, int(round(self.seconds * sr)), self.crop)
        else:
            mask = torch.ones(audio.shape[-1], dtype=torch.bool)
        tags = {c: row[c] for c in self.tag_columns}
        path = cell.get("path") if isinstance(cell, dict) else str(source)
        return {"audio": audio, "mask": mask, "sample_rate": sr, "caption": self._caption(row), "tags": tags,
                "path": path or f"row-{index}", "index": index}
