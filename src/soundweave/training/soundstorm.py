"""Training SoundStorm on the codes of a codec.

    result = train_soundstorm("corpus", codec="runs/codec", out="runs/soundstorm", steps=2000)
    model = SoundStorm.from_pretrained("runs/soundstorm")      # the codec comes with it: audio out

Pieces: `precompute_codes` (every clip encoded once by the frozen codec; cached on disk under a key
made of the codec's config and weights, the manifest and the split, so a changed codec or corpus is
re-encoded), `CodeDataset` (random crops of `frames` frames, shorter clips padded with a mask),
`collate_codes`, `soundstorm_step_fn`, `make_eval_fn` (masked-token loss and accuracy on held-out codes,
same masks every time) and `train_soundstorm`, which the CLI calls.

Streaming: `data` may be WebDataset shards written with the same codec (`soundweave data shard MANIFEST --codec
CODEC`): `CodeStream` then crops the stored codes (no audio decoded); shards of another codec are refused.
Several processes: `batch_size` is the global batch, split across processes; the final model is written by
the main process.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from ..data.dataset import CaptionedAudioDataset
from ..data.manifest import manifest_path
from ..data.shards import ShardStream, is_stream
from ..errors import ConfigError, DataError
from ..models.base import PretrainedModel, atomic_write_bytes
from ..models.codecs import load_codec
from ..models.soundstorm import ConformerWrapper, SoundStorm
from .trainer import Trainer, TrainerConfig, TrainResult

NET_CONFIG_NAME = "soundstorm_net.json"

# ConformerWrapper conformer presets; `dim`/`depth` etc. can be overridden one by one
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dim=64, depth=2, heads=4, dim_head=16),
    "small": dict(dim=256, depth=4, heads=4, dim_head=64),
    "base": dict(dim=512, depth=6, heads=8, dim_head=64),
    # the paper's (2305.09636): 12 layers, 16 heads, dim 1024, FF 4096, conv kernel 5 (~350M with 12 x 1024 codes)
    "paper": dict(dim=1024, depth=12, heads=16, dim_head=64, ff_mult=4.0, conv_kernel_size=5),
}

# The training recipe (measured; README, SoundStorm, "The training recipe"): the paper trains the
# Q levels uniformly and gives masked tokens an embedding. On a CPU budget that leaves level 0 - which carries
# pitch and timbre - at the unigram. benchmarks/soundstorm_recipe.py (8 levels, dim 128 x 2, 1,200 steps): level-0
# accuracy with half the frames after the prompt masked is 4.5% for the paper's recipe, 6.3% with half the items on
# level 0 and a zero mask, 28.3% with 80% of them (the commonest code alone: 4.0%).
# Tying each level's output head to its input embeddings (`TIE_EMBEDDINGS`) then learns level 0 faster again: 57.6%
# at step 1,200 of benchmarks/soundstorm_recipe.py where separate heads reach 28.3% (copying the previous frame: 73%).
LEVEL0_SHARE = 0.8
MASK_EMBEDDING = "zero"
TIE_EMBEDDINGS = True
# Generation: the choice noise a trained model stores (SoundStorm `choice_temperature`, MaskGIT's annealed Gumbel
# noise on which tokens to keep). Without it a model fills the continuation with its most confident code - a held
# tone or silence. benchmarks/soundstorm_quality.py, 48 prompts, two sampling seeds: 0 -> 45.8% / 45.8%,
# 2 -> 56% / 62.5%, 4.5 -> 65% / 67%, 6 -> 68.8% / 68.8%, 9 -> 60% / 69% (README, SoundStorm).
CHOICE_TEMPERATURE = 6.0
# ... and top-k (SoundStorm `top_k`: each token drawn among its 20 likeliest codes). benchmarks/soundstorm_quality.py,
# the same 96 prompts and sampling seeds three times over: 66.0% of continuations keep the instrument with top-k 20,
# 61.8% without (+3, +6, +3 points per seed set); top-k 10 / 30 on one set: 63.5% / 59.4%. Neutral for MusicLM
# (41.2% either way) and text to speech (voice 0.20 vs 0.18, WER 0.79 vs 0.78).
TOP_K: int | None = 20


def level_probs_for(level0_share: float | None, num_quantizers: int) -> list[float] | None:
    """SoundStorm `level_probs` that train level 0 on `level0_share` of the items and the other levels uniformly
    on the rest (None: all levels uniformly, as the paper)."""
    if level0_share is None:
        return None
    if not 0.0 < level0_share <= 1.0:
        raise ConfigError(f"level0_share must be in (0, 1] or None, got {level0_share!r}")
    if num_quantizers == 1:
        return [1.0]
    rest = (1.0 - level0_share) / (num_quantizers - 1)
    return [level0_share] + [rest] * (num_quantizers - 1)


# -- codes ---------------------------------------------------------------------------------------------
def as_codec(codec: str | os.PathLike | nn.Module) -> nn.Module:
    """A codec instance as is, or any codec folder / hub id loaded with `load_codec`."""
    if isinstance(codec, nn.Module):
        return codec
    return load_codec(codec)


def codec_fingerprint(codec: nn.Module) -> str:
    """A hash of the codec's config and weights: the cache key part that says "same codec"."""
    h = hashlib.sha1()
    config = codec.get_config() if hasattr(codec, "get_config") else {}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(codec.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if tensor.numel() else b"")
    return h.hexdigest()


def _data_fingerprint(folder: Path, split: str | None, where: Any) -> str:
    h = hashlib.sha1()
    h.update(manifest_path(folder).read_bytes())
    h.update(repr((split, where)).encode())
    return h.hexdigest()


@torch.no_grad()
def precompute_codes(codec: nn.Module, data: str | os.PathLike, split: str | None = "train",
                     cache_dir: str | os.PathLike | None = None, where: Any = None, batch_size: int = 8,
                     progress: bool = False) -> list[torch.Tensor]:
    """Encode every clip of a manifest folder's split: a list of int64 `(N_i, Q)` code tensors.

    With `cache_dir`, the codes are stored there (`codes-<key>.safetensors`) and reused while the codec,
    the manifest and the split are unchanged. Clips of equal length are encoded together.
    """
    folder = Path(data)
    if not folder.is_dir():
        raise DataError(f"data folder {str(folder)!r} does not exist")
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha1((codec_fingerprint(codec) + _data_fingerprint(folder, split, where)).encode()).hexdigest()
        cache_file = Path(cache_dir) / f"codes-{split or 'all'}-{key[:16]}.safetensors"
        if cache_file.is_file():
            stored = load_file(str(cache_file))
            return list(torch.split(stored["codes"].long(), stored["lengths"].tolist()))
    dataset = CaptionedAudioDataset(folder, split=split, sample_rate=codec.sample_rate, where=where)
    if len(dataset) == 0:
        raise DataError(f"no clips in {str(folder)!r} for split {split!r}")
    was_training = codec.training
    codec.eval()
    clips = [dataset[i]["audio"] for i in range(len(dataset))]
    codes: list[torch.Tensor | None] = [None] * len(clips)
    by_length: dict[int, list[int]] = {}
    for i, clip in enumerate(clips):
        by_length.setdefault(clip.shape[-1], []).append(i)
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("encoding clips", total=len(clips))
    try:
        for indices in by_length.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                out = codec.encode(torch.stack([clips[i] for i in chunk])).long().cpu()
                for j, i in enumerate(chunk):
                    codes[i] = out[j]
                if bar is not None:
                    bar.update(task, advance=len(chunk))
    finally:
        if bar is not None:
            bar.stop()
        codec.train(was_training)
    if cache_file is not None:
        dtype = torch.int16 if codec.codebook_size <= 32767 else torch.int32
        tensors = {"codes": torch.cat(codes).to(dtype).contiguous(),
                   "lengths": torch.tensor([c.shape[0] for c in codes], dtype=torch.int64)}
        atomic_write_bytes(cache_file, lambda tmp: save_file(tensors, tmp))
    return codes


class CodeDataset(Dataset):
    """Items `{"codes": (F, Q) int64, "mask": (F,) bool}`: a random `frames`-long crop of each clip's codes
    (`frames=None`: whole clips); clips shorter than `frames` are padded (mask False)."""

    def __init__(self, codes: Sequence[torch.Tensor], frames: int | None = None, random_crop: bool = True):
        if not codes:
            raise DataError("no code sequences to train on")
        if frames is not None and frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        self.codes, self.frames, self.random_crop = list(codes), frames, random_crop

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        codes = self.codes[index]
        n = codes.shape[0]
        if self.frames is None or n == self.frames:
            return {"codes": codes, "mask": torch.ones(n, dtype=torch.bool)}
        if n > self.frames:
            start = int(torch.randint(0, n - self.frames + 1, ())) if self.random_crop else 0
            return {"codes": codes[start:start + self.frames], "mask": torch.ones(self.frames, dtype=torch.bool)}
        padded = torch.zeros(self.frames, codes.shape[1], dtype=codes.dtype)
        padded[:n] = codes
        mask = torch.zeros(self.frames, dtype=torch.bool)
        mask[:n] = True
        return {"codes": padded, "mask": mask}


class CodeStream(IterableDataset):
    """`CodeDataset` items from shards that carry `codes.npy` (a `ShardStream` read without decoding audio)."""

    def __init__(self, stream: ShardStream, frames: int | None = None, random_crop: bool = True):
        self.stream, self.frames, self.random_crop = stream, frames, random_crop

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)

    def skip_batches(self, batches: int, batch_size: int) -> None:
        self.stream.skip_batches(batches, batch_size)

    def __iter__(self):
        for item in self.stream:
            if "codes" not in item:
                raise DataError(f"shard sample {item['path']!r} has no codes; write the shards with "
                                "`soundweave data shard MANIFEST --out DIR --codec CODEC`")
            yield CodeDataset([item["codes"]], self.frames, self.random_crop)[0]


def _stream_codes(codec: nn.Module, data: str, split: str, seed: int, where: Any,
                  split_nodes: bool = True) -> ShardStream:
    stream = ShardStream(data, split, seed=seed, decode_audio=False, where=where, split_nodes=split_nodes)
    stored = stream.index.get("codec")
    if stored is None:
        raise DataError(f"the shards {data!r} carry no codes (no codec in their shards.json); write them with "
                        "`soundweave data shard MANIFEST --out DIR --codec CODEC`")
    if stored.get("fingerprint") != codec_fingerprint(codec):
        raise DataError(f"the codes in the shards {data!r} were made by another codec (or other weights) than "
                        "--codec; re-write the shards with this codec")
    return stream


def collate_codes(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad to the longest item: `{"codes": (B, F, Q) int64, "mask": (B, F) bool}`."""
    length = max(item["codes"].shape[0] for item in items)
    q = items[0]["codes"].shape[1]
    codes = torch.zeros(len(items), length, q, dtype=torch.long)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, item in enumerate(items):
        n = item["codes"].shape[0]
        codes[i, :n] = item["codes"]
        mask[i, :n] = item["mask"]
    return {"codes": codes, "mask": mask}


def soundstorm_step_fn(model: nn.Module, batch: dict[str, torch.Tensor]):
    """One micro-batch: the paper's masked-token loss."""
    return model(batch["codes"], mask=batch["mask"])


def make_eval_fn(codes: Sequence[torch.Tensor], frames: int | None = None, batch_size: int = 8,
                 seed: int = 1234, max_items: int = 64):
    """eval_fn(model, step) -> {"valid_loss", "valid_accuracy"} on held-out codes with fixed crops and masks."""
    data = CodeDataset(list(codes)[:max_items], frames, random_crop=False)
    batches = [collate_codes([data[i] for i in range(s, min(s + batch_size, len(data)))])
               for s in range(0, len(data), batch_size)]

    def evaluate(model: nn.Module, step: int) -> dict[str, float]:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        total, correct, count = 0.0, 0.0, 0.0
        for batch in batches:
            loss, parts = model(batch["codes"].to(device), mask=batch["mask"].to(device), generator=generator)
            n = parts["masked_tokens"]
            total += float(loss) * n
            correct += parts["accuracy"] * n
            count += n
        return {"valid_loss": total / max(count, 1.0), "valid_accuracy": correct / max(count, 1.0)}

    return evaluate


def _fit(trainer: Trainer, resume: bool, steps: int, max_seconds: float | None) -> TrainResult:
    if max_seconds is None:
        return trainer.fit(resume=resume)
    start = time.perf_counter()
    total = TrainResult(step=trainer.step)
    chunk, first = max(1, min(steps // 20, 25)), True
    while first or (trainer.step < steps and trainer.main_value(time.perf_counter() - start) < max_seconds):
        part = trainer.fit(resume=resume if first else False, stop_at=min(steps, trainer.step + chunk))
        first = False
        total.losses += part.losses
        total.evals += part.evals
        total.checkpoint = part.checkpoint or total.checkpoint
        total.step = part.step
    total.elapsed = time.perf_counter() - start
    return total


# -- the training run -------------------------------------------------------------------------------------
@dataclass
class SoundStormTrainResult:
    model: SoundStorm  # the trained model with the codec attached (eval mode)
    model_dir: Path  # where it was saved (config.json + model.safetensors)
    train: TrainResult
    num_clips: int
    metrics: dict[str, float]


def build_net(codec: nn.Module, preset: str = "small", *, mask_embedding: str = MASK_EMBEDDING,
              tie_embeddings: bool = TIE_EMBEDDINGS, **overrides: Any) -> ConformerWrapper:
    """A ConformerWrapper matching the codec's levels and codebook, from a Conformer preset plus overrides
    (`mask_embedding`, `tie_embeddings`: see `ConformerWrapper`)."""
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    conformer = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return ConformerWrapper(codebook_size=codec.codebook_size, num_quantizers=codec.num_quantizers,
                            conformer=conformer, mask_embedding=mask_embedding, tie_embeddings=tie_embeddings)


def train_soundstorm(data: str | os.PathLike, codec: str | os.PathLike | nn.Module, out: str | os.PathLike, *,
                     steps: int = 2000, batch_size: int = 8, lr: float = 3e-4, warmup_steps: int = 100,
                     seconds: float | None = 4.0, preset: str = "small", dim: int | None = None,
                     depth: int | None = None, net: ConformerWrapper | None = None, generation_steps: int = 16,
                     bf16: bool = False, resume: bool = False, seed: int = 0, ema_decay: float | None = None,
                     eval_every: int = 0, save_every: int = 0, log_every: int = 10, where: Any = None,
                     cache_dir: str | os.PathLike | None = None, max_seconds: float | None = None,
                     progress: bool = True, level_probs: Sequence[float] | None = None,
                     level0_share: float | None = LEVEL0_SHARE,
                     mask_embedding: str = MASK_EMBEDDING,
                     tie_embeddings: bool = TIE_EMBEDDINGS,
                     choice_temperature: float = CHOICE_TEMPERATURE,
                     top_k: int | None = TOP_K,
                     init_from: str | os.PathLike | None = None) -> SoundStormTrainResult:
    """Train SoundStorm on the codes of `codec` for the clips of a manifest folder (split "train").

    Codes are computed once and cached in `cache_dir` (default OUT/codes). Crops of `seconds` (None:
    whole clips, padded per batch). The model is a `preset` Conformer ("tiny", "small", "base") with
    optional `dim`/`depth` overrides, or `net`. On resume, the network config stored in OUT is used.
    The trained model, with the codec attached, is saved to OUT (load it with `SoundStorm.from_pretrained`).
    `max_seconds` ends training early once that much wall time has passed (for demos with a time budget).
    `level0_share`: the share of items trained on level 0, the rest spread evenly over the other levels (None =
    uniform, as the paper); `level_probs` gives all Q shares instead. `mask_embedding` and `tie_embeddings` of a
    network built here (see `ConformerWrapper`); `choice_temperature` / `top_k`: the generation defaults stored with the
    model. The defaults are the measured recipe (`LEVEL0_SHARE`, `MASK_EMBEDDING`, `TIE_EMBEDDINGS`,
    `CHOICE_TEMPERATURE`).
    `init_from`: a saved SoundStorm folder whose network (architecture and weights) this run starts from and
    fine-tunes, e.g. a second phase with a lower `level0_share` after a first one that learned level 0 (README:
    the continuation recipe); the optimizer and LR schedule start afresh. It fixes the architecture, so it
    cannot go with `net`, `dim` or `depth`.
    """
    if init_from is not None and (net is not None or dim is not None or depth is not None):
        raise ConfigError("init_from fixes the network; do not also give net, dim or depth")
    start_net = None if init_from is None else SoundStorm.from_pretrained(init_from).net  # fails before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    codec = as_codec(codec)
    codec.eval()
    cache_dir = Path(cache_dir) if cache_dir is not None else out / "codes"
    frames = codec.seconds_to_frames(seconds) if seconds is not None else None
    streaming = is_stream(data)
    if streaming:
        train_stream = _stream_codes(codec, str(data), "train", seed, where)
        try:
            valid_stream = _stream_codes(codec, str(data), "valid", seed, where, split_nodes=False)
            valid_stream.shuffle, valid_stream.shuffle_buffer = False, 0
            valid_codes = [item["codes"] for item in itertools.islice(valid_stream, 64)]
        except DataError:
            valid_codes = []
    else:
        train_codes = precompute_codes(codec, data, "train", cache_dir, where=where, progress=progress)
        try:
            valid_codes = precompute_codes(codec, data, "valid", cache_dir, where=where, progress=progress)
        except DataError:
            valid_codes = []

    net_file = out / NET_CONFIG_NAME
    if resume and net_file.is_file():
        net = ConformerWrapper.from_config(json.loads(net_file.read_text()))
    elif start_net is not None:
        net = start_net
    elif net is None:
        net = build_net(codec, preset, mask_embedding=mask_embedding, tie_embeddings=tie_embeddings, dim=dim,
                        depth=depth)
    if level_probs is None:
        level_probs = level_probs_for(level0_share, net.num_quantizers)
    net.check_codec(codec)
    atomic_write_bytes(net_file, lambda tmp: Path(tmp).write_text(json.dumps(net.get_config(), indent=2,
                                                                                 sort_keys=True)))
    model = SoundStorm(net, steps=generation_steps, level_probs=level_probs, choice_temperature=choice_temperature,
                       top_k=top_k)

    if streaming:
        dataset = CodeStream(train_stream, frames)
        num_clips = int(train_stream.index.get("split", {}).get("clips", 0))
    else:
        dataset = CodeDataset(train_codes, frames)
        batch_size, num_clips = min(batch_size, len(dataset)), len(dataset)
    config = TrainerConfig(out_dir=str(out), max_steps=steps, batch_size=batch_size, lr=lr,
                           warmup_steps=min(warmup_steps, steps // 4), mixed_precision="bf16" if bf16 else "no",
                           ema_decay=ema_decay, eval_every=eval_every if valid_codes else 0,
                           save_every=save_every, log_every=log_every, seed=seed, progress=progress)
    eval_fn = make_eval_fn(valid_codes, frames) if valid_codes else None
    trainer = Trainer(model, dataset, soundstorm_step_fn, config, collate_fn=collate_codes, eval_fn=eval_fn)
    result = _fit(trainer, resume, steps, max_seconds)
    trained: PretrainedModel = trainer.final_model()
    final = SoundStorm(trained.net, soundstream=codec, steps=generation_steps, level_probs=level_probs,
                       choice_temperature=choice_temperature, top_k=top_k).eval()
    trainer.run_on_main(final.save_pretrained, out)
    metrics = trainer.evaluate() if eval_fn is not None else {}
    return SoundStormTrainResult(model=final, model_dir=out, train=result, num_clips=num_clips, metrics=metrics)
