"""Codec training: a tiny codec learns on the synthetic corpus; resume; adversarial option; evaluation."""

import json

import pytest
import torch

from soundweave import SoundStream
from soundweave.errors import CheckpointError, ConfigError, DataError
from soundweave.training.codec import (
    CODEC_PRESETS,
    AdversarialCodec,
    codec_config,
    evaluate_codec,
    train_codec,
)

SMALL = dict(channels=4, channel_mults=(2, 4), strides=(4, 5), codebook_dim=16, codebook_size=32)


def test_tiny_codec_learns_on_the_corpus(tiny_corpus, tmp_path):
    """Proof that it learns: a few hundred CPU steps beat the untrained codec on held-out clips."""
    result = train_codec(tiny_corpus, tmp_path / "codec", steps=150, preset="tiny", progress=False, eval_clips=4,
                         eval_seconds=1.0, eval_split=("valid", "test"))
    before, after = result.initial_metrics, result.final_metrics  # on 4 valid + 4 test clips (held out)
    assert after["si_sdr"] > before["si_sdr"] + 10.0, (before, after)
    assert after["mel_distance"] < 0.9 * before["mel_distance"], (before, after)
    assert sum(result.train.losses[-10:]) < 0.85 * sum(result.train.losses[:10])
    print("codec metrics before / after training:", before, after)
    # the saved model is the trained one
    loaded = SoundStream.from_pretrained(tmp_path / "codec")
    clip = torch.randn(1, 800) * 0.1
    assert torch.equal(loaded.encode(clip), result.model.encode(clip))
    state = json.loads((tmp_path / "codec" / "codec_train.json").read_text())
    assert state["final_step"] == 150 and state["final_metrics"]["si_sdr"] == pytest.approx(after["si_sdr"])
    # held-out test split through the public evaluation
    metrics = evaluate_codec(loaded, tiny_corpus, split="test", max_clips=3)
    assert metrics["si_sdr"] > before["si_sdr"] + 10.0
    assert metrics["bitrate_kbps"] == pytest.approx(loaded.bitrate() / 1000)
    assert metrics["clips"] == 3 and metrics["rtf"] > 0


def test_resume_continues_from_the_checkpoint(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    first = train_codec(tiny_corpus, out, steps=6, preset="tiny", model_config=SMALL, save_every=3,
                        progress=False, eval_clips=0, seconds=0.1, batch_size=2)
    assert first.train.step == 6 and (out / "config.json").is_file()
    # a resumed run keeps the stored model config even if another preset is asked for
    again = train_codec(tiny_corpus, out, steps=9, preset="demo", resume=True, save_every=3, progress=False,
                        eval_clips=0, seconds=0.1, batch_size=2)
    assert again.train.step == 9 and len(again.train.losses) == 3
    assert again.model.config == first.model.config


def test_adversarial_training_updates_both_networks(tiny_corpus, tmp_path):
    codec = SoundStream(**codec_config("tiny", **SMALL))
    model = AdversarialCodec(codec, fft_sizes=(256, 128), channels=4)
    loss, parts = model(torch.randn(2, 800) * 0.1, return_loss_breakdown=True)
    assert {"g_adv", "feat", "d_loss", "mel"} <= set(parts)
    loss.backward()
    assert all(p.grad is not None for p in model.discriminator.parameters())
    assert codec.decoder.net[0].conv.weight.grad is not None
    # the generator terms alone leave the discriminator without gradient (detached weights)
    model.zero_grad()
    out = codec.compute_loss(torch.randn(2, 800) * 0.1)
    from torch.func import functional_call

    frozen = {n: p.detach() for n, p in model.discriminator.named_parameters()}
    fake = functional_call(model.discriminator, frozen, (out.recons,))
    sum(f.mean() for f, _ in fake).backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert codec.decoder.net[0].conv.weight.grad is not None
    result = train_codec(tiny_corpus, tmp_path / "adv", steps=3, preset="tiny", model_config=SMALL, adversarial=True,
                         progress=False, eval_clips=0, seconds=0.1, batch_size=2)
    assert result.train.step == 3 and all(torch.isfinite(torch.tensor(result.train.losses)))
    assert isinstance(result.model, SoundStream)  # the discriminator is not part of the saved codec
    assert not any("discriminator" in k for k in result.model.state_dict())


def test_presets_are_valid():
    for name in CODEC_PRESETS:
        codec = SoundStream(**codec_config(name))
        assert codec.num_quantizers >= 1
    demo = SoundStream(**codec_config("demo"))
    assert demo.frame_rate == 50 and demo.sample_rate == 16000


def test_bad_training_inputs(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError):
        train_codec(tiny_corpus, tmp_path / "a", steps=0, preset="tiny")
    with pytest.raises(ConfigError):
        train_codec(tiny_corpus, tmp_path / "b", steps=2, preset="huge")
    with pytest.raises(ConfigError):
        train_codec(tiny_corpus, tmp_path / "c", steps=2, preset="tiny", seconds=0.0001)
    with pytest.raises(DataError):
        train_codec(tmp_path / "missing", tmp_path / "d", steps=2, preset="tiny")
    with pytest.raises(CheckpointError):
        train_codec(tiny_corpus, tmp_path / "e", steps=2, preset="tiny", init_from=tmp_path / "nothing-here")


def test_bad_evaluation_inputs(tiny_corpus):
    codec = SoundStream(**codec_config("tiny", **SMALL))
    with pytest.raises(ConfigError):
        evaluate_codec(codec, tiny_corpus, num_quantizers=9)
    with pytest.raises(DataError):
        evaluate_codec(codec, tiny_corpus, split="nonexistent")


def test_time_budget_stops_early(tiny_corpus, tmp_path):
    result = train_codec(tiny_corpus, tmp_path / "budget", steps=10_000, preset="tiny", model_config=SMALL,
                         max_seconds=1.0, progress=False, eval_clips=1, eval_seconds=0.2, seconds=0.1, batch_size=2)
    assert 5 <= result.train.step < 10_000 and len(result.train.losses) == result.train.step
    assert (tmp_path / "budget" / "model.safetensors").is_file()
