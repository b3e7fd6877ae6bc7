"""The `soundweave` Typer app and its command groups.

Each capability adds its commands in its own module (`cli/<capability>.py`) by decorating these groups,
and is listed in `cli/__init__.py:COMMAND_MODULES`.
"""

from __future__ import annotations

import typer

app = typer.Typer(name="soundweave", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="soundweave: generate sound, and steer other generators with sound.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: make the synthetic captioned-music and speech corpora; "
                                                   "pack shards.")
audio_app = typer.Typer(no_args_is_help=True, help="Audio files: inspect.")
mel_app = typer.Typer(no_args_is_help=True, help="Spectrogram images: audio -> PNG slices and back.")
train_app = typer.Typer(no_args_is_help=True, help="Train a model on a manifest folder or HF dataset.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a trained model; prints JSON.")
generate_app = typer.Typer(no_args_is_help=True, help="Generate audio with a trained model.")
codec_app = typer.Typer(no_args_is_help=True, help="Neural codec: audio <-> codes.")

app.add_typer(data_app, name="data")
app.add_typer(audio_app, name="audio")
app.add_typer(mel_app, name="mel")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
app.add_typer(generate_app, name="generate")
app.add_typer(codec_app, name="codec")
