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


def tiny_musiclm():
    """MusicLM with real, untrained-but-fitted parts: a tiny MuLaN, its quantizer (codebooks fitted to random
    latents), a SemanticTokenizer and a SpectralCodec fitted (k-means) on tones, and untrained transformers."""
    from soundweave import (
        AudioLM,
        ConformerWrapper,
        MuLaNEmbedQuantizer,
        MusicLM,
        SemanticTokenizer,
        SemanticTransformer,
        SoundStorm,
        SpectralCodec,
    )

    clips = [torch.from_numpy(tone_array(1.0, freq=f)) for f in (220, 330, 440, 550, 660, 880)]
    quantizer = MuLaNEmbedQuantizer(tiny_mulan(), conditioning_dims=(24, 24), namespaces=("semantic", "coarse"),
                                    rq_num_quantizers=2, codebook_size=4)
    quantizer.fit_codebooks(torch.randn(64, 16, generator=torch.Generator().manual_seed(0)))
    codec = SpectralCodec(num_quantizers=2, codebook_size=16, n_mels=32, griffin_lim_iters=4)
    codec.fit(clips, generator=torch.Generator().manual_seed(0))
    wav2vec = SemanticTokenizer(codebook_size=8).fit(clips)
    torch.manual_seed(0)
    semantic = SemanticTransformer(num_semantic_tokens=8, dim=32, depth=1, heads=2, dim_head=16,
                                   audio_text_condition=True, cond_dim=24)
    net = ConformerWrapper(codebook_size=16, num_quantizers=2, conformer=dict(dim=32, depth=1, heads=2, dim_head=16),
                           num_semantic_token_ids=8, semantic_ratio=2.0, cond_dim=24)
    storm = SoundStorm(net, soundstream=codec, steps=2, cond_drop_prob=0.1).eval()
    audio_lm = AudioLM(wav2vec=wav2vec, codec=codec, semantic_transformer=semantic.eval(), soundstorm=storm)
    return MusicLM(audio_lm, quantizer.eval())


# the texts the tiny TextToSemantic learned: a longer text gives more units, so longer speech
TTS_TEXTS = ("a cat", "the old clock is here", "where is the quick brown fox and the lazy dog now")


def tiny_tts(steps: int = 150):
    """A SoundStorm carrying a TextToSemantic, both trained briefly: the TextToSemantic overfits TTS_TEXTS to one
    unit per two characters (then EOS), the SoundStorm takes a few steps on unit-conditioned codes of tones."""
    from soundweave import ConformerWrapper, SoundStorm, SpectralCodec, TextToSemantic
    from soundweave.models.text_to_semantic import PAD

    torch.manual_seed(0)
    t2s = TextToSemantic(dim=32, source_depth=1, target_depth=1, heads=2, dim_head=16, num_semantic_token_ids=6)
    lengths = [len(t) // 2 for t in TTS_TEXTS]
    target = torch.full((len(TTS_TEXTS), max(lengths)), PAD)
    for row, n in enumerate(lengths):
        target[row, :n] = torch.arange(n) % 6
    opt = torch.optim.AdamW(t2s.parameters(), lr=3e-3)
    for _ in range(steps):
        loss, _ = t2s(list(TTS_TEXTS), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    codec = SpectralCodec(num_quantizers=2, codebook_size=16, n_mels=32, griffin_lim_iters=2)
    codec.fit([torch.from_numpy(tone_array(1.0, freq=f)) for f in (180, 240, 300, 420)],
              generator=torch.Generator().manual_seed(0))
    net = ConformerWrapper(codebook_size=16, num_quantizers=2, conformer=dict(dim=32, depth=1, heads=2, dim_head=16),
                           num_semantic_token_ids=6, semantic_ratio=2.0)
    model = SoundStorm(net, soundstream=codec, spear_tts_text_to_semantic=t2s.eval(), steps=2)
    codes = codec.encode(torch.from_numpy(np.stack([tone_array(0.32, freq=f) for f in (200, 400)]))).long()[:, :8]
    units = torch.randint(0, 6, (2, 4), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-3)
    for _ in range(3):
        loss, _ = model(codes, cond_semantic_token_ids=units)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def make_model_folder(root: Path) -> Path:
    """root/{mel-diffusion/model, mulan/run/model, codec/model, soundstorm/model, audio2img/run/aligner,
    audio2img/stable-diffusion, corpus/synthetic-corpus, musiclm/model, speech/tts}: the demo's layout with tiny
    models."""
    from soundweave.data.synth import make_corpus

    root = Path(root)
    tiny_mel_pipeline().save_pretrained(root / "mel-diffusion" / "model")
    tiny_mulan().save_pretrained(root / "mulan" / "run" / "model")
    tiny_codec().save_pretrained(root / "codec" / "model")
    tiny_soundstorm().save_pretrained(root / "soundstorm" / "model")
    tiny_aligner().save_pretrained(root / "audio2img" / "run" / "aligner")
    tiny_stable_diffusion().save_pretrained(root / "audio2img" / "stable-diffusion")
    make_corpus(root / "corpus" / "synthetic-corpus", n=6, seconds=1.5, sr=SR, seed=0, workers=1)
    tiny_musiclm().save_pretrained(root / "musiclm" / "model")
    tiny_tts().save_pretrained(root / "speech" / "tts")
    return root


def tone_array(seconds: float = 1.5, sr: int = SR, amp: float = 0.4, freq: float = 330.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_tone(path: Path, seconds: float = 1.5, sr: int = SR, amp: float = 0.4, freq: float = 330.0) -> Path:
    sf.write(str(path), tone_array(seconds, sr, amp, freq), sr)
    return path
