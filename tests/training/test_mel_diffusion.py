"""Mel-diffusion training: random-slice data, the loss, resume, fine-tuning, and proof that it learns.

The proof uses the synthetic corpus: a tiny UNet (32x32 spectrograms) trained for seconds on one
instrument makes spectrograms whose mean per-mel-bin energy profile is far closer to that instrument's
real slices than an untrained model's are; a class-conditional model separates two instruments.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from soundweave.data.manifest import CaptionRecord, write_manifest
from soundweave.errors import ConfigError, DataError
from soundweave.pipelines.mel_diffusion import MelDiffusionPipeline
from soundweave.training.mel_diffusion import (
    MelDiffusionTrainConfig,
    MelSliceDataset,
    frechet_distance,
    log_mel_features,
    new_pipeline,
    normalize_where,
    open_source,
    profile_distance,
    spectrogram_profile,
    train_mel_diffusion,
)
from tests.helpers import check_margin

TINY = dict(resolution=32, hop_length=1024, channels=(16, 32, 64), batch_size=8, lr=3e-3, warmup_steps=10,
            progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from soundweave.data.synth import make_corpus

    folder = tmp_path_factory.mktemp("mel-corpus")
    make_corpus(folder, n=68, seconds=2.0, sr=22050, seed=0)  # 4 clips of each of 17 instruments
    return folder


def real_slices(corpus, mel, instrument: str, n: int = 32) -> np.ndarray:
    torch.manual_seed(123)
    source, _ = open_source(corpus, mel.sample_rate, {"instrument": instrument}, "train", None)
    data = MelSliceDataset(source, mel)
    return torch.stack([data[i % len(data)]["image"] for i in range(n)]).numpy()


# -- data -----------------------------------------------------------------------------------------------------
def test_random_slices_skip_silence_and_carry_labels(tmp_path):
    sr = 22050
    t = np.arange(3 * sr) / sr
    sf.write(tmp_path / "silent.wav", np.zeros(3 * sr, np.float32), sr)
    sf.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 220 * t * (1 + t))).astype(np.float32), sr)
    sf.write(tmp_path / "tone44k.wav", np.zeros(44100, np.float32) + 0.1 * np.sin(np.arange(44100) * 0.05), 44100)
    write_manifest(tmp_path, [CaptionRecord("silent.wav", "nothing", {"instrument": "none"}),
                              CaptionRecord("tone.wav", "a sweep", {"instrument": "sine"}),
                              CaptionRecord("tone44k.wav", "a tone", {"instrument": "sine"})])
    mel = new_pipeline(32, 1024, channels=(8, 16)).mel
    source, tags = open_source(tmp_path, 22050, None, "train", "instrument")
    assert source.sample_rate == 22050 and [t["instrument"] for t in tags] == ["none", "sine", "sine"]
    data = MelSliceDataset(source, mel, tags=tags, class_tag="instrument", class_names=["sine"], null_class=1,
                           length=10)
    assert len(data) == 10
    items = [data[0] for _ in range(4)]  # index 0 is the silent clip: every draw moves on to a tone
    for item in items:
        assert item["image"].shape == (32, 32) and item["image"].dtype == torch.uint8
        assert not (item["image"] == 255).all() and item["label"] == 0
    assert not all(torch.equal(items[0]["image"], it["image"]) for it in items[1:])  # a new slice each draw
    resampled = data._audio(2)
    assert resampled.shape[-1] == 22050  # 1 s at 44.1 kHz, resampled to the pipeline's rate
    only_silence = MelSliceDataset(open_source(tmp_path, 22050, {"instrument": "none"}, "train", None)[0], mel)
    with pytest.raises(DataError, match="silent"):
        only_silence[0]


def test_filters(corpus):
    assert normalize_where({"instrument": "bass|flute"}) == {"instrument": ["bass", "flute"]}
    assert normalize_where({"instrument": ["bass"]}) == {"instrument": ["bass"]}
    _, tags = open_source(corpus, 22050, {"instrument": "bass|flute"}, "train", None)
    assert {t["instrument"] for t in tags} == {"bass", "flute"}
    with pytest.raises(DataError):
        open_source(corpus, 22050, {"instrument": "banjo"}, "train", None)
    with pytest.raises(DataError):
        normalize_where({"instrument": " | "})


def test_hugging_face_dataset_source(tmp_path):
    import io

    import datasets

    sr = 16000
    cells, names = [], []
    for i, name in enumerate(["low", "high", "low"]):
        buffer = io.BytesIO()
        freq = 110 if name == "low" else 3000
        sf.write(buffer, 0.3 * np.sin(2 * np.pi * freq * np.arange(sr) / sr + i), sr, format="WAV")
        cells.append({"bytes": buffer.getvalue(), "path": None})
        names.append(name)
    datasets.Dataset.from_dict({"audio": cells, "pitch": names}).save_to_disk(str(tmp_path / "hf"))
    source, tags = open_source(tmp_path / "hf", 22050, {"pitch": "low"}, "train", "pitch")
    assert len(source) == 2 and tags == [{"pitch": "low"}, {"pitch": "low"}]
    assert source[0]["audio"].shape[-1] == 22050  # 1 s at 16 kHz, resampled
    mel = new_pipeline(32, 1024, channels=(8, 16)).mel
    item = MelSliceDataset(source, mel, tags=tags, class_tag="pitch", class_names=["low"])[1]
    assert item["image"].shape == (32, 32) and item["label"] == 0


# -- statistics ----------------------------------------------------------------------------------------------
def test_frechet_distance_and_profiles():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + np.array([1.0, 2.0, 0.0])) == pytest.approx(5.0, abs=1e-6)
    b = rng.normal(size=(4000, 3)) * 2.0  # covariances I and 4I: trace term 3 + 12 - 2 * 6 = 3
    check_margin("mel_diffusion.frechet.isotropic_rel_error", abs(frechet_distance(a, b) - 3.0) / 3.0, 0.1)
    with pytest.raises(ConfigError):
        frechet_distance(a, a[:, :2])
    images = np.zeros((2, 4, 5), np.uint8)
    images[:, 0] = 255
    assert np.allclose(spectrogram_profile(images), [1, 0, 0, 0])
    assert profile_distance(images, images) == 0
    assert log_mel_features(images).shape == (2, 8)


# -- proof that it learns ----------------------------------------------------------------------------------------
def test_learns_one_instrument(corpus, tmp_path, monkeypatch):
    import copy

    import soundweave.training.mel_diffusion as training_module

    initial = []  # the run's own UNet before its first step: the untrained side of the comparison

    def recording_new_pipeline(*args, **kwargs):
        pipe = new_pipeline(*args, **kwargs)
        initial.append(copy.deepcopy(pipe.unet))
        return pipe

    monkeypatch.setattr(training_module, "new_pipeline", recording_new_pipeline)
    trained = train_mel_diffusion(MelDiffusionTrainConfig(
        data=str(corpus), out=str(tmp_path / "bass"), where={"instrument": "bass"}, steps=50, seed=0, **TINY))
    assert len(initial) == 1
    losses = trained.result.losses
    assert len(losses) == 50
    check_margin("mel_diffusion.one_instrument.last10_loss_vs_half_first5", np.mean(losses[-10:]),
                 0.5 * np.mean(losses[:5]))
    real = real_slices(corpus, trained.pipeline.mel, "bass")
    # the same pipeline (scheduler, mel settings, eval mode) with the weights it started from
    pipe = trained.pipeline
    untrained_pipe = MelDiffusionPipeline(initial[0].eval(), pipe.scheduler, pipe.mel, class_names=pipe.class_names)
    sampling = dict(batch_size=16, steps=10, seed=0, scheduler="ddim", decode_audio=False)
    generated, untrained = pipe(**sampling).arrays, untrained_pipe(**sampling).arrays
    d_trained, d_untrained = profile_distance(generated, real), profile_distance(untrained, real)
    # profiles are in 0..1 brightness; real bass runs from 0.9 low to 0.03 high
    check_margin("mel_diffusion.one_instrument.profile_dist_vs_0.4_untrained", d_trained, 0.4 * d_untrained)
    check_margin("mel_diffusion.one_instrument.profile_dist", d_trained, 0.1)


def test_class_conditional_sampling_separates_instruments(corpus, tmp_path):
    trained = train_mel_diffusion(MelDiffusionTrainConfig(
        data=str(corpus), out=str(tmp_path / "two"), where={"instrument": ["bass", "flute"]},
        class_tag="instrument", steps=80, seed=0, **TINY))
    pipe = trained.pipeline
    assert pipe.class_names == ["bass", "flute"] and pipe.null_class == 2
    real = {name: real_slices(corpus, pipe.mel, name) for name in ("bass", "flute")}
    for name, other in (("bass", "flute"), ("flute", "bass")):
        samples = pipe(batch_size=8, steps=10, seed=0, class_labels=name, decode_audio=False).arrays
        own, cross = profile_distance(samples, real[name]), profile_distance(samples, real[other])
        # the two real classes are 0.16 apart
        check_margin(f"mel_diffusion.two_classes.{name}_own_vs_0.6_cross_profile_dist", own, 0.6 * cross)
    # DDIM inversion with the trained model: real slices -> noise -> the same slices again
    images = real["bass"][:4]
    noise = pipe.encode(images, steps=25, class_labels="bass")
    again = pipe(noise=noise, steps=25, class_labels="bass", scheduler="ddim", decode_audio=False).arrays
    fresh = pipe(batch_size=4, steps=25, seed=3, class_labels="bass", scheduler="ddim", decode_audio=False).arrays
    err_inverted = np.abs(again.astype(float) - images).mean()
    err_fresh = np.abs(fresh.astype(float) - images).mean()
    check_margin("mel_diffusion.ddim_inversion.error_vs_0.6_fresh_samples", err_inverted, 0.6 * err_fresh)


# -- resume, samples, fine-tuning -------------------------------------------------------------------------------
def test_samples_resume_and_saved_pipeline(corpus, tmp_path):
    out = tmp_path / "run"
    config = dict(data=str(corpus), out=str(out), where={"instrument": "flute"}, sample_every=2, sample_count=2,
                  sample_steps=2, save_every=2, seed=0, ema=True, **{**TINY, "channels": (8, 16)})
    first = train_mel_diffusion(MelDiffusionTrainConfig(steps=2, **config))
    assert first.result.step == 2
    assert sorted(p.name for p in (out / "samples" / "step-00000002").iterdir()) == [
        "sample-00.png", "sample-00.wav", "sample-01.png", "sample-01.wav"]
    assert (out / "unet" / "config.json").is_file() and (out / "model_spec.json").is_file()
    resumed = train_mel_diffusion(MelDiffusionTrainConfig(steps=4, resume=True, **config))
    assert resumed.result.step == 4 and len(resumed.result.losses) == 2  # steps 3 and 4 only
    assert (out / "samples" / "step-00000004").is_dir()
    evals = (out / "eval.csv").read_text().splitlines()
    assert evals[0].startswith("step") and "profile_dist" in evals[0] and len(evals) == 3
    loaded = MelDiffusionPipeline.from_pretrained(out)
    assert loaded(steps=2, seed=0).arrays.shape == (1, 32, 32)
    # fine-tune the saved pipeline: its mel settings win over --resolution
    tuned = train_mel_diffusion(MelDiffusionTrainConfig(
        data=str(corpus), out=str(tmp_path / "tuned"), from_pretrained=str(out), where={"instrument": "bass"},
        resolution=64, steps=2, batch_size=4, progress=False))
    assert tuned.pipeline.mel.x_res == 32 and tuned.pipeline.mel.hop_length == 1024
    assert json.loads((tmp_path / "tuned" / "model_spec.json").read_text())["from_pretrained"] == str(out)


def test_time_budget_stops_training_early(corpus, tmp_path):
    trained = train_mel_diffusion(MelDiffusionTrainConfig(
        data=str(corpus), out=str(tmp_path / "budget"), where={"instrument": "flute"}, steps=40, max_minutes=1e-6,
        **{**TINY, "channels": (8, 16), "batch_size": 4}))
    assert trained.result.step == 2 and len(trained.result.losses) == 2  # one chunk (steps / 20), then time is up
    assert MelDiffusionPipeline.from_pretrained(tmp_path / "budget").unet is not None
    with pytest.raises(ConfigError):
        MelDiffusionTrainConfig(data=str(corpus), out=str(tmp_path), max_minutes=0)


def test_bf16_and_latent_mode_fine_tuning(corpus, tmp_path):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DModel

    from soundweave.audio import MelImageCodec

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=1, out_channels=1, latent_channels=1, block_out_channels=(8, 16),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4)
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)
    mel = MelImageCodec(x_res=32, y_res=32, hop_length=1024, n_iter=4)
    base = MelDiffusionPipeline(unet, DDIMScheduler(clip_sample=False), mel, vae=vae).save_pretrained(tmp_path / "l")
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    tuned = train_mel_diffusion(MelDiffusionTrainConfig(
        data=str(corpus), out=str(tmp_path / "tuned"), from_pretrained=str(base), where={"instrument": "flute"},
        steps=3, batch_size=4, bf16=True, progress=False))
    assert tuned.pipeline.vae is not None and all(np.isfinite(tuned.result.losses))
    after = tuned.pipeline.unet.state_dict()
    assert any(not torch.equal(before[k], after[k].float()) for k in before)  # the UNet trained, the VAE is frozen
    assert torch.equal(MelDiffusionPipeline.from_pretrained(base).vae.state_dict()["encoder.conv_in.weight"],
                       tuned.pipeline.vae.state_dict()["encoder.conv_in.weight"])
    assert MelDiffusionPipeline.from_pretrained(tmp_path / "tuned")(steps=2, seed=0).arrays.shape == (1, 32, 32)


def test_training_errors(corpus, tmp_path):
    with pytest.raises(ConfigError):
        MelDiffusionTrainConfig(data=str(corpus), out=str(tmp_path), resolution=48)
    with pytest.raises(ConfigError):
        MelDiffusionTrainConfig(data=str(corpus), out=str(tmp_path), class_dropout=1.5)
    with pytest.raises(ConfigError):
        MelDiffusionTrainConfig(data=str(corpus), out=str(tmp_path), steps=0)
    with pytest.raises(ConfigError):
        MelDiffusionTrainConfig(data=str(corpus), out=str(tmp_path), prediction_type="x0")
    with pytest.raises(DataError):
        train_mel_diffusion(data=str(tmp_path / "nowhere"), out=str(tmp_path / "o"), steps=1, progress=False)
    with pytest.raises(DataError, match="no usable clips"):
        train_mel_diffusion(data=str(corpus), out=str(tmp_path / "o"), where={"instrument": "banjo"}, steps=1,
                            progress=False)
    with pytest.raises(DataError, match="tag"):
        train_mel_diffusion(data=str(corpus), out=str(tmp_path / "o"), class_tag="colour", steps=1, progress=False)
    plain = new_pipeline(32, 1024, channels=(8, 16)).save_pretrained(tmp_path / "plain")
    with pytest.raises(ConfigError, match="not class-conditional"):
        train_mel_diffusion(data=str(corpus), out=str(tmp_path / "o"), from_pretrained=str(plain),
                            class_tag="instrument", steps=1, progress=False)
    with pytest.raises(ConfigError):
        new_pipeline(32, 1024, channels=(8, 16), prediction_type="x0")
