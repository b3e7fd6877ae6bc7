"""The captioned-audio manifest: a folder of audio files plus `captions.jsonl`.

Each line of `captions.jsonl` is `{"path": ..., "caption": ..., "tags": {...}, "split": ...}` with `path`
relative to the folder. `split` is one of train / valid / test. A path must stay inside the folder: absolute
paths and paths that climb out of it with `..` are rejected (a manifest from elsewhere cannot make soundweave
read, copy or serve other files).
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError

MANIFEST_NAME = "captions.jsonl"
SPLITS = ("train", "valid", "test")


@dataclass
class CaptionRecord:
    path: str
    caption: str
    tags: dict[str, Any] = field(default_factory=dict)
    split: str = "train"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def check_relative_path(path: object, where: str) -> str:
    """`path` as a relative path inside its folder, else DataError naming `where` (file:line)."""
    if not isinstance(path, str) or not path.strip():
        raise DataError(f"{where}: 'path' must be a non-empty string relative to the folder, got {path!r}")
    if "\0" in path:
        raise DataError(f"{where}: 'path' {path!r} contains a NUL character")
    normal = posixpath.normpath(path.replace("\\", "/"))
    if (os.path.isabs(path) or posixpath.isabs(normal) or normal == ".." or normal.startswith("../")
            or (len(path) > 1 and path[1] == ":")):
        raise DataError(f"{where}: 'path' {path!r} points outside the data folder; manifest paths must be "
                        "relative to the folder holding captions.jsonl, without '..' climbing out of it")
    return path


def manifest_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / MANIFEST_NAME


def read_manifest(folder: str | os.PathLike, split: str | None = None) -> list[CaptionRecord]:
    """All records (or those of one split) of the manifest in `folder`. Clear errors for bad lines."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {str(folder)!r} does not exist")
    file = manifest_path(folder)
    if not file.is_file():
        raise DataError(f"{str(folder)!r} has no {MANIFEST_NAME}; make one with `soundweave data synth --out {folder}` "
                        "or write one line per clip: {\"path\", \"caption\", \"tags\", \"split\"}")
    if split is not None and split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = file.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{str(file)}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the manifest "
                        "as UTF-8") from exc
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError(f"a JSON {type(row).__name__}, not an object")
            tags = row.get("tags") or {}
            if not isinstance(tags, dict):
                raise TypeError(f"'tags' is a {type(tags).__name__}, not an object")
            record = CaptionRecord(path=row["path"], caption=str(row.get("caption", "")),
                                   tags=dict(tags), split=str(row.get("split", "train")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
            raise DataError(
                f"{str(file)}:{number}: not a manifest record ({exc}); expected JSON with a 'path'") from exc
        check_relative_path(record.path, f"{str(file)}:{number}")
        if split is None or record.split == split:
            records.append(record)
    return records


def write_manifest(folder: str | os.PathLike, records: list[CaptionRecord]) -> Path:
    file = manifest_path(folder)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, file)
    return file


def parse_filter(text: str | None) -> dict[str, str]:
    """'instrument=piano,mode=minor' -> {'instrument': 'piano', 'mode': 'minor'}."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise DataError(f"filter {text!r}: each part must look like tag=value (e.g. instrument=piano)")
        key, value = part.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def matches(record: CaptionRecord, wanted: dict[str, str]) -> bool:
    return all(str(record.tags.get(k)) == v for k, v in wanted.items())
