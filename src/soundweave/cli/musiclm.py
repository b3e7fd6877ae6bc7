"""`soundweave train semantic-tokenizer`, `soundweave train semantic`, `soundweave generate music`, the
conditioned acoustic stage behind `soundweave train soundstorm --semantic ... --mulan ...`, and the
"musiclm" demo step.

A MusicLM folder holds semantic_tokenizer/, mulan_quantizer/, semantic_transformer/ and soundstorm/ (with
its codec); the three train commands fill it when their --out points inside it:

    soundweave train semantic-tokenizer --data corpus --out runs/musiclm/semantic_tokenizer
    soundweave train semantic --data corpus --tokenizer runs/musiclm/semantic_tokenizer \\
        --mulan runs/mulan/model --out runs/musiclm
    soundweave train soundstorm --data corpus --codec runs/codec --out runs/musiclm/soundstorm \\
        --semantic runs/musiclm/semantic_tokenizer --mulan runs/musiclm/mulan_quantizer
    soundweave generate music "a slow piano melody" --model runs/musiclm --seconds 10 --num-samples 4 --out music
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from ..errors import ConfigError
from .common import console, done, print_json
from .groups import generate_app, train_app

DEMO_PROMPTS = ("a slow piano melody", "fast rock drums", "a bright marimba arpeggio")


class StageProgress:
    """Rich progress bars, one per pipeline stage, driven by `callback(stage, done, total)`."""

    LABELS = {"semantic": "semantic tokens", "acoustic": "SoundStorm passes", "rerank": "MuLaN rerank"}

    def __init__(self, enabled: bool = True):
        self.enabled, self.tasks = enabled, {}

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=console, transient=False)
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()

    def __call__(self, stage: str, completed: int, total: int) -> None:
        if not self.enabled:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(self.LABELS.get(stage, stage), total=total)
        self.progress.update(self.tasks[stage], completed=completed, total=total)


def load_quantizer_or_mulan(path: Path, namespaces: tuple[str, ...], conditioning_dims: tuple[int, ...],
                            rq_num_quantizers: int = 8, codebook_size: int = 1024):
    """A MuLaNEmbedQuantizer folder as is; a MuLaN folder wrapped in a fresh quantizer (fitted in training)."""
    from ..models.base import read_config, resolve_pretrained
    from ..models.mulan import MuLaN, MuLaNEmbedQuantizer

    folder = resolve_pretrained(path)
    kind = read_config(folder).get("_class")
    if kind == "MuLaNEmbedQuantizer":
        return MuLaNEmbedQuantizer.from_pretrained(folder)
    if kind == "MuLaN":
        return MuLaNEmbedQuantizer(MuLaN.from_pretrained(folder), conditioning_dims=conditioning_dims,
                                   namespaces=namespaces, rq_num_quantizers=rq_num_quantizers,
                                   codebook_size=codebook_size)
    raise ConfigError(f"--mulan {str(path)!r} holds a {kind}; give a MuLaN folder (soundweave train mulan -> "
                      "OUT/model) or a MuLaNEmbedQuantizer folder (soundweave train semantic -> OUT/mulan_quantizer)")


@train_app.command("semantic-tokenizer")
def train_semantic_tokenizer_cmd(
        data: Path = typer.Option(..., "--data", help="Manifest folder (audio + captions.jsonl) or a folder of audio."),
        out: Path = typer.Option(..., "--out", help="Folder for the tokenizer (config.json + model.safetensors)."),
        codebook_size: int = typer.Option(512, "--codebook-size", help="K, the number of semantic units."),
        features: str = typer.Option("music", "--features",
                                     help="'music' (hand-made MFCC/chroma/onset features, offline) or a transformers "
                                          "model: facebook/w2v-bert-2.0, facebook/hubert-base-ls960, m-a-p/MERT-v0, "
                                          "or a folder."),
        layer: int = typer.Option(None, "--layer", help="Hidden layer of a transformers model (presets know theirs)."),
        rate: float = typer.Option(25.0, "--rate", help="Semantic tokens per second."),
        max_frames: int = typer.Option(100_000, "--max-frames", help="Frames sampled for k-means."),
        iters: int = typer.Option(100, "--iters", help="Mini-batch k-means iterations."),
        seed: int = typer.Option(0, "--seed", help="Seed of the frame sample and k-means++.")) -> None:
    """Fit the semantic tokenizer (mini-batch k-means++ on a sample of frames) and report code usage and
    purity / PNMI against the corpus's own labels (instrument; pitch class and drum onsets from MIDI)."""
    from rich.progress import Progress

    from ..training.semantic import train_semantic_tokenizer

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("features", total=None)
        result = train_semantic_tokenizer(data, out, codebook_size=codebook_size, features=features, layer=layer,
                                          rate=rate, max_frames=max_frames, iters=iters, seed=seed,
                                          progress=lambda d, t: bar.update(task, completed=d, total=t))
    (Path(out) / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    print_json(result.metrics)
    done("semantic tokenizer fitted", result.model_dir)


@train_app.command("semantic")
def train_semantic_cmd(
        data: Path = typer.Option(..., "--data", help="Manifest folder (captions are mixed in) or a folder of audio."),
        tokenizer: Path = typer.Option(..., "--tokenizer", help="SemanticTokenizer folder (train semantic-tokenizer)."),
        mulan: Path = typer.Option(..., "--mulan", help="MuLaN folder (train mulan -> OUT/model) or a "
                                                        "MuLaNEmbedQuantizer folder."),
        out: Path = typer.Option(..., "--out", help="MusicLM folder: writes semantic_transformer/, mulan_quantizer/ "
                                                    "and semantic_tokenizer/ in it."),
        dim: int = typer.Option(256, "--dim", help="Transformer width."),
        depth: int = typer.Option(4, "--depth", help="Transformer blocks."),
        heads: int = typer.Option(4, "--heads", help="Attention heads."),
        steps: int = typer.Option(2000, "--steps", help="Optimizer steps."),
        batch_size: int = typer.Option(16, "--batch-size", help="Crops per step."),
        seconds: float = typer.Option(4.0, "--seconds", help="Crop length in seconds."),
        lr: float = typer.Option(3e-4, "--lr", help="Peak learning rate."),
        cond_drop_prob: float = typer.Option(0.2, "--cond-drop-prob", help="Share of items trained unconditioned "
                                                                           "(classifier-free guidance)."),
        text_mix_prob: float = typer.Option(0.25, "--text-mix-prob", help="Share of items conditioned on their "
                                                                          "caption's MuLaN text tokens."),
        namespaces: str = typer.Option("semantic,coarse,fine", "--namespaces",
                                       help="Quantizer namespaces (when --mulan is a MuLaN folder)."),
        cond_dim: int = typer.Option(256, "--cond-dim", help="Width of the conditioning tokens (new quantizer)."),
        rq_quantizers: int = typer.Option(8, "--rq-quantizers", help="MuLaN RVQ levels (new quantizer)."),
        rq_codebook: int = typer.Option(1024, "--rq-codebook", help="MuLaN RVQ codebook size (new quantizer)."),
        bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast."),
        seed: int = typer.Option(0, "--seed", help="Seed.")) -> None:
    """Train the SemanticTransformer on MuLaN-conditioned semantic ids of the clips."""
    from ..models.semantic_tokenizer import SemanticTokenizer
    from ..models.semantic_transformer import SemanticTransformer
    from ..training.semantic import SemanticTransformerTrainer

    names = tuple(n.strip() for n in namespaces.split(",") if n.strip())
    quantizer = load_quantizer_or_mulan(mulan, names, (cond_dim,) * len(names), rq_quantizers, rq_codebook)
    wav2vec = SemanticTokenizer.from_pretrained(tokenizer)
    width = quantizer.projections["semantic"].out_features if "semantic" in quantizer.projections else cond_dim
    model = SemanticTransformer(num_semantic_tokens=wav2vec.codebook_size, dim=dim, depth=depth, heads=heads,
                                dim_head=max(2, dim // heads), audio_text_condition=True, cond_dim=width,
                                cond_drop_prob=cond_drop_prob, rate=wav2vec.rate)
    trainer = SemanticTransformerTrainer(model, wav2vec, audio_conditioner=quantizer, folder=data,
                                         batch_size=batch_size, data_max_length_seconds=seconds,
                                         num_train_steps=steps, lr=lr, warmup_steps=steps // 20,
                                         results_folder=out, text_mix_prob=text_mix_prob,
                                         mixed_precision="bf16" if bf16 else "no", seed=seed)
    result = trainer.train()
    quantizer.save_pretrained(Path(out) / "mulan_quantizer")
    wav2vec.save_pretrained(Path(out) / "semantic_tokenizer")
    losses = result.losses
    print_json({"steps": result.step, "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None, "parameters": model.num_parameters(),
                "elapsed_s": round(result.elapsed, 2)})
    done("semantic transformer trained", Path(out) / "semantic_transformer", Path(out) / "mulan_quantizer")


def train_conditioned_soundstorm(data: Path, codec: Path, out: Path, semantic: Path | None, mulan: Path | None,
                                 namespace: str, **kwargs) -> None:
    """`soundweave train soundstorm --semantic/--mulan`: the MusicLM acoustic stage."""
    from ..models.semantic_tokenizer import SemanticTokenizer
    from ..training.acoustic import train_acoustic_stage

    wav2vec = SemanticTokenizer.from_pretrained(semantic) if semantic is not None else None
    quantizer = None
    if mulan is not None:
        quantizer = load_quantizer_or_mulan(mulan, ("semantic", "coarse", "fine"), (256, 256, 256))
    result = train_acoustic_stage(data, codec, out, wav2vec=wav2vec, quantizer=quantizer, namespace=namespace,
                                  **kwargs)
    print_json({"clips": result.num_clips, "namespace": result.namespace,
                "parameters": result.model.net.num_parameters(), **result.metrics})
    done("conditioned SoundStorm trained (with its codec attached)", result.model_dir)


@generate_app.command("music")
def generate_music_cmd(
        prompt: str = typer.Argument(..., help="The text to make music for, e.g. \"a slow piano melody\"."),
        model: Path = typer.Option(..., "--model", help="MusicLM folder (semantic_tokenizer/, mulan_quantizer/, "
                                                        "semantic_transformer/, soundstorm/), e.g. the demo's."),
        out: Path = typer.Option(Path("music"), "--out", help="Folder for the wavs, PNGs and results.json."),
        seconds: float = typer.Option(10.0, "--seconds", help="Length of each sample in seconds."),
        num_samples: int = typer.Option(4, "--num-samples", help="Samples drawn in one batch; ranked by MuLaN."),
        cond_scale: float = typer.Option(3.0, "--cond-scale", help="Classifier-free guidance scale (1 = off)."),
        temperature: float = typer.Option(0.95, "--temperature", help="Semantic sampling temperature."),
        top_k: int = typer.Option(0, "--top-k", help="Keep the k likeliest semantic tokens (0 = all)."),
        choice_temperature: float = typer.Option(None, "--choice-temperature",
                                                 help="SoundStorm's MaskGIT choice noise (default: the value "
                                                      "stored with the model; 0 keeps the likeliest tokens, "
                                                      "often one held tone)."),
        acoustic_top_k: int = typer.Option(None, "--acoustic-top-k",
                                           help="SoundStorm's top-k (default: the value stored with the model; "
                                                "0 = all codes)."),
        continue_: Path = typer.Option(None, "--continue", help="An audio file to continue (it starts the output)."),
        seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same music."),
        bf16: bool = typer.Option(False, "--bf16", help="Run the networks in bf16 autocast.")) -> None:
    """Text to music: MuLaN tokens -> semantic tokens -> SoundStorm -> codec, best of N by MuLaN. Writes
    every sample (rank 0 = best) as wav + spectrogram PNG, and results.json with prompt, seed and scores."""
    from ..audio import load
    from ..pipelines.musiclm import MusicLM
    from ..runtime import pick_device

    if choice_temperature is not None and not choice_temperature >= 0:
        raise ConfigError(f"--choice-temperature must be >= 0, got {choice_temperature}")
    if acoustic_top_k is not None and acoustic_top_k < 0:
        raise ConfigError(f"--acoustic-top-k must be >= 0 (0 = all codes), got {acoustic_top_k}")
    musiclm = MusicLM.from_pretrained(model, device=pick_device())
    prime = prime_sr = None
    if continue_ is not None:
        prime, prime_sr = load(continue_)
    with StageProgress() as progress:
        result = musiclm(prompt, num_samples=num_samples, seconds=seconds, cond_scale=cond_scale,
                         temperature=temperature, top_k=top_k or None, seed=seed, return_all=True, prime_wave=prime,
                         prime_wave_sample_rate=prime_sr, precision="bf16" if bf16 else "fp32", callback=progress,
                         acoustic_choice_temperature=choice_temperature, acoustic_top_k=acoustic_top_k)
    report = write_music(result, out, prime=prime, prime_sr=prime_sr)
    print_json(report)
    done(f"{num_samples} sample(s) for {prompt!r} (best first)", out)


def write_music(result, out: Path, stem: str = "music", prime=None, prime_sr=None) -> dict:
    """wav + spectrogram PNG per sample and `<stem>.json`; returns the report."""
    from ..audio import save
    from ..audio.spectrogram_png import save_spectrograms

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for rank, (audio, score) in enumerate(zip(result.audio, result.scores.tolist(), strict=True)):
        wav = save(out / f"{stem}-{rank}.wav", audio, result.sample_rate)
        rows = [(f"rank {rank}, MuLaN score {score:.3f}: {result.prompt}", audio, result.sample_rate)]
        if prime is not None:
            rows.insert(0, ("continued from", prime, prime_sr))
        png = save_spectrograms(out / f"{stem}-{rank}.png", rows)
        files.append({"rank": rank, "score": round(score, 4), "wav": str(wav), "png": str(png)})
    report = {"prompt": result.prompt, "seed": result.seed, "sample_rate": result.sample_rate,
              "seconds": round(result.audio.shape[-1] / result.sample_rate, 3), "num_samples": len(files),
              "scores": [f["score"] for f in files], "samples": files,
              "timings_s": {k: round(v, 3) for k, v in result.timings.items()}}
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    return report


def demo(ctx, mulan_steps: int = 80, semantic_seconds: float = 75.0, acoustic_seconds: float = 75.0,
         seconds: float = 4.0, num_samples: int = 4, prompts: tuple[str, ...] = DEMO_PROMPTS) -> None:
    """Train (or reuse) the MusicLM parts on the demo corpus within a few minutes, then write music for three
    prompts (wav + spectrogram PNG + scores) to OUT/musiclm/."""
    import torch

    from ..models.codecs.spectral import SpectralCodec
    from ..models.mulan import MuLaN, MuLaNEmbedQuantizer
    from ..models.semantic_transformer import SemanticTransformer
    from ..pipelines.audiolm import AudioLM
    from ..pipelines.musiclm import MusicLM
    from ..training.acoustic import train_acoustic_stage
    from ..training.semantic import SemanticTransformerTrainer, load_audio_folder, train_semantic_tokenizer

    corpus = ctx.need_corpus()
    out = ctx.step_dir("musiclm")
    parts = out / "model"
    torch.manual_seed(ctx.seed)
    mulan_dir = ctx.model_of("mulan")
    if mulan_dir is not None:
        console.print(f"  using the MuLaN trained by the mulan step: {mulan_dir}")
        mulan = MuLaN.from_pretrained(mulan_dir)
    else:
        from ..training.mulan import MuLaNTrainConfig, train_mulan

        console.print("  training a tiny MuLaN first (the mulan step did not run; it trains a better one)")
        mulan = train_mulan(MuLaNTrainConfig(data=str(corpus), out=str(out / "mulan"), size="tiny",
                                             steps=mulan_steps, batch_size=16, lr=1e-3, warmup_steps=mulan_steps // 10,
                                             precision="bf16", seed=ctx.seed)).model
    start = time.perf_counter()
    tok = train_semantic_tokenizer(corpus, parts / "semantic_tokenizer", codebook_size=128, seed=ctx.seed)
    wav2vec = tok.tokenizer
    console.print(f"  semantic tokenizer: {wav2vec.codebook_size} units, code usage {tok.metrics['code_usage']:.2f}, "
                  f"instrument PNMI {tok.metrics.get('instrument', {}).get('pnmi', float('nan')):.3f} "
                  f"({time.perf_counter() - start:.0f} s)")
    quantizer = MuLaNEmbedQuantizer(mulan, conditioning_dims=(128, 128), namespaces=("semantic", "coarse"),
                                    rq_num_quantizers=4, codebook_size=64)
    codec = SpectralCodec()
    codec.fit([item.audio for item in load_audio_folder(corpus, codec.sample_rate)])
    semantic = SemanticTransformer(num_semantic_tokens=wav2vec.codebook_size, dim=128, depth=3, heads=4, dim_head=32,
                                   audio_text_condition=True, cond_dim=128, cond_drop_prob=0.2, rate=wav2vec.rate)
    trainer = SemanticTransformerTrainer(semantic, wav2vec, audio_conditioner=quantizer, folder=corpus, batch_size=16,
                                         data_max_length_seconds=4.0, num_train_steps=100_000, lr=2e-3,
                                         warmup_steps=20, results_folder=out / "semantic-run", seed=ctx.seed,
                                         mixed_precision="bf16")
    trainer.train(max_seconds=semantic_seconds)
    acoustic = train_acoustic_stage(corpus, codec, out / "soundstorm-run", wav2vec=wav2vec, quantizer=quantizer,
                                    namespace="coarse", steps=100_000, batch_size=8, seconds=2.0, dim=128, depth=2,
                                    max_seconds=acoustic_seconds, bf16=True, seed=ctx.seed)
    musiclm = MusicLM(AudioLM(wav2vec=wav2vec, codec=codec, semantic_transformer=semantic,
                              soundstorm=acoustic.model), quantizer)
    musiclm.save_pretrained(parts)
    ctx.add_output("musiclm", "MusicLM parts (tokenizer, quantizer, semantic transformer, SoundStorm + codec)", parts)
    summary = {"semantic_steps": trainer.result.step, "semantic_last_loss": trainer.result.last_loss,
               "acoustic_steps": acoustic.train.step, "acoustic_last_loss": acoustic.metrics["last_loss"],
               "tokenizer": tok.metrics, "prompts": {}}
    for i, prompt in enumerate(prompts):
        with StageProgress() as progress:
            result = musiclm(prompt, num_samples=num_samples, seconds=seconds, seed=ctx.seed + i, return_all=True,
                             temperature=0.95, callback=progress)
        stem = "-".join(prompt.split()[:4])
        report = write_music(result, out, stem=stem)
        summary["prompts"][prompt] = report
        console.print(f"  {prompt!r}: scores {report['scores']} -> {out / (stem + '-0.wav')}")
        ctx.add_output("musiclm", f"{prompt!r}: best of {num_samples} (wav + PNG + scores)", out / f"{stem}-0.wav")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    ctx.add_output("musiclm", "training and generation summary", out / "summary.json")
