"""Training MusicLM's acoustic stage: SoundStorm on codec codes, conditioned on the time-aligned semantic
ids and on MuLaN tokens of its own namespace, with a dropped condition for classifier-free guidance.

    result = train_acoustic_stage("corpus", codec, "runs/soundstorm", wav2vec=wav2vec, quantizer=quantizer)
    soundstorm = result.model                     # codec attached; SoundStorm.from_pretrained(result.model_dir)

`wav2vec=None` trains the MuLaN-only baseline (no semantic stage); `quantizer=None` a semantic-only
SoundStorm. The semantic rate must divide the codec's frame rate (25 Hz ids under 50 Hz codes: ratio 2).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..models.mulan import MuLaNEmbedQuantizer
from ..models.semantic_tokenizer import SemanticTokenizer
from ..models.soundstorm import ConformerWrapper, SoundStorm
from .semantic import conditioning_ids, load_audio_folder
from .soundstorm import (
    CHOICE_TEMPERATURE,
    LEVEL0_SHARE,
    MASK_EMBEDDING,
    PRESETS,
    TIE_EMBEDDINGS,
    TOP_K,
    _fit,
    as_codec,
    level_probs_for,
)
from .trainer import Trainer, TrainerConfig, TrainResult


class AcousticCropDataset(Dataset):
    """Items {"codes": (F, Q), "mask": (F,), "semantic": (F / r,), "cond_ids": (q,)}: aligned random crops."""

    def __init__(self, codes: Sequence[torch.Tensor], semantic: Sequence[torch.Tensor] | None, ratio: int,
                 frames: int | None, audio_cond: torch.Tensor | None, text_cond: torch.Tensor | None,
                 text_mix_prob: float, seed: int = 0):
        self.codes, self.semantic, self.ratio = list(codes), semantic, ratio
        self.frames = None if frames is None else max(ratio, frames - frames % ratio)
        self.audio_cond, self.text_cond, self.text_mix_prob = audio_cond, text_cond, text_mix_prob
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        codes, r = self.codes[index], self.ratio
        n = codes.shape[0]
        frames = self.frames or n + (-n) % r
        start = 0
        if n > frames:
            start = int(torch.randint(0, (n - frames) // r + 1, (), generator=self.generator)) * r
        crop = codes[start:start + frames]
        mask = torch.zeros(frames, dtype=torch.bool)
        mask[:crop.shape[0]] = True
        item = {"codes": torch.cat([crop, crop.new_zeros(frames - crop.shape[0], crop.shape[1])]), "mask": mask}
        if self.semantic is not None:
            sem = self.semantic[index][start // r:(start + frames) // r]
            item["semantic"] = torch.cat([sem, sem.new_full((frames // r - sem.shape[0],), -1)])
        if self.audio_cond is not None:
            draw = float(torch.rand((), generator=self.generator))
            use_text = self.text_cond is not None and draw < self.text_mix_prob
            item["cond_ids"] = (self.text_cond if use_text else self.audio_cond)[index]
        return item


def collate(items):
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


@dataclass
class AcousticTrainResult:
    model: SoundStorm
    model_dir: Path
    train: TrainResult
    num_clips: int
    namespace: str | None
    metrics: dict[str, Any]


def train_acoustic_stage(data: str | os.PathLike, codec, out: str | os.PathLike, *,
                         wav2vec: SemanticTokenizer | None = None, quantizer: MuLaNEmbedQuantizer | None = None,
                         namespace: str = "coarse", steps: int = 2000, batch_size: int = 8, lr: float = 1e-3,
                         warmup_steps: int = 50, seconds: float | None = 2.0, preset: str = "tiny",
                         dim: int | None = None, depth: int | None = None, cond_mode: str = "adaln",
                         cond_drop_prob: float = 0.2, text_mix_prob: float = 0.25, generation_steps: int = 8,
                         max_seconds: float | None = None, max_files: int | None = None, bf16: bool = False,
                         seed: int = 0, progress: bool = True, level0_share: float | None = LEVEL0_SHARE,
                         mask_embedding: str = MASK_EMBEDDING,
                         tie_embeddings: bool = TIE_EMBEDDINGS,
                         choice_temperature: float = CHOICE_TEMPERATURE,
                         top_k: int | None = TOP_K) -> AcousticTrainResult:
    """Train SoundStorm on the codes of `codec` for the train clips of `data`, conditioned on `wav2vec`'s
    semantic ids and on `quantizer`'s `namespace` tokens; saved (with the codec) to `out`.
    `level0_share` / `mask_embedding` / `tie_embeddings` / `choice_temperature` / `top_k`: the recipe, as
    `train_soundstorm`."""
    if wav2vec is None and quantizer is None:
        raise ConfigError("give wav2vec= (semantic ids), quantizer= (MuLaN tokens) or both; for an unconditioned "
                          "SoundStorm use `soundweave train soundstorm` without them")
    codec = as_codec(codec)
    codec.eval()
    out = Path(out)
    ratio = 1
    if wav2vec is not None:
        if not wav2vec.is_fitted:
            raise ConfigError("the SemanticTokenizer is not fitted (first: soundweave train semantic-tokenizer)")
        r = codec.frame_rate / wav2vec.rate
        if abs(r - round(r)) > 1e-6 or round(r) < 1:
            raise ConfigError(f"the codec's {codec.frame_rate:g} frames/s are not a whole multiple of the tokenizer's "
                              f"{wav2vec.rate:g} tokens/s; pick a tokenizer rate that divides it")
        ratio = int(round(r))
    if quantizer is not None:
        quantizer._namespace(namespace)
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    items = load_audio_folder(data, codec.sample_rate, "train", max_files)
    codes = [codec.encode(item.audio[None])[0].long().cpu() for item in items]
    semantic = None
    if wav2vec is not None:
        semantic = [wav2vec(item.audio, input_sample_hz=codec.sample_rate)[0].cpu() for item in items]
    audio_cond = text_cond = None
    cond_dim = None
    if quantizer is not None:
        audio_cond, text_cond = conditioning_ids(quantizer, items, codec.sample_rate)
        cond_dim = quantizer.projections[namespace].out_features
    conformer = {**PRESETS[preset], **{k: v for k, v in dict(dim=dim, depth=depth).items() if v is not None}}
    net = ConformerWrapper(codebook_size=codec.codebook_size, num_quantizers=codec.num_quantizers, conformer=conformer,
                           num_semantic_token_ids=wav2vec.codebook_size if wav2vec is not None else None,
                           semantic_ratio=float(ratio) if wav2vec is not None else None, cond_dim=cond_dim,
                           cond_mode=cond_mode, mask_embedding=mask_embedding, tie_embeddings=tie_embeddings)
    level_probs = level_probs_for(level0_share, net.num_quantizers)
    model = SoundStorm(net, steps=generation_steps, cond_drop_prob=cond_drop_prob, level_probs=level_probs,
                       choice_temperature=choice_temperature, top_k=top_k)
    frames = codec.seconds_to_frames(seconds) if seconds is not None else None
    dataset = AcousticCropDataset(codes, semantic, ratio, frames, audio_cond, text_cond, text_mix_prob, seed)

    def step_fn(m: nn.Module, batch: dict[str, torch.Tensor]):
        cond = None
        if "cond_ids" in batch:
            with torch.no_grad():
                cond = quantizer.conds_from_ids(batch["cond_ids"], namespace)
        return m(batch["codes"], cond_semantic_token_ids=batch.get("semantic"), mask=batch["mask"], cond=cond)

    config = TrainerConfig(out_dir=str(out), max_steps=steps, batch_size=min(batch_size, len(dataset)), lr=lr,
                           warmup_steps=min(warmup_steps, steps // 4), mixed_precision="bf16" if bf16 else "no",
                           seed=seed, progress=progress)
    trainer = Trainer(model, dataset, step_fn, config, collate_fn=collate)
    result = _fit(trainer, False, steps, max_seconds)
    final = SoundStorm(trainer.eval_model.net, soundstream=codec, steps=generation_steps,
                       cond_drop_prob=cond_drop_prob, level_probs=level_probs,
                       choice_temperature=choice_temperature, top_k=top_k).eval()
    final.save_pretrained(out)
    losses = result.losses
    metrics = {"first_loss": sum(losses[:10]) / max(1, len(losses[:10])) if losses else None,
               "last_loss": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else None,
               "steps": result.step, "semantic_ratio": ratio if wav2vec is not None else None}
    return AcousticTrainResult(final, out, result, len(dataset), namespace if quantizer is not None else None, metrics)


__all__ = ["AcousticCropDataset", "AcousticTrainResult", "train_acoustic_stage"]
