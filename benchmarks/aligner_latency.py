"""Audio -> embedding latency of AudioCLIPAligner at the w2v-bert-2.0 size (631M parameters, random weights).

A 10 s clip, target 77 x 1024 (SD 2.x CLIP). Paths timed (median of --repeats after a warm-up); all but
the reference use the aligner's inference encoder (relative-key bias from distance buckets, fused SDPA,
pointwise convolutions as products):
  transformers_encoder_bf16_autocast  transformers' own Wav2Vec2BertModel forward under autocast (reference)
  fp32          fp32 weights, fp32 compute (reported beside the default)
  int8          dynamic int8 linear/pointwise layers (oneDNN, AMX), fp32 elsewhere: the default CPU path
                (`aligner.cpu_precision()`), used by the CLI and the pipeline on a CPU
  bf16_autocast fp32 weights under bf16 autocast
  bf16          bf16 weights (`aligner.to(torch.bfloat16)`)
Fidelity of each fast path: cosine similarity and relative L2 error of its (77, 1024) output against the
fp32 output (random weights; the same is asserted on a trained tiny aligner in the tests).
Feature extraction (numpy fbank) is included in every figure and also reported alone.
Goal: the default CPU path <= 1.5 s on 2 cores. Prints JSON.

    python benchmarks/aligner_latency.py [--seconds 10] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from soundweave.runtime import time_call


def w2v_bert_2_config():
    from transformers import Wav2Vec2BertConfig

    # facebook/w2v-bert-2.0: 24 conformer layers, hidden 1024, 16 heads, FF 4096 (~580M) + the audio2img adapter
    return Wav2Vec2BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                              feature_projection_input_dim=160, position_embeddings_type="relative_key",
                              conv_depthwise_kernel_size=31, add_adapter=True, adapter_kernel_size=3, adapter_stride=2,
                              num_adapter_layers=2, layerdrop=0.0, apply_spec_augment=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--paths", default="fp32,int8,bf16_autocast,bf16,transformers_bf16_autocast")
    parser.add_argument("--layers", type=int, default=24, help="conformer layers (24 = w2v-bert-2.0; fewer for a "
                                                                 "quick relative check)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from soundweave.models.aligner import AudioCLIPAligner

    torch.manual_seed(0)
    config = w2v_bert_2_config()
    config.num_hidden_layers = args.layers
    aligner = AudioCLIPAligner(config, target_dim=1024, target_len=77, max_seconds=10.0).eval()
    audio = 0.1 * torch.randn(int(args.seconds * 16000))
    result = {"benchmark": "aligner_latency", "parameters_M": round(aligner.num_parameters() / 1e6, 1),
              "clip_seconds": args.seconds, "threads": torch.get_num_threads(), "repeats": args.repeats}
    result["feature_extraction_s"] = round(time_call(lambda: aligner.preprocess(audio, 16000), args.repeats), 4)
    paths = args.paths.split(",")
    inputs = aligner.preprocess(audio, 16000)
    with torch.inference_mode():
        if "transformers_bf16_autocast" in paths:  # the conformer stack as transformers runs it, for reference
            def as_is():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    aligner.encoder(inputs.input_features, attention_mask=inputs.attention_mask)
            result["transformers_encoder_bf16_autocast_s"] = round(time_call(as_is, args.repeats), 3)
        reference = aligner.encode(audio, 16000, precision="fp32").float()[:, 1:]

        def fidelity(out: torch.Tensor) -> dict:  # over the content tokens (position 0 is the fixed BOS)
            out = out.float()[:, 1:]
            return {"cosine_to_fp32": round(float(F.cosine_similarity(out, reference, dim=-1).mean()), 5),
                    "relative_l2_to_fp32": round(float((out - reference).norm() / reference.norm()), 5)}

        if "fp32" in paths:
            result["fp32_s"] = round(time_call(lambda: aligner.encode(audio, 16000, precision="fp32"),
                                               args.repeats), 3)
        if "int8" in paths:
            result["int8_s"] = round(time_call(lambda: aligner.encode(audio, 16000, precision="int8"), args.repeats), 3)
            result["int8_fidelity"] = fidelity(aligner.encode(audio, 16000, precision="int8"))
        if "bf16_autocast" in paths:
            result["bf16_autocast_s"] = round(
                time_call(lambda: aligner.encode(audio, 16000, precision="bf16"), args.repeats), 3)
            result["bf16_autocast_fidelity"] = fidelity(aligner.encode(audio, 16000, precision="bf16"))
        default_precision = aligner.cpu_precision()
        if "bf16" in paths:  # last: it casts the weights
            aligner.to(torch.bfloat16)
            result["bf16_s"] = round(time_call(lambda: aligner.encode(audio, 16000), args.repeats), 3)
            result["bf16_fidelity"] = fidelity(aligner.encode(audio, 16000))
    key = {"int8": "int8_s", "bf16": "bf16_autocast_s"}[default_precision]
    default = result.get(key)
    result["default_cpu_path"] = (f"aligner.encode(audio, sr, precision='{default_precision}') "
                                  "(aligner.cpu_precision(); fp32 weights)")
    result["default_cpu_s"] = default
    result["goal_s"] = 1.5
    result["meets_goal"] = default is not None and default <= 1.5
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
