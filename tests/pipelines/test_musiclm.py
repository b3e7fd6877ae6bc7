"""MusicLM / AudioLM: the required usage, batched sampling, reranking after resampling, namespaces, errors."""

from __future__ import annotations

import pytest
import torch

from soundweave.errors import ConfigError, ShapeError

AST_KW = dict(dim=32, depth=1, heads=2, dim_head=16, spec_n_fft=256, spec_win_length=256, spec_hop_length=64,
              n_mels=32, patch_size=(16, 8), max_seconds=1.0)


def tiny_mulan(sample_rate=16000):
    from soundweave import AudioSpectrogramTransformer, MuLaN, TextTransformer

    torch.manual_seed(0)
    audio = AudioSpectrogramTransformer(**AST_KW, sample_rate=sample_rate)
    text = TextTransformer(dim=32, depth=1, heads=2, dim_head=16, num_tokens=300, max_seq_len=24)
    return MuLaN(audio, text, dim_latent=16)


def test_required_usage_exactly(tiny_corpus, tmp_path):
    from soundweave import (
        AudioLM,
        ConformerWrapper,
        MuLaNEmbedQuantizer,
        MusicLM,
        SemanticTokenizer,
        SemanticTransformer,
        SemanticTransformerTrainer,
        SoundStorm,
        SpectralCodec,
    )

    mulan = tiny_mulan()
    codec = SpectralCodec(num_quantizers=2, codebook_size=32, griffin_lim_iters=4)
    # the lines (dims shrunk so the test runs in seconds; the folder is the test corpus)
    quantizer = MuLaNEmbedQuantizer(mulan=mulan, conditioning_dims=(64, 64, 64),
                                    namespaces=("semantic", "coarse", "fine"))
    wav2vec = SemanticTokenizer(codebook_size=32)
    semantic_transformer = SemanticTransformer(num_semantic_tokens=wav2vec.codebook_size, dim=64, depth=2,
                                               audio_text_condition=True)
    trainer = SemanticTransformerTrainer(transformer=semantic_transformer, wav2vec=wav2vec,
                                         audio_conditioner=quantizer, folder=str(tiny_corpus),
                                         batch_size=1, data_max_length=320 * 32, num_train_steps=1,
                                         results_folder=tmp_path / "results", progress=False)
    trainer.train()
    soundstorm = SoundStorm(ConformerWrapper(codebook_size=32, num_quantizers=2,
                                             conformer=dict(dim=32, depth=1, heads=2, dim_head=16),
                                             num_semantic_token_ids=32, semantic_ratio=2.0, cond_dim=64),
                            soundstream=codec, steps=2)
    audio_lm = AudioLM(wav2vec=wav2vec, codec=codec, semantic_transformer=semantic_transformer,
                       soundstorm=soundstorm)  # SoundStorm replaces AudioLM's coarse + fine stages
    musiclm = MusicLM(audio_lm=audio_lm, mulan_embed_quantizer=quantizer)
    music = musiclm("the crystalline sounds of the piano in a ballroom", num_samples=4, seconds=1.0)
    assert music.shape == (16000,) and torch.isfinite(music).all()
    # the trainer fitted what was not fitted and saved it all
    assert wav2vec.is_fitted
    for name in ("semantic_transformer", "semantic_tokenizer", "mulan_quantizer"):
        assert (tmp_path / "results" / name / "model.safetensors").is_file()
    assert trainer.result.step == 1


class Parts:
    """Small fitted parts shared by the pipeline tests (the codec at 16 kHz)."""

    def __init__(self, mulan_rate=16000, acoustic_cond=True, semantic=True):
        from soundweave import (
            AudioLM,
            ConformerWrapper,
            MuLaNEmbedQuantizer,
            SemanticTokenizer,
            SemanticTransformer,
            SoundStorm,
            SpectralCodec,
        )
        from tests.helpers import tone

        clips = [tone(f, 1.0) for f in (220, 330, 440, 550, 660, 880)]
        self.mulan = tiny_mulan(mulan_rate).eval()
        self.quantizer = MuLaNEmbedQuantizer(self.mulan, conditioning_dims=(24, 24), namespaces=("semantic", "coarse"),
                                             rq_num_quantizers=2, codebook_size=4)
        self.quantizer.fit_codebooks(torch.randn(64, 16))
        self.quantizer.eval()
        self.codec = SpectralCodec(num_quantizers=2, codebook_size=16, griffin_lim_iters=4)
        self.codec.fit(clips)
        self.wav2vec = SemanticTokenizer(codebook_size=8).fit(clips) if semantic else None
        torch.manual_seed(0)
        self.semantic = SemanticTransformer(num_semantic_tokens=8, dim=32, depth=1, heads=2, dim_head=16,
                                            audio_text_condition=True, cond_dim=24) if semantic else None
        net = ConformerWrapper(codebook_size=16, num_quantizers=2,
                               conformer=dict(dim=32, depth=1, heads=2, dim_head=16),
                               num_semantic_token_ids=8 if semantic else None, semantic_ratio=2.0 if semantic else None,
                               cond_dim=24 if acoustic_cond else None)
        self.soundstorm = SoundStorm(net, soundstream=self.codec, steps=2, cond_drop_prob=0.1).eval()
        self.audio_lm = AudioLM(wav2vec=self.wav2vec, codec=self.codec, semantic_transformer=self.semantic,
                                soundstorm=self.soundstorm)


def test_rerank_scores_with_mulan_at_its_own_rate():
    from soundweave import MusicLM
    from soundweave.audio.io import resample

    parts = Parts(mulan_rate=8000)  # the codec makes 16 kHz, MuLaN listens at 8 kHz
    musiclm = MusicLM(parts.audio_lm, parts.quantizer)
    text = "a slow piano melody"
    out = musiclm(text, num_samples=4, seconds=1.0, seed=0, return_all=True)
    assert out.audio.shape == (4, 16000) and out.sample_rate == 16000
    assert torch.all(out.scores[:-1] >= out.scores[1:])  # best first
    # against MuLaN directly, on the audio resampled to MuLaN's rate
    with torch.no_grad():
        a = parts.mulan.get_audio_latents(resample(out.audio, 16000, 8000), sample_rate=8000)
        t = parts.mulan.get_text_latents(raw_texts=[text])
    direct = (a @ t.t())[:, 0]
    assert torch.allclose(direct, out.scores, atol=1e-5)
    # scoring 16 kHz audio as if it were at MuLaN's rate (the reference implementation's fault) differs
    with torch.no_grad():
        wrong = (parts.mulan.get_audio_latents(out.audio, sample_rate=8000) @ t.t())[:, 0]
    assert not torch.allclose(wrong, direct, atol=1e-4)
    # the plain call returns the best of the same draw
    best = musiclm(text, num_samples=4, seconds=1.0, seed=0)
    assert torch.equal(best, out.audio[0])


def test_rerank_picks_the_clip_the_scorer_scores_highest():
    from soundweave.pipelines.musiclm import rerank

    class Scorer:  # a joint embedding that likes loud clips, and records the rate it was given
        sample_rate = 8000
        seen: list[int] = []

        def get_audio_latents(self, wavs, sample_rate=None):
            self.seen.append(sample_rate)
            self.length = wavs.shape[-1]
            return torch.stack([wavs.abs().mean(-1), torch.ones(wavs.shape[0])], dim=-1)

        def get_text_latents(self, raw_texts=None):
            return torch.tensor([[1.0, 0.0]])

    audio = torch.randn(3, 16000) * torch.tensor([[0.1], [0.5], [0.2]])
    scorer = Scorer()
    scores = rerank(scorer, audio, 16000, "loud")
    assert int(scores.argmax()) == 1 and scorer.seen == [8000] and scorer.length == 8000


def test_audiolm_stages_namespaces_prime_and_determinism():
    from soundweave import MusicLM
    from tests.helpers import tone

    parts = Parts()
    musiclm = MusicLM(parts.audio_lm, parts.quantizer)
    assert musiclm.acoustic_namespace == "coarse"
    semantic, acoustic = musiclm.conditioning("a bright marimba")
    # each stage gets its own namespace's tokens, not the semantic table twice
    assert semantic.shape == acoustic.shape == (1, 2, 24) and not torch.allclose(semantic, acoustic)
    out = parts.audio_lm.generate(3, seconds=1.0, semantic_cond=semantic, acoustic_cond=acoustic, seed=1,
                                  return_details=True)
    assert out.audio.shape == (3, 16000) and out.semantic_ids.shape == (3, 25) and out.codes.shape == (3, 50, 2)
    assert set(out.timings) == {"semantic_s", "acoustic_s", "decode_s"}
    again = parts.audio_lm.generate(3, seconds=1.0, semantic_cond=semantic, acoustic_cond=acoustic, seed=1)
    assert torch.equal(again, out.audio)
    # continuation: the prime's semantic ids and codes come back unchanged at the start
    prime = tone(440, 0.4)
    cont = parts.audio_lm.generate(2, seconds=1.0, semantic_cond=semantic, acoustic_cond=acoustic, prime_wave=prime,
                                   seed=0, return_details=True)
    assert torch.equal(cont.semantic_ids[:, :10], parts.wav2vec(prime).expand(2, -1))
    assert torch.equal(cont.codes[:, :20], parts.codec.encode(prime[None]).expand(2, -1, -1))
    with pytest.raises(ShapeError, match="prime"):
        parts.audio_lm.generate(1, seconds=0.2, prime_wave=prime)


def test_mulan_only_baseline_and_errors():
    from soundweave import AudioLM, MusicLM

    parts = Parts(semantic=False)
    musiclm = MusicLM(parts.audio_lm, parts.quantizer)
    audio = musiclm("fast rock drums", num_samples=2, seconds=0.5, seed=0)
    assert audio.shape == (8000,)
    with pytest.raises(ShapeError, match="text"):
        musiclm("", num_samples=2)
    with pytest.raises(ConfigError, match="num_samples"):
        musiclm("drums", num_samples=0)
    with pytest.raises(ConfigError, match="seconds"):
        musiclm("drums", seconds=-1.0)
    with pytest.raises(ConfigError, match="namespace"):
        MusicLM(parts.audio_lm, parts.quantizer, acoustic_namespace="fine")
    full = Parts()
    with pytest.raises(ConfigError, match="semantic"):
        AudioLM(codec=full.codec, soundstorm=full.soundstorm)  # a semantic SoundStorm needs the semantic stage
    with pytest.raises(ConfigError, match="wav2vec"):
        AudioLM(codec=full.codec, semantic_transformer=full.semantic, soundstorm=full.soundstorm)
    with pytest.raises(ConfigError, match="soundstorm"):
        AudioLM(wav2vec=full.wav2vec, codec=full.codec, semantic_transformer=full.semantic)


def test_musiclm_acoustic_sampling_settings_per_call():
    from soundweave import MusicLM

    parts = Parts()
    musiclm = MusicLM(parts.audio_lm, parts.quantizer)
    storm = parts.soundstorm
    assert storm.config.choice_temperature == 0.0
    noisy = musiclm("a bright marimba", num_samples=2, seconds=0.5, seed=3, acoustic_choice_temperature=6.0,
                    return_all=True)
    plain = musiclm("a bright marimba", num_samples=2, seconds=0.5, seed=3, return_all=True)
    # the per-call value is the stored default set for one call: same seed, same audio, config untouched
    storm.config.choice_temperature = 6.0
    stored = musiclm("a bright marimba", num_samples=2, seconds=0.5, seed=3, return_all=True)
    storm.config.choice_temperature = 0.0
    assert torch.equal(noisy.audio, stored.audio)
    assert not torch.equal(noisy.audio, plain.audio), "choice noise 6 left the acoustic codes unchanged"
    storm.config.top_k = 2
    stored_k = musiclm("a bright marimba", num_samples=2, seconds=0.5, seed=3, return_all=True)
    storm.config.top_k = None
    per_call_k = musiclm("a bright marimba", num_samples=2, seconds=0.5, seed=3, acoustic_top_k=2, return_all=True)
    assert torch.equal(stored_k.audio, per_call_k.audio) and not torch.equal(per_call_k.audio, plain.audio)
    with pytest.raises(ConfigError, match="top_k"):
        musiclm("a bright marimba", num_samples=1, seconds=0.5, acoustic_top_k=-1)
    with pytest.raises(ConfigError, match="choice_temperature"):
        musiclm("a bright marimba", num_samples=1, seconds=0.5, acoustic_choice_temperature=-1.0)
    with pytest.raises(ConfigError, match="temperature"):
        musiclm("a bright marimba", num_samples=1, seconds=0.5, acoustic_temperature=-1.0)
