"""Natural, varied captions for a clip, drawn from templates and synonyms."""

from __future__ import annotations

import numpy as np

from .music import ClipSpec

TEMPO_WORDS = {"slow": ("slow", "laid-back", "unhurried", "slow-paced"),
               "medium": ("mid-tempo", "moderate", "steady"),
               "fast": ("fast", "up-tempo", "energetic", "driving")}
DYNAMICS_WORDS = {"quiet": ("quiet", "soft", "gentle"), "medium": ("moderately loud", "relaxed", "even"),
                  "loud": ("loud", "powerful", "forceful")}
REGISTER_WORDS = {"low": ("low", "deep"), "mid": ("mid-range", "middle-register"), "high": ("high", "bright")}
DENSITY_WORDS = {"sparse": ("sparse", "spacious"), "medium": ("flowing", "steady"), "dense": ("busy", "dense")}
TEXTURE_WORDS = {"melody": ("melody", "tune", "melodic line"), "chords": ("chords", "chord progression"),
                 "arpeggio": ("arpeggio", "arpeggiated pattern"), "bassline": ("bassline", "bass groove")}

TEMPO_PLAIN = {"slow": "slow", "medium": "moderate", "fast": "fast"}
PLURAL_TEXTURES = {"chords"}

MELODIC_TEMPLATES = (
    "{tempo_dynamics_instrument_texture} in {key} {mode}",
    "{instrument} playing {tempo_texture} at {bpm} bpm",
    "{dynamics} {register} {instrument} {texture}, {tempo_plain} tempo",
    "solo {instrument}, {key} {mode}, {density} notes",
    "{density_instrument_texture} in a {mode} key, around {bpm} bpm",
    "{tempo} {mode} {texture} on {article_instrument}",
    "{article_instrument} plays {dynamics_density_texture} in {key} {mode}",
    "{register} {instrument}, {tempo} and {dynamics}",
)
DRUM_TEMPLATES = (
    "{tempo} {style} on {article_instrument} at {bpm} bpm",
    "{dynamics} {instrument} playing a {style}",
    "a {tempo}, {density} {style} on {instrument}",
    "{instrument} groove, {tempo_plain} tempo, {dynamics}",
    "{style} at {bpm} bpm with {density} hi-hats",
    "solo {instrument}: a {dynamics} {tempo} {style}",
)


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _phrase(words: str, texture: str) -> str:
    """'a slow melody', 'an even arpeggio', but 'slow chords' (no article before a plural)."""
    text = f"{words} {texture}"
    return text if texture in PLURAL_TEXTURES else _article(text)


def caption(rng: np.random.Generator, spec: ClipSpec) -> str:
    pick = lambda options: str(options[int(rng.integers(len(options)))])  # noqa: E731
    fields = {"tempo": pick(TEMPO_WORDS[spec.tempo]), "dynamics": pick(DYNAMICS_WORDS[spec.dynamics]),
              "density": pick(DENSITY_WORDS[spec.density]), "instrument": spec.instrument, "bpm": spec.bpm,
              "article_instrument": _article(spec.instrument)}
    if spec.is_drum:
        fields["style"] = spec.texture
        fields["tempo_plain"] = TEMPO_PLAIN[spec.tempo]
        template = pick(DRUM_TEMPLATES)
    else:
        texture = pick(TEXTURE_WORDS[spec.texture])
        fields.update(key=spec.key, mode=spec.mode, register=pick(REGISTER_WORDS[spec.register]), texture=texture,
                      tempo_plain=TEMPO_PLAIN[spec.tempo],
                      tempo_texture=_phrase(fields["tempo"], texture),
                      tempo_dynamics_instrument_texture=_phrase(
                          f"{fields['tempo']}, {fields['dynamics']} {spec.instrument}", texture),
                      density_instrument_texture=_phrase(f"{fields['density']} {spec.instrument}", texture),
                      dynamics_density_texture=_phrase(f"{fields['dynamics']}, {fields['density']}", texture))
        template = pick(MELODIC_TEMPLATES)
    text = template.format(**fields)
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text
