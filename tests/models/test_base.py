import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from soundweave.errors import CheckpointError
from soundweave.models.base import PretrainedModel, load_pretrained


@dataclass
class TinyConfig:
    dim: int = 4
    depth: int = 2
    sizes: tuple = (1, 2)


class TinyNet(PretrainedModel):
    def __init__(self, dim: int = 4, depth: int = 2, sizes=(1, 2)):
        super().__init__()
        self.config = TinyConfig(dim, depth, tuple(sizes))
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))
        self.tied = self.layers[0]  # a shared module: safetensors must still round-trip it

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_save_and_load_roundtrip(tmp_path):
    model = TinyNet(dim=6, depth=3, sizes=(3, 4))
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config == {"_class": "TinyNet", "dim": 6, "depth": 3, "sizes": [3, 4]}
    loaded = TinyNet.from_pretrained(tmp_path / "m")
    x = torch.randn(2, 6)
    assert torch.equal(loaded(x), model(x)) and not loaded.training
    assert isinstance(load_pretrained(tmp_path / "m"), TinyNet)  # dispatch on the stored class name
    assert TinyNet.from_pretrained(tmp_path / "m", depth=3).config.depth == 3  # overrides


def test_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        TinyNet.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        TinyNet.from_pretrained(tmp_path / "empty")
    TinyNet().save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        TinyNet.from_pretrained(tmp_path / "m")
    TinyNet(dim=4).save_pretrained(tmp_path / "m4")
    with pytest.raises(CheckpointError, match="could not read weights|do not match"):
        TinyNet.from_pretrained(tmp_path / "m4", dim=5)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        TinyNet.from_pretrained(tmp_path / "bad")


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="hub"):
        TinyNet.from_pretrained("soundweave-tests/definitely-not-cached")


def test_wrong_class_is_refused(tmp_path):
    class OtherNet(PretrainedModel):
        def __init__(self):
            super().__init__()
            self.config = {}
            self.w = nn.Parameter(torch.zeros(1))

    OtherNet().save_pretrained(tmp_path / "o")
    with pytest.raises(CheckpointError, match="holds a OtherNet"):
        TinyNet.from_pretrained(tmp_path / "o")
