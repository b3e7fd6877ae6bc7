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


@data_app.command("shard")
def shard(manifest: Path = typer.Argument(..., help="Manifest folder (audio + captions.jsonl) to pack."),
          out: Path = typer.Option(..., "--out", help="Folder for <split>-000000.tar ... and shards.json."),
          shard_size: str = typer.Option("1000", "--shard-size",
                                         help="Clips per shard (e.g. 1000) or bytes per shard (e.g. 256MB, 1GB)."),
          split: list[str] = typer.Option(None, "--split", help="Only these splits (repeatable; default: all)."),
          codec: str = typer.Option("", "--codec", help="Also store each clip's codes (codes.npy) from this codec "
                                    "folder / hub id, for `soundweave train soundstorm --data SHARDS`."),
          mulan: str = typer.Option("", "--mulan", help="Also store each clip's MuLaN audio latent (mulan.npy)."),
          overwrite: bool = typer.Option(False, help="Replace shards already in --out.")) -> None:
    """Pack a manifest folder into WebDataset tar shards (audio bytes as stored + caption, tags and split as
    JSON; optionally precomputed codec codes and MuLaN latents). `soundweave train mulan | soundstorm |
    mel-diffusion | codec --data` take the folder, a brace pattern like 'DIR/train-{000000..000099}.tar', or http(s)://
    URLs of the shards."""
    from ..data.shards import write_shards

    size: int | str = int(shard_size) if shard_size.strip().isdigit() else shard_size
    index = write_shards(manifest, out, size, splits=split or None, codec=codec or None, mulan=mulan or None,
                         overwrite=overwrite, progress=True)
    print_json({name: {"clips": s["clips"], "shards": len(s["shards"])} for name, s in index["splits"].items()})
    done(f"{sum(s['clips'] for s in index['splits'].values())} clips in "
         f"{sum(len(s['shards']) for s in index['splits'].values())} shards", out / "shards.json")
