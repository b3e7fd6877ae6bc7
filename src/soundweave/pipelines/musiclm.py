"""MusicLM: text -> MuLaN tokens -> semantic ids -> SoundStorm codes -> audio, best of N by MuLaN.

    musiclm = MusicLM(audio_lm=audio_lm, mulan_embed_quantizer=quantizer)
    music = musiclm("the crystalline sounds of the piano in a ballroom", num_samples=4)     # (T,) best of 4
    audio, scores = musiclm("a slow cello melody", num_samples=4, seconds=8, seed=0, return_all=True)

The caption goes through MuLaN's text tower and the quantizer's residual VQ once; each stage gets the
conditioning tokens of its own namespace (`semantic` for the semantic transformer, `acoustic_namespace`
for SoundStorm - by default "acoustic" if the quantizer has it, else "coarse"). The N samples are drawn in
one batched call, resampled from the codec's rate to the scorer's rate, embedded by MuLaN (or any model
with MuLaN's `get_audio_latents` / `get_text_latents`, e.g. `ClapMuLaN`) and ranked by cosine with the
caption. `prime_wave=` continues a given clip. A pipeline: no weights of its own, every setting per call.

Citation: Agostinelli et al., "MusicLM: Generating Music From Text", arXiv 2301.11325.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..audio.io import resample
from ..errors import CheckpointError, ConfigError, ShapeError
from .audiolm import AudioLM

PARTS = {"wav2vec": "semantic_tokenizer", "quantizer": "mulan_quantizer",
         "semantic_transformer": "semantic_transformer", "soundstorm": "soundstorm"}
PIPELINE_FILE = "musiclm.json"


@dataclass
class MusicLMOutput:
    audio: torch.Tensor  # (N, T) sorted best first, at sample_rate
    scores: torch.Tensor  # (N,) MuLaN text-audio cosine, descending
    sample_rate: int
    prompt: str
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    semantic_ids: torch.Tensor | None = None  # (N, S), same order as audio


def rerank(scorer, audio: torch.Tensor, sample_rate: int, text: str) -> torch.Tensor:
    """Cosine of each clip of `audio` `(N, T)` at `sample_rate` with `text`, after resampling the audio to
    the scorer's own rate: `(N,)`."""
    target = int(scorer.sample_rate)
    audio = resample(audio, sample_rate, target) if sample_rate != target else audio
    with torch.no_grad():
        audio_latents = scorer.get_audio_latents(audio, sample_rate=target).float()
        text_latents = scorer.get_text_latents(raw_texts=[text]).float()
    return (audio_latents @ text_latents.t())[:, 0].cpu()


class MusicLM:
    """Text to music over an `AudioLM` and a `MuLaNEmbedQuantizer` (see the module docstring).

    Args: audio_lm, mulan_embed_quantizer, semantic_namespace ("semantic"), acoustic_namespace (see above),
        scorer: the joint embedding that reranks (default: the quantizer's MuLaN).
    """

    def __init__(self, audio_lm: AudioLM, mulan_embed_quantizer, *, semantic_namespace: str = "semantic",
                 acoustic_namespace: str | None = None, scorer=None):
        if not isinstance(audio_lm, AudioLM):
            raise ConfigError(f"audio_lm must be an AudioLM, got {type(audio_lm).__name__}")
        quantizer = mulan_embed_quantizer
        namespaces = tuple(quantizer.namespaces)
        if acoustic_namespace is None:
            acoustic_namespace = "acoustic" if "acoustic" in namespaces else "coarse"
        for ns, needed in ((semantic_namespace, audio_lm.has_semantic_stage),
                           (acoustic_namespace, audio_lm.soundstorm.net.config.cond_dim is not None)):
            if needed and ns not in namespaces:
                raise ConfigError(f"the quantizer has namespaces {namespaces}, not {ns!r}")
        self.audio_lm, self.quantizer = audio_lm, quantizer
        self.semantic_namespace, self.acoustic_namespace = semantic_namespace, acoustic_namespace
        self.scorer = scorer if scorer is not None else quantizer.mulan

    @property
    def sample_rate(self) -> int:
        return self.audio_lm.sample_rate

    # -- folders ------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write each part to its own subfolder (semantic_tokenizer/, mulan_quantizer/, semantic_transformer/,
        soundstorm/ with the codec inside) and musiclm.json with the namespaces."""
        folder = Path(folder)
        lm = self.audio_lm
        if lm.soundstorm.soundstream is None:
            lm.soundstorm.attach_codec(lm.codec)
        parts = {"quantizer": self.quantizer, "soundstorm": lm.soundstorm, "wav2vec": lm.wav2vec,
                 "semantic_transformer": lm.semantic_transformer}
        for key, model in parts.items():
            if model is not None:
                model.save_pretrained(folder / PARTS[key])
        (folder / PIPELINE_FILE).write_text(json.dumps({
            "semantic_namespace": self.semantic_namespace, "acoustic_namespace": self.acoustic_namespace,
            "semantic_stage": lm.semantic_transformer is not None}, indent=2))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, device=None, **paths) -> MusicLM:
        """Load a folder written by `save_pretrained` (or by the demo); `paths` may point single parts
        elsewhere: wav2vec=, quantizer=, semantic_transformer=, soundstorm=."""
        from ..models.mulan import MuLaNEmbedQuantizer
        from ..models.semantic_tokenizer import SemanticTokenizer
        from ..models.semantic_transformer import SemanticTransformer
        from ..models.soundstorm import SoundStorm

        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"MusicLM folder {str(folder)!r} does not exist")
        unknown = set(paths) - set(PARTS)
        if unknown:
            raise ConfigError(f"unknown part(s) {sorted(unknown)}; parts are {sorted(PARTS)}")
        settings = json.loads((folder / PIPELINE_FILE).read_text()) if (folder / PIPELINE_FILE).is_file() else {}

        def where(key: str) -> Path | None:
            path = Path(paths[key]) if paths.get(key) else folder / PARTS[key]
            return path if path.is_dir() else None

        missing = [PARTS[k] for k in ("quantizer", "soundstorm") if where(k) is None]
        if missing:
            raise CheckpointError(f"{str(folder)!r} has no {', '.join(missing)} folder; train the parts first "
                                  "(soundweave train semantic-tokenizer | semantic | soundstorm) or run the demo")
        quantizer = MuLaNEmbedQuantizer.from_pretrained(where("quantizer"), device=device)
        soundstorm = SoundStorm.from_pretrained(where("soundstorm"), device=device)
        semantic = wav2vec = None
        if where("semantic_transformer") is not None and soundstorm.net.semantic_embeds is not None:
            semantic = SemanticTransformer.from_pretrained(where("semantic_transformer"), device=device)
            if where("wav2vec") is None:
                raise CheckpointError(f"{str(folder)!r} has a semantic transformer but no semantic_tokenizer folder")
            wav2vec = SemanticTokenizer.from_pretrained(where("wav2vec"), device=device)
        audio_lm = AudioLM(wav2vec=wav2vec, codec=soundstorm.soundstream, semantic_transformer=semantic,
                           soundstorm=soundstorm)
        return cls(audio_lm, quantizer, semantic_namespace=settings.get("semantic_namespace", "semantic"),
                   acoustic_namespace=settings.get("acoustic_namespace"))

    @torch.no_grad()
    def conditioning(self, text: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The caption's conditioning tokens for the semantic stage and for SoundStorm, `(1, q, d)` each."""
        self.quantizer.eval()
        ids = self.quantizer.get_embed_ids(raw_texts=[text])
        semantic = acoustic = None
        if self.audio_lm.has_semantic_stage and self.audio_lm.semantic_transformer.config.audio_text_condition:
            semantic = self.quantizer.conds_from_ids(ids, self.semantic_namespace)
        if self.audio_lm.soundstorm.net.config.cond_dim is not None:
            acoustic = self.quantizer.conds_from_ids(ids, self.acoustic_namespace)
        return semantic, acoustic

    def __call__(self, text: str, num_samples: int = 1, *, seconds: float = 10.0, cond_scale: float = 3.0,
                 acoustic_cond_scale: float | None = None, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None, generator: torch.Generator | None = None, return_all: bool = False,
                 prime_wave: torch.Tensor | None = None, prime_wave_sample_rate: int | None = None,
                 soundstorm_steps=None, precision: str = "fp32", acoustic_temperature: float | None = None,
                 acoustic_choice_temperature: float | None = None, acoustic_top_k: int | None = None,
                 callback: Callable[[str, int, int], None] | None = None):
        """Draw `num_samples` clips of `seconds` for `text` in one batch and rank them by MuLaN.

        Returns the best clip `(T,)` at `sample_rate`; with `return_all=True` a `MusicLMOutput` holding all
        of them best first with their scores. `acoustic_temperature` / `acoustic_choice_temperature` /
        `acoustic_top_k`: SoundStorm's token temperature, MaskGIT choice noise and top-k for this call (default: the
        values stored with its model).
        """
        if not isinstance(text, str) or not text.strip():
            raise ShapeError(f"text must be a non-empty string, got {text!r}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
        semantic_cond, acoustic_cond = self.conditioning(text)
        details = self.audio_lm.generate(
            num_samples, seconds=seconds, semantic_cond=semantic_cond, acoustic_cond=acoustic_cond,
            prime_wave=prime_wave, prime_wave_sample_rate=prime_wave_sample_rate, cond_scale=cond_scale,
            acoustic_cond_scale=acoustic_cond_scale, temperature=temperature, top_k=top_k,
            soundstorm_steps=soundstorm_steps, generator=generator, seed=seed, precision=precision,
            acoustic_temperature=acoustic_temperature, acoustic_choice_temperature=acoustic_choice_temperature,
            acoustic_top_k=acoustic_top_k,
            callback=callback, return_details=True)
        if callback is not None:
            callback("rerank", 0, 1)
        scores = rerank(self.scorer, details.audio, self.sample_rate, text)
        if callback is not None:
            callback("rerank", 1, 1)
        order = scores.argsort(descending=True)
        if not return_all:
            return details.audio[order[0]]
        semantic = details.semantic_ids[order.to(details.semantic_ids.device)] if details.semantic_ids is not None \
            else None
        return MusicLMOutput(details.audio[order], scores[order], self.sample_rate, text, seed, details.timings,
                             semantic)


__all__ = ["MusicLM", "MusicLMOutput", "rerank"]
