"""AudioLM: semantic ids (autoregressive) -> acoustic codes (SoundStorm, in parallel) -> audio (codec).

    audio_lm = AudioLM(wav2vec=wav2vec, codec=codec, semantic_transformer=semantic_transformer,
                       soundstorm=soundstorm)           # SoundStorm replaces AudioLM's coarse + fine stages
    audio = audio_lm(batch_size=2, seconds=4, semantic_cond=conds, acoustic_cond=conds2, seed=0)

A pipeline: it composes models and owns no weights; every sampling setting and the generator come with
the call. `semantic_transformer=None` with a SoundStorm that takes no semantic tokens is the "no semantic
stage" ablation (SoundStorm conditioned on MuLaN tokens only).

Citation: Borsos et al., "AudioLM: a Language Modeling Approach to Audio Generation", arXiv 2209.03143;
Borsos et al., "SoundStorm", arXiv 2305.09636.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..audio.io import check_audio, resample
from ..errors import ConfigError, ShapeError
from ..runtime import make_generator

StageCallback = Callable[[str, int, int], None]


@dataclass
class AudioLMOutput:
    audio: torch.Tensor  # (B, T) at sample_rate
    sample_rate: int
    semantic_ids: torch.Tensor | None  # (B, S)
    codes: torch.Tensor  # (B, N, Q)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


class AudioLM:
    """Semantic stage + SoundStorm + codec. `codec` defaults to the one attached to `soundstorm`."""

    def __init__(self, *, wav2vec=None, codec=None, semantic_transformer=None, soundstorm=None):
        if soundstorm is None:
            raise ConfigError("AudioLM needs soundstorm= (the acoustic stage)")
        codec = codec if codec is not None else getattr(soundstorm, "soundstream", None)
        if codec is None:
            raise ConfigError("AudioLM needs codec= (or a SoundStorm with a codec attached)")
        net = soundstorm.net
        if codec.num_quantizers != net.num_quantizers or codec.codebook_size != net.codebook_size:
            raise ConfigError(f"the codec makes {codec.num_quantizers} x {codec.codebook_size} codes but SoundStorm "
                              f"expects {net.num_quantizers} x {net.codebook_size}")
        takes_semantic = net.semantic_embeds is not None
        if semantic_transformer is not None:
            if wav2vec is None:
                raise ConfigError("a semantic stage needs wav2vec= (the SemanticTokenizer it was trained on)")
            if not takes_semantic:
                raise ConfigError("semantic_transformer given, but this SoundStorm was trained without semantic "
                                  "tokens (its ConformerWrapper has no num_semantic_token_ids)")
            if semantic_transformer.num_semantic_tokens != wav2vec.codebook_size:
                raise ConfigError("the semantic transformer and the tokenizer disagree on the number of units")
            if net.config.num_semantic_token_ids != wav2vec.codebook_size:
                raise ConfigError(f"SoundStorm takes {net.config.num_semantic_token_ids} semantic ids but the tokenizer"
                                  " "
                                  f"has {wav2vec.codebook_size}")
        elif takes_semantic:
            raise ConfigError("this SoundStorm is conditioned on semantic tokens: give semantic_transformer= and "
                              "wav2vec=")
        self.wav2vec, self.codec = wav2vec, codec
        self.semantic_transformer, self.soundstorm = semantic_transformer, soundstorm

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def has_semantic_stage(self) -> bool:
        return self.semantic_transformer is not None

    def __call__(self, *args, **kwargs):
        return self.generate(*args, **kwargs)

    def _frames_for(self, num_semantic: int) -> int:
        return self.codec.seconds_to_frames(num_semantic / self.wav2vec.rate)

    @torch.no_grad()
    def generate(self, batch_size: int = 1, *, seconds: float = 10.0, semantic_cond: torch.Tensor | None = None,
                 acoustic_cond: torch.Tensor | None = None, prime_wave: torch.Tensor | None = None,
                 prime_wave_sample_rate: int | None = None, cond_scale: float = 3.0,
                 acoustic_cond_scale: float | None = None, temperature: float = 1.0, top_k: int | None = None,
                 acoustic_temperature: float | None = None, acoustic_choice_temperature: float | None = None,
                 acoustic_top_k: int | None = None,
                 soundstorm_steps=None, generator: torch.Generator | None = None, seed: int | None = None,
                 precision: str = "fp32",
                 callback: StageCallback | None = None, return_details: bool = False):
        """`batch_size` clips of `seconds` -> audio `(B, T)` at the codec's rate (or an `AudioLMOutput`).

        semantic_cond / acoustic_cond: conditioning tokens `(B|1, q, d)` for each stage (each its own
        namespace). prime_wave `(T,)` / `(1, T)` at `prime_wave_sample_rate`: continue it (the output starts
        with it). cond_scale: the semantic stage's classifier-free guidance; acoustic_cond_scale: SoundStorm's
        (default: cond_scale when SoundStorm was trained with cond_drop_prob > 0, else 1). acoustic_temperature /
        acoustic_choice_temperature / acoustic_top_k: SoundStorm's token temperature, MaskGIT choice noise and top-k
        (default: the values stored with the SoundStorm model).
        `callback(stage, done, total)` reports progress ("semantic", "acoustic").
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ConfigError(f"seconds must be a positive number, got {seconds!r}")
        generator = make_generator(seed, generator)
        timings: dict[str, float] = {}
        prime = None
        if prime_wave is not None:
            prime = check_audio(prime_wave, "prime_wave").reshape(1, -1) if prime_wave.ndim == 1 else prime_wave
            if prime.ndim != 2 or prime.shape[0] != 1:
                raise ShapeError(f"prime_wave must be one clip (T,) or (1, T), got {tuple(prime_wave.shape)}")
            prime_seconds = prime.shape[-1] / (prime_wave_sample_rate or self.sample_rate)
            if prime_seconds >= seconds:
                raise ShapeError(f"prime_wave is {prime_seconds:.2f} s but only {seconds} s are asked for; the length "
                                 "includes the prime")

        semantic_ids = None
        if self.semantic_transformer is not None:
            start = time.perf_counter()
            num_tokens = self.wav2vec.seconds_to_tokens(seconds)
            prime_ids = None
            if prime is not None:
                prime_ids = self.wav2vec(prime, input_sample_hz=prime_wave_sample_rate or self.sample_rate)
            semantic_ids = self.semantic_transformer.generate(
                batch_size, cond=semantic_cond, num_tokens=num_tokens, prime_ids=prime_ids, temperature=temperature,
                top_k=top_k, cond_scale=cond_scale, generator=generator, precision=precision,
                callback=None if callback is None else (lambda d, t: callback("semantic", d, t)))
            timings["semantic_s"] = time.perf_counter() - start
            num_frames = self._frames_for(semantic_ids.shape[1])
        else:
            num_frames = self.codec.seconds_to_frames(seconds)

        start = time.perf_counter()
        prompt = None
        if prime is not None:
            prompt = resample(prime, prime_wave_sample_rate or self.sample_rate, self.sample_rate)
            prompt = self.codec.encode(prompt).long()
            prompt = prompt[:, : num_frames - 1]
        storm = self.soundstorm
        if acoustic_cond_scale is None:
            acoustic_cond_scale = cond_scale if storm.config.cond_drop_prob > 0 else 1.0
        if acoustic_cond is not None and acoustic_cond.shape[0] == 1 and batch_size > 1:
            acoustic_cond = acoustic_cond.expand(batch_size, -1, -1)
        if acoustic_cond is None and semantic_ids is None:
            acoustic_cond_scale = 1.0
        codes = storm.generate(num_frames, batch_size=batch_size, cond_semantic_token_ids=semantic_ids,
                               prompt_acoustic_token_ids=prompt, cond=acoustic_cond, steps=soundstorm_steps,
                               temperature=acoustic_temperature, choice_temperature=acoustic_choice_temperature,
                               top_k=acoustic_top_k,
                               cond_scale=acoustic_cond_scale, generator=generator,
                               precision=precision, return_codes=True,
                               callback=None if callback is None else (lambda d, t: callback("acoustic", d, t)))
        timings["acoustic_s"] = time.perf_counter() - start
        start = time.perf_counter()
        audio = self.codec.decode(codes).float().cpu()
        timings["decode_s"] = time.perf_counter() - start
        if not return_details:
            return audio
        return AudioLMOutput(audio, self.sample_rate, semantic_ids, codes, timings)


__all__ = ["AudioLM", "AudioLMOutput"]
