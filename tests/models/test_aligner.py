"""AudioCLIPAligner: shapes, target length for any clip length, padding-invariance, bad input, save/load."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

from soundweave import AudioCLIPAligner
from soundweave.errors import AudioError, CheckpointError, ConfigError, EmptyAudioError, ShapeError
from soundweave.models.aligner import AudioTooShortError, kaldi_fbank, relative_key_bias, resample_tokens
from soundweave.models.base import load_pretrained
from soundweave.nn.quantized import int8_available
from tests.helpers import check_margin

pytestmark = pytest.mark.usefixtures("one_thread")



def tiny_config(**kw) -> Wav2Vec2BertConfig:
    base = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, add_adapter=True,
                num_adapter_layers=2, output_hidden_size=24, layerdrop=0.0, conv_depthwise_kernel_size=5,
                apply_spec_augment=False)
    base.update(kw)
    return Wav2Vec2BertConfig(**base)


@pytest.fixture
def aligner():
    torch.manual_seed(0)
    return AudioCLIPAligner(tiny_config(), target_dim=16, target_len=9, max_seconds=3.0).eval()


def test_output_is_target_len_for_any_clip_length(aligner):
    with torch.no_grad():
        for seconds in (0.1, 0.5, 1.0, 2.9):
            out = aligner.embed(torch.randn(int(seconds * 16000)), 16000)
            assert out.last_hidden_state.shape == (1, 9, 16)
            assert out.pooled.shape == (1, 16)
            assert torch.isfinite(out.last_hidden_state).all()
        # 12.5 adapter tokens per second: 2 s -> 25 tokens before resampling to 8 content tokens
        assert aligner.tokens_per_second == 12.5
        assert int(aligner.embed(torch.randn(32000), 16000).num_tokens) == 25


def test_bos_slot_is_learned_and_first(aligner):
    aligner.set_bos(torch.arange(16.0))
    with torch.no_grad():
        seq = aligner.encode(torch.randn(2, 8000), 16000)
    assert torch.equal(seq[:, 0], torch.arange(16.0).expand(2, -1))
    assert "bos" in dict(aligner.named_parameters())


def test_batch_of_different_lengths_equals_each_clip_alone(aligner):
    a, b = torch.randn(16000), torch.randn(9000)
    with torch.no_grad():
        both = aligner.encode([a, b], 16000)
        alone = aligner.encode(b, 16000)
        # a zero-padded batch with lengths gives the same as the list
        padded = torch.zeros(2, 16000)
        padded[0], padded[1, :9000] = a, b
        via_lengths = aligner.encode(padded, 16000, lengths=[16000, 9000])
    torch.testing.assert_close(both[1], alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(via_lengths, both, atol=1e-5, rtol=1e-4)


def test_any_sample_rate_is_resampled(aligner):
    t = torch.arange(44100) / 44100
    clip44 = 0.3 * torch.sin(2 * torch.pi * 440 * t)
    from soundweave.audio import resample

    with torch.no_grad():
        direct = aligner.encode(clip44, 44100)
        manual = aligner.encode(resample(clip44, 44100, 16000), 16000)
    torch.testing.assert_close(direct, manual)


def test_resample_tokens_keeps_constants_and_ignores_padding():
    h = torch.randn(2, 10, 3)
    h[0, :4] = 1.0
    out = resample_tokens(h, torch.tensor([4, 10]), 7)
    assert out.shape == (2, 7, 3)
    torch.testing.assert_close(out[0], torch.ones(7, 3))  # padding (rows 4..9) never leaks in
    ramp = torch.arange(100.0)[None, :, None]
    down = resample_tokens(ramp, torch.tensor([100]), 10)[0, :, 0]
    assert torch.all(down[1:] > down[:-1]) and abs(float(down.mean()) - 49.5) < 1.0


def test_silence_is_defined(aligner):
    with torch.no_grad():
        out = aligner.embed([torch.zeros(16000), 1e-5 * torch.randn(16000), 0.2 * torch.randn(16000)], 16000)
    assert out.silent.tolist() == [True, True, False]
    assert torch.isfinite(out.last_hidden_state).all()
    # every silent clip of a given length maps to the same embedding
    torch.testing.assert_close(out.last_hidden_state[0], out.last_hidden_state[1])


def test_short_clip_raises_or_pads(aligner):
    assert aligner.min_samples == 1520  # one adapter frame: 4 stacked frames = 8 fbank frames = 95 ms
    with pytest.raises(AudioTooShortError, match="shorter than one adapter frame"):
        aligner.encode(torch.randn(1000), 16000)
    assert issubclass(AudioTooShortError, AudioError)
    with torch.no_grad():
        padded = aligner.encode(torch.randn(1000), 16000, pad_short=True)
    assert padded.shape == (1, 9, 16) and torch.isfinite(padded).all()
    with pytest.raises(EmptyAudioError):
        aligner.encode(torch.zeros(0), 16000)
    with pytest.raises(ShapeError):
        aligner.encode(torch.zeros(1, 2, 100), 16000)


def test_long_clip_is_cropped_to_max_seconds(aligner):
    clip = torch.randn(16000 * 5)
    with torch.no_grad():
        out = aligner.embed(clip, 16000)
        first = aligner.encode(clip[: 16000 * 3], 16000)
    assert out.cropped.tolist() == [True] and float(out.seconds[0]) == 3.0
    torch.testing.assert_close(out.last_hidden_state, first)


def test_save_load_roundtrip(tmp_path, aligner):
    aligner.set_bos(torch.randn(16))
    aligner.save_pretrained(tmp_path / "al")
    stored = json.loads((tmp_path / "al" / "config.json").read_text())
    assert stored["_class"] == "AudioCLIPAligner" and stored["encoder"]["hidden_size"] == 32
    assert stored["feature_extractor"]["num_mel_bins"] == 80
    loaded = AudioCLIPAligner.from_pretrained(tmp_path / "al")
    again = load_pretrained(tmp_path / "al")
    clip = torch.randn(12000)
    with torch.no_grad():
        ref = aligner.encode(clip, 16000)
        torch.testing.assert_close(loaded.encode(clip, 16000), ref)
        torch.testing.assert_close(again.encode(clip, 16000), ref)
    with pytest.raises(ConfigError, match="target_dim=16"):
        AudioCLIPAligner.from_pretrained(tmp_path / "al", target_dim=1024)


def test_from_pretrained_wav2vec2_bert_checkpoint(tmp_path):
    torch.manual_seed(1)
    plain = Wav2Vec2BertModel(tiny_config(add_adapter=False)).eval()
    plain.save_pretrained(tmp_path / "w2v")
    aligner = AudioCLIPAligner.from_pretrained(tmp_path / "w2v", target_dim=16, target_len=9)
    assert aligner.encoder_config.add_adapter and aligner.encoder_config.num_adapter_layers == 2
    assert aligner.encoder_config.layerdrop == 0.0
    torch.testing.assert_close(aligner.encoder.feature_projection.projection.weight,
                               plain.feature_projection.projection.weight)
    with torch.no_grad():
        assert aligner.encode(torch.randn(16000), 16000).shape == (1, 9, 16)
    with pytest.raises(CheckpointError):
        AudioCLIPAligner.from_pretrained(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="neither"):
        AudioCLIPAligner.from_pretrained(tmp_path / "other")


def test_bad_config():
    with pytest.raises(ConfigError):
        AudioCLIPAligner(tiny_config(), target_dim=16, target_len=1)
    with pytest.raises(ConfigError):
        AudioCLIPAligner(tiny_config(), target_dim=16, target_len=9, crop="end")


def test_bf16_weights_path(aligner):
    clip = torch.randn(16000)
    with torch.no_grad():
        ref = aligner.encode(clip, 16000)
        aligner.to(torch.bfloat16)
        half = aligner.encode(clip, 16000)
    assert half.dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(half.float(), ref, dim=-1)
    # cosine > 0.97, written as its distance to 1 so the margin reads on the error's scale
    check_margin("aligner.bf16_weights.one_minus_mean_cosine_to_fp32", 1 - float(cos[:, 1:].mean()), 0.03)


def test_fast_inference_encoder_equals_transformers():
    torch.manual_seed(0)
    config = tiny_config(left_max_position_embeddings=8, right_max_position_embeddings=3)
    model = AudioCLIPAligner(config, target_dim=16, target_len=9).eval()
    with torch.no_grad():  # make the relative-key position bias matter
        for layer in model.encoder.encoder.layers:
            layer.self_attn.distance_embedding.weight.normal_(0, 2.0)
    x = torch.randn(2, 60, 160)
    mask = torch.ones(2, 60, dtype=torch.long)
    mask[1, 35:] = 0
    with torch.no_grad():
        ref, ref_len = model._adapt(model.encoder(x, attention_mask=mask).last_hidden_state, mask.sum(1))
        fast, fast_len = model._encode_fast(x, mask.bool())
        zero_bias = model.encoder.encoder.layers[0].self_attn.distance_embedding.weight.clone()
        model.encoder.encoder.layers[0].self_attn.distance_embedding.weight.zero_()
        changed, _ = model._encode_fast(x, mask.bool())
        model.encoder.encoder.layers[0].self_attn.distance_embedding.weight.copy_(zero_bias)
    assert torch.equal(fast_len, ref_len) and fast.shape == ref.shape
    n1 = int(ref_len[1])
    assert n1 < ref.shape[1]  # item 1 is padded after the adapter too
    # the bias matters here (20x the tolerance below)
    check_margin("aligner.fast_encoder.relative_bias_effect", (changed - fast).abs().max(), 2e-3, above=True)
    torch.testing.assert_close(fast[0], ref[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast[1, :n1], ref[1, :n1], atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not int8_available(), reason="this PyTorch build has no quantized CPU engine")
def test_int8_path_stays_close_to_fp32_and_tracks_weight_changes(bf16_cpu):
    torch.manual_seed(0)
    model = AudioCLIPAligner(tiny_config(), target_dim=16, target_len=9).eval()
    audio = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        ref = model.encode(audio, 16000, precision="fp32")[:, 1:]
        q = model.encode(audio, 16000, precision="int8")[:, 1:]
        assert q.shape == ref.shape and not torch.equal(q, ref)  # really quantized
        # min cosine > 0.98, written as 1 - cosine < 0.02 (the error's scale)
        check_margin("aligner.int8.one_minus_min_cosine_to_fp32", 1 - F.cosine_similarity(q, ref, dim=-1).min(), 0.02)
        check_margin("aligner.int8.rel_error", (q - ref).norm() / ref.norm(), 0.1)
        # packed weights follow in-place weight updates (an optimizer step)
        model.proj.weight.mul_(1.0)
        for layer in model.encoder.encoder.layers:
            layer.ffn1.output_dense.weight.mul_(-1.0)
        ref2 = model.encode(audio, 16000, precision="fp32")[:, 1:]
        q2 = model.encode(audio, 16000, precision="int8")[:, 1:]
    check_margin("aligner.int8_after_weight_change.one_minus_min_cosine_to_fp32",
                 1 - F.cosine_similarity(q2, ref2, dim=-1).min(), 0.02)
    assert model.cpu_precision() == "int8"
    with pytest.raises(ConfigError):
        model.train().embed(audio, 16000, precision="int8")
    # the default never names a path the model's mode cannot run: bf16 where the CPU has it natively, else fp32
    bf16_cpu(True)
    assert model.cpu_precision() == "bf16"
    bf16_cpu(False)
    assert model.cpu_precision() == "fp32"
    with pytest.raises(ConfigError):
        model.eval().embed(audio, 16000, precision="int4")


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("facebook/w2v-bert-2.0", "config.json"), str):
        pytest.skip("w2v-bert-2.0 is in the local cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="facebook/w2v-bert-2.0"):
        AudioCLIPAligner.from_pretrained("facebook/w2v-bert-2.0", target_dim=1024, target_len=77)


@pytest.mark.parametrize("t,left,right", [(40, 8, 3), (5, 8, 3), (12, 0, 4), (30, 64, 8)])
def test_relative_key_bias_equals_a_gather_over_distance_buckets(t, left, right):
    rel = torch.randn(2, 3, t, left + right + 1)
    pos = torch.arange(t)
    buckets = (pos[None, :] - pos[:, None]).clamp(-left, right) + left
    ref = rel.gather(-1, buckets.expand(2, 3, t, t))
    assert torch.equal(relative_key_bias(rel, left, right), ref)
    assert torch.equal(relative_key_bias(rel, left, right, torch.bfloat16), ref.to(torch.bfloat16))
    with pytest.raises(ShapeError):
        relative_key_bias(rel, left + 1, right)


def test_torch_fbank_equals_transformers_feature_extractor():
    import numpy as np
    from transformers import SeamlessM4TFeatureExtractor

    reference = SeamlessM4TFeatureExtractor()
    rng = np.random.default_rng(0)
    for n in (400, 401, 5000, 16_000):
        wave = (rng.standard_normal(n) * 0.1).astype(np.float32)
        ref = reference._extract_fbank_features(wave)
        out = kaldi_fbank(wave, reference.window, reference.mel_filters)
        assert out.shape == ref.shape and out.dtype == ref.dtype
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
    # the aligner's extractor (which uses it) gives transformers' features for a padded batch
    model = AudioCLIPAligner(tiny_config(), target_dim=16, target_len=9)
    clips = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (8000, 12_345)]
    kw = dict(sampling_rate=16000, padding=True, return_tensors="np", return_attention_mask=True)
    ours, theirs = model.feature_extractor(clips, **kw), reference(clips, **kw)
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])
    np.testing.assert_allclose(ours["input_features"], theirs["input_features"], atol=1e-3, rtol=0)
