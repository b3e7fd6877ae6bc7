"""MelDiffusionPipeline: sampling, variations, in/out-painting, longer audio, conditioning, inversion,
latent mode, persistence (incl. an audio-diffusion style folder) and every rejected input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel, UNet2DModel
from PIL import Image

from soundweave.audio import MelImageCodec, save
from soundweave.errors import AudioError, CheckpointError, ConfigError, ShapeError, SoundweaveError
from soundweave.pipelines.mel_diffusion import MelDiffusionPipeline
from tests.helpers import check_margin

RES = 32


def tiny_mel(**kw) -> MelImageCodec:
    return MelImageCodec(**{"x_res": RES, "y_res": RES, "hop_length": 512, "n_fft": 1024, "n_iter": 4, **kw})


def tiny_unet(size=RES, num_class_embeds=None, in_channels=1) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(sample_size=size, in_channels=in_channels, out_channels=in_channels,
                       block_out_channels=(8, 16), layers_per_block=1, down_block_types=("DownBlock2D",) * 2,
                       up_block_types=("UpBlock2D",) * 2, norm_num_groups=4, num_class_embeds=num_class_embeds)


def tiny_cond_unet(dim=12) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(sample_size=RES, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=dim,
                                norm_num_groups=4, attention_head_dim=4)


def tiny_vae(latent_channels=1, in_channels=1) -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(in_channels=in_channels, out_channels=in_channels, latent_channels=latent_channels,
                         block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4)


@pytest.fixture(scope="module")
def pipe() -> MelDiffusionPipeline:
    return MelDiffusionPipeline(tiny_unet(), DDIMScheduler(clip_sample=False), tiny_mel())


@pytest.fixture(scope="module")
def class_pipe() -> MelDiffusionPipeline:
    return MelDiffusionPipeline(tiny_unet(num_class_embeds=3), DDIMScheduler(), tiny_mel(),
                                class_names=["bass", "flute"])


@pytest.fixture(scope="module")
def tone() -> np.ndarray:
    mel = tiny_mel()
    t = np.arange(mel.slice_size * 3) / mel.sample_rate
    return (0.5 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)


# -- sampling ---------------------------------------------------------------------------------------------------
def test_unconditional_sampling_shapes_and_seeds(pipe):
    out = pipe(batch_size=2, steps=4, generator=torch.Generator().manual_seed(0))
    assert out.arrays.shape == (2, RES, RES) and out.arrays.dtype == np.uint8
    assert [im.size for im in out.images] == [(RES, RES)] * 2 and out.images[0].mode == "L"
    assert out.audios.shape == (2, (RES - 1) * 512) and out.audios.dtype == np.float32
    assert np.isfinite(out.audios).all() and out.sample_rate == 22050
    assert out.noise.shape == (2, 1, RES, RES)
    again = pipe(batch_size=2, steps=4, seed=0)
    assert np.array_equal(out.arrays, again.arrays)  # generator(0) and seed=0 agree
    other = pipe(batch_size=2, steps=4, seed=1)
    assert not np.array_equal(out.arrays, other.arrays)
    from_noise = pipe(noise=out.noise, steps=4, seed=99)
    assert np.array_equal(from_noise.arrays, out.arrays)  # deterministic DDIM (eta=0) from the same noise


def test_pipeline_keeps_no_state_and_default_steps(pipe):
    assert pipe.get_default_steps() == 50
    assert pipe.get_default_steps(DDPMScheduler()) == 1000
    pipe(steps=3, seed=0, decode_audio=False)
    assert pipe.scheduler.num_inference_steps is None  # each call works on its own copy


def test_ddpm_eta_bf16_and_no_audio(pipe):
    ddpm = pipe(steps=5, seed=0, scheduler="ddpm", decode_audio=False)
    assert ddpm.audios is None and ddpm.arrays.shape == (1, RES, RES)
    a = pipe(steps=5, seed=0, eta=1.0, decode_audio=False)
    b = pipe(steps=5, seed=0, eta=1.0, step_generator=torch.Generator().manual_seed(5), decode_audio=False)
    assert not np.array_equal(a.arrays, b.arrays)  # eta > 0 draws step noise
    bf = pipe(steps=3, seed=0, precision="bf16", decode_audio=False)
    assert bf.arrays.shape == (1, RES, RES)


def test_variation_start_step(pipe, tone):
    reference = pipe.mel.audio_to_images(torch.from_numpy(tone[: pipe.mel.slice_size])).numpy().astype(float)
    near = pipe(audio=tone, start_step=9, steps=10, seed=0, decode_audio=False).arrays.astype(float)
    far = pipe(audio=tone, start_step=0, steps=10, seed=0, decode_audio=False).arrays.astype(float)
    check_margin("mel_pipeline.variation.near_error_vs_0.25_far_error", np.abs(near - reference).mean(),
                 0.25 * np.abs(far - reference).mean())
    second = pipe(audio=tone, slice=1, start_step=9, steps=10, seed=0, decode_audio=False)
    assert second.arrays.shape == (1, RES, RES)


def test_audio_file_input_is_resampled(pipe, tone, tmp_path):
    path = save(tmp_path / "in.wav", tone, 22050)
    from_file = pipe(audio=str(path), start_step=9, steps=10, seed=0, decode_audio=False)
    from_array = pipe(audio=tone, start_step=9, steps=10, seed=0, decode_audio=False)
    assert np.abs(from_file.arrays.astype(int) - from_array.arrays).max() <= 2
    up = torch.from_numpy(tone[::2].copy())  # "recorded" at 11025 Hz
    resampled = pipe(audio=up, audio_sample_rate=11025, start_step=9, steps=10, seed=0, decode_audio=False)
    assert resampled.arrays.shape == (1, RES, RES)


def test_inpainting_keeps_masked_seconds_exactly(pipe, tone):
    per_second = 22050 / 512
    out = pipe(audio=tone, mask_start_secs=0.2, mask_end_secs=0.1, steps=4, batch_size=3, seed=0)
    reference = pipe.mel.audio_to_images(torch.from_numpy(tone[: pipe.mel.slice_size])).numpy()
    lo, hi = int(0.2 * per_second), int(0.1 * per_second)
    assert out.arrays.shape == (3, RES, RES)
    assert np.array_equal(out.arrays[:, :, :lo], np.broadcast_to(reference[:, :lo], (3, RES, lo)))
    assert np.array_equal(out.arrays[:, :, RES - hi :], np.broadcast_to(reference[:, RES - hi :], (3, RES, hi)))
    assert not np.array_equal(out.arrays[:, :, lo : RES - hi], np.broadcast_to(reference[:, lo : RES - hi],
                                                                               (3, RES, RES - lo - hi)))
    image_in = pipe(image=Image.fromarray(reference), mask_start_secs=0.2, steps=4, seed=0)
    assert np.array_equal(image_in.arrays[0, :, :lo], reference[:, :lo])


def test_width_multiplier_makes_longer_spectrograms(pipe):
    out = pipe(steps=3, seed=0, width_multiplier=3)
    assert out.arrays.shape == (1, RES, 3 * RES)
    assert out.audios.shape == (1, (3 * RES - 1) * 512)
    assert pipe.seconds_per_image(3) == pytest.approx((3 * RES - 1) * 512 / 22050)


def test_continue_audio_reaches_any_length_and_keeps_the_prompt(pipe, tone):
    prompt = tone[:22050]
    out = pipe.continue_audio(prompt, seconds=2.5, steps=3, seed=0)
    assert out.audios.shape == (1, int(2.5 * 22050))
    expected_cols = int(np.ceil(2.5 * 22050 / 512)) + 1
    assert out.arrays.shape == (1, RES, expected_cols)
    prompt_image = pipe.mel.audio_to_images(torch.from_numpy(prompt)).numpy()
    assert np.array_equal(out.arrays[0, :, : prompt_image.shape[-1]], prompt_image)
    fade = 4 * 512
    assert np.allclose(out.audios[0, : len(prompt) - fade], prompt[: len(prompt) - fade])
    fresh = pipe.continue_audio(None, seconds=1.7, batch_size=2, steps=3, seed=0, overlap_secs=0.2)
    assert fresh.audios.shape == (2, int(1.7 * 22050)) and len(fresh.images) == 2
    short = pipe.continue_audio(tone, seconds=0.5, steps=3, seed=0)  # already long enough: just trimmed
    assert short.audios.shape == (1, int(0.5 * 22050))


# -- conditioning -------------------------------------------------------------------------------------------------
def test_class_labels_names_ids_and_guidance(class_pipe):
    assert class_pipe.null_class == 2 and class_pipe.num_classes == 3
    by_name = class_pipe(steps=3, seed=0, class_labels=["bass", "flute"], decode_audio=False)
    by_id = class_pipe(steps=3, seed=0, class_labels=torch.tensor([0, 1]), decode_audio=False)
    assert by_name.arrays.shape == (2, RES, RES) and np.array_equal(by_name.arrays, by_id.arrays)
    one_for_all = class_pipe(batch_size=2, steps=3, seed=0, class_labels="bass", decode_audio=False)
    assert np.array_equal(one_for_all.arrays[0], by_name.arrays[0])
    guided = class_pipe(batch_size=2, steps=3, seed=0, class_labels="bass", guidance_scale=4.0, decode_audio=False)
    assert not np.array_equal(guided.arrays, one_for_all.arrays)
    unconditional = class_pipe(steps=3, seed=0, decode_audio=False)  # the null class
    assert unconditional.arrays.shape == (1, RES, RES)


def test_cross_attention_encoding_and_guidance():
    pipe = MelDiffusionPipeline(tiny_cond_unet(12), DDIMScheduler(), tiny_mel())
    enc = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(0))
    a = pipe(steps=3, seed=0, encoding=enc, decode_audio=False)
    assert a.arrays.shape == (2, RES, RES)
    b = pipe(steps=3, seed=0, encoding=-enc, decode_audio=False)
    assert not np.array_equal(a.arrays, b.arrays)
    g = pipe(steps=3, seed=0, encoding=enc, guidance_scale=3.0, negative_encoding=torch.zeros(1, 1, 12),
             decode_audio=False)
    assert g.arrays.shape == (2, RES, RES) and not np.array_equal(g.arrays, a.arrays)
    assert pipe(steps=2, seed=0, decode_audio=False).arrays.shape == (1, RES, RES)  # no encoding: zeros
    with pytest.raises(ShapeError):
        pipe(steps=2, encoding=torch.randn(1, 5, 7))
    with pytest.raises(ShapeError):
        pipe(batch_size=3, steps=2, encoding=torch.randn(2, 5, 12))


def test_conditioning_errors(pipe, class_pipe):
    with pytest.raises(ConfigError, match="known classes"):
        class_pipe(steps=2, class_labels="banjo")
    with pytest.raises(ConfigError, match="out of range"):
        class_pipe(steps=2, class_labels=7)
    with pytest.raises(ShapeError):
        class_pipe(batch_size=3, steps=2, class_labels=[0, 1])
    with pytest.raises(ConfigError, match="class embedding"):
        pipe(steps=2, class_labels=0)
    with pytest.raises(ConfigError, match="UNet2DConditionModel"):
        pipe(steps=2, encoding=torch.randn(1, 2, 8))
    no_null = MelDiffusionPipeline(tiny_unet(num_class_embeds=2), DDIMScheduler(), tiny_mel(), class_names=["a", "b"])
    with pytest.raises(ConfigError, match="needs class_labels"):
        no_null(steps=2)
    with pytest.raises(ConfigError, match="null class"):
        no_null(steps=2, class_labels="a", guidance_scale=3.0)
    with pytest.raises(ConfigError):
        MelDiffusionPipeline(tiny_unet(), DDIMScheduler(), tiny_mel(), class_names=["a"])


# -- inversion and interpolation -----------------------------------------------------------------------------------
def test_encode_returns_noise_shaped_latents(pipe, tone):
    image = pipe.mel.audio_to_images(torch.from_numpy(tone[: pipe.mel.slice_size]))
    noise = pipe.encode([Image.fromarray(image.numpy())], steps=5)
    assert noise.shape == (1, 1, RES, RES) and torch.isfinite(noise).all()
    with pytest.raises(ShapeError):
        pipe.encode(np.zeros((RES, RES + 3), np.uint8))


def test_slerp():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    assert torch.allclose(MelDiffusionPipeline.slerp(x0, x1, 0.0), x0, atol=1e-5)
    assert torch.allclose(MelDiffusionPipeline.slerp(x0, x1, 1.0), x1, atol=1e-5)
    # on the unit sphere slerp stays on the sphere and moves along the great circle by alpha * angle
    u0 = x0 / x0.flatten(1).norm(dim=1)[:, None, None, None]
    u1 = x1 / x1.flatten(1).norm(dim=1)[:, None, None, None]
    mid = MelDiffusionPipeline.slerp(u0, u1, 0.3)
    assert torch.allclose(mid.flatten(1).norm(dim=1), torch.ones(2), atol=1e-5)
    theta = torch.arccos((u0 * u1).flatten(1).sum(1))
    assert torch.allclose(torch.arccos((u0 * mid).flatten(1).sum(1).clamp(-1, 1)), 0.3 * theta, atol=1e-4)
    assert (0.5 * (u0 + u1)).flatten(1).norm(dim=1).max() < 0.9  # plain averaging shrinks the noise
    assert torch.allclose(MelDiffusionPipeline.slerp(x0, x0, 0.3), x0, atol=1e-5)  # parallel: no NaN
    with pytest.raises(ShapeError):
        MelDiffusionPipeline.slerp(x0, x1[:1], 0.5)
    with pytest.raises(ConfigError):
        MelDiffusionPipeline.slerp(x0, x1, 1.5)


# -- latent mode -----------------------------------------------------------------------------------------------------
def test_latent_mode_with_autoencoderkl(tone):
    pipe = MelDiffusionPipeline(tiny_unet(size=RES // 2), DDPMScheduler(clip_sample=False), tiny_mel(), vae=tiny_vae())
    assert pipe.latent_factor == 2
    out = pipe(batch_size=2, steps=3, seed=0)
    assert out.arrays.shape == (2, RES, RES) and out.noise.shape == (2, 1, RES // 2, RES // 2)
    kept = pipe(audio=tone, mask_start_secs=0.2, start_step=1, steps=3, seed=0)
    reference = pipe.mel.audio_to_images(torch.from_numpy(tone[: pipe.mel.slice_size])).numpy()
    cols = int(0.2 * 22050 / 512)
    assert np.array_equal(kept.arrays[0, :, :cols], reference[:, :cols])
    longer = pipe.continue_audio(None, seconds=1.0, steps=2, seed=0)
    assert longer.audios.shape == (1, 22050)
    assert pipe.encode(out.arrays, steps=3).shape == (2, 1, RES // 2, RES // 2)


# -- persistence -----------------------------------------------------------------------------------------------------
def test_save_and_load_round_trip(class_pipe, tmp_path):
    folder = class_pipe.save_pretrained(tmp_path / "pipe")
    for part in ("unet/config.json", "scheduler/scheduler_config.json", "mel/mel_config.json", "model_index.json"):
        assert (folder / part).is_file()
    assert json.loads((folder / "mel/mel_config.json").read_text())["_class_name"] == "Mel"
    loaded = MelDiffusionPipeline.from_pretrained(folder, device="cpu")
    assert loaded.class_names == ["bass", "flute"] and loaded.null_class == 2
    a = class_pipe(steps=3, seed=0, class_labels="flute", decode_audio=False)
    b = loaded(steps=3, seed=0, class_labels="flute", decode_audio=False)
    assert np.array_equal(a.arrays, b.arrays)


def test_latent_pipeline_round_trip(tmp_path):
    pipe = MelDiffusionPipeline(tiny_unet(size=RES // 2), DDIMScheduler(clip_sample=False), tiny_mel(), vae=tiny_vae())
    pipe.save_pretrained(tmp_path / "latent")
    assert (tmp_path / "latent/vae/config.json").is_file()
    loaded = MelDiffusionPipeline.from_pretrained(tmp_path / "latent")
    assert loaded.vae is not None
    assert np.array_equal(pipe(steps=2, seed=0, decode_audio=False).arrays,
                          loaded(steps=2, seed=0, decode_audio=False).arrays)


def write_audio_diffusion_folder(folder, latent=False):
    """A tiny folder laid out like teticio/audio-diffusion-256 (or latent-audio-diffusion-256 with latent=True):
    model_index.json naming AudioDiffusionPipeline, unet/ with a .bin state dict, an old-style scheduler
    config, and mel/mel_config.json of audio-diffusion's `Mel`."""
    folder.mkdir(parents=True)
    index = {"_class_name": "AudioDiffusionPipeline", "_diffusers_version": "0.12.0",
             "mel": ["audio_diffusion", "Mel"], "scheduler": ["diffusers", "DDPMScheduler"],
             "unet": ["diffusers", "UNet2DModel"], "vqvae": ["diffusers", "AutoencoderKL"] if latent else [None, None]}
    (folder / "model_index.json").write_text(json.dumps(index))
    unet = tiny_unet(size=RES // 2 if latent else RES)
    unet.save_pretrained(str(folder / "unet"), safe_serialization=False)
    assert (folder / "unet" / "diffusion_pytorch_model.bin").is_file()
    (folder / "scheduler").mkdir()
    (folder / "scheduler/scheduler_config.json").write_text(json.dumps({
        "_class_name": "DDPMScheduler", "_diffusers_version": "0.12.0", "beta_end": 0.02,
        "beta_schedule": "linear", "beta_start": 0.0001, "clip_sample": True, "num_train_timesteps": 1000,
        "trained_betas": None, "variance_type": "fixed_small"}))
    (folder / "mel").mkdir()
    (folder / "mel/mel_config.json").write_text(json.dumps({
        "_class_name": "Mel", "_diffusers_version": "0.12.0", "hop_length": 512, "n_fft": 1024, "n_iter": 4,
        "sample_rate": 22050, "top_db": 80, "x_res": RES, "y_res": RES}))
    if latent:
        tiny_vae().save_pretrained(str(folder / "vqvae"))
    return folder


@pytest.mark.parametrize("latent", [False, True])
def test_loads_an_audio_diffusion_folder(tmp_path, latent):
    folder = write_audio_diffusion_folder(tmp_path / "audio-diffusion", latent=latent)
    pipe = MelDiffusionPipeline.from_pretrained(folder)
    assert isinstance(pipe.scheduler, DDPMScheduler) and pipe.get_default_steps() == 1000
    assert (pipe.vae is not None) == latent
    assert pipe.mel.x_res == RES and pipe.mel.hop_length == 512 and pipe.mel.n_fft == 1024
    out = pipe(steps=3, seed=0)
    assert out.arrays.shape == (1, RES, RES) and out.audios.shape == (1, (RES - 1) * 512)


def test_from_pretrained_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError):
        MelDiffusionPipeline.from_pretrained(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="hub"):
        MelDiffusionPipeline.from_pretrained("nobody-here/no-such-mel-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="unet"):
        MelDiffusionPipeline.from_pretrained(tmp_path / "empty")
    folder = write_audio_diffusion_folder(tmp_path / "broken")
    (folder / "scheduler/scheduler_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        MelDiffusionPipeline.from_pretrained(folder)
    (folder / "scheduler/scheduler_config.json").write_text(json.dumps({"_class_name": "PNDMScheduler"}))
    with pytest.raises(CheckpointError, match="PNDMScheduler"):
        MelDiffusionPipeline.from_pretrained(folder)
    (folder / "scheduler/scheduler_config.json").write_text(json.dumps({"_class_name": "DDIMScheduler"}))
    (folder / "mel/mel_config.json").unlink()
    with pytest.raises(CheckpointError, match="mel_config"):
        MelDiffusionPipeline.from_pretrained(folder)


# -- rejected inputs -------------------------------------------------------------------------------------------------
def test_constructor_rejects_mismatched_components():
    with pytest.raises(ConfigError):
        MelDiffusionPipeline(torch.nn.Linear(2, 2), DDIMScheduler(), tiny_mel())
    with pytest.raises(ConfigError):
        MelDiffusionPipeline(tiny_unet(), object(), tiny_mel())
    with pytest.raises(ConfigError):
        MelDiffusionPipeline(tiny_unet(), DDIMScheduler(), {"x_res": 32})
    with pytest.raises(ConfigError, match="sample_size"):
        MelDiffusionPipeline(tiny_unet(), DDIMScheduler(), tiny_mel(x_res=64))
    with pytest.raises(ConfigError, match="1-channel"):
        MelDiffusionPipeline(tiny_unet(in_channels=3), DDIMScheduler(), tiny_mel())
    with pytest.raises(ConfigError, match="latent channels"):
        MelDiffusionPipeline(tiny_unet(size=RES // 2), DDIMScheduler(), tiny_mel(), vae=tiny_vae(latent_channels=4))
    with pytest.raises(ConfigError, match="grayscale"):
        MelDiffusionPipeline(tiny_unet(size=RES // 2), DDIMScheduler(), tiny_mel(), vae=tiny_vae(in_channels=3))


@pytest.mark.parametrize("kwargs, error", [
    ({"batch_size": 0}, ConfigError),
    ({"steps": 0}, ConfigError),
    ({"steps": 2000}, ConfigError),
    ({"width_multiplier": 0}, ConfigError),
    ({"eta": -1.0}, ConfigError),
    ({"guidance_scale": float("nan")}, ConfigError),
    ({"precision": "fp16"}, ConfigError),
    ({"scheduler": "euler"}, ConfigError),
    ({"start_step": 2}, ConfigError),  # no input to vary
    ({"mask_start_secs": 0.5}, ConfigError),  # no input to keep
    ({"mask_start_secs": -1.0}, ConfigError),
    ({"noise": torch.randn(1, 1, 16, 16)}, ShapeError),
    ({"noise": torch.full((1, 1, RES, RES), float("nan"))}, ShapeError),
    ({"noise": torch.randn(2, 1, RES, RES), "batch_size": 3}, ShapeError),
    ({"image": np.zeros((16, RES), np.uint8)}, ShapeError),
    ({"image": np.zeros((RES, RES + 1), np.uint8)}, ShapeError),
    ({"image": np.full((RES, RES), 300.0)}, ShapeError),
    ({"image": "not an image"}, ShapeError),
    ({"image": np.zeros((RES, RES), np.uint8), "audio": np.zeros(1000, np.float32)}, ConfigError),
    ({"audio": np.zeros(0, np.float32)}, AudioError),
    ({"audio": np.full(1000, np.nan, np.float32)}, AudioError),
    ({"audio": np.zeros((1, 2, 3), np.float32)}, ShapeError),
    ({"audio": "/no/such/file.wav"}, AudioError),
    ({"audio": np.zeros(1000, np.float32), "audio_sample_rate": 5}, AudioError),
])
def test_bad_inputs_raise_soundweave_errors(pipe, kwargs, error):
    kwargs = {"steps": 3, **kwargs}
    with pytest.raises(error) as info:
        pipe(**kwargs)
    assert isinstance(info.value, SoundweaveError)


def test_bad_variation_and_mask_settings(pipe, tone):
    with pytest.raises(ConfigError, match="start_step"):
        pipe(audio=tone, start_step=5, steps=5)
    with pytest.raises(ShapeError, match="slice"):
        pipe(audio=tone, slice=10, steps=2)
    with pytest.raises(ConfigError, match="nothing is left"):
        pipe(audio=tone, mask_start_secs=0.5, mask_end_secs=0.5, steps=2)
    with pytest.raises(ConfigError):
        pipe.continue_audio(tone, seconds=0, steps=2)
    with pytest.raises(ConfigError, match="overlap"):
        pipe.continue_audio(tone, seconds=3, steps=2, overlap_secs=5.0)
