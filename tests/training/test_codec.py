"""Codec training: a tiny codec learns on the synthetic corpus; resume; adversarial option; evaluation."""

import json

import pytest
import torch

from soundweave import SoundStream, SpectralCodec, load_codec
from soundweave.errors import CheckpointError, ConfigError, DataError
from soundweave.metrics import code_usage, mel_distance
from soundweave.training.codec import (
    PRESETS,
    AdversarialCodec,
    build_codec,
    codec_config,
    evaluate_codec,
    instrument_survival,
    load_clips,
    train_codec,
)
from tests.helpers import check_margin

SMALL = dict(channels=4, channel_mults=(2, 4), strides=(4, 5), codebook_dim=16, codebook_size=32)


# the clips every learning check is measured on, before and after: the first 3 test clips, whole (1.5 s)
HELD_OUT = dict(eval_clips=3, eval_seconds=None, eval_split="test")


def test_tiny_spectral_codec_learns_on_the_corpus(tiny_corpus, tmp_path):
    """The offline default fits in seconds: held-out mel distance well under the unfitted codec's, on the same
    clips (the initial and final figures are both measured on HELD_OUT), and codes stay in use."""
    result = train_codec(tiny_corpus, tmp_path / "codec", preset="tiny", progress=False, **HELD_OUT)
    before, after = result.initial_metrics, result.final_metrics
    check_margin("codec.spectral_tiny.mel_distance_after_vs_0.65x_before", after["mel_distance"],
                 0.65 * before["mel_distance"])
    loaded = load_codec(tmp_path / "codec")
    assert isinstance(loaded, SpectralCodec) and loaded.config == result.model.config
    clip = torch.randn(1, 800) * 0.1
    assert torch.equal(loaded.encode(clip), result.model.encode(clip))
    assert torch.equal(loaded.decode(loaded.encode(clip)), result.model.decode(result.model.encode(clip)))
    state = json.loads((tmp_path / "codec" / "codec_train.json").read_text())
    assert state["kind"] == "spectral" and state["final_step"] == 10 and state["fit"]["frames"] > 1000
    # the public evaluation on the same clips gives the training run's final figure
    metrics = evaluate_codec(loaded, tiny_corpus, split="test", max_clips=3)
    assert metrics["mel_distance"] == pytest.approx(after["mel_distance"], rel=1e-4)
    assert metrics["bitrate_kbps"] == pytest.approx(loaded.bitrate() / 1000)
    assert metrics["clips"] == 3 and metrics["rtf"] > 0
    # no collapse: every level uses most of its codebook on the training audio
    train = load_clips(tiny_corpus, "train", loaded.sample_rate)
    usage = code_usage(torch.cat([loaded.encode(c) for c in train], dim=1), loaded.codebook_size)
    for level, figures in enumerate(usage):
        check_margin(f"codec.spectral_tiny.level{level}_train_codes_used_vs_half", figures["used"],
                     loaded.codebook_size / 2, above=True)
    clips = load_clips(tiny_corpus, "test", loaded.sample_rate, 3)
    # the decoder listens to its codes: each reconstruction is nearer its own clip than the other clips
    own, other = [], []
    for i, clip in enumerate(clips):
        recon = loaded.reconstruct(clip)
        own.append(float(mel_distance(clip[None], recon, loaded.sample_rate)))
        others = [float(mel_distance(c[None], recon, loaded.sample_rate)) for j, c in enumerate(clips) if j != i]
        check_margin(f"codec.spectral_tiny.clip{i}_own_vs_nearest_other_mel_distance", own[-1], min(others))
        other += others
    check_margin("codec.spectral_tiny.mean_own_vs_0.6x_mean_other_mel_distance", sum(own) / len(own),
                 0.6 * sum(other) / len(other))
    # fewer levels: a lower bitrate, a coarser but still fitted reconstruction
    coarse = evaluate_codec(loaded, tiny_corpus, split="test", max_clips=3, num_quantizers=1)
    check_margin("codec.spectral_tiny.one_level_vs_all_levels", metrics["mel_distance"], coarse["mel_distance"])
    check_margin("codec.spectral_tiny.one_level_vs_0.8x_unfitted", coarse["mel_distance"],
                 0.8 * before["mel_distance"])


def test_tiny_soundstream_learns_on_the_corpus(tiny_corpus, tmp_path):
    """SoundStream (the waveform codec) learns in seconds: held-out mel distance <= 0.7x the untrained codec's on
    the same clips (measured 0.55-0.58 over 1 / 2 threads and avx2 at 300 steps)."""
    result = train_codec(tiny_corpus, tmp_path / "codec", steps=300, kind="soundstream", preset="tiny",
                         progress=False, **HELD_OUT)
    before, after = result.initial_metrics, result.final_metrics
    check_margin("codec.soundstream_tiny.mel_distance_after_vs_0.7x_before", after["mel_distance"],
                 0.7 * before["mel_distance"])
    check_margin("codec.soundstream_tiny.loss_last10_vs_0.85x_first10", sum(result.train.losses[-10:]),
                 0.85 * sum(result.train.losses[:10]))
    loaded = SoundStream.from_pretrained(tmp_path / "codec")
    clip = torch.randn(1, 800) * 0.1
    assert torch.equal(loaded.encode(clip), result.model.encode(clip))
    metrics = evaluate_codec(loaded, tiny_corpus, split="test", max_clips=3)
    assert metrics["mel_distance"] == pytest.approx(after["mel_distance"], rel=1e-4)


def test_resume_continues_from_the_checkpoint(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    first = train_codec(tiny_corpus, out, steps=6, kind="soundstream", preset="tiny", model_config=SMALL,
                        save_every=3, progress=False, eval_clips=0, seconds=0.1, batch_size=2)
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
    result = train_codec(tiny_corpus, tmp_path / "adv", steps=3, kind="soundstream", preset="tiny", model_config=SMALL,
                         adversarial=True,
                         progress=False, eval_clips=0, seconds=0.1, batch_size=2)
    assert result.train.step == 3 and all(torch.isfinite(torch.tensor(result.train.losses)))
    assert isinstance(result.model, SoundStream)  # the discriminator is not part of the saved codec
    assert not any("discriminator" in k for k in result.model.state_dict())


def test_presets_are_valid():
    for kind, presets in PRESETS.items():
        for name in presets:
            codec = build_codec(kind, name)
            assert codec.num_quantizers >= 1 and codec.describe()
    for kind in PRESETS:
        demo = build_codec(kind, "demo")
        assert demo.frame_rate == 50 and demo.sample_rate == 16000
    assert isinstance(build_codec("spectral", "tiny"), SpectralCodec)
    assert SoundStream(**codec_config("tiny")).sample_rate == 8000
    with pytest.raises(ConfigError, match="kind"):
        build_codec("wavenet")


def test_bad_training_inputs(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError):
        train_codec(tiny_corpus, tmp_path / "a", steps=0, preset="tiny")
    with pytest.raises(ConfigError):
        train_codec(tiny_corpus, tmp_path / "b", steps=2, preset="huge")
    with pytest.raises(ConfigError, match="kind"):
        train_codec(tiny_corpus, tmp_path / "b", steps=2, kind="wavenet")
    with pytest.raises(ConfigError, match="adversarial"):
        train_codec(tiny_corpus, tmp_path / "b", kind="spectral", preset="tiny", adversarial=True)
    with pytest.raises(ConfigError, match="kmeans_iters"):
        train_codec(tiny_corpus, tmp_path / "b", kind="spectral", preset="tiny", kmeans_iters=0)
    with pytest.raises(ConfigError):
        train_codec(tiny_corpus, tmp_path / "c", steps=2, kind="soundstream", preset="tiny", seconds=0.0001)
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
    result = train_codec(tiny_corpus, tmp_path / "budget", steps=10_000, kind="soundstream", preset="tiny",
                         model_config=SMALL,
                         max_seconds=1.0, progress=False, eval_clips=1, eval_seconds=0.2, seconds=0.1, batch_size=2)
    assert 5 <= result.train.step < 10_000 and len(result.train.losses) == result.train.step
    assert (tmp_path / "budget" / "model.safetensors").is_file()


def test_instrument_survival_compares_the_same_clips(tiny_corpus, tmp_path):
    from tests.app.tiny_models import tiny_mulan

    mulan = tiny_mulan()
    codec = build_codec("spectral", "tiny")
    codec.fit(load_clips(tiny_corpus, "train", codec.sample_rate))
    report = instrument_survival(codec, mulan, tiny_corpus, "test", max_clips=4)
    assert report["clips"] == 4 and 0 <= report["instrument_acc_reconstruction"] <= 1
    assert 0 < report["chance"] < 1

    class Identity(SpectralCodec):  # a codec that gives its input back exactly: nothing is lost, survival is 1
        def reconstruct(self, audio, num_quantizers=None, sample_rate=None):
            return self._prepare_audio(audio, sample_rate)

    identity = Identity(**codec_config("tiny", "spectral", sample_rate=16000))
    same = instrument_survival(identity, mulan, tiny_corpus, "test", max_clips=4)
    assert same["instrument_acc_reconstruction"] == same["instrument_acc_original"] == report["instrument_acc_original"]
    mulan.save_pretrained(tmp_path / "mulan")
    codec.save_pretrained(tmp_path / "codec")
    from tests.helpers import invoke_cli, parse_json

    result = invoke_cli("eval", "codec", "--model", tmp_path / "codec", "--data", tiny_corpus, "--max-clips", 4,
                        "--mulan", tmp_path / "mulan")
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["instrument"] == report
