"""SoundStorm generation speed on CPU. Prints JSON.

1. `parallel_vs_autoregressive`: 10 s of codes at 50 Hz x 8 levels (500 frames, 4000 tokens, codebook
   1024), batch 1. SoundStorm (steps 16, 1, ..., 1 = 23 passes over the 500 frames) against
   autoregressive decoding of the same 4000 tokens, one at a time, by a causal transformer of the same
   width/depth/heads with a KV cache (per-token compute like a Conformer block's: FF x 8 = the two
   macaron halves). Goal: SoundStorm >= 30x faster. Each model in fp32, bf16 weights and bf16 autocast;
   speedups at the same precision and best-vs-best.
   `--ar-tokens K` times the first K autoregressive tokens and extrapolates to 4000 (per-token cost is
   almost constant; the reported figure says when it was extrapolated).
2. `readme_config`: `generate(1024, batch_size=2)` at dim 512, depth 2, 12 levels, codebook 1024,
   steps=18 (29 passes): seconds (median and best of --repeats), tokens/s and peak memory, in fp32, with
   bf16 weights (`model.to(torch.bfloat16)`) and under bf16 autocast. Goals: <= 11 s fp32, <= 5 s bf16.

    python benchmarks/soundstorm_speed.py [--threads 2] [--repeats 5] [--dim 512 --depth 2] [--ar-tokens 4000]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from soundweave import ConformerWrapper, SoundStorm
from soundweave.nn.attention import RotaryEmbedding, apply_rotary
from soundweave.runtime import autocast, peak_rss_mib, reset_peak_rss, time_call


class CachedCausalLM(nn.Module):
    """The autoregressive baseline: pre-norm causal transformer over N*Q tokens with a KV cache."""

    def __init__(self, codebook_size: int, levels: int, dim: int, depth: int, heads: int, dim_head: int,
                 ff_mult: float = 8.0):
        super().__init__()
        self.levels, self.codebook_size, self.heads, self.dim_head = levels, codebook_size, heads, dim_head
        self.embed = nn.Embedding(levels * codebook_size + 1, dim)  # + a start token
        inner = heads * dim_head
        hidden = int(dim * ff_mult)
        self.layers = nn.ModuleList(nn.ModuleDict(dict(
            norm1=nn.LayerNorm(dim), qkv=nn.Linear(dim, inner * 3, bias=False), out=nn.Linear(inner, dim, bias=False),
            norm2=nn.LayerNorm(dim), ff_in=nn.Linear(dim, hidden), ff_out=nn.Linear(hidden, dim),
        )) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Parameter(torch.randn(levels, codebook_size, dim) * dim ** -0.5)
        self.rotary = RotaryEmbedding(dim_head)

    @torch.no_grad()
    def generate(self, num_tokens: int, batch: int = 1, generator=None, temperature: float = 1.0) -> torch.Tensor:
        dev = self.head.device
        H, Dh = self.heads, self.dim_head
        cos, sin = self.rotary(torch.arange(num_tokens, device=dev))
        dt = self.head.dtype
        caches = [(torch.zeros(batch, H, num_tokens, Dh, device=dev, dtype=dt),
                   torch.zeros(batch, H, num_tokens, Dh, device=dev, dtype=dt)) for _ in self.layers]
        token = torch.full((batch,), self.levels * self.codebook_size, dtype=torch.long, device=dev)
        out = torch.empty(batch, num_tokens, dtype=torch.long, device=dev)
        for t in range(num_tokens):
            x = self.embed(token)[:, None]  # (B, 1, D)
            for layer, (k_cache, v_cache) in zip(self.layers, caches, strict=True):
                q, k, v = layer["qkv"](layer["norm1"](x)).view(batch, 1, 3, H, Dh).permute(2, 0, 3, 1, 4)
                q = apply_rotary(q, cos[t:t + 1], sin[t:t + 1])
                k_cache[:, :, t:t + 1] = apply_rotary(k, cos[t:t + 1], sin[t:t + 1])
                v_cache[:, :, t:t + 1] = v
                a = F.scaled_dot_product_attention(q, k_cache[:, :, :t + 1], v_cache[:, :, :t + 1])
                x = x + layer["out"](a.transpose(1, 2).reshape(batch, 1, H * Dh))
                x = x + layer["ff_out"](F.silu(layer["ff_in"](layer["norm2"](x))))
            level = t % self.levels
            logits = F.linear(self.norm(x[:, 0]), self.head[level]).float()
            gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=generator).clamp(1e-20, 1 - 1e-7)))
            code = (logits / temperature + gumbel).argmax(-1)
            out[:, t] = code
            token = code + level * self.codebook_size
        return out


PRECISIONS = {
    # name: (cast the weights to bf16, run under bf16 autocast)
    "fp32": (False, False),
    "bf16": (True, False),           # model.to(torch.bfloat16): the faster bf16 path on this CPU
    "bf16_autocast": (False, True),  # fp32 weights under torch.autocast(bfloat16)
}


def timings(fn, repeats: int) -> dict:
    """Median and best of `repeats` timed calls (this VM's speed drifts by +-15% from minute to minute)."""
    times = []
    time_call(lambda: times.append(time_call(fn, 1, warmup=0)), repeats, warmup=0)
    times.sort()
    return {"median_s": round(times[len(times) // 2], 3), "best_s": round(times[0], 3), "runs": len(times)}


def variant(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """(model in `name`'s weight dtype, the `precision` to run it with)."""
    cast, auto = PRECISIONS[name]
    return (copy.deepcopy(model).to(torch.bfloat16) if cast else model), ("bf16" if auto else "fp32")


def parallel_vs_autoregressive(dim: int, depth: int, heads: int, dim_head: int, ar_tokens: int, repeats: int) -> dict:
    frames, levels, codebook = 500, 8, 1024  # 10 s at 50 Hz x 8 levels
    total = frames * levels
    net = ConformerWrapper(codebook_size=codebook, num_quantizers=levels,
                           conformer=dict(dim=dim, depth=depth, heads=heads, dim_head=dim_head)).eval()
    storm32 = SoundStorm(net, steps=16).eval()
    ar32 = CachedCausalLM(codebook, levels, dim, depth, heads, dim_head).eval()
    result = {"frames": frames, "levels": levels, "codebook_size": codebook, "tokens": total,
              "dim": dim, "depth": depth, "heads": heads, "passes": 16 + levels - 1,
              "soundstorm_parameters": net.num_parameters(), "ar_parameters": sum(p.numel() for p in ar32.parameters())}
    n_ar = min(ar_tokens, total)
    for name in PRECISIONS:
        storm, precision = variant(storm32, name)
        ar, _ = variant(ar32, name)
        storm.generate(frames, steps=2, seed=0, precision=precision)  # warm-up
        t_storm = timings(lambda s=storm, p=precision: s.generate(frames, batch_size=1, seed=0, precision=p), repeats)
        with autocast("cpu", precision):
            ar.generate(min(64, n_ar))  # warm-up
            t_ar = timings(lambda a=ar: a.generate(n_ar, generator=torch.Generator().manual_seed(0)), 1)
        ar_full = t_ar["median_s"] * total / n_ar
        result[name] = {"soundstorm": t_storm, "autoregressive_s": round(ar_full, 3),
                        "autoregressive_measured_tokens": n_ar, "extrapolated": n_ar < total,
                        "autoregressive_ms_per_token": round(1000 * t_ar["median_s"] / n_ar, 3),
                        "speedup_same_precision": round(ar_full / t_storm["median_s"], 1),
                        "soundstorm_tokens_per_s": round(total / t_storm["median_s"], 1)}
    best_storm = min(PRECISIONS, key=lambda n: result[n]["soundstorm"]["median_s"])
    best_ar = min(PRECISIONS, key=lambda n: result[n]["autoregressive_s"])
    result["best_vs_best"] = {"soundstorm": best_storm, "autoregressive": best_ar, "speedup": round(
        result[best_ar]["autoregressive_s"] / result[best_storm]["soundstorm"]["median_s"], 1)}
    result["goal_speedup"] = 30
    return result


def readme_config(repeats: int) -> dict:
    torch.manual_seed(0)
    conformer = ConformerWrapper(codebook_size=1024, num_quantizers=12, conformer=dict(dim=512, depth=2))
    model32 = SoundStorm(conformer, steps=18, schedule="cosine").eval()
    out = {"call": "generate(1024, batch_size=2)", "dim": 512, "depth": 2, "levels": 12, "passes": 18 + 11,
           "parameters": conformer.num_parameters()}
    tokens = 2 * 1024 * 12
    goals = {"fp32": 11.0, "bf16": 5.0, "bf16_autocast": 5.0}
    for name in PRECISIONS:
        model, precision = variant(model32, name)
        model.generate(64, batch_size=2, steps=2, precision=precision)  # warm-up
        reset_peak_rss()
        t = timings(lambda m=model, p=precision: m.generate(1024, batch_size=2, seed=0, precision=p), repeats)
        out[name] = {**t, "tokens_per_s": round(tokens / t["median_s"], 1), "peak_rss_mib": peak_rss_mib(),
                     "goal_s": goals[name], "meets_goal_median": t["median_s"] <= goals[name]}
        # one network pass alone (all frames, one level), for the share of time spent outside the network
        codes = torch.randint(0, 1025, (2, 1024, 12))
        net = model.net
        with torch.no_grad(), autocast("cpu", precision):
            net(codes, level=0, check=False)
            one = time_call(lambda n=net, c=codes: n(c, level=0, check=False), max(repeats, 3))
        out[name]["one_pass_s"] = round(one, 3)
        out[name]["share_outside_network"] = round(max(0.0, 1 - 29 * one / t["median_s"]), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median and best reported)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dim-head", type=int, default=64)
    parser.add_argument("--ar-tokens", type=int, default=4000, help="autoregressive tokens actually timed")
    parser.add_argument("--only", choices=["ar", "readme"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"threads": args.threads, "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if args.only in (None, "ar"):
        report["parallel_vs_autoregressive"] = parallel_vs_autoregressive(args.dim, args.depth, args.heads,
                                                                          args.dim_head, args.ar_tokens, args.repeats)
    if args.only in (None, "readme"):
        report["readme_config"] = readme_config(args.repeats)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else x))


if __name__ == "__main__":
    main()
