"""`soundweave train mulan`, `soundweave eval mulan`, `soundweave embed`, and the "mulan" demo step."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import ConfigError, DataError
from .common import console, done, print_json
from .groups import app, eval_app, train_app


@train_app.command("mulan")
def train_mulan_cmd(
    data: str = typer.Option(
        ..., "--data", help="Manifest folder (audio + captions.jsonl), e.g. from `soundweave data synth`; or "
        "WebDataset shards (a folder from `soundweave data shard`, 'DIR/train-{000000..000099}.tar', http(s):// "
        "URLs) or hf://datasets/NAME, streamed."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Run folder: checkpoints, log.csv, eval.csv and the final model/."
    ),
    text_tower: str = typer.Option(
        "minilm",
        "--text-tower",
        help="'minilm' (pretrained all-MiniLM-L6-v2, offline, frozen), 'scratch' "
        "(a TextTransformer with a BPE trained on the captions), or an HF id/folder.",
    ),
    steps: int = typer.Option(2000, "--steps", help="Optimizer steps."),
    batch_size: int = typer.Option(
        64, "--batch-size", help="Clips per batch; each clip's negatives are the other clips of its batch "
        "(the global batch: under accelerate launch, the clips of every process)."
    ),
    grad_accum: int = typer.Option(
        1, "--grad-accum", help="Batches per optimizer step (gradients averaged; negatives stay per batch)."
    ),
    grad_cache_chunk: int = typer.Option(
        0,
        "--grad-cache-chunk",
        help="GradCache: the whole batch stays one contrastive problem while only this many clips' "
        "activations are held at a time (0 = off).",
    ),
    size: str = typer.Option("small", "--size", help="Model size preset: tiny | small | base | paper (AST and "
                             "text tower at MuLan's ViT/BERT-base size; GPUs)."),
    lr: float = typer.Option(5e-4, "--lr", help="Peak learning rate (AdamW, warm-up then cosine)."),
    seconds: float = typer.Option(4.0, "--seconds", help="Training window length (random crop) in seconds."),
    min_seconds: float = typer.Option(
        0.0, "--min-seconds", help="Train on excerpts of a random length between this and --seconds (0 = whole "
        "windows), so the model also hears short audio - e.g. 1.5 when it will score short continuations."),
    loss: str = typer.Option("infonce", "--loss", help="Contrastive loss: infonce | decoupled | sigmoid."),
    bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast (about 4x faster matmuls on a CPU "
                                  "with native bf16 - AVX512-BF16 / AMX; emulated and many times slower on other "
                                  "CPUs: a warning says so)."),
    ema: float = typer.Option(0.0, "--ema", help="EMA decay of the published weights (0 = off, e.g. 0.999)."),
    eval_every: int = typer.Option(
        0, "--eval-every", help="Evaluate on the valid split every K steps (0 = off)."
    ),
    save_every: int = typer.Option(0, "--save-every", help="Checkpoint every K steps (0 = only at the end)."),
    log_every: int = typer.Option(10, "--log-every", help="Write a row of log.csv every K steps."),
    workers: int = typer.Option(0, "--workers", help="Data loader worker processes (0 = load in the training "
                                "process; 2-8 for streamed shards)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    seed: int = typer.Option(0, "--seed", help="Seed for data order and initialisation."),
) -> None:
    """Train MuLaN (audio spectrogram transformer + text tower) contrastively on captioned audio."""
    from ..runtime import seed_everything
    from ..training.mulan import MuLaNTrainConfig, train_mulan

    seed_everything(seed)
    config = MuLaNTrainConfig(
        data=str(data),
        out=str(out),
        text_tower=text_tower,
        size=size,
        steps=steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        grad_cache_chunk=grad_cache_chunk or None,
        lr=lr,
        seconds=seconds,
        min_seconds=min_seconds or None,
        loss=loss,
        precision="bf16" if bf16 else "fp32",
        ema_decay=ema or None,
        eval_every=eval_every,
        save_every=save_every or steps,
        log_every=log_every,
        num_workers=workers,
        resume=resume,
        seed=seed,
    )
    result = train_mulan(config)
    summary = {
        "step": result.train.step,
        "last_loss": result.train.last_loss,
        "elapsed_s": round(result.train.elapsed, 1),
    }
    if result.evals:
        summary["last_eval"] = result.evals[-1]
    print_json(summary)
    done(f"trained MuLaN for {result.train.step} steps", result.model_dir, out / "log.csv")


@eval_app.command("mulan")
def eval_mulan_cmd(
    model: Path = typer.Option(..., "--model", help="A MuLaN folder (config.json + model.safetensors)."),
    data: Path = typer.Option(..., "--data", help="Manifest folder with a test split."),
    split: str = typer.Option("test", "--split", help="Split to evaluate: train | valid | test."),
    max_clips: int = typer.Option(
        200, "--max-clips", help="Evaluate on the first N clips of the split (0 = all)."
    ),
    seconds: float = typer.Option(4.0, "--seconds", help="Window (from the start) of each clip in seconds."),
) -> None:
    """Print JSON: text->audio and audio->text R@1/5/10, and zero-shot accuracy per tag (instrument, tempo,
    mode) from caption templates."""
    from ..models.mulan import MuLaN
    from ..training.mulan import evaluate_mulan

    mulan = MuLaN.from_pretrained(model)
    metrics = evaluate_mulan(mulan, data, split=split, max_clips=max_clips or None, seconds=seconds)
    print_json({"model": str(model), "data": str(data), "split": split, **metrics})


@app.command("embed")
def embed_cmd(
    files: list[Path] = typer.Argument(..., help="Audio files to embed."),
    model: Path = typer.Option(..., "--model", help="A MuLaN folder."),
    out: Path = typer.Option(Path("embeddings"), "--out", help="Folder for one <name>.npy per file."),
    text: list[str] = typer.Option(
        [], "--text", help="Also embed this caption (repeatable); writes texts.npy."
    ),
) -> None:
    """Write MuLaN audio embeddings (unit-norm, dim_latent floats) as .npy; long files are windowed."""
    import numpy as np
    import torch

    from ..audio import load
    from ..models.mulan import MuLaN

    mulan = MuLaN.from_pretrained(model)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    names: set[str] = set()
    for file in files:
        audio, sr = load(file, max_seconds=None)
        with torch.no_grad():
            latent = mulan.get_audio_latents(audio, sample_rate=sr)[0].cpu().numpy()
        name = file.stem
        while name in names:
            name += "_"
        names.add(name)
        np.save(out / f"{name}.npy", latent.astype(np.float32))
        written.append(out / f"{name}.npy")
    if text:
        with torch.no_grad():
            latents = mulan.get_text_latents(raw_texts=list(text)).cpu().numpy()
        np.save(out / "texts.npy", latents.astype(np.float32))
        (out / "texts.json").write_text(json.dumps(list(text), indent=1))
        written.append(out / "texts.npy")
    done(f"{len(files)} audio embedding(s) of dim {mulan.dim_latent}", *written)


# -- demo -------------------------------------------------------------------------------------------------

DEMO_QUERIES = (
    "a slow piano melody",
    "fast rock drums",
    "a deep bassline",
    "a flute playing a bright tune",
    "a distorted guitar",
)


def demo(
    ctx,
    steps: int = 150,
    batch_size: int = 32,
    size: str = "small",
    top_k: int = 3,
    queries: tuple[str, ...] = DEMO_QUERIES,
    text_tower: str = "minilm",
) -> None:
    """Train MuLaN briefly on the demo corpus, then retrieve clips for a few text queries."""
    import torch

    from ..data.dataset import CaptionedAudioDataset, collate_audio
    from ..training.mulan import MuLaNTrainConfig, evaluate_mulan, train_mulan

    corpus = ctx.need_corpus()
    out = ctx.step_dir("mulan")
    config = MuLaNTrainConfig(
        data=str(corpus),
        out=str(out / "run"),
        text_tower=text_tower,
        size=size,
        steps=steps,
        batch_size=batch_size,
        lr=1e-3,
        warmup_steps=steps // 10,
        precision="bf16",
        seed=ctx.seed,
        progress=True,
    )
    try:
        result = train_mulan(config)
    except DataError as exc:
        raise ConfigError(f"the MuLaN demo step needs a corpus with a train split: {exc}") from exc
    mulan = result.model.eval()
    ctx.add_output(
        "mulan", f"MuLaN trained for {result.train.step} steps ({text_tower} text tower)", result.model_dir
    )
    # rank every clip of the corpus (all splits) for each query
    clips = CaptionedAudioDataset(
        corpus, split=None, sample_rate=mulan.sample_rate, seconds=4.0, crop="start"
    )
    batch = collate_audio([clips[i] for i in range(len(clips))])
    with torch.no_grad():
        audio = torch.cat(
            [
                mulan.get_audio_latents(batch["audio"][i : i + 32], mask=batch["mask"][i : i + 32])
                for i in range(0, len(clips), 32)
            ]
        )
        text = mulan.get_text_latents(raw_texts=list(queries))
    sims = text @ audio.t()
    ranked = []
    for qi, query in enumerate(queries):
        top = sims[qi].topk(min(top_k, len(clips)))
        hits = [
            {
                "rank": r + 1,
                "score": round(float(s), 4),
                "path": clips.records[int(i)].path,
                "caption": clips.records[int(i)].caption,
                "instrument": clips.records[int(i)].tags.get("instrument"),
            }
            for r, (s, i) in enumerate(zip(top.values, top.indices, strict=True))
        ]
        ranked.append({"query": query, "results": hits})
        console.print(f"[bold]{query!r}[/bold]")
        for hit in hits:
            console.print(f"  {hit['rank']}. {hit['score']:+.3f}  {hit['path']}  - {hit['caption']}")
    metrics = evaluate_mulan(mulan, corpus, split="test", max_clips=200)
    console.print(
        "held-out test split: "
        + ", ".join(f"{k}={v:.3g}" for k, v in metrics.items() if not k.endswith("_chance"))
    )
    report = {
        "queries": ranked,
        "test_metrics": metrics,
        "train_steps": result.train.step,
        "train_seconds": round(result.train.elapsed, 1),
        "model": str(result.model_dir),
    }
    path = out / "retrieval.json"
    path.write_text(json.dumps(report, indent=2))
    ctx.add_output("mulan", f"top-{top_k} clips for {len(queries)} text queries + test metrics", path)
