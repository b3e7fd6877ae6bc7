"""`soundweave audio info` and `soundweave mel encode|decode`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from ..errors import ConfigError
from .common import done, print_json
from .groups import audio_app, mel_app


@audio_app.command("info")
def audio_info(files: list[Path] = typer.Argument(..., help="Audio files (wav, flac, ogg, mp3).")) -> None:
    """Print sample rate, channels, frames and duration of each file as JSON."""
    from ..audio import info

    print_json([asdict(info(f)) for f in files])


def _codec(x_res: int, y_res: int, sample_rate: int, n_fft: int, hop_length: int, top_db: int, n_iter: int):
    from ..audio import MelImageCodec

    return MelImageCodec(x_res=x_res, y_res=y_res, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                         top_db=top_db, n_iter=n_iter)


X_RES = typer.Option(256, help="Image width in frames (one slice = x_res * hop_length - 1 samples).")
Y_RES = typer.Option(256, help="Image height = number of mel bins.")
SR = typer.Option(22050, "--sr", help="Sample rate the audio is resampled to (Hz).")
N_FFT = typer.Option(2048, help="FFT size.")
HOP = typer.Option(512, help="Hop length in samples.")
TOP_DB = typer.Option(80, help="Dynamic range of the image in dB.")
N_ITER = typer.Option(32, help="Griffin-Lim iterations (decode).")


@mel_app.command("encode")
def mel_encode(audio_file: Path = typer.Argument(..., help="Input audio file."),
               out: Path = typer.Option(..., "--out", help="Folder for the PNG slices."),
               x_res: int = X_RES, y_res: int = Y_RES, sr: int = SR, n_fft: int = N_FFT, hop_length: int = HOP,
               top_db: int = TOP_DB, keep_silent: bool = typer.Option(False, help="Also write silent slices.")) -> None:
    """Cut audio into slices and write each as an 8-bit grayscale mel-spectrogram PNG (audio-diffusion format)."""
    mel = _codec(x_res, y_res, sr, n_fft, hop_length, top_db, 32)
    mel.load_audio(audio_file=audio_file)
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = [], 0
    for i in range(mel.get_number_of_slices()):
        image = mel.audio_slice_to_image(i)
        if mel.is_silent_image(image) and not keep_silent:
            skipped += 1
            continue
        path = out / f"{audio_file.stem}-{i:04d}.png"
        image.save(path)
        written.append(path)
    note = f" ({skipped} silent slice(s) skipped)" if skipped else ""
    done(f"{len(written)} spectrogram image(s) of {mel.seconds_per_image():.2f} s each{note}", out)


@mel_app.command("decode")
def mel_decode(images: list[Path] = typer.Argument(..., help="PNG spectrogram images (one or more, in order)."),
               out: Path = typer.Option(..., "--out", help="Output wav file (images are joined in order)."),
               y_res: int = typer.Option(0, help="Mel bins (0 = the image height)."), sr: int = SR,
               n_fft: int = N_FFT, hop_length: int = HOP, top_db: int = TOP_DB, n_iter: int = N_ITER,
               seed: int = typer.Option(0, help="Seed for the Griffin-Lim initial phases.")) -> None:
    """Turn spectrogram PNGs back into audio with Griffin-Lim."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    from ..audio import save

    pieces = []
    for path in images:
        try:
            image = Image.open(path).convert("L")
        except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
            raise ConfigError(f"{str(path)!r} is not a readable image: {exc}") from exc
        height = y_res or image.height
        if image.height != height:
            raise ConfigError(f"{str(path)!r} is {image.height} pixels high but --y-res is {height}")
        mel = _codec(image.width, height, sr, n_fft, hop_length, top_db, n_iter)
        pieces.append(mel.image_to_audio(image, generator=torch.Generator().manual_seed(seed)))
    save(out, np.concatenate(pieces), sr)
    done(f"{sum(len(p) for p in pieces) / sr:.2f} s of audio from {len(images)} image(s)", out)
