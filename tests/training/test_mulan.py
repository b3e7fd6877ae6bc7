import math

import pytest
import torch

from soundweave import AudioSpectrogramTransformer, MuLaN, TextTransformer
from soundweave.errors import ConfigError, DataError
from soundweave.training.mulan import (
    ClipCache,
    MuLaNTrainConfig,
    class_prompts,
    evaluate_mulan,
    grad_cache_backward,
    train_mulan,
)
from tests.helpers import check_margin


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from soundweave.data.synth import make_corpus

    folder = tmp_path_factory.mktemp("mulan_corpus")
    make_corpus(folder, n=32, seconds=1.5, sr=16000, seed=0, workers=1)
    return folder


def tiny_model(seed=0):
    torch.manual_seed(seed)
    audio = AudioSpectrogramTransformer(
        dim=32,
        depth=1,
        heads=2,
        dim_head=16,
        spec_n_fft=256,
        spec_win_length=256,
        spec_hop_length=64,
        n_mels=32,
        patch_size=(16, 8),
    )
    text = TextTransformer(dim=32, depth=1, heads=2, dim_head=16, num_tokens=300, max_seq_len=32)
    return MuLaN(audio, text, dim_latent=16)


def test_tiny_mulan_learns(corpus, tmp_path):
    """Proof that it learns: the loss falls clearly below chance (ln batch) and retrieval on the training
    clips beats chance."""
    config = MuLaNTrainConfig(
        data=str(corpus),
        out=str(tmp_path / "run"),
        text_tower="scratch",
        size="tiny",
        steps=80,
        batch_size=8,
        lr=2e-3,
        warmup_steps=5,
        seconds=1.5,
        progress=False,
        seed=0,
    )
    result = train_mulan(config)
    losses = result.train.losses
    chance = math.log(8)
    first, last = losses[0], sum(losses[-10:]) / 10  # losses[0]: the untrained model, before any update
    # starts near chance (no collapse, no trivial shortcut), ends far below it
    check_margin("mulan.tiny_learns.first_loss_vs_0.85_chance", first, 0.85 * chance, above=True)
    check_margin("mulan.tiny_learns.last10_loss_vs_half_chance", last, 0.5 * chance)
    metrics = evaluate_mulan(result.model, corpus, split="train", seconds=1.5, max_clips=None)
    n = metrics["clips"]
    assert n >= 20
    check_margin("mulan.tiny_learns.text_to_audio_R@1", metrics["text_to_audio_R@1"], 0.5, above=True)  # chance 1/n
    for direction in ("text_to_audio", "audio_to_text"):
        check_margin(f"mulan.tiny_learns.{direction}_R@5_vs_2x_chance", metrics[f"{direction}_R@5"], 2 * 5 / n,
                     above=True)
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_grad_cache_equals_full_batch_gradient():
    model = tiny_model().eval()  # deterministic: no SpecAugment
    wavs = torch.randn(6, 6000, generator=torch.Generator().manual_seed(0)) * 0.1
    captions = ["piano", "cello", "fast drums", "slow organ", "a flute", "bass"]
    loss = model(wavs, raw_texts=captions)
    loss.backward()
    full = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    cached = grad_cache_backward(model, wavs, captions=captions, chunk_size=4)
    assert torch.allclose(cached, loss.detach(), atol=1e-6)
    for name, grad in full.items():
        got = dict(model.named_parameters())[name].grad
        assert got is not None and torch.allclose(got, grad, atol=1e-5, rtol=1e-4), name
    # micro-batches that only see their own negatives give a different gradient
    model.zero_grad(set_to_none=True)
    for sl in (slice(0, 3), slice(3, 6)):
        (model(wavs[sl], raw_texts=captions[sl]) / 2).backward()
    diff = model.audio_to_latents.weight.grad - full["audio_to_latents.weight"]
    assert diff.abs().max() > 1e-4


def test_grad_cache_replays_training_randomness():
    """In training mode the re-forward must see the same SpecAugment / patch-dropout draws."""
    model = tiny_model().train()
    wavs = torch.randn(4, 6000, generator=torch.Generator().manual_seed(1)) * 0.1
    captions = ["piano", "cello", "drums", "organ"]
    torch.manual_seed(123)
    model(wavs, raw_texts=captions).backward()
    plain = model.audio_to_latents.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    grad_cache_backward(model, wavs, captions=captions, chunk_size=4)
    assert torch.allclose(model.audio_to_latents.weight.grad, plain, atol=1e-5)


def test_clip_cache_and_evaluator(corpus):
    from soundweave.data.dataset import CaptionedAudioDataset

    base = CaptionedAudioDataset(corpus, split="train", sample_rate=16000, seconds=1.0, crop="random")
    cache = ClipCache(base)
    item = cache[0]
    assert item["audio"].shape == (16000,) and item["mask"].all() and 0 in cache.cache
    assert cache.cache[0].dtype == torch.float16
    metrics = evaluate_mulan(tiny_model(), corpus, split="test", seconds=1.5)
    for key in (
        "text_to_audio_R@1",
        "text_to_audio_R@10",
        "audio_to_text_R@5",
        "zero_shot_instrument_acc",
        "zero_shot_tempo_acc",
        "zero_shot_mode_acc",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["zero_shot_tempo_chance"] == pytest.approx(1 / 3)
    assert metrics["zero_shot_mode_chance"] == pytest.approx(1 / 2)
    assert "mid-tempo music" in class_prompts("tempo", "medium")
    assert class_prompts("instrument", "piano")[0] == "piano"


def test_clip_cache_random_length_excerpts(corpus):
    from soundweave.data.dataset import CaptionedAudioDataset

    base = CaptionedAudioDataset(corpus, split="train", sample_rate=16000, seconds=1.5, crop="random")
    cache = ClipCache(base, min_seconds=0.5)
    torch.manual_seed(0)
    lengths = set()
    for _ in range(40):
        item = cache[1]
        audio, mask, n = item["audio"], item["mask"], int(item["mask"].sum())
        assert audio.shape == mask.shape == (24000,)
        assert 8000 <= n <= 24000 and mask[:n].all() and not mask[n:].any()  # one excerpt, then padding
        assert torch.all(audio[n:] == 0)
        clip = cache.clip(1)
        starts = [s for s in range(clip.shape[-1] - n + 1) if torch.equal(clip[s : s + n], audio[:n])]
        assert starts, "the excerpt is not a contiguous piece of the clip"
        lengths.add(n)
    assert len(lengths) > 20, f"lengths do not vary: {sorted(lengths)}"
    assert ClipCache(base, min_seconds=1.5)[0]["mask"].all()  # min = window: whole windows, as without it
    with pytest.raises(ConfigError, match="min_seconds"):
        ClipCache(base, min_seconds=2.0)
    with pytest.raises(ConfigError, match="min_seconds"):
        ClipCache(base, min_seconds=0.0)
    with pytest.raises(ConfigError, match="crop='random'"):
        ClipCache(base, crop="start", min_seconds=0.5)


def test_evaluator_first_clip_starts_later_in_the_split(corpus):
    from soundweave.training.mulan import MuLaNEvaluator

    whole = MuLaNEvaluator(corpus, split="train", seconds=1.0, max_clips=None)
    later = MuLaNEvaluator(corpus, split="train", seconds=1.0, max_clips=3, first_clip=2)
    assert later.audio.shape[0] == 3 and later.captions == whole.captions[2:5]
    assert torch.equal(later.audio, whole.audio[2:5])
    assert later.classes == whole.classes  # the class lists come from the whole corpus, not the slice
    n = whole.audio.shape[0]
    tail = MuLaNEvaluator(corpus, split="train", seconds=1.0, max_clips=10, first_clip=n - 2)
    assert tail.captions == whole.captions[-2:]
    with pytest.raises(DataError, match="first_clip"):
        MuLaNEvaluator(corpus, split="train", seconds=1.0, first_clip=n)
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="first_clip"):
            MuLaNEvaluator(corpus, split="train", seconds=1.0, first_clip=bad)


def test_bad_training_config(tmp_path):
    with pytest.raises(ConfigError):
        MuLaNTrainConfig(data="x", out="y", batch_size=1)
    with pytest.raises(ConfigError):
        MuLaNTrainConfig(data="x", out="y", precision="fp16")
    for bad in (0.0, -1.0, 4.5):
        with pytest.raises(ConfigError, match="min_seconds"):
            MuLaNTrainConfig(data="x", out="y", seconds=4.0, min_seconds=bad)
    with pytest.raises(ConfigError, match="not streamed shards"):  # refused before any shard is opened
        train_mulan(MuLaNTrainConfig(data=str(tmp_path / "shard-{000..003}.tar"), out=str(tmp_path / "o"),
                                     text_tower="scratch", min_seconds=1.0))
    assert not (tmp_path / "o" / "checkpoints").exists()
    with pytest.raises(DataError):
        train_mulan(
            MuLaNTrainConfig(data=str(tmp_path / "missing"), out=str(tmp_path / "o"), text_tower="scratch")
        )
