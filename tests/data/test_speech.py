"""The espeak-ng speech corpus: determinism, splits, tags, phoneme alignment, and the missing-program error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from soundweave.data.manifest import read_manifest
from soundweave.data.speech import (
    PHONEME_IDS,
    PHONEMES,
    SIL_ID,
    align_phonemes,
    make_speech_corpus,
    parse_phonemes,
    phoneme_units,
    random_sentence,
    speak,
    units_from_alignment,
)
from soundweave.errors import DataError


def test_corpus_is_deterministic_with_splits_tags_and_aligned_phonemes(tmp_path):
    a = make_speech_corpus(tmp_path / "a", n=12, seed=3, sr=16000, workers=1)
    b = make_speech_corpus(tmp_path / "b", n=12, seed=3, sr=16000, workers=2)
    c = make_speech_corpus(tmp_path / "c", n=12, seed=4, sr=16000, workers=1)
    ra, rb, rc = read_manifest(a.folder), read_manifest(b.folder), read_manifest(c.folder)
    assert [r.caption for r in ra] == [r.caption for r in rb] != [r.caption for r in rc]
    assert [r.tags for r in ra] == [r.tags for r in rb]
    assert (tmp_path / "a" / ra[5].path).read_bytes() == (tmp_path / "b" / rb[5].path).read_bytes()
    assert [r.split for r in ra[:3]] == ["test", "valid", "train"]
    assert len({r.tags["voice"] for r in ra}) > 3
    for record in ra:
        assert {"voice", "speed", "pitch", "phonemes"} <= set(record.tags)
        info = sf.info(str(tmp_path / "a" / record.path))
        assert info.samplerate == 16000 and abs(info.duration - record.tags["seconds"]) < 1e-3
        units = phoneme_units(a.folder, record, 25.0)
        assert abs(len(units) - 25.0 * info.duration) <= 1
        assert units.min() >= 0 and units.max() < len(PHONEMES)
        assert (units != SIL_ID).mean() > 0.4  # mostly speech
        alignment = json.loads((tmp_path / "a" / record.tags["phonemes"]).read_text())["alignment"]
        starts, ends = np.array([s for _, s, _ in alignment]), np.array([e for _, _, e in alignment])
        assert np.all(ends > starts) and np.allclose(starts[1:], ends[:-1])  # contiguous, in order


def test_sentences_vary():
    rng = np.random.default_rng(0)
    sentences = [random_sentence(rng) for _ in range(60)]
    assert len(set(sentences)) > 50
    assert any(s.endswith("?") for s in sentences) and any(any(ch.isdigit() for ch in s) for s in sentences)


def test_alignment_covers_speech_in_order():
    audio, lines = speak("the quick brown fox", "en-us", 170, 50)
    phones = [p for line in lines for p in line]
    assert phones[:3] == ["D", "@2", "k"] and all(p in PHONEME_IDS for p in phones)
    alignment = align_phonemes(audio, 22050, lines)
    spoken = [p for p, _, _ in alignment if p != "sil"]
    assert spoken == phones
    assert alignment[-1][2] == pytest.approx(len(audio) / 22050)
    units = units_from_alignment(alignment, 50.0)
    assert units[0] == SIL_ID or units[0] == PHONEME_IDS["D"]


def test_parse_phonemes_drops_stress_marks():
    assert parse_phonemes("D_@2_ r_'eI_n\n,oU_v_3\n") == [["D", "@2", "r", "eI", "n"], ["oU", "v", "3"]]


def test_missing_espeak_is_one_line_error_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(DataError, match="apt-get install espeak-ng") as info:
        make_speech_corpus(tmp_path / "x", n=2)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x" / "captions.jsonl").exists()
