"""Text to speech through SoundStorm: the required usage, generate(texts=...) lengths, seeds, voice prompts."""

from __future__ import annotations

import warnings

import pytest
import torch

from soundweave import ConformerWrapper, SoundStorm, SpectralCodec, TextToSemantic
from soundweave.errors import ConfigError
from soundweave.models.text_to_semantic import PAD

SHORT, LONG = "a cat", "the quick brown fox jumps over the lazy dog"


def tiny_t2s():
    """A tiny TextToSemantic overfit so that the long text gives 3x the units of the short one."""
    torch.manual_seed(0)
    t2s = TextToSemantic(dim=32, source_depth=1, target_depth=1, heads=2, dim_head=16, num_semantic_token_ids=6)
    target = torch.full((2, 12), PAD)
    target[0, :4] = torch.tensor([1, 1, 2, 2])
    target[1, :] = torch.tensor([3, 3, 4, 4, 5, 5, 1, 1, 2, 2, 0, 0])
    opt = torch.optim.AdamW(t2s.parameters(), lr=3e-3)
    for _ in range(200):
        loss, _ = t2s([SHORT, LONG], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    t2s.eval()
    return t2s


def tiny_tts(t2s, semantic_table=True):
    torch.manual_seed(0)
    codec = SpectralCodec(num_quantizers=2, codebook_size=16, n_mels=32, griffin_lim_iters=2)
    net = ConformerWrapper(codebook_size=16, num_quantizers=2, conformer=dict(dim=32, depth=1, heads=2, dim_head=16),
                           num_semantic_token_ids=6 if semantic_table else None, semantic_ratio=2.0)
    model = SoundStorm(net, soundstream=codec, spear_tts_text_to_semantic=t2s, steps=2)
    # a few training steps on unit-conditioned codes, so every part has been trained
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-3)
    codes = torch.randint(0, 16, (2, 8, 2))
    units = torch.randint(0, 6, (2, 4))
    for _ in range(3):
        loss, _ = model(codes, cond_semantic_token_ids=units)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def t2s():
    return tiny_t2s()


def test_generate_texts_lengths_follow_texts_and_seed_repeats(t2s):
    model = tiny_tts(t2s)
    hop = model.soundstream.hop_length
    a = model.generate(texts=[SHORT, LONG], seed=1)
    b = model.generate(texts=[SHORT, LONG], seed=1)
    assert isinstance(a, list) and len(a) == 2
    assert a[0].shape == (4 * 2 * hop,) and a[1].shape == (12 * 2 * hop,)  # units x ratio 2 x hop samples
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    codes = model.generate(texts=[SHORT, LONG], seed=1, return_codes=True)
    other = model.generate(texts=[SHORT, LONG], seed=2, return_codes=True)
    assert codes[1].shape == (24, 2) and not all(torch.equal(x, y) for x, y in zip(codes, other, strict=True))


def test_voice_prompt_in_front_and_not_returned(t2s):
    model = tiny_tts(t2s)
    hop = model.soundstream.hop_length
    prompt = 0.1 * torch.randn(1, 6 * hop)  # 6 codec frames = 3 units at ratio 2
    out = model.generate(texts=[SHORT, LONG], prompt_audio=prompt, seed=0, return_codes=True)
    assert out[0].shape == (8, 2) and out[1].shape == (24, 2)
    prompt_codes = model.soundstream.encode(prompt)
    calls = []
    original = model.net.forward

    def spy(codes, *args, **kwargs):
        calls.append(codes.clone())
        return original(codes, *args, **kwargs)

    model.net.forward = spy
    model.generate(texts=[SHORT], prompt_audio=prompt, seed=0)
    assert torch.equal(calls[0][0, :6], prompt_codes[0])  # the prompt's codes sit in front, unmasked


def test_network_without_semantic_table_gets_one_and_round_trips(t2s, tmp_path):
    model = tiny_tts(t2s, semantic_table=False)
    assert model.net.config.num_semantic_token_ids == 6
    model.save_pretrained(tmp_path / "tts")
    again = SoundStorm.from_pretrained(tmp_path / "tts")
    assert again.text_to_semantic is not None
    assert torch.equal(again.generate(texts=[LONG], seed=3, return_codes=True)[0],
                       model.generate(texts=[LONG], seed=3, return_codes=True)[0])


def test_texts_without_text_to_semantic_is_a_clear_error():
    net = ConformerWrapper(codebook_size=16, num_quantizers=2, conformer=dict(dim=32, depth=1, heads=2, dim_head=16))
    with pytest.raises(ConfigError, match="text-to-semantic"):
        SoundStorm(net).generate(texts=["hello"])
    with pytest.raises(ConfigError, match="spear_tts_text_to_semantic must be"):
        SoundStorm(net, spear_tts_text_to_semantic=torch.nn.Linear(2, 2))


def test_required_usage_as_written(tmp_path):
    """The issue's lines, with a trained model folder standing in for /path/to/trained/model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = TextToSemantic(dim=512, source_depth=12, target_depth=12, num_text_token_ids=50000,
                                 num_semantic_token_ids=20000, use_openai_tokenizer=True)
        with torch.no_grad():
            trained.to_logits.bias[-1] = 50.0  # a stage that says EOS at once: keeps this big-model test quick
        trained.save_pretrained(tmp_path / "t2s")
        text_to_semantic = TextToSemantic(dim=512, source_depth=12, target_depth=12, num_text_token_ids=50000,
                                          num_semantic_token_ids=20000, use_openai_tokenizer=True)
    text_to_semantic.load(tmp_path / "t2s")
    assert torch.equal(text_to_semantic.to_logits.weight, trained.to_logits.weight)
    soundstream = SpectralCodec(num_quantizers=2, codebook_size=16, n_mels=32, griffin_lim_iters=2)
    conformer = ConformerWrapper(codebook_size=16, num_quantizers=2, conformer=dict(dim=32, depth=1))
    model = SoundStorm(conformer, soundstream=soundstream, spear_tts_text_to_semantic=text_to_semantic)
    generated_speech = model.generate(texts=["the rain in spain stays mainly in the plain",
                                             "the quick brown fox jumps over the lazy dog"])  # raw waveforms
    assert isinstance(generated_speech, list) and len(generated_speech) == 2
    assert all(g.ndim == 1 and g.dtype == torch.float32 and torch.isfinite(g).all() for g in generated_speech)
    # the stored stage stops at once (EOS first), so each item is one unit (2 frames at ratio 1 -> 1 frame)
    assert generated_speech[0].shape == (soundstream.hop_length,)


def test_default_voice_is_the_prompt_without_one_and_round_trips(t2s, tmp_path):
    model = tiny_tts(t2s)
    voice = torch.randint(0, 16, (6, 2))
    unprompted = model.generate(texts=[LONG], seed=5, return_codes=True)[0]
    model.set_default_voice(voice)
    default = model.generate(texts=[LONG], seed=5, return_codes=True)[0]
    explicit = model.generate(texts=[LONG], prompt_acoustic_token_ids=voice[None], seed=5, return_codes=True)[0]
    assert torch.equal(default, explicit) and default.shape == unprompted.shape == (24, 2)
    model.save_pretrained(tmp_path / "tts")
    again = SoundStorm.from_pretrained(tmp_path / "tts")
    assert torch.equal(again.default_voice, voice)
    assert torch.equal(again.generate(texts=[LONG], seed=5, return_codes=True)[0], default)
