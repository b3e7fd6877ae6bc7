import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from soundweave.data import read_manifest
from soundweave.data.synth import INSTRUMENTS, compose, make_corpus, random_spec
from soundweave.data.synth.music import tempo_class
from soundweave.errors import ConfigError, DataError
from tests.helpers import check_margin

REQUIRED_TAGS = {"instrument", "family", "bpm", "tempo", "density", "dynamics", "texture"}


def digest(folder):
    h = hashlib.sha256()
    for r in read_manifest(folder):
        h.update((folder / r.path).read_bytes())
        h.update(r.to_json().encode())
    return h.hexdigest()


def test_corpus_layout_tags_and_audio(tiny_corpus):
    records = read_manifest(tiny_corpus)
    assert len(records) == 40
    assert {r.split for r in records} == {"train", "valid", "test"}
    assert sum(r.split == "test" for r in records) == 4
    for r in records:
        assert not r.path.startswith("/") and (tiny_corpus / r.path).is_file()
        assert REQUIRED_TAGS <= set(r.tags)
        assert r.tags["tempo"] == tempo_class(r.tags["bpm"])
        if r.tags["family"] != "drums":
            assert r.tags["mode"] in ("major", "minor") and r.tags["key"] and r.tags["register"]
        else:  # a drum kit has no key, mode or register
            assert not {"key", "mode", "register"} & set(r.tags)
        assert r.tags["instrument"] in r.caption.lower()  # captions name the instrument
        audio, sr = sf.read(tiny_corpus / r.path)
        assert sr == 16000 and audio.shape == (24000,)
        assert np.abs(audio).max() > 0.05  # not silent
    report = json.loads((tiny_corpus / "corpus.json").read_text())
    assert "soundfont" in report["renderer"]


def test_instruments_cover_gm_families_and_drums():
    programs = {i.program for i in INSTRUMENTS if not i.is_drum}
    assert len(programs) >= 12
    assert len({i.family for i in INSTRUMENTS if not i.is_drum}) >= 8
    assert sum(i.is_drum for i in INSTRUMENTS) >= 2


def test_every_instrument_appears_evenly(tmp_path):
    report = make_corpus(tmp_path / "c", n=len(INSTRUMENTS) * 2, seconds=0.5, sr=8000, seed=5, workers=2)
    assert set(report.instruments.values()) == {2}


def test_deterministic_for_a_seed(tmp_path):
    a = make_corpus(tmp_path / "a", n=12, seconds=1.0, sr=16000, seed=7, workers=2)
    b = make_corpus(tmp_path / "b", n=12, seconds=1.0, sr=16000, seed=7, workers=1)
    c = make_corpus(tmp_path / "c", n=12, seconds=1.0, sr=16000, seed=8, workers=1)
    assert digest(a.folder) == digest(b.folder)
    assert digest(a.folder) != digest(c.folder)


def test_captions_vary_and_music_follows_tempo():
    rng = np.random.default_rng(0)
    specs = [random_spec(rng, 4.0) for _ in range(200)]
    from soundweave.data.synth import caption

    assert len({caption(np.random.default_rng(i), s) for i, s in enumerate(specs)}) > 190
    slow = [s for s in specs if s.tempo == "slow" and s.texture == "melody" and s.density == "medium"]
    fast = [s for s in specs if s.tempo == "fast" and s.texture == "melody" and s.density == "medium"]
    rate = lambda group: np.mean([len(compose(np.random.default_rng(1), s)) for s in group])  # noqa: E731
    # faster tempo -> more notes in the same time
    check_margin("synth.notes_fast_vs_1.3_slow", rate(fast), 1.3 * rate(slow), above=True)


def test_additive_fallback(tmp_path):
    report = make_corpus(tmp_path / "f", n=4, seconds=0.5, sr=8000, renderer="additive")
    assert "additive" in report.renderer
    audio, _ = sf.read(tmp_path / "f" / read_manifest(tmp_path / "f")[0].path)
    assert np.abs(audio).max() > 0.05


def test_midi_output(tmp_path):
    make_corpus(tmp_path / "m", n=3, seconds=0.5, sr=8000, save_midi=True)
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(tmp_path / "m" / "midi" / "clip-000000.mid"))
    assert pm.instruments and pm.instruments[0].notes


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError):
        make_corpus(tmp_path / "x", n=0)
    with pytest.raises(ConfigError):
        make_corpus(tmp_path / "x", n=2, seconds=0)
    make_corpus(tmp_path / "y", n=2, seconds=0.5, sr=8000)
    with pytest.raises(DataError, match="already holds"):
        make_corpus(tmp_path / "y", n=2, seconds=0.5, sr=8000)
    make_corpus(tmp_path / "y", n=3, seconds=0.5, sr=8000, overwrite=True)
    assert len(read_manifest(tmp_path / "y")) == 3
