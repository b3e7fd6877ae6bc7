"""Streaming data: WebDataset tar shards and Hugging Face datasets in streaming mode.

    write_shards("corpus", "shards", shard_size=1000)              # shards/train-000000.tar ... + shards.json
    stream = open_stream("shards", split="train", sample_rate=16000, seconds=4.0)
    stream = open_stream("shards/train-{000000..000009}.tar", ...)  # brace patterns; http(s)://, pipe: URLs
    stream = open_stream("hf://datasets/OWNER/NAME", split="train", ...)   # datasets' streaming mode

A shard sample is one clip: `KEY.flac` (or the clip's own format: .wav, .ogg, .mp3), `KEY.json`
(caption, tags, split, path, sample_rate, seconds) and optionally `KEY.codes.npy` (int16/int32 `(N, Q)` codes of
a codec, written with `codec=`) and `KEY.mulan.npy` (a MuLaN audio latent). `shards.json` beside the shards
lists them per split with their clip counts, the tag values seen, and the codec fingerprint of the codes.

Streams (`ShardStream`, `HFStream`) are `torch.utils.data.IterableDataset`s whose items look like
`CaptionedAudioDataset` items (audio, mask, sample_rate, caption, tags, path, index; + codes / mulan).
Splitting: WebDataset's `split_by_node` gives each process (rank) every W-th shard and `split_by_worker`
each DataLoader worker every n-th of those; `datasets.distributed.split_dataset_by_node` splits an HF stream
over rank x worker. Each epoch reshuffles the shard order (and a seeded shuffle buffer) from (seed, epoch).
Resume: the Trainer calls `skip_batches(n, batch_size)`; every worker then skips the samples it had
produced for the first n batches of its process (DataLoader takes batches from its workers in turn), before
decoding them. With the same number of processes and workers the resumed stream is exactly the rest of the
interrupted one; with another layout the same number of global batches is skipped from the new split.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import logging
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..audio.io import check_sample_rate, load
from ..errors import AudioError, ConfigError, DataError
from .dataset import CROPS, window
from .manifest import SPLITS, read_manifest

log = logging.getLogger(__name__)

INDEX_NAME = "shards.json"
AUDIO_EXTENSIONS = ("flac", "wav", "ogg", "mp3", "opus")
HF_PREFIX = "hf://datasets/"


# -- what a --data string is ------------------------------------------------------------------------------------
def is_stream(data: str | os.PathLike) -> bool:
    """True when `data` names WebDataset shards (a .tar path/URL/brace pattern, a list of them, or a folder with
    shards.json) or an HF dataset to stream (`hf://datasets/NAME`), rather than a manifest folder."""
    text = str(data)
    if text.startswith(HF_PREFIX):
        return True
    if ".tar" in text and (text.endswith((".tar", "}")) or "{" in text or "://" in text or text.startswith("pipe:")):
        return True
    path = Path(text)
    return path.is_dir() and (path / INDEX_NAME).is_file()


def _expand(urls: str | Sequence[str]) -> list[str]:
    import braceexpand

    items = [urls] if isinstance(urls, str) else list(urls)
    out: list[str] = []
    for item in items:
        for part in str(item).split("::"):  # webdataset's separator for several patterns
            out.extend(braceexpand.braceexpand(part))
    return out


def read_index(folder: str | os.PathLike) -> dict[str, Any]:
    """The shards.json of a shard folder (local), or {} when there is none."""
    file = Path(folder) / INDEX_NAME
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{str(file)!r} is not valid JSON: {exc}") from exc


def resolve_shards(data: str | os.PathLike | Sequence[str], split: str | None = "train") -> tuple[list[str], dict]:
    """-> (shard URLs/paths, index or {}). A folder gives its shards of `split` (from shards.json)."""
    if not isinstance(data, (str, os.PathLike)):
        urls = _expand([str(u) for u in data])
        return urls, {}
    text = str(data)
    path = Path(text)
    if path.is_dir():
        index = read_index(path)
        if not index:
            raise DataError(f"{text!r} has no {INDEX_NAME}; write shards with `soundweave data shard MANIFEST "
                            f"--out {text}` or pass the .tar files (a brace pattern like "
                            f"'{text}/train-{{000000..000009}}.tar')")
        splits = index.get("splits", {})
        if split is not None and split not in splits:
            raise DataError(f"the shards in {text!r} have splits {sorted(splits)}, not {split!r}")
        names = [s["name"] for sp in ([split] if split else sorted(splits)) for s in splits[sp]["shards"]]
        return [str(path / n) for n in names], {**index, "split": splits.get(split, {})}
    urls = _expand(text)
    local = [u for u in urls if "://" not in u and not u.startswith("pipe:")]
    missing = [u for u in local if not Path(u).is_file()]
    if missing:
        raise DataError(f"shard file {missing[0]!r} does not exist ({len(missing)} of {len(urls)} missing)")
    index = read_index(Path(local[0]).parent) if local else {}
    if index and split is not None:
        index = {**index, "split": index.get("splits", {}).get(split, {})}
    return urls, index


# -- writing -----------------------------------------------------------------------------------------------------------
def _parse_size(shard_size: int | str) -> tuple[int, float]:
    """1000 -> (1000 clips, no byte limit); '256MB' -> (no clip limit, 256e6 bytes)."""
    if isinstance(shard_size, int):
        count, size = shard_size, 3e9
    else:
        text = str(shard_size).strip().upper()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(KB|MB|GB|K|M|G|B)?", text)
        if not match:
            raise ConfigError(f"shard size must be a clip count (1000) or a size (256MB, 1GB), got {shard_size!r}")
        number, unit = float(match.group(1)), match.group(2)
        if unit is None:
            count, size = int(number), 3e9
        else:
            factor = {"B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9}[unit]
            count, size = 10**9, number * factor
    if count < 1 or size < 1024:
        raise ConfigError(f"shard size must be at least 1 clip or 1KB, got {shard_size!r}")
    return count, size


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def write_shards(manifest: str | os.PathLike, out: str | os.PathLike, shard_size: int | str = 1000, *,
                 splits: Sequence[str] | None = None, codec=None, mulan=None, overwrite: bool = False,
                 progress: bool = False) -> dict[str, Any]:
    """Write the clips of a manifest folder as WebDataset shards `OUT/<split>-%06d.tar` plus OUT/shards.json.

    shard_size: clips per shard (int) or a byte budget ('256MB'). Audio bytes are stored as they are on disk
    (no re-encoding). codec: a codec (or folder/hub id for `load_codec`) whose codes of each clip are stored as
    `codes.npy`; mulan: a MuLaN (or folder) whose audio latent of each clip is stored as `mulan.npy`.
    Returns the index written to shards.json.
    """
    import webdataset as wds

    manifest = Path(manifest)
    out = Path(out)
    records = read_manifest(manifest)
    if not records:
        raise DataError(f"the manifest in {str(manifest)!r} lists no clips")
    if out.exists() and any(out.glob("*.tar")) and not overwrite:
        raise DataError(f"{str(out)!r} already holds shards; pass overwrite=True (--overwrite) to replace them")
    count, size = _parse_size(shard_size)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.tar"):
        old.unlink()
    if codec is not None and not isinstance(codec, torch.nn.Module):
        from ..models.codecs import load_codec

        codec = load_codec(codec)
    if mulan is not None and not isinstance(mulan, torch.nn.Module):
        from ..models.mulan import MuLaN

        mulan = MuLaN.from_pretrained(mulan, device="cpu")
    index: dict[str, Any] = {"format": "soundweave-shards-1", "manifest": str(manifest.resolve()), "splits": {}}
    if codec is not None:
        from ..training.soundstorm import codec_fingerprint

        codec.eval()
        index["codec"] = {"fingerprint": codec_fingerprint(codec), "sample_rate": codec.sample_rate,
                          "num_quantizers": codec.num_quantizers, "codebook_size": codec.codebook_size}
    if mulan is not None:
        mulan.eval()
        index["mulan"] = {"dim_latent": mulan.dim_latent, "sample_rate": mulan.sample_rate}
    wanted = list(splits) if splits else [s for s in SPLITS if any(r.split == s for r in records)]
    bar = task = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("writing shards", total=sum(r.split in wanted for r in records))
    try:
        for split in wanted:
            chosen = [r for r in records if r.split == split]
            if not chosen:
                raise DataError(f"the manifest in {str(manifest)!r} has no clips in split {split!r}")
            tags: dict[str, set] = {}
            written: list[dict[str, Any]] = []
            current = {"n": 0}

            def opened(name: str, _written=written, _current=current):
                _current["n"] = 0
                _written.append({"name": os.path.basename(name), "clips": 0})

            with wds.ShardWriter(str(out / f"{split}-%06d.tar"), maxcount=count, maxsize=size, verbose=0,
                                 post=None) as sink:
                for number, record in enumerate(chosen):
                    file = manifest / record.path
                    try:
                        raw = file.read_bytes()
                    except OSError as exc:
                        raise DataError(f"cannot read clip {str(file)!r}: {exc}") from exc
                    ext = file.suffix.lower().lstrip(".") or "wav"
                    if ext not in AUDIO_EXTENSIONS:
                        raise DataError(f"clip {str(file)!r}: shards store {AUDIO_EXTENSIONS} audio, not .{ext}")
                    meta = {"caption": record.caption, "tags": record.tags, "split": record.split,
                            "path": record.path}
                    sample = {"__key__": f"{split}-{number:08d}", ext: raw}
                    if codec is not None or mulan is not None:
                        audio, sr = load(raw, max_seconds=None)
                        meta["seconds"] = audio.shape[-1] / sr
                        with torch.no_grad():
                            if codec is not None:
                                from ..audio.io import resample

                                codes = codec.encode(resample(audio, sr, codec.sample_rate)[None])[0].cpu().numpy()
                                dtype = np.int16 if codec.codebook_size <= 32767 else np.int32
                                sample["codes.npy"] = _npy(codes.astype(dtype))
                            if mulan is not None:
                                latent = mulan.get_audio_latents(audio[None], sample_rate=sr)[0].float().numpy()
                                sample["mulan.npy"] = _npy(latent)
                    sample["json"] = json.dumps(meta, ensure_ascii=False).encode()
                    before = sink.shard
                    sink.write(sample)
                    if sink.shard != before or not written:
                        opened(sink.fname)
                    written[-1]["clips"] += 1
                    for key, value in record.tags.items():
                        if isinstance(value, (str, int, float, bool)):
                            tags.setdefault(key, set()).add(str(value))
                    if bar is not None:
                        bar.update(task, advance=1)
            index["splits"][split] = {"clips": len(chosen), "shards": written,
                                      "tags": {k: sorted(v) for k, v in sorted(tags.items()) if len(v) <= 1000}}
    finally:
        if bar is not None:
            bar.stop()
    (out / INDEX_NAME).write_text(json.dumps(index, indent=2))
    return index


# -- reading -----------------------------------------------------------------------------------------------------------
def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class _Stream(IterableDataset):
    """Epochs, resume and item building shared by the shard and HF streams."""

    def __init__(self, sample_rate: int | None, seconds: float | None, crop: str, seed: int,
                 shuffle_buffer: int, where: dict[str, str] | Callable | None, split_nodes: bool = True):
        if crop not in CROPS:
            raise DataError(f"crop must be one of {CROPS}, got {crop!r}")
        if seconds is not None and sample_rate is None:
            raise DataError("a fixed window (seconds=...) needs sample_rate=...")
        if seconds is not None and seconds <= 0:
            raise DataError(f"seconds must be positive, got {seconds}")
        self.sample_rate = check_sample_rate(sample_rate) if sample_rate is not None else None
        self.seconds, self.crop, self.seed, self.shuffle_buffer = seconds, crop, seed, shuffle_buffer
        self.where = where
        self.split_nodes = split_nodes  # False: every process reads the whole stream (evaluation, vocabularies)
        self.epoch = 0
        self.skip = (0, 1)  # (batches already done by this process in this epoch, per-process batch size)

    @property
    def num_samples(self) -> int | None:
        return None if self.seconds is None else int(round(self.seconds * self.sample_rate))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip_batches(self, batches: int, batch_size: int) -> None:
        """Resume: leave out what this process's first `batches` batches (of `batch_size`) of the epoch held."""
        self.skip = (int(batches), int(batch_size))

    def _role(self) -> tuple[int, int, int]:
        """(the worker this one stands in for, workers, samples to skip). DataLoader takes batches from its workers
        in turn, starting with worker 0; batch n of the epoch came from worker n % workers, so after n batches
        worker w continues the part of the stream worker (w + n) % workers had, past that worker's batches."""
        batches, size = self.skip
        worker, workers = _worker()
        role = (worker + batches) % workers
        return role, workers, len(range(role, batches, workers)) * size

    def _keep(self, meta: dict[str, Any]) -> bool:
        if self.where is None:
            return True
        if callable(self.where):
            return bool(self.where(meta))
        return all(str(meta.get("tags", {}).get(k)) == str(v) for k, v in self.where.items())

    def _item(self, audio_source, meta: dict[str, Any], key: str, number: int, extra: dict[str, Any]):
        try:
            audio, sr = load(audio_source, sr=self.sample_rate, max_seconds=None)
        except AudioError as exc:
            log.warning("skipping %s: %s", key, exc)
            return None
        if self.num_samples is not None:
            audio, mask = window(audio, self.num_samples, self.crop)
        else:
            mask = torch.ones(audio.shape[-1], dtype=torch.bool)
        return {"audio": audio, "mask": mask, "sample_rate": sr, "caption": str(meta.get("caption", "")),
                "tags": dict(meta.get("tags") or {}), "path": str(meta.get("path", key)), "index": number, **extra}


class ShardStream(_Stream):
    """Clips from WebDataset tar shards (see the module docstring). `urls`: a folder with shards.json, a
    .tar path or URL, a brace pattern, or a list of them."""

    def __init__(self, urls: str | os.PathLike | Sequence[str], split: str | None = "train",
                 sample_rate: int | None = None, seconds: float | None = None, crop: str = "random",
                 seed: int = 0, shuffle: bool = True, shuffle_buffer: int = 100, decode_audio: bool = True,
                 where: dict[str, str] | Callable | None = None, split_nodes: bool = True):
        super().__init__(sample_rate, seconds, crop, seed, shuffle_buffer if shuffle else 0, where, split_nodes)
        self.urls, self.index = resolve_shards(urls, split)
        if not self.urls:
            raise DataError(f"no shards in {str(urls)!r}")
        self.shuffle, self.decode_audio, self.split = shuffle, decode_audio, split

    def __len__(self) -> int:  # known when shards.json was found; an estimate source for progress only
        clips = self.index.get("split", {}).get("clips")
        if clips is None:
            raise TypeError("this shard stream has no shards.json, so its length is unknown")
        return int(clips)

    @property
    def tag_values(self) -> dict[str, list[str]]:
        return dict(self.index.get("split", {}).get("tags", {}))

    def shard_order(self, epoch: int) -> list[str]:
        urls = list(self.urls)
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(urls)
        return urls

    def _pipeline(self, epoch: int, role: int, workers: int):
        import webdataset as wds

        rank, world = _rank_world() if self.split_nodes else (0, 1)
        worker = role

        def split_by_role(src):  # wds.split_by_worker, with the worker's role after a resume (see _role)
            yield from itertools.islice(src, role, None, workers)

        stages = [wds.SimpleShardList(self.shard_order(epoch)), *([wds.split_by_node] if self.split_nodes else []),
                  split_by_role,
                  wds.tarfile_to_samples(handler=wds.reraise_exception)]
        if self.shuffle_buffer > 1:
            rng = random.Random(hash((self.seed, epoch, rank, worker)) & 0xFFFFFFFF)
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng))
        return wds.DataPipeline(*stages)

    def raw_samples(self, epoch: int | None = None, role: tuple[int, int] | None = None
                    ) -> Iterator[dict[str, Any]]:
        """The undecoded tar samples this process/worker reads in `epoch` (bytes per extension)."""
        worker, workers = role if role is not None else _worker()
        yield from self._pipeline(self.epoch if epoch is None else epoch, worker, workers)

    def __iter__(self):
        worker, workers, skip = self._role()
        rank, world = _rank_world() if self.split_nodes else (0, 1)
        for n, sample in enumerate(self.raw_samples(role=(worker, workers))):
            if n < skip:
                continue
            try:
                meta = json.loads(sample["json"]) if "json" in sample else {}
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DataError(f"shard sample {sample.get('__key__')!r} ({sample.get('__url__')}): bad json: {exc}") \
                    from exc
            if not self._keep(meta):
                continue
            ext = next((e for e in AUDIO_EXTENSIONS if e in sample), None)
            extra: dict[str, Any] = {}
            for name in ("codes", "mulan"):
                if f"{name}.npy" in sample:
                    array = np.load(io.BytesIO(sample[f"{name}.npy"]), allow_pickle=False)
                    extra[name] = torch.from_numpy(array.astype(np.int64 if name == "codes" else np.float32))
            number = (n * world + rank) * workers + worker
            if not self.decode_audio:
                yield {"caption": str(meta.get("caption", "")), "tags": dict(meta.get("tags") or {}),
                       "path": str(meta.get("path", sample["__key__"])), "index": number, **extra}
                continue
            if ext is None:
                found = sorted(k for k in sample if k[0] != "_")
                raise DataError(f"shard sample {sample['__key__']!r} ({sample.get('__url__')}) has no audio "
                                f"({'/'.join(AUDIO_EXTENSIONS)}) entry; it has {found}")
            item = self._item(sample[ext], meta, sample["__key__"], number, extra)
            if item is not None:
                yield item


class HFStream(_Stream):
    """Clips from a Hugging Face dataset in streaming mode (`datasets.load_dataset(..., streaming=True)`), or an
    `IterableDataset` given as is. Split over rank x DataLoader worker with `split_dataset_by_node`."""

    def __init__(self, name_or_dataset, split: str = "train", sample_rate: int | None = None,
                 seconds: float | None = None, crop: str = "random", seed: int = 0, shuffle: bool = True,
                 shuffle_buffer: int = 100, audio_column: str = "audio", caption_column: str | None = "caption",
                 tag_columns: Sequence[str] = (), where: dict[str, str] | Callable | None = None,
                 split_nodes: bool = True, **load_kwargs):
        super().__init__(sample_rate, seconds, crop, seed, shuffle_buffer if shuffle else 0, where, split_nodes)
        import datasets

        if isinstance(name_or_dataset, str):
            name = name_or_dataset[len(HF_PREFIX):] if name_or_dataset.startswith(HF_PREFIX) else name_or_dataset
            ds, errors = None, []
            for wanted in ([split, "validation"] if split == "valid" else [split]):  # the hub calls it validation
                try:
                    ds = datasets.load_dataset(name, split=wanted, streaming=True, **load_kwargs)
                    break
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
            if ds is None:
                raise DataError(f"could not stream Hugging Face dataset {name!r} (split {split!r}): {errors[-1]}")
        else:
            ds = name_or_dataset
        if not isinstance(ds, datasets.IterableDataset):
            raise DataError(f"expected a streaming datasets.IterableDataset, got {type(ds).__name__}")
        columns = ds.column_names
        if columns is not None:
            for column in [audio_column, caption_column, *tag_columns]:
                if column is not None and column not in columns:
                    raise DataError(f"the dataset has columns {columns}, no column {column!r}")
        if ds.features is not None and isinstance(ds.features.get(audio_column), datasets.Audio):
            ds = ds.cast_column(audio_column, datasets.Audio(decode=False))
        self.ds, self.audio_column, self.caption_column = ds, audio_column, caption_column
        self.tag_columns = tuple(tag_columns)

    def __iter__(self):
        from datasets.distributed import split_dataset_by_node

        rank, world = _rank_world() if self.split_nodes else (0, 1)
        worker, workers, skip = self._role()
        ds = self.ds
        if self.shuffle_buffer > 1:
            ds = ds.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer)
            ds.set_epoch(self.epoch)
        slot, slots = rank * workers + worker, world * workers
        if slots > 1:
            ds = split_dataset_by_node(ds, rank=slot, world_size=slots)
        # skipped here, after the node split (datasets' own .skip would count rows before it); no audio decoded
        for n, row in enumerate(itertools.islice(ds, skip, None)):
            caption = str(row[self.caption_column]) if self.caption_column else ", ".join(
                str(row[c]) for c in self.tag_columns)
            meta = {"caption": caption, "tags": {c: row[c] for c in self.tag_columns}}
            if not self._keep(meta):
                continue
            cell = row[self.audio_column]
            source = (cell.get("bytes") or cell.get("path")) if isinstance(cell, dict) else cell
            if source is None:
                raise DataError(f"row {n} of the stream has no audio bytes or path")
            item = self._item(source, meta, f"row-{n}", (skip + n) * slots + slot, {})
            if item is not None:
                yield item


def open_stream(data: str | os.PathLike | Sequence[str], split: str | None = "train", **kwargs) -> _Stream:
    """A ShardStream for shards, an HFStream for `hf://datasets/NAME` (see the module docstring)."""
    if isinstance(data, str) and data.startswith(HF_PREFIX):
        return HFStream(data, split=split or "train", **kwargs)
    return ShardStream(data, split=split, **kwargs)


def stream_captions(stream: ShardStream, limit: int = 5000) -> list[str]:
    """Captions of the first `limit` clips of a shard stream (json only, no audio decoded), e.g. to train a
    caption tokenizer: the same on every process (read without the split across processes)."""
    out = []
    whole = copy.copy(stream)
    whole.split_nodes = False
    for sample in whole.raw_samples(0, role=(0, 1)):
        if "json" in sample:
            out.append(str(json.loads(sample["json"]).get("caption", "")))
        if len(out) >= limit:
            break
    return out


__all__ = ["HFStream", "INDEX_NAME", "ShardStream", "is_stream", "open_stream", "read_index", "resolve_shards",
           "stream_captions", "write_shards"]
