"""The transformers codecs (EnCodec, DAC, Mimi) behind soundweave's Codec interface, offline: tiny random configs
saved with transformers' own save_pretrained, loaded through load_codec, round-tripped, driven by SoundStorm."""

from __future__ import annotations

import json

import pytest
import torch

import soundweave
from soundweave import ConformerWrapper, SoundStorm, load_codec
from soundweave.errors import CheckpointError, ConfigError

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster on a busy machine

SR = 8000  # the tiny models' rate; audio is given at 22050 Hz and resampled at the edge
INPUT_SR = 22050


def tiny_encodec(**kw):
    # 500 frames/s x 5 bits = 2.5 kbps per level: 5.0 kbps = 2 levels, 10.0 kbps = 4 levels
    config = dict(target_bandwidths=[5.0, 10.0], sampling_rate=SR, hidden_size=16, num_filters=4,
                  upsampling_ratios=[4, 4], codebook_size=32, num_lstm_layers=1)
    return transformers.EncodecModel(transformers.EncodecConfig(**{**config, **kw}))


def tiny_dac():
    return transformers.DacModel(transformers.DacConfig(
        encoder_hidden_size=4, downsampling_ratios=[2, 5], decoder_hidden_size=16, n_codebooks=3, codebook_size=32,
        codebook_dim=4, sampling_rate=SR))


def tiny_mimi():
    return transformers.MimiModel(transformers.MimiConfig(
        sampling_rate=SR, hidden_size=16, num_filters=4, upsampling_ratios=[4, 4], codebook_size=32, codebook_dim=8,
        num_quantizers=4, vector_quantization_hidden_dimension=8, upsample_groups=4, num_hidden_layers=1,
        intermediate_size=32, num_attention_heads=2, num_key_value_heads=2, sliding_window=16,
        max_position_embeddings=256))


def spread_codebooks(model):
    """Random codebooks (EnCodec and Mimi initialise theirs to zeros: every frame would get code 0)."""
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith(("codebook.embed", "codebook.embed_sum")):
                buf.normal_(0.0, 0.05)
    return model


# kind, transformers model builder, loader options, expected class, hop, levels, codebook size
KINDS = {
    "encodec-5kbps": (tiny_encodec, {"bandwidth": 5.0}, "EncodecCodec", 16, 2, 32),
    "encodec-10kbps": (tiny_encodec, {"bandwidth": 10.0}, "EncodecCodec", 16, 4, 32),
    "dac": (tiny_dac, {}, "DacCodec", 10, 3, 32),
    "mimi": (tiny_mimi, {}, "MimiCodec", 32, 4, 32),  # hop = 4 * 4 * latent stride 2
}


@pytest.fixture(params=sorted(KINDS))
def saved(request, tmp_path):
    build, options, cls, hop, levels, size = KINDS[request.param]
    folder = tmp_path / "hf"
    spread_codebooks(build()).save_pretrained(folder)  # a transformers folder, as the hub has them
    return folder, options, cls, hop, levels, size


def test_load_codec_reads_a_transformers_folder_and_round_trips(saved, tmp_path):
    folder, options, cls, hop, levels, size = saved
    codec = load_codec(folder, **options)
    assert type(codec).__name__ == cls and type(codec) is getattr(soundweave, cls)
    assert codec.sample_rate == SR and codec.hop_length == hop and codec.frame_rate == SR / hop
    assert codec.num_quantizers == levels and codec.codebook_size == size and not codec.training
    if "bandwidth" in options:  # EnCodec: the bandwidth is the bitrate of the levels it chooses
        assert codec.bitrate() == 1000 * options["bandwidth"]

    seconds = 0.3
    audio = 0.3 * torch.randn(2, int(seconds * INPUT_SR))
    codes = codec.encode(audio, sample_rate=INPUT_SR)
    frames = codec.seconds_to_frames(seconds)
    assert codes.dtype == torch.int64 and tuple(codes.shape) == (2, frames, levels)
    assert 0 <= int(codes.min()) and int(codes.max()) < size and codes.unique().numel() > 1
    assert torch.equal(codec.encode(audio, sample_rate=INPUT_SR), codes)  # deterministic
    decoded = codec.decode(codes)
    assert decoded.dtype == torch.float32 and tuple(decoded.shape) == (2, frames * hop)
    assert codec.decode(codes[:, :, :1]).shape == decoded.shape  # fewer levels decode too

    odd = torch.randn(1, 7 * hop + 3)  # not a multiple of the hop, at the codec's own rate: the tail is padded
    assert codec.encode(odd).shape == (1, 8, levels) and codec.decode(codec.encode(odd)).shape == (1, 8 * hop)

    ours = codec.save_pretrained(tmp_path / "ours")
    stored = json.loads((ours / "config.json").read_text())
    assert stored["model_type"] in ("encodec", "dac", "mimi") and (ours / "model.safetensors").is_file()
    again = load_codec(ours)  # the setting (bandwidth / num_quantizers) travels in the transformers config
    assert type(again) is type(codec) and again.num_quantizers == levels
    assert torch.equal(again.encode(audio, sample_rate=INPUT_SR), codes)
    model_cls = type(codec.model)  # and transformers itself reads the folder
    assert isinstance(model_cls.from_pretrained(ours), model_cls)


def test_soundstorm_trains_generates_and_saves_with_a_pretrained_codec(saved, tmp_path):
    folder, options, _, hop, levels, size = saved
    codec = load_codec(folder, **options)
    net = ConformerWrapper(codebook_size=size, num_quantizers=levels, conformer=dict(dim=32, depth=1, heads=2,
                                                                                     dim_head=16))
    model = SoundStorm(net, soundstream=codec, steps=4)
    clip = 0.3 * torch.randn(2, int(0.25 * SR))
    before = [p.detach().clone() for p in net.parameters()]
    codec_before = {k: v.clone() for k, v in codec.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    assert not codec.training
    loss, _ = model(codec.encode(clip))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters(), strict=True))
    assert all(torch.equal(codec_before[k], v) for k, v in codec.state_dict().items())  # frozen
    model.eval()
    audio = model.generate(seconds=0.1, batch_size=1, seed=0)
    assert tuple(audio.shape) == (1, codec.seconds_to_frames(0.1) * hop)

    restored = SoundStorm.from_pretrained(model.save_pretrained(tmp_path / "storm"))
    assert type(restored.soundstream) is type(codec) and restored.soundstream.num_quantizers == levels
    assert torch.equal(restored.soundstream.encode(clip), codec.encode(clip))
    codes = codec.encode(clip)
    assert torch.allclose(restored.soundstream.decode(codes), codec.decode(codes), atol=1e-6)
    assert torch.equal(restored.generate(seconds=0.1, batch_size=1, seed=0), audio)


def test_codec_and_conformer_must_agree_on_levels_and_codebook(tmp_path):
    spread_codebooks(tiny_encodec()).save_pretrained(tmp_path)
    codec = load_codec(tmp_path, bandwidth=5.0)  # 2 levels x 32
    conformer = dict(dim=32, depth=1, heads=2, dim_head=16)
    with pytest.raises(ConfigError, match="quantizers"):
        SoundStorm(ConformerWrapper(codebook_size=32, num_quantizers=4, conformer=conformer), soundstream=codec)
    with pytest.raises(ConfigError, match="codebook"):
        SoundStorm(ConformerWrapper(codebook_size=1024, num_quantizers=2, conformer=conformer), soundstream=codec)


def test_settings_defaults_and_unsupported_configs(tmp_path):
    from soundweave import DacCodec, EncodecCodec, MimiCodec

    assert EncodecCodec(tiny_encodec().config).bandwidth == 10.0  # 6.0 not offered: the highest
    assert EncodecCodec(model=tiny_encodec(target_bandwidths=[1.5, 6.0, 12.0])).bandwidth == 6.0
    with pytest.raises(ConfigError, match="target_bandwidths"):
        EncodecCodec(model=tiny_encodec(), bandwidth=7.0)
    with pytest.raises(ConfigError, match="mono"):
        EncodecCodec(model=tiny_encodec(audio_channels=2))
    with pytest.raises(ConfigError, match="chunk"):
        EncodecCodec(model=tiny_encodec(chunk_length_s=0.5, overlap=0.1))
    assert DacCodec(model=tiny_dac(), num_quantizers=2).num_quantizers == 2
    with pytest.raises(ConfigError, match="num_quantizers"):
        DacCodec(model=tiny_dac(), num_quantizers=4)
    mimi = MimiCodec(model=spread_codebooks(tiny_mimi()), num_quantizers=2)
    assert mimi.encode(torch.randn(1, 320)).shape == (1, 10, 2) and mimi.num_semantic_quantizers == 1
    with pytest.raises(ConfigError, match="transformers"):
        DacCodec(model=tiny_mimi())
    spread_codebooks(tiny_encodec()).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="bandwidth"):
        load_codec(tmp_path, num_quantizers=2)  # EnCodec's levels are chosen by bandwidth
    codec = load_codec(tmp_path)
    codec.train()
    assert not codec.training and not codec.model.training  # inference wrappers stay in eval mode


def test_normalizing_encodec_encodes_the_clip_at_unit_rms():
    from soundweave import EncodecCodec

    codec = EncodecCodec(model=spread_codebooks(tiny_encodec(normalize=True)))
    audio = torch.randn(1, 800)
    loud, quiet = codec.encode(audio), codec.encode(0.05 * audio)
    assert (loud == quiet).float().mean() > 0.99  # the codes ignore the level
    assert codec.decode(loud).shape == (1, 800)


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """Offline, with an empty cache: nothing can be found (whatever this machine has cached)."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(hub_constants, "HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)


@pytest.mark.usefixtures("empty_hub_cache")
def test_an_offline_hub_id_says_how_to_get_the_weights():
    from soundweave import DacCodec, EncodecCodec, MimiCodec

    with pytest.raises(CheckpointError, match="`hf download facebook/encodec_24khz`"):
        load_codec("facebook/encodec_24khz")
    for cls, hub_id in ((EncodecCodec, "facebook/encodec_32khz"), (DacCodec, "descript/dac_16khz"),
                        (MimiCodec, "kyutai/mimi")):
        with pytest.raises(CheckpointError, match=f"`hf download {hub_id}`"):
            cls.from_pretrained(hub_id)


def test_folders_that_are_not_codecs_are_checkpoint_errors(tmp_path):
    from soundweave import DacCodec, EncodecCodec

    bert = tmp_path / "bert"
    transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=8).save_pretrained(bert)
    with pytest.raises(CheckpointError, match="not a codec"):
        load_codec(bert)
    with pytest.raises(CheckpointError, match="'bert'"):
        EncodecCodec.from_pretrained(bert)
    dac = tmp_path / "dac"
    tiny_dac().save_pretrained(dac)
    with pytest.raises(CheckpointError, match="'dac', not 'encodec'"):
        EncodecCodec.from_pretrained(dac)
    (dac / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="could not load"):
        DacCodec.from_pretrained(dac)
    with pytest.raises(CheckpointError, match="does not exist"):
        DacCodec.from_pretrained(tmp_path / "nowhere" / "at" / "all")


def test_the_cli_takes_a_transformers_codec_folder(tiny_corpus, tmp_path):
    """`train soundstorm --codec`, `codec encode|decode` and `eval codec` with a folder transformers wrote."""
    import numpy as np
    import soundfile as sf

    from tests.helpers import invoke_cli, parse_json

    folder = tmp_path / "encodec"
    spread_codebooks(tiny_encodec()).save_pretrained(folder)
    storm = tmp_path / "storm"
    result = invoke_cli("train", "soundstorm", "--data", tiny_corpus, "--codec", folder, "--out", storm, "--steps", 2,
                        "--batch-size", 2, "--seconds", 0.5, "--preset", "tiny", "--dim", 32, "--depth", 1)
    assert result.exit_code == 0, result.output
    assert SoundStorm.from_pretrained(storm).soundstream.__class__.__name__ == "EncodecCodec"
    wav = next((tiny_corpus / "audio").glob("*.wav"))
    result = invoke_cli("codec", "encode", wav, "--model", folder, "--out", tmp_path / "codes.npy")
    assert result.exit_code == 0, result.output
    codes = np.load(tmp_path / "codes.npy")
    assert codes.dtype == np.int64 and codes.shape[2] == load_codec(folder).num_quantizers
    result = invoke_cli("codec", "decode", tmp_path / "codes.npy", "--model", folder, "--out", tmp_path / "out.wav")
    assert result.exit_code == 0 and sf.info(tmp_path / "out.wav").samplerate == SR
    result = invoke_cli("eval", "codec", "--model", folder, "--data", tiny_corpus, "--max-clips", 2)
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["sample_rate"] == SR
