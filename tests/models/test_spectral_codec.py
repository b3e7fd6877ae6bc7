"""SpectralCodec: the Codec interface (shapes, rates, levels, persistence), fitting, and bad input."""

import pytest
import torch

from soundweave import SoundStorm, SpectralCodec, load_codec
from soundweave.errors import CheckpointError, ConfigError, ShapeError
from soundweave.metrics import code_usage
from tests.helpers import tone

SMALL = dict(sample_rate=8000, hop_length=80, n_mels=32, num_quantizers=3, codebook_size=16, griffin_lim_iters=4)


def fitted(**overrides) -> SpectralCodec:
    codec = SpectralCodec(**{**SMALL, **overrides})
    clips = [tone(f, 1.0, 8000) for f in (220, 330, 440, 660, 880)] + [0.1 * torch.randn(8000)]
    codec.fit(clips, iters=5, generator=torch.Generator().manual_seed(0))
    return codec


def test_interface_shapes_rates_and_levels():
    codec = fitted()
    assert (codec.sample_rate, codec.hop_length, codec.frame_rate, codec.num_quantizers) == (8000, 80, 100, 3)
    assert codec.bitrate() == pytest.approx(100 * 3 * 4) and codec.seconds_to_frames(0.5) == 50
    audio = torch.randn(2, 1000) * 0.1
    codes = codec.encode(audio)
    assert codes.dtype == torch.int64 and codes.shape == (2, 13, 3)  # ceil(1000 / 80)
    assert 0 <= codes.min() and codes.max() < 16
    out = codec.decode(codes)
    assert out.shape == (2, 13 * 80) and torch.isfinite(out).all()
    assert torch.equal(codec.encode(audio, num_quantizers=2), codes[..., :2])
    assert codec.decode(codes[..., :1]).shape == (2, 13 * 80)
    assert torch.equal(codec.decode(codes), codec.decode(codes))  # deterministic (fixed Griffin-Lim seed)
    # any input rate is resampled at the edge
    assert codec.encode(torch.randn(1, 2000) * 0.1, sample_rate=16000).shape == (1, 13, 3)
    assert codec.reconstruct(audio).shape == (2, 1000)


def test_fitting_lowers_the_quantization_error_and_uses_the_codes():
    codec = SpectralCodec(**SMALL)
    clips = [tone(f, 1.0, 8000) for f in (220, 330, 440, 660, 880)]
    frames = torch.cat([codec.log_mel(c[None])[0] for c in clips])
    before = (codec.quantize(frames[None])[0][0] - frames).abs().mean()
    info = codec.fit(clips, iters=5, generator=torch.Generator().manual_seed(0))
    after = (codec.quantize(frames[None])[0][0] - frames).abs().mean()
    assert after < 0.5 * before and info["error_all_levels"] <= info["error_1_level"]
    usage = code_usage(codec.encode(torch.stack(clips)), codec.codebook_size)
    assert usage[0]["used"] >= 5  # the five tones get (at least) five level-0 codes
    # each tone comes back at its own pitch, within the resolution of 32 mel bands at 8 kHz (~1.5 semitones)
    for f in (220, 440, 880):
        recon = codec.reconstruct(tone(f, 1.0, 8000))[0]
        peak = int(torch.fft.rfft(recon).abs().argmax())  # 1 Hz bins (1 s)
        assert abs(peak - f) < 0.12 * f, (f, peak)


def test_save_load_and_soundstorm(tmp_path):
    codec = fitted()
    codec.save_pretrained(tmp_path / "codec")
    again = load_codec(tmp_path / "codec")
    assert isinstance(again, SpectralCodec) and torch.equal(again.codebooks, codec.codebooks)
    audio = torch.randn(1, 800) * 0.1
    assert torch.equal(again.encode(audio), codec.encode(audio))
    from soundweave import ConformerWrapper

    net = ConformerWrapper(codebook_size=16, num_quantizers=3, conformer=dict(dim=32, depth=1, heads=2, dim_head=16))
    model = SoundStorm(net, soundstream=again, steps=2)
    out = model.generate(seconds=0.3, batch_size=1, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 30 * 80)
    model.save_pretrained(tmp_path / "storm")
    loaded = SoundStorm.from_pretrained(tmp_path / "storm")
    assert torch.equal(loaded.soundstream.codebooks, codec.codebooks)
    with pytest.raises(ConfigError):
        SoundStorm(ConformerWrapper(codebook_size=32, num_quantizers=3, conformer=dict(dim=32, depth=1, heads=2,
                                                                                       dim_head=16)), soundstream=again)


def test_decoding_clips_each_band_to_the_fitted_range_and_old_folders_load_unclipped(tmp_path):
    from safetensors.torch import load_file, save_file

    codec = SpectralCodec(**SMALL)
    clips = [tone(f, 1.0, 8000) for f in (220, 330, 440, 660, 880)] + [0.1 * torch.randn(8000)]
    codec.fit(clips, iters=5, generator=torch.Generator().manual_seed(0))
    frames = torch.cat([codec.log_mel(c[None])[0] for c in clips])
    assert torch.allclose(codec.frame_max, frames.max(0).values)  # fit saw all these frames (< max_frames)
    # a combination no real frame has: every level's loudest code in every band
    loud = torch.stack([codec.codebooks[q].sum(-1).argmax() for q in range(3)])[None, None].expand(1, 20, 3)
    raw = sum(codec.codebooks[q][loud[..., q]] for q in range(3))
    clipped = codec.codes_to_frames(loud)
    assert (clipped <= codec.frame_max + 1e-6).all() and (raw > codec.frame_max).any()
    assert torch.equal(clipped, torch.minimum(raw, codec.frame_max))
    # real frames' codes lose nothing they had inside the range
    codes = codec.encode(torch.stack(clips[:2]))
    inside = sum(codec.codebooks[q][codes[..., q]] for q in range(3))
    keep = inside <= codec.frame_max
    assert torch.equal(codec.codes_to_frames(codes)[keep], inside[keep])
    # saved and loaded with the codec; a folder from before frame_max existed loads and decodes unclipped
    codec.save_pretrained(tmp_path / "codec")
    assert torch.equal(load_codec(tmp_path / "codec").frame_max, codec.frame_max)
    weights = load_file(tmp_path / "codec" / "model.safetensors")
    del weights["frame_max"]
    save_file(weights, tmp_path / "codec" / "model.safetensors")
    old = load_codec(tmp_path / "codec")
    assert torch.isinf(old.frame_max).all() and torch.equal(old.codes_to_frames(loud), raw)
    assert torch.equal(codec.first_levels(2).frame_max, codec.frame_max)
    books = old.codebooks.clone()
    assert torch.allclose(old.fit_frame_max(clips), codec.frame_max) and torch.equal(old.codebooks, books)
    with pytest.raises(ShapeError, match="non-empty"):
        old.fit_frame_max([torch.zeros(0)])
    # the same inside a model that holds the codec (a SoundStorm saved before frame_max existed)
    from soundweave import ConformerWrapper

    net = ConformerWrapper(codebook_size=16, num_quantizers=3, conformer=dict(dim=32, depth=1, heads=2, dim_head=16))
    SoundStorm(net, soundstream=codec).save_pretrained(tmp_path / "storm")
    storm_weights = load_file(tmp_path / "storm" / "model.safetensors")
    del storm_weights["soundstream.frame_max"]
    save_file(storm_weights, tmp_path / "storm" / "model.safetensors")
    assert torch.isinf(SoundStorm.from_pretrained(tmp_path / "storm").soundstream.frame_max).all()
    # other missing weights are still an error
    del weights["codebooks"]
    save_file(weights, tmp_path / "codec" / "model.safetensors")
    with pytest.raises(CheckpointError, match="codebooks"):
        load_codec(tmp_path / "codec")


def test_first_levels_is_the_lower_bitrate_codec_and_fits_a_smaller_soundstorm(tmp_path):
    codec = fitted()
    two = codec.first_levels(2)
    assert isinstance(two, SpectralCodec) and two.num_quantizers == 2 and codec.num_quantizers == 3
    assert two.bitrate() == pytest.approx(codec.bitrate(2))
    audio = torch.randn(2, 1000) * 0.1
    codes = two.encode(audio)
    assert torch.equal(codes, codec.encode(audio, num_quantizers=2))
    assert torch.equal(two.decode(codes), codec.decode(codes))
    two.save_pretrained(tmp_path / "two")
    assert torch.equal(load_codec(tmp_path / "two").codebooks, codec.codebooks[:2])
    from soundweave import ConformerWrapper

    net = ConformerWrapper(codebook_size=16, num_quantizers=2, conformer=dict(dim=32, depth=1, heads=2, dim_head=16))
    with pytest.raises(ConfigError, match="3 quantizers"):
        SoundStorm(net, soundstream=codec)  # the 3-level codec does not fit a 2-level network ...
    storm = SoundStorm(net, soundstream=two, steps=2)  # ... its first two levels do
    assert storm.generate(seconds=0.2, batch_size=1, generator=torch.Generator().manual_seed(0)).shape == (1, 20 * 80)
    for bad in (0, 4, 1.5):
        with pytest.raises(ConfigError):
            codec.first_levels(bad)


def test_hifi_preset_is_the_40_level_256_mel_codec():
    from soundweave.training.codec import build_codec

    hifi = build_codec("spectral", "hifi")
    assert (hifi.sample_rate, hifi.hop_length, hifi.config.n_mels, hifi.num_quantizers) == (16000, 320, 256, 40)
    assert hifi.bitrate() == pytest.approx(20000) and hifi.first_levels(8).bitrate() == pytest.approx(4000)
    with pytest.raises(ConfigError, match="hifi"):
        build_codec("soundstream", "hifi")  # a SpectralCodec preset only


def test_bad_input():
    with pytest.raises(ConfigError):
        SpectralCodec(hop_length=0)
    with pytest.raises(ConfigError):
        SpectralCodec(n_mels=10_000)
    with pytest.raises(ConfigError):
        SpectralCodec(codebook_size=1)
    with pytest.raises(ConfigError):
        SpectralCodec(sample_rate=-5)
    codec = SpectralCodec(**SMALL)
    with pytest.raises(ShapeError):
        codec.decode(torch.full((1, 4, 3), 99))
    with pytest.raises(ShapeError):
        codec.decode(torch.zeros(1, 4, 3))  # float codes
    with pytest.raises(ShapeError):
        codec.decode(torch.zeros(1, 4, 5, dtype=torch.long))  # more levels than the codec has
    with pytest.raises(ConfigError):
        codec.encode(torch.randn(1, 800), num_quantizers=4)
    with pytest.raises(ShapeError):
        codec.encode(torch.randn(2, 2, 800))  # stereo
    with pytest.raises(SoundweaveErrorFamily):
        codec.encode(torch.full((1, 800), float("nan")))
    with pytest.raises(ShapeError):
        codec.fit([])
    with pytest.raises(CheckpointError):
        load_codec("/nonexistent/codec-folder")


from soundweave.errors import SoundweaveError as SoundweaveErrorFamily  # noqa: E402
