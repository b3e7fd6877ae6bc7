"""Training TextToSemantic on a speech corpus: caption text -> time-aligned phoneme units.

    result = train_text_to_semantic("data/speech", "runs/t2s", steps=2000)
    t2s = TextToSemantic.from_pretrained("runs/t2s")

Recipe (measured in benchmarks/tts_quality.py): teacher-forced cross-entropy on every unit and on each item's
EOS, padding ignored (never a target, masked as a key), the whole model trained (nothing frozen), AdamW with
warm-up + cosine decay through the one `Trainer`. The units are `unit_rate` frames per second of the clip's
phoneme alignment (default 25: half the 50 Hz codec frame rate; SoundStorm repeats each unit twice).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..data.manifest import read_manifest
from ..data.speech import PHONEMES, phoneme_units
from ..errors import ConfigError, DataError
from ..models.text_to_semantic import PAD, TextToSemantic
from .trainer import Trainer, TrainerConfig, TrainResult

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dim=64, source_depth=2, target_depth=2, heads=4, dim_head=16),
    "small": dict(dim=192, source_depth=3, target_depth=3, heads=4, dim_head=48),
    "base": dict(dim=512, source_depth=6, target_depth=6, heads=8, dim_head=64),
}
DEFAULT_UNIT_RATE = 25.0


def unit_sequences(data: str | os.PathLike, split: str | None, unit_rate: float = DEFAULT_UNIT_RATE
                   ) -> list[tuple[str, torch.Tensor]]:
    """(caption, units `(S,)` int64) for every clip of a speech corpus split."""
    records = read_manifest(data, split)
    if not records:
        raise DataError(f"no clips in {str(data)!r} for split {split!r}")
    out = []
    for record in records:
        seconds = float(record.tags.get("seconds", 0)) or None
        frames = max(1, int(round(seconds * unit_rate))) if seconds else None
        out.append((record.caption, torch.from_numpy(phoneme_units(data, record, unit_rate, frames))))
    return out


class TextUnitDataset(Dataset):
    def __init__(self, pairs: Sequence[tuple[str, torch.Tensor]]):
        if not pairs:
            raise DataError("no (text, units) pairs to train on")
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        text, units = self.pairs[index]
        return {"text": text, "units": units}


def collate_text_units(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{"texts": list[str], "target": (B, S) int64 padded with -1}."""
    length = max(int(item["units"].shape[0]) for item in items)
    target = torch.full((len(items), length), PAD, dtype=torch.long)
    for i, item in enumerate(items):
        target[i, : item["units"].shape[0]] = item["units"]
    return {"texts": [item["text"] for item in items], "target": target}


def t2s_step_fn(model: TextToSemantic, batch: dict[str, Any]):
    return model(batch["texts"], batch["target"])


def make_t2s_eval_fn(pairs: Sequence[tuple[str, torch.Tensor]], batch_size: int = 16, max_items: int = 64):
    """eval_fn(model, step) -> teacher-forced valid loss / accuracy / EOS accuracy on held-out pairs."""
    data = TextUnitDataset(list(pairs)[:max_items])
    batches = [collate_text_units([data[i] for i in range(s, min(s + batch_size, len(data)))])
               for s in range(0, len(data), batch_size)]

    @torch.no_grad()
    def evaluate(model: TextToSemantic, step: int) -> dict[str, float]:
        was = model.training
        model.eval()
        total, acc, eos, count, n = 0.0, 0.0, 0.0, 0.0, 0
        for batch in batches:
            loss, parts = model(batch["texts"], batch["target"])
            total += float(loss) * parts["tokens"]
            acc += parts["accuracy"] * parts["tokens"]
            eos += parts["eos_accuracy"] * len(batch["texts"])
            count += parts["tokens"]
            n += len(batch["texts"])
        model.train(was)
        return {"valid_loss": total / max(count, 1), "valid_accuracy": acc / max(count, 1),
                "valid_eos_accuracy": eos / max(n, 1)}

    return evaluate


@dataclass
class TextToSemanticTrainResult:
    model: TextToSemantic
    model_dir: Path
    train: TrainResult
    num_pairs: int
    metrics: dict[str, float]


def build_text_to_semantic(preset: str = "small", num_semantic_token_ids: int = len(PHONEMES),
                           **overrides: Any) -> TextToSemantic:
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    config = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return TextToSemantic(num_semantic_token_ids=num_semantic_token_ids, **config)


def train_text_to_semantic(data: str | os.PathLike | Sequence[tuple[str, torch.Tensor]], out: str | os.PathLike, *,
                           steps: int = 2000, batch_size: int = 16, lr: float = 1e-3, warmup_steps: int = 100,
                           preset: str = "small", dim: int | None = None, depth: int | None = None,
                           model: TextToSemantic | None = None, unit_rate: float = DEFAULT_UNIT_RATE,
                           dropout: float = 0.1,
                           bf16: bool = False, seed: int = 0, resume: bool = False, eval_every: int = 0,
                           save_every: int = 0, log_every: int = 10, max_seconds: float | None = None,
                           progress: bool = True) -> TextToSemanticTrainResult:
    """Train a TextToSemantic on a speech corpus folder (train split; valid split evaluated) or on given
    (text, units) pairs, and save it to `out` (config.json + model.safetensors)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (str, os.PathLike)):
        pairs = unit_sequences(data, "train", unit_rate)
        try:
            valid = unit_sequences(data, "valid", unit_rate)
        except DataError:
            valid = []
    else:
        pairs, valid = list(data), []
    if model is None:
        model = build_text_to_semantic(preset, dim=dim, source_depth=depth, target_depth=depth, dropout=dropout,
                                       max_target_len=max(1024, 2 * max(int(u.shape[0]) for _, u in pairs) + 2))
    dataset = TextUnitDataset(pairs)
    config = TrainerConfig(out_dir=str(out / "train"), max_steps=steps, batch_size=min(batch_size, len(dataset)),
                           lr=lr, warmup_steps=min(warmup_steps, steps // 4), mixed_precision="bf16" if bf16 else "no",
                           eval_every=eval_every if valid else 0, save_every=save_every, log_every=log_every,
                           seed=seed, progress=progress)
    eval_fn = make_t2s_eval_fn(valid) if valid else None
    trainer = Trainer(model, dataset, t2s_step_fn, config, collate_fn=collate_text_units, eval_fn=eval_fn)
    start = time.perf_counter()
    if max_seconds is None:
        result = trainer.fit(resume=resume)
    else:
        result = TrainResult(step=trainer.step)
        chunk, first = max(1, min(steps // 20, 25)), True
        while first or (trainer.step < steps and time.perf_counter() - start < max_seconds):
            part = trainer.fit(resume=resume if first else False, stop_at=min(steps, trainer.step + chunk))
            first = False
            result.losses += part.losses
            result.evals += part.evals
            result.step = part.step
        result.elapsed = time.perf_counter() - start
    trained: TextToSemantic = trainer.final_model()
    trained.eval()
    trained.save_pretrained(out)
    metrics = eval_fn(trained, result.step) if eval_fn is not None else {}
    return TextToSemanticTrainResult(model=trained, model_dir=out, train=result, num_pairs=len(dataset),
                                     metrics=metrics)


__all__ = ["PRESETS", "TextToSemanticTrainResult", "TextUnitDataset", "build_text_to_semantic",
           "collate_text_units", "make_t2s_eval_fn", "t2s_step_fn", "train_text_to_semantic", "unit_sequences"]
