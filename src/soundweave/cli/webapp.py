"""`soundweave app`: the Gradio web app over every capability (module name `webapp`: `cli.app` is the Typer app)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ConfigError
from .common import console
from .groups import app


def parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth must be USER:PASSWORD (both non-empty), e.g. --auth admin:s3cret")
    return user, password


@app.command("app")
def app_command(
    models: list[Path] = typer.Option(
        [Path("demo-output")], "--models", envvar="SOUNDWEAVE_MODELS",
        help="Folder to look for models and corpora in (repeat for several). Default: the demo's output, so "
             "`python3 tasks.py demo` then `soundweave app` just works. Env: SOUNDWEAVE_MODELS."),
    host: str = typer.Option(None, "--host", help="Address to listen on (default: GRADIO_SERVER_NAME, else "
                                                  "127.0.0.1; 0.0.0.0 serves the network)."),
    port: int = typer.Option(None, "--port", help="Port (default: GRADIO_SERVER_PORT, else 7860)."),
    share: bool = typer.Option(False, "--share", help="Also open a temporary public gradio.live link."),
    auth: str = typer.Option(None, "--auth", envvar="SOUNDWEAVE_APP_AUTH",
                             help="Require a login: USER:PASSWORD. Env: SOUNDWEAVE_APP_AUTH."),
    max_file_size: str = typer.Option("50mb", "--max-file-size", help="Largest upload, e.g. 20mb or 1gb."),
    max_seconds: float = typer.Option(0.0, "--max-seconds",
                                      help="Longest uploaded clip for every tab in seconds (0 = each tab's own "
                                           "cap: 30-60 s)."),
    queue_size: int = typer.Option(16, "--queue-size", help="Jobs that may wait in the queue; more are refused."),
    concurrency: int = typer.Option(1, "--concurrency", help="Jobs that run at the same time (all tabs together)."),
    output_dir: Path = typer.Option(None, "--output-dir", help="Where results are written (default: a folder in "
                                                              "the system temp dir; the newest 200 are kept)."),
    no_examples: bool = typer.Option(False, "--no-examples", help="Do not offer example clips."),
) -> None:
    """Open the web app: one tab per capability (mel diffusion, SoundStorm, audio to image, MuLaN, codec).

    Models come from the --models folders, or a folder / hub id typed into a tab; each loads on first use.

    Scripts: gradio_client.Client(URL).predict(..., api_name="/mel_sample") - every event has an api_name.
    """
    from ..app import AppConfig, build_app, launch

    credentials = parse_auth(auth)
    config = AppConfig(model_dirs=list(models), max_seconds=max_seconds or None, concurrency=concurrency,
                       queue_size=queue_size, max_file_size=max_file_size, output_dir=output_dir,
                       examples=not no_examples)
    missing = [str(d) for d in config.model_dirs if not d.is_dir()]
    if missing:
        console.print(f"[yellow]note[/yellow]: model folder(s) {', '.join(missing)} do not exist (yet); run "
                      "`python3 tasks.py demo` to train small models of every capability there")
    demo = build_app(config)
    found = {kind: len(entries) for kind, entries in demo.soundweave.models.items() if entries}
    console.print(f"models found: {found or 'none'}")
    launch(demo, host=host, port=port, share=share, auth=credentials)


__all__ = ["app_command", "parse_auth"]
