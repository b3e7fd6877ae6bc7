"""MuLaN's text towers: `TextTransformer` (trained from scratch over our own tokenizer) and
`PretrainedTextTransformer` (any Hugging Face text encoder)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import CheckpointError, ConfigError, ShapeError
from ...nn.attention import Transformer
from ..base import CONFIG_NAME, WEIGHTS_NAME, PretrainedModel, resolve_pretrained
from ..tokenizers import PAD_ID, ByteTokenizer, CaptionTokenizer, check_texts, tokenizer_from_config

TOKENIZER_DIR = "text_tokenizer"


@dataclass
class TextTransformerConfig:
    dim: int = 512
    depth: int = 6
    heads: int = 8
    dim_head: int = 64
    num_tokens: int = 20000
    max_seq_len: int = 512
    ff_mult: float = 4.0
    dropout: float = 0.0
    tokenizer: dict | None = None  # {"type": "bytes"} (default) or {"type": "bpe", "json": ...}


class TextTransformer(PretrainedModel):
    """A text transformer trained from scratch: token embedding, rotary positions, a learned CLS token.

    forward(ids (B, L) int64, mask=(B, L) keep; default ids != 0) -> CLS output (B, dim).
    `embed_texts(list[str])` tokenizes with the tower's own tokenizer first. Sequences longer than
    `max_seq_len` are truncated. Ids must lie in [0, num_tokens); 0 is padding.
    """

    def __init__(
        self,
        dim: int = 512,
        depth: int = 6,
        heads: int = 8,
        dim_head: int = 64,
        num_tokens: int = 20000,
        max_seq_len: int = 512,
        ff_mult: float = 4.0,
        dropout: float = 0.0,
        tokenizer: ByteTokenizer | CaptionTokenizer | dict | None = None,
    ):
        super().__init__()
        tok = (
            tokenizer
            if isinstance(tokenizer, (ByteTokenizer, CaptionTokenizer))
            else tokenizer_from_config(tokenizer)
        )
        if tok.vocab_size > num_tokens:
            raise ConfigError(f"the tokenizer has {tok.vocab_size} ids but num_tokens is {num_tokens}")
        if max_seq_len < 3:
            raise ConfigError(f"max_seq_len must be >= 3, got {max_seq_len}")
        self.tokenizer = tok
        self.config = TextTransformerConfig(
            dim, depth, heads, dim_head, num_tokens, max_seq_len, ff_mult, dropout, tok.to_config()
        )
        self.dim = dim
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.transformer = Transformer(dim, depth, heads, dim_head, ff_mult, dropout, rotary=True)

    @property
    def max_length(self) -> int:
        return self.config.max_seq_len

    def tokenize(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenizer(texts, max_length=self.config.max_seq_len - 1)  # + the CLS token
        return ids.to(self.token_emb.weight.device), mask.to(self.token_emb.weight.device)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if (
            not isinstance(ids, torch.Tensor)
            or ids.ndim != 2
            or ids.dtype.is_floating_point
            or ids.dtype == torch.bool
        ):
            raise ShapeError(
                f"token ids must be an integer tensor (B, L), got "
                f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__}"
            )
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.config.num_tokens):
            raise ShapeError(
                f"token ids must lie in [0, {self.config.num_tokens}), got [{int(ids.min())}, "
                f"{int(ids.max())}]"
            )
        ids = ids[:, : self.config.max_seq_len - 1].to(self.token_emb.weight.device)
        mask = (ids != PAD_ID) if mask is None else mask[:, : ids.shape[1]].to(ids.device).bool()
        x = self.token_emb(ids)
        x = torch.cat((self.cls.to(x.dtype).expand(x.shape[0], 1, -1), x), dim=1)
        mask = F.pad(mask, (1, 0), value=True)
        return self.transformer(x, mask=mask)[:, 0]

    def embed_texts(self, texts) -> torch.Tensor:
        return self(*self.tokenize(texts))

    def get_config(self) -> dict[str, Any]:
        return asdict(self.config)


class PretrainedTextTransformer(PretrainedModel):
    """A Hugging Face text encoder as the text tower (`AutoModel` + `AutoTokenizer`).

    name_or_path: hub id, local folder, or 'minilm' (the offline all-MiniLM-L6-v2; the default).
    freeze: keep the encoder's weights fixed (and in eval mode); only MuLaN's projection trains.
    pooling: 'mean' over real tokens (sentence-transformers style) or 'cls'.
    forward(ids (B, L), mask=(B, L)) -> (B, hidden); `embed_texts(list[str])` tokenizes first.
    """

    def __init__(
        self,
        name_or_path: str = "minilm",
        freeze: bool = False,
        pooling: str = "mean",
        max_length: int = 256,
        hf_config: dict | None = None,
        _folder: str | None = None,
    ):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        from ..text_encoders import resolve_text_encoder

        if pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.source, self.freeze, self.pooling, self.max_length = (
            str(name_or_path),
            freeze,
            pooling,
            max_length,
        )
        self._folder = _folder
        self._tokenizer = None
        if hf_config is not None:  # rebuilt from our own folder: weights come from model.safetensors
            cfg = dict(hf_config)
            model_type = cfg.pop("model_type", None)
            if model_type is None:
                raise CheckpointError("the stored text encoder config has no model_type")
            self.encoder = AutoModel.from_config(AutoConfig.for_model(model_type, **cfg))
        else:
            path = resolve_text_encoder(self.source)
            try:
                self.encoder = AutoModel.from_pretrained(path)
            except OSError as exc:
                raise CheckpointError(f"could not load the text encoder {self.source!r}: {exc}") from exc
            self._tokenizer_path = path
        self.dim = self.encoder.config.hidden_size
        if freeze:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
        self.config = {
            "name_or_path": self.source,
            "freeze": freeze,
            "pooling": pooling,
            "max_length": max_length,
        }

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from ..text_encoders import resolve_text_encoder

            candidates = []
            if self._folder is not None:
                candidates.append(Path(self._folder) / TOKENIZER_DIR)
            if getattr(self, "_tokenizer_path", None):
                candidates.append(self._tokenizer_path)
            for cand in candidates:
                if Path(cand).is_dir():
                    self._tokenizer = AutoTokenizer.from_pretrained(str(cand))
                    break
            else:
                try:
                    self._tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder(self.source))
                except Exception as exc:
                    raise CheckpointError(
                        f"no tokenizer for the text encoder {self.source!r}: load the model with "
                        f"MuLaN/PretrainedTextTransformer.from_pretrained(folder) so {TOKENIZER_DIR}/ "
                        "is used "
                        f"({type(exc).__name__}: {exc})"
                    ) from exc
        return self._tokenizer

    def tokenize(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        texts = check_texts(texts)
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        device = next(self.encoder.parameters()).device
        return enc["input_ids"].to(device), enc["attention_mask"].bool().to(device)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.dtype.is_floating_point:
            raise ShapeError("token ids must be an integer tensor (B, L)")
        vocab = self.encoder.config.vocab_size
        if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
            raise ShapeError(f"token ids must lie in [0, {vocab}) for {self.source!r}")
        device = next(self.encoder.parameters()).device
        ids = ids[:, : self.max_length].to(device)
        pad = getattr(self.encoder.config, "pad_token_id", 0) or 0
        mask = (ids != pad) if mask is None else mask[:, : ids.shape[1]].to(device).bool()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.to(hidden.dtype)[..., None]
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def embed_texts(self, texts) -> torch.Tensor:
        return self(*self.tokenize(texts))

    # persistence: the HF config rides in config.json; tokenizer files go to text_tokenizer/
    def get_config(self) -> dict[str, Any]:
        hf = self.encoder.config.to_dict()
        hf.pop("transformers_version", None)
        hf.pop("_name_or_path", None)
        return {**self.config, "hf_config": hf}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        return cls(**config)

    def save_assets(self, folder: str | os.PathLike) -> None:
        self.tokenizer.save_pretrained(str(Path(folder) / TOKENIZER_DIR))

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = super().save_pretrained(folder)
        self.save_assets(folder)
        return folder

    @classmethod
    def from_pretrained(cls, path_or_id, **kwargs) -> Self:
        return _from_pretrained_with_assets(cls, path_or_id, **kwargs)


def _from_pretrained_with_assets(cls, path_or_id, *, revision=None, **kwargs):
    folder = resolve_pretrained(
        path_or_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, f"{TOKENIZER_DIR}/*"]
    )
    return PretrainedModel.from_pretrained.__func__(cls, folder, _folder=str(folder), **kwargs)


TEXT_TOWERS = {"TextTransformer": TextTransformer, "PretrainedTextTransformer": PretrainedTextTransformer}


def _text_tower_from_config(config: dict[str, Any], folder: str | None):
    config = dict(config)
    name = config.pop("_class", "TextTransformer")
    if name not in TEXT_TOWERS:
        raise CheckpointError(f"unknown text tower {name!r}; expected one of {sorted(TEXT_TOWERS)}")
    if name == "PretrainedTextTransformer":
        config["_folder"] = folder
    return TEXT_TOWERS[name].from_config(config)
