"""SoundStorm: parallel generation of residual-VQ codec tokens (Borsos et al. 2023, arXiv 2305.09636).

    net = ConformerWrapper(codebook_size=1024, num_quantizers=12, conformer=dict(dim=512, depth=2))
    model = SoundStorm(net, steps=18, schedule="cosine")
    loss, breakdown = model(codes)                     # codes int64 (B, N, Q)
    codes = model.generate(1024, batch_size=2)         # (2, 1024, 12)

`ConformerWrapper` (models/conformer_wrapper.py) is the network: per frame, the embeddings of the Q tokens
are summed (plus the time-aligned semantic token's); a Conformer runs over the N frames; Q output heads.

`SoundStorm` adds the paper's training mask and MaskGIT decoding level by level (coarse to fine), and,
with a codec attached (`soundstream=`), takes audio in and gives audio out.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError
from ..runtime import autocast, check_precision, make_generator
from ..samplers.maskgit import mask_schedule, maskgit_decode
from ..samplers.top_k import check_top_k
from ..samplers.windows import check_window, sliding_windows
from .base import _REGISTRY, PretrainedModel
from .conformer_wrapper import ConformerWrapper, ConformerWrapperConfig, _is_int_tensor  # noqa: F401
from .soundstorm_speech import SpeechMixin


@dataclass
class SoundStormConfig:
    steps: int = 16
    steps_per_level: list[int] | None = None
    schedule: str = "cosine"
    temperature: float = 1.0
    cond_drop_prob: float = 0.0
    choice_temperature: float = 0.0
    level_probs: list[float] | None = None
    top_k: int | None = None
    window_frames: int | None = None
    window_context: float = 0.5

    def __post_init__(self):
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {self.steps!r}")
        mask_schedule(self.schedule)
        for name in ("temperature", "choice_temperature"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ConfigError(f"cond_drop_prob must be in [0, 1), got {self.cond_drop_prob}")
        if self.level_probs is not None:
            try:
                probs = [float(p) for p in self.level_probs]
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"level_probs must be a list of numbers, got {self.level_probs!r}") from exc
            if not probs or any(not math.isfinite(p) or p < 0 for p in probs) or sum(probs) <= 0:
                raise ConfigError(f"level_probs must be non-negative numbers with a positive sum, got {probs}")
            self.level_probs = [p / sum(probs) for p in probs]
        check_top_k(self.top_k)
        check_window(self.window_frames, self.window_context)


def _this_call(value: int | None, stored: int | None) -> int | None:
    """A per-call setting where None means the model's stored one and 0 means off (None) for this call."""
    if value is None:
        return stored
    return None if value == 0 and not isinstance(value, bool) else value


class SoundStorm(SpeechMixin, PretrainedModel):
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
        top_k: sample each token among its level's k likeliest codes only (None: all codes).
        window_frames: generate sequences longer than this in sliding windows of at most this many frames, each
            starting with `window_context` (a share of the window) of what came before as its prompt (the
            paper's way to long outputs; memory and time then grow linearly). None: one pass over everything -
            better within a few times the training length (measured in the README).
        level_probs: in training, how often each of the Q levels is the one an item is trained on (normalised;
            None = uniform, as the paper). Uniform spends 7/8 of an 8-level model's updates on the fine levels,
            which carry the least structure; on a small compute budget weighting the coarse level (e.g. half
            the items on level 0) learns what carries pitch and timbre sooner.
        spear_tts_text_to_semantic: a `TextToSemantic` for text to speech: `generate(texts=[...])` turns texts
            into semantic units with it, then units into codes (and audio with a codec). It is frozen here
            (train it on its own); a network built without a semantic table gets one of its unit vocabulary.

    Citation: Borsos, Sharifi, Vincent, Kharitonov, Zeghidour, Tagliasacchi. "SoundStorm: Efficient Parallel
    Audio Generation", arXiv 2305.09636 (2023).
    """

    def __init__(self, net: ConformerWrapper, soundstream: nn.Module | None = None, *, steps: int = 16,
                 steps_per_level: Sequence[int] | None = None, schedule: str = "cosine", temperature: float = 1.0,
                 cond_drop_prob: float = 0.0, choice_temperature: float = 0.0,
                 level_probs: Sequence[float] | None = None, top_k: int | None = None,
                 window_frames: int | None = None, window_context: float = 0.5,
                 spear_tts_text_to_semantic: nn.Module | None = None):
        super().__init__()
        if not isinstance(net, ConformerWrapper):
            raise ConfigError(f"SoundStorm needs a ConformerWrapper as its network, got {type(net).__name__}")
        self.config = SoundStormConfig(steps, None, schedule, float(temperature), float(cond_drop_prob),
                                       float(choice_temperature), None if level_probs is None else list(level_probs),
                                       top_k, window_frames, window_context)
        if self.config.level_probs is not None and len(self.config.level_probs) != net.num_quantizers:
            raise ConfigError(f"level_probs has {len(self.config.level_probs)} entries but the network has "
                              f"{net.num_quantizers} levels")
        self.net = net
        if steps_per_level is not None:
            self.config.steps_per_level = self._check_steps(steps_per_level)
        self.soundstream = None
        if soundstream is not None:
            self.attach_codec(soundstream)
        self.text_to_semantic = None
        if spear_tts_text_to_semantic is not None:
            self.attach_text_to_semantic(spear_tts_text_to_semantic)
        self.default_voice: torch.Tensor | None = None  # (P, Q) codes: generate_speech's prompt when none is given

    # -- codec -------------------------------------------------------------------------------------------------
    def attach_codec(self, soundstream: nn.Module) -> None:
        """Attach (or replace) the codec; it is frozen and kept in eval mode."""
        for attr in ("encode", "decode", "sample_rate", "hop_length", "seconds_to_frames"):
            if not hasattr(soundstream, attr):
                raise ConfigError(f"soundstream must be a codec with {attr!r} (e.g. soundweave.SoundStream)")
        self.net.check_codec(soundstream)
        soundstream.requires_grad_(False)
        soundstream.eval()
        self.soundstream = soundstream

    def train(self, mode: bool = True) -> SoundStorm:
        super().train(mode)
        if self.soundstream is not None:
            self.soundstream.eval()
        if getattr(self, "text_to_semantic", None) is not None:
            self.text_to_semantic.eval()
        return self

    # -- persistence ----------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config = {"net": self.net.get_config(), **asdict(self.config)}
        if self.soundstream is not None:
            if not hasattr(self.soundstream, "get_config"):
                raise ConfigError("the attached codec cannot describe itself (no get_config); save it separately")
            config["soundstream"] = {"_class": type(self.soundstream).__name__, **self.soundstream.get_config()}
        if self.text_to_semantic is not None:
            config["text_to_semantic"] = self.text_to_semantic.get_config()
        if self.default_voice is not None:
            config["default_voice"] = self.default_voice.tolist()
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
        t2s_config = config.pop("text_to_semantic", None)
        t2s = None
        if t2s_config is not None:
            from .text_to_semantic import TextToSemantic

            t2s = TextToSemantic.from_config(t2s_config)
        voice = config.pop("default_voice", None)
        model = cls(net, codec, spear_tts_text_to_semantic=t2s, **config)
        if voice is not None:
            model.set_default_voice(torch.tensor(voice, dtype=torch.long))
        return model

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

        Per item: prompt delimiter t ~ U{0..L-1}, level q ~ U{0..Q-1} (or drawn from `level_probs`),
        p = cos(u) with u ~ U[0, pi/2]; level q after t is masked with probability p (at least one token); all
        finer levels after t are masked; coarser levels and the prompt stay visible.

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
        if self.config.level_probs is None:
            level = (rand(B) * Q).long().clamp(max=Q - 1)
        else:  # inverse CDF of the level distribution
            cdf = torch.tensor(self.config.level_probs, device=dev).cumsum(0)
            level = torch.searchsorted(cdf, rand(B) * cdf[-1], right=True).clamp(max=Q - 1)
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
                 callback: Callable[[int, int], None] | None = None, choice_temperature: float | None = None,
                 texts: str | Sequence[str] | None = None, semantic_temperature: float = 0.0,
                 top_k: int | None = None, window_frames: int | None = None,
                 window_context: float | None = None):
        """Generate codes level by level, coarse to fine, each level by MaskGIT confidence decoding.

        `texts` (needs `spear_tts_text_to_semantic`): text to speech - see `generate_speech`, which this calls
        with the other arguments (`prompt_audio` / `prompt_acoustic_token_ids` = the voice prompt).

        Length: `num_latents` frames, or `seconds` (needs a codec), or that of `mask` / the semantic tokens.
        `prompt_acoustic_token_ids` `(B, P, Q)` (or `prompt_audio` `(B, T)` with a codec) fixes the first P
        frames, which come back unchanged. `mask` `(B, N)` marks real frames (padded ones are filled with 0).
        `steps`: int = first level's steps (others 1) or Q ints. `precision`: "fp32" or "bf16". `temperature`,
        `choice_temperature`, `top_k`: this call's sampling (None: the model's config; `top_k=0`: all codes).
        `window_frames` / `window_context`: this call's sliding windows (None: the model's; `window_frames=0`: one
        pass).
        `cond_scale` != 1 applies classifier-free guidance to the semantic/global conditioning (for models
        trained with `cond_drop_prob` > 0): logits = uncond + cond_scale * (cond - uncond), two passes in one batch.

        Returns codes `(B, N, Q)`; audio `(B, N * hop)` instead when a codec is attached (unless
        `return_codes`); with `return_list=True` a list of per-item tensors trimmed to each item's length.
        `callback(passes, total)` is called after every forward pass of the network (at most `sum(steps)`; a
        level whose tokens are all fixed early takes fewer), e.g. for a progress display; raising in it stops.
        """
        if texts is not None:
            if any(x is not None for x in (cond_semantic_token_ids, num_latents, seconds, mask)):
                raise ConfigError("with texts=, the length and the semantic tokens come from the text; do not also "
                                  "give num_latents, seconds, mask or cond_semantic_token_ids")
            return self.generate_speech(texts, prompt_audio=prompt_audio,
                                        prompt_acoustic_token_ids=prompt_acoustic_token_ids, steps=steps,
                                        schedule=schedule, temperature=temperature, generator=generator, seed=seed,
                                        precision=precision, return_codes=return_codes, callback=callback,
                                        choice_temperature=choice_temperature, top_k=top_k,
                                        semantic_temperature=semantic_temperature, cond=cond, cond_mask=cond_mask,
                                        cond_scale=cond_scale)
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
        top_k = _this_call(top_k, self.config.top_k)  # 0: all codes, whatever the model stores
        check_top_k(top_k)
        window_frames = _this_call(window_frames, self.config.window_frames)  # 0: one pass
        window_context = self.config.window_context if window_context is None else window_context
        check_window(window_frames, window_context)
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
            guided = {"semantic": g_sem, "cond": g_cond, "cond_mask": g_cmask}  # the mask is set per window

        codes = torch.full((B, N, Q), mask_id, dtype=torch.long, device=dev)
        if prompt is not None:
            codes[:, :P] = prompt
        spans = sliding_windows(N, P, window_frames, window_context)

        was_training = self.training
        self.eval()
        total_passes, passes = sum(level_steps) * len(spans), [0]

        def counted(logits: torch.Tensor) -> torch.Tensor:
            passes[0] += 1
            if callback is not None:
                callback(min(passes[0], total_passes), total_passes)
            return logits

        sampling = dict(schedule=schedule, temperature=temperature, generator=generator, masked_only=True,
                        choice_temperature=choice_temperature, top_k=top_k)
        try:
            with autocast(dev, precision):  # one autocast region: bf16 weight casts are reused across passes
                for span in spans:
                    self._decode_window(codes, span, valid, mask, semantic, cond, cond_mask, guided, cond_scale,
                                        level_steps, counted, sampling)
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

    def _decode_window(self, codes: torch.Tensor, span: tuple[int, int, int], valid: torch.Tensor,
                       mask: torch.Tensor | None, semantic: torch.Tensor | None, cond: torch.Tensor | None,
                       cond_mask: torch.Tensor | None, guided: dict[str, Any] | None, cond_scale: float,
                       level_steps: list[int], counted: Callable[[torch.Tensor], torch.Tensor],
                       sampling: dict[str, Any]) -> None:
        """Fill frames first..end-1 of `codes` `(B, N, Q)` in place, level by level, from passes over frames
        start..end-1 only (`span` = (start, first, end), one of `sliding_windows`)."""
        net, mask_id = self.net, self.mask_id
        start, first, end = span
        window = codes[:, start:end]  # a view: each level's tokens are written into `codes`
        real = valid[:, start:end]
        # a row with no real frame in this window attends to all of them (nothing of it is kept)
        w_mask = None if mask is None else real | ~real.any(dim=1, keepdim=True)
        fill = real & (torch.arange(start, end, device=codes.device)[None, :] >= first)
        w_sem = None if semantic is None else semantic[:, start:end]
        if guided is not None:
            guided = {**guided, "mask": None if w_mask is None else torch.cat([w_mask, w_mask]),
                      "semantic": None if guided["semantic"] is None else guided["semantic"][:, start:end]}
        for q in range(self.num_quantizers):
            def level_logits(tokens: torch.Tensor, positions: torch.Tensor, q: int = q) -> torch.Tensor:
                window[..., q] = tokens
                if guided is None:
                    return counted(net(window, mask=w_mask, cond=cond, cond_mask=cond_mask, level=q,
                                       semantic_embeds=w_sem, positions=positions, check=False))
                both = net(torch.cat([window, window]), mask=guided["mask"], cond=guided["cond"],
                           cond_mask=guided["cond_mask"], level=q, semantic_embeds=guided["semantic"],
                           positions=torch.cat([positions, positions]), check=False).float()
                conditional, unconditional = both.chunk(2)
                return counted(unconditional + cond_scale * (conditional - unconditional))

            window[..., q] = maskgit_decode(level_logits, window[..., q], fill, mask_id=mask_id,
                                            steps=level_steps[q], **sampling)
