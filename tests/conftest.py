"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """40 rendered clips of 1.5 s at 16 kHz (SoundFont renderer), shared by every test that needs music."""
    from soundweave.data.synth import make_corpus

    folder = tmp_path_factory.mktemp("corpus")
    make_corpus(folder, n=40, seconds=1.5, sr=16000, seed=123, workers=1)
    return folder


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (restored afterwards); use with pytest.mark.usefixtures."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Set whether this CPU counts as having native bf16, and re-arm the once-per-process warning."""
    from soundweave import runtime

    def set_native(native: bool) -> None:
        monkeypatch.setattr(runtime, "cpu_bf16_native", lambda: native)
        monkeypatch.setattr(runtime, "_warned_slow_bf16", False)

    return set_native
