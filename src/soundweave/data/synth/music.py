"""Random but musical clips: a `ClipSpec` (instrument, tempo, key, mode, register, density, dynamics,
texture) and the notes that realise it (melodies, chords, arpeggios, basslines, drum patterns).

Everything is drawn from a numpy Generator, so a (seed, index) pair always gives the same clip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .instruments import INSTRUMENTS, Instrument

KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# diatonic progressions as scale-degree roots (0-based)
PROGRESSIONS = {"major": ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (1, 4, 0, 0)),
                "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2))}
REGISTER_BASE = {"low": 36, "mid": 55, "high": 72}  # MIDI note of the scale's lowest root used
DENSITY_BEATS = {"sparse": (1.0, 2.0), "medium": (0.5, 1.0), "dense": (0.25, 0.5)}
VELOCITY = {"quiet": (38, 58), "medium": (68, 90), "loud": (100, 124)}
GM_DRUMS = {"kick": 36, "snare": 38, "rim": 37, "clap": 39, "closed_hat": 42, "open_hat": 46, "pedal_hat": 44,
            "ride": 51, "crash": 49, "low_tom": 45, "high_tom": 50}


def tempo_class(bpm: int) -> str:
    return "slow" if bpm < 90 else ("fast" if bpm > 130 else "medium")


@dataclass
class Note:
    pitch: int
    start: float  # seconds
    end: float
    velocity: int


@dataclass
class ClipSpec:
    instrument: str
    family: str
    program: int
    is_drum: bool
    bpm: int
    key: str
    mode: str
    register: str
    density: str
    dynamics: str
    texture: str
    seconds: float

    @property
    def tempo(self) -> str:
        return tempo_class(self.bpm)

    def tags(self) -> dict:
        tags = {"instrument": self.instrument, "family": self.family, "bpm": self.bpm, "tempo": self.tempo,
                "key": self.key, "mode": self.mode, "register": self.register, "density": self.density,
                "dynamics": self.dynamics, "texture": self.texture}
        if self.is_drum:  # a drum kit has no key or mode
            tags.pop("key")
            tags.pop("mode")
            tags.pop("register")
        return tags

    def to_dict(self) -> dict:
        return asdict(self)


def random_spec(rng: np.random.Generator, seconds: float, instrument: Instrument | None = None) -> ClipSpec:
    inst = instrument or INSTRUMENTS[int(rng.integers(len(INSTRUMENTS)))]
    tempo = str(rng.choice(("slow", "medium", "fast")))
    bpm = int({"slow": rng.integers(60, 90), "medium": rng.integers(90, 131), "fast": rng.integers(131, 181)}[tempo])
    return ClipSpec(
        instrument=inst.name, family=inst.family, program=inst.program, is_drum=inst.is_drum, bpm=bpm,
        key=str(rng.choice(KEYS)), mode=str(rng.choice(("major", "minor"))), register=str(rng.choice(inst.registers)),
        density=str(rng.choice(tuple(DENSITY_BEATS))), dynamics=str(rng.choice(tuple(VELOCITY))),
        texture=str(rng.choice(inst.textures)), seconds=float(seconds))


def _velocity(rng, spec: ClipSpec, accent: float = 0.0) -> int:
    lo, hi = VELOCITY[spec.dynamics]
    return int(np.clip(rng.integers(lo, hi + 1) + accent, 1, 127))


def _scale_pitch(spec: ClipSpec, degree: int) -> int:
    scale = SCALES[spec.mode]
    root = REGISTER_BASE[spec.register] + KEYS.index(spec.key)
    octave, step = divmod(degree, len(scale))
    return root + 12 * octave + scale[step]


def _rhythm(rng, spec: ClipSpec, beat: float, total: float) -> list[tuple[float, float]]:
    """(start, duration) pairs in seconds filling `total`, with rests, at the spec's density."""
    short, long = DENSITY_BEATS[spec.density]
    out, t = [], 0.0
    while t < total:
        dur = beat * float(rng.choice((short, long)))
        if rng.random() > 0.15:  # 15% rests
            out.append((t, dur))
        t += dur
    return out


def melody(rng, spec: ClipSpec) -> list[Note]:
    beat = 60.0 / spec.bpm
    degree = int(rng.integers(0, 5))
    notes = []
    for start, dur in _rhythm(rng, spec, beat, spec.seconds):
        degree = int(np.clip(degree + rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3)), -2, 11))
        pitch = _scale_pitch(spec, degree)
        accent = 8 if start % (4 * beat) < 1e-6 else 0  # the first beat of a bar
        notes.append(Note(pitch, start, start + dur * 0.95, _velocity(rng, spec, accent)))
    return notes


def _progression(rng, spec: ClipSpec) -> tuple[int, ...]:
    """One of the mode's diatonic progressions (scale-degree roots), drawn from `rng`."""
    options = PROGRESSIONS[spec.mode]
    return options[int(rng.integers(len(options)))]


def _chord(spec: ClipSpec, root_degree: int) -> list[int]:
    return [_scale_pitch(spec, root_degree + k) for k in (0, 2, 4)]


def chords(rng, spec: ClipSpec) -> list[Note]:
    beat = 60.0 / spec.bpm
    progression = _progression(rng, spec)
    per_chord = {"sparse": 4, "medium": 2, "dense": 1}[spec.density] * beat
    notes, t, i = [], 0.0, 0
    while t < spec.seconds:
        vel = _velocity(rng, spec)
        for pitch in _chord(spec, progression[i % len(progression)]):
            notes.append(Note(pitch, t, t + per_chord * 0.97, vel))
        t += per_chord
        i += 1
    return notes


def arpeggio(rng, spec: ClipSpec) -> list[Note]:
    beat = 60.0 / spec.bpm
    progression = _progression(rng, spec)
    step = {"sparse": 0.5, "medium": 0.5, "dense": 0.25}[spec.density] * beat
    pattern = ((0, 1, 2, 1), (0, 1, 2, 3), (0, 2, 1, 2))[int(rng.integers(3))]
    notes, t, k = [], 0.0, 0
    while t < spec.seconds:
        chord = _chord(spec, progression[int(t // (2 * beat)) % len(progression)]) + [None]
        chord[3] = chord[0] + 12
        pitch = chord[pattern[k % len(pattern)]]
        notes.append(Note(pitch, t, t + step * 0.9, _velocity(rng, spec, 6 if k % 4 == 0 else 0)))
        t += step
        k += 1
    return notes


def bassline(rng, spec: ClipSpec) -> list[Note]:
    beat = 60.0 / spec.bpm
    progression = _progression(rng, spec)
    step = {"sparse": 2.0, "medium": 1.0, "dense": 0.5}[spec.density] * beat
    notes, t, k = [], 0.0, 0
    while t < spec.seconds:
        root = _scale_pitch(spec, progression[int(t // (4 * beat)) % len(progression)])
        pitch = root + (7 if (k % 4 == 2 and rng.random() < 0.5) else 0) + (12 if rng.random() < 0.15 else 0)
        notes.append(Note(pitch, t, t + step * 0.85, _velocity(rng, spec, 6 if k % 2 == 0 else 0)))
        t += step
        k += 1
    return notes


def drums(rng, spec: ClipSpec) -> list[Note]:
    """One bar of sixteenth-note grid per pattern, repeated; density sets the hi-hat subdivision."""
    beat = 60.0 / spec.bpm
    sixteenth = beat / 4
    hat_every = {"sparse": 4, "medium": 2, "dense": 1}[spec.density]
    d = GM_DRUMS
    patterns = {
        "rock beat": {d["kick"]: (0, 8, 10), d["snare"]: (4, 12), d["closed_hat"]: tuple(range(0, 16, hat_every))},
        "half-time beat": {d["kick"]: (0, 3, 10), d["snare"]: (8,), d["closed_hat"]: tuple(range(0, 16, hat_every))},
        "dance beat": {d["kick"]: (0, 4, 8, 12), d["clap"]: (4, 12), d["open_hat"]: (2, 6, 10, 14),
                       d["closed_hat"]: tuple(i for i in range(0, 16, hat_every) if i % 4 != 2)},
        "breakbeat": {d["kick"]: (0, 6, 10), d["snare"]: (4, 12, 15), d["closed_hat"]: tuple(range(0, 16, hat_every))},
        "swing groove": {d["ride"]: (0, 4, 7, 8, 12, 15), d["pedal_hat"]: (4, 12), d["kick"]: (0,), d["rim"]: (13,)},
    }
    pattern = patterns[spec.texture]
    notes, bar = [], 0
    while bar * 16 * sixteenth < spec.seconds:
        for pitch, steps in pattern.items():
            for s in steps:
                start = (bar * 16 + s) * sixteenth
                if start < spec.seconds:
                    accent = 10 if s % 4 == 0 else 0
                    notes.append(Note(pitch, start, start + sixteenth, _velocity(rng, spec, accent)))
        if bar == 0 and rng.random() < 0.3:
            notes.append(Note(d["crash"], 0.0, sixteenth * 4, _velocity(rng, spec, 5)))
        bar += 1
    return notes


TEXTURES = {"melody": melody, "chords": chords, "arpeggio": arpeggio, "bassline": bassline}


def compose(rng: np.random.Generator, spec: ClipSpec) -> list[Note]:
    notes = drums(rng, spec) if spec.is_drum else TEXTURES[spec.texture](rng, spec)
    return [n for n in notes if n.start < spec.seconds and 0 <= n.pitch <= 127]


def to_pretty_midi(spec: ClipSpec, notes: list[Note]):
    """The clip as a `pretty_midi.PrettyMIDI` (e.g. to save a .mid beside the audio)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=float(spec.bpm))
    inst = pretty_midi.Instrument(program=spec.program, is_drum=spec.is_drum, name=spec.instrument)
    inst.notes = [pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=n.start, end=n.end) for n in notes]
    pm.instruments.append(inst)
    return pm
