"""SoundStream encode + decode real-time factor on CPU for the default 24 kHz configuration.

    python benchmarks/codec_rtf.py [--seconds 10] [--repeats 3] [--decode-seconds 30 --decode-batch 2]

Prints JSON: for fp32 and bf16 autocast, the median wall time of encode and decode of `--seconds` of
audio (batch 1) and their real-time factor (processing seconds / audio seconds; < 1 is faster than
real time), plus the decode of `--decode-batch` x `--decode-seconds` of codes (what
`SoundStorm.generate(seconds=30, batch_size=2)` pays to turn codes into audio). Weights are random:
speed does not depend on training.
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from soundweave import SoundStream
from soundweave.runtime import autocast, time_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length for encode/decode RTF")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-seconds", type=float, default=30.0)
    parser.add_argument("--decode-batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--strides", default="2,4,6,10",
                        help="encoder strides (default: the paper order; 4,4,5,6 is the faster hop-480 option)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    strides = tuple(int(v) for v in args.strides.split(","))
    codec = SoundStream(codebook_size=1024, rq_num_quantizers=12, attn_window_size=128, attn_depth=2,
                        strides=strides).eval()
    audio = 0.1 * torch.randn(1, int(args.seconds * codec.sample_rate))
    frames = codec.seconds_to_frames(args.decode_seconds)
    codes = torch.randint(0, codec.codebook_size, (args.decode_batch, frames, codec.num_quantizers))
    results = {}
    for precision in ("fp32", "bf16"):
        def run(fn, *inputs, precision=precision):
            with autocast("cpu", precision):
                return fn(*inputs)

        enc_codes = run(codec.encode, audio)

        def encode(run=run):
            return run(codec.encode, audio)

        def decode(run=run, enc_codes=enc_codes):
            return run(codec.decode, enc_codes)

        def decode_long(run=run):
            return run(codec.decode, codes)

        t_enc = time_call(encode, args.repeats)
        t_dec = time_call(decode, args.repeats)
        t_long = time_call(decode_long, max(1, args.repeats // 2))
        results[precision] = {
            "encode_s": round(t_enc, 4), "decode_s": round(t_dec, 4),
            "encode_rtf": round(t_enc / args.seconds, 5), "decode_rtf": round(t_dec / args.seconds, 5),
            "encode_decode_rtf": round((t_enc + t_dec) / args.seconds, 5),
            f"decode_{args.decode_batch}x{args.decode_seconds:g}s_s": round(t_long, 3),
        }
    print(json.dumps({
        "benchmark": "codec_rtf",
        "config": {"sample_rate": codec.sample_rate, "hop_length": codec.hop_length,
                   "num_quantizers": codec.num_quantizers, "codebook_size": codec.codebook_size,
                   "strides": list(strides), "attn_window_size": 128, "attn_depth": 2,
                   "parameters": codec.num_parameters()},
        "audio_seconds": args.seconds, "decode_frames": frames,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
