"""The instruments of the synthetic corpus: General MIDI programs across families, and drum kits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    name: str  # caption word(s) and the `instrument` tag
    family: str  # `family` tag
    program: int  # General MIDI program (0-based); for kits, the drum-bank preset
    is_drum: bool = False
    registers: tuple[str, ...] = ("low", "mid", "high")
    textures: tuple[str, ...] = ("melody", "chords", "arpeggio")


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("piano", "keyboard", 0),
    Instrument("organ", "organ", 19, textures=("chords", "melody")),
    Instrument("marimba", "mallet", 12, registers=("mid", "high"), textures=("melody", "arpeggio")),
    Instrument("acoustic guitar", "guitar", 24, registers=("low", "mid"), textures=("arpeggio", "chords", "melody")),
    Instrument("distorted guitar", "guitar", 30, registers=("low", "mid"), textures=("chords", "melody")),
    Instrument("bass", "bass", 33, registers=("low",), textures=("bassline",)),
    Instrument("violin", "strings", 40, registers=("mid", "high"), textures=("melody",)),
    Instrument("cello", "strings", 42, registers=("low", "mid"), textures=("melody",)),
    Instrument("trumpet", "brass", 56, registers=("mid", "high"), textures=("melody",)),
    Instrument("saxophone", "reed", 65, registers=("low", "mid"), textures=("melody",)),
    Instrument("clarinet", "reed", 71, registers=("mid", "high"), textures=("melody", "arpeggio")),
    Instrument("flute", "pipe", 73, registers=("mid", "high"), textures=("melody",)),
    Instrument("synth lead", "synth", 80, registers=("mid", "high"), textures=("melody", "arpeggio")),
    Instrument("synth pad", "synth", 89, registers=("low", "mid"), textures=("chords",)),
    Instrument("rock drums", "drums", 0, is_drum=True, registers=("mid",), textures=("rock beat", "half-time beat")),
    Instrument("electronic drums", "drums", 25, is_drum=True, registers=("mid",),
               textures=("dance beat", "breakbeat")),
    Instrument("jazz drums", "drums", 40, is_drum=True, registers=("mid",), textures=("swing groove",)),
)

BY_NAME = {i.name: i for i in INSTRUMENTS}
FAMILIES = tuple(sorted({i.family for i in INSTRUMENTS}))
INSTRUMENT_NAMES = tuple(i.name for i in INSTRUMENTS)
