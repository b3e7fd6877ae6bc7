"""Audio2ImagePipeline with tiny Stable Diffusion components built in code (offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, Wav2Vec2BertConfig

from soundweave import Audio2ImagePipeline, AudioCLIPAligner
from soundweave.errors import ConfigError
from soundweave.models.text_encoders import minilm_path
from soundweave.pipelines.audio2img import cpu_aware_settings
from tests.helpers import check_margin

pytestmark = pytest.mark.usefixtures("one_thread")


DIM, LEN = 16, 9


def tiny_sd(with_text: bool = False, cross: int = DIM) -> StableDiffusionPipeline:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=cross,
                                norm_num_groups=2, attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=2)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    tokenizer = text_encoder = None
    if with_text:  # a real tokenizer (MiniLM's WordPiece, offline) in front of a tiny CLIP text encoder
        tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()), model_max_length=LEN)
        text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=tokenizer.vocab_size, hidden_size=cross,
                                                    intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                    max_position_embeddings=LEN)).eval()
    sd = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                 scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                 requires_safety_checker=False)
    sd.set_progress_bar_config(disable=True)
    return sd


def tiny_aligner(dim: int = DIM) -> AudioCLIPAligner:
    torch.manual_seed(0)
    config = Wav2Vec2BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                add_adapter=True, num_adapter_layers=2, output_hidden_size=24, layerdrop=0.0,
                                conv_depthwise_kernel_size=5, apply_spec_augment=False)
    return AudioCLIPAligner(config, target_dim=dim, target_len=LEN).eval()


@pytest.fixture(scope="module")
def pipe():
    return Audio2ImagePipeline(tiny_sd(with_text=True), tiny_aligner())


def clip(seed: int = 0, seconds: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(int(16000 * seconds), generator=g)


FAST = dict(num_inference_steps=2, output_type="np", verbose=False, precision="fp32")


def test_shapes_and_determinism(pipe):
    out = pipe(clip(), sr=16000, seed=0, **FAST)
    assert out.images.shape == (1, 32, 32, 3)  # native 16 latents x VAE scale 2
    assert out.prompt_embeds.shape == (1, LEN, DIM) and out.negative_prompt_embeds.shape == (1, LEN, DIM)
    again = pipe(clip(), sr=16000, seed=0, **FAST)
    np.testing.assert_array_equal(out.images, again.images)
    other_seed = pipe(clip(), sr=16000, seed=1, **FAST)
    check_margin("audio2img.other_seed.max_image_change", np.abs(other_seed.images - out.images).max(), 1e-3,
                 above=True)
    two = pipe(torch.stack([clip(0), clip(1)]), sr=16000, seed=0, **FAST)
    assert two.images.shape == (2, 32, 32, 3)
    sized = pipe(clip(), sr=16000, seed=0, height=48, width=64, **FAST)
    assert sized.images.shape == (1, 48, 64, 3)


def test_audio_file_at_another_rate(pipe, tmp_path):
    from soundweave.audio import resample, save

    audio = clip(3)
    save(tmp_path / "a.wav", resample(audio, 16000, 22050), 22050)
    out = pipe(str(tmp_path / "a.wav"), seed=0, **FAST)
    assert out.images.shape == (1, 32, 32, 3)
    with pytest.raises(ConfigError, match="sr="):
        pipe(audio, seed=0, **FAST)


def test_negative_paths(pipe):
    with torch.no_grad():
        noise = pipe.aligner.encode(pipe.negative_noise(), 16000)
    default = pipe(clip(), sr=16000, seed=0, **FAST)
    torch.testing.assert_close(default.negative_prompt_embeds, noise)  # 4 s of white noise at 0.01
    assert pipe.negative_noise().shape == (64000,)
    check_margin("audio2img.negative_noise.peak", float(pipe.negative_noise().abs().max()), 0.06)
    custom = pipe(clip(), sr=16000, seed=0, negative_audio=clip(7), **FAST)
    assert not torch.allclose(custom.negative_prompt_embeds, noise)
    check_margin("audio2img.custom_negative.max_image_change", np.abs(custom.images - default.images).max(), 1e-4,
                 above=True)
    empty = pipe(clip(), sr=16000, seed=0, negative_prompt="", **FAST)
    torch.testing.assert_close(empty.negative_prompt_embeds, pipe.encode_prompt(""))


def test_blend_with_a_text_prompt(pipe):
    audio_only = pipe(clip(), sr=16000, seed=0, **FAST)
    text = pipe.encode_prompt("a red bird")
    half = pipe(clip(), sr=16000, seed=0, prompt="a red bird", audio_weight=0.5, **FAST)
    torch.testing.assert_close(half.prompt_embeds, 0.5 * audio_only.prompt_embeds + 0.5 * text)
    text_only = pipe(clip(), sr=16000, seed=0, prompt="a red bird", audio_weight=0.0, **FAST)
    torch.testing.assert_close(text_only.prompt_embeds, text)
    with pytest.raises(ConfigError, match="audio_weight"):
        pipe(clip(), sr=16000, prompt="x", audio_weight=1.5, **FAST)


def test_text_needs_a_text_encoder():
    pipe = Audio2ImagePipeline(tiny_sd(with_text=False), tiny_aligner())
    assert pipe(clip(), sr=16000, seed=0, **FAST).images.shape == (1, 32, 32, 3)  # tokenizer=None is fine
    with pytest.raises(ConfigError, match="tokenizer"):
        pipe(clip(), sr=16000, seed=0, prompt="a cat", audio_weight=0.5, **FAST)


def test_wrong_target_dims_name_both_sizes():
    with pytest.raises(ConfigError, match=r"24-d.*cross_attention_dim=16"):
        Audio2ImagePipeline(tiny_sd(), tiny_aligner(dim=24))


def test_cpu_defaults_and_expected_time(pipe, capsys, bf16_cpu):
    bf16_cpu(False)  # an AVX2-class CPU: bf16 is emulated there, so the default is fp32
    settings = cpu_aware_settings(pipe.sd, torch.device("cpu"))
    assert (settings.num_inference_steps, settings.scheduler, settings.precision) == (20, "dpm", "fp32")
    bf16_cpu(True)  # AVX512-BF16 / AMX
    settings = cpu_aware_settings(pipe.sd, torch.device("cpu"))
    assert (settings.num_inference_steps, settings.scheduler, settings.precision) == (20, "dpm", "bf16")
    assert settings.height == settings.width == 32  # min(native, 512)
    gpu = cpu_aware_settings(pipe.sd, torch.device("cuda"))
    assert (gpu.num_inference_steps, gpu.scheduler, gpu.precision) == (50, "default", "fp32")
    out = pipe(clip(), sr=16000, seed=0, num_inference_steps=3, output_type="np")
    err = capsys.readouterr().err
    assert "expected about" in err and "3 steps (dpm), bf16" in err
    assert out.settings["scheduler"] == "dpm" and "estimated_seconds" in out.settings
    assert type(pipe.sd.scheduler).__name__ == "DDIMScheduler"  # the call's scheduler was a fresh copy
    with pytest.raises(ConfigError):
        pipe(clip(), sr=16000, height=30, **FAST)


def test_from_pretrained_folders(tmp_path, pipe):
    sd = tiny_sd(with_text=False)
    sd.save_pretrained(tmp_path / "sd")
    pipe.aligner.save_pretrained(tmp_path / "aligner")
    loaded = Audio2ImagePipeline.from_pretrained(tmp_path / "sd", tmp_path / "aligner", device="cpu",
                                                 precision="fp32")
    ref = Audio2ImagePipeline(sd, pipe.aligner)
    # DDIM: DPM-Solver built from an in-memory config uses its own default timestep spacing, not the saved one
    a = loaded(clip(), sr=16000, seed=0, scheduler="ddim", **FAST)
    b = ref(clip(), sr=16000, seed=0, scheduler="ddim", **FAST)
    np.testing.assert_allclose(a.images, b.images, atol=1e-5)
    half = Audio2ImagePipeline.from_pretrained(tmp_path / "sd", tmp_path / "aligner", device="cpu",
                                               precision="bf16")
    assert half.aligner.dtype == torch.float32 and half.sd.unet.dtype == torch.bfloat16
    seen = []
    embed = half.aligner.embed
    half.aligner.embed = lambda *a, **k: seen.append(k.get("precision")) or embed(*a, **k)
    half.encode_audio(clip(), 16000, precision="bf16")  # the CPU default runs the aligner's int8 path
    half.encode_audio(clip(), 16000)  # so does no precision at all, whatever the CPU's bf16
    half.encode_audio(clip(), 16000, precision="fp32")
    assert seen == [half.aligner.cpu_precision()] * 2 + ["fp32"] and seen[0] == "int8"
    assert half(clip(), sr=16000, seed=0, num_inference_steps=2, output_type="np", verbose=False).images.shape \
        == (1, 32, 32, 3)
    # a CPU run puts the VAE in channels-last memory format (oneDNN's fast convolution layout)
    assert half.sd.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    from soundweave.errors import CheckpointError

    with pytest.raises(CheckpointError):
        Audio2ImagePipeline.from_pretrained(tmp_path / "nope", tmp_path / "aligner")


def test_runs_an_aligner_handed_over_in_training_mode_with_its_own_cpu_default():
    """An aligner built from a config is in training mode; the pipeline's CPU default (bf16 -> the aligner's
    int8 path) must still run, give the same images as the same aligner in eval mode, and hand the aligner
    back in the mode it came in."""
    sd = tiny_sd()
    aligner = tiny_aligner().train()
    pipe = Audio2ImagePipeline(sd, aligner)
    out = pipe(clip(), sr=16000, num_inference_steps=2, seed=0, output_type="np", verbose=False)
    assert out.images.shape == (1, 32, 32, 3) and np.isfinite(out.images).all()
    assert aligner.training, "the pipeline must not leave its parts in another mode than it got them"
    aligner.eval()
    again = pipe(clip(), sr=16000, num_inference_steps=2, seed=0, output_type="np", verbose=False)
    np.testing.assert_allclose(out.images, again.images, atol=1e-5)
    assert not aligner.training
