"""Codec quality and speed on held-out clips of the synthetic corpus; prints JSON.

    python benchmarks/codec_quality.py [--corpus DIR] [--test-clips 16] [--mulan DIR] [--codec DIR]

Goals (issue 11), all measured on the same held-out test clips in one run:
- log-mel L1 distance of the offline codec's reconstruction within 1.5x that of the `MelImageCodec`
  Griffin-Lim round trip (the non-learned reference: 256 mel bins, 8-bit images, 32 Griffin-Lim iterations at
  22.05 kHz). MelImageCodec images keep no absolute level (dB relative to each image's peak), so its output is
  gain-matched to the original (same RMS) before the distance is taken; the raw figure is reported too.
  Every distance is soundweave's `mel_distance` at the codec's 16 kHz.
- the instrument survives: with `--mulan` (a MuLaN trained as in benchmarks/mulan_quality.py), its zero-shot
  instrument accuracy on the reconstructions is >= 90% of that on the originals.
- bitrate stated; encode + decode >= 50x faster than real time on 2 cores, beside a real-size EnCodec 24 kHz
  (transformers, random weights) timed on the same clips in the same run.

The codec is fitted here on the corpus's train split (SpectralCodec "hifi" preset, the demo's codec step: 256 mels,
40 x 1024 codes = 20 kbps) unless `--codec` names a trained one; the same figures are given for its first 8 levels
(4 kbps, what the demo's SoundStorm models). The corpus is made (`--clips` clips of 4 s, seed 0) if the folder has
none.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codec_peer import encodec_peer_rtf  # noqa: E402

from soundweave.audio import MelImageCodec  # noqa: E402
from soundweave.audio.io import resample  # noqa: E402
from soundweave.metrics import mel_distance, si_sdr  # noqa: E402
from soundweave.models.codecs import load_codec  # noqa: E402
from soundweave.training.codec import instrument_survival, load_clips, train_codec  # noqa: E402

GOAL_MEL_RATIO, GOAL_SURVIVAL, GOAL_SPEED = 1.5, 0.9, 50.0


def ensure_corpus(folder: Path, n: int, seed: int) -> Path:
    if not (folder / "captions.jsonl").is_file():
        from soundweave.data.synth import make_corpus

        make_corpus(folder, n=n, seconds=4.0, sr=22050, seed=seed, progress=False)
    return folder


def griffin_lim_reference(clips_22k: list[torch.Tensor], rate: int) -> dict[str, float]:
    """MelImageCodec round trip of each clip, compared at `rate` with the original (raw and gain-matched)."""
    mel = MelImageCodec()
    raw, matched = [], []
    for clip in clips_22k:
        recon = torch.as_tensor(mel.image_to_audio(mel.audio_to_image(clip.numpy()))).float()
        n = min(recon.shape[-1], clip.shape[-1])
        ref, out = resample(clip[:n], mel.sample_rate, rate), resample(recon[:n], mel.sample_rate, rate)
        raw.append(float(mel_distance(ref[None], out[None], rate)))
        out = out * (ref.pow(2).mean() / out.pow(2).mean().clamp_min(1e-12)).sqrt()
        matched.append(float(mel_distance(ref[None], out[None], rate)))
    return {"mel_distance_gain_matched": sum(matched) / len(matched), "mel_distance_raw": sum(raw) / len(raw)}


def codec_figures(codec, clips: list[torch.Tensor], repeats: int) -> dict[str, float]:
    mel, sdr, elapsed, total = [], [], 0.0, 0.0
    for clip in clips:
        recon = codec.reconstruct(clip)[0]
        mel.append(float(mel_distance(clip[None], recon[None], codec.sample_rate)))
        sdr.append(float(si_sdr(clip[None], recon[None])))
        codec.reconstruct(clip)  # warm
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            codec.decode(codec.encode(clip))
            times.append(time.perf_counter() - start)
        elapsed += sorted(times)[len(times) // 2]
        total += clip.shape[-1] / codec.sample_rate
    return {"mel_distance": sum(mel) / len(mel), "si_sdr": sum(sdr) / len(sdr),
            "encode_decode_rtf": elapsed / total, "x_realtime": total / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("benchmarks/results/codec-corpus"))
    parser.add_argument("--clips", type=int, default=2000, help="corpus size if it has to be made (2000: 1600 train "
                        "clips, as the demo's codec step fits on)")
    parser.add_argument("--preset", default="hifi", help="SpectralCodec preset fitted here (hifi | demo | base)")
    parser.add_argument("--kmeans-iters", type=int, default=4, help="Lloyd steps per level (4, as the demo)")
    parser.add_argument("--test-clips", type=int, default=16)
    parser.add_argument("--codec", type=Path, default=None, help="a trained codec folder (default: fit one here)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/codec-quality"))
    parser.add_argument("--mulan", type=Path, default=None, help="MuLaN folder for the instrument-survival figure")
    parser.add_argument("--mulan-clips", type=int, default=200)
    parser.add_argument("--mulan-corpus", type=Path, default=None,
                        help="corpus whose test split the instrument figure uses (default: --corpus), e.g. the one "
                             "mulan_quality.py evaluated on (its first 200 test clips)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = ensure_corpus(args.corpus, args.clips, args.seed)
    fit = {}
    if args.codec is None:
        result = train_codec(corpus, args.out / "codec", kind="spectral", preset=args.preset, seed=args.seed,
                             progress=False, eval_clips=0, kmeans_iters=args.kmeans_iters)
        codec, fit = result.model, {"fit_seconds": round(result.train.elapsed, 1), "kmeans_iters": args.kmeans_iters,
                                    "fit_clips": json.loads((result.out_dir / "codec_train.json").read_text())["clips"]}
    else:
        codec = load_codec(args.codec)
    clips = load_clips(corpus, "test", codec.sample_rate, args.test_clips)
    ours = codec_figures(codec, clips, args.repeats)
    fewer = None
    if codec.num_quantizers > 8 and hasattr(codec, "first_levels"):
        fewer = codec.first_levels(8)
        fewer_figures = codec_figures(fewer, clips, args.repeats)
    reference = griffin_lim_reference(load_clips(corpus, "test", 22050, args.test_clips), codec.sample_rate)
    peer_clip = resample(torch.cat(clips), codec.sample_rate, 24000)
    peer = encodec_peer_rtf(repeats=args.repeats, threads=args.threads, audio=peer_clip, print_json=False)
    ratio = ours["mel_distance"] / reference["mel_distance_gain_matched"]
    report = {
        "benchmark": "codec_quality", "codec": codec.describe(), "test_clips": len(clips),
        "audio_seconds": round(sum(c.shape[-1] for c in clips) / codec.sample_rate, 2), **fit,
        "bitrate_kbps": round(codec.bitrate() / 1000, 3),
        "ours": {k: round(v, 4) for k, v in ours.items()},
        "griffin_lim_reference": {k: round(v, 4) for k, v in reference.items()},
        "mel_distance_ratio_vs_griffin_lim": round(ratio, 3),
        **({"first_8_levels": {"bitrate_kbps": round(fewer.bitrate() / 1000, 3),
                                **{k: round(v, 4) for k, v in fewer_figures.items()},
                                "mel_distance_ratio_vs_griffin_lim": round(
                                    fewer_figures["mel_distance"] / reference["mel_distance_gain_matched"], 3)}}
           if fewer is not None else {}),
        "encodec_peer": {k: peer[k] for k in ("model", "bandwidth_kbps", "encode_decode_rtf", "x_realtime")},
        "speedup_vs_encodec": round(peer["encode_decode_rtf"] / ours["encode_decode_rtf"], 2),
        "threads": torch.get_num_threads(), "machine": platform.machine(), "torch": torch.__version__,
        "goals": {"mel_distance_ratio_max": GOAL_MEL_RATIO, "x_realtime_min": GOAL_SPEED,
                  "instrument_survival_min": GOAL_SURVIVAL},
        "met": {"mel_distance": ratio <= GOAL_MEL_RATIO, "speed": ours["x_realtime"] >= GOAL_SPEED},
    }
    if args.mulan is not None:
        from soundweave.models.mulan import MuLaN

        survival = instrument_survival(codec, MuLaN.from_pretrained(args.mulan), args.mulan_corpus or corpus, "test",
                                       args.mulan_clips)
        survival["corpus"] = str(args.mulan_corpus or corpus)
        report["instrument"] = survival
        report["met"]["instrument_survival"] = survival["instrument_survival"] >= GOAL_SURVIVAL
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
