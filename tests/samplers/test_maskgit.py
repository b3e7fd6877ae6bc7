"""MaskGIT schedules, ranking, sampling and the decode loop."""

from __future__ import annotations

import pytest
import torch

from soundweave.errors import ConfigError, ShapeError, SoundweaveError
from soundweave.samplers.maskgit import (
    SCHEDULES,
    annealed_temperature,
    descending_ranks,
    keep_most_confident,
    mask_schedule,
    maskgit_decode,
    num_still_masked,
    sample_tokens,
)
from tests.helpers import check_margin


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_go_from_all_masked_to_none_monotonically(name):
    gamma = mask_schedule(name)
    r = torch.linspace(0, 1, 101, dtype=torch.float64)
    values = gamma(r)
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.0, abs=1e-12)
    assert (values[1:] <= values[:-1] + 1e-12).all()


@pytest.mark.parametrize("steps", [1, 2, 5, 16])
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_num_still_masked_falls_every_step_and_ends_at_zero(steps, schedule):
    total = torch.tensor([0, 1, 3, 10, 100, 1024])
    previous = total
    for step in range(steps):
        now = num_still_masked(total, step, steps, schedule)
        assert (now >= 0).all()
        assert ((now < previous) | (previous == 0)).all()  # progress while anything is left
        previous = now
    assert (previous == 0).all()


def test_cosine_schedule_counts_match_the_formula():
    total = torch.tensor([1000])
    # after step 0 of 4, cos(pi/8) of the tokens stay masked
    assert int(num_still_masked(total, 0, 4, "cosine")) == int(1000 * torch.cos(torch.tensor(torch.pi / 8)))


def test_descending_ranks_are_ranks_not_argsort_indices():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    # argsort(descending) would be [1, 3, 2, 0]; the ranks are:
    assert descending_ranks(scores).tolist() == [[3, 0, 2, 1]]
    x = torch.randn(3, 50)
    ranks = descending_ranks(x)
    for b in range(3):
        for i in range(50):
            assert ranks[b, i] == (x[b] > x[b, i]).sum()


def test_keep_most_confident_picks_top_k_among_candidates_per_row():
    confidence = torch.tensor([[0.9, 0.1, 0.8, 0.7, 0.95], [0.2, 0.3, 0.4, 0.5, 0.6]])
    candidates = torch.tensor([[False, True, True, True, True], [True, True, True, False, False]])
    keep = keep_most_confident(confidence, candidates, torch.tensor([2, 1]))
    assert keep.tolist() == [[False, False, True, False, True], [False, False, True, False, False]]


def test_sampling_temperature_zero_is_argmax_and_seeded_sampling_repeats():
    logits = torch.randn(4, 7, 11)
    assert torch.equal(sample_tokens(logits, 0.0), logits.argmax(-1))
    a = sample_tokens(logits, 1.0, torch.Generator().manual_seed(3))
    b = sample_tokens(logits, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # a distribution is followed: one dominant token is drawn almost always at temperature 1
    peaked = torch.zeros(2000, 5)
    peaked[:, 2] = 6.0
    draws = sample_tokens(peaked, 1.0, torch.Generator().manual_seed(0))
    # softmax gives it e^6 / (e^6 + 4) = 0.990: the other tokens' share (expected 0.0098) is below 0.1, and some
    # (about 20 of the 2000 draws) are drawn at all
    check_margin("maskgit.peaked.other_tokens_share", (draws != 2).float().mean(), 0.1)
    check_margin("maskgit.peaked.other_token_draws", (draws != 2).sum(), 0.5, above=True)
    assert annealed_temperature(1.0, 0, 4) == 1.0 and annealed_temperature(1.0, 2, 4) == 0.5


class Oracle:
    """logits_fn that knows the answer; records how many positions were masked at each call."""

    def __init__(self, target, mask_id, confidence=None):
        self.target, self.mask_id, self.calls, self.confidence = target, mask_id, [], confidence

    def __call__(self, tokens):
        self.calls.append(int((tokens == self.mask_id).sum()))
        logits = torch.full((*tokens.shape, self.mask_id), -4.0)
        strength = self.confidence if self.confidence is not None else torch.full(tokens.shape, 8.0)
        logits.scatter_(-1, self.target[..., None], strength[..., None])
        return logits


def test_decode_follows_the_schedule_and_keeps_unfilled_positions():
    B, N, C = 2, 40, 16
    target = torch.randint(0, C, (B, N))
    start = torch.randint(0, C, (B, N))
    fill = torch.ones(B, N, dtype=torch.bool)
    fill[:, :5] = False  # a prompt
    fill[1, 30:] = False  # padding
    oracle = Oracle(target, C)
    out = maskgit_decode(oracle, start, fill, mask_id=C, steps=6, schedule="cosine",
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[~fill], start[~fill])
    assert torch.equal(out[fill], target[fill])
    total = fill.sum(-1)
    expected = [int(total.sum())] + [int(num_still_masked(total, s, 6).sum()) for s in range(5)]
    assert oracle.calls == expected


def test_most_confident_tokens_are_committed_first_and_the_last_step_is_greedy():
    N, C = 10, 8
    target = torch.arange(N)[None] % C
    confidence = torch.linspace(1.0, 9.0, N)[None]  # the last positions are the most confident
    oracle = Oracle(target, C, confidence)
    tokens = torch.full((1, N), C)
    # step 0 of 2 with linear schedule keeps 5 masked: the 5 most confident positions are committed
    seen = []

    def spy(tok):
        seen.append(tok.clone())
        return oracle(tok)

    out = maskgit_decode(spy, tokens, torch.ones(1, N, dtype=torch.bool), mask_id=C, steps=2, schedule="linear",
                         temperature=0.0)
    after_first = seen[1][0]
    assert (after_first[5:] != C).all() and (after_first[:5] == C).all()
    assert torch.equal(out, target)
    # one step at any temperature is the argmax
    hot = maskgit_decode(Oracle(target, C, torch.full((1, N), 0.5)), tokens, torch.ones(1, N, dtype=torch.bool),
                         mask_id=C, steps=1, temperature=50.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(hot, target)


def test_decode_rejects_bad_arguments():
    tokens = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ShapeError):
        maskgit_decode(lambda t: t, tokens, torch.ones(2, 4, dtype=torch.bool), mask_id=3, steps=2)
    with pytest.raises(ConfigError):
        maskgit_decode(lambda t: t, tokens, torch.ones(2, 5, dtype=torch.bool), mask_id=3, steps=0)
    with pytest.raises(SoundweaveError):
        mask_schedule("exponential")


def test_inverse_cdf_sampling_matches_the_distribution_and_never_draws_impossible_tokens():
    logits = torch.tensor([0.0, 1.0, 2.0, float("-inf")]).expand(20000, 4)
    draws = sample_tokens(logits, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    expected = torch.softmax(torch.tensor([0.0, 1.0, 2.0, float("-inf")]), -1)
    check_margin("maskgit.inverse_cdf.max_frequency_error", (freq - expected).abs().max(), 0.015)
    assert freq[3] == 0
    # temperature flattens (high) or sharpens (low) the distribution
    hot = sample_tokens(logits[:, :3], 100.0, torch.Generator().manual_seed(1))
    # at T=100 the shares are 0.330, 0.333, 0.337: the rarest is within 1/3 - 0.3 of uniform (i.e. above 0.3)
    rarest = (torch.bincount(hot, minlength=3).float() / hot.numel()).min()
    check_margin("maskgit.hot.rarest_share_shortfall_from_uniform", 1 / 3 - rarest, 1 / 3 - 0.3)
    assert sample_tokens(torch.randn(2, 3, 5), 1.0).shape == (2, 3)


def test_masked_only_decoding_equals_full_logits_decoding():
    B, N, C = 2, 30, 12
    target = torch.randint(0, C, (B, N))
    fill = torch.ones(B, N, dtype=torch.bool)
    fill[0, :4] = False
    strength = torch.rand(B, N) * 3
    full = Oracle(target, C, strength)

    def selected(tokens, positions):
        return full(tokens)[positions]

    kw = dict(mask_id=C, steps=5, temperature=2.0)
    start = torch.randint(0, C, (B, N))
    a = maskgit_decode(full, start, fill, generator=torch.Generator().manual_seed(3), **kw)
    b = maskgit_decode(selected, start, fill, generator=torch.Generator().manual_seed(3), masked_only=True, **kw)
    assert torch.equal(a, b)
    with pytest.raises(ShapeError):  # a logits_fn that ignores `positions` is caught, not silently misread
        maskgit_decode(lambda t, p: full(t), start, fill, masked_only=True, **kw)


def test_choice_noise_keeps_a_peaked_model_from_committing_one_token_everywhere():
    """A model that is a little more sure of token 0 everywhere: ranked by plain confidence, the first steps keep
    the 0s (and with them a level of 0s); with MaskGIT's choice noise the kept positions and tokens vary."""
    logits = torch.log(torch.tensor([0.2] + [0.8 / 7] * 7))

    def logits_fn(tokens):
        return logits.expand(*tokens.shape, 8)

    tokens, fill = torch.zeros(4, 64, dtype=torch.long), torch.ones(4, 64, dtype=torch.bool)
    plain = maskgit_decode(logits_fn, tokens, fill, mask_id=8, steps=8, generator=torch.Generator().manual_seed(0))
    noisy = maskgit_decode(logits_fn, tokens, fill, mask_id=8, steps=8, choice_temperature=4.5,
                           generator=torch.Generator().manual_seed(0))
    again = maskgit_decode(logits_fn, tokens, fill, mask_id=8, steps=8, choice_temperature=4.5,
                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)  # seeded
    share_plain, share_noisy = float((plain == 0).float().mean()), float((noisy == 0).float().mean())
    # measured: plain 0.98-1.0, noisy 0.50-0.53 over seeds 0-2
    check_margin("maskgit.choice_noise.zero_share_noisy_vs_plain_minus_0.3", share_noisy, share_plain - 0.3)
    with pytest.raises(ConfigError):
        maskgit_decode(logits_fn, tokens, fill, mask_id=8, steps=8, choice_temperature=-1.0)


def test_top_k_draws_only_among_the_k_likeliest_tokens_of_each_position():
    torch.manual_seed(0)
    table = torch.randn(3, 40, 12) * 3  # fixed logits per (row, position), whatever the tokens are

    def logits_fn(tokens):
        return table

    tokens, fill = torch.zeros(3, 40, dtype=torch.long), torch.ones(3, 40, dtype=torch.bool)
    top3 = table.topk(3, dim=-1).indices
    out = maskgit_decode(logits_fn, tokens, fill, mask_id=12, steps=6, temperature=50.0, choice_temperature=4.0,
                         top_k=3, generator=torch.Generator().manual_seed(1))
    assert (out[..., None] == top3).any(-1).all()
    # without top-k the same hot sampling leaves the top 3 (the check above can fail)
    wide = maskgit_decode(logits_fn, tokens, fill, mask_id=12, steps=6, temperature=50.0, choice_temperature=4.0,
                          generator=torch.Generator().manual_seed(1))
    assert not (wide[..., None] == top3).any(-1).all()
    # k >= C is no filter: identical to None
    same = maskgit_decode(logits_fn, tokens, fill, mask_id=12, steps=6, temperature=50.0, choice_temperature=4.0,
                          top_k=12, generator=torch.Generator().manual_seed(1))
    assert torch.equal(same, wide)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match="top_k"):
            maskgit_decode(logits_fn, tokens, fill, mask_id=12, steps=6, top_k=bad)
