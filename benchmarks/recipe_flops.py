"""FLOPs of one training sample (forward + backward) of each paper-size model, measured; prints JSON.

The models are built at the configurations of docs/recipes.md on PyTorch's "meta" device and one training step
of one sample is run under `torch.utils.flop_counter.FlopCounterMode`, which counts the matmul / convolution /
attention FLOPs of every op from its shapes (no arithmetic is done, so 350M-parameter models count in seconds on a
CPU). Element-wise ops, norms and the optimizer are not counted (a few % at these sizes). The GPU-hours in
docs/recipes.md are these counts x the samples of a run / (the GPU's dense bf16 peak x an assumed utilisation).

    python benchmarks/recipe_flops.py
"""

from __future__ import annotations

import json

import torch
from torch.utils.flop_counter import FlopCounterMode


def count(step) -> float:
    """FLOPs of `step()` (forward + backward), counted on the meta device."""
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mulan() -> dict:
    from soundweave.models.mulan import AudioSpectrogramTransformer, MuLaN, TextTransformer
    from soundweave.training.mulan import AUDIO_PRESETS, TEXT_PRESETS

    # built and run for real on the CPU (its mel filterbank is computed at construction, which meta cannot do);
    # eval mode: no patch dropout (training drops 25 % of the patches, so this is an upper bound)
    torch.manual_seed(0)
    audio = AudioSpectrogramTransformer(**AUDIO_PRESETS["paper"], sample_rate=16000, max_seconds=10.0)
    text = TextTransformer(**TEXT_PRESETS["paper"], num_tokens=30522, max_seq_len=128)
    model = MuLaN(audio, text, dim_latent=128).eval()
    wav = torch.randn(1, 10 * 16000) * 0.1
    ids = torch.randint(0, 30522, (1, 64))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            latents = model.get_audio_latents(wav), model.get_text_latents(ids)
        (latents[0].float().sum() + latents[1].float().sum()).backward()

    return {"parameters": params(model), "flops_per_sample": count(step), "how": "measured (bf16 autocast, CPU)",
            "sample": "one 10 s clip (all patches) + a 64-token caption"}


def soundstorm() -> dict:
    from soundweave.models.conformer_wrapper import ConformerWrapper
    from soundweave.training.soundstorm import PRESETS

    with torch.device("meta"):
        net = ConformerWrapper(codebook_size=1024, num_quantizers=12, conformer=PRESETS["paper"])
    net.check_codes = lambda codes: codes  # its range check reads values, which meta tensors do not have
    frames = 30 * 50  # 30 s at 50 frames/s (SoundStream 24 kHz, hop 480), the paper's sequence

    def step():
        codes = torch.zeros(1, frames, 12, dtype=torch.long, device="meta")
        out = net(codes)
        logits = out if isinstance(out, torch.Tensor) else out[0]
        logits.float().sum().backward()

    return {"parameters": params(net), "flops_per_sample": count(step), "how": "measured",
            "sample": "30 s = 1500 frames x 12 levels (logits of every level counted; training uses one)"}


def mel_diffusion() -> dict:
    from soundweave.training.mel_diffusion import make_unet

    with torch.device("meta"):
        unet = make_unet(256, (128, 128, 256, 256, 512, 512), layers_per_block=2)
    x = torch.zeros(1, 1, 256, 256, device="meta")
    t = torch.zeros(1, dtype=torch.long, device="meta")

    def step():
        unet(x, t).sample.sum().backward()

    return {"parameters": params(unet), "flops_per_sample": count(step), "how": "measured",
            "sample": "one 256 x 256 spectrogram image (~5.9 s at 22.05 kHz, hop 512)"}


def semantic_stage() -> dict:
    from soundweave.nn.attention import Transformer

    with torch.device("meta"):
        net = Transformer(1024, 24, 16, 64, 4.0)
    x = torch.zeros(1, 750, 1024, device="meta", requires_grad=True)

    def step():
        out = net(x)
        (out if isinstance(out, torch.Tensor) else out[0]).sum().backward()

    return {"parameters": params(net), "flops_per_sample": count(step),
            "how": "measured on a decoder-only Transformer of MusicLM's stage size (24 x 1024, 16 heads), "
                   "without the token embeddings/heads (the MusicLM trainer is not on this branch)",
            "sample": "30 s of semantic tokens at 25 Hz = 750 tokens"}


def codec() -> dict:
    from soundweave import SoundStream

    torch.manual_seed(0)
    model = SoundStream()  # the default (= "base" preset) configuration
    wav = torch.randn(1, model.sample_rate) * 0.1

    def step():
        model(wav).backward()  # the training loss (reconstruction, multi-scale spectral, commitment)

    return {"parameters": params(model), "flops_per_sample": count(step), "how": "measured (CPU, fp32, generator only)",
            "sample": f"1 s at {model.sample_rate} Hz"}


def aligner() -> dict:
    from transformers import Wav2Vec2BertConfig

    from soundweave.models.aligner import AudioCLIPAligner

    # w2v-bert-2.0 size (transformers' Wav2Vec2BertConfig defaults) + the audio2img adapter, 48 x 1024 targets
    config = Wav2Vec2BertConfig(add_adapter=True, adapter_kernel_size=3, adapter_stride=2, num_adapter_layers=2,
                                layerdrop=0.0, apply_spec_augment=False, hidden_dropout=0.0, attention_dropout=0.0,
                                output_hidden_size=1024)
    model = AudioCLIPAligner(config, target_dim=1024, target_len=48).train()
    features = torch.randn(1, 188, 160)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(features).last_hidden_state
        out.float().sum().backward()

    return {"parameters": params(model), "flops_per_sample": count(step), "how": "measured (bf16 autocast, CPU)",
            "sample": "188 feature frames (the published model's 3.8 s input)"}


def main() -> None:
    report = {}
    for name, fn in (("mulan", mulan), ("soundstorm", soundstorm), ("mel_diffusion", mel_diffusion),
                     ("semantic_stage", semantic_stage), ("codec", codec), ("aligner", aligner)):
        try:
            report[name] = fn()
        except Exception as exc:
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        if "flops_per_sample" in report[name]:
            report[name]["gflops_per_sample"] = round(report[name]["flops_per_sample"] / 1e9, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
