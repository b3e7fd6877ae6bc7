"""MusicLM trained from scratch on the synthetic corpus within a CPU budget: does it make the instrument
the text names? Prints JSON.

    python benchmarks/musiclm_quality.py [--corpus DIR] [--mulan DIR] [--scorer DIR] [--minutes 12]

Figures (issue 12):
- zero-shot instrument accuracy of generated audio: one prompt per instrument (the caption of the first test
  clip of that instrument), each generation classified by a *second* MuLaN (`--scorer`, trained with another
  seed) among all the corpus's instruments; with and without reranking (best of `--num-samples` by the
  conditioning MuLaN vs the first sample) and with and without the semantic stage (MuLaN-only SoundStorm).
  Goal >= 60% (chance 1 / 17).
- MCC (mean text-audio cosine, scorer MuLaN) of the generations beside real test clips with their captions.
- Frechet distance in the scorer's embedding space of generations to real test clips, beside the codec's
  resynthesis of those clips (floor) and an untrained model's generations (ceiling); same number of clips each.
- seconds per stage to generate 10 s with num_samples=4.

Training budget: `--minutes` is split between the semantic transformer, the conditioned SoundStorm and the
MuLaN-only SoundStorm (40/35/25%); MuLaNs are trained first for `--mulan-minutes` each unless given.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from soundweave.audio.io import resample
from soundweave.data.manifest import read_manifest
from soundweave.data.synth.instruments import INSTRUMENT_NAMES
from soundweave.models.codecs.spectral import SpectralCodec
from soundweave.models.mulan import MuLaN, MuLaNEmbedQuantizer
from soundweave.models.semantic_tokenizer import SemanticTokenizer
from soundweave.models.semantic_transformer import SemanticTransformer
from soundweave.models.soundstorm import ConformerWrapper, SoundStorm
from soundweave.pipelines.audiolm import AudioLM
from soundweave.pipelines.musiclm import MusicLM
from soundweave.training.acoustic import train_acoustic_stage
from soundweave.training.mulan import class_prompts
from soundweave.training.semantic import SemanticTransformerTrainer, load_audio_folder, train_semantic_tokenizer

GOAL = 0.60


def ensure_corpus(folder: Path, n: int, seed: int) -> Path:
    if not (folder / "captions.jsonl").is_file():
        from soundweave.data.synth import make_corpus

        make_corpus(folder, n=n, seconds=4.0, sr=16000, seed=seed, progress=False)
    return folder


def get_mulan(path: Path | None, corpus: Path, out: Path, minutes: float, seed: int, size: str,
              max_files: int | None) -> tuple[MuLaN, float]:
    """A MuLaN folder as is, or one trained here (frozen MiniLM text tower) until `minutes` have passed."""
    if path is not None:
        return MuLaN.from_pretrained(path).eval(), 0.0
    if (out / "model" / "model.safetensors").is_file():  # a crashed or repeated run: reuse
        return MuLaN.from_pretrained(out / "model").eval(), 0.0
    from soundweave.training import mulan as mt
    from soundweave.training.trainer import Trainer, TrainerConfig

    start, steps = time.perf_counter(), 100_000
    train_set = mt.CaptionedAudioDataset(corpus, split="train", sample_rate=16000, seconds=4.0, crop="random")
    if max_files is not None:
        train_set.records = train_set.records[:max_files]
    model = mt.build_mulan("minilm", size, 16000, captions=train_set.captions)
    cache = mt.TextFeatureCache(model)
    tcfg = TrainerConfig(out_dir=str(out), max_steps=steps, batch_size=32, lr=1e-3, warmup_steps=20,
                         mixed_precision="bf16", seed=seed, progress=False)
    trainer = Trainer(model, mt.ClipCache(train_set), mt.mulan_step_fn(cache), tcfg, collate_fn=mt.collate_audio)
    while time.perf_counter() - start < minutes * 60:
        trainer.fit(stop_at=trainer.step + 5)
    model = trainer.eval_model.eval()
    model.save_pretrained(out / "model")
    print(json.dumps({"mulan_trained": str(out / "model"), "steps": trainer.step}), flush=True)
    return model, time.perf_counter() - start


def instrument_table(mulan) -> torch.Tensor:
    rows = [F.normalize(mulan.get_text_latents(raw_texts=class_prompts("instrument", n)).mean(0), dim=-1)
            for n in INSTRUMENT_NAMES]
    return torch.stack(rows)


@torch.no_grad()
def embed(mulan, audio: torch.Tensor, sr: int, batch: int = 16) -> torch.Tensor:
    audio = resample(audio, sr, mulan.sample_rate) if sr != mulan.sample_rate else audio
    return torch.cat([mulan.get_audio_latents(audio[i:i + batch], sample_rate=mulan.sample_rate)
                      for i in range(0, audio.shape[0], batch)]).float()


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2) in float64."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.t()), torch.cov(b.t())
    w, v = torch.linalg.eigh(ca)
    root_a = v @ torch.diag(w.clamp_min(0).sqrt()) @ v.t()
    cross = torch.linalg.eigvalsh(root_a @ cb @ root_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(ca) + torch.trace(cb) - 2 * cross)


def generate_all(musiclm: MusicLM, prompts: list[str], seconds: float, num_samples: int, seed: int):
    """-> audio (P, N, T) in generation order, scores (P, N) by the conditioning MuLaN, seconds spent."""
    start = time.perf_counter()
    audios, scores = [], []
    for i, prompt in enumerate(prompts):
        out = musiclm(prompt, num_samples=num_samples, seconds=seconds, seed=seed + i, return_all=True,
                      temperature=0.95)
        audios.append(out.audio)
        scores.append(out.scores)
    return torch.stack(audios), torch.stack(scores), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("benchmarks/results/musiclm-corpus"))
    parser.add_argument("--clips", type=int, default=800, help="corpus size if it has to be made")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/musiclm-quality"))
    parser.add_argument("--mulan", type=Path, default=None, help="conditioning + reranking MuLaN (else trained)")
    parser.add_argument("--scorer", type=Path, default=None, help="the second MuLaN that scores (else trained)")
    parser.add_argument("--mulan-minutes", type=float, default=8.0)
    parser.add_argument("--mulan-size", default="tiny", help="size preset of a MuLaN trained here")
    parser.add_argument("--max-files", type=int, default=800, help="train clips used by every stage")
    parser.add_argument("--minutes", type=float, default=12.0, help="budget of the MusicLM stages together")
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--acoustic-precision", choices=("bf16", "fp32"), default="bf16",
                        help="the SoundStorm stages' training precision (a dim-128 SoundStorm steps faster in fp32 "
                        "on a CPU with AVX512-BF16 but no AMX: README)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--prompts-per-instrument", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=None,
                        help="SoundStorm top-k for generation (default: the model's own; 0 = all codes)")
    parser.add_argument("--choice-temperature", type=float, default=None,
                        help="SoundStorm MaskGIT choice noise for generation (default: each trained stage's own)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    wall = time.perf_counter()
    corpus = ensure_corpus(args.corpus, args.clips, args.seed)
    out = args.out
    mulan, mulan_s = get_mulan(args.mulan, corpus, out / "mulan-a", args.mulan_minutes, args.seed, args.mulan_size,
                               args.max_files)
    scorer, scorer_s = get_mulan(args.scorer, corpus, out / "mulan-b", args.mulan_minutes, args.seed + 1,
                                 args.mulan_size, args.max_files)

    # prompts: the caption of the first test clips of every instrument; real references: test clips
    test = read_manifest(corpus, split="test")
    prompts, targets = [], []
    for name in INSTRUMENT_NAMES:
        recs = [r for r in test if r.tags.get("instrument") == name][: args.prompts_per_instrument]
        prompts += [r.caption for r in recs]
        targets += [INSTRUMENT_NAMES.index(name)] * len(recs)
    targets = torch.tensor(targets)

    start = time.perf_counter()
    budget = args.minutes * 60
    info_file = out / "training.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    if (out / "semantic_tokenizer" / "metrics.json").is_file():
        wav2vec = SemanticTokenizer.from_pretrained(out / "semantic_tokenizer")
        tok_metrics = json.loads((out / "semantic_tokenizer" / "metrics.json").read_text())
    else:
        tok = train_semantic_tokenizer(corpus, out / "semantic_tokenizer", codebook_size=256, seed=args.seed,
                                       max_files=args.max_files)
        wav2vec, tok_metrics = tok.tokenizer, tok.metrics
        (out / "semantic_tokenizer" / "metrics.json").write_text(json.dumps(tok_metrics, default=str))
    if (out / "codec" / "config.json").is_file():
        codec = SpectralCodec.from_pretrained(out / "codec")
    else:
        codec = SpectralCodec()
        codec.fit([item.audio for item in load_audio_folder(corpus, 16000, max_files=400)])
        codec.save_pretrained(out / "codec")
    prep_s = time.perf_counter() - start

    def semantic_model():
        torch.manual_seed(args.seed)
        return SemanticTransformer(num_semantic_tokens=wav2vec.codebook_size, dim=192, depth=4, heads=4, dim_head=48,
                                   audio_text_condition=True, cond_dim=128, cond_drop_prob=0.2, rate=wav2vec.rate)

    run = out / "semantic-run"
    if (run / "semantic_transformer" / "model.safetensors").is_file() and (run / "mulan_quantizer").is_dir():
        semantic = SemanticTransformer.from_pretrained(run / "semantic_transformer")
        quantizer = MuLaNEmbedQuantizer.from_pretrained(run / "mulan_quantizer").eval()
    else:
        quantizer = MuLaNEmbedQuantizer(mulan, conditioning_dims=(128, 128), namespaces=("semantic", "coarse"),
                                        rq_num_quantizers=4, codebook_size=256)
        semantic = semantic_model()
        trainer = SemanticTransformerTrainer(semantic, wav2vec, audio_conditioner=quantizer, folder=corpus,
                                             batch_size=16, data_max_length_seconds=4.0, num_train_steps=20_000,
                                             lr=1e-3, warmup_steps=50, results_folder=run, seed=args.seed,
                                             mixed_precision="bf16", progress=False, max_files=args.max_files)
        trainer.train(max_seconds=0.40 * budget)
        quantizer.save_pretrained(run / "mulan_quantizer")
        info.update(semantic_steps=trainer.result.step, semantic_last_loss=trainer.result.last_loss)
        info_file.write_text(json.dumps(info))
    stages = {}
    for name, use_semantic, share in (("soundstorm", True, 0.35), ("soundstorm-mulan-only", False, 0.25)):
        if (out / name / "model.safetensors").is_file() and f"{name}_steps" in info:
            stages[name] = SoundStorm.from_pretrained(out / name).eval()
            continue
        result = train_acoustic_stage(corpus, codec, out / name, wav2vec=wav2vec if use_semantic else None,
                                      quantizer=quantizer, steps=20_000, batch_size=8, seconds=2.0, dim=128, depth=3,
                                      max_seconds=share * budget, bf16=args.acoustic_precision == "bf16",
                                      seed=args.seed, progress=False,
                                      max_files=args.max_files)
        stages[name] = result.model
        info.update({f"{name}_steps": result.train.step, f"{name}_last_loss": result.metrics["last_loss"]})
        info_file.write_text(json.dumps(info))
    train_s = time.perf_counter() - start

    if args.choice_temperature is not None:
        for stage in stages.values():
            stage.config.choice_temperature = args.choice_temperature
    if args.top_k is not None:
        for stage in stages.values():
            stage.config.top_k = args.top_k or None
    storm = stages["soundstorm"]
    full = MusicLM(AudioLM(wav2vec=wav2vec, codec=codec, semantic_transformer=semantic, soundstorm=storm), quantizer)
    no_semantic = MusicLM(AudioLM(codec=codec, soundstorm=stages["soundstorm-mulan-only"]), quantizer)
    torch.set_grad_enabled(False)  # evaluation from here on
    table = instrument_table(scorer)
    text_b = torch.cat([scorer.get_text_latents(raw_texts=prompts[i:i + 32]) for i in range(0, len(prompts), 32)])
    results: dict = {}
    generated: dict[str, torch.Tensor] = {}
    for name, model in (("semantic_stage", full), ("no_semantic_stage", no_semantic)):
        audio, scores, gen_s = generate_all(model, prompts, args.seconds, args.num_samples, args.seed)
        p, n, t = audio.shape
        latents = embed(scorer, audio.reshape(p * n, t), codec.sample_rate).reshape(p, n, -1)
        predicted = (latents @ table.t()).argmax(-1)  # (P, N)
        reranked = (predicted[:, 0] == targets).float().mean()  # sample 0 is the best by the conditioning MuLaN
        sample_order = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(i))[0]
                                    for i in range(p)])
        unranked = (predicted[torch.arange(p), sample_order] == targets).float().mean()
        mcc = (latents[:, 0] * text_b).sum(-1).mean()
        mcc_all = (latents * text_b[:, None, :]).sum(-1).mean()
        results[name] = {"instrument_accuracy_reranked": round(float(reranked), 4),
                         "instrument_accuracy_no_rerank": round(float(unranked), 4),
                         "instrument_accuracy_all_samples": round(float((predicted == targets[:, None]).float().mean()),
                                                                  4),
                         "mcc_best": round(float(mcc), 4), "mcc_all_samples": round(float(mcc_all), 4),
                         "generation_s": round(gen_s, 1)}
        generated[name] = latents.reshape(p * n, -1)

    # references: real test clips with their own captions, their codec resynthesis, an untrained model
    count = generated["semantic_stage"].shape[0]
    real_items = [i for i in load_audio_folder(corpus, 16000, split="test")][:count]
    length = int(args.seconds * 16000)
    real = torch.stack([F.pad(i.audio, (0, max(0, length - i.audio.numel())))[:length] for i in real_items])
    real_latents = embed(scorer, real, 16000)
    real_text = scorer.get_text_latents(raw_texts=[i.caption for i in real_items])
    resynth = codec.reconstruct(real)
    resynth_latents = embed(scorer, resynth, codec.sample_rate)
    untrained = MusicLM(AudioLM(wav2vec=wav2vec, codec=codec, semantic_transformer=semantic_model(),
                                soundstorm=SoundStorm(ConformerWrapper.from_config(storm.net.get_config()),
                                                      soundstream=codec, steps=8)), quantizer)
    un_audio, _, _ = generate_all(untrained, prompts, args.seconds, args.num_samples, args.seed)
    un_latents = embed(scorer, un_audio.reshape(-1, un_audio.shape[-1]), codec.sample_rate)
    fd = {"generated_semantic_stage": frechet(generated["semantic_stage"], real_latents),
          "generated_no_semantic_stage": frechet(generated["no_semantic_stage"], real_latents),
          "codec_resynthesis_floor": frechet(resynth_latents, real_latents),
          "untrained_model_ceiling": frechet(un_latents, real_latents)}
    real_acc = float(((real_latents @ table.t()).argmax(-1) == torch.tensor(
        [INSTRUMENT_NAMES.index(i.tags["instrument"]) for i in real_items])).float().mean())

    # time to generate 10 s, num_samples=4, per stage
    details = full.audio_lm.generate(4, seconds=10.0, semantic_cond=full.conditioning(prompts[0])[0],
                                     acoustic_cond=full.conditioning(prompts[0])[1], seed=0, return_details=True)
    start = time.perf_counter()
    rerank_scores = full(prompts[0], num_samples=4, seconds=10.0, seed=0, return_all=True)
    total_10s = time.perf_counter() - start

    report = {
        "goal_instrument_accuracy": GOAL, "chance": round(1 / len(INSTRUMENT_NAMES), 4),
        "prompts": len(prompts), "num_samples": args.num_samples, "seconds": args.seconds,
        "results": results,
        "choice_temperature": {k: v.config.choice_temperature for k, v in stages.items()},
        "top_k": {k: v.config.top_k for k, v in stages.items()},
        "scorer_on_real_test_clips": {"instrument_accuracy": round(real_acc, 4),
                                      "mcc_own_captions": round(float((real_latents * real_text).sum(-1).mean()), 4),
                                      "clips": len(real_items)},
        "frechet_distance_scorer_space": {k: round(v, 4) for k, v in fd.items()}, "fd_clips_each": count,
        "time_10s_num_samples_4": {**{k: round(v, 2) for k, v in details.timings.items()},
                                   "musiclm_call_total_s": round(total_10s, 2),
                                   "best_score": round(float(rerank_scores.scores[0]), 4)},
        "training": {"mulan_s": round(mulan_s, 1), "scorer_mulan_s": round(scorer_s, 1), "prep_s": round(prep_s, 1),
                     "musiclm_stages_s": round(train_s - prep_s, 1), **info,
                     "tokenizer": {k: v for k, v in tok_metrics.items() if k in ("code_usage", "perplexity",
                                                                                 "instrument", "pitch_class")}},
        "budget": {"minutes_musiclm_stages": args.minutes, "acoustic_precision": args.acoustic_precision,
                   "mulan_minutes_each": args.mulan_minutes,
                   "threads": args.threads, "wall_s": round(time.perf_counter() - wall, 1),
                   "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, shared with other jobs"},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
