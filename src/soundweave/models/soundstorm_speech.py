"""SoundStorm's text-to-speech path (SPEAR-TTS in front of SoundStorm, as in the SoundStorm paper): the
text-to-semantic stage it carries, the default voice, and `generate_speech` (what `generate(texts=...)` runs).
A mixin of `SoundStorm`; see soundweave.models.soundstorm.

Citation: Kharitonov et al., "Speak, Read and Prompt: High-Fidelity Text-to-Speech with Minimal Supervision"
(SPEAR-TTS), arXiv 2302.03540 (2023); Borsos et al., "SoundStorm", arXiv 2305.09636 (2023).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from ..runtime import make_generator


class SpeechMixin:
    """Text to speech for `SoundStorm`: `attach_text_to_semantic`, `set_default_voice`, `generate_speech`."""

    def attach_text_to_semantic(self, text_to_semantic: nn.Module) -> None:
        """Attach (or replace) the text-to-semantic stage; it is frozen and kept in eval mode. A network built
        without a semantic table (`num_semantic_token_ids=None`) gets one sized to the stage's unit vocabulary."""
        for attr in ("generate", "num_semantic_token_ids", "get_config"):
            if not hasattr(text_to_semantic, attr):
                raise ConfigError("spear_tts_text_to_semantic must be a soundweave.TextToSemantic "
                                  f"(it has no {attr!r})")
        k = int(text_to_semantic.num_semantic_token_ids)
        net = self.net
        if net.semantic_embeds is None:
            net.semantic_embeds = nn.Embedding(k, net.dim).to(net.code_embeds.device)
            nn.init.normal_(net.semantic_embeds.weight, std=0.02)
            net.config.num_semantic_token_ids = k
        elif net.config.num_semantic_token_ids < k:
            raise ConfigError(f"the TextToSemantic makes {k} semantic ids but the ConformerWrapper's semantic table "
                              f"has {net.config.num_semantic_token_ids}; build it with num_semantic_token_ids={k}")
        text_to_semantic.requires_grad_(False)
        text_to_semantic.eval()
        self.text_to_semantic = text_to_semantic

    def set_default_voice(self, voice: torch.Tensor | None) -> None:
        """The voice `generate_speech` uses without a prompt: codes `(P, Q)` or audio `(T,)` at the codec's rate
        (encoded by the attached codec); None = no default (the model then samples a voice). Saved in config.json."""
        if voice is None:
            self.default_voice = None
            return
        if isinstance(voice, torch.Tensor) and voice.is_floating_point():
            voice = self.encode_audio(voice.reshape(1, -1))[0][0]
        codes = self.net.check_codes(voice[None] if isinstance(voice, torch.Tensor) and voice.ndim == 2 else voice,
                                     allow_mask=False, name="default_voice")
        self.default_voice = codes[0].cpu()

    @torch.no_grad()
    def generate_speech(self, texts: str | Sequence[str], *, prompt_audio: torch.Tensor | None = None,
                        prompt_acoustic_token_ids: torch.Tensor | None = None, semantic_temperature: float = 0.0,
                        max_semantic_length: int | None = None, generator: torch.Generator | None = None,
                        seed: int | None = None, return_codes: bool = False, return_semantic: bool = False,
                        **kwargs) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """Text -> semantic units (`spear_tts_text_to_semantic`) -> codes (this model) -> audio (the codec).

        The voice prompt (`prompt_audio` `(1 | B, T)` at the codec's rate, e.g. 3 s, or its codes `(1 | B, P, Q)`)
        is put in front as in the paper, with no semantic units under it (a prompt's units are unknown here);
        without a prompt the default voice (`set_default_voice`; the speech trainer stores 3 s of a training
        clip) is the prompt; without either the model speaks in a voice it samples (same seed, same voice).
        Returns a list of per-item waveforms (codes with `return_codes` or without a codec), the prompt not
        included: a longer text gives longer speech. `return_semantic` also returns the units `(B, S)` (padded with -1).
        Other keyword arguments (steps, temperature, precision, ...) go to `generate`.
        """
        t2s = self.text_to_semantic
        if t2s is None:
            raise ConfigError("generate(texts=...) needs a text-to-semantic stage: build SoundStorm(net, "
                              "soundstream=..., spear_tts_text_to_semantic=TextToSemantic(...)) with a trained one")
        net, dev = self.net, self.device
        generator = make_generator(seed, generator, device=dev)
        units, lengths = t2s.generate(texts, temperature=semantic_temperature, max_length=max_semantic_length,
                                      generator=generator, return_lengths=True)
        units, lengths = units.to(dev), lengths.to(dev).clamp(min=1)
        B = units.shape[0]
        ratio = net.config.semantic_ratio or 1.0
        step = int(ratio) if float(ratio).is_integer() else 1
        pad = net.config.semantic_pad_id
        units = units.masked_fill(units < 0, pad)

        prompt = None
        if prompt_audio is None and prompt_acoustic_token_ids is None and self.default_voice is not None:
            prompt_acoustic_token_ids = self.default_voice[None]
        if prompt_audio is not None:
            if prompt_acoustic_token_ids is not None:
                raise ConfigError("give prompt_acoustic_token_ids or prompt_audio, not both")
            if not isinstance(prompt_audio, torch.Tensor) or not prompt_audio.is_floating_point():
                raise ShapeError("prompt_audio must be a float tensor (B, T) at the codec's sample rate")
            prompt, _ = self.encode_audio(prompt_audio if prompt_audio.ndim == 2 else prompt_audio.reshape(1, -1))
        elif prompt_acoustic_token_ids is not None:
            prompt = prompt_acoustic_token_ids
            prompt = prompt if not isinstance(prompt, torch.Tensor) or prompt.ndim == 3 else prompt[None]
            prompt = net.check_codes(prompt, allow_mask=False, name="prompt_acoustic_token_ids").to(dev)
        P_units = 0
        if prompt is not None:
            if prompt.shape[0] not in (1, B):
                raise ShapeError(f"the voice prompt has batch {prompt.shape[0]}; give 1 or {B} (one per text)")
            P_units = prompt.shape[1] // step
            if P_units == 0:
                raise ShapeError("the voice prompt is shorter than one semantic unit; give at least a second of audio")
            prompt = prompt[:, : P_units * step].expand(B, -1, -1)
            units = torch.cat([torch.full((B, P_units), pad, dtype=units.dtype, device=dev), units], dim=1)
        total_units = units.shape[1]
        N = net.semantic_frames(total_units)
        item_frames = [min(N, net.semantic_frames(P_units + int(n))) for n in lengths.tolist()]
        mask = torch.arange(N, device=dev)[None, :] < torch.tensor(item_frames, device=dev)[:, None]
        codes = self.generate(N, cond_semantic_token_ids=units, prompt_acoustic_token_ids=prompt, mask=mask,
                              generator=generator, return_codes=True, **kwargs)
        P = 0 if prompt is None else prompt.shape[1]
        pieces = [codes[b, P: item_frames[b]] for b in range(B)]
        if self.soundstream is not None and not return_codes:
            hop = self.soundstream.hop_length
            audio = self.soundstream.decode(codes)
            pieces = [audio[b, P * hop: item_frames[b] * hop] for b in range(B)]
        if return_semantic:
            return pieces, units[:, P_units:]
        return pieces
