"""`MuLaNEmbedQuantizer`: residual VQ of MuLaN latents -> conditioning tokens, one projection per namespace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

import torch
from torch import nn

from ...errors import CheckpointError, ConfigError, ShapeError
from ..base import PretrainedModel
from .model import MuLaN
from .text_towers import PretrainedTextTransformer, _from_pretrained_with_assets


def is_joint_embedding(model: object) -> bool:
    """A MuLaN, or a module with MuLaN's interface (get_audio_latents, get_text_latents, dim_latent, sample_rate)."""
    needed = ("get_audio_latents", "get_text_latents", "dim_latent", "sample_rate", "device")
    return isinstance(model, MuLaN) or (isinstance(model, nn.Module) and all(hasattr(model, a) for a in needed))


class MuLaNEmbedQuantizer(PretrainedModel):
    """Residual VQ of MuLaN latents -> conditioning tokens, one learned projection per namespace.

    The frozen MuLaN embeds audio (wavs=) or text (texts= ids / raw_texts= strings); a ResidualVQ
    (vector-quantize-pytorch; `rq_num_quantizers` x `codebook_size`, EMA codebooks, k-means init) turns
    the latent into `q` code ids; namespace `ns` maps level k's code vector through its own
    `Linear(dim_latent, conditioning_dims[ns])` plus a learned level embedding:
    conds `(B, q, conditioning_dims[ns])`. The codebooks learn (EMA) whenever the module is called in
    training mode (or with `fit_codebooks`); in eval mode they are fixed.
    """

    def __init__(
        self,
        mulan: MuLaN,
        conditioning_dims: tuple[int, ...] | list[int],
        rq_num_quantizers: int = 8,
        codebook_size: int = 1024,
        namespaces: tuple[str, ...] | list[str] = ("semantic", "coarse", "acoustic"),
        rq_ema_decay: float = 0.9,
        kmeans_init: bool = True,
        threshold_ema_dead_code: int = 2,
    ):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        namespaces, conditioning_dims = tuple(namespaces), tuple(int(d) for d in conditioning_dims)
        if not is_joint_embedding(mulan):
            raise ConfigError("mulan must be a MuLaN (or a joint embedding with MuLaN's interface, e.g. ClapMuLaN)")
        if len(namespaces) != len(conditioning_dims) or not namespaces:
            raise ConfigError(
                f"need one conditioning dim per namespace, got {len(conditioning_dims)} dims for "
                f"namespaces {namespaces}"
            )
        if len(set(namespaces)) != len(namespaces):
            raise ConfigError(f"namespaces must be unique, got {namespaces}")
        if rq_num_quantizers < 1 or codebook_size < 2:
            raise ConfigError("rq_num_quantizers must be >= 1 and codebook_size >= 2")
        self.mulan = mulan
        self.mulan.requires_grad_(False)
        self.mulan.eval()
        dim = mulan.dim_latent
        self.rq = ResidualVQ(
            dim=dim,
            num_quantizers=rq_num_quantizers,
            codebook_size=codebook_size,
            decay=rq_ema_decay,
            kmeans_init=kmeans_init,
            kmeans_iters=10,
            threshold_ema_dead_code=threshold_ema_dead_code,
            commitment_weight=0.0,
        )
        self.namespaces = namespaces
        self.projections = nn.ModuleDict(
            {ns: nn.Linear(dim, d) for ns, d in zip(namespaces, conditioning_dims, strict=True)}
        )
        self.level_embeds = nn.ParameterDict(
            {
                ns: nn.Parameter(torch.randn(rq_num_quantizers, d) * 0.02)
                for ns, d in zip(namespaces, conditioning_dims, strict=True)
            }
        )
        self.config = {
            "conditioning_dims": list(conditioning_dims),
            "rq_num_quantizers": rq_num_quantizers,
            "codebook_size": codebook_size,
            "namespaces": list(namespaces),
            "rq_ema_decay": rq_ema_decay,
            "kmeans_init": kmeans_init,
            "threshold_ema_dead_code": threshold_ema_dead_code,
        }

    @property
    def num_quantizers(self) -> int:
        return self.config["rq_num_quantizers"]

    def train(self, mode: bool = True):
        super().train(mode)
        self.mulan.eval()  # MuLaN stays frozen: no SpecAugment, no dropout
        return self

    @torch.no_grad()
    def latents(self, wavs=None, texts=None, raw_texts=None, sample_rate=None, wav_mask=None) -> torch.Tensor:
        if (wavs is None) == (texts is None and raw_texts is None):
            raise ShapeError("give exactly one of wavs= or texts= / raw_texts=")
        if wavs is not None:
            return self.mulan.get_audio_latents(wavs, sample_rate=sample_rate, mask=wav_mask)
        return self.mulan.get_text_latents(texts, raw_texts)

    def quantize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, dim_latent) -> code ids (B, q) (updates the codebooks in training mode)."""
        _, ids, _ = self.rq(latents.float()[:, None, :])
        return ids[:, 0]

    def get_embed_ids(
        self, wavs=None, texts=None, raw_texts=None, sample_rate=None, wav_mask=None
    ) -> torch.Tensor:
        return self.quantize_latents(self.latents(wavs, texts, raw_texts, sample_rate, wav_mask))

    def conds_from_ids(self, ids: torch.Tensor, namespace: str | None = None) -> torch.Tensor:
        """Code ids (B, q) -> conditioning embeddings (B, q, conditioning_dims[namespace])."""
        namespace = self._namespace(namespace)
        q = self.num_quantizers
        if ids.ndim != 2 or ids.shape[1] != q:
            raise ShapeError(f"code ids must be (B, {q}), got {tuple(ids.shape)}")
        if ids.min() < 0 or ids.max() >= self.config["codebook_size"]:
            raise ShapeError(f"code ids must lie in [0, {self.config['codebook_size']})")
        codebooks = self.rq.codebooks  # (q, codebook_size, dim_latent)
        codes = codebooks[torch.arange(q, device=ids.device)[None, :], ids]  # (B, q, dim_latent)
        return self.projections[namespace](codes) + self.level_embeds[namespace]

    def _namespace(self, namespace: str | None) -> str:
        if namespace is None:
            if len(self.namespaces) > 1:
                raise ConfigError(f"say which namespace: one of {self.namespaces}")
            return self.namespaces[0]
        if namespace not in self.projections:
            raise ConfigError(f"unknown namespace {namespace!r}; this quantizer has {self.namespaces}")
        return namespace

    def forward(
        self,
        wavs=None,
        texts=None,
        raw_texts=None,
        *,
        namespace: str | None = None,
        return_embed_ids: bool = False,
        sample_rate: int | None = None,
        wav_mask=None,
    ):
        """-> conds (B, q, dim); with `return_embed_ids`, (conds, ids (B, q))."""
        namespace = self._namespace(namespace)
        ids = self.get_embed_ids(wavs, texts, raw_texts, sample_rate, wav_mask)
        conds = self.conds_from_ids(ids, namespace)
        return (conds, ids) if return_embed_ids else conds

    @torch.no_grad()
    def fit_codebooks(self, latents: torch.Tensor, epochs: int = 10, batch_size: int = 256) -> None:
        """Fit the RVQ codebooks (k-means init + EMA) to a set of MuLaN latents (N, dim_latent)."""
        was = self.training
        self.rq.train()
        for _ in range(epochs):
            for chunk in latents.split(batch_size):
                self.quantize_latents(chunk.to(self.device))
        self.rq.train(was)

    @property
    def device(self) -> torch.device:
        return self.mulan.device

    # -- persistence ------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        mulan = self.mulan.get_config()
        if not isinstance(self.mulan, MuLaN):
            mulan = {"_class": type(self.mulan).__name__, **mulan}
        return {**self.config, "mulan": mulan}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        config = dict(config)
        folder = config.pop("_folder", None)
        mulan_cfg = dict(config.pop("mulan"))
        mulan_cfg["_folder"] = folder
        kind = mulan_cfg.pop("_class", "MuLaN")
        if kind == "ClapMuLaN":
            from ..clap import ClapMuLaN

            return cls(ClapMuLaN.from_config(mulan_cfg), **config)
        if kind != "MuLaN":
            raise CheckpointError(f"unknown joint embedding {kind!r} in the quantizer's config")
        return cls(MuLaN.from_config(mulan_cfg), **config)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = super().save_pretrained(folder)
        if isinstance(getattr(self.mulan, "text", None), PretrainedTextTransformer):
            self.mulan.text.save_assets(folder)
        if hasattr(self.mulan, "save_assets"):  # e.g. ClapMuLaN: its processor and tokenizer files
            self.mulan.save_assets(folder)
        return folder

    @classmethod
    def from_pretrained(cls, path_or_id, **kwargs) -> Self:
        return _from_pretrained_with_assets(cls, path_or_id, **kwargs)
