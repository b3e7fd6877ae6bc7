"""SoundStorm: parallel generation of residual-VQ codec tokens (Borsos et al. 2023, arXiv 2305.09636).

    net = ConformerWrapper(codebook_size=1024, num_quantizers=12, conformer=dict(dim=512, depth=2))
    model = SoundStorm(net, steps=18, schedule="cosine")
    loss, breakdown = model(codes)                     # codes int64 (B, N, Q)
    codes = model.generate(1024, batch_size=2)         # (2, 1024, 12)

`ConformerWrapper` is the network: per frame, the embeddings of the Q tokens (each level its own table
with its own mask token) are summed, plus the time-aligned semantic token's embedding; a Conformer runs
over the N frames (not N x Q); Q output heads, of which only the needed one is computed.

`SoundStorm` adds the paper's training mask and MaskGIT decoding level by level (coarse to fine), and,
with a codec attached (`soundstream=`), takes audio in and gives audio out.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError
from ..nn.conformer import Conformer
from ..runtime import autocast, check_precision, make_generator
from ..samplers.maskgit import mask_schedule, maskgit_decode
from .base import _REGISTRY, PretrainedModel


def _is_int_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


@dataclass
class ConformerWrapperConfig:
    codebook_size: int
    num_quantizers: int
    conformer: dict = field(default_factory=dict)
    num_semantic_token_ids: int | None = None
    semantic_pad_id: int = -1
    semantic_ratio: float | None = None  # acoustic frames per semantic token (2.0 for 25 Hz -> 50 Hz); None = any
    cond_dim: int | None = None
    cond_mode: str = "adaln"


class ConformerWrapper(PretrainedModel):
    """Codes `(B, N, Q)` (value `codebook_size` = masked) -> logits for one level `(B, N, C)` or all `(B, N, Q, C)`.

    Args:
        codebook_size: C, tokens per level.
        num_quantizers: Q, residual levels.
        conformer: keyword arguments of `soundweave.Conformer` (at least `dim` and `depth`).
        num_semantic_token_ids: K to condition on semantic tokens `(B, S)`, summed per frame after
            upsampling to the N frames (repetition for integer ratios, linear interpolation otherwise).
        semantic_pad_id: the semantic id that means "no token" (contributes nothing).
        semantic_ratio: acoustic frames per semantic token; when set, S must fit N (|S * ratio - N| < ratio).
        cond_dim / cond_mode: global conditioning tokens `(B, L, cond_dim)` (e.g. MuLaN tokens) through
            adaptive LayerNorm ("adaln") or cross-attention ("cross").
    """

    def __init__(self, codebook_size: int, num_quantizers: int, conformer: dict | None = None,
                 num_semantic_token_ids: int | None = None, semantic_pad_id: int = -1,
                 semantic_ratio: float | None = None, cond_dim: int | None = None, cond_mode: str = "adaln"):
        super().__init__()
        if conformer is not None and not isinstance(conformer, dict):
            raise ConfigError("conformer must be a dict of Conformer keyword arguments, e.g. dict(dim=512, depth=2), "
                              f"got {type(conformer).__name__}")
        conformer = dict(conformer or {})
        conformer.pop("attn_flash", None)  # soundstorm-pytorch's switch; attention always goes through SDPA here
        unknown = set(conformer) - set(inspect.signature(Conformer).parameters)
        if unknown:
            raise ConfigError(f"unknown Conformer option(s) {sorted(unknown)}; accepted: "
                              f"{sorted(set(inspect.signature(Conformer).parameters) - {'cond_dim', 'cond_mode'})}")
        for name, value in (("codebook_size", codebook_size), ("num_quantizers", num_quantizers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ConformerWrapper {name} must be a positive integer, got {value!r}")
        if "dim" not in conformer or "depth" not in conformer:
            raise ConfigError(f"conformer=dict(...) needs at least dim and depth, got {conformer}")
        for key in ("cond_dim", "cond_mode"):
            if key in conformer:
                raise ConfigError(f"pass {key} to ConformerWrapper, not inside conformer=dict(...)")
        if num_semantic_token_ids is not None and (not isinstance(num_semantic_token_ids, int)
                                                   or num_semantic_token_ids < 1):
            raise ConfigError("num_semantic_token_ids must be a positive integer or None, "
                              f"got {num_semantic_token_ids!r}")
        if semantic_ratio is not None and not semantic_ratio > 0:
            raise ConfigError(f"semantic_ratio must be > 0 or None, got {semantic_ratio!r}")
        if num_semantic_token_ids is not None and 0 <= semantic_pad_id < num_semantic_token_ids:
            raise ConfigError(f"semantic_pad_id {semantic_pad_id} collides with a real semantic id "
                              f"(0..{num_semantic_token_ids - 1}); use -1 or a value >= num_semantic_token_ids")
        if cond_dim is not None and (not isinstance(cond_dim, int) or cond_dim < 1):
            raise ConfigError(f"cond_dim must be a positive integer or None, got {cond_dim!r}")
        self.config = ConformerWrapperConfig(codebook_size, num_quantizers, conformer, num_semantic_token_ids,
                                             semantic_pad_id, semantic_ratio, cond_dim, cond_mode)
        self.conformer = Conformer(**conformer, cond_dim=cond_dim, cond_mode=cond_mode)
        dim = self.conformer.dim
        self.dim = dim
        # one table of Q * (C + 1) rows: level q's token c is row q * (C + 1) + c; c = C is level q's mask token
        self.code_embeds = nn.Parameter(torch.randn(num_quantizers * (codebook_size + 1), dim) * 0.02)
        self.register_buffer("level_offsets", torch.arange(num_quantizers) * (codebook_size + 1), persistent=False)
        self.semantic_embeds = nn.Embedding(num_semantic_token_ids, dim) if num_semantic_token_ids else None
        if self.semantic_embeds is not None:
            nn.init.normal_(self.semantic_embeds.weight, std=0.02)
        self.norm = nn.LayerNorm(dim)
        bound = 1 / math.sqrt(dim)
        self.head_weight = nn.Parameter(torch.empty(num_quantizers, codebook_size, dim).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.zeros(num_quantizers, codebook_size))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConformerWrapper:
        return cls(**config)

    # -- properties ------------------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def num_quantizers(self) -> int:
        return self.config.num_quantizers

    @property
    def mask_id(self) -> int:
        """The code value that means "masked" (every level has its own embedding for it)."""
        return self.config.codebook_size

    # -- inputs ----------------------------------------------------------------------------------------------
    def check_codes(self, codes: torch.Tensor, allow_mask: bool = True, name: str = "codes") -> torch.Tensor:
        Q, C = self.num_quantizers, self.codebook_size
        if not isinstance(codes, torch.Tensor):
            raise ShapeError(f"{name} must be a torch tensor of integer codes (B, N, {Q}), got {type(codes).__name__}")
        if not _is_int_tensor(codes):
            raise ShapeError(f"{name} must hold integer codes (int64), got dtype {codes.dtype}")
        if codes.ndim != 3 or codes.shape[-1] != Q or codes.shape[1] == 0 or codes.shape[0] == 0:
            raise ShapeError(f"{name} must be (B, N, Q={Q}) with N >= 1, got {tuple(codes.shape)}")
        high = C if allow_mask else C - 1
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi > high:
            raise ShapeError(f"{name} must lie in [0, {C - 1}] (codebook_size {C}), got values in [{lo}, {hi}]")
        return codes.long()

    def check_mask(self, mask: torch.Tensor | None, batch: int, frames: int) -> torch.Tensor | None:
        if mask is None:
            return None
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (batch, frames):
            got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ShapeError(f"mask must be a bool tensor (B={batch}, N={frames}) with True = real frame, got {got}")
        return mask

    def semantic_frames(self, num_semantic: int) -> int:
        """Acoustic frames that `num_semantic` semantic tokens cover (by `semantic_ratio`, else 1:1)."""
        ratio = self.config.semantic_ratio or 1.0
        return max(1, int(round(num_semantic * ratio)))

    def embed_semantic(self, ids: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Semantic ids `(B, S)` -> per-frame embeddings `(B, N, D)` (pad ids contribute zeros)."""
        cfg = self.config
        if self.semantic_embeds is None:
            raise ConfigError("this ConformerWrapper takes no semantic tokens: build it with num_semantic_token_ids=K")
        if not _is_int_tensor(ids) or ids.ndim != 2 or ids.shape[1] == 0:
            got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ShapeError(f"cond_semantic_token_ids must be integer (B, S) with S >= 1, got {got}")
        ids = ids.long()
        valid = ids.ne(cfg.semantic_pad_id)
        if valid.any():
            real = ids[valid]
            lo, hi = int(real.min()), int(real.max())
            if lo < 0 or hi >= cfg.num_semantic_token_ids:
                raise ShapeError(f"semantic ids must lie in [0, {cfg.num_semantic_token_ids - 1}] (or be the pad id "
                                 f"{cfg.semantic_pad_id}), got values in [{lo}, {hi}]")
        S, N = ids.shape[1], num_frames
        ratio = cfg.semantic_ratio
        if ratio is not None and abs(S * ratio - N) >= ratio:
            raise ShapeError(f"semantic length mismatch: {S} semantic tokens x semantic_ratio {ratio} = "
                             f"{S * ratio:g} frames, but the codes have {N} frames")
        if ratio is None and S > N:
            raise ShapeError(f"semantic length mismatch: {S} semantic tokens for only {N} acoustic frames "
                             "(set semantic_ratio on the ConformerWrapper if that is intended)")
        emb = self.semantic_embeds(ids.masked_fill(~valid, 0)) * valid[..., None].to(self.semantic_embeds.weight.dtype)
        if ratio is not None and float(ratio).is_integer():
            emb = emb.repeat_interleave(int(ratio), dim=1)
            if emb.shape[1] < N:
                emb = torch.cat([emb, emb[:, -1:].expand(-1, N - emb.shape[1], -1)], dim=1)
            return emb[:, :N]
        if N % S == 0:
            return emb.repeat_interleave(N // S, dim=1)
        return F.interpolate(emb.transpose(1, 2), size=N, mode="linear", align_corners=False).transpose(1, 2)

    # -- the network ---------------------------------------------------------------------------------------
    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the Q level embeddings per frame: `(B, N, Q)` -> `(B, N, D)`."""
        B, N, Q = codes.shape
        flat = (codes + self.level_offsets).reshape(B * N, Q)
        return F.embedding_bag(flat, self.code_embeds, mode="sum").reshape(B, N, -1)

    def logits(self, hidden: torch.Tensor, level: int | torch.Tensor | None = None) -> torch.Tensor:
        """hidden `(B, N, D)` -> logits of one level `(B, N, C)` (level int, or `(B,)` one per item) or all
        levels `(B, N, Q, C)` (level None)."""
        if level is None:
            return torch.einsum("bnd,qcd->bnqc", hidden, self.head_weight) + self.head_bias
        if isinstance(level, int):
            if not 0 <= level < self.num_quantizers:
                raise ShapeError(f"level must be in [0, {self.num_quantizers}), got {level}")
            return F.linear(hidden, self.head_weight[level], self.head_bias[level])
        weight, bias = self.head_weight[level], self.head_bias[level]  # (B, C, D), (B, C)
        return torch.baddbmm(bias[:, None, :].to(hidden.dtype), hidden, weight.transpose(1, 2).to(hidden.dtype))

    def forward(self, codes: torch.Tensor, mask: torch.Tensor | None = None,
                semantic_ids: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None, level: int | torch.Tensor | None = None, *,
                semantic_embeds: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                check: bool = True) -> torch.Tensor:
        """codes `(B, N, Q)` (mask id allowed), mask `(B, N)`, semantic_ids `(B, S)` (or precomputed
        `semantic_embeds` `(B, N, D)`), cond `(B, L, cond_dim)`, level -> logits (see `logits`).

        `positions` `(B, N)` bool (with an int `level`): logits only where it is True, `(M, C)` in row-major
        order - the final norm and the output head then run on those frames only."""
        if check:
            codes = self.check_codes(codes)
            mask = self.check_mask(mask, codes.shape[0], codes.shape[1])
        B, N, _ = codes.shape
        x = self.embed_codes(codes)
        if semantic_embeds is None and semantic_ids is not None:
            if semantic_ids.shape[0] != B:
                raise ShapeError(f"cond_semantic_token_ids has batch {semantic_ids.shape[0]}, codes have {B}")
            semantic_embeds = self.embed_semantic(semantic_ids, N)
        if semantic_embeds is not None:
            x = x + semantic_embeds
        hidden = self.conformer(x, mask=mask, cond=cond, cond_mask=cond_mask)
        if positions is not None:
            if not isinstance(level, int) or positions.shape != (B, N) or positions.dtype != torch.bool:
                raise ShapeError(f"positions must be bool (B, N) = {(B, N)} and needs an int level, got "
                                 f"{positions.dtype} {tuple(positions.shape)} with level {level!r}")
            hidden = hidden[positions]
        return self.logits(self.norm(hidden), level)


@dataclass
class SoundStormConfig:
    steps: int = 16
    steps_per_level: list[int] | None = None
    schedule: str = "cosine"
    temperature: float = 1.0
    cond_drop_prob: float = 0.0
    choice_temperature: float = 0.0


class SoundStorm(PretrainedModel):
    """SoundStorm around a `ConformerWrapper`, optionally with a codec (`SoundStream`) attached.

    Args:
        net: the `ConformerWrapper`.
        soundstream: a codec with `encode(audio (B, T)) -> codes (B, N, Q)`, `decode(codes) -> audio`,
            `sample_rate`, `hop_length`, `seconds_to_frames`; frozen, and saved inside this model's folder.
        steps: MaskGIT steps of the first (coarsest) level; the other levels take 1 step each (paper).
        steps_per_level: all Q step counts at once (overrides `steps`).
        schedule: masking schedule ("cosine" as the paper, "linear", "square", "sqrt").
        temperature: sampling temperature at the first step of a level, annealed linearly towards 0;
            the last step of every level is greedy (argmax).
        cond_drop_prob: in training, drop all conditioning (semantic and global) of an item with this
            probability, so that `generate(..., cond_scale=s)` can use classifier-free guidance.
        choice_temperature: Gumbel noise on the confidence that picks which sampled tokens to keep, annealed
            like the temperature (MaskGIT's randomised choice); 0 keeps the plain confidence ranking.

    Citation: Borsos, Sharifi, Vincent, Kharitonov, Zeghidour, Tagliasacchi. "SoundStorm: Efficient Parallel
    Audio Generation", arXiv 2305.09636 (2023).
    """

    def __init__(self, net: ConformerWrapper, soundstream: nn.Module | None = None, *, steps: int = 16,
                 steps_per_level: Sequence[int] | None = None, schedule: str = "cosine", temperature: float = 1.0,
                 cond_drop_prob: float = 0.0, choice_temperature: float = 0.0):
        super().__init__()
        if not isinstance(net, ConformerWrapper):
            raise ConfigError(f"SoundStorm needs a ConformerWrapper as its network, got {type(net).__name__}")
        if not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {steps!r}")
        mask_schedule(schedule)
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ConfigError(f"cond_drop_prob must be in [0, 1), got {cond_drop_prob}")
        self.net = net
        if choice_temperature < 0:
            raise ConfigError(f"choice_temperature must be >= 0, got {choice_temperature}")
        self.config = SoundStormConfig(steps, None, schedule, float(temperature), float(cond_drop_prob),
                                       float(choice_temperature))
        if steps_per_level is not None:
            self.config.steps_per_level = self._check_steps(steps_per_level)
        self.soundstream = None
        if soundstream is not None:
            self.attach_codec(soundstream)

    # -- codec -------------------------------------------------------------------------------------------------
    def attach_codec(self, soundstream: nn.Module) -> None:
        """Attach (or replace) the codec; it is frozen and kept in eval mode."""
        for attr in ("encode", "decode", "sample_rate", "hop_length", "seconds_to_frames"):
            if not hasattr(soundstream, attr):
                raise ConfigError(f"soundstream must be a codec with {attr!r} (e.g. soundweave.SoundStream)")
        q, c = getattr(soundstream, "num_quantizers", None), getattr(soundstream, "codebook_size", None)
        if q != self.net.num_quantizers or c != self.net.codebook_size:
            raise ConfigError(f"codec has {q} quantizers x codebook {c}, but the ConformerWrapper expects "
                              f"{self.net.num_quantizers} x {self.net.codebook_size}; build them to match")
        soundstream.requires_grad_(False)
        soundstream.eval()
        self.soundstream = soundstream

    def train(self, mode: bool = True) -> SoundStorm:
        super().train(mode)
        if self.soundstream is not None:
            self.soundstream.eval()
        return self

    # -- persistence ----------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config = {"net": self.net.get_config(), **asdict(self.config)}
        if self.soundstream is not None:
            if not hasattr(self.soundstream, "get_config"):
                raise ConfigError("the attached codec cannot describe itself (no get_config); save it separately")
            config["soundstream"] = {"_class": type(self.soundstream).__name__, **self.soundstream.get_config()}
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SoundStorm:
        config = dict(config)
        net = ConformerWrapper.from_config(config.pop("net"))
        codec_config = config.pop("soundstream", None)
        codec = None
        if codec_config is not None:
            codec_config = dict(codec_config)
            name = codec_config.pop("_class", "SoundStream")
            if name not in _REGISTRY:
                importlib.import_module("soundweave.models.codecs")._import_codec_modules()
            if name not in _REGISTRY:
                raise ConfigError(f"unknown codec class {name!r} in the SoundStorm config")
            codec = _REGISTRY[name].from_config(codec_config)
        return cls(net, codec, **config)

    # -- properties ----------------------------------------------------------------------------------------
    @property
    def num_quantizers(self) -> int:
        return self.net.num_quantizers

    @property
    def codebook_size(self) -> int:
        return self.net.codebook_size

    @property
    def mask_id(self) -> int:
        return self.net.mask_id

    @property
    def device(self) -> torch.device:
        return self.net.code_embeds.device

    def steps_for_levels(self, steps: int | Sequence[int] | None = None) -> list[int]:
        """Steps per level: an int sets the first level's (the rest take 1), a sequence gives all Q."""
        if steps is None:
            if self.config.steps_per_level is not None:
                return list(self.config.steps_per_level)
            steps = self.config.steps
        if isinstance(steps, int) and not isinstance(steps, bool):
            if steps < 1:
                raise ConfigError(f"steps must be >= 1, got {steps}")
            return [steps] + [1] * (self.num_quantizers - 1)
        return self._check_steps(steps)

    def _check_steps(self, steps: Sequence[int]) -> list[int]:
        steps = list(steps)
        if len(steps) != self.num_quantizers or not all(isinstance(s, int) and s >= 1 for s in steps):
            raise ConfigError(f"steps per level must be {self.num_quantizers} positive integers, got {steps}")
        return steps

    # -- inputs ---------------------------------------------------------------------------------------------
    def _require_codec(self, what: str):
        if self.soundstream is None:
            raise ConfigError(f"{what} needs a codec: build SoundStorm(net, soundstream=codec) "
                              "(or pass integer codes (B, N, Q) instead of audio)")
        return self.soundstream

    @torch.no_grad()
    def encode_audio(self, audio: torch.Tensor, mask: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Audio `(B, T)` (+ sample mask `(B, T)`) -> codes `(B, N, Q)` (+ frame mask `(B, N)`) via the codec."""
        codec = self._require_codec("audio input")
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise ShapeError(f"audio must be (B, T) float samples at {codec.sample_rate} Hz, got {tuple(audio.shape)}")
        if not torch.isfinite(audio).all():
            raise ShapeError("audio contains NaN or Inf samples")
        if mask is not None and (mask.dtype != torch.bool or mask.shape != audio.shape):
            raise ShapeError(f"with audio input, mask must be bool (B, T) = {tuple(audio.shape)} samples, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        codes = codec.encode(audio.to(self.device)).long()
        frame_mask = None
        if mask is not None:
            hop = codec.hop_length
            lengths = (mask.sum(dim=1) + hop - 1) // hop
            frame_mask = torch.arange(codes.shape[1], device=codes.device)[None, :] < lengths.to(codes.device)[:, None]
        return codes, frame_mask

    def _codes_and_mask(self, codes_or_audio: torch.Tensor, mask: torch.Tensor | None):
        if not isinstance(codes_or_audio, torch.Tensor):
            raise ShapeError(f"expected codes (B, N, Q) or audio (B, T) as a torch tensor, got "
                             f"{type(codes_or_audio).__name__}")
        if codes_or_audio.is_floating_point():
            return self.encode_audio(codes_or_audio, mask)
        codes = self.net.check_codes(codes_or_audio, allow_mask=False)
        return codes, self.net.check_mask(mask, codes.shape[0], codes.shape[1])

    # -- training --------------------------------------------------------------------------------------------
    def training_mask(self, codes: torch.Tensor, mask: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The paper's mask for a batch of codes `(B, N, Q)`.

        Per item: prompt delimiter t ~ U{0..L-1}, level q ~ U{0..Q-1}, p = cos(u) with u ~ U[0, pi/2];
        level q after t is masked with probability p (at least one token); all finer levels after t are
        masked; coarser levels and the prompt stay visible.

        Returns (masked `(B, N, Q)` bool = replaced by the mask token, target `(B, N)` bool = the level-q
        tokens to predict, level `(B,)`).
        """
        B, N, Q = codes.shape
        dev = codes.device
        valid = mask if mask is not None else torch.ones(B, N, dtype=torch.bool, device=dev)
        lengths = valid.sum(dim=1)

        def rand(*shape):
            return torch.rand(shape, generator=generator, device=dev)

        t = (rand(B) * lengths).long().clamp(max=(lengths - 1).clamp(min=0))
        level = (rand(B) * Q).long().clamp(max=Q - 1)
        p = torch.cos(rand(B) * math.pi / 2)
        frames = torch.arange(N, device=dev)[None, :]
        after = (frames >= t[:, None]) & valid
        target = after & (rand(B, N) < p[:, None])
        # at least one masked token per (non-empty) item: a random frame in [t, L)
        pick = t + (rand(B) * (lengths - t)).long()
        forced = (frames == pick[:, None]) & after & ~target.any(dim=1, keepdim=True)
        target = target | forced
        levels = torch.arange(Q, device=dev)[None, None, :]
        masked = ((levels > level[:, None, None]) & after[..., None]) | (
            (levels == level[:, None, None]) & target[..., None])
        return masked, target, level

    def forward(self, codes_or_audio: torch.Tensor, cond_semantic_token_ids: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                cond_mask: torch.Tensor | None = None, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss: cross-entropy on the masked level-q tokens only.

        codes_or_audio: int codes `(B, N, Q)`, or float audio `(B, T)` when a codec is attached.
        mask: `(B, N)` frame mask (or `(B, T)` sample mask with audio), True = real.
        Returns (loss, {"accuracy": masked-token accuracy, "masked_tokens": count, "level": mean level}).
        """
        codes, mask = self._codes_and_mask(codes_or_audio, mask)
        B, N, _ = codes.shape
        for name, value in (("cond", cond), ("cond_mask", cond_mask)):
            if value is not None and not isinstance(value, torch.Tensor):
                raise ShapeError(f"{name} must be a torch tensor, got {type(value).__name__}")
        if mask is not None and not mask.any():
            raise ShapeError("mask marks every frame of every item as padding; nothing to train on")
        semantic = None
        if cond_semantic_token_ids is not None:
            if not isinstance(cond_semantic_token_ids, torch.Tensor) or cond_semantic_token_ids.shape[0] != B:
                raise ShapeError(f"cond_semantic_token_ids must be (B={B}, S)")
            semantic = self.net.embed_semantic(cond_semantic_token_ids.to(codes.device), N)
        if self.training and self.config.cond_drop_prob > 0 and (semantic is not None or cond is not None):
            keep = torch.rand(B, generator=generator, device=codes.device) >= self.config.cond_drop_prob
            semantic, cond, cond_mask = self._drop_condition(keep, semantic, cond, cond_mask)
        masked, target, level = self.training_mask(codes, mask, generator)
        inputs = codes.masked_fill(masked, self.mask_id)
        if mask is not None:
            inputs = inputs.masked_fill(~mask[..., None], self.mask_id)
        logits = self.net(inputs, mask=mask, cond=cond, cond_mask=cond_mask, level=level,
                          semantic_embeds=semantic, check=False)  # (B, N, C)
        labels = codes.gather(2, level[:, None, None].expand(B, N, 1)).squeeze(-1)
        picked = logits[target].float()
        loss = F.cross_entropy(picked, labels[target])
        with torch.no_grad():
            accuracy = float((picked.argmax(-1) == labels[target]).float().mean())
        return loss, {"accuracy": accuracy, "masked_tokens": float(target.sum()), "level": float(level.float().mean())}

    @staticmethod
    def _drop_condition(keep: torch.Tensor, semantic: torch.Tensor | None, cond: torch.Tensor | None,
                        cond_mask: torch.Tensor | None):
        """Remove the conditioning of the items where `keep` `(B,)` is False (no semantic embedding, all
        global tokens masked: a zero vector for adaptive norm, nothing to attend to for cross-attention)."""
        if semantic is not None:
            semantic = semantic * keep[:, None, None].to(semantic.dtype)
        if cond is not None:
            if cond.ndim == 2:
                cond = cond[:, None]
            base = cond_mask if cond_mask is not None else torch.ones(cond.shape[:2], dtype=torch.bool,
                                                                      device=cond.device)
            cond_mask = base & keep[:, None].to(base.device)
        return semantic, cond, cond_mask

    # -- generation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, num_latents: int | None = None, *, seconds: float | None = None,
                 batch_size: int | None = None, cond_semantic_token_ids: torch.Tensor | None = None,
                 prompt_acoustic_token_ids: torch.Tensor | None = None, prompt_audio: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                 cond_mask: torch.Tensor | None = None, steps: int | Sequence[int] | None = None,
                 schedule: str | None = None, temperature: float | None = None,
                 cond_scale: float = 1.0, generator: torch.Generator | None = None, seed: int | None = None,
                 precision: str = "fp32", return_codes: bool = False, return_list: bool = False,
                 callback: Callable[[int, int], None] | None = None, choice_temperature: float | None = None):
        """Generate codes level by level, coarse to fine, each level by MaskGIT confidence decoding.

        Length: `num_latents` frames, or `seconds` (needs a codec), or that of `mask` / the semantic tokens.
        `prompt_acoustic_token_ids` `(B, P, Q)` (or `prompt_audio` `(B, T)` with a codec) fixes the first P
        frames, which come back unchanged. `mask` `(B, N)` marks real frames (padded ones are filled with 0).
        `steps`: int = first level's steps (others 1) or Q ints. `precision`: "fp32" or "bf16".
        `cond_scale` != 1 applies classifier-free guidance to the semantic/global conditioning (for models
        trained with `cond_drop_prob` > 0): logits = uncond + cond_scale * (cond - uncond), two passes in one batch.

        Returns codes `(B, N, Q)`; audio `(B, N * hop)` instead when a codec is attached (unless
        `return_codes`); with `return_list=True` a list of per-item tensors trimmed to each item's length.
        `callback(passes, total)` is called after every forward pass of the network (at most `sum(steps)`; a
        level whose tokens are all fixed early takes fewer), e.g. for a progress display; raising in it stops.
        """
        check_precision(precision)
        net, dev = self.net, self.device
        for name, value in (("cond_semantic_token_ids", cond_semantic_token_ids), ("cond", cond),
                            ("cond_mask", cond_mask), ("mask", mask)):
            if value is not None and not isinstance(value, torch.Tensor):
                raise ShapeError(f"{name} must be a torch tensor, got {type(value).__name__}")
        Q, mask_id = self.num_quantizers, self.mask_id
        level_steps = self.steps_for_levels(steps)
        schedule = schedule or self.config.schedule
        mask_schedule(schedule)
        temperature = self.config.temperature if temperature is None else float(temperature)
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        choice_temperature = (self.config.choice_temperature if choice_temperature is None
                              else float(choice_temperature))
        generator = make_generator(seed, generator, device=dev)

        # prompt
        if prompt_audio is not None:
            if prompt_acoustic_token_ids is not None:
                raise ConfigError("give prompt_acoustic_token_ids or prompt_audio, not both")
            if not isinstance(prompt_audio, torch.Tensor) or not prompt_audio.is_floating_point():
                raise ShapeError("prompt_audio must be a float tensor (B, T)")
            prompt_acoustic_token_ids, _ = self.encode_audio(prompt_audio if prompt_audio.ndim == 2
                                                             else prompt_audio.reshape(1, -1))
        prompt = None
        if prompt_acoustic_token_ids is not None:
            prompt = prompt_acoustic_token_ids
            if isinstance(prompt, torch.Tensor) and prompt.ndim == 2:
                prompt = prompt[None]
            prompt = net.check_codes(prompt, allow_mask=False, name="prompt_acoustic_token_ids").to(dev)

        # batch size
        sizes = {}
        if batch_size is not None:
            if not isinstance(batch_size, int) or batch_size < 1:
                raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
            sizes["batch_size"] = batch_size
        for name, tensor in (("cond_semantic_token_ids", cond_semantic_token_ids), ("mask", mask), ("cond", cond)):
            if isinstance(tensor, torch.Tensor) and tensor.ndim >= 2:
                sizes[name] = tensor.shape[0]
        if prompt is not None and prompt.shape[0] != 1:
            sizes["prompt"] = prompt.shape[0]
        if len(set(sizes.values())) > 1:
            raise ShapeError(f"inconsistent batch sizes: {sizes}")
        B = next(iter(sizes.values()), 1)
        if prompt is not None and prompt.shape[0] == 1:
            prompt = prompt.expand(B, -1, -1)

        # length
        if num_latents is not None and seconds is not None:
            raise ConfigError("give num_latents or seconds, not both")
        if seconds is not None:
            if not seconds > 0:
                raise ConfigError(f"seconds must be > 0, got {seconds}")
            num_latents = int(self._require_codec("seconds=").seconds_to_frames(seconds))
        if num_latents is None:
            if mask is not None and isinstance(mask, torch.Tensor) and mask.ndim == 2:
                num_latents = mask.shape[1]
            elif cond_semantic_token_ids is not None and isinstance(cond_semantic_token_ids, torch.Tensor):
                num_latents = net.semantic_frames(cond_semantic_token_ids.shape[-1])
            else:
                raise ConfigError("give the length: num_latents (frames), seconds=, a mask, or semantic tokens")
        if not isinstance(num_latents, int) or isinstance(num_latents, bool) or num_latents < 1:
            raise ConfigError(f"num_latents must be a positive integer, got {num_latents!r}")
        N = num_latents
        if mask is not None:
            mask = net.check_mask(mask, B, N).to(dev)
        valid = mask if mask is not None else torch.ones(B, N, dtype=torch.bool, device=dev)
        P = 0
        if prompt is not None:
            P = prompt.shape[1]
            if P >= N:
                raise ShapeError(f"the prompt has {P} frames but only {N} frames are asked for; "
                                 "ask for more frames than the prompt (the length includes the prompt)")
            if mask is not None and not valid[:, :P].all():
                raise ShapeError("the mask marks prompt frames as padding; the prompt must lie within every item")

        # conditioning, computed once
        semantic = None
        if cond_semantic_token_ids is not None:
            semantic = net.embed_semantic(cond_semantic_token_ids.to(dev), N)
        if cond is not None:
            cond = cond.to(dev)
            net.conformer.prepare_cond(cond, cond_mask, B)  # validates now rather than at the first pass

        guided = None
        if cond_scale != 1.0:
            if semantic is None and cond is None:
                raise ConfigError("cond_scale (classifier-free guidance) needs conditioning: semantic tokens or cond")
            keep = torch.arange(2 * B, device=dev) < B  # first half conditioned, second half not

            def twice(x: torch.Tensor | None) -> torch.Tensor | None:
                return None if x is None else torch.cat([x, x])

            g_sem, g_cond, g_cmask = self._drop_condition(keep, twice(semantic), twice(cond), twice(cond_mask))
            guided = {"mask": twice(mask), "semantic": g_sem, "cond": g_cond, "cond_mask": g_cmask}

        codes = torch.full((B, N, Q), mask_id, dtype=torch.long, device=dev)
        if prompt is not None:
            codes[:, :P] = prompt
        frames = torch.arange(N, device=dev)[None, :]
        fill = valid & (frames >= P)

        was_training = self.training
        self.eval()
        total_passes, passes = sum(level_steps), [0]

        def counted(logits: torch.Tensor) -> torch.Tensor:
            passes[0] += 1
            if callback is not None:
                callback(min(passes[0], total_passes), total_passes)
            return logits

        try:
            with autocast(dev, precision):  # one autocast region: bf16 weight casts are reused across passes
                for q in range(Q):
                    def level_logits(tokens: torch.Tensor, positions: torch.Tensor, q: int = q) -> torch.Tensor:
                        codes[..., q] = tokens
                        if guided is None:
                            return counted(net(codes, mask=mask, cond=cond, cond_mask=cond_mask, level=q,
                                               semantic_embeds=semantic, positions=positions, check=False))
                        both = net(torch.cat([codes, codes]), mask=guided["mask"], cond=guided["cond"],
                                   cond_mask=guided["cond_mask"], level=q, semantic_embeds=guided["semantic"],
                                   positions=torch.cat([positions, positions]), check=False).float()
                        conditional, unconditional = both.chunk(2)
                        return counted(unconditional + cond_scale * (conditional - unconditional))

                    codes[..., q] = maskgit_decode(level_logits, codes[..., q], fill, mask_id=mask_id,
                                                   steps=level_steps[q], schedule=schedule,
                                                   temperature=temperature, generator=generator,
                                                   masked_only=True, choice_temperature=choice_temperature)
        finally:
            self.train(was_training)
        codes = codes.masked_fill(~valid[..., None], 0)
        lengths = valid.sum(dim=1).tolist()

        if self.soundstream is not None and not return_codes:
            audio = self.soundstream.decode(codes)
            if not return_list:
                return audio
            hop = self.soundstream.hop_length
            return [audio[b, : lengths[b] * hop] for b in range(B)]
        if return_list:
            return [codes[b, : lengths[b]] for b in range(B)]
        return codes
