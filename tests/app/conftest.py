"""Fixtures of the app tests: a folder of tiny models, the app built on it, and the app served on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.app.tiny_models import SR, make_model_folder, write_tone


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("models") / "demo-output")


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Good and bad uploads: a 1.5 s tone, a 2.5 s tone at 44.1 kHz, not audio, silence, too long, too low a
    rate, too short."""
    folder = tmp_path_factory.mktemp("clips")
    (folder / "notes.wav").write_text("these are my notes, not audio")
    sf.write(str(folder / "silence.wav"), np.zeros(SR, dtype=np.float32), SR)
    sf.write(str(folder / "long.wav"), np.full(SR * 70, 0.1, dtype=np.float32), SR)
    sf.write(str(folder / "low-rate.wav"), np.full(4000, 0.1, dtype=np.float32), 4000)
    sf.write(str(folder / "blip.wav"), np.full(400, 0.3, dtype=np.float32), SR)
    return {"tone": write_tone(folder / "tone.wav"),
            "tone44k": write_tone(folder / "tone-44k.wav", seconds=2.5, sr=44100, freq=220.0),
            "not_audio": folder / "notes.wav", "silence": folder / "silence.wav", "long": folder / "long.wav",
            "low_rate": folder / "low-rate.wav", "short": folder / "blip.wav"}


@pytest.fixture(scope="session")
def app(models_dir, tmp_path_factory):
    from soundweave.app import AppConfig, build_app

    return build_app(AppConfig(model_dirs=[models_dir], output_dir=tmp_path_factory.mktemp("results")))


@pytest.fixture(scope="session")
def served(models_dir, tmp_path_factory):
    """(Blocks, url): the app launched on a loopback port (its own Blocks, so in-process tests do not share
    its queue)."""
    from soundweave.app import AppConfig, build_app, launch

    demo = build_app(AppConfig(model_dirs=[models_dir], output_dir=tmp_path_factory.mktemp("served"),
                               queue_size=8, max_file_size="2mb"))
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo, url.rstrip("/")
    demo.close()


@pytest.fixture(scope="session")
def server(served) -> str:
    return served[1]
