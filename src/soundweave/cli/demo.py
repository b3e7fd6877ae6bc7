"""`soundweave demo`: the README's main job. Every capability shows itself end to end on the synthetic
corpus, each step writing under `OUT/<step>/` and reporting what it wrote.

A capability adds its step to `DEMO_STEPS` as ("name", "module:function"); the function takes a
`DemoContext` and must finish within a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.table import Table

from ..errors import ConfigError
from .common import console
from .groups import app

DEMO_STEPS: list[tuple[str, str]] = [
    ("corpus", "soundweave.cli.demo:corpus_demo"),
    ("mel-diffusion", "soundweave.cli.mel_diffusion:demo"),
    ("mulan", "soundweave.cli.mulan:demo"),
    ("codec", "soundweave.cli.codec:demo"),
    ("soundstorm", "soundweave.cli.soundstorm:demo"),
    ("musiclm", "soundweave.cli.musiclm:demo"),
    ("speech", "soundweave.cli.speech:demo"),
    ("audio2img", "soundweave.cli.audio2img:demo"),
]


@dataclass
class DemoContext:
    out: Path
    seed: int = 0
    corpus: Path | None = None  # set by the corpus step: the synthetic captioned-music corpus
    outputs: list[tuple[str, str, Path]] = field(default_factory=list)

    def step_dir(self, step: str) -> Path:
        path = self.out / step
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add_output(self, step: str, label: str, path: Path) -> None:
        self.outputs.append((step, label, Path(path)))

    def model_of(self, step: str) -> Path | None:
        """The first model folder (one with a config.json) that an earlier `step` recorded, or None."""
        return next((path for name, _, path in self.outputs if name == step and (path / "config.json").is_file()),
                    None)

    def need_corpus(self) -> Path:
        if self.corpus is None:
            raise ConfigError("this demo step needs the corpus step to run first")
        return self.corpus


def corpus_demo(ctx: DemoContext) -> None:
    """Render a small captioned corpus, write spectrogram images of it and a round-tripped audio file."""
    from ..audio import MelImageCodec, load, save
    from ..data.manifest import read_manifest
    from ..data.synth import make_corpus

    out = ctx.step_dir("corpus")
    corpus = out / "synthetic-corpus"
    # the demo's own folder: a second run renders it again (same seed, same clips) rather than stopping
    report = make_corpus(corpus, n=120, seconds=4.0, sr=22050, seed=ctx.seed, overwrite=True, progress=True)
    ctx.corpus = corpus
    ctx.add_output("corpus", f"{report.n} captioned clips ({report.renderer}), captions.jsonl", corpus)
    mel = MelImageCodec(x_res=256, y_res=128, hop_length=256)
    images = out / "spectrograms"
    images.mkdir(exist_ok=True)
    records = read_manifest(corpus)[:6]
    for record in records:
        audio, _ = load(corpus / record.path, sr=mel.sample_rate)
        mel.load_audio(raw_audio=audio.numpy())
        image = mel.audio_slice_to_image(0)
        image.save(images / (Path(record.path).stem + ".png"))
        console.print(f"  {Path(record.path).stem}: {record.caption}")
    ctx.add_output("corpus", f"{len(records)} spectrogram images ({mel.y_res}x{mel.x_res} PNG)", images)
    first = corpus / records[0].path
    audio, _ = load(first, sr=mel.sample_rate)
    mel.load_audio(raw_audio=audio.numpy())
    original = mel.get_audio_slice(0)
    roundtrip = mel.image_to_audio(mel.audio_to_image(original))
    save(out / "original.wav", audio[: len(original)], mel.sample_rate)
    save(out / "roundtrip.wav", roundtrip, mel.sample_rate)
    ctx.add_output("corpus", "audio -> spectrogram image -> Griffin-Lim audio", out / "roundtrip.wav")


def _resolve(target: str) -> Callable[[DemoContext], None]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@app.command()
def demo(out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for everything the demo writes."),
         only: str = typer.Option("", help="Comma-separated step names to run (the corpus step always runs)."),
         seed: int = typer.Option(0, help="Seed for the corpus and every model."),
         list_steps: bool = typer.Option(False, "--list", help="List the demo steps and exit.")) -> None:
    """Run every capability end to end on a small synthetic corpus (a few minutes on 2 CPU cores)."""
    names = [name for name, _ in DEMO_STEPS]
    if list_steps:
        for name in names:
            print(name)
        return
    wanted = {s.strip() for s in only.split(",") if s.strip()}
    unknown = wanted - set(names)
    if unknown:
        raise ConfigError(f"unknown demo step(s) {sorted(unknown)}; steps are {names}")
    ctx = DemoContext(out=out, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, target in DEMO_STEPS:
        if wanted and name not in wanted and name != "corpus":
            continue
        console.rule(f"[bold]{name}")
        start = time.perf_counter()
        _resolve(target)(ctx)
        console.print(f"[dim]{name} took {time.perf_counter() - start:.1f} s[/dim]")
    table = Table(title=f"soundweave demo outputs (in {out.resolve()})")
    table.add_column("step")
    table.add_column("what")
    table.add_column("where", overflow="fold")  # full paths, wrapped rather than cut
    for step, label, path in ctx.outputs:
        table.add_row(step, label, str(path))
    console.print(table)
    print(f"demo outputs are in {out.resolve()}")
