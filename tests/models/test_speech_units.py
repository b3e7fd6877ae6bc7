"""MFCC k-means units and PNMI / purity against phoneme labels."""

from __future__ import annotations

import pytest
import torch

from soundweave.data.speech import ESPEAK_RATE, align_phonemes, speak, units_from_alignment
from soundweave.errors import ConfigError, ShapeError
from soundweave.models.speech_units import MFCCUnits, pnmi, purity
from tests.helpers import check_margin


def test_pnmi_and_purity_values():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert pnmi(labels, labels) == pytest.approx(1.0)
    assert pnmi(labels + 7, labels) == pytest.approx(1.0)  # unit names do not matter
    assert pnmi(torch.zeros(8), labels) == pytest.approx(0.0)
    assert purity(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), labels) == pytest.approx(0.5)
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 4, (20000,), generator=g)
    assert pnmi(noise, torch.randint(0, 4, (20000,), generator=g)) < 0.01
    with pytest.raises(ShapeError, match="equally long"):
        pnmi(torch.zeros(3), torch.zeros(4))


def test_mfcc_units_carry_phoneme_information(tmp_path):
    clips, labels = [], []
    for i, text in enumerate(["the quick brown fox jumps over the lazy dog", "she sells sea shells by the shore",
                              "my red horse is near the river", "why is the old clock so quiet"]):
        audio, lines = speak(text, ("en-us+m3", "en-gb+f2")[i % 2], 160, 50)
        audio16 = torch.from_numpy(audio)
        units = MFCCUnits(k=8)
        frames = units.features(audio16, ESPEAK_RATE).shape[0]
        clips.append(audio16)
        labels.append(torch.from_numpy(units_from_alignment(align_phonemes(audio, ESPEAK_RATE, lines), 25.0, frames)))
    model = MFCCUnits(k=24, frame_rate=25.0).fit(clips, sample_rate=ESPEAK_RATE,
                                                 generator=torch.Generator().manual_seed(0))
    ids = torch.cat([model(c, ESPEAK_RATE) for c in clips])
    assert ids.min() >= 0 and ids.max() < 24
    score = pnmi(ids, torch.cat(labels))
    check_margin("MFCC k-means PNMI vs phonemes", score, 0.15, above=True)
    model.save_pretrained(tmp_path / "u")
    again = MFCCUnits.from_pretrained(tmp_path / "u")
    assert torch.equal(again(clips[0], ESPEAK_RATE), model(clips[0], ESPEAK_RATE))
    with pytest.raises(ConfigError, match="k must"):
        MFCCUnits(k=1)
