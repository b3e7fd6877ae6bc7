"""ContinuationPipeline: the prompt is kept, N draws in one batch, ranked by closeness to the prompt, errors."""

from __future__ import annotations

import pytest
import torch

from soundweave.errors import ConfigError, ShapeError
from tests.pipelines.test_musiclm import tiny_mulan


def tiny_storm():
    from soundweave import ConformerWrapper, SoundStorm, SpectralCodec
    from tests.helpers import tone

    codec = SpectralCodec(num_quantizers=2, codebook_size=16, griffin_lim_iters=4)
    codec.fit([tone(f, 1.0) for f in (220, 330, 440, 550, 660, 880)])
    torch.manual_seed(0)
    net = ConformerWrapper(codebook_size=16, num_quantizers=2, conformer=dict(dim=32, depth=1, heads=2, dim_head=16))
    return SoundStorm(net, soundstream=codec, steps=2).eval()


def test_continuation_keeps_the_prompt_and_ranks_by_prompt_similarity():
    from soundweave import ContinuationPipeline
    from soundweave.audio.io import resample
    from tests.helpers import tone

    storm, mulan = tiny_storm(), tiny_mulan(8000).eval()  # codec at 16 kHz, MuLaN listens at 8 kHz
    prompt = tone(330, 0.6, sr=22050)  # any input rate: resampled to the codec's
    pipe = ContinuationPipeline(storm, scorer=mulan)
    out = pipe(prompt, 22050, seconds=1.0, num_samples=4, seed=3, return_all=True)
    hop = storm.soundstream.hop_length
    assert out.audio.shape == (4, 16000) and out.sample_rate == 16000
    assert out.prompt_samples % hop == 0 and 0 < out.prompt_samples < 16000
    assert torch.all(out.scores[:-1] >= out.scores[1:])  # best first
    # the rows are SoundStorm's own batched draw with the prompt's codes kept (same seed), reordered
    at16 = resample(prompt, 22050, 16000)
    codes, _ = storm.encode_audio(at16[None])
    assert out.prompt_samples == codes.shape[1] * hop
    direct = storm.generate(16000 // hop, batch_size=4, prompt_acoustic_token_ids=codes, seed=3,
                            return_codes=True)
    assert torch.equal(direct[:, : codes.shape[1]], codes.expand(4, -1, -1))
    decoded = storm.soundstream.decode(direct).float()
    assert all(any(torch.allclose(row, d, atol=1e-5) for d in decoded) for row in out.audio)
    assert not torch.allclose(out.audio[0, out.prompt_samples:], out.audio[1, out.prompt_samples:])
    # the scores are MuLaN's cosine of each continuation with the prompt, both at MuLaN's rate
    with torch.no_grad():
        ref = mulan.get_audio_latents(resample(at16, 16000, 8000)[None], sample_rate=8000)
        lat = mulan.get_audio_latents(resample(out.audio[:, out.prompt_samples:], 16000, 8000), sample_rate=8000)
    assert torch.allclose((lat @ ref.t())[:, 0], out.scores, atol=1e-5)
    # the plain call returns the best of the same draw; the same seed gives the same audio
    best = pipe(prompt, 22050, seconds=1.0, num_samples=4, seed=3)
    assert torch.equal(best, out.audio[0])
    # without a scorer nothing is ranked: the draws come back in batch order, scores None
    plain = ContinuationPipeline(storm)(prompt, 22050, seconds=1.0, num_samples=4, seed=3, return_all=True)
    assert plain.scores is None
    assert {tuple(r.tolist()[:50]) for r in plain.audio} == {tuple(r.tolist()[:50]) for r in out.audio}


def test_prompt_similarity_picks_the_continuation_closest_to_the_prompt():
    from soundweave.pipelines.continuation import prompt_similarity

    class Scorer:  # an embedding of loudness: the continuation as loud as the prompt is closest
        sample_rate = 8000
        seen: list[int] = []

        def get_audio_latents(self, wavs, sample_rate=None):
            self.seen.append(sample_rate)
            level = wavs.abs().mean(-1)
            return torch.nn.functional.normalize(torch.stack([level, 0.3 - level], dim=-1), dim=-1)

    prompt = torch.randn(16000) * 0.1
    continuations = torch.randn(3, 16000) * torch.tensor([[0.02], [0.1], [0.25]])
    scorer = Scorer()
    scores = prompt_similarity(scorer, prompt, continuations, 16000)
    assert int(scores.argmax()) == 1 and scorer.seen == [8000, 8000]


def test_continuation_errors():
    from soundweave import ContinuationPipeline
    from tests.helpers import tone

    storm = tiny_storm()
    pipe = ContinuationPipeline(storm)
    prompt = tone(330, 0.6)
    with pytest.raises(ConfigError, match="leaves nothing to generate"):
        pipe(prompt, 16000, seconds=0.5)
    with pytest.raises(ConfigError, match="num_samples"):
        pipe(prompt, 16000, seconds=1.0, num_samples=0)
    with pytest.raises(ShapeError, match="one clip"):
        pipe(torch.zeros(2, 8000), 16000, seconds=1.0)
    with pytest.raises(ShapeError, match="float"):
        pipe(torch.zeros(8000, dtype=torch.long), 16000, seconds=1.0)
    with pytest.raises(ConfigError, match="prompt_seconds"):
        pipe(prompt, 16000, seconds=1.0, prompt_seconds=0)
    with pytest.raises(ConfigError, match="set by the pipeline"):
        pipe(prompt, 16000, seconds=1.0, return_codes=True)
    with pytest.raises(ConfigError, match="codec attached"):
        ContinuationPipeline(type(storm)(storm.net))
    with pytest.raises(ConfigError, match="get_audio_latents"):
        ContinuationPipeline(storm, scorer=object())
