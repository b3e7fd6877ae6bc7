"""SoundStream: shapes, padding, determinism, bitrate scalability, causality, persistence, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from soundweave import SoundStream
from soundweave.errors import AudioError, ConfigError, ShapeError
from soundweave.nn.attention import apply_rotary
from soundweave.nn.conv import PaddedConv1d, PaddedConvTranspose1d
from soundweave.nn.local_attention import LocalAttention

TINY = dict(sample_rate=8000, channels=4, channel_mults=(2, 4), strides=(2, 4), dilations=(1, 3), codebook_dim=16,
            codebook_size=32, rq_num_quantizers=3, attn_window_size=4, attn_depth=1, attn_heads=2, attn_dim_head=8,
            multi_spectral_window_powers_of_two=(6, 7, 8), stft_loss_fft_sizes=(64, 128))


def tiny(**kw):
    return SoundStream(**{**TINY, **kw})


def test_required_usage_config():
    codec = SoundStream(codebook_size=1024, rq_num_quantizers=12, attn_window_size=128, attn_depth=2)
    assert codec.sample_rate == 24000 and codec.hop_length == 480
    assert codec.num_quantizers == 12 and codec.codebook_size == 1024
    assert codec.seconds_to_frames(30) == 1500 and codec.frame_rate == 50
    assert codec.bitrate() == 6000
    audio = torch.randn(2, 10080)  # not a multiple of the hop: padded to 22 frames
    codes = codec.encode(audio)
    assert codes.shape == (2, math.ceil(10080 / 480), 12) and codes.dtype == torch.int64
    assert 0 <= codes.min() and codes.max() < 1024
    out = codec.decode(codes)
    assert out.shape == (2, codes.shape[1] * 480) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_shapes_and_padding():
    codec = tiny().eval()
    hop = codec.hop_length
    for length in (1, hop - 1, hop, 5 * hop + 3):
        codes = codec.encode(torch.randn(3, length))
        assert codes.shape == (3, math.ceil(length / hop), 3)
        assert codec.decode(codes).shape == (3, codes.shape[1] * hop)
    one = codec.encode(torch.randn(100))
    assert one.shape == (1, math.ceil(100 / hop), 3)
    assert codec.encode(torch.randn(2, 1, 100)).shape == (2, math.ceil(100 / hop), 3)
    # (N, Q) is one item
    assert codec.decode(one[0]).shape == (1, one.shape[1] * hop)
    assert torch.equal(codec.decode_from_codebook_indices(one), codec.decode(one))
    assert codec.reconstruct(torch.randn(2, 77)).shape == (2, 77)


def test_encode_is_deterministic_and_never_touches_the_codebooks():
    codec = tiny()
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    audio = torch.randn(2, 400)
    codec.train()
    a = codec.encode(audio)
    codec.eval()
    b = codec.encode(audio)
    assert torch.equal(a, b)
    after = codec.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # a fresh model has distinct random codebooks (not the zeros k-means init starts from)
    books = codec.rvq.codebooks
    assert books.abs().sum() > 0 and len(torch.unique(books[0], dim=0)) == codec.codebook_size
    assert len(torch.unique(a)) > 1


def test_fewer_levels_are_a_prefix_and_decode():
    codec = tiny().eval()
    audio = torch.randn(2, 320)
    full = codec.encode(audio)
    two = codec.encode(audio, num_quantizers=2)
    assert torch.equal(two, full[..., :2])
    assert codec.decode(two).shape == (2, full.shape[1] * codec.hop_length)
    assert codec.bitrate(2) == pytest.approx(codec.frame_rate * 2 * 5)
    # more levels = closer to the continuous latents
    latents = codec.encode_latents(F.pad(audio, (0, (-320) % codec.hop_length)))
    errs = [(codec.quantize_latents(latents, q)[0] - latents).pow(2).mean() for q in (1, 2, 3)]
    assert errs[0] > errs[1] > errs[2]


def test_sample_rate_argument_resamples():
    codec = tiny().eval()
    audio = torch.randn(1, 1600)  # 0.1 s at 16 kHz -> 800 samples at 8 kHz
    assert codec.encode(audio, sample_rate=16000).shape[1] == math.ceil(800 / codec.hop_length)


def test_training_forward_runs_the_library_quantizer():
    codec = tiny(rq_quantize_dropout=True)
    codec.train()
    assert not bool(codec.rvq.layers[0]._codebook.initted)
    loss, parts = codec(torch.randn(4, 256) * 0.1, return_loss_breakdown=True)
    assert torch.isfinite(loss) and set(parts) >= {"wave", "mel", "stft", "commit", "total"}
    loss.backward()
    assert codec.encoder.net[0].conv.weight.grad is not None
    assert bool(codec.rvq.layers[0]._codebook.initted)  # k-means ran on the first training batch
    # quantizer dropout: over several batches some levels are dropped (-1) in training codes
    dropped = False
    for _ in range(10):
        out = codec.compute_loss(torch.randn(2, 128) * 0.1)
        dropped |= bool((out.codes == -1).any())
    assert dropped
    codec.eval()
    x = torch.randn(2, 128) * 0.1
    assert codec(x).item() == pytest.approx(codec(x).item())
    recon = codec(x, return_recons_only=True)
    assert recon.shape == x.shape


def test_causal_codec_ignores_the_future():
    codec = tiny(causal=True).eval()
    hop = codec.hop_length
    x = torch.randn(1, 40 * hop)
    y = x.clone()
    y[:, 25 * hop:] = torch.randn(1, 15 * hop)
    with torch.no_grad():
        za, zb = codec.encode_latents(x), codec.encode_latents(y)
    assert torch.allclose(za[:, :25], zb[:, :25], atol=1e-5)
    assert not torch.allclose(za[:, 25:], zb[:, 25:])
    codes = codec.encode(x)
    other = codes.clone()
    other[:, 30:] = (other[:, 30:] + 1) % codec.codebook_size
    a, b = codec.decode(codes), codec.decode(other)
    assert torch.allclose(a[:, : 30 * hop], b[:, : 30 * hop], atol=1e-5)
    assert not torch.allclose(a[:, 30 * hop:], b[:, 30 * hop:])


def test_save_and_load_roundtrip(tmp_path):
    codec = tiny(strides=(2, 5), causal=True)
    codec.train()
    codec(torch.randn(2, 300) * 0.1).backward()  # k-means init + EMA state to persist
    codec.eval()
    codec.save_pretrained(tmp_path / "c")
    loaded = SoundStream.from_pretrained(tmp_path / "c")
    assert loaded.config == codec.config and loaded.config.strides == (2, 5)
    audio = torch.randn(2, 333)
    assert torch.equal(loaded.encode(audio), codec.encode(audio))
    codes = codec.encode(audio)
    assert torch.allclose(loaded.decode(codes), codec.decode(codes), atol=1e-6)


@pytest.mark.parametrize("bad", [
    torch.zeros(2, 2, 100),  # stereo
    torch.zeros(2, 3, 4, 5),  # 4-D
])
def test_bad_audio_shapes(bad):
    with pytest.raises(ShapeError):
        tiny().encode(bad)


def test_bad_audio_values():
    codec = tiny()
    with pytest.raises(AudioError):
        codec.encode(torch.zeros(2, 0))
    with pytest.raises(AudioError):
        codec.encode(torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(AudioError):
        codec.encode(torch.randn(100), sample_rate=-5)


@pytest.mark.parametrize("codes", [
    torch.zeros(1, 4, 3),  # float
    torch.zeros(1, 4, 4, dtype=torch.long),  # more levels than the codec has
    torch.full((1, 4, 3), 32, dtype=torch.long),  # out of range (codebook 32)
    torch.full((1, 4, 3), -1, dtype=torch.long),
    torch.zeros(1, 1, 4, 3, dtype=torch.long),  # 4-D
    torch.zeros(1, 0, 3, dtype=torch.long),  # no frames
    torch.zeros(4, dtype=torch.long),  # 1-D
])
def test_bad_codes(codes):
    with pytest.raises(ShapeError):
        tiny().decode(codes)


@pytest.mark.parametrize("kwargs", [
    dict(channel_mults=(2, 4, 8)),  # 3 mults for 2 strides
    dict(strides=()), dict(channel_mults=(), strides=()),
    dict(codebook_size=1), dict(rq_num_quantizers=0), dict(sample_rate=10),
    dict(rq_ema_decay=1.5), dict(attn_window_size=0), dict(rq_quantize_dropout_cutoff_index=3),
])
def test_bad_config(kwargs):
    with pytest.raises(ConfigError):
        tiny(**kwargs)


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan"), "2"])
def test_bad_seconds(seconds):
    with pytest.raises(ConfigError):
        tiny().seconds_to_frames(seconds)
    with pytest.raises(ConfigError):
        tiny().encode(torch.randn(100), num_quantizers=4)


def test_seconds_to_frames():
    codec = tiny()  # 8 kHz, hop 8
    assert codec.seconds_to_frames(1) == 1000
    assert codec.seconds_to_frames(0.0001) == 1
    assert codec.seconds_to_frames(0.0011) == 2


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length,stride,kernel", [(40, 4, 8), (41, 4, 8), (33, 1, 7), (10, 5, 10)])
def test_padded_convs_lengths(causal, length, stride, kernel):
    conv = PaddedConv1d(2, 3, kernel, stride=stride, causal=causal)
    assert conv(torch.randn(1, 2, length)).shape[-1] == math.ceil(length / stride)
    up = PaddedConvTranspose1d(2, 3, 2 * stride, stride, causal=causal)
    assert up(torch.randn(1, 2, length)).shape[-1] == length * stride


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n,window", [(50, 8), (7, 8), (64, 16), (3, 1)])
def test_local_attention_equals_dense_banded_attention(causal, n, window):
    attn = LocalAttention(32, window, heads=2, dim_head=16, causal=causal)
    x = torch.randn(2, n, 32)
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, n - 2:] = False
    out = attn(x, mask)
    q, k, v = rearrange(attn.to_qkv(x), "b n (three h d) -> three b h n d", three=3, h=2)
    cos, sin = attn.rotary(n)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    delta = torch.arange(n)[:, None] - torch.arange(n)[None]
    band = ((delta >= 0) & (delta <= window)) if causal else delta.abs() <= window
    full = band[None, None] & mask[:, None, None, :]
    full = full | ~full.any(-1, keepdim=True)
    ref = attn.to_out(rearrange(F.scaled_dot_product_attention(q, k, v, attn_mask=full), "b h n d -> b n (h d)"))
    assert torch.allclose(out[mask], ref[mask], atol=1e-5)


def test_spectral_losses_are_zero_for_identical_audio_and_bounded_for_silence():
    from soundweave.nn.spectral_losses import MultiResolutionSTFTLoss, MultiScaleMelLoss

    stft, mel = MultiResolutionSTFTLoss((128, 256)), MultiScaleMelLoss(8000, (6, 7, 8))
    x = torch.randn(2, 2000) * 0.1
    assert stft(x, x).item() == pytest.approx(0, abs=1e-6) and mel(x, x).item() == pytest.approx(0, abs=1e-5)
    silent = torch.zeros(2, 2000)
    assert stft(silent, x * 0.1).item() < 50  # a silent crop does not divide by ~0
    assert stft(x, x * 0.5) > stft(x, x * 0.9) and mel(x, x * 0.5) > mel(x, x * 0.9)
