"""SoundStorm and ConformerWrapper: the required usage, the paper's masking, decoding, padding, prompts,
conditioning, persistence, codec in/out, bad input - and that a tiny model learns."""

from __future__ import annotations

import pytest
import torch

from soundweave import ConformerWrapper, SoundStorm, SoundStream
from soundweave.errors import ConfigError, ShapeError, SoundweaveError
from tests.helpers import check_margin


def tiny_net(**kw):
    conformer = kw.pop("conformer", dict(dim=32, depth=1, heads=2, dim_head=16))
    return ConformerWrapper(**{"codebook_size": 16, "num_quantizers": 3, "conformer": conformer, **kw})


def tiny_codec():
    return SoundStream(sample_rate=16000, channels=4, channel_mults=(1, 2, 4), strides=(4, 8, 10), codebook_dim=16,
                       codebook_size=16, rq_num_quantizers=3, attn_depth=0)


def test_required_usage_shapes_at_the_readme_configuration():
    conformer = ConformerWrapper(codebook_size=1024, num_quantizers=12, conformer=dict(dim=512, depth=2))
    model = SoundStorm(conformer, steps=18, schedule="cosine")
    codes = torch.randint(0, 1024, (2, 24, 12))  # (batch, seq, num residual VQ); short for test speed
    loss, _ = model(codes)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert conformer.head_weight.grad is not None
    generated = model.generate(24, batch_size=2)
    assert generated.shape == (2, 24, 12) and generated.dtype == torch.int64
    assert 0 <= int(generated.min()) and int(generated.max()) < 1024
    assert model.steps_for_levels() == [18] + [1] * 11


def test_required_usage_with_a_codec_audio_in_and_out():
    codec = tiny_codec()
    model = SoundStorm(tiny_net(), soundstream=codec)
    audio = torch.randn(2, 10080)
    loss, parts = model(audio)
    loss.backward()
    assert torch.isfinite(loss) and parts["masked_tokens"] >= 2
    assert all(p.grad is None for p in codec.parameters())  # the codec is frozen
    out = model.generate(seconds=0.5, batch_size=2)
    frames = codec.seconds_to_frames(0.5)
    assert out.shape == (2, frames * codec.hop_length) and out.dtype == torch.float32
    mask = torch.ones(2, frames, dtype=torch.bool)
    mask[1, 10:] = False
    items = model.generate(seconds=0.5, mask=mask, return_list=True, seed=0)
    assert [x.shape[0] for x in items] == [frames * codec.hop_length, 10 * codec.hop_length]
    codes = model.generate(seconds=0.5, mask=mask, return_list=True, return_codes=True, seed=0)
    assert [tuple(c.shape) for c in codes] == [(frames, 3), (10, 3)]


def test_level_probs_choose_how_often_each_level_is_trained_and_persist(tmp_path):
    codes = torch.randint(0, 16, (4000, 6, 3))
    uniform = SoundStorm(tiny_net()).training_mask(codes, None, torch.Generator().manual_seed(0))[2]
    share = torch.bincount(uniform, minlength=3).float() / 4000
    assert (share - 1 / 3).abs().max() < 0.03, share  # default: uniform, as the paper
    model = SoundStorm(tiny_net(), level_probs=[2, 1, 1])  # normalised: 0.5, 0.25, 0.25
    assert model.config.level_probs == [0.5, 0.25, 0.25]
    level = model.training_mask(codes, None, torch.Generator().manual_seed(0))[2]
    share = torch.bincount(level, minlength=3).float() / 4000
    assert (share - torch.tensor([0.5, 0.25, 0.25])).abs().max() < 0.03, share
    only_coarse = SoundStorm(tiny_net(), level_probs=[1, 0, 0])
    assert only_coarse.training_mask(codes, None, torch.Generator().manual_seed(0))[2].eq(0).all()
    model.save_pretrained(tmp_path / "m")
    assert SoundStorm.from_pretrained(tmp_path / "m").config.level_probs == [0.5, 0.25, 0.25]


@pytest.mark.parametrize("probs", [[1, 1], [1, -1, 1], [0, 0, 0], [1, float("nan"), 1], ["a", 1, 1]])
def test_bad_level_probs_are_config_errors(probs):
    with pytest.raises(ConfigError, match="level_probs"):
        SoundStorm(tiny_net(), level_probs=probs)


def test_training_mask_is_the_papers():
    model = SoundStorm(tiny_net())
    B, N, Q = 64, 20, 3
    codes = torch.randint(0, 16, (B, N, Q))
    valid = torch.ones(B, N, dtype=torch.bool)
    valid[::2, 15:] = False
    masked, target, level = model.training_mask(codes, valid, torch.Generator().manual_seed(0))
    seen_levels, seen_prompt = set(), False
    for b in range(B):
        q = int(level[b])
        seen_levels.add(q)
        assert not masked[b, :, :q].any()  # coarser levels visible
        assert torch.equal(masked[b, :, q], target[b])  # level q: exactly the loss targets
        assert target[b].any() and not (target[b] & ~valid[b]).any()
        after = masked[b, :, q + 1:].any(-1) if q < Q - 1 else None
        if after is not None:
            # finer levels: everything from the prompt delimiter t to the end of the real frames
            t = int(after.float().argmax())
            assert after[t:].tolist() == valid[b, t:].tolist() and not after[:t].any()
            assert not target[b, :t].any()  # the prompt is never a target
            seen_prompt |= t > 0
    assert seen_levels == {0, 1, 2} and seen_prompt


def test_loss_ignores_everything_but_the_masked_level_q_tokens():
    model = SoundStorm(tiny_net())
    codes = torch.randint(0, 16, (4, 12, 3))
    masked, target, level = model.training_mask(codes, None, torch.Generator().manual_seed(5))
    loss1, _ = model(codes, generator=torch.Generator().manual_seed(5))
    other = codes.clone()
    hidden = masked.clone()
    hidden[torch.arange(4), :, level] = False  # masked finer-level tokens are neither inputs nor targets
    other[hidden] = (other[hidden] + 1) % 16
    loss2, _ = model(other, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(loss1, loss2)


def test_generation_decodes_coarse_to_fine_with_one_head_per_pass():
    net = tiny_net()
    model = SoundStorm(net, steps=5)
    calls = []
    original = net.logits

    def spy(hidden, level=None):
        out = original(hidden, level)
        calls.append((level, tuple(out.shape)))
        return out

    net.logits = spy
    model.generate(9, batch_size=2, seed=0)
    assert [c[0] for c in calls] == [0] * 5 + [1, 2]  # (5, 1, 1) passes, coarse to fine
    # only the decoded level's logits, and only at the positions still masked: all 18 at a level's first pass,
    # then fewer and fewer as the schedule commits tokens
    assert all(len(shape) == 2 and shape[1] == 16 for _, shape in calls)
    rows = [shape[0] for _, shape in calls]
    assert rows[0] == 18 and rows[5] == 18 and rows[6] == 18
    assert all(a > b for a, b in zip(rows[:5], rows[1:5], strict=False))
    calls.clear()
    model.generate(9, steps=[2, 3, 1], seed=0)
    assert [c[0] for c in calls] == [0, 0, 1, 1, 1, 2]


def test_prompt_stays_unchanged_and_generation_is_seeded():
    model = SoundStorm(tiny_net())
    prompt = torch.randint(0, 16, (2, 5, 3))
    out = model.generate(12, prompt_acoustic_token_ids=prompt, seed=3)
    assert torch.equal(out[:, :5], prompt)
    assert torch.equal(out, model.generate(12, prompt_acoustic_token_ids=prompt, seed=3))
    assert not torch.equal(out, model.generate(12, prompt_acoustic_token_ids=prompt, seed=4))
    bf16 = model.generate(12, prompt_acoustic_token_ids=prompt, seed=3, precision="bf16")
    assert bf16.dtype == torch.int64 and torch.equal(bf16[:, :5], prompt)
    one = model.generate(12, prompt_acoustic_token_ids=prompt[0], batch_size=3, seed=0)
    assert one.shape == (3, 12, 3) and (one[:, :5] == prompt[0]).all()


def test_top_k_per_call_or_stored_and_persisted(tmp_path):
    model = SoundStorm(tiny_net(), steps=4, temperature=5.0)
    assert model.config.top_k is None
    prompt = torch.randint(0, 16, (2, 4, 3))
    plain = model.generate(16, prompt_acoustic_token_ids=prompt, seed=1)
    picky = model.generate(16, prompt_acoustic_token_ids=prompt, seed=1, top_k=2)
    assert not torch.equal(plain, picky)
    stored = SoundStorm(model.net, steps=4, temperature=5.0, top_k=2)
    assert torch.equal(stored.generate(16, prompt_acoustic_token_ids=prompt, seed=1), picky)
    stored.save_pretrained(tmp_path / "m")
    again = SoundStorm.from_pretrained(tmp_path / "m")
    assert again.config.top_k == 2
    assert torch.equal(again.generate(16, prompt_acoustic_token_ids=prompt, seed=1), picky)
    # top_k=1 leaves only the argmax of every position: temperature makes no difference
    hot = model.generate(16, prompt_acoustic_token_ids=prompt, seed=1, top_k=1)
    assert torch.equal(hot, model.generate(16, prompt_acoustic_token_ids=prompt, seed=2, top_k=1))
    # top_k=0 in a call: all codes, whatever the model stores
    assert torch.equal(stored.generate(16, prompt_acoustic_token_ids=prompt, seed=1, top_k=0), plain)
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="top_k"):
            model.generate(16, top_k=bad)
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="top_k"):
            SoundStorm(model.net, top_k=bad)


def test_padded_frames_never_influence_real_frames():
    net = tiny_net(conformer=dict(dim=32, depth=2, heads=2, dim_head=16, conv_kernel_size=7),
                   num_semantic_token_ids=7, semantic_ratio=1)
    net.eval()
    model = SoundStorm(net, steps=4)
    codes = torch.randint(0, 17, (2, 14, 3))
    semantic = torch.randint(0, 7, (2, 14))
    mask = torch.ones(2, 14, dtype=torch.bool)
    mask[0, 9:] = False
    changed, semantic2 = codes.clone(), semantic.clone()
    changed[0, 9:] = torch.randint(0, 17, (5, 3))
    semantic2[0, 9:] = torch.randint(0, 7, (5,))
    with torch.no_grad():
        a = net(codes, mask=mask, semantic_ids=semantic, level=None)
        b = net(changed, mask=mask, semantic_ids=semantic2, level=None)
        alone = net(codes[:1, :9], semantic_ids=semantic[:1, :9], level=None)
    torch.testing.assert_close(a[0, :9], b[0, :9], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[0, :9], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a[1], b[1])
    g1 = model.generate(mask=mask, cond_semantic_token_ids=semantic, seed=0)
    g2 = model.generate(mask=mask, cond_semantic_token_ids=semantic2, seed=0)
    assert torch.equal(g1[0, :9], g2[0, :9]) and (g1[0, 9:] == 0).all()
    # training: padded content changes neither the loss nor its masks
    l1, _ = model(codes.clamp(max=15), mask=mask, cond_semantic_token_ids=semantic,
                  generator=torch.Generator().manual_seed(1))
    l2, _ = model(changed.clamp(max=15), mask=mask, cond_semantic_token_ids=semantic2,
                  generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(l1, l2)


def test_semantic_tokens_are_upsampled_per_frame():
    net = tiny_net(num_semantic_token_ids=5, semantic_pad_id=-1)
    ids = torch.tensor([[1, 2, -1]])
    emb = net.embed_semantic(ids, 6)  # integer ratio: repetition
    table = net.semantic_embeds.weight
    torch.testing.assert_close(emb[0, 0], table[1])
    torch.testing.assert_close(emb[0, 1], table[1])
    torch.testing.assert_close(emb[0, 3], table[2])
    assert (emb[0, 4:] == 0).all()  # the pad id contributes nothing
    assert net.embed_semantic(torch.tensor([[1, 2]]), 5).shape == (1, 5, 32)  # non-integer: interpolation
    rated = tiny_net(num_semantic_token_ids=5, semantic_ratio=2.0)
    assert rated.embed_semantic(torch.tensor([[1, 2, 3]]), 5).shape == (1, 5, 32)
    with pytest.raises(ShapeError, match="mismatch"):
        rated.embed_semantic(torch.tensor([[1, 2, 3]]), 9)
    with pytest.raises(ShapeError, match="mismatch"):
        net.embed_semantic(torch.tensor([[1, 2, 3, 4]]), 3)
    with pytest.raises(ShapeError):
        net.embed_semantic(torch.tensor([[1, 5]]), 4)
    with pytest.raises(ShapeError):
        net.embed_semantic(torch.tensor([[1.0, 2.0]]), 4)
    with pytest.raises(ConfigError):
        tiny_net().embed_semantic(torch.tensor([[1, 2]]), 4)
    model = SoundStorm(rated)
    assert model.generate(cond_semantic_token_ids=torch.tensor([[1, 2, 3]]), seed=0).shape == (1, 6, 3)


@pytest.mark.parametrize("mode", ["adaln", "cross"])
def test_global_conditioning_tokens(mode):
    model = SoundStorm(tiny_net(cond_dim=8, cond_mode=mode))
    codes = torch.randint(0, 16, (2, 10, 3))
    cond = torch.randn(2, 4, 8)
    loss, _ = model(codes, cond=cond)
    loss.backward()
    assert model.generate(10, cond=cond, seed=0).shape == (2, 10, 3)
    with pytest.raises(ShapeError):
        model.generate(10, cond=torch.randn(2, 4, 7))


def test_save_and_load_round_trip_with_and_without_codec(tmp_path):
    model = SoundStorm(tiny_net(num_semantic_token_ids=4), steps_per_level=[3, 2, 1], temperature=0.7)
    model.save_pretrained(tmp_path / "plain")
    loaded = SoundStorm.from_pretrained(tmp_path / "plain")
    assert loaded.config == model.config and loaded.soundstream is None
    assert torch.equal(model.generate(8, seed=1), loaded.generate(8, seed=1))
    with_codec = SoundStorm(tiny_net(), soundstream=tiny_codec())
    with_codec.save_pretrained(tmp_path / "codec")
    again = SoundStorm.from_pretrained(tmp_path / "codec")
    assert isinstance(again.soundstream, SoundStream)
    torch.testing.assert_close(with_codec.generate(6, seed=2), again.generate(6, seed=2))


def test_a_tiny_soundstorm_overfits_and_reproduces_its_training_codes():
    torch.manual_seed(0)
    net = tiny_net(conformer=dict(dim=64, depth=1, heads=2, dim_head=32), num_semantic_token_ids=10, semantic_ratio=2)
    model = SoundStorm(net, steps=6)
    codes = torch.randint(0, 16, (3, 16, 3))
    semantic = torch.randint(0, 10, (3, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(200):
        loss, _ = model(codes.repeat(4, 1, 1), cond_semantic_token_ids=semantic.repeat(4, 1), generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    check_margin("soundstorm.overfit.last10_loss_vs_0.1_first5", sum(losses[-10:]) / 10, 0.1 * sum(losses[:5]) / 5)
    generated = model.generate(cond_semantic_token_ids=semantic, seed=0)
    # token accuracy >= 0.9, written as the error rate (< 0.1) so the margin reads on the error's scale
    check_margin("soundstorm.overfit.generated_token_error_rate", (generated != codes).float().mean(), 0.1)
    continued = model.generate(cond_semantic_token_ids=semantic, prompt_acoustic_token_ids=codes[:, :4], seed=0)
    assert torch.equal(continued[:, :4], codes[:, :4])
    check_margin("soundstorm.overfit.continued_token_error_rate", (continued[:, 4:] != codes[:, 4:]).float().mean(),
                 0.1)


def test_bad_inputs_raise_clear_errors():
    model = SoundStorm(tiny_net())
    good = torch.randint(0, 16, (2, 6, 3))
    bad_calls = [
        lambda: model(torch.randn(2, 100)),  # audio without a codec
        lambda: model(good.float()[..., 0]),
        lambda: model(torch.randint(0, 16, (2, 6, 4))),  # wrong number of levels
        lambda: model(torch.randint(0, 16, (6, 3))),
        lambda: model(good.bool()),
        lambda: model(good + 16),  # out of range (the mask id is not a valid code)
        lambda: model(good - 1 - good),
        lambda: model(good, mask=torch.ones(2, 5, dtype=torch.bool)),
        lambda: model(good, mask=torch.ones(2, 6)),
        lambda: model(good, mask=torch.zeros(2, 6, dtype=torch.bool)),
        lambda: model(good, cond_semantic_token_ids=torch.tensor([[1, 2, 3]])),
        lambda: model(good, cond=torch.randn(2, 3, 4)),
        lambda: model("codes"),
        lambda: model(good, cond=[[1.0]]),
        lambda: model.generate(8, cond_semantic_token_ids=[[1, 2]]),
        lambda: model.generate(8, mask=[[True] * 8]),
        lambda: model.generate(),  # no length
        lambda: model.generate(seconds=1.0),  # seconds without a codec
        lambda: model.generate(5, seconds=1.0),
        lambda: model.generate(0),
        lambda: model.generate(4, prompt_acoustic_token_ids=good),  # prompt longer than the output
        lambda: model.generate(8, prompt_acoustic_token_ids=good, batch_size=3),
        lambda: model.generate(8, prompt_acoustic_token_ids=good.float()),
        lambda: model.generate(8, steps=[2, 2]),
        lambda: model.generate(8, steps=0),
        lambda: model.generate(8, schedule="nope"),
        lambda: model.generate(8, temperature=-1.0),
        lambda: model.generate(8, precision="fp8"),
        lambda: model.generate(8, mask=torch.ones(3, 8, dtype=torch.bool), batch_size=2),
        lambda: model.generate(8, prompt_audio=torch.randn(1, 800)),
        lambda: SoundStorm(tiny_net(), soundstream=SoundStream(sample_rate=16000, channels=4, channel_mults=(1,),
                                                              strides=(8,), codebook_dim=8, codebook_size=32,
                                                              rq_num_quantizers=3, attn_depth=0)),
        lambda: SoundStorm(torch.nn.Linear(2, 2)),
        lambda: SoundStorm(tiny_net(), steps=0),
        lambda: ConformerWrapper(codebook_size=0, num_quantizers=3, conformer=dict(dim=8, depth=1)),
        lambda: ConformerWrapper(codebook_size=8, num_quantizers=3, conformer=dict(dim=8)),
        lambda: ConformerWrapper(codebook_size=8, num_quantizers=3, conformer=dict(dim=8, depth=1, kernel=3)),
        lambda: ConformerWrapper(codebook_size=8, num_quantizers=3, conformer=torch.nn.Linear(2, 2)),
        lambda: ConformerWrapper(codebook_size=8, num_quantizers=3, conformer=dict(dim=8, depth=1),
                                 num_semantic_token_ids=4, semantic_pad_id=2),
    ]
    for i, call in enumerate(bad_calls):
        with pytest.raises(SoundweaveError):
            call()
            pytest.fail(f"bad call #{i} did not raise")
    codec_model = SoundStorm(tiny_net(), soundstream=tiny_codec())
    with pytest.raises(ShapeError):
        codec_model(torch.randn(2, 1, 800))
    with pytest.raises(ShapeError):
        codec_model(torch.full((1, 800), float("nan")))
    with pytest.raises(ShapeError):
        codec_model(torch.randn(2, 800), mask=torch.ones(2, 3, dtype=torch.bool))


def test_classifier_free_guidance_drops_conditioning_in_training_and_guides_generation():
    net = tiny_net(num_semantic_token_ids=6, cond_dim=4, cond_mode="cross")
    model = SoundStorm(net, cond_drop_prob=0.5)
    semantic = torch.randint(0, 6, (2, 8))
    cond = torch.randn(2, 3, 4)
    keep = torch.tensor([True, False])
    sem_embeds = net.embed_semantic(semantic, 8)
    dropped_sem, dropped_cond, dropped_mask = model._drop_condition(keep, sem_embeds, cond, None)
    assert dropped_sem[1].abs().sum() == 0 and torch.equal(dropped_sem[0], sem_embeds[0])
    assert dropped_mask.tolist() == [[True] * 3, [False] * 3]
    loss, _ = model(torch.randint(0, 16, (2, 8, 3)), cond_semantic_token_ids=semantic, cond=cond)
    loss.backward()
    guided = model.generate(cond_semantic_token_ids=semantic, cond=cond, cond_scale=3.0, seed=0)
    plain = model.generate(cond_semantic_token_ids=semantic, cond=cond, seed=0)
    assert guided.shape == plain.shape == (2, 8, 3)
    # scale 0 is the unconditional model: the same as generating with no conditioning at all
    unconditional = model.generate(cond_semantic_token_ids=semantic, cond=cond, cond_scale=0.0, seed=0)
    no_cond = model.generate(cond_semantic_token_ids=torch.full_like(semantic, -1), seed=0)
    # agreement >= 0.95, written as the share of tokens that differ (< 0.05)
    check_margin("soundstorm.cfg.scale0_vs_no_cond_token_disagreement", (unconditional != no_cond).float().mean(),
                 0.05)
    with pytest.raises(ConfigError):
        SoundStorm(tiny_net()).generate(8, cond_scale=2.0)
    with pytest.raises(ConfigError):
        SoundStorm(tiny_net(), cond_drop_prob=1.0)


def test_logits_at_selected_positions_equal_the_full_logits_there():
    net = tiny_net().eval()
    codes = torch.randint(0, 17, (2, 9, 3))
    positions = torch.rand(2, 9) < 0.5
    positions[0, 0] = True
    with torch.no_grad():
        full = net(codes, level=1)
        picked = net(codes, level=1, positions=positions)
    torch.testing.assert_close(picked, full[positions], atol=1e-5, rtol=1e-5)
    with pytest.raises(ShapeError):
        net(codes, level=None, positions=positions)
    with pytest.raises(ShapeError):
        net(codes, level=1, positions=positions[:, :5])


def test_zero_mask_embedding_adds_nothing_for_masked_tokens_and_persists(tmp_path):
    torch.manual_seed(0)
    net = tiny_net(mask_embedding="zero")
    m = net.mask_id
    codes = torch.tensor([[[3, 5, 7], [3, m, m], [m, m, m]]])
    emb = net.embed_codes(codes)
    table = net.code_embeds.view(3, 17, -1)
    assert torch.allclose(emb[0, 0], table[0, 3] + table[1, 5] + table[2, 7])
    assert torch.allclose(emb[0, 1], table[0, 3])  # the masked levels add nothing
    assert torch.equal(emb[0, 2], torch.zeros_like(emb[0, 2]))
    emb.sum().backward()
    assert torch.equal(net.code_embeds.grad.view(3, 17, -1)[:, m], torch.zeros(3, 32))  # mask rows never train
    learned = tiny_net()  # the default keeps soundstorm-pytorch's learned mask embeddings
    assert learned.config.mask_embedding == "learned"
    table = learned.code_embeds.view(3, 17, -1)
    assert torch.allclose(learned.embed_codes(codes)[0, 2], table[0, m] + table[1, m] + table[2, m])
    net.save_pretrained(tmp_path / "net")
    again = ConformerWrapper.from_pretrained(tmp_path / "net")
    assert again.config.mask_embedding == "zero" and torch.equal(again.embed_codes(codes), net.embed_codes(codes))
    with pytest.raises(ConfigError, match="mask_embedding"):
        tiny_net(mask_embedding="none")
    from soundweave.training.soundstorm import build_net  # what train_soundstorm's benchmark builds

    built = build_net(tiny_codec(), "tiny", mask_embedding="zero", dim=48)
    assert built.config.mask_embedding == "zero" and built.config.conformer["dim"] == 48
    assert (built.num_quantizers, built.codebook_size) == (3, 16)


def test_tied_heads_are_the_code_embeddings_and_persist(tmp_path):
    torch.manual_seed(0)
    net = tiny_net(tie_embeddings=True, mask_embedding="zero")
    assert net.head_weight is None and not tiny_net().config.tie_embeddings  # the class default stays untied
    table = net.code_embeds.view(3, 17, -1)
    codes = torch.randint(0, 16, (2, 5, 3))
    hidden = torch.randn(2, 5, 32)
    for level in range(3):  # level q's logit for code c is hidden . (embedding of code c at level q) + bias
        want = hidden @ table[level, :16].t() + net.head_bias[level]
        assert torch.allclose(net.logits(hidden, level), want, atol=1e-5)
    per_item = net.logits(hidden, torch.tensor([2, 0]))
    assert torch.allclose(per_item[0], net.logits(hidden[:1], 2)[0], atol=1e-5)
    assert torch.allclose(net.logits(hidden)[:, :, 1], net.logits(hidden, 1), atol=1e-5)
    logits = net(codes, level=0)
    logits.sum().backward()
    assert net.code_embeds.grad.view(3, 17, -1)[0, :16].abs().sum() > 0
    net.save_pretrained(tmp_path / "tied")
    again = ConformerWrapper.from_pretrained(tmp_path / "tied")
    assert again.config.tie_embeddings and again.head_weight is None
    assert torch.allclose(again(codes, level=1), net(codes, level=1), atol=1e-6)
    untied = tiny_net()
    untied.save_pretrained(tmp_path / "untied")  # a folder saved without the option loads untied
    import json

    config = json.loads((tmp_path / "untied" / "config.json").read_text())
    assert config.pop("tie_embeddings") is False
    (tmp_path / "untied" / "config.json").write_text(json.dumps(config))
    assert ConformerWrapper.from_pretrained(tmp_path / "untied").head_weight is not None
    with pytest.raises(ConfigError, match="tie_embeddings"):
        tiny_net(tie_embeddings="yes")
    from soundweave.training.soundstorm import TIE_EMBEDDINGS, build_net

    assert TIE_EMBEDDINGS and build_net(tiny_codec(), "tiny", dim=48).config.tie_embeddings
    assert build_net(tiny_codec(), "tiny", dim=48, tie_embeddings=False).head_weight is not None


@pytest.mark.parametrize("tied", [False, True], ids=["own-heads", "tied-heads"])
def test_a_tiny_soundstorm_with_zero_mask_embeddings_learns(tied):
    torch.manual_seed(0)
    model = SoundStorm(tiny_net(conformer=dict(dim=64, depth=1, heads=2, dim_head=32), mask_embedding="zero",
                                tie_embeddings=tied))
    codes = torch.randint(0, 16, (3, 16, 3)).repeat(4, 1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        loss, _ = model(codes, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    check_margin(f"soundstorm.zero_mask.tied={tied}.last10_loss_vs_0.3_first5", sum(losses[-10:]) / 10,
                 0.3 * sum(losses[:5]) / 5)


def test_sliding_windows_cover_every_frame_once_within_the_window():
    from soundweave.samplers.windows import sliding_windows

    assert sliding_windows(50, 10, None) == [(0, 10, 50)]
    assert sliding_windows(50, 10, 64) == [(0, 10, 50)]  # fits: one pass
    assert sliding_windows(200, 75, 100, 0.5) == [(0, 75, 100), (50, 100, 150), (100, 150, 200)]
    for total, known, window, context in [(200, 75, 100, 0.75), (37, 0, 8, 0.5), (90, 60, 20, 0.0), (9, 3, 2, 0.9)]:
        spans = sliding_windows(total, known, window, context)
        made = [f for _, first, end in spans for f in range(first, end)]
        assert made == list(range(known, total))  # every frame after the known ones, once, in order
        assert all(end - start <= window and start <= first < end for start, first, end in spans)
        keep = int(window * context)
        assert all(first - start >= min(first, keep) for start, first, end in spans)  # at least the context
    for window, context in [(1, 0.5), (-3, 0.5), (2.5, 0.5), (True, 0.5), (8, 1.0), (8, -0.1), (8, "half")]:
        with pytest.raises(ConfigError, match="window"):
            sliding_windows(20, 0, window, context)


def test_windowed_generation_never_shows_the_network_more_than_a_window():
    net = tiny_net(num_semantic_token_ids=7, semantic_ratio=1)
    model = SoundStorm(net, steps=3, choice_temperature=2.0)
    prompt = torch.randint(0, 16, (2, 6, 3))
    semantic = torch.randint(0, 7, (2, 40))
    seen, forward = [], net.forward

    def recording(codes, *args, **kwargs):
        seen.append(codes.shape[1])
        return forward(codes, *args, **kwargs)

    net.forward = recording
    calls = []
    out = model.generate(40, prompt_acoustic_token_ids=prompt, cond_semantic_token_ids=semantic, seed=2,
                         window_frames=16, window_context=0.5, callback=lambda d, t: calls.append((d, t)))
    assert out.shape == (2, 40, 3) and torch.equal(out[:, :6], prompt)
    assert max(seen) == 16 and len(seen) > 5
    # spans (0, 6, 16), (8, 16, 24), (16, 24, 32), (24, 32, 40): 4 windows of 3 + 1 + 1 passes
    assert calls[-1] == (20, 20) and len(calls) == 20
    # the first window is exactly a one-pass generation of its 16 frames with the same seed and conditioning
    first = model.generate(16, prompt_acoustic_token_ids=prompt, cond_semantic_token_ids=semantic[:, :16], seed=2)
    assert torch.equal(out[:, :16], first)
    # stored in the config and persisted; window_frames=0 in a call: one pass, whatever the model stores
    stored = SoundStorm(net, steps=3, choice_temperature=2.0, window_frames=16)
    again = stored.generate(40, prompt_acoustic_token_ids=prompt, cond_semantic_token_ids=semantic, seed=2)
    assert torch.equal(again, out)
    seen.clear()
    one = stored.generate(40, prompt_acoustic_token_ids=prompt, cond_semantic_token_ids=semantic, seed=2,
                          window_frames=0)
    assert set(seen) == {40} and not torch.equal(one, out)
    with pytest.raises(ConfigError, match="window_frames"):
        model.generate(40, window_frames=1)
    with pytest.raises(ConfigError, match="window_context"):
        SoundStorm(net, window_frames=16, window_context=1.5)


def test_windowed_generation_keeps_padding_and_guidance():
    net = tiny_net(num_semantic_token_ids=7, semantic_ratio=1)
    model = SoundStorm(net, steps=2, cond_drop_prob=0.1)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[1, 9:] = False  # item 1 ends before the second window starts: its rows there are all padding
    semantic = torch.randint(0, 7, (2, 30))
    out = model.generate(mask=mask, cond_semantic_token_ids=semantic, seed=0, window_frames=12, cond_scale=2.0)
    assert out.shape == (2, 30, 3)
    assert (out[1, 9:] == 0).all() and (out[0] < 16).all() and (out[1, :9] < 16).all()
    # the first window, guided, is the one-pass guided generation of its 12 frames
    first = model.generate(mask=mask[:, :12], cond_semantic_token_ids=semantic[:, :12], seed=0, cond_scale=2.0)
    assert torch.equal(out[:, :12], first)
