"""`make_corpus`: render N captioned clips into a manifest folder (audio/*.wav + captions.jsonl).

Clip i is a pure function of (seed, i): its instrument comes from a seeded shuffle of all instruments in
blocks (so every instrument appears equally often), everything else from `default_rng([seed, i])`.
Splits are fixed by index: i % 10 == 0 -> test, == 1 -> valid, otherwise train. Rendering runs in
worker processes (one synthesizer each).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ...audio.io import check_sample_rate
from ...errors import ConfigError, DataError
from ..manifest import MANIFEST_NAME, CaptionRecord, write_manifest
from .captions import caption
from .instruments import INSTRUMENTS
from .music import compose, random_spec, to_pretty_midi
from .render import make_renderer

MAX_CLIPS = 1_000_000


@dataclass
class CorpusReport:
    folder: Path
    n: int
    seconds: float
    sample_rate: int
    seed: int
    renderer: str
    elapsed: float
    renderer_note: str | None = None
    splits: dict[str, int] = field(default_factory=dict)
    instruments: dict[str, int] = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float:
        return self.n / max(self.elapsed, 1e-9)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["folder"] = str(self.folder)
        d["clips_per_second"] = round(self.clips_per_second, 2)
        return d


def split_of(index: int) -> str:
    return "test" if index % 10 == 0 else ("valid" if index % 10 == 1 else "train")


def instrument_of(seed: int, index: int):
    block, pos = divmod(index, len(INSTRUMENTS))
    order = np.random.default_rng([seed, block, 7]).permutation(len(INSTRUMENTS))
    return INSTRUMENTS[int(order[pos])]


_WORKER: dict = {}


def _init_worker(sample_rate: int, prefer: str) -> None:
    renderer, note = make_renderer(sample_rate, prefer)
    _WORKER.update(renderer=renderer, note=note)


def _render_one(job: tuple) -> tuple[int, dict, str, str | None]:
    index, seed, seconds, folder, save_midi = job
    rng = np.random.default_rng([seed, index])
    spec = random_spec(rng, seconds, instrument_of(seed, index))
    notes = compose(rng, spec)
    text = caption(rng, spec)
    audio = _WORKER["renderer"].render(spec, notes)
    rel = f"audio/clip-{index:06d}.wav"
    sf.write(os.path.join(folder, rel), audio, _WORKER["renderer"].sample_rate, subtype="PCM_16")
    if save_midi:
        to_pretty_midi(spec, notes).write(os.path.join(folder, f"midi/clip-{index:06d}.mid"))
    record = CaptionRecord(path=rel, caption=text, tags=spec.tags(), split=split_of(index))
    return index, asdict(record), _WORKER["renderer"].name, _WORKER["note"]


def make_corpus(out_dir: str | os.PathLike, n: int = 1000, seconds: float = 4.0, sr: int = 22050, seed: int = 0, *,
                workers: int | None = None, renderer: str = "soundfont", save_midi: bool = False,
                overwrite: bool = False, progress: bool = False) -> CorpusReport:
    """Render `n` clips of `seconds` at `sr` Hz into `out_dir` and write its `captions.jsonl`."""
    if not 1 <= int(n) <= MAX_CLIPS:
        raise ConfigError(f"n must be between 1 and {MAX_CLIPS}, got {n}")
    if not 0.25 <= float(seconds) <= 600:
        raise ConfigError(f"seconds must be between 0.25 and 600, got {seconds}")
    sr = check_sample_rate(sr)
    folder = Path(out_dir)
    if (folder / MANIFEST_NAME).exists() and not overwrite:
        raise DataError(f"{str(folder)!r} already holds a corpus ({MANIFEST_NAME}); choose another folder or overwrite")
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    if save_midi:
        (folder / "midi").mkdir(exist_ok=True)
    workers = workers or min(os.cpu_count() or 1, 8)
    jobs = [(i, seed, float(seconds), str(folder), save_midi) for i in range(n)]
    results: list = [None] * n
    start = time.perf_counter()
    bar = _bar(n) if progress else None
    if workers <= 1 or n < 8:
        _init_worker(sr, renderer)
        iterator = map(_render_one, jobs)
        pool = None
    else:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(sr, renderer))
        iterator = pool.imap_unordered(_render_one, jobs, chunksize=max(1, min(32, n // (workers * 8) or 1)))
    try:
        for index, record, name, note in iterator:
            results[index] = (record, name, note)
            if bar:
                bar[0].update(bar[1], advance=1)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if bar:
            bar[0].stop()
    elapsed = time.perf_counter() - start
    records = [CaptionRecord(**r[0]) for r in results]
    write_manifest(folder, records)
    name, note = results[0][1], results[0][2]
    report = CorpusReport(folder=folder, n=n, seconds=float(seconds), sample_rate=sr, seed=seed, renderer=name,
                          renderer_note=note, elapsed=elapsed, splits=dict(Counter(r.split for r in records)),
                          instruments=dict(Counter(r.tags["instrument"] for r in records)))
    (folder / "corpus.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def _bar(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]render"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress.start()
    return progress, progress.add_task("render", total=total)
