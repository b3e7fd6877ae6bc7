"""What every tab shares: the settings, the models found, the model cache, jobs, output folder and examples."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from .jobs import Jobs
from .media import OutputFolder
from .models import HOWTO, ModelCache, ModelEntry, find_models

log = logging.getLogger("soundweave.app")

CONCURRENCY_ID = "soundweave-models"  # every model-running event shares one concurrency group
EXAMPLE_COUNT = 3


@dataclass
class AppConfig:
    """Settings of one app (the `soundweave app` flags).

    model_dirs: folders scanned for models and corpora. max_seconds: cap on uploaded clips for every tab
    (None: each tab's own cap). concurrency: jobs that run at once (all tabs together); queue_size: jobs
    that may wait. max_file_size: largest upload (e.g. "50mb"). output_dir: where results are written
    (default: a folder in the system temp dir). examples: offer example clips from a synthetic corpus.
    """

    model_dirs: list[Path] = field(default_factory=lambda: [Path("demo-output")])
    max_seconds: float | None = None
    concurrency: int = 1
    queue_size: int = 16
    max_file_size: str | int | None = "50mb"
    output_dir: Path | None = None
    examples: bool = True
    max_variants: int = 4

    def __post_init__(self):
        from ..errors import ConfigError

        self.model_dirs = [Path(d).expanduser() for d in self.model_dirs]
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.queue_size < 1:
            raise ConfigError(f"queue size must be >= 1, got {self.queue_size}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"max seconds must be positive, got {self.max_seconds}")
        size = self.max_file_size
        if size is not None and not (isinstance(size, int) and size > 0 or isinstance(size, str) and re.fullmatch(
                r"\s*[1-9][0-9]*\s*(b|kb|mb|gb|tb)\s*", size, flags=re.IGNORECASE)):
            raise ConfigError(f"max file size must look like 20mb, 500kb or 1gb, got {size!r}")
        if not 1 <= self.max_variants <= 8:
            raise ConfigError(f"max_variants must be in 1..8, got {self.max_variants}")


class AppContext:
    def __init__(self, config: AppConfig | None = None):
        self.config = config or AppConfig()
        self.cache = ModelCache()
        self.jobs = Jobs()
        self.outputs = OutputFolder(self.config.output_dir)
        self.models: dict[str, list[ModelEntry]] = find_models(self.config.model_dirs)
        # (kind, what, dropdown, notice) that "Rescan" refreshes; what and notice are None for optional pickers
        self.pickers: list[tuple[str, str | None, object, object | None]] = []
        self.examples: list[Path] = find_examples(self.models.get("corpus", []), self.outputs.root) \
            if self.config.examples else []

    # -- models ------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.models = find_models(self.config.model_dirs)

    def choices(self, kind: str, optional: bool = False) -> list[tuple[str, str]]:
        """(label, folder) of the `kind` models found; `optional` puts ("", "") - none - first."""
        return [("", "")] * optional + [(e.label, e.value) for e in self.models.get(kind, [])]

    def default(self, kind: str) -> str | None:
        entries = self.models.get(kind, [])
        return entries[0].value if entries else None

    def notice(self, kind: str, what: str) -> str:
        """Markdown for a tab: the models found, or how to get one."""
        found = self.models.get(kind, [])
        if found:
            return f"{len(found)} {what} found in {self.folders_text()}."
        return (f"**No {what} found** in {self.folders_text()}. To get one, {HOWTO[kind]}. You can also type a "
                "model folder or hub id into the box.")

    def folders_text(self) -> str:
        return ", ".join(f"`{d}`" for d in self.config.model_dirs) or "(no folders)"

    def cap(self, tab_default: float) -> float:
        """The longest upload a tab takes."""
        return float(self.config.max_seconds) if self.config.max_seconds else float(tab_default)


def find_examples(corpora: list[ModelEntry], cache_root: Path, count: int = EXAMPLE_COUNT) -> list[Path]:
    """A few clips of different instruments from the first corpus found, or (none found) a handful rendered
    once with the synthetic-corpus generator into the app's folder."""
    from ..data.manifest import read_manifest
    from ..errors import SoundweaveError

    for entry in corpora:
        try:
            records = read_manifest(entry.path)
        except SoundweaveError:
            continue
        picked, seen = [], set()
        for record in records:
            instrument = record.tags.get("instrument")
            if instrument in seen or not (entry.path / record.path).is_file():
                continue
            seen.add(instrument)
            picked.append(entry.path / record.path)
            if len(picked) == count:
                return picked
        if picked:
            return picked
    folder = cache_root / "examples"
    try:
        if not (folder / "captions.jsonl").is_file():
            from ..data.synth import make_corpus

            make_corpus(folder, n=count, seconds=4.0, sr=22050, seed=0, workers=1, overwrite=True)
        return sorted((folder / "audio").glob("*.wav"))[:count]
    except (SoundweaveError, OSError) as exc:  # examples are a convenience: never stop the app for them
        log.warning("no example clips: %s", exc)
        return []


__all__ = ["CONCURRENCY_ID", "AppConfig", "AppContext", "find_examples"]
