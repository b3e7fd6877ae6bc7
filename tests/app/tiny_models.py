"""A folder holding one tiny model of every kind the app uses, built from configs in code (offline, seconds),
laid out the way `soundweave demo` lays out its outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SR = 16000
AST = dict(dim=32, depth=1, heads=2, dim_head=16, spec_n_fft=256, spec_win_length=256, spec_hop_length=64, n_mels=32,
           patch_size=(16, 8), max_seconds=1.0)


def tiny_codec():
    from soundweave import SoundStream

    torch.manual_seed(0)
    return SoundStream(sample_rate=SR, channels=4, channel_mults=(1, 2, 4), strides=(4, 8, 10), codebook_dim=16,
                       codebook_size=16, rq_num_quantizers=3, attn_depth=0).eval()


def tiny_soundstorm():
    from soundweave import ConformerWrapper, SoundStorm

    torch.manual_seed(0)
    net = ConformerWrapper(codebook_size=16, num_quantizers=3, conformer=dict(dim=32, depth=1, heads=2, dim_head=16))
    return SoundStorm(net, soundstream=tiny_codec(), steps=4).eval()


def tiny_mulan():
    from soundweave import AudioSpectrogramTransformer, MuLaN, TextTransformer

    torch.manual_seed(0)
    text = TextTransformer(dim=32, depth=1, heads=2, dim_head=16, num_tokens=300, max_seq_len=24)
    return MuLaN(AudioSpectrogramTransformer(**AST), text, dim_latent=16).eval()


def tiny_mel_pipeline():
    from diffusers import DDIMScheduler, UNet2DModel

    from soundweave import MelDiffusionPipeline, MelImageCodec

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=32, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4,
                       num_class_embeds=3)
    mel = MelImageCodec(x_res=32, y_res=32, sample_rate=SR, hop_length=256, n_fft=1024, n_iter=4)
    return MelDiffusionPipeline(unet, DDIMScheduler(clip_sample=False), mel, class_names=["bass", "flute"])


def tiny_stable_diffusion(cross: int = 16):
    from tests.pipelines.test_audio2img import tiny_sd

    return tiny_sd(cross=cross)


def tiny_aligner(dim: int = 16, length: int = 9):
    from transformers import Wav2Vec2BertConfig

    from soundweave import AudioCLIPAligner

    torch.manual_seed(0)
    config = Wav2Vec2BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                add_adapter=True, num_adapter_layers=2, output_hidden_size=24, layerdrop=0.0,
                                conv_depthwise_kernel_size=5, apply_spec_augment=False)
    return AudioCLIPAligner(config, target_dim=dim, target_len=length).eval()


def make_model_folder(root: Path) -> Path:
    """root/{mel-diffusion/model, mulan/run/model, codec/model, soundstorm/model, audio2img/run/aligner,
    audio2img/stable-diffusion, corpus/synthetic-corpus}: the demo's layout with tiny models."""
    from soundweave.data.synth import make_corpus

    root = Path(root)
    tiny_mel_pipeline().save_pretrained(root / "mel-diffusion" / "model")
    tiny_mulan().save_pretrained(root / "mulan" / "run" / "model")
    tiny_codec().save_pretrained(root / "codec" / "model")
    tiny_soundstorm().save_pretrained(root / "soundstorm" / "model")
    tiny_aligner().save_pretrained(root / "audio2img" / "run" / "aligner")
    tiny_stable_diffusion().save_pretrained(root / "audio2img" / "stable-diffusion")
    make_corpus(root / "corpus" / "synthetic-corpus", n=6, seconds=1.5, sr=SR, seed=0, workers=1)
    return root


def write_tone(path: Path, seconds: float = 1.5, sr: int = SR, amp: float = 0.4, freq: float = 330.0) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path
