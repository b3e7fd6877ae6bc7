"""Training an AudioCLIPAligner: audio -> the hidden-state sequence a text encoder gives its caption.

    result = train_aligner("corpus/", "runs/aligner", text_encoder="minilm", aligner="small", max_steps=300)
    result.aligner.encode(audio, sr)

Targets. `last_hidden_state` of the chosen text encoder for every caption, padded/truncated to
`target_len` tokens: by default the `CLIPTextModel` of a Stable Diffusion folder or hub id (whose
`text_encoder/` and `tokenizer/` are used), or any Hugging Face text encoder (AutoModel + AutoTokenizer),
or "minilm" (the offline all-MiniLM-L6-v2). They are computed once and cached on disk
(`OUT/targets/<hash>.safetensors`, keyed by the encoder, target_len and caption list), so the text encoder
is never run during training.

Negatives. The per-token contrastive loss compares each audio against a pool of captions. Besides the
batch's own (distinct) captions, `num_negatives` further captions are drawn at random from the cached
targets of the whole training set at every step: a memory bank that costs no encoder passes, so a small
machine with batch 8 still contrasts against e.g. 64 captions. Identical captions share one row, so a
caption is never its own negative. Under several processes the predictions and caption rows of every
process are gathered first (with gradients), so the pool is built from the global batch and the loss and
gradients are those of one process with the whole batch (`gather_across_processes`).

Loss = contrastive (temperature 0.15, per position, positions 1.. i.e. not the BOS slot, audio->text or
symmetric) + `regression_weight` x MSE over all positions (this also trains the BOS slot, which is
initialised with the mean position-0 target).

Metrics each eval (valid split, clips cropped from the start to `seconds`): mean per-token cosine
(all `target_len` positions), MSE, mean per-token Euclidean distance, and audio->caption retrieval
R@1 / R@10: each valid clip ranks ALL cached captions (train + valid, so chance is 10/N, not 10/len(valid)),
scoring a pair by its mean per-token cosine over positions 1.. (the BOS slot is the same for all).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from ..data.dataset import CaptionedAudioDataset
from ..errors import CheckpointError, ConfigError, DataError
from ..metrics.retrieval import recall_at_k
from ..models.aligner import SAMPLE_RATE, AudioCLIPAligner
from ..models.base import atomic_write_bytes
from ..models.text_encoders import resolve_text_encoder
from ..nn.distributed import gather_no_grad, gather_with_grad, world_size
from ..nn.losses import contrastive_loss, regression_loss
from .trainer import Trainer, TrainerConfig, TrainResult

log = logging.getLogger(__name__)

TARGET_ENCODER_FILE = "target_encoder.json"


# -- the text encoder that provides targets ---------------------------------------------------------------
class TextTargets:
    """A Hugging Face text encoder + tokenizer giving (N, target_len, D) `last_hidden_state` targets.

    name_or_path: a Stable Diffusion folder / hub id (uses its text_encoder/ and tokenizer/), any HF text
    encoder folder / hub id, or "minilm". Or pass `model=` and `tokenizer=` already built.
    """

    def __init__(self, name_or_path: str | None = "minilm", target_len: int | None = None, *, model=None,
                 tokenizer=None, device: str | torch.device = "cpu"):
        if model is None:
            model, tokenizer, name = self._load(str(name_or_path))
        else:
            if tokenizer is None:
                raise ConfigError("pass tokenizer= together with model=")
            name = name_or_path or type(model).__name__
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.name = str(name)
        max_len = int(getattr(model.config, "max_position_embeddings", 512))
        self.target_len = int(target_len or min(77, max_len))
        if self.target_len > max_len:
            raise ConfigError(f"target_len {self.target_len} exceeds the text encoder's {max_len} positions")
        self.dim = int(model.config.hidden_size)

    @staticmethod
    def _load(name: str):
        from transformers import AutoModel, AutoTokenizer

        local = Path(resolve_text_encoder(name))
        try:
            if (local / "text_encoder").is_dir() or (local / "model_index.json").is_file():
                from transformers import CLIPTextModel, CLIPTokenizer

                return (CLIPTextModel.from_pretrained(str(local), subfolder="text_encoder"),
                        CLIPTokenizer.from_pretrained(str(local), subfolder="tokenizer"), name)
            if local.is_dir():
                return AutoModel.from_pretrained(str(local)), AutoTokenizer.from_pretrained(str(local)), name
            # a hub id: a diffusers SD repo has model_index.json; anything else is a plain text encoder
            from huggingface_hub import file_exists

            if file_exists(name, "model_index.json"):
                from transformers import CLIPTextModel, CLIPTokenizer

                return (CLIPTextModel.from_pretrained(name, subfolder="text_encoder"),
                        CLIPTokenizer.from_pretrained(name, subfolder="tokenizer"), name)
            return AutoModel.from_pretrained(name), AutoTokenizer.from_pretrained(name), name
        except Exception as exc:
            hint = ""
            if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
                hint = " (HF_HUB_OFFLINE is set; 'minilm' works offline)"
            raise CheckpointError(f"could not load the text encoder {name!r}{hint}: {type(exc).__name__}: {exc}") \
                from exc

    @property
    def identity(self) -> str:
        cfg = self.model.config
        return json.dumps({"name": self.name, "class": type(self.model).__name__, "dim": self.dim,
                           "layers": getattr(cfg, "num_hidden_layers", None), "len": self.target_len})

    @torch.no_grad()
    def encode(self, captions: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Captions -> (N, target_len, D) float32 last_hidden_state (padded/truncated to target_len)."""
        out = []
        device = next(self.model.parameters()).device
        for i in range(0, len(captions), batch_size):
            tok = self.tokenizer(list(captions[i: i + batch_size]), padding="max_length", truncation=True,
                                 max_length=self.target_len, return_tensors="pt")
            kwargs = {"input_ids": tok["input_ids"].to(device)}
            if "attention_mask" in tok and "CLIP" not in type(self.model).__name__:
                # CLIP (as SD uses it) sees no attention mask; other encoders get theirs
                kwargs["attention_mask"] = tok["attention_mask"].to(device)
            out.append(self.model(**kwargs).last_hidden_state.float().cpu())
        return torch.cat(out)


class TargetCache:
    """Target sequences of a list of distinct captions, computed once and stored on disk."""

    def __init__(self, captions: Sequence[str], targets: torch.Tensor, path: Path | None = None):
        self.captions = list(captions)
        self.index = {c: i for i, c in enumerate(self.captions)}
        self.targets = targets
        self.path = path

    @classmethod
    def build(cls, encoder: TextTargets, captions: Sequence[str], cache_dir: str | os.PathLike | None
              ) -> TargetCache:
        unique = sorted(set(captions))
        key = hashlib.sha256((encoder.identity + "\n" + "\n".join(unique)).encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"{key}.safetensors" if cache_dir else None
        if path is not None and path.is_file():
            stored = load_file(str(path))["targets"]
            log.info("loaded %d cached targets from %s", stored.shape[0], path)
            return cls(unique, stored, path)
        targets = encoder.encode(unique)
        if path is not None:
            atomic_write_bytes(path, lambda tmp: save_file({"targets": targets.contiguous()}, tmp,
                                                           metadata={"encoder": encoder.identity}))
            atomic_write_bytes(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(unique)))
        return cls(unique, targets, path)

    def rows(self, captions: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self.index[c] for c in captions], dtype=torch.long)


# -- data ---------------------------------------------------------------------------------------------------
class FeaturePairs(Dataset):
    """(fbank features, caption row) pairs from any captioned-audio dataset (items with audio/mask/caption).

    Each clip goes through the aligner's own preprocessing once (resampling to 16 kHz, cropping to
    max_seconds, the SeamlessM4T fbank, normalised over the whole clip); with `preload` (default) the
    features stay in memory, so training steps never decode audio or run the numpy feature extractor.
    `seconds` cuts a window of that many seconds of feature frames (`crop='random'` for training,
    'start' for evaluation); None keeps whole clips (exactly the inference path).
    """

    def __init__(self, dataset: Dataset, cache: TargetCache, aligner: AudioCLIPAligner, seconds: float | None = None,
                 crop: str = "random", preload: bool = True):
        self.dataset, self.cache, self.aligner = dataset, cache, aligner
        stride = int(aligner.config.feature_extractor.get("stride", 2))
        self.frames = None if seconds is None else max(1, int(round(seconds * SAMPLE_RATE / 160 / stride)))
        self.crop = crop
        self._features: list[tuple[torch.Tensor, int]] | None = None
        if preload:
            self._features = [self._load(i) for i in range(len(dataset))]

    def _load(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.dataset[i]
        audio = item["audio"][item["mask"]] if "mask" in item else item["audio"]
        inputs = self.aligner.preprocess(audio, item.get("sample_rate") or SAMPLE_RATE, pad_short=True)
        return inputs.input_features[0], self.cache.index[item["caption"]]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        features, row = self._features[i] if self._features is not None else self._load(i)
        if self.frames is not None and features.shape[0] > self.frames:
            extra = features.shape[0] - self.frames
            start = int(torch.randint(0, extra + 1, (1,))) if self.crop == "random" else 0
            features = features[start: start + self.frames]
        return {"features": features, "target_row": row}


def collate_features(items) -> dict[str, torch.Tensor]:
    """Zero-pad features to the longest: features (B, F, 160), attention_mask (B, F), target_rows (B,)."""
    length = max(item["features"].shape[0] for item in items)
    dim = items[0]["features"].shape[1]
    features = torch.zeros(len(items), length, dim)
    mask = torch.zeros(len(items), length, dtype=torch.long)
    for i, item in enumerate(items):
        n = item["features"].shape[0]
        features[i, :n], mask[i, :n] = item["features"], 1
    return {"features": features, "attention_mask": mask,
            "target_rows": torch.tensor([item["target_row"] for item in items], dtype=torch.long)}


def _all_captions(dataset: Dataset) -> list[str]:
    if hasattr(dataset, "captions"):
        return list(dataset.captions)
    if hasattr(dataset, "ds") and hasattr(dataset, "_caption"):  # HFAudioDataset: read the table, not the audio
        columns = [dataset.caption_column] if dataset.caption_column else list(dataset.tag_columns)
        return [dataset._caption(row) for row in dataset.ds.select_columns(columns)]
    return [dataset[i]["caption"] for i in range(len(dataset))]


def open_split(data: str | os.PathLike, split: str, hf: dict[str, Any] | None = None) -> Dataset:
    """Whole clips at 16 kHz from a manifest folder (captions.jsonl) or, with `hf=` options, an HF dataset."""
    if hf is not None:
        from ..data.hf import HFAudioDataset

        return HFAudioDataset(data, split=split, sample_rate=SAMPLE_RATE, **hf)
    return CaptionedAudioDataset(data, split=split, sample_rate=SAMPLE_RATE)


# -- model presets --------------------------------------------------------------------------------------------
PRESETS: dict[str, dict[str, Any]] = {
    # tiny: tests; small: a CPU run of minutes. Both keep the audio2img adapter (2 layers, stride 2).
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 output_hidden_size=32, conv_depthwise_kernel_size=5),
    "small": dict(hidden_size=128, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
                  output_hidden_size=128, conv_depthwise_kernel_size=15),
}


def preset_config(name: str):
    from transformers import Wav2Vec2BertConfig

    if name not in PRESETS:
        raise ConfigError(f"unknown aligner preset {name!r}; presets are {sorted(PRESETS)}")
    return Wav2Vec2BertConfig(**PRESETS[name], add_adapter=True, adapter_kernel_size=3, adapter_stride=2,
                              num_adapter_layers=2, layerdrop=0.0, apply_spec_augment=False,
                              hidden_dropout=0.0, attention_dropout=0.0, conformer_conv_dropout=0.0)


def build_aligner(aligner: str | os.PathLike | AudioCLIPAligner, target_dim: int, target_len: int,
                  max_seconds: float = 10.0) -> AudioCLIPAligner:
    """A preset name ('tiny', 'small'), a saved aligner folder, a Wav2Vec2-BERT hub id/folder, or a model."""
    if isinstance(aligner, AudioCLIPAligner):
        model = aligner
    elif str(aligner) in PRESETS:
        model = AudioCLIPAligner(preset_config(str(aligner)), target_dim=target_dim, target_len=target_len,
                                 max_seconds=max_seconds)
    else:
        model = AudioCLIPAligner.from_pretrained(aligner, target_dim=target_dim, target_len=target_len,
                                                 max_seconds=max_seconds)
    spec_embed = getattr(model.encoder, "masked_spec_embed", None)
    if spec_embed is not None and not model.encoder_config.apply_spec_augment:
        # used only by SpecAugment: a parameter with no gradient would leave DDP's gradient buckets unreduced
        spec_embed.requires_grad_(False)
    if (model.config.target_dim, model.config.target_len) != (target_dim, target_len):
        raise ConfigError(f"the aligner outputs {model.config.target_len} x {model.config.target_dim} but the "
                          f"text encoder's targets are {target_len} x {target_dim}")
    return model


# -- loss step and evaluation -----------------------------------------------------------------------------------
@dataclass
class AlignerLossConfig:
    temperature: float = 0.15
    symmetric: bool = False
    num_negatives: int = 64
    regression_weight: float = 1.0
    # under several processes, gather the predictions (with gradients) and caption rows of every process, so
    # each audio's negatives are the captions of the global batch (+ the memory bank), as on one process
    gather_across_processes: bool = True


def _unwrap(model):
    return getattr(model, "module", model)


def make_step_fn(cache: TargetCache, loss: AlignerLossConfig, seed: int = 0):
    generator = torch.Generator().manual_seed(seed + 17)

    def step_fn(model, batch):
        aligner = _unwrap(model)
        device = aligner.device
        out = model(batch["features"].to(device), batch["attention_mask"].to(device))
        pred = out.last_hidden_state.float()
        rows = batch["target_rows"]
        if loss.gather_across_processes and world_size() > 1:
            pred, rows = gather_with_grad(pred), gather_no_grad(rows.to(device)).cpu()
        unique, targets = torch.unique(rows, return_inverse=True)
        pool = unique
        if loss.num_negatives > 0 and len(cache.captions) > len(unique):
            taken = torch.zeros(len(cache.captions), dtype=torch.bool)
            taken[unique] = True
            others = torch.nonzero(~taken).flatten()
            pick = others[torch.randperm(len(others), generator=generator)[: loss.num_negatives]]
            pool = torch.cat([unique, pick])
        text = cache.targets[pool].to(device)
        positions = torch.ones(pred.shape[1], device=device)
        positions[0] = 0.0  # the BOS slot cannot tell captions apart; the regression term trains it
        symmetric = loss.symmetric and len(unique) == len(rows)
        con = contrastive_loss(pred, text, loss.temperature, symmetric, targets=targets.to(device), mask=positions)
        matched = text[targets.to(device)]
        mse = regression_loss(pred, matched, "mse")
        total = con + loss.regression_weight * mse
        cos = F.cosine_similarity(pred.detach(), matched, dim=-1).mean()
        return total, {"contrastive": float(con.detach()), "mse": float(mse.detach()), "cosine": float(cos)}

    return step_fn


@torch.no_grad()
def evaluate_aligner(aligner: AudioCLIPAligner, dataset: Dataset, cache: TargetCache, batch_size: int = 16,
                     ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """Mean per-token cosine, MSE, per-token Euclidean distance and audio->caption R@k on `dataset`."""
    was_training = aligner.training
    aligner.eval()
    preds, rows = [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate_features([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
        out = aligner(batch["features"].to(aligner.device), batch["attention_mask"].to(aligner.device))
        preds.append(out.last_hidden_state.float().cpu())
        rows.append(batch["target_rows"])
    aligner.train(was_training)
    pred, rows = torch.cat(preds), torch.cat(rows)
    target = cache.targets[rows]
    metrics = {
        "cosine": float(F.cosine_similarity(pred, target, dim=-1).mean()),
        "mse": float((pred - target).pow(2).mean()),
        "euclidean": float((pred - target).norm(dim=-1).mean()),
    }
    # retrieval: each clip ranks every caption in the cache (train + valid), scored by mean per-token cosine
    a = F.normalize(pred[:, 1:], dim=-1)
    t = F.normalize(cache.targets[:, 1:], dim=-1)
    similarity = torch.einsum("bld,nld->bn", a, t) / a.shape[1]
    metrics.update({k.replace("@", "_at_"): v for k, v in recall_at_k(similarity, ks, targets=rows).items()})
    metrics["gallery"] = float(len(cache.captions))
    return metrics


# -- the entry point -------------------------------------------------------------------------------------------------
@dataclass
class AlignerTrainResult:
    aligner: AudioCLIPAligner
    train: TrainResult
    out_dir: Path
    aligner_dir: Path
    before: dict[str, float] = field(default_factory=dict)  # eval of the untrained aligner
    after: dict[str, float] = field(default_factory=dict)


def train_aligner(data: str | os.PathLike, out_dir: str | os.PathLike, *, text_encoder: str | TextTargets = "minilm",
                  aligner: str | os.PathLike | AudioCLIPAligner = "small", target_len: int | None = None,
                  seconds: float = 4.0, max_seconds: float = 10.0, max_steps: int = 300, batch_size: int = 8,
                  lr: float = 3e-4, warmup_steps: int = 20, grad_accum: int = 1, mixed_precision: str = "no",
                  ema_decay: float | None = None, eval_every: int = 100, save_every: int = 0,
                  loss: AlignerLossConfig | None = None, seed: int = 0, resume: bool | str = False,
                  hf: dict[str, Any] | None = None, train_split: str = "train", valid_split: str = "valid",
                  eval_before: bool = True, progress: bool = True, device: str | None = None) -> AlignerTrainResult:
    """Train an aligner on (audio, caption) pairs against a text encoder's hidden states.

    data: a manifest folder (audio + captions.jsonl with splits) or, with `hf={"caption_column": ...}`
        (or `tag_columns=(...)` to turn labels into captions), a Hugging Face dataset name/folder.
    text_encoder: "minilm" (offline), a Stable Diffusion folder/id (its CLIPTextModel), any HF text
        encoder, or a built `TextTargets`. aligner: 'tiny' | 'small' preset, a Wav2Vec2-BERT id/folder
        (e.g. 'facebook/w2v-bert-2.0'), a saved aligner folder, or a model.
    seconds: training window (random crop; valid clips cropped from the start). Writes OUT/aligner
        (the trained aligner, EMA weights when `ema_decay`), OUT/metrics.json, log.csv, eval.csv.
    """
    out = Path(out_dir)
    loss = loss or AlignerLossConfig()
    encoder = text_encoder if isinstance(text_encoder, TextTargets) else TextTargets(text_encoder, target_len)
    train_set = open_split(data, train_split, hf)
    try:
        valid_set = open_split(data, valid_split, hf)
    except DataError:
        valid_set = None
        log.warning("no %r split in %s: training without evaluation", valid_split, data)
    captions = _all_captions(train_set) + (_all_captions(valid_set) if valid_set is not None else [])
    cache = TargetCache.build(encoder, captions, out / "targets")
    encoder.model.to("cpu")
    model = build_aligner(aligner, encoder.dim, encoder.target_len, max_seconds)
    if float(model.bos.detach().abs().sum()) == 0:  # a new aligner: start the BOS slot at the mean position-0 target
        model.set_bos(cache.targets[:, 0].mean(0))
    if device is not None:
        model.to(device)
    pairs_valid = FeaturePairs(valid_set, cache, model, None, "start") if valid_set is not None else None
    before = evaluate_aligner(model, pairs_valid, cache) if (pairs_valid is not None and eval_before) else {}

    def eval_fn(m, step):
        return evaluate_aligner(_unwrap(m), pairs_valid, cache) if pairs_valid is not None else {}

    config = TrainerConfig(out_dir=str(out), max_steps=max_steps, batch_size=min(batch_size, len(train_set)), lr=lr,
                           warmup_steps=warmup_steps, grad_accum=grad_accum, mixed_precision=mixed_precision,
                           ema_decay=ema_decay, eval_every=eval_every if pairs_valid is not None else 0,
                           save_every=save_every, seed=seed, progress=progress, cpu=device == "cpu")
    model.train()
    pairs_train = FeaturePairs(train_set, cache, model, seconds, "random")
    trainer = Trainer(model, pairs_train, make_step_fn(cache, loss, seed), config, collate_fn=collate_features,
                      eval_fn=eval_fn if pairs_valid is not None else None)
    result = trainer.fit(resume=resume)
    final = trainer.final_model()
    final.eval()
    aligner_dir = out / "aligner"
    trainer.run_on_main(final.save_pretrained, aligner_dir)  # one writer under several processes
    trainer.run_on_main((aligner_dir / TARGET_ENCODER_FILE).write_text, json.dumps({
        "text_encoder": encoder.name, "target_len": encoder.target_len, "target_dim": encoder.dim,
        "note": "the aligner's output stands in for this text encoder's last_hidden_state"}, indent=2))
    after = result.evals[-1] if result.evals else {}
    after = {k: v for k, v in after.items() if k != "step"}
    if pairs_valid is not None and not after:
        after = evaluate_aligner(final, pairs_valid, cache)
    summary = {"steps": result.step, "elapsed_s": round(result.elapsed, 2), "text_encoder": encoder.name,
               "target": [encoder.target_len, encoder.dim], "before": before, "after": after,
               "final_loss": None if math.isnan(result.last_loss) else result.last_loss,
               "loss": asdict(loss), "aligner_parameters": final.num_parameters()}
    trainer.run_on_main((out / "metrics.json").write_text, json.dumps(summary, indent=2))
    return AlignerTrainResult(aligner=final, train=result, out_dir=out, aligner_dir=aligner_dir, before=before,
                              after=after)


def evaluate_aligner_on(aligner_dir: str | os.PathLike, data: str | os.PathLike, *, text_encoder: str | None = None,
                        split: str = "valid", seconds: float = 4.0, cache_dir: str | os.PathLike | None = None,
                        hf: dict[str, Any] | None = None) -> dict[str, float]:
    """Evaluate a saved aligner against its text encoder (read from the folder unless given)."""
    aligner = AudioCLIPAligner.from_pretrained(aligner_dir)
    if text_encoder is None:
        info = Path(aligner_dir) / TARGET_ENCODER_FILE
        if not info.is_file():
            raise ConfigError(f"{str(aligner_dir)!r} does not record its text encoder; pass text_encoder=...")
        text_encoder = json.loads(info.read_text())["text_encoder"]
    encoder = TextTargets(text_encoder, aligner.config.target_len)
    if encoder.dim != aligner.config.target_dim:
        raise ConfigError(f"the aligner outputs {aligner.config.target_dim}-d tokens but {text_encoder!r} has "
                          f"{encoder.dim}-d hidden states")
    dataset = open_split(data, split, hf)
    cache = TargetCache.build(encoder, _all_captions(dataset), cache_dir)
    return evaluate_aligner(aligner, FeaturePairs(dataset, cache, aligner, seconds, "start"), cache)


__all__ = ["AlignerLossConfig", "AlignerTrainResult", "PRESETS", "FeaturePairs",
           "TargetCache", "TextTargets", "build_aligner", "collate_features", "evaluate_aligner", "evaluate_aligner_on",
           "make_step_fn", "preset_config", "train_aligner"]
