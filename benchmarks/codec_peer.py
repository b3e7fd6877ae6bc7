"""The peer figure for codec speed: a real-size EnCodec (transformers' default EncodecConfig = the
facebook/encodec_24khz architecture, 14.9M parameters, random weights) encode + decode on this CPU.

    python benchmarks/codec_peer.py [--seconds 4] [--repeats 3] [--threads 2] [--bandwidth 6.0]

Runs through soundweave's `EncodecCodec` (what a user pays; the wrapper adds only padding). Prints JSON: the
median wall time of encode and of decode of one `--seconds` clip (batch 1, fp32) after a warm-up, the
real-time factor (processing seconds / audio seconds; < 1 is faster than real time) and its inverse
(`x_realtime`). Weights are random: speed does not depend on training. Other benchmarks (e.g. the codec quality
benchmark) import `encodec_peer_rtf` to put this figure beside their own codec's.
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from soundweave.runtime import time_call


def encodec_peer_rtf(seconds: float = 4.0, repeats: int = 3, threads: int = 2, bandwidth: float = 6.0,
                     audio: torch.Tensor | None = None, print_json: bool = True) -> dict:
    """Encode + decode RTF of a real-size EnCodec 24 kHz with random weights; prints and returns the JSON dict.

    `audio` (T,) or (1, T) at 24 kHz replaces the default noise clip (e.g. the same clips another codec is timed
    on); `seconds` is then its length.
    """
    from transformers import EncodecConfig

    from soundweave.models.codecs.pretrained import EncodecCodec

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        codec = EncodecCodec(EncodecConfig(), bandwidth=bandwidth)
        if audio is None:
            audio = 0.1 * torch.randn(1, int(seconds * codec.sample_rate))
        audio = audio.reshape(1, -1).float()
        seconds = audio.shape[-1] / codec.sample_rate
        codes = codec.encode(audio)
        t_enc = time_call(lambda: codec.encode(audio), repeats)
        t_dec = time_call(lambda: codec.decode(codes), repeats)
        result = {
            "benchmark": "codec_peer",
            "model": "EnCodec 24 kHz (transformers EncodecConfig defaults, random weights)",
            "parameters_M": round(codec.num_parameters() / 1e6, 2),
            "bandwidth_kbps": codec.bandwidth, "num_quantizers": codec.num_quantizers,
            "sample_rate": codec.sample_rate, "frame_rate": codec.frame_rate,
            "audio_seconds": round(seconds, 3), "repeats": repeats, "threads": torch.get_num_threads(),
            "encode_s": round(t_enc, 4), "decode_s": round(t_dec, 4),
            "encode_rtf": round(t_enc / seconds, 5), "decode_rtf": round(t_dec / seconds, 5),
            "encode_decode_rtf": round((t_enc + t_dec) / seconds, 5),
            "x_realtime": round(seconds / (t_enc + t_dec), 2),
            "torch": torch.__version__, "machine": platform.machine(),
        }
    finally:
        torch.set_num_threads(previous)
    if print_json:
        print(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0 = torch default)")
    parser.add_argument("--bandwidth", type=float, default=6.0, help="kbps: 1.5, 3, 6, 12 or 24")
    args = parser.parse_args()
    encodec_peer_rtf(args.seconds, args.repeats, args.threads, args.bandwidth)


if __name__ == "__main__":
    main()
