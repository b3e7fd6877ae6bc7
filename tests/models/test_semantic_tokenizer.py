"""SemanticTokenizer: the offline music features, k-means fitting, rates, persistence, the transformers path."""

from __future__ import annotations

import json

import pytest
import torch

from soundweave import SemanticTokenizer
from soundweave.errors import CheckpointError, ConfigError, ShapeError
from soundweave.models.semantic_features import MusicFeatures, chroma_matrix
from tests.helpers import tone


def clips(sr=16000, seconds=1.0):
    return [tone(f, seconds, sr) for f in (220.0, 311.0, 440.0, 659.0)]


def test_music_features_shape_rate_and_chroma():
    feats = MusicFeatures(16000, 25.0)
    x = torch.stack(clips())
    out = feats(x)
    assert out.shape == (4, 25, feats.dim) and torch.isfinite(out).all()
    assert feats(tone(440, 0.61)[None]).shape[1] == 16  # ceil(0.61 * 25)
    # chroma: an A (440 Hz) puts most of its energy in pitch class 0 (A), a C#/Db-ish 277 Hz tone in 4
    chroma = out[2, :, 40:52].mean(0)
    assert int(chroma.argmax()) == 0
    assert int(feats(tone(277.18, 1.0)[None])[0, :, 40:52].mean(0).argmax()) == 4
    assert chroma_matrix(16000, 1024).shape == (12, 513)
    # onset strength: a note starting mid-clip gives a peak there, silence before it gives none
    late = torch.cat([torch.zeros(8000), tone(440, 0.5)])
    onset = feats(late[None])[0, :, -1]
    assert int(onset.argmax()) in (12, 13) and float(onset[:10].max()) < float(onset.max()) / 10


def test_fit_assigns_distinct_tones_to_distinct_units_at_25_hz():
    tok = SemanticTokenizer(codebook_size=8).fit(clips())
    assert tok.is_fitted and tok.rate == 25.0 and tok.hop_length == 640
    ids = tok(torch.stack(clips()))
    assert ids.shape == (4, 25) and ids.dtype == torch.long
    middle = ids[:, 3:-3]
    # each steady tone keeps one unit, and the four tones get four different units
    assert all(len(set(row.tolist())) == 1 for row in middle)
    assert len({int(row[0]) for row in middle}) == 4


def test_any_input_rate_is_resampled():
    tok = SemanticTokenizer(codebook_size=8).fit(clips())
    a = tok(tone(440, 1.0, 16000))
    b = tok(tone(440, 1.0, 44100), input_sample_hz=44100)
    assert a.shape == b.shape == (1, 25)
    assert float((a == b).float().mean()) > 0.9


def test_round_trip_safetensors_only(tmp_path):
    tok = SemanticTokenizer(codebook_size=8, rate=50.0).fit(clips())
    tok.save_pretrained(tmp_path / "tok")
    assert {p.name for p in (tmp_path / "tok").iterdir()} == {"config.json", "model.safetensors"}
    again = SemanticTokenizer.from_pretrained(tmp_path / "tok")
    x = torch.stack(clips())
    assert torch.equal(again(x), tok(x)) and again(x).shape == (4, 50)
    assert json.loads((tmp_path / "tok" / "config.json").read_text())["features"] == "music"


def test_unfitted_and_bad_inputs():
    tok = SemanticTokenizer(codebook_size=8)
    with pytest.raises(ConfigError, match="fit"):
        tok(tone())
    with pytest.raises(ShapeError, match="fewer than codebook_size"):
        SemanticTokenizer(codebook_size=4096).fit([tone(440, 0.2)])
    with pytest.raises(ConfigError, match="codebook_size"):
        SemanticTokenizer(codebook_size=1)
    with pytest.raises(ConfigError, match="rate"):
        SemanticTokenizer(rate=33.0)
    fitted = SemanticTokenizer(codebook_size=4).fit(clips())
    with pytest.raises(Exception, match="NaN|finite"):
        fitted(torch.full((1000,), float("nan")))
    with pytest.raises(ShapeError):
        fitted(torch.zeros(2, 2, 100))


def tiny_hubert_folder(tmp_path):
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    config = HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          conv_dim=(16, 16, 16), conv_stride=(5, 8, 8), conv_kernel=(10, 8, 8),
                          num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    folder = tmp_path / "hubert"
    HubertModel(config).save_pretrained(folder)
    return folder


def test_hub_path_with_a_tiny_random_hubert_folder(tmp_path):
    folder = tiny_hubert_folder(tmp_path)  # 16 kHz / (5 * 8 * 8) = 50 frames/s, pooled to 25
    tok = SemanticTokenizer(str(folder), layer=1, codebook_size=4)
    assert tok.extractor.factor == 2
    tok.fit(clips())
    ids = tok(torch.stack(clips()))
    assert ids.shape == (4, 25) and int(ids.max()) < 4
    # the layer matters: another layer gives other features
    other = SemanticTokenizer(str(folder), layer=2, codebook_size=4)
    assert not torch.allclose(other.raw_features(tone()), tok.raw_features(tone()))
    # saved with a copy of the feature model, loaded offline from the folder alone
    tok.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "feature_model" / "config.json").is_file()
    again = SemanticTokenizer.from_pretrained(tmp_path / "saved")
    assert torch.equal(again(torch.stack(clips())), ids)
    assert "extractor" not in dict(tok.named_modules())  # the feature model's weights are not ours
    with pytest.raises(ConfigError, match="layer"):
        SemanticTokenizer(str(folder), layer=9)
    with pytest.raises(ConfigError, match="layer"):
        SemanticTokenizer(str(folder))


def test_presets_name_their_layers_and_need_the_hub_offline():
    from soundweave.models.semantic_tokenizer import PRESETS

    assert PRESETS["facebook/hubert-base-ls960"]["layer"] == 9
    assert PRESETS["m-a-p/MERT-v0"]["normalize"] is True
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE|hub"):
        SemanticTokenizer("m-a-p/MERT-v0")
