import json

import pytest
import torch

from soundweave import (
    AudioSpectrogramTransformer,
    MuLaN,
    MuLaNEmbedQuantizer,
    PretrainedTextTransformer,
    TextTransformer,
)
from soundweave.audio import resample
from soundweave.errors import ConfigError, EmptyAudioError, NonFiniteAudioError, ShapeError
from soundweave.models.base import load_pretrained
from soundweave.models.tokenizers import ByteTokenizer, CaptionTokenizer, check_texts

SR = 16000
AST_KW = dict(
    dim=32,
    depth=1,
    heads=2,
    dim_head=16,
    spec_n_fft=256,
    spec_win_length=256,
    spec_hop_length=64,
    n_mels=32,
    patch_size=(16, 8),
    max_seconds=1.0,
)


def tiny_mulan(loss="infonce", tokenizer=None, num_tokens=300) -> MuLaN:
    torch.manual_seed(0)
    audio = AudioSpectrogramTransformer(**AST_KW)
    text = TextTransformer(
        dim=32, depth=1, heads=2, dim_head=16, num_tokens=num_tokens, max_seq_len=24, tokenizer=tokenizer
    )
    return MuLaN(audio, text, dim_latent=16, loss=loss)


def noise(b, t, seed=0):
    return torch.randn(b, t, generator=torch.Generator().manual_seed(seed)) * 0.1


def test_required_usage_exactly():
    torch.manual_seed(0)
    audio_transformer = AudioSpectrogramTransformer(
        dim=512,
        depth=6,
        heads=8,
        dim_head=64,
        spec_n_fft=128,
        spec_win_length=24,
        spec_aug_stretch_factor=0.8,
    )
    text_transformer = TextTransformer(dim=512, depth=6, heads=8, dim_head=64)
    mulan = MuLaN(audio_transformer=audio_transformer, text_transformer=text_transformer)
    wavs = torch.randn(2, 1024)
    texts = torch.randint(0, 20000, (2, 256))
    loss = mulan(wavs, texts)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert mulan.audio.to_patch[0].weight.grad is not None and mulan.text.token_emb.weight.grad is not None
    embeds = mulan.get_audio_latents(wavs)
    assert embeds.shape == (2, 128)
    assert torch.allclose(embeds.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert mulan.get_text_latents(texts).shape == (2, 128)
    assert mulan.get_text_latents(raw_texts=["a slow piano melody"]).shape == (1, 128)
    quantizer = MuLaNEmbedQuantizer(
        mulan=mulan, conditioning_dims=(1024, 1024, 1024), namespaces=("semantic", "coarse", "acoustic")
    )
    conds = quantizer(wavs=wavs, namespace="semantic")
    assert conds.shape == (2, 8, 1024)
    assert quantizer(texts=texts, namespace="coarse").shape == (2, 8, 1024)


def test_ast_padding_mask_matches_unpadded_clip():
    model = AudioSpectrogramTransformer(**AST_KW).eval()
    a = noise(1, 6000, seed=1)
    padded = torch.cat([a, torch.zeros(1, 4000)], dim=1)
    other = noise(1, 10000, seed=2)
    batch = torch.cat([padded, other])
    mask = torch.ones_like(batch, dtype=torch.bool)
    mask[0, 6000:] = False
    with torch.no_grad():
        alone = model(a)
        together = model(batch, mask=mask)
        unmasked = model(padded)
    assert torch.allclose(together[0], alone[0], atol=1e-4)
    assert not torch.allclose(unmasked[0], alone[0], atol=1e-3)  # without the mask, padding counts


def test_ast_extrapolates_and_specaugment_only_in_training():
    model = AudioSpectrogramTransformer(**{**AST_KW, "max_seconds": 30.0})
    long = noise(2, SR * 3)  # far longer than anything "trained"
    model.eval()
    with torch.no_grad():
        a, b = model(long), model(long)
    assert a.shape == (2, 32) and torch.isfinite(a).all() and torch.equal(a, b)
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        c = model(long)
        torch.manual_seed(1)
        d = model(long)
    assert not torch.allclose(c, d)  # SpecAugment / patch dropout are random in training
    assert not torch.allclose(c, a)


def test_sample_rate_is_resampled_at_the_edge():
    mulan = tiny_mulan().eval()
    wav22 = noise(1, 22050 // 2)
    with torch.no_grad():
        direct = mulan.get_audio_latents(wav22, sample_rate=22050)
        manual = mulan.get_audio_latents(resample(wav22, 22050, SR))
    assert torch.allclose(direct, manual, atol=1e-5)
    scores = mulan.score(torch.cat([wav22, wav22]), ["a piano", "drums", "a cello"], sample_rate=22050)
    assert scores.shape == (3, 2) and torch.allclose(scores[:, 0], scores[:, 1], atol=1e-5)


def test_bad_audio_inputs():
    mulan = tiny_mulan().eval()
    with torch.no_grad():
        silence = mulan.get_audio_latents(torch.zeros(2, 8000))
        clipped = mulan.get_audio_latents((noise(1, 8000) * 100).clamp(-1, 1))
    # silence and clipped noise are valid input: finite unit-norm embeddings
    for z in (silence, clipped):
        assert torch.isfinite(z).all() and torch.allclose(z.norm(dim=-1), torch.ones(len(z)), atol=1e-5)
    assert not torch.allclose(silence[:1], clipped, atol=1e-3)
    # shorter than one patch: (patch frames - 1) * hop samples
    assert mulan.audio.min_samples == 7 * 64
    mulan.get_audio_latents(torch.zeros(1, 7 * 64))
    with pytest.raises(ShapeError, match="shorter than one patch"):
        mulan.get_audio_latents(torch.zeros(1, 7 * 64 - 1))
    mask = torch.ones(2, 4000, dtype=torch.bool)
    mask[1, 100:] = False
    with pytest.raises(ShapeError, match=r"item\(s\) \[1\]"):
        mulan.get_audio_latents(noise(2, 4000), mask=mask)
    with pytest.raises(NonFiniteAudioError):
        mulan.get_audio_latents(torch.full((1, 8000), float("nan")))
    with pytest.raises(EmptyAudioError):
        mulan.get_audio_latents(torch.zeros(1, 0))
    with pytest.raises(ShapeError):
        mulan.get_audio_latents(torch.zeros(1, 2, 8000))


def test_over_long_audio_is_windowed_or_cropped():
    mulan = tiny_mulan().eval()
    size = mulan.audio.max_samples  # 1 s
    assert size == SR
    wav = noise(1, int(size * 2.5), seed=3)
    with torch.no_grad():
        windows = [mulan.get_audio_latents(wav[:, i : i + size]) for i in range(0, wav.shape[1], size)]
        expected = torch.nn.functional.normalize(sum(windows), dim=-1)
        assert torch.allclose(mulan.get_audio_latents(wav), expected, atol=1e-5)
        cropped = mulan.get_audio_latents(wav, long_audio="crop")
        assert torch.allclose(cropped, windows[0], atol=1e-5)
        assert torch.allclose(mulan.audio(wav), mulan.audio(wav[:, :size]), atol=1e-5)  # the AST crops
        # a last window shorter than one patch is ignored
        tail = torch.cat([wav[:, :size], wav[:, :100]], dim=1)
        assert torch.allclose(mulan.get_audio_latents(tail), windows[0], atol=1e-5)
    with pytest.raises(ConfigError):
        mulan.get_audio_latents(wav, long_audio="nope")


def test_bad_text_inputs():
    mulan = tiny_mulan().eval()
    for bad in ("", "   ", ["ok", ""], []):
        with pytest.raises(ShapeError):
            mulan.get_text_latents(raw_texts=bad)
    with pytest.raises(ShapeError):
        mulan.get_text_latents(raw_texts=[3])
    with pytest.raises(ShapeError):
        mulan.get_text_latents(torch.tensor([[1, 400]]))  # id >= num_tokens
    with pytest.raises(ShapeError):
        mulan.get_text_latents(torch.rand(1, 4))
    # over-long captions are truncated to max_seq_len tokens (the start is kept)
    long = "a slow piano melody " * 20
    with torch.no_grad():
        a = mulan.get_text_latents(raw_texts=[long])
        b = mulan.get_text_latents(raw_texts=[long + " with trumpets and drums"])
        c = mulan.get_text_latents(raw_texts=["a fast trumpet"])
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c)
    ids, mask = mulan.text.tokenize([long, "x"])
    assert ids.shape == (2, 23) and mask[1].sum() == 3  # bos + 'x' + eos


def test_text_ids_and_strings_agree_and_padding_is_ignored():
    mulan = tiny_mulan().eval()
    ids, mask = mulan.text.tokenize(["piano", "a long caption about a cello"])
    with torch.no_grad():
        both = mulan.get_text_latents(ids)
        single = mulan.get_text_latents(raw_texts="piano")
        strings = mulan.get_text_latents(["piano", "a long caption about a cello"])
    assert torch.allclose(both[0], single[0], atol=1e-5)
    assert torch.allclose(both, strings, atol=1e-6)


def test_tokenizers():
    byte = ByteTokenizer()
    assert byte.decode(byte.encode("Piano é")) == "piano é"
    ids, mask = byte(["ab", "abcd"], max_length=5)
    assert ids.tolist() == [[1, 100, 101, 2, 0], [1, 100, 101, 102, 2]]
    assert mask.tolist() == [[True] * 4 + [False], [True] * 5]
    captions = ["a slow piano melody in C major", "a fast trumpet tune", "slow cello chords in A minor"] * 10
    bpe = CaptionTokenizer.train(captions, vocab_size=300)
    assert bpe.decode(bpe.encode("a slow piano melody")).strip() == "a slow piano melody"
    assert len(bpe.encode("a slow piano melody")) < len(byte.encode("a slow piano melody"))
    assert bpe.encode("zebra xylophone")  # unseen words still encode (byte fallback)
    assert check_texts("hi") == ["hi"]
    with pytest.raises(ConfigError):
        TextTransformer(dim=32, depth=1, heads=2, dim_head=16, num_tokens=100)  # bytes need 259 ids


def test_losses_all_train():
    for loss in ("infonce", "decoupled", "sigmoid"):
        mulan = tiny_mulan(loss=loss).train()
        value = mulan(noise(3, 8000), raw_texts=["piano", "cello", "drums"])
        value.backward()
        assert torch.isfinite(value)
        assert mulan.contrastive.log_scale.grad is not None
        assert (mulan.contrastive.bias.grad is not None) == (loss == "sigmoid")
    with pytest.raises(ConfigError):
        tiny_mulan(loss="hinge")
    with pytest.raises(ShapeError):
        tiny_mulan()(noise(3, 8000), raw_texts=["a", "b"])
    sims = tiny_mulan().eval()(noise(2, 8000), raw_texts=["a", "b"], return_similarities=True)
    assert sims.shape == (2, 2) and sims.abs().max() <= 1 + 1e-5


def test_save_load_scratch(tmp_path):
    tok = CaptionTokenizer.train(["a slow piano", "a fast drum groove"] * 5, vocab_size=280)
    mulan = tiny_mulan(tokenizer=tok).eval()
    wav = noise(2, 8000)
    folder = mulan.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    for loaded in (MuLaN.from_pretrained(folder), load_pretrained(folder)):
        assert isinstance(loaded, MuLaN) and isinstance(loaded.text.tokenizer, CaptionTokenizer)
        with torch.no_grad():
            assert torch.allclose(loaded.get_audio_latents(wav), mulan.get_audio_latents(wav), atol=1e-6)
            assert torch.allclose(
                loaded.get_text_latents(raw_texts=["a slow piano"]),
                mulan.get_text_latents(raw_texts=["a slow piano"]),
                atol=1e-6,
            )
    ast_dir = mulan.audio.save_pretrained(tmp_path / "ast")
    ast = AudioSpectrogramTransformer.from_pretrained(ast_dir)
    assert ast.config == mulan.audio.config
    text = TextTransformer.from_pretrained(mulan.text.save_pretrained(tmp_path / "text"))
    assert text.config == mulan.text.config


@pytest.fixture(scope="module")
def minilm_tower():
    return PretrainedTextTransformer("minilm", freeze=True)


def test_pretrained_text_tower_frozen_and_persistent(tmp_path, minilm_tower):
    tower = minilm_tower
    assert tower.dim == 384
    tower.train()
    assert not tower.encoder.training and not any(p.requires_grad for p in tower.parameters())
    mulan = MuLaN(AudioSpectrogramTransformer(**AST_KW), tower, dim_latent=16).eval()
    with torch.no_grad():
        before = mulan.get_text_latents(raw_texts=["a slow piano melody", "fast drums"])
    # a real sentence encoder: related captions are closer than unrelated ones
    f = torch.nn.functional.normalize(
        tower.embed_texts(["a slow piano melody", "a slow piano tune", "loud drums"]), dim=-1
    )
    assert f[0] @ f[1] > f[0] @ f[2]
    folder = mulan.save_pretrained(tmp_path / "m")
    assert (folder / "text_tokenizer" / "tokenizer.json").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["text_transformer"]["hf_config"]["hidden_size"] == 384
    config["text_transformer"]["name_or_path"] = str(tmp_path / "nowhere")  # loading must not need the source
    (folder / "config.json").write_text(json.dumps(config))
    loaded = MuLaN.from_pretrained(folder)
    with torch.no_grad():
        after = loaded.get_text_latents(raw_texts=["a slow piano melody", "fast drums"])
    assert torch.allclose(before, after, atol=1e-5)
    tower_dir = tower.save_pretrained(tmp_path / "tower")
    again = PretrainedTextTransformer.from_pretrained(tower_dir)
    assert again.freeze and again.dim == 384


def test_pretrained_text_tower_unfrozen_trains(minilm_tower):
    tower = PretrainedTextTransformer("minilm", freeze=False, pooling="cls")
    out = tower.embed_texts(["a piano"])
    out.sum().backward()
    assert tower.encoder.embeddings.word_embeddings.weight.grad is not None
    with pytest.raises(ConfigError):
        PretrainedTextTransformer("minilm", pooling="max")


def test_embed_quantizer(tmp_path):
    mulan = tiny_mulan()
    q = MuLaNEmbedQuantizer(
        mulan,
        conditioning_dims=(24, 40),
        rq_num_quantizers=3,
        codebook_size=16,
        namespaces=("semantic", "coarse"),
    )
    assert not mulan.training  # MuLaN is frozen inside
    wavs = noise(20, 4000)
    with torch.no_grad():
        latents = mulan.get_audio_latents(wavs)
    q.fit_codebooks(latents, epochs=3)
    q.eval()
    conds, ids = q(wavs=wavs[:4], namespace="semantic", return_embed_ids=True)
    assert conds.shape == (4, 3, 24) and ids.shape == (4, 3) and ids.dtype == torch.long
    assert 0 <= ids.min() and ids.max() < 16
    assert q(wavs=wavs[:4], namespace="coarse").shape == (4, 3, 40)
    assert torch.equal(q.get_embed_ids(wavs=wavs[:4]), ids)  # eval mode: fixed codebooks
    assert torch.allclose(q.conds_from_ids(ids, "semantic"), conds)
    assert q(raw_texts=["a piano", "drums"], namespace="coarse").shape == (2, 3, 40)
    # the residual quantization approximates the latent better with more levels
    codes = q.rq.codebooks[torch.arange(3)[None], q.quantize_latents(latents)]
    err = [(latents - codes[:, :k].sum(1)).norm(dim=-1).mean() for k in (1, 3)]
    assert err[1] < err[0]
    loss = q(wavs=wavs[:2], namespace="semantic").pow(2).mean()
    loss.backward()  # the namespace projections learn downstream; MuLaN does not
    assert q.projections["semantic"].weight.grad is not None
    assert all(p.grad is None for p in mulan.parameters())
    folder = q.save_pretrained(tmp_path / "q")
    loaded = MuLaNEmbedQuantizer.from_pretrained(folder)
    assert torch.allclose(loaded(wavs=wavs[:4], namespace="semantic"), conds, atol=1e-5)
    with pytest.raises(ConfigError):
        q(wavs=wavs[:1])  # two namespaces: say which
    with pytest.raises(ConfigError):
        q(wavs=wavs[:1], namespace="acoustic")
    with pytest.raises(ShapeError):
        q(namespace="semantic")
    with pytest.raises(ShapeError):
        q.conds_from_ids(torch.zeros(2, 2, dtype=torch.long), "semantic")
    with pytest.raises(ConfigError):
        MuLaNEmbedQuantizer(mulan, conditioning_dims=(8,), namespaces=("a", "b"))
