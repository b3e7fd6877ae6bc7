"""SoundStorm training: code precompute + cache, datasets, the training run, resume."""

from __future__ import annotations

import pytest
import torch

from soundweave import SoundStorm, SoundStream
from soundweave.errors import ConfigError, DataError, SoundweaveError
from soundweave.training.soundstorm import (
    CHOICE_TEMPERATURE,
    LEVEL0_SHARE,
    TOP_K,
    CodeDataset,
    collate_codes,
    level_probs_for,
    precompute_codes,
    train_soundstorm,
)
from tests.helpers import check_margin


def tiny_codec():
    torch.manual_seed(0)
    return SoundStream(sample_rate=16000, channels=4, channel_mults=(1, 2, 4), strides=(4, 8, 10), codebook_dim=16,
                       codebook_size=32, rq_num_quantizers=3, attn_depth=0).eval()


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codec")
    tiny_codec().save_pretrained(folder)
    return folder


def test_precompute_codes_encodes_every_clip_and_caches_by_codec(tiny_corpus, tmp_path):
    codec = tiny_codec()
    codes = precompute_codes(codec, tiny_corpus, "train", tmp_path / "cache")
    assert codes and all(c.dtype == torch.int64 and c.ndim == 2 and c.shape[1] == 3 for c in codes)
    assert all(c.shape[0] == codec.seconds_to_frames(1.5) for c in codes)
    assert len(list((tmp_path / "cache").glob("codes-train-*.safetensors"))) == 1
    from soundweave.data import CaptionedAudioDataset

    clip = CaptionedAudioDataset(tiny_corpus, split="train", sample_rate=16000)[0]["audio"]
    assert torch.equal(codes[0], codec.encode(clip[None])[0])  # batching does not change the codes
    again = precompute_codes(codec, tiny_corpus, "train", tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(codes, again, strict=True))
    with torch.no_grad():  # another codec -> another cache entry
        codec.rvq.layers[0]._codebook.embed.mul_(-1)
    precompute_codes(codec, tiny_corpus, "train", tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("codes-train-*.safetensors"))) == 2
    with pytest.raises(DataError):
        precompute_codes(codec, tmp_path / "missing", "train")


def test_code_dataset_crops_and_pads_with_a_mask():
    codes = [torch.randint(0, 8, (10, 2)), torch.randint(0, 8, (4, 2))]
    data = CodeDataset(codes, frames=6)
    long, short = data[0], data[1]
    assert long["codes"].shape == (6, 2) and long["mask"].all()
    assert short["codes"].shape == (6, 2) and short["mask"].tolist() == [True] * 4 + [False] * 2
    batch = collate_codes([CodeDataset(codes)[0], CodeDataset(codes)[1]])
    assert batch["codes"].shape == (2, 10, 2) and batch["mask"].sum(1).tolist() == [10, 4]
    with pytest.raises(SoundweaveError):
        CodeDataset([])


def test_train_soundstorm_learns_saves_and_resumes(tiny_corpus, codec_dir, tmp_path):
    out = tmp_path / "storm"
    result = train_soundstorm(tiny_corpus, codec_dir, out, steps=40, batch_size=8, lr=3e-3, seconds=1.0,
                              preset="tiny", dim=32, depth=1, save_every=20, progress=False)
    losses = result.train.losses
    assert result.train.step == 40 and len(losses) == 40
    # it learns: mean loss over the first epoch vs the last one (each epoch: every training clip once)
    from soundweave.data import read_manifest

    per_epoch = sum(r.split == "train" for r in read_manifest(tiny_corpus)) // 8
    assert len(losses) % per_epoch == 0
    check_margin("soundstorm.train.last_epoch_loss_vs_first_epoch", sum(losses[-per_epoch:]) / per_epoch,
                 sum(losses[:per_epoch]) / per_epoch)
    assert 0.0 <= result.metrics["valid_accuracy"] <= 1.0
    model = SoundStorm.from_pretrained(out)
    # the measured recipe by default: most items train level 0, masked tokens add nothing
    assert model.config.level_probs == pytest.approx(level_probs_for(LEVEL0_SHARE, 3))
    assert model.net.config.mask_embedding == "zero" and model.net.config.tie_embeddings
    assert model.config.choice_temperature == CHOICE_TEMPERATURE > 0  # generation keeps choice noise by default
    assert model.config.top_k == TOP_K
    assert isinstance(model.soundstream, SoundStream) and model.net.config.conformer["dim"] == 32
    audio = model.generate(seconds=0.5, seed=0)
    assert audio.shape == (1, model.soundstream.seconds_to_frames(0.5) * model.soundstream.hop_length)
    # resume continues from the last checkpoint (step 40) to 50, with the stored network config
    again = train_soundstorm(tiny_corpus, codec_dir, out, steps=50, batch_size=8, lr=3e-3, seconds=1.0,
                             preset="tiny", dim=64, depth=1, save_every=20, resume=True, progress=False)
    assert again.train.step == 50 and len(again.train.losses) == 10
    assert again.model.net.config.conformer["dim"] == 32


def test_train_soundstorm_init_from_fine_tunes_a_trained_model(tiny_corpus, codec_dir, tmp_path):
    first = train_soundstorm(tiny_corpus, codec_dir, tmp_path / "first", steps=40, batch_size=8, lr=3e-3,
                             seconds=1.0, preset="tiny", dim=32, depth=1, save_every=0, progress=False)
    trained = {k: v.clone() for k, v in first.model.net.state_dict().items()}
    # a second phase at another level share starts from those weights, not from a fresh initialisation
    tuned = train_soundstorm(tiny_corpus, codec_dir, tmp_path / "second", steps=1, batch_size=8, lr=1e-9,
                             seconds=1.0, level0_share=0.5, save_every=0, progress=False,
                             init_from=tmp_path / "first")
    after = tuned.model.net.state_dict()
    assert all(torch.allclose(after[k], v, atol=1e-6) for k, v in trained.items())
    fresh = train_soundstorm(tiny_corpus, codec_dir, tmp_path / "fresh", steps=1, batch_size=8, lr=1e-9,
                             seconds=1.0, preset="tiny", dim=32, depth=1, level0_share=0.5, save_every=0,
                             progress=False)
    # like for like (same seed, data order, masks and one step): the trained start has the lower loss
    check_margin("soundstorm.init_from.first_loss_vs_half_fresh", tuned.train.losses[0], 0.5 * fresh.train.losses[0])
    saved = SoundStorm.from_pretrained(tmp_path / "second")
    assert saved.config.level_probs == pytest.approx(level_probs_for(0.5, 3))
    assert saved.net.config.conformer["dim"] == 32
    with pytest.raises(ConfigError, match="init_from"):
        train_soundstorm(tiny_corpus, codec_dir, tmp_path / "x", steps=1, dim=64, init_from=tmp_path / "first",
                         progress=False)
    with pytest.raises(SoundweaveError):
        train_soundstorm(tiny_corpus, codec_dir, tmp_path / "y", steps=1, init_from=tmp_path / "missing",
                         progress=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_level_probs_for_puts_the_share_on_level_0_and_spreads_the_rest():
    assert level_probs_for(0.8, 5) == pytest.approx([0.8, 0.05, 0.05, 0.05, 0.05])
    assert level_probs_for(None, 4) is None  # uniform, as the paper
    assert level_probs_for(0.3, 1) == [1.0]
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="level0_share"):
            level_probs_for(bad, 3)


def test_train_soundstorm_can_use_the_papers_uniform_levels_and_learned_mask(tiny_corpus, codec_dir, tmp_path):
    result = train_soundstorm(tiny_corpus, codec_dir, tmp_path / "paper", steps=2, batch_size=4, seconds=0.5,
                              preset="tiny", dim=32, depth=1, level0_share=None, mask_embedding="learned",
                              save_every=0, progress=False)
    model = SoundStorm.from_pretrained(tmp_path / "paper")
    assert result.model.config.level_probs is None and model.config.level_probs is None
    assert model.net.config.mask_embedding == "learned"
