"""`soundweave data ...`: make datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, done, print_json
from .groups import data_app


@data_app.command("synth")
def synth(out: Path = typer.Option(..., "--out", help="Folder to write audio/*.wav and captions.jsonl into."),
          n: int = typer.Option(1000, "--n", help="Number of clips."),
          seconds: float = typer.Option(4.0, help="Length of each clip in seconds."),
          sr: int = typer.Option(22050, "--sr", help="Sample rate of the rendered audio (Hz)."),
          seed: int = typer.Option(0, help="Seed: the same seed gives the same corpus."),
          workers: int = typer.Option(0, help="Render processes (0 = one per CPU core)."),
          renderer: str = typer.Option("soundfont", help="'soundfont' (TinySoundFont + GM SoundFont) or 'additive'."),
          midi: bool = typer.Option(False, "--midi", help="Also write each clip's MIDI file under midi/."),
          overwrite: bool = typer.Option(False, help="Replace a corpus already in --out.")) -> None:
    """Render the synthetic captioned-music corpus: random but musical MIDI (17 instruments and drum kits,
    tempo, key, mode, register, density, dynamics) through a SoundFont synthesizer, with natural captions,
    structured tags and train/valid/test splits."""
    from ..data.synth import make_corpus

    report = make_corpus(out, n=n, seconds=seconds, sr=sr, seed=seed, workers=workers or None, renderer=renderer,
                         save_midi=midi, overwrite=overwrite, progress=True)
    if report.renderer_note:
        console.print(f"[yellow]note[/yellow]: {report.renderer_note}; used the additive fallback synthesizer")
    print_json(report.to_dict())
    done(f"{report.n} clips ({report.clips_per_second:.0f} clips/s, renderer: {report.renderer})",
         out / "captions.jsonl", out / "audio")
