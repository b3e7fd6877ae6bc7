"""Losses for aligning one encoder's output sequence to another's (audio -> text-encoder hidden states).

`contrastive_loss` is the per-token-position contrastive objective of audio2img: at every position l,
the audio token `a[i, l]` must be closer (cosine) to the text token `t[i, l]` of its own caption than to
the tokens `t[j, l]` of every other caption j in the pool; cross-entropy with the matching pair as the
label, averaged over positions and batch. The pool of captions sets the number of negatives: pass more
text rows than audio rows (e.g. cached target sequences of other captions, a memory bank) to get more
negatives than the batch holds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError, ShapeError

REGRESSIONS = ("mse", "cosine")


def _check_pair(audio_seq: torch.Tensor, text_seq: torch.Tensor) -> None:
    if audio_seq.ndim != 3 or text_seq.ndim != 3:
        raise ShapeError(f"audio_seq and text_seq must be (B, L, D) and (N, L, D), got {tuple(audio_seq.shape)} "
                         f"and {tuple(text_seq.shape)}")
    if audio_seq.shape[1:] != text_seq.shape[1:]:
        raise ShapeError(f"audio_seq {tuple(audio_seq.shape)} and text_seq {tuple(text_seq.shape)} must have the "
                         "same length L and width D")


def per_token_cosine(audio_seq: torch.Tensor, text_seq: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of matching positions: (B, L, D) x (B, L, D) -> (B, L)."""
    _check_pair(audio_seq, text_seq)
    return F.cosine_similarity(audio_seq.float(), text_seq.float(), dim=-1)


def regression_loss(audio_seq: torch.Tensor, text_seq: torch.Tensor, kind: str = "mse",
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error (`kind='mse'`) or 1 - cosine (`kind='cosine'`) between matching positions."""
    _check_pair(audio_seq, text_seq)
    if kind == "mse":
        per_pos = (audio_seq.float() - text_seq.float()).pow(2).mean(-1)
    elif kind == "cosine":
        per_pos = 1.0 - per_token_cosine(audio_seq, text_seq)
    else:
        raise ConfigError(f"regression must be one of {REGRESSIONS}, got {kind!r}")
    if mask is None:
        return per_pos.mean()
    weight = _position_weight(mask, per_pos.shape)
    return (per_pos * weight).sum() / weight.sum().clamp_min(1.0)


def _position_weight(mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    b, length = shape
    mask = torch.as_tensor(mask)
    if mask.ndim == 1:
        mask = mask[None].expand(b, -1)
    if tuple(mask.shape) != (b, length):
        raise ShapeError(f"mask must be (L,) or (B, L) = ({length},) or ({b}, {length}), got {tuple(mask.shape)}")
    return mask.float()


def contrastive_loss(audio_seq: torch.Tensor, text_seq: torch.Tensor, temperature: float = 0.15,
                     symmetric: bool = False, *, targets: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None, regression: str | None = None,
                     regression_weight: float = 1.0) -> torch.Tensor:
    """Per-token-position contrastive loss between audio sequences and text-encoder sequences.

    audio_seq: (B, L, D) aligner outputs. text_seq: (N, L, D) target hidden states, N >= B: the pool of
        captions each position is contrasted against. Rows beyond the batch's own captions are extra
        negatives (a memory bank or cached targets of other captions).
    temperature: softmax temperature of the cosine logits (0.15 as published).
    symmetric: also the text -> audio direction (each of the captions `targets` picks its audio among
        the B; needs every caption to be the positive of exactly one audio, i.e. unique `targets`).
    targets: (B,) index of each audio's caption in `text_seq` (default: `arange(B)`). Give duplicate
        captions one row and point both audios at it, so a caption is never its own negative.
    mask: (L,) or (B, L) bool/float weights of positions to include (default: all positions).
    regression: add `regression_weight` x an 'mse' or 'cosine' term between each audio and its target.

    Returns a scalar: mean over positions (and batch) of the cross-entropy at each position.
    """
    _check_pair(audio_seq, text_seq)
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    b, length, _ = audio_seq.shape
    n = text_seq.shape[0]
    if targets is None:
        if n < b:
            raise ShapeError(f"text_seq has {n} rows but audio_seq has {b}; pass targets=... or one text per audio")
        targets = torch.arange(b, device=audio_seq.device)
    targets = torch.as_tensor(targets, device=audio_seq.device).long()
    if targets.shape != (b,) or int(targets.min()) < 0 or int(targets.max()) >= n:
        raise ShapeError(f"targets must be ({b},) indices into the {n} text rows, got {targets.tolist()}")
    a = F.normalize(audio_seq.float(), dim=-1)
    t = F.normalize(text_seq.float(), dim=-1)
    # logits[l, i, j] = cos(a[i, l], t[j, l]) / temperature
    logits = torch.einsum("bld,nld->lbn", a, t) / temperature
    ce = F.cross_entropy(logits.reshape(length * b, n), targets.repeat(length), reduction="none").view(length, b).T
    terms = [ce]
    if symmetric:
        if torch.unique(targets).numel() != b:
            raise ConfigError("symmetric=True needs a distinct caption row per audio (unique targets)")
        # each positive caption picks its audio among the batch: logits over audios, (L, B_text, B_audio)
        back = logits[:, :, targets].transpose(1, 2)
        ce_back = F.cross_entropy(back.reshape(length * b, b), torch.arange(b, device=a.device).repeat(length),
                                  reduction="none").view(length, b).T
        terms = [0.5 * (ce + ce_back)]
    per_pos = terms[0]
    if mask is None:
        loss = per_pos.mean()
    else:
        weight = _position_weight(mask.to(per_pos.device), per_pos.shape)
        loss = (per_pos * weight).sum() / weight.sum().clamp_min(1.0)
    if regression is not None:
        loss = loss + regression_weight * regression_loss(audio_seq, text_seq[targets], regression, mask)
    return loss


__all__ = ["REGRESSIONS", "contrastive_loss", "per_token_cosine", "regression_loss"]
