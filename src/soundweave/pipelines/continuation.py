"""Audio continuation with SoundStorm, best of N by closeness to the prompt in a joint embedding space.

    pipe = ContinuationPipeline(soundstorm, scorer=mulan)       # scorer: MuLaN, ClapMuLaN, or None
    audio = pipe(prompt, sample_rate=16000, seconds=4.0, num_samples=4, seed=0)          # (T,) the best
    out = pipe(prompt, sample_rate=16000, seconds=4.0, num_samples=4, seed=0, return_all=True)
    out.audio, out.scores                                       # (N, T) best first, (N,) cosines

SoundStorm keeps the prompt's codes and fills the frames after it (AudioLM-style prompting). The N
continuations are drawn in one batched call; each one's generated part (the prompt excluded) and the prompt
are resampled to the scorer's rate, embedded with `get_audio_latents`, and the continuations are ranked by
cosine with the prompt - MusicLM's best-of-N reranking, with the prompt standing where the caption stands.
Use a scorer other than the one you evaluate with, or the figure measures the reranker, not the music.
A pipeline: it owns no weights; every setting is per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..audio.io import check_sample_rate, resample
from ..errors import ConfigError, ShapeError


@dataclass
class ContinuationOutput:
    audio: torch.Tensor  # (N, T) prompt + continuation at sample_rate, best first
    scores: torch.Tensor | None  # (N,) cosine of each continuation with the prompt, descending; None unscored
    sample_rate: int
    prompt_samples: int  # the first prompt_samples of every row are the (codec-decoded) prompt
    seed: int | None = None


def prompt_similarity(scorer, prompt: torch.Tensor, continuations: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Cosine, in `scorer`'s audio embedding space, of each continuation `(N, T)` with the prompt `(T_p,)`, both
    at `sample_rate` and resampled to the scorer's own rate first: `(N,)`."""
    target = int(scorer.sample_rate)
    if sample_rate != target:
        prompt, continuations = resample(prompt, sample_rate, target), resample(continuations, sample_rate, target)
    with torch.no_grad():
        reference = scorer.get_audio_latents(prompt.reshape(1, -1).float(), sample_rate=target).float()
        latents = scorer.get_audio_latents(continuations.float(), sample_rate=target).float()
    return (latents @ reference.t())[:, 0].cpu()


class ContinuationPipeline:
    """Continue a clip with a `SoundStorm` that has a codec attached; optionally rerank N draws by a `scorer`
    (anything with `sample_rate` and `get_audio_latents`, e.g. `MuLaN` or `ClapMuLaN`). See the module docstring."""

    def __init__(self, soundstorm, scorer=None):
        if getattr(soundstorm, "soundstream", None) is None:
            raise ConfigError("ContinuationPipeline needs a SoundStorm with a codec attached "
                              "(SoundStorm(net, soundstream=codec), or one saved by `soundweave train soundstorm`)")
        if scorer is not None and not (hasattr(scorer, "get_audio_latents") and hasattr(scorer, "sample_rate")):
            raise ConfigError("scorer must be a MuLaN (or any model with sample_rate and get_audio_latents), "
                              f"got {type(scorer).__name__}")
        self.soundstorm, self.scorer = soundstorm, scorer

    @property
    def sample_rate(self) -> int:
        return int(self.soundstorm.soundstream.sample_rate)

    def __call__(self, audio: torch.Tensor, sample_rate: int, *, seconds: float, prompt_seconds: float | None = None,
                 num_samples: int = 1, seed: int | None = None, generator: torch.Generator | None = None,
                 return_all: bool = False, **generate_kwargs):
        """Continue `audio` `(T,)` at `sample_rate` (its first `prompt_seconds`, default all of it) to `seconds`
        in all, prompt included. Draws `num_samples` continuations in one batch; with a scorer and more than one,
        they are ranked by `prompt_similarity`. Returns the best `(T,)` at `self.sample_rate`, or with
        `return_all=True` a `ContinuationOutput`. Other keyword arguments (steps, temperature, top_k,
        choice_temperature, precision, ...) go to `SoundStorm.generate`."""
        taken = sorted({"batch_size", "prompt_audio", "prompt_acoustic_token_ids", "return_codes", "return_list",
                        "texts"} & set(generate_kwargs))
        if taken:
            raise ConfigError(f"{', '.join(taken)}: set by the pipeline (num_samples, the prompt audio), not per call")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
        if not isinstance(audio, torch.Tensor) or not audio.is_floating_point():
            raise ShapeError("audio must be a float tensor (T,) or (1, T)")
        if audio.ndim == 2 and audio.shape[0] == 1:
            audio = audio[0]
        if audio.ndim != 1:
            raise ShapeError(f"audio must be one clip, (T,) or (1, T), got {tuple(audio.shape)}")
        rate = self.sample_rate
        audio = resample(audio.float().cpu(), check_sample_rate(sample_rate), rate)
        if prompt_seconds is not None:
            if prompt_seconds <= 0:
                raise ConfigError(f"prompt_seconds must be > 0, got {prompt_seconds}")
            audio = audio[: int(round(prompt_seconds * rate))]
        storm, codec = self.soundstorm, self.soundstorm.soundstream
        prompt_codes, _ = storm.encode_audio(audio[None])
        frames = codec.seconds_to_frames(seconds)
        P = prompt_codes.shape[1]
        if P == 0:
            raise ShapeError("the prompt is shorter than one codec frame; give more audio")
        if frames <= P:
            raise ConfigError(f"seconds={seconds} ({frames} frames) leaves nothing to generate after the "
                              f"{P}-frame prompt ({P / codec.frame_rate:.2f} s); ask for more seconds")
        out = storm.generate(frames, batch_size=num_samples, prompt_acoustic_token_ids=prompt_codes,
                             seed=seed, generator=generator, **generate_kwargs)
        out = out.float().cpu()
        start = P * codec.hop_length
        scores = None
        if self.scorer is not None and num_samples > 1:
            scores = prompt_similarity(self.scorer, audio, out[:, start:], rate)
            order = scores.argsort(descending=True)
            out, scores = out[order], scores[order]
        if not return_all:
            return out[0]
        return ContinuationOutput(out, scores, rate, start, seed)


__all__ = ["ContinuationOutput", "ContinuationPipeline", "prompt_similarity"]
