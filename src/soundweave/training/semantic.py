"""Training MusicLM's semantic stage: the tokenizer's k-means and the SemanticTransformer.

    wav2vec = train_semantic_tokenizer("corpus", "runs/tokenizer", codebook_size=256).tokenizer
    trainer = SemanticTransformerTrainer(transformer=semantic_transformer, wav2vec=wav2vec,
                                         audio_conditioner=quantizer, folder="corpus", batch_size=8,
                                         data_max_length=16000 * 3, num_train_steps=2000)
    trainer.train()

The trainer (audiolm-pytorch's names) reads every audio file under `folder` (a soundweave manifest
folder's train split when it has `captions.jsonl`, else every wav/flac/ogg/mp3 below it), fits the
tokenizer and the quantizer's codebooks first if they are not fitted, tokenizes each clip once, and
trains on random crops of `data_max_length` samples (at the tokenizer's rate). Conditioning: the MuLaN
audio tokens of the clip, or - with probability `text_mix_prob` when the clip has a caption - the MuLaN
text tokens of its caption, so the model also learns from the text side of the joint space (MusicLM
trains on audio tokens only; mixing narrows the audio/text gap of a small MuLaN). The quantizer stays
frozen; the transformer's own input projection learns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..audio.io import load
from ..data.manifest import MANIFEST_NAME, read_manifest
from ..errors import ConfigError, DataError
from ..metrics.units import code_usage_stats, unit_label_scores
from ..models.mulan import MuLaNEmbedQuantizer
from ..models.semantic_tokenizer import SemanticTokenizer
from ..models.semantic_transformer import SemanticTransformer
from .trainer import Trainer, TrainerConfig, TrainResult

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class AudioItem:
    audio: torch.Tensor  # (T,) at the loader's rate
    caption: str | None = None
    tags: dict = field(default_factory=dict)
    path: str = ""


def load_audio_folder(folder: str | os.PathLike, sample_rate: int, split: str | None = "train",
                      max_files: int | None = None) -> list[AudioItem]:
    """Clips of a manifest folder's `split` (with captions and tags), or every audio file below `folder`."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"audio folder {str(root)!r} does not exist")
    items: list[AudioItem] = []
    if (root / MANIFEST_NAME).is_file():
        records = read_manifest(root)
        if split is not None and any(r.split == split for r in records):
            records = [r for r in records if r.split == split]
        for record in records[:max_files]:
            audio, _ = load(root / record.path, sr=sample_rate)
            items.append(AudioItem(audio, record.caption, dict(record.tags or {}), record.path))
    else:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        for path in files[:max_files]:
            audio, _ = load(path, sr=sample_rate)
            items.append(AudioItem(audio, None, {}, str(path.relative_to(root))))
    items = [item for item in items if item.audio.numel() > 0]
    if not items:
        raise DataError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in {str(root)!r}")
    return items


# -- the tokenizer -------------------------------------------------------------------------------------------
def frame_labels(item: AudioItem, tokenizer: SemanticTokenizer, num_frames: int, midi_dir: Path | None
                 ) -> dict[str, torch.Tensor]:
    """Reference labels per semantic frame: instrument (from the tags), and from the clip's MIDI (when the
    corpus was made with save_midi) the loudest sounding pitch class (-1 = silence) and drum onsets."""
    from ..data.synth.instruments import INSTRUMENT_NAMES

    labels: dict[str, torch.Tensor] = {}
    name = item.tags.get("instrument")
    if name in INSTRUMENT_NAMES:
        labels["instrument"] = torch.full((num_frames,), INSTRUMENT_NAMES.index(name))
    midi = midi_dir / (Path(item.path).stem + ".mid") if midi_dir is not None else None
    if midi is not None and midi.is_file():
        import pretty_midi

        pm = pretty_midi.PrettyMIDI(str(midi))
        pitch = torch.full((num_frames,), -1)
        loud = torch.zeros(num_frames)
        onset = torch.zeros(num_frames, dtype=torch.long)
        is_drum = any(inst.is_drum for inst in pm.instruments)
        for inst in pm.instruments:
            for note in inst.notes:
                first = int(note.start * tokenizer.rate)
                if is_drum:
                    if first < num_frames:
                        onset[first] = 1
                    continue
                last = min(num_frames, max(first + 1, int(note.end * tokenizer.rate)))
                span = slice(first, last)
                louder = loud[span] < note.velocity
                pitch[span] = torch.where(louder, torch.tensor(note.pitch % 12), pitch[span])
                loud[span] = torch.maximum(loud[span], torch.tensor(float(note.velocity)))
        if is_drum:
            labels["drum_onset"] = onset
        else:
            labels["pitch_class"] = pitch
    return labels


@dataclass
class TokenizerTrainResult:
    tokenizer: SemanticTokenizer
    model_dir: Path
    metrics: dict[str, Any]


def evaluate_tokenizer(tokenizer: SemanticTokenizer, items: Sequence[AudioItem],
                       midi_dir: Path | None = None) -> dict[str, Any]:
    """Code usage and perplexity, and purity / PNMI against each reference label that exists."""
    units, labels = [], {}
    for item in items:
        ids = tokenizer(item.audio)[0].cpu()
        units.append(ids)
        for key, value in frame_labels(item, tokenizer, ids.numel(), midi_dir).items():
            labels.setdefault(key, [[], []])
            labels[key][0].append(ids)
            labels[key][1].append(value)
    metrics: dict[str, Any] = code_usage_stats(torch.cat(units), tokenizer.codebook_size)
    for key, (u, y) in labels.items():
        metrics[key] = unit_label_scores(torch.cat(u), torch.cat(y))
    return metrics


def train_semantic_tokenizer(data: str | os.PathLike, out: str | os.PathLike, *, codebook_size: int = 512,
                             features: str = "music", layer: int | None = None, rate: float = 25.0,
                             sample_rate: int = 16000, max_frames: int = 100_000, iters: int = 100,
                             max_files: int | None = None, seed: int = 0, progress=None) -> TokenizerTrainResult:
    """Fit a SemanticTokenizer on the train split of `data`, evaluate it on the test split (or the train
    clips when there is none) and save it to `out`."""
    tokenizer = SemanticTokenizer(features, codebook_size=codebook_size, sample_rate=sample_rate, rate=rate,
                                  layer=layer)
    items = load_audio_folder(data, sample_rate, "train", max_files)
    tokenizer.fit([item.audio for item in items], max_frames=max_frames, iters=iters, seed=seed, progress=progress)
    try:
        test = load_audio_folder(data, sample_rate, "test", max_files)
        if test and all(t.path in {i.path for i in items} for t in test):
            test = items
    except DataError:
        test = items
    midi_dir = Path(data) / "midi"
    metrics = evaluate_tokenizer(tokenizer, test, midi_dir if midi_dir.is_dir() else None)
    metrics.update(train_clips=len(items), eval_clips=len(test), codebook_size=codebook_size, features=features)
    model_dir = tokenizer.save_pretrained(out)
    return TokenizerTrainResult(tokenizer, model_dir, metrics)


# -- the conditioning ----------------------------------------------------------------------------------------
def quantizer_is_fitted(quantizer: MuLaNEmbedQuantizer) -> bool:
    flags = [buf for name, buf in quantizer.rq.named_buffers() if name.endswith("initted")]
    return bool(flags) and all(bool(f) for f in flags)


@torch.no_grad()
def conditioning_ids(quantizer: MuLaNEmbedQuantizer, items: Sequence[AudioItem], sample_rate: int,
                     fit: bool = True, epochs: int = 10) -> tuple[torch.Tensor, torch.Tensor | None]:
    """MuLaN code ids of every clip's audio `(N, q)` and of its caption `(N, q)` (None without captions);
    fits the quantizer's codebooks on both first when they are not fitted yet (and `fit`)."""
    quantizer.eval()
    audio_latents = torch.cat([quantizer.latents(wavs=item.audio[None], sample_rate=sample_rate)
                               for item in items])
    text_latents = None
    if all(item.caption for item in items):
        captions = [item.caption for item in items]
        text_latents = torch.cat([quantizer.latents(raw_texts=captions[i:i + 64]) for i in range(0, len(items), 64)])
    if not quantizer_is_fitted(quantizer):
        if not fit:
            raise ConfigError("the MuLaNEmbedQuantizer's codebooks are not fitted")
        both = audio_latents if text_latents is None else torch.cat([audio_latents, text_latents])
        quantizer.fit_codebooks(both, epochs=epochs)
    quantizer.eval()
    audio_ids = quantizer.quantize_latents(audio_latents)
    text_ids = quantizer.quantize_latents(text_latents) if text_latents is not None else None
    return audio_ids, text_ids


class SemanticCropDataset(Dataset):
    """Items {"ids": (L,), "mask": (L,), "cond_ids": (q,) or absent}: a random crop of each clip's semantic
    ids, with its MuLaN audio ids or (prob `text_mix_prob`) its caption's text ids."""

    def __init__(self, ids: Sequence[torch.Tensor], length: int | None, audio_cond: torch.Tensor | None = None,
                 text_cond: torch.Tensor | None = None, text_mix_prob: float = 0.0, seed: int = 0):
        self.ids, self.length = list(ids), length
        self.audio_cond, self.text_cond, self.text_mix_prob = audio_cond, text_cond, text_mix_prob
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.ids[index]
        n, length = ids.shape[0], self.length or ids.shape[0]
        if n > length:
            start = int(torch.randint(0, n - length + 1, (), generator=self.generator))
            crop, mask = ids[start:start + length], torch.ones(length, dtype=torch.bool)
        else:
            crop = torch.cat([ids, ids.new_zeros(length - n)])
            mask = torch.arange(length) < n
        item = {"ids": crop, "mask": mask}
        if self.audio_cond is not None:
            draw = float(torch.rand((), generator=self.generator))
            use_text = self.text_cond is not None and draw < self.text_mix_prob
            item["cond_ids"] = (self.text_cond if use_text else self.audio_cond)[index]
        return item


def collate_semantic(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class SemanticTransformerTrainer:
    """Trains a SemanticTransformer on the semantic ids of a folder of audio (see the module docstring).

    Args (audiolm-pytorch's names where they exist): transformer, wav2vec (a SemanticTokenizer),
        audio_conditioner (a MuLaNEmbedQuantizer; required when the transformer is conditioned), folder,
        batch_size, data_max_length (crop length in samples at wav2vec's rate) or data_max_length_seconds,
        num_train_steps, lr, grad_accum_every, wd, max_grad_norm, results_folder (the trained transformer
        goes to RESULTS/semantic_transformer; a tokenizer or quantizer fitted here is saved beside it),
        save_model_every, text_mix_prob, namespace (the quantizer namespace; "semantic"), seed, progress.
    """

    def __init__(self, transformer: SemanticTransformer, wav2vec: SemanticTokenizer, *,
                 num_train_steps: int, batch_size: int, audio_conditioner: MuLaNEmbedQuantizer | None = None,
                 folder: str | os.PathLike | None = None, data_max_length: int | None = None,
                 data_max_length_seconds: float | None = None, lr: float = 3e-4, grad_accum_every: int = 1,
                 wd: float = 0.0, max_grad_norm: float | None = 0.5, warmup_steps: int = 0,
                 results_folder: str | os.PathLike = "./results", save_model_every: int = 0,
                 text_mix_prob: float = 0.25, namespace: str = "semantic", split: str | None = "train",
                 max_files: int | None = None, mixed_precision: str = "no", seed: int = 0, progress: bool = True,
                 log_every: int = 10):
        if not isinstance(transformer, SemanticTransformer):
            raise ConfigError(f"transformer must be a SemanticTransformer, got {type(transformer).__name__}")
        if not isinstance(wav2vec, SemanticTokenizer):
            raise ConfigError(f"wav2vec must be a SemanticTokenizer, got {type(wav2vec).__name__}")
        if wav2vec.codebook_size != transformer.num_semantic_tokens:
            raise ConfigError(f"the tokenizer has {wav2vec.codebook_size} units but the transformer expects "
                              f"num_semantic_tokens={transformer.num_semantic_tokens}")
        conditioned = transformer.config.audio_text_condition
        if conditioned and audio_conditioner is None:
            raise ConfigError("the transformer is conditioned (audio_text_condition=True): pass "
                              "audio_conditioner=MuLaNEmbedQuantizer(...)")
        if audio_conditioner is not None and not conditioned:
            raise ConfigError("audio_conditioner given but the transformer was built with audio_text_condition=False")
        if audio_conditioner is not None:
            audio_conditioner._namespace(namespace)
            dim = audio_conditioner.projections[namespace].out_features
            if dim != transformer.config.cond_dim:
                raise ConfigError(f"the quantizer's {namespace!r} tokens are {dim}-d but the transformer's cond_dim "
                                  f"is {transformer.config.cond_dim}; build them to match")
        if folder is None:
            raise ConfigError("give folder= (a folder of audio files or a soundweave corpus)")
        if data_max_length is not None and data_max_length_seconds is not None:
            raise ConfigError("give data_max_length or data_max_length_seconds, not both")
        if not 0.0 <= text_mix_prob <= 1.0:
            raise ConfigError(f"text_mix_prob must be in [0, 1], got {text_mix_prob}")
        self.transformer, self.wav2vec, self.quantizer = transformer, wav2vec, audio_conditioner
        self.folder, self.results_folder, self.namespace = Path(folder), Path(results_folder), namespace
        self.split, self.max_files, self.text_mix_prob = split, max_files, text_mix_prob
        if data_max_length_seconds is not None:
            data_max_length = int(data_max_length_seconds * wav2vec.sample_rate)
        self.max_tokens = wav2vec.num_tokens(data_max_length) if data_max_length is not None else None
        self.config = TrainerConfig(
            out_dir=str(self.results_folder), max_steps=num_train_steps, batch_size=batch_size, lr=lr,
            weight_decay=wd, grad_accum=grad_accum_every, max_grad_norm=max_grad_norm,
            warmup_steps=min(warmup_steps, num_train_steps // 4), save_every=save_model_every,
            mixed_precision=mixed_precision, seed=seed, progress=progress, log_every=log_every)
        self.seed, self.progress = seed, progress
        self.fitted_here: list[str] = []

    def prepare(self) -> SemanticCropDataset:
        """Load, fit what is not fitted, tokenize: the training dataset."""
        items = load_audio_folder(self.folder, self.wav2vec.sample_rate, self.split, self.max_files)
        if not self.wav2vec.is_fitted:
            self.wav2vec.fit([item.audio for item in items], seed=self.seed)
            self.fitted_here.append("wav2vec")
        ids = [self.wav2vec(item.audio)[0].cpu() for item in items]
        audio_cond = text_cond = None
        if self.quantizer is not None:
            was_fitted = quantizer_is_fitted(self.quantizer)
            audio_cond, text_cond = conditioning_ids(self.quantizer, items, self.wav2vec.sample_rate)
            if not was_fitted:
                self.fitted_here.append("quantizer")
        self.items = items
        return SemanticCropDataset(ids, self.max_tokens, audio_cond, text_cond, self.text_mix_prob, self.seed)

    def step_fn(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        cond = None
        if "cond_ids" in batch:
            with torch.no_grad():
                cond = self.quantizer.conds_from_ids(batch["cond_ids"].to(self.quantizer.device), self.namespace)
        loss, accuracy = model(batch["ids"], cond=cond, mask=batch["mask"], return_accuracy=True)
        return loss, {"accuracy": accuracy}

    def train(self, resume: bool = False, max_seconds: float | None = None) -> TrainResult:
        """Prepare the data, train `num_train_steps` steps (or stop once `max_seconds` of wall time have passed)
        and save. Returns the TrainResult (losses per step)."""
        from .soundstorm import _fit

        dataset = self.prepare()
        self.config.batch_size = min(self.config.batch_size, len(dataset))
        trainer = Trainer(self.transformer, dataset, self.step_fn, self.config, collate_fn=collate_semantic)
        result = _fit(trainer, resume, self.config.max_steps, max_seconds)
        trained = trainer.eval_model
        if trained is not self.transformer:  # EMA / unwrapped copy: keep the caller's object up to date
            self.transformer.load_state_dict(trained.state_dict())
        self.transformer.eval()
        self.transformer.save_pretrained(self.results_folder / "semantic_transformer")
        if "wav2vec" in self.fitted_here:
            self.wav2vec.save_pretrained(self.results_folder / "semantic_tokenizer")
        if "quantizer" in self.fitted_here:
            self.quantizer.save_pretrained(self.results_folder / "mulan_quantizer")
        self.result = result
        return result


__all__ = ["AudioItem", "SemanticCropDataset", "SemanticTransformerTrainer", "TokenizerTrainResult",
           "collate_semantic", "conditioning_ids", "evaluate_tokenizer", "frame_labels", "load_audio_folder",
           "quantizer_is_fitted", "train_semantic_tokenizer"]
