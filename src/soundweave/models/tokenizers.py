"""Text tokenizers for the scratch text tower that need no downloaded vocabulary.

- `ByteTokenizer`: UTF-8 bytes (ids 3..258) plus pad/bos/eos; works on any string, nothing to train.
- `CaptionTokenizer`: a byte-level BPE trained on a caption corpus with HF `tokenizers` (every string
  still encodes: unseen words fall back to byte pieces). Its whole state is one JSON string, so it is
  stored inside the model's config.json.

Both share one interface: `encode(text) -> list[int]`, `__call__(texts, max_length) -> (ids, mask)`
with `ids` int64 `(B, L)` right-padded with `pad_id` and `mask` bool (True = real token), and
`to_config()` / `tokenizer_from_config(dict)` for persistence.

Bad input: `check_texts` rejects non-strings and empty / whitespace-only captions (`ShapeError`);
captions longer than `max_length` tokens are truncated (their first tokens are kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ..errors import ConfigError, ShapeError

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


def check_texts(texts: str | Sequence[str], name: str = "raw_texts") -> list[str]:
    """A string or a non-empty list of non-empty strings -> list[str]; anything else is a ShapeError."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)) or len(texts) == 0:
        raise ShapeError(
            f"{name} must be a string or a non-empty list of strings, got {type(texts).__name__}"
        )
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ShapeError(f"{name}[{i}] must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ShapeError(
                f"{name}[{i}] is empty (or only whitespace); an empty caption describes nothing - "
                "drop it or give a description"
            )
        out.append(text)
    return out


class _Base:
    pad_id = PAD_ID
    vocab_size: int

    def encode(self, text: str) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(
        self, texts: str | Sequence[str], max_length: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        texts = check_texts(texts)
        if max_length < 3:
            raise ConfigError(f"max_length must be >= 3 (bos + 1 token + eos), got {max_length}")
        rows = []
        for text in texts:
            body = self.encode(text)[: max_length - 2]
            rows.append([BOS_ID, *body, EOS_ID])
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), PAD_ID, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return ids, ids != PAD_ID

    def to_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


class ByteTokenizer(_Base):
    """UTF-8 bytes, lower-cased by default: id = 3 + byte. 259 ids in all."""

    offset = 3

    def __init__(self, lowercase: bool = True):
        self.lowercase = lowercase
        self.vocab_size = self.offset + 256

    def encode(self, text: str) -> list[int]:
        text = text.lower() if self.lowercase else text
        return [self.offset + b for b in text.strip().encode("utf-8")]

    def decode(self, ids: Iterable[int]) -> str:
        data = bytes(i - self.offset for i in ids if self.offset <= int(i) < self.vocab_size)
        return data.decode("utf-8", errors="replace")

    def to_config(self) -> dict[str, Any]:
        return {"type": "bytes", "lowercase": self.lowercase}


class CaptionTokenizer(_Base):
    """Byte-level BPE trained on captions (lower-cased). Ids 0..2 are pad/bos/eos."""

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_str(tokenizer_json)
        except Exception as exc:  # the JSON comes from a config file: make a bad one a clear error
            raise ConfigError(f"not a valid tokenizer JSON: {exc}") from exc
        self.vocab_size = self.tokenizer.get_vocab_size()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> CaptionTokenizer:
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=["<pad>", "<bos>", "<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        texts = [t for t in texts if isinstance(t, str) and t.strip()]
        if not texts:
            raise ConfigError("CaptionTokenizer.train needs at least one non-empty caption")
        tok.train_from_iterator(texts, trainer)
        return cls(tok.to_str())

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text.strip(), add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids if int(i) > EOS_ID])

    def to_config(self) -> dict[str, Any]:
        return {"type": "bpe", "json": self.tokenizer.to_str()}


def tokenizer_from_config(config: dict[str, Any] | None) -> ByteTokenizer | CaptionTokenizer:
    config = dict(config or {"type": "bytes"})
    kind = config.pop("type", "bytes")
    if kind == "bytes":
        return ByteTokenizer(**config)
    if kind == "bpe":
        return CaptionTokenizer(config["json"])
    raise ConfigError(f"unknown tokenizer type {kind!r}; expected 'bytes' or 'bpe'")
