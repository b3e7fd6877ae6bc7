"""Training SoundStorm for speech: codec codes conditioned on time-aligned phoneme units (`--semantic phonemes`).

    result = train_speech_soundstorm("data/speech", codec="runs/codec", out="runs/tts", steps=2000,
                                     text_to_semantic="runs/t2s")       # attached: generate(texts=...) works
    model = SoundStorm.from_pretrained("runs/tts")

The semantic tokens are the phoneme ids of the corpus's alignment at `unit_rate` per second (default 25 =
half the codec's 50 frames/s; `semantic_ratio` = 2 repeats each unit over two codec frames). The paper's
mask (prompt delimiter, level, cosine masking) is SoundStorm's own. For voice prompts: at inference the
prompt is another recording whose units are unknown, so half of the training items are laid out that way -
up to `prompt_seconds` of another clip of the same voice with pad units under it, then the clip with its
units (`SpeechCodeDataset`); and with probability `prompt_blank_prob` the units of a random prefix of an
item are blanked too, so the model learns to read a voice from codes without units under them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.dataset import CaptionedAudioDataset
from ..data.speech import PHONEMES, phoneme_units
from ..errors import ConfigError, DataError
from ..models.soundstorm import ConformerWrapper, SoundStorm
from ..models.text_to_semantic import TextToSemantic
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
    precompute_codes,
)
from .trainer import Trainer, TrainerConfig, TrainResult


def speech_units(codec: nn.Module, data: str | os.PathLike, split: str, codes: Sequence[torch.Tensor], ratio: int,
                 unit_rate: float) -> list[torch.Tensor]:
    """Phoneme units `(ceil(N_i / ratio),)` for each clip whose codes `(N_i, Q)` are given (same order)."""
    records = CaptionedAudioDataset(data, split=split, sample_rate=codec.sample_rate).records
    if len(records) != len(codes):
        raise DataError(f"{len(codes)} coded clips but {len(records)} records in split {split!r}")
    return [torch.from_numpy(phoneme_units(data, r, unit_rate, -(-c.shape[0] // ratio)))
            for r, c in zip(records, codes, strict=True)]


class SpeechCodeDataset(Dataset):
    """Items {"codes": (F, Q), "mask": (F,), "units": (F / ratio,)}: crops that start on a unit boundary.

    With `voices` (one speaker label per clip) and `prompt_units` > 0, an item is, with probability
    `prompt_prob`, the inference layout: up to `prompt_units` units' worth of codes of another clip of the same
    voice with pad units under them (the voice prompt), then the clip itself with its units."""

    def __init__(self, codes: Sequence[torch.Tensor], units: Sequence[torch.Tensor], ratio: int,
                 frames: int | None = None, random_crop: bool = True, voices: Sequence[str] | None = None,
                 prompt_units: int = 0, prompt_prob: float = 0.5, pad_id: int = -1):
        if not codes:
            raise DataError("no clips to train on")
        if frames is not None and frames % ratio:
            frames -= frames % ratio
        self.codes, self.units, self.ratio, self.frames, self.random_crop = list(codes), list(units), ratio, frames, \
            random_crop
        self.prompt_units, self.prompt_prob, self.pad_id = prompt_units, prompt_prob, pad_id
        self.same_voice: list[list[int]] = []
        if voices is not None and prompt_units > 0:
            groups: dict[str, list[int]] = {}
            for i, v in enumerate(voices):
                groups.setdefault(v, []).append(i)
            self.same_voice = [[j for j in groups[v] if j != i] for i, v in enumerate(voices)]

    def __len__(self) -> int:
        return len(self.codes)

    def _clip(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        codes, units, r = self.codes[index], self.units[index], self.ratio
        n_units = units.shape[0]
        codes = torch.cat([codes, codes.new_zeros(n_units * r - codes.shape[0], codes.shape[1])]) \
            if codes.shape[0] < n_units * r else codes[: n_units * r]
        return codes, units

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        codes, units = self._clip(index)
        r = self.ratio
        others = self.same_voice[index] if self.same_voice else []
        if others and self.random_crop and float(torch.rand(())) < self.prompt_prob:
            p_codes, p_units = self._clip(others[int(torch.randint(0, len(others), ()))])
            take = min(self.prompt_units, p_units.shape[0])
            start = int(torch.randint(0, p_units.shape[0] - take + 1, ()))
            codes = torch.cat([p_codes[start * r:(start + take) * r], codes])
            units = torch.cat([torch.full((take,), self.pad_id, dtype=units.dtype), units])
        n_units = units.shape[0]
        if self.frames is not None and n_units * r > self.frames:
            span = self.frames // r
            start = int(torch.randint(0, n_units - span + 1, ())) if self.random_crop else 0
            units = units[start:start + span]
            codes = codes[start * r:(start + span) * r]
        return {"codes": codes, "units": units, "mask": torch.ones(codes.shape[0], dtype=torch.bool)}


def collate_speech(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    length = max(item["codes"].shape[0] for item in items)
    n_units = max(item["units"].shape[0] for item in items)
    q = items[0]["codes"].shape[1]
    codes = torch.zeros(len(items), length, q, dtype=torch.long)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    units = torch.full((len(items), n_units), -1, dtype=torch.long)
    for i, item in enumerate(items):
        codes[i, : item["codes"].shape[0]] = item["codes"]
        mask[i, : item["codes"].shape[0]] = True
        units[i, : item["units"].shape[0]] = item["units"]
    return {"codes": codes, "mask": mask, "units": units}


def make_speech_step_fn(prompt_blank_prob: float = 0.5):
    def step(model: SoundStorm, batch: dict[str, torch.Tensor]):
        units = batch["units"]
        if model.training and prompt_blank_prob > 0:
            B, S = units.shape
            lengths = (units >= 0).sum(1)
            blank = torch.rand(B, device=units.device) < prompt_blank_prob
            cut = (torch.rand(B, device=units.device) * lengths.float() / 2).long() * blank
            units = units.masked_fill(torch.arange(S, device=units.device)[None] < cut[:, None],
                                      model.net.config.semantic_pad_id)
        return model(batch["codes"], cond_semantic_token_ids=units, mask=batch["mask"])
    return step


def make_speech_eval_fn(codes, units, ratio: int, frames: int | None, batch_size: int = 8, seed: int = 1234,
                        max_items: int = 32):
    data = SpeechCodeDataset(list(codes)[:max_items], list(units)[:max_items], ratio, frames, random_crop=False)
    batches = [collate_speech([data[i] for i in range(s, min(s + batch_size, len(data)))])
               for s in range(0, len(data), batch_size)]

    @torch.no_grad()
    def evaluate(model: SoundStorm, step: int) -> dict[str, float]:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        total, correct, count = 0.0, 0.0, 0.0
        for batch in batches:
            loss, parts = model(batch["codes"].to(device), cond_semantic_token_ids=batch["units"].to(device),
                                mask=batch["mask"].to(device), generator=generator)
            total += float(loss) * parts["masked_tokens"]
            correct += parts["accuracy"] * parts["masked_tokens"]
            count += parts["masked_tokens"]
        return {"valid_loss": total / max(count, 1.0), "valid_accuracy": correct / max(count, 1.0)}

    return evaluate


@dataclass
class SpeechSoundStormTrainResult:
    model: SoundStorm
    model_dir: Path
    train: TrainResult
    num_clips: int
    metrics: dict[str, float]


def train_speech_soundstorm(data: str | os.PathLike, codec: str | os.PathLike | nn.Module, out: str | os.PathLike, *,
                            steps: int = 2000, batch_size: int = 8, lr: float = 3e-4, warmup_steps: int = 100,
                            seconds: float | None = 6.0, preset: str = "small", dim: int | None = None,
                            depth: int | None = None, unit_rate: float | None = None, generation_steps: int = 16,
                            prompt_blank_prob: float = 0.25, prompt_seconds: float = 3.0, prompt_prob: float = 0.5,
                            text_to_semantic: str | os.PathLike | TextToSemantic | None = None,
                            net: ConformerWrapper | None = None, bf16: bool = False, seed: int = 0,
                            eval_every: int = 0, save_every: int = 0,
                            log_every: int = 10, max_seconds: float | None = None, resume: bool = False,
                            progress: bool = True, level0_share: float | None = LEVEL0_SHARE,
                            mask_embedding: str = MASK_EMBEDDING,
                            tie_embeddings: bool = TIE_EMBEDDINGS,
                            choice_temperature: float = CHOICE_TEMPERATURE,
                            top_k: int | None = TOP_K,
                            init_from: str | os.PathLike | None = None) -> SpeechSoundStormTrainResult:
    """Train SoundStorm on a speech corpus's codes conditioned on its phoneme units; save it (codec attached,
    and `text_to_semantic` attached when given) to `out`. `net` continues training a given network.
    `level0_share` / `mask_embedding` / `tie_embeddings` / `choice_temperature` / `top_k`: the recipe, as
    `train_soundstorm`. `init_from`: a saved speech SoundStorm folder whose network this run fine-tunes (fresh
    optimizer and schedule, e.g. a second phase at another `level0_share`); its TextToSemantic stays attached
    unless `text_to_semantic` names another. Not with `net`, `dim` or `depth`."""
    if init_from is not None:
        if net is not None or dim is not None or depth is not None:
            raise ConfigError("init_from fixes the network; do not also give net, dim or depth")
        start = SoundStorm.from_pretrained(init_from)  # fails before any work
        net = start.net
        if text_to_semantic is None:
            text_to_semantic = start.text_to_semantic
    out = Path(out)
    codec = as_codec(codec)
    codec.eval()
    t2s = None
    if text_to_semantic is not None:
        t2s = text_to_semantic if isinstance(text_to_semantic, nn.Module) else \
            TextToSemantic.from_pretrained(text_to_semantic)
    frame_rate = codec.sample_rate / codec.hop_length
    unit_rate = unit_rate or frame_rate / 2
    ratio = frame_rate / unit_rate
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ConfigError(f"unit_rate {unit_rate} must divide the codec's {frame_rate:g} frames/s (e.g. "
                          f"{frame_rate:g} or {frame_rate / 2:g})")
    ratio = int(round(ratio))
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    net_file = out / "soundstorm_net.json"
    if resume and net_file.is_file():
        net = ConformerWrapper.from_config(json.loads(net_file.read_text()))
    elif net is not None:  # continue from a given network (e.g. SoundStorm.from_pretrained(folder).net)
        if net.semantic_embeds is None or net.config.semantic_ratio != float(ratio):
            raise ConfigError(f"the given network must take phoneme units at semantic_ratio {ratio} (a speech "
                              "SoundStorm, trained with --semantic phonemes)")
        net.check_codec(codec)
    else:
        conformer: dict[str, Any] = {**PRESETS[preset], **{k: v for k, v in (("dim", dim), ("depth", depth)) if v}}
        net = ConformerWrapper(codebook_size=codec.codebook_size, num_quantizers=codec.num_quantizers,
                               conformer=conformer, num_semantic_token_ids=len(PHONEMES), semantic_ratio=float(ratio),
                               mask_embedding=mask_embedding, tie_embeddings=tie_embeddings)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "codes"
    train_codes = precompute_codes(codec, data, "train", cache, progress=progress)
    train_units = speech_units(codec, data, "train", train_codes, ratio, unit_rate)
    try:
        valid_codes = precompute_codes(codec, data, "valid", cache, progress=progress)
        valid_units = speech_units(codec, data, "valid", valid_codes, ratio, unit_rate)
    except DataError:
        valid_codes, valid_units = [], []
    net_file.write_text(json.dumps(net.get_config(), indent=2, sort_keys=True))
    level_probs = level_probs_for(level0_share, net.num_quantizers)
    model = SoundStorm(net, steps=generation_steps, level_probs=level_probs, choice_temperature=choice_temperature,
                       top_k=top_k)
    frames = codec.seconds_to_frames(seconds) if seconds else None
    voices = [r.tags.get("voice", "") for r in CaptionedAudioDataset(data, split="train",
                                                                       sample_rate=codec.sample_rate).records]
    prompt_units = int(round(prompt_seconds * unit_rate))
    dataset = SpeechCodeDataset(train_codes, train_units, ratio, frames, voices=voices, prompt_units=prompt_units,
                                prompt_prob=prompt_prob, pad_id=net.config.semantic_pad_id)
    config = TrainerConfig(out_dir=str(out), max_steps=steps, batch_size=min(batch_size, len(dataset)), lr=lr,
                           warmup_steps=min(warmup_steps, steps // 4), mixed_precision="bf16" if bf16 else "no",
                           eval_every=eval_every if valid_codes else 0, save_every=save_every, log_every=log_every,
                           seed=seed, progress=progress)
    eval_fn = make_speech_eval_fn(valid_codes, valid_units, ratio, frames) if valid_codes else None
    trainer = Trainer(model, dataset, make_speech_step_fn(prompt_blank_prob), config, collate_fn=collate_speech,
                      eval_fn=eval_fn)
    result = _fit(trainer, resume, steps, max_seconds)
    final = SoundStorm(trainer.final_model().net, soundstream=codec, steps=generation_steps,
                       spear_tts_text_to_semantic=t2s, level_probs=level_probs,
                       choice_temperature=choice_temperature, top_k=top_k).eval()
    # the default voice: the first `prompt_seconds` of the first training clip (its codes, saved in config.json)
    final.set_default_voice(train_codes[0][: max(ratio, (prompt_units or 1) * ratio)])
    final.save_pretrained(out)
    metrics = eval_fn(final, result.step) if eval_fn is not None else {}
    return SpeechSoundStormTrainResult(model=final, model_dir=out, train=result, num_clips=len(dataset),
                                       metrics=metrics)


__all__ = ["SpeechCodeDataset", "SpeechSoundStormTrainResult", "collate_speech", "make_speech_step_fn",
           "speech_units", "train_speech_soundstorm"]
