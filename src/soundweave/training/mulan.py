"""Training and evaluation of MuLaN on a captioned-audio manifest folder.

    result = train_mulan(MuLaNTrainConfig(data="corpus", out="runs/mulan", text_tower="minilm", steps=2000))
    metrics = evaluate_mulan(result.model, "corpus", split="test")

Pieces: `build_mulan` (size presets and text towers), `ClipCache` (decode + resample each clip once,
crop a window per access), `TextFeatureCache` (a frozen text tower's outputs per caption, computed once),
`mulan_step_fn` / `grad_cache_backward` (one micro-batch / a GradCache step), `MuLaNEvaluator`
(retrieval R@k both ways and zero-shot tag accuracy with caption templates) and `train_mulan`.

Negatives and gradient accumulation: the Trainer's `batch_size` is the micro-batch; with `grad_accum = k`
an optimizer step is k micro-batches of `batch_size` clips, and each micro-batch is its own contrastive
problem (its negatives are only the other clips of that micro-batch); the step's gradient is the mean of
the k micro-batch gradients (tested in tests/nn/test_contrastive.py). More negatives than fit in memory
at once: `grad_cache_chunk = c` keeps each micro-batch of `batch_size` clips one contrastive problem while
holding only `c` clips' activations at a time (GradCache, Gao et al. 2021): latents are computed without
a graph, the full-batch loss gives their gradients, then each chunk is re-run (with the same random
SpecAugment draws) and back-propagated with those gradients. Its gradient equals the full-batch gradient
(tested).

Several processes (`accelerate launch ... soundweave train mulan`): `batch_size` is the global batch; each
process embeds its share and the contrastive loss gathers the latents of all processes with gradients, so every
clip's negatives are the whole global batch (`nn.distributed`, tested against one process). GradCache runs
on one process only. `data` may also be WebDataset shards or `hf://datasets/NAME` (streamed, see
`soundweave.data.shards`); evaluation then uses the first `eval_max_clips` clips of the valid split's stream.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.dataset import CaptionedAudioDataset, collate_audio, window
from ..data.manifest import read_manifest
from ..data.shards import ShardStream, is_stream, open_stream, stream_captions
from ..errors import ConfigError, DataError
from ..metrics.retrieval import recall_at_k
from ..models.base import atomic_write_bytes
from ..models.mulan import (
    AudioSpectrogramTransformer,
    MuLaN,
    PretrainedTextTransformer,
    TextTransformer,
    l2norm,
)
from ..models.tokenizers import CaptionTokenizer
from .trainer import Trainer, TrainerConfig, TrainResult


def _write_json(path: Path, data: Any) -> None:
    """Atomically (other processes of a multi-process run may be reading it)."""
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))

# -- model presets -----------------------------------------------------------------------------------

AUDIO_PRESETS: dict[str, dict[str, Any]] = {
    # tests: a few thousand parameters per layer
    "tiny": dict(
        dim=64,
        depth=1,
        heads=2,
        dim_head=32,
        spec_n_fft=512,
        spec_win_length=400,
        spec_hop_length=160,
        n_mels=32,
        patch_size=(16, 16),
        spec_aug_time_mask=10,
        spec_aug_freq_mask=4,
    ),
    # the README configuration (~3.2M parameters): trains on 2 CPU cores
    "small": dict(
        dim=256,
        depth=4,
        heads=4,
        dim_head=64,
        spec_n_fft=1024,
        spec_win_length=1024,
        spec_hop_length=256,
        n_mels=64,
        patch_size=(16, 16),
    ),
    "base": dict(
        dim=512,
        depth=6,
        heads=8,
        dim_head=64,
        spec_n_fft=1024,
        spec_win_length=800,
        spec_hop_length=160,
        n_mels=128,
        patch_size=(16, 16),
    ),
    # MuLan's (2208.12415) AST tower at ViT-Base size on 10 s log-mel (recipes; GPUs)
    "paper": dict(
        dim=768,
        depth=12,
        heads=12,
        dim_head=64,
        spec_n_fft=1024,
        spec_win_length=400,
        spec_hop_length=160,
        n_mels=128,
        patch_size=(16, 16),
    ),
}
TEXT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dim=64, depth=1, heads=2, dim_head=32),
    "small": dict(dim=256, depth=3, heads=4, dim_head=64),
    "base": dict(dim=512, depth=6, heads=8, dim_head=64),
    "paper": dict(dim=768, depth=12, heads=12, dim_head=64),  # BERT-base size, as MuLan's text tower
}
TEXT_TOWERS = ("minilm", "scratch")


def build_mulan(
    text_tower: str = "minilm",
    size: str = "small",
    sample_rate: int = 16000,
    captions: Sequence[str] | None = None,
    freeze_text: bool | None = None,
    loss: str = "infonce",
    tokenizer_vocab: int = 1000,
    max_seconds: float = 10.0,
) -> MuLaN:
    """A fresh MuLaN. text_tower: 'minilm' (pretrained, offline), 'scratch' (TextTransformer with a BPE
    trained on `captions`, or byte-level if none), or any HF id/folder. A pretrained tower is frozen by
    default (`freeze_text=None`)."""
    if size not in AUDIO_PRESETS:
        raise ConfigError(f"size must be one of {sorted(AUDIO_PRESETS)}, got {size!r}")
    audio = AudioSpectrogramTransformer(
        **AUDIO_PRESETS[size], sample_rate=sample_rate, max_seconds=max_seconds
    )
    if text_tower == "scratch":
        tokenizer = CaptionTokenizer.train(captions, vocab_size=tokenizer_vocab) if captions else None
        vocab = tokenizer.vocab_size if tokenizer is not None else 259
        text = TextTransformer(
            **TEXT_PRESETS[size], num_tokens=max(vocab, 259), max_seq_len=128, tokenizer=tokenizer
        )
    else:
        text = PretrainedTextTransformer(text_tower, freeze=True if freeze_text is None else freeze_text)
    return MuLaN(audio, text, dim_latent=128, loss=loss)


# -- data ----------------------------------------------------------------------------------------------


class ClipCache(Dataset):
    """A CaptionedAudioDataset whose clips are decoded and resampled once, kept (float16) in memory, and
    windowed on each access (random crop in training).

    `min_seconds` (random crop only): each access cuts a window of a random length between `min_seconds` and
    the dataset's window, padded back to the window with the mask off - so a MuLaN learns to hear short
    excerpts too (a 2.5 s continuation, a 1.5 s prompt), not only whole clips."""

    def __init__(self, base: CaptionedAudioDataset, crop: str | None = None, min_seconds: float | None = None):
        if base.num_samples is None:
            raise DataError("ClipCache needs a dataset with a fixed window (seconds=...)")
        self.base, self.crop = base, crop or base.crop
        self.min_samples = None
        if min_seconds is not None:
            if self.crop != "random":
                raise ConfigError(f"min_seconds needs crop='random', got crop={self.crop!r}")
            if not 0 < min_seconds <= base.seconds:
                raise ConfigError(f"min_seconds must be in (0, {base.seconds}] (the window), got {min_seconds}")
            self.min_samples = max(1, round(min_seconds * base.sample_rate))
        self.cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.base)

    def clip(self, index: int) -> torch.Tensor:
        if index not in self.cache:
            audio, _ = self.base.load_clip(index)
            self.cache[index] = audio.to(torch.float16)
        return self.cache[index].float()

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.base.records[index]
        clip, length = self.clip(index), self.base.num_samples
        if self.min_samples is not None and self.min_samples < length:
            short = int(torch.randint(self.min_samples, length + 1, (1,)))
            audio, mask = window(clip, short, "random")
            pad = length - short
            audio, mask = nn.functional.pad(audio, (0, pad)), nn.functional.pad(mask, (0, pad), value=False)
        else:
            audio, mask = window(clip, length, self.crop)
        return {
            "audio": audio,
            "mask": mask,
            "sample_rate": self.base.sample_rate,
            "caption": record.caption,
            "tags": record.tags,
            "path": record.path,
            "index": index,
        }


class TextFeatureCache:
    """Pooled outputs of a frozen text tower, computed once per distinct caption."""

    def __init__(self, model: MuLaN, batch_size: int = 64):
        if not isinstance(model.text, PretrainedTextTransformer) or not model.text.freeze:
            raise ConfigError("a text feature cache needs a frozen pretrained text tower")
        self.model, self.batch_size = model, batch_size
        self.features: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def add(self, captions: Sequence[str]) -> None:
        todo = sorted({c for c in captions if c not in self.features})
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            device = self.model.device.type
            with torch.autocast(device_type=device, enabled=False):  # full-precision features, once
                feats = self.model.text.embed_texts(chunk).float().cpu()
            self.features.update(zip(chunk, feats, strict=True))

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        self.add(captions)
        return torch.stack([self.features[c] for c in captions])


def _unwrap(model: nn.Module) -> MuLaN:
    while hasattr(model, "module"):
        model = model.module
    return model


def mulan_step_fn(text_cache: TextFeatureCache | None = None):
    """step_fn for the Trainer: one micro-batch's contrastive loss (negatives = the micro-batch)."""

    def step(model: nn.Module, batch: dict[str, Any]):
        feats = text_cache(batch["captions"]) if text_cache is not None else None
        raw = None if feats is not None else batch["captions"]
        loss = model(batch["audio"], raw_texts=raw, wav_mask=batch["mask"], text_features=feats)
        return loss, {"scale": float(_unwrap(model).contrastive.scale.detach())}

    return step


def grad_cache_backward(
    model: nn.Module,
    wavs: torch.Tensor,
    mask: torch.Tensor | None = None,
    captions: Sequence[str] | None = None,
    text_features: torch.Tensor | None = None,
    texts: torch.Tensor | None = None,
    chunk_size: int = 16,
    scale: float = 1.0,
) -> torch.Tensor:
    """GradCache: back-propagate the full-batch contrastive loss in chunks of `chunk_size` items.

    Accumulates `scale * d(loss)/d(params)` into `.grad` and returns the (detached) loss. The gradient is
    the one the whole batch would give at once; peak activation memory is one chunk's.
    """
    m = _unwrap(model)
    b = wavs.shape[0]
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    slices = [slice(i, min(b, i + chunk_size)) for i in range(0, b, chunk_size)]

    def encode(sl):
        a = m.get_audio_latents(wavs[sl], mask=None if mask is None else mask[sl], long_audio="crop")
        t = m.get_text_latents(
            None if texts is None else texts[sl],
            None if captions is None else list(captions[sl]),
            text_features=None if text_features is None else text_features[sl],
        )
        return a, t

    states, audio, text = [], [], []
    with torch.no_grad():
        for sl in slices:
            states.append(torch.get_rng_state())
            a, t = encode(sl)
            audio.append(a)
            text.append(t)
    audio_all = torch.cat(audio).detach().requires_grad_(True)
    text_all = torch.cat(text).detach().requires_grad_(True)
    loss = m.contrastive(text_all, audio_all)
    (loss * scale).backward()
    after = torch.get_rng_state()
    for sl, state in zip(slices, states, strict=True):
        torch.set_rng_state(state)  # the same SpecAugment / patch-dropout draws as the first pass
        a, t = encode(sl)
        torch.autograd.backward([a, t], [audio_all.grad[sl].to(a.dtype), text_all.grad[sl].to(t.dtype)])
    torch.set_rng_state(after)
    return loss.detach()


def grad_cache_step_fn(chunk_size: int, grad_accum: int = 1, text_cache: TextFeatureCache | None = None):
    """step_fn running `grad_cache_backward` itself; returns a graph-free loss for logging (the Trainer's own
    backward of it is a no-op for the parameters)."""

    def step(model: nn.Module, batch: dict[str, Any]):
        feats = text_cache(batch["captions"]) if text_cache is not None else None
        loss = grad_cache_backward(
            model,
            batch["audio"],
            batch["mask"],
            None if feats is not None else batch["captions"],
            text_features=feats,
            chunk_size=chunk_size,
            scale=1.0 / grad_accum,
        )
        return loss.requires_grad_(True), {"scale": float(_unwrap(model).contrastive.scale.detach())}

    return step


# -- evaluation -------------------------------------------------------------------------------------------

ZERO_SHOT_TAGS = ("instrument", "tempo", "mode")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "instrument": ("{}", "solo {}", "{} music", "a recording of {}", "{} playing"),
    "tempo": ("{} music", "a {} piece", "{} tempo"),
    "mode": ("music in a {} key", "a piece in {}", "{} key"),
}
CLASS_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "tempo": {"slow": ("slow",), "medium": ("mid-tempo", "moderate"), "fast": ("fast", "up-tempo")},
    "mode": {"major": ("major",), "minor": ("minor",)},
}


def class_prompts(tag: str, value: str) -> list[str]:
    """The caption templates used for zero-shot classification of `tag == value`."""
    words = CLASS_WORDS.get(tag, {}).get(value, (value,))
    return [t.format(w) for t in TEMPLATES.get(tag, ("{}",)) for w in words]


class MuLaNEvaluator:
    """Retrieval (text->audio and audio->text R@1/5/10) and zero-shot tag accuracy on one split.

    Clips are loaded once (start window of `seconds`, or whole clips up to the AST's max length when
    None): `max_clips` of the split starting at clip `first_clip` (e.g. a held-out set of prompts after the
    ones used for tuning). Captions and class prompts go through `text_cache` when the text tower is frozen.
    """

    def __init__(
        self,
        data: str | Path,
        split: str = "test",
        sample_rate: int = 16000,
        seconds: float | None = 4.0,
        max_clips: int | None = 200,
        batch_size: int = 32,
        tags: Sequence[str] = ZERO_SHOT_TAGS,
        first_clip: int = 0,
    ):
        if isinstance(first_clip, bool) or not isinstance(first_clip, int) or first_clip < 0:
            raise ConfigError(f"first_clip must be a non-negative integer, got {first_clip!r}")
        if is_stream(data):  # max_clips clips of the split's stream from first_clip on, in shard order
            stream = open_stream(str(data), split, sample_rate=sample_rate, seconds=seconds, crop="start",
                                 shuffle=False, split_nodes=False)
            items = list(itertools.islice(stream, first_clip, None if max_clips is None else first_clip + max_clips))
            if not items:
                raise DataError(f"the {split!r} stream of {str(data)!r} has no clips from clip {first_clip} on")
            all_tags = [item["tags"] for item in items]
        else:
            self.dataset = CaptionedAudioDataset(
                data, split=split, sample_rate=sample_rate, seconds=seconds, crop="start"
            )
            end = len(self.dataset) if max_clips is None else min(first_clip + max_clips, len(self.dataset))
            if first_clip >= len(self.dataset):
                raise DataError(f"first_clip={first_clip} but the {split!r} split of {str(data)!r} has "
                                f"{len(self.dataset)} clips")
            items = [self.dataset[i] for i in range(first_clip, end)]
            all_tags = [r.tags for r in read_manifest(data)]
        batch = collate_audio(items)
        self.audio, self.mask = batch["audio"], batch["mask"]
        self.captions, self.records_tags = batch["captions"], batch["tags"]
        self.batch_size, self.sample_rate = batch_size, sample_rate
        self.classes: dict[str, list[str]] = {}
        for tag in tags:
            values = sorted({str(t[tag]) for t in all_tags if tag in t})
            if len(values) >= 2:
                self.classes[tag] = values

    @torch.no_grad()
    def audio_latents(self, model: MuLaN) -> torch.Tensor:
        out = []
        for i in range(0, self.audio.shape[0], self.batch_size):
            out.append(
                model.get_audio_latents(
                    self.audio[i : i + self.batch_size],
                    sample_rate=self.sample_rate,
                    mask=self.mask[i : i + self.batch_size],
                )
                .float()
                .cpu()
            )
        return torch.cat(out)

    @torch.no_grad()
    def text_latents(self, model: MuLaN, texts: Sequence[str], text_cache: TextFeatureCache | None = None):
        out = []
        for i in range(0, len(texts), self.batch_size):
            chunk = list(texts[i : i + self.batch_size])
            feats = text_cache(chunk) if text_cache is not None else None
            out.append(
                model.get_text_latents(raw_texts=None if feats is not None else chunk, text_features=feats)
                .float()
                .cpu()
            )
        return torch.cat(out)

    @torch.no_grad()
    def __call__(self, model: MuLaN, text_cache: TextFeatureCache | None = None) -> dict[str, float]:
        was = model.training
        model.eval()
        audio = self.audio_latents(model)
        text = self.text_latents(model, self.captions, text_cache)
        sim = text @ audio.t()
        metrics: dict[str, float] = {"clips": float(audio.shape[0])}
        metrics.update({f"text_to_audio_{k}": v for k, v in recall_at_k(sim).items()})
        metrics.update({f"audio_to_text_{k}": v for k, v in recall_at_k(sim.t()).items()})
        for tag, values in self.classes.items():
            keep = [i for i, t in enumerate(self.records_tags) if tag in t and str(t[tag]) in values]
            if not keep:
                continue
            prototypes = []
            for value in values:
                prompts = self.text_latents(model, class_prompts(tag, value), text_cache)
                prototypes.append(l2norm(prompts.mean(0)))
            pred = (audio[keep] @ torch.stack(prototypes).t()).argmax(-1)
            truth = torch.tensor([values.index(str(self.records_tags[i][tag])) for i in keep])
            metrics[f"zero_shot_{tag}_acc"] = float((pred == truth).float().mean())
            metrics[f"zero_shot_{tag}_chance"] = 1.0 / len(values)
        model.train(was)
        return metrics


def evaluate_mulan(
    model: MuLaN,
    data: str | Path,
    split: str = "test",
    max_clips: int | None = 200,
    seconds: float | None = 4.0,
    batch_size: int = 32,
) -> dict[str, float]:
    """The metrics `soundweave eval mulan` prints (see MuLaNEvaluator)."""
    evaluator = MuLaNEvaluator(
        data,
        split=split,
        sample_rate=model.sample_rate,
        seconds=seconds,
        max_clips=max_clips,
        batch_size=batch_size,
    )
    cache = None
    if isinstance(model.text, PretrainedTextTransformer) and model.text.freeze:
        cache = TextFeatureCache(model)
    return evaluator(model, cache)


# -- training ---------------------------------------------------------------------------------------------


@dataclass
class MuLaNTrainConfig:
    data: str
    out: str
    text_tower: str = "minilm"  # 'minilm' | 'scratch' | an HF id/folder
    freeze_text: bool | None = None  # None: frozen for a pretrained tower
    size: str = "small"
    steps: int = 2000
    batch_size: int = 64
    grad_accum: int = 1
    grad_cache_chunk: int | None = None
    lr: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    seconds: float = 4.0
    min_seconds: float | None = None  # random-length excerpts of min_seconds..seconds (ClipCache)
    sample_rate: int = 16000
    loss: str = "infonce"
    precision: str = "fp32"  # or 'bf16'
    ema_decay: float | None = None
    eval_every: int = 0
    eval_split: str = "valid"
    eval_max_clips: int = 200
    save_every: int = 0
    log_every: int = 10
    seed: int = 0
    progress: bool = True
    resume: bool = False
    num_workers: int = 0  # DataLoader workers (e.g. 2-8 for streamed shards: decoding runs beside training)

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.grad_cache_chunk is not None and self.grad_cache_chunk < 1:
            raise ConfigError(f"grad_cache_chunk must be >= 1, got {self.grad_cache_chunk}")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError("steps must be >= 1 and batch_size >= 2 (in-batch negatives need two items)")
        if self.min_seconds is not None and not 0 < self.min_seconds <= self.seconds:
            raise ConfigError(f"min_seconds must be in (0, seconds={self.seconds}], got {self.min_seconds}")


@dataclass
class MuLaNTrainResult:
    model: MuLaN
    model_dir: Path
    train: TrainResult
    evals: list[dict[str, float]] = field(default_factory=list)


MODEL_CONFIG_NAME = "mulan_config.json"


def train_mulan(config: MuLaNTrainConfig, model: MuLaN | None = None) -> MuLaNTrainResult:
    """Train MuLaN on `config.data` (a manifest folder), write checkpoints/logs under `config.out` and the
    final (EMA, if on) model to `config.out/model`."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    streaming = is_stream(config.data)
    if streaming and config.min_seconds is not None:
        raise ConfigError("min_seconds (random-length excerpts) needs a manifest folder, not streamed shards")
    if streaming:
        train_set = open_stream(config.data, "train", sample_rate=config.sample_rate, seconds=config.seconds,
                                crop="random", seed=config.seed)
        captions = stream_captions(train_set) if isinstance(train_set, ShardStream) else None
    else:
        train_set = CaptionedAudioDataset(
            config.data, split="train", sample_rate=config.sample_rate, seconds=config.seconds, crop="random"
        )
        captions = train_set.captions
    if model is None:
        saved = out / MODEL_CONFIG_NAME
        if config.resume and saved.is_file():  # the exact architecture (and trained tokenizer) of the run
            model = MuLaN.from_config(json.loads(saved.read_text()))
        else:
            model = build_mulan(
                config.text_tower,
                config.size,
                config.sample_rate,
                captions=captions,
                freeze_text=config.freeze_text,
                loss=config.loss,
            )
    _write_json(out / MODEL_CONFIG_NAME, model.get_config())
    text_cache = None
    if isinstance(model.text, PretrainedTextTransformer) and model.text.freeze:
        # filled lazily, batch by batch: on --resume the checkpoint's weights are loaded first
        text_cache = TextFeatureCache(model)
    evaluator = None
    if config.eval_every:
        evaluator = MuLaNEvaluator(
            config.data,
            split=config.eval_split,
            sample_rate=config.sample_rate,
            seconds=config.seconds,
            max_clips=config.eval_max_clips,
        )
    start = time.perf_counter()

    def eval_fn(m: nn.Module, step: int) -> dict[str, float]:
        metrics = evaluator(_unwrap(m), text_cache) if evaluator is not None else {}
        metrics["train_time_s"] = time.perf_counter() - start
        return metrics

    if config.grad_cache_chunk:
        step_fn = grad_cache_step_fn(config.grad_cache_chunk, config.grad_accum, text_cache)
    else:
        step_fn = mulan_step_fn(text_cache)
    tcfg = TrainerConfig(
        out_dir=str(out),
        max_steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=min(config.warmup_steps, config.steps // 4),
        grad_accum=config.grad_accum,
        mixed_precision="bf16" if config.precision == "bf16" else "no",
        ema_decay=config.ema_decay,
        eval_every=config.eval_every if evaluator else 0,
        save_every=config.save_every,
        log_every=config.log_every,
        seed=config.seed,
        progress=config.progress,
        num_workers=config.num_workers,
    )
    trainer = Trainer(
        model,
        train_set if streaming else ClipCache(train_set, min_seconds=config.min_seconds),
        step_fn,
        tcfg,
        collate_fn=collate_audio,
        eval_fn=eval_fn if evaluator else None,
    )
    if config.grad_cache_chunk and trainer.accelerator.num_processes > 1:
        raise ConfigError("GradCache (grad_cache_chunk) runs on one process; with several processes the global "
                          "batch is already one contrastive problem (latents are gathered) - drop --grad-cache-chunk")
    result = trainer.fit(resume=config.resume)
    final = trainer.final_model()
    model_dir = out / "model"
    trainer.run_on_main(final.save_pretrained, model_dir)
    trainer.run_on_main(_write_json, out / "train_config.json", asdict(config))
    return MuLaNTrainResult(model=final, model_dir=model_dir, train=result, evals=result.evals)
