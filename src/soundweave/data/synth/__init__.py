"""The synthetic captioned-music corpus: random but musical MIDI rendered with a SoundFont synthesizer."""

from .captions import caption
from .corpus import CorpusReport, instrument_of, make_corpus, split_of
from .instruments import FAMILIES, INSTRUMENT_NAMES, INSTRUMENTS, Instrument
from .music import ClipSpec, Note, compose, random_spec, tempo_class, to_pretty_midi
from .render import AdditiveRenderer, SoundFontRenderer, make_renderer

__all__ = [
    "FAMILIES", "INSTRUMENTS", "INSTRUMENT_NAMES", "AdditiveRenderer", "ClipSpec", "CorpusReport", "Instrument", "Note",
    "SoundFontRenderer", "caption", "compose", "instrument_of", "make_corpus", "make_renderer", "random_spec",
    "split_of", "tempo_class", "to_pretty_midi",
]
