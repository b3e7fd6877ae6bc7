"""Does SoundStorm continue a prompt with the prompt's instrument? Prints JSON.

    python benchmarks/soundstorm_quality.py --mulan DIR [--corpus DIR] [--codec DIR] [--minutes 5] [--prompts 24]

Goal (issue 11): over >= 20 held-out prompts, MuLaN's zero-shot instrument of the continuation matches the
prompt's instrument in >= 70% of cases (chance is 1 in 14).

Steps: the codec is fitted on the corpus's train split (SpectralCodec "demo" preset) unless `--codec` names one;
SoundStorm (the demo's size unless --dim/--depth) trains on the train split's codes for `--minutes`; then the
first `--prompt-seconds` of each of the first `--prompts` test clips is continued to `--total-seconds`. MuLaN
(trained as in benchmarks/mulan_quality.py) classifies only the generated part (prompt excluded), with the
same prompts and clips as two references: the real continuation (the original audio of that span) and the
codec's reconstruction of it - so the figure is read against what MuLaN gets right on real audio.

Best of N (`--num-samples N --reranker DIR`): `ContinuationPipeline` draws N continuations per prompt in one batch
and ranks them by cosine with the prompt in the reranker's embedding space; the figure is the first-ranked one's,
reported beside each rank's and the mean over ranks (a random pick). The reranker must be another MuLaN than the
scorer (`--mulan`), e.g. `mulan_quality.py` run on a corpus of another seed; the benchmark refuses the scorer.
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

from codec_quality import ensure_corpus  # noqa: E402

from soundweave.audio.io import resample  # noqa: E402
from soundweave.models.codecs import load_codec  # noqa: E402
from soundweave.models.mulan import MuLaN  # noqa: E402
from soundweave.pipelines.continuation import ContinuationPipeline  # noqa: E402
from soundweave.training.codec import train_codec  # noqa: E402
from soundweave.training.mulan import MuLaNEvaluator  # noqa: E402
from soundweave.training.soundstorm import (  # noqa: E402
    LEVEL0_SHARE,
    MASK_EMBEDDING,
    TIE_EMBEDDINGS,
    build_net,
    level_probs_for,
    train_soundstorm,
)

GOAL = 0.70


def instrument_accuracy(evaluator: MuLaNEvaluator, mulan: MuLaN, audio: torch.Tensor, mask: torch.Tensor) -> float:
    evaluator.audio, evaluator.mask = audio, mask
    return evaluator(mulan)["zero_shot_instrument_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mulan", type=Path, required=True, help="MuLaN folder (benchmarks/mulan_quality.py)")
    parser.add_argument("--corpus", type=Path, default=Path("benchmarks/results/codec-corpus"))
    parser.add_argument("--clips", type=int, default=400, help="corpus size if it has to be made")
    parser.add_argument("--codec", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soundstorm-quality"))
    parser.add_argument("--minutes", type=float, default=5.0, help="SoundStorm training budget")
    parser.add_argument("--steps", type=int, default=8000, help="the LR schedule spans this many steps")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--dim-head", type=int, default=None, help="attention head width (default 16)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--mask-embedding", choices=("learned", "zero"), default=MASK_EMBEDDING,
                        help="ConformerWrapper mask_embedding (zero: masked tokens add nothing)")
    parser.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, default=TIE_EMBEDDINGS,
                        help="output heads tied to the code embeddings (the training recipe; --no-tie-embeddings: "
                             "separate heads)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-seconds", type=float, default=2.0)
    parser.add_argument("--soundstorm", type=Path, default=None, help="a trained SoundStorm (skips training)")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="fine-tune this trained SoundStorm (its size and codec) instead of training from scratch, "
                             "e.g. a second phase with --level0-share 0.5 (README: the continuation recipe)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="SoundStorm top-k for generation (default: the model's own; 0 = all codes)")
    parser.add_argument("--choice-temperature", type=float, default=None,
                        help="MaskGIT choice noise for generation (default: the model's)")
    parser.add_argument("--level0-share", type=float, default=LEVEL0_SHARE,
                        help="train level 0 on this share of the items, the other levels uniformly on the rest "
                             "(SoundStorm level_probs; 0 = uniform, as the paper; default: the training recipe's)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="token sampling temperature for generation (default: the model's)")
    parser.add_argument("--num-samples", type=int, default=1,
                        help="draw this many continuations per prompt in one batch (ContinuationPipeline); the figure "
                             "is then the one --reranker ranks first, reported beside every rank and a random pick")
    parser.add_argument("--reranker", type=Path, default=None,
                        help="a MuLaN folder that ranks the --num-samples continuations by cosine with the prompt; "
                             "use another MuLaN than --mulan (the scorer), e.g. one trained on another corpus seed")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--skip-prompts", type=int, default=0,
                        help="start after this many test clips (a held-out set of prompts after tuning on the first)")
    parser.add_argument("--prompt-seconds", type=float, default=1.5)
    parser.add_argument("--total-seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.num_samples < 1:
        parser.error("--num-samples must be >= 1")
    if args.reranker is not None and args.num_samples < 2:
        parser.error("--reranker ranks several continuations: give --num-samples 2 or more")
    if args.reranker is not None and args.reranker.resolve() == args.mulan.resolve():
        parser.error("--reranker is the scorer (--mulan): the figure would measure the reranker; train another MuLaN")
    torch.set_num_threads(args.threads)
    corpus = ensure_corpus(args.corpus, args.clips, args.seed)
    if args.soundstorm is not None and args.init_from is not None:
        parser.error("give --soundstorm (evaluate) or --init-from (fine-tune), not both")
    if args.soundstorm is not None or args.init_from is not None:
        from soundweave import SoundStorm

        model = SoundStorm.from_pretrained(args.soundstorm or args.init_from).eval()
        codec, trained, train_s = model.soundstream, None, 0.0
    elif args.codec is None:
        codec = train_codec(corpus, args.out / "codec", kind="spectral", preset="demo", seed=args.seed,
                            progress=False, eval_clips=0).model
    else:
        codec = load_codec(args.codec)
    if args.soundstorm is None:
        start = time.perf_counter()
        # --init-from: the loaded model's network, weights and all (train_soundstorm(init_from=) would load it again)
        net = model.net if args.init_from else build_net(codec, "tiny", mask_embedding=args.mask_embedding,
                                                         tie_embeddings=args.tie_embeddings, dim=args.dim,
                                                         depth=args.depth, dim_head=args.dim_head)
        trained = train_soundstorm(corpus, codec, args.out / "soundstorm", steps=args.steps,
                                   batch_size=args.batch_size,
                                   lr=args.lr, seconds=args.crop_seconds,
                                   net=net,
                                   max_seconds=args.minutes * 60, seed=args.seed, progress=False,
                                   level_probs=level_probs_for(args.level0_share or None, codec.num_quantizers))
        train_s = time.perf_counter() - start
        model = trained.model.eval()
    if args.top_k is not None:
        model.config.top_k = args.top_k or None
    mulan = MuLaN.from_pretrained(args.mulan).eval()
    rate = mulan.audio.sample_rate
    k = args.skip_prompts
    evaluator = MuLaNEvaluator(corpus, split="test", sample_rate=rate, seconds=args.total_seconds,
                               max_clips=args.prompts, first_clip=k, tags=("instrument",))
    n = evaluator.audio.shape[0]
    cut, total = int(args.prompt_seconds * rate), int(args.total_seconds * rate)
    N = args.num_samples
    generated = torch.zeros(N, n, total)  # [rank] best first when reranked, batch order otherwise
    reconstructed = torch.zeros(n, total)
    reranker = MuLaN.from_pretrained(args.reranker).eval() if args.reranker is not None else None
    pipe = ContinuationPipeline(model, scorer=reranker)
    start = time.perf_counter()
    for i in range(n):
        clip = evaluator.audio[i][evaluator.mask[i]]
        generator = torch.Generator().manual_seed(args.seed + i)
        if N == 1:  # the single-draw path, exactly as before the pipeline existed
            prompt = resample(clip[:cut], rate, codec.sample_rate)
            outs = model.generate(seconds=args.total_seconds, prompt_audio=prompt[None], generator=generator,
                                  choice_temperature=args.choice_temperature, temperature=args.temperature)[:1]
        else:
            outs = pipe(clip[:cut], rate, seconds=args.total_seconds, num_samples=N, generator=generator,
                        choice_temperature=args.choice_temperature, temperature=args.temperature,
                        return_all=True).audio
        for r in range(N):
            out = resample(outs[r].float().cpu(), codec.sample_rate, rate)[:total]
            generated[r, i, : out.shape[-1]] = out
        recon = codec.reconstruct(clip, sample_rate=rate)[0].float().cpu()
        recon = resample(recon, codec.sample_rate, rate)[:total]
        reconstructed[i, : recon.shape[-1]] = recon
    generate_s = time.perf_counter() - start
    span = torch.zeros(n, total, dtype=torch.bool)
    span[:, cut:] = evaluator.mask[:, cut:total] if evaluator.mask.shape[1] >= total else True
    original = evaluator.audio[:, :total].clone()
    real = instrument_accuracy(evaluator, mulan, original, span)
    codec_only = instrument_accuracy(evaluator, mulan, reconstructed, span)
    per_rank = [instrument_accuracy(evaluator, mulan, generated[r], span) for r in range(N)]
    continued = per_rank[0]
    report = {
        "benchmark": "soundstorm_quality", "codec": codec.describe(), "prompts": n,
        "first_prompt": k,
        "prompt_seconds": args.prompt_seconds, "total_seconds": args.total_seconds,
        "soundstorm": {"parameters_M": round(model.net.num_parameters() / 1e6, 3), "train_s": round(train_s, 1),
                       "conformer": model.net.config.conformer,
                       "mask_embedding": model.net.config.mask_embedding,
                       "tie_embeddings": model.net.config.tie_embeddings,
                       **({"lr": args.lr, "batch_size": args.batch_size, "crop_seconds": args.crop_seconds,
                           "init_from": None if args.init_from is None else str(args.init_from),
                           "train_steps": trained.train.step, "train_clips": trained.num_clips,
                           **{k: round(v, 4) for k, v in trained.metrics.items()}} if trained else
                          {"model": str(args.soundstorm)})},
        "level_probs": model.config.level_probs,
        "top_k": model.config.top_k,
        "choice_temperature": args.choice_temperature if args.choice_temperature is not None
        else model.config.choice_temperature,
        "temperature": args.temperature if args.temperature is not None else model.config.temperature,
        "generate_s": round(generate_s, 1),
        "num_samples": N, "reranker": None if args.reranker is None else str(args.reranker),
        "instrument_match": {"continuation": round(continued, 4),
                             **({"continuation_per_rank": [round(a, 4) for a in per_rank],
                                 "continuation_random_pick": round(sum(per_rank) / N, 4)} if N > 1 else {}),
                             "real_continuation": round(real, 4),
                             "codec_reconstruction": round(codec_only, 4),
                             "chance": round(1 / len(evaluator.classes["instrument"]), 4)},
        "goal": GOAL, "met": continued >= GOAL,
        "threads": torch.get_num_threads(), "machine": platform.machine(), "torch": torch.__version__,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
