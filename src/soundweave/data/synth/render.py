"""Turning notes into audio.

`SoundFontRenderer` plays the notes through TinySoundFont with the General MIDI SoundFont TimGM6mb.sf2 that
pretty_midi ships (a real sample-based synthesizer; no system library). If it cannot load,
`AdditiveRenderer` makes simple harmonic tones with envelopes and noise-burst drums, and says so.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from .music import ClipSpec, Note

PEAK = {"quiet": 0.3, "medium": 0.6, "loud": 0.92}


def soundfont_path() -> Path | None:
    try:
        import pretty_midi
    except ImportError:
        return None
    path = Path(os.path.dirname(pretty_midi.__file__)) / "TimGM6mb.sf2"
    return path if path.is_file() else None


def _normalise(audio: np.ndarray, spec: ClipSpec) -> np.ndarray:
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak < 1e-6:
        return audio.astype(np.float32)
    return (audio * (PEAK[spec.dynamics] / peak)).astype(np.float32)


class SoundFontRenderer:
    name = "soundfont (TinySoundFont + TimGM6mb.sf2)"

    def __init__(self, sample_rate: int, soundfont: Path | None = None):
        import tinysoundfont

        path = soundfont or soundfont_path()
        if path is None:
            raise RuntimeError("no SoundFont found (pretty_midi's TimGM6mb.sf2 is missing)")
        self.sample_rate = sample_rate
        self.synth = tinysoundfont.Synth(samplerate=sample_rate)
        self.sfid = self.synth.sfload(str(path))

    def render(self, spec: ClipSpec, notes: list[Note]) -> np.ndarray:
        sr, synth = self.sample_rate, self.synth
        total = int(round(spec.seconds * sr))
        channel = 9 if spec.is_drum else 0
        synth.sounds_off()
        synth.generate(sr // 10)  # let the previous clip's voices finish their quick release, then discard
        synth.program_select(channel, self.sfid, 128 if spec.is_drum else 0, spec.program, is_drums=spec.is_drum)
        events = [(int(round(n.start * sr)), 1, n.pitch, n.velocity) for n in notes]
        events += [(int(round(n.end * sr)), 0, n.pitch, 0) for n in notes]
        events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at the same sample
        chunks, cursor = [], 0
        for at, is_on, pitch, velocity in events:
            at = min(at, total)
            if at > cursor:
                chunks.append(np.frombuffer(synth.generate(at - cursor), dtype=np.float32).copy())
                cursor = at
            if cursor >= total:
                break
            if is_on:
                synth.noteon(channel, pitch, velocity)
            else:
                synth.noteoff(channel, pitch)
        if cursor < total:
            chunks.append(np.frombuffer(synth.generate(total - cursor), dtype=np.float32).copy())
        synth.sounds_off()
        stereo = np.concatenate(chunks) if chunks else np.zeros(2 * total, np.float32)
        mono = stereo.reshape(-1, 2).mean(axis=1)[:total]
        return _normalise(mono, spec)


# harmonic amplitude profiles by family (fundamental first)
_HARMONICS = {"keyboard": (1, .5, .3, .2, .1), "organ": (1, .8, .6, .5, .4, .3), "mallet": (1, 0, .3, 0, .1),
              "guitar": (1, .6, .4, .3, .2, .1), "bass": (1, .5, .2), "strings": (1, .7, .5, .4, .3, .2, .1),
              "brass": (1, .9, .8, .6, .5, .4), "reed": (1, .1, .6, .1, .4, .1), "pipe": (1, .2, .05),
              "synth": (1, .5, .33, .25, .2, .16, .14)}


class AdditiveRenderer:
    name = "additive (fallback: no SoundFont renderer could load)"

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate

    def render(self, spec: ClipSpec, notes: list[Note]) -> np.ndarray:
        sr = self.sample_rate
        total = int(round(spec.seconds * sr))
        out = np.zeros(total + sr, np.float32)
        rng = np.random.default_rng(zlib.crc32(f"{spec.instrument}/{spec.bpm}/{len(notes)}".encode()))
        profile = _HARMONICS.get(spec.family, (1, .5, .25))
        for n in notes:
            start = int(n.start * sr)
            length = max(1, int((n.end - n.start) * sr) + int(0.05 * sr))
            t = np.arange(length) / sr
            amp = n.velocity / 127
            if spec.is_drum:
                decay = 0.05 if n.pitch in (42, 44, 46, 51) else 0.15
                tone = rng.standard_normal(length) * np.exp(-t / decay)
                if n.pitch in (35, 36):
                    tone = np.sin(2 * np.pi * (60 + 80 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.2)
            else:
                f0 = 440.0 * 2 ** ((n.pitch - 69) / 12)
                tone = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t)
                           for k, a in enumerate(profile) if f0 * (k + 1) < sr / 2)
                attack = np.minimum(1.0, t / 0.01)
                release = np.clip((length / sr - t) / 0.05, 0, 1)
                damping = 3.0 if spec.family in ("keyboard", "mallet", "guitar") else 0.5
                tone = tone * attack * release * np.exp(-t * damping)
            end = min(start + length, out.shape[0])
            out[start:end] += (amp * tone[: end - start]).astype(np.float32)
        return _normalise(out[:total], spec)


def make_renderer(sample_rate: int, prefer: str = "soundfont"):
    """A SoundFont renderer when possible, else the additive fallback. Returns (renderer, note or None)."""
    if prefer == "soundfont":
        try:
            return SoundFontRenderer(sample_rate), None
        except Exception as exc:  # missing tinysoundfont, unreadable sf2, ...
            return AdditiveRenderer(sample_rate), f"SoundFont renderer unavailable ({type(exc).__name__}: {exc})"
    if prefer == "additive":
        return AdditiveRenderer(sample_rate), None
    raise ValueError(f"renderer must be 'soundfont' or 'additive', got {prefer!r}")
