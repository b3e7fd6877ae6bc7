"""The synthetic speech corpus: generated sentences spoken by espeak-ng, with a time-aligned phoneme stream.

    report = make_speech_corpus("data/speech", n=600, seed=0)      # audio/*.wav, phonemes/*.json, captions.jsonl
    units = phoneme_units("data/speech", record, frame_rate=25.0)  # (S,) int64 phoneme ids at 25 frames/s

espeak-ng (Debian package `espeak-ng`, GPL-3) is called as a command line program only; nothing links it.
Clip i is a pure function of (seed, i): its sentence (templates over a word list, with numbers, questions
and commas), voice (English accent x voice variant), speed (words per minute) and pitch. Splits by index as
the music corpus: i % 10 == 0 -> test, == 1 -> valid, else train. The manifest is the music corpus's
(`caption` = the text; tags = voice, speed, pitch, accent, variant, phonemes file).

Phoneme timing. espeak-ng prints the phonemes it speaks (`-x`) in the same call that writes the audio, but
not their times (its `--pho` timing output needs MBROLA voices, which Debian main lacks), and pocketsphinx's
forced alignment fails on most espeak clips (its beam search does not reach the end of the grammar; the
word pass drops words even with wide beams). So the times come from the audio itself: the clip is cut into
speech and pauses by frame energy (10 ms frames, pauses >= 60 ms), espeak's clause lines are matched to the
speech regions when their counts agree (else the whole phoneme string is spread over all speech), and within
a region each phoneme gets a share of the time proportional to its typical duration (`PHONEME_SECONDS`,
calibrated once with the reference of `alignment_error` on sentences the measurement does not use).
`alignment_error` measures the method against a reference made by synthesizing every phoneme prefix of a
sentence followed by a fixed tail syllable; benchmarks/tts_quality.py reports the error in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import ConfigError, DataError
from .manifest import MANIFEST_NAME, CaptionRecord, write_manifest

ESPEAK_RATE = 22050
MAX_CLIPS = 200_000

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp")
VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "klatt")
SPEEDS = (130, 150, 170, 190)
PITCHES = (30, 45, 60, 75)

# espeak-ng's English phoneme mnemonics (en-us, en-gb and the other accents above); id = index
PHONEMES: tuple[str, ...] = (
    "sil", "unk",
    "p", "b", "t", "d", "k", "g", "f", "v", "T", "D", "s", "z", "S", "Z", "h", "tS", "dZ", "m", "n", "N", "l", "r",
    "w", "j", "x", "?", "t#", "t[", "r-", "l-", "n-",
    "@", "@2", "@5", "@L", "3", "3:", "a", "a#", "aa", "A:", "A@", "aI", "aI2", "aI@", "aU", "aU@", "e", "e@", "E",
    "eI", "i", "i:", "i@", "i@3", "I", "I#", "I2", "IR", "o@", "oU", "O", "O:", "O@", "OI", "0", "u:", "U", "U@", "V",
    "VR", "O2", "u", "aI3", "e#", "3:r", "a2", "@-",
)
PHONEME_IDS = {p: i for i, p in enumerate(PHONEMES)}
SIL_ID, UNK_ID = 0, 1
VOWELS = set(PHONEMES[33:]) - {"@-"}
# Relative phoneme durations (seconds at 170 words/min), calibrated once: the median duration per phoneme in
# 25 en-us sentences (seed 123, none of the evaluation's) by the reference of `alignment_error`, floored at
# 20 ms. Phonemes not listed use the vowel / consonant defaults.
PHONEME_SECONDS = {
    "0": 0.06, "3": 0.06, "@": 0.02, "@2": 0.02, "@L": 0.06, "A@": 0.075, "D": 0.09, "E": 0.065, "I": 0.05,
    "I2": 0.07, "N": 0.09, "O": 0.03, "O2": 0.06, "O@": 0.09, "T": 0.09, "U@": 0.055, "V": 0.05, "a": 0.06,
    "a#": 0.03, "aI": 0.1, "aI@": 0.04, "aU": 0.09, "aa": 0.07, "b": 0.07, "d": 0.07, "dZ": 0.13, "eI": 0.07,
    "f": 0.09, "g": 0.09, "h": 0.08, "i": 0.06, "j": 0.07, "k": 0.1, "l": 0.07, "m": 0.08, "n": 0.07, "oU": 0.08,
    "p": 0.105, "r": 0.02, "r-": 0.03, "s": 0.09, "t": 0.1, "t#": 0.09, "tS": 0.14, "u": 0.05, "v": 0.1, "w": 0.09,
    "z": 0.1,
}
VOWEL_SECONDS, CONSONANT_SECONDS = 0.07, 0.08
REFERENCE_TAIL = "s'A:s"  # appended to every prefix so that the utterance-final lengthening falls on it

_NOUNS = ("cat dog bird fish horse farmer teacher doctor child river garden window table letter apple orange "
          "mountain city village ship train car bottle basket picture song story road bridge forest island "
          "kitchen market friend brother sister mother father king queen robot planet phone clock book "
          "door chair lamp cloud storm winter summer morning evening").split()
_ADJS = ("red green blue yellow small large old young quiet loud happy sad bright dark cold warm heavy light "
         "strange simple busy lazy clever gentle".split())
_VERBS = ("sees likes finds holds opens paints carries watches follows builds cleans moves reads sells "
          "brings wants needs".split())
_VERBS_PAST = ("saw liked found held opened painted carried watched followed built cleaned moved read sold "
               "brought wanted needed").split()
_PLACES = ("near the river", "in the garden", "on the table", "at the market", "by the window",
           "under the bridge", "in the city", "on the road", "behind the door", "in the morning")
_NAMES = "anna peter maria john lucy tom sarah david emma paul".split()
_QWORDS = ("where is", "why is", "how old is", "when does", "who found")


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def random_sentence(rng: np.random.Generator) -> str:
    """One varied English sentence: statements, questions, numbers (as digits), names, commas."""
    kind = int(rng.integers(6))
    noun, noun2 = _pick(rng, _NOUNS), _pick(rng, _NOUNS)
    adj = _pick(rng, _ADJS)
    name = _pick(rng, _NAMES).capitalize()
    if kind == 0:
        return f"The {adj} {noun} {_pick(rng, _VERBS)} the {noun2} {_pick(rng, _PLACES)}."
    if kind == 1:
        q = _pick(rng, _QWORDS)
        return f"{q.capitalize()} the {adj} {noun}?"
    if kind == 2:
        number = int(rng.integers(2, 100))
        return f"{name} {_pick(rng, _VERBS_PAST)} {number} {noun}s {_pick(rng, _PLACES)}."
    if kind == 3:
        return f"{name}, did you see the {adj} {noun}?"
    if kind == 4:
        hour = int(rng.integers(1, 13))
        return f"The {noun} leaves at {hour}, so {name} {_pick(rng, _VERBS)} a {adj} {noun2}."
    return f"My {noun} is {adj}, and your {noun2} is {_pick(rng, _ADJS)}."


@dataclass
class VoiceSpec:
    accent: str
    variant: str
    speed: int
    pitch: int

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"

    @property
    def speaker(self) -> str:
        """The speaker identity the voice classifier predicts (accent x variant; speed and pitch vary)."""
        return self.voice


def voice_of(seed: int, index: int) -> VoiceSpec:
    rng = np.random.default_rng([seed, index, 11])
    return VoiceSpec(_pick(rng, ACCENTS), _pick(rng, VARIANTS), int(_pick(rng, SPEEDS)), int(_pick(rng, PITCHES)))


def split_of(index: int) -> str:
    return "test" if index % 10 == 0 else ("valid" if index % 10 == 1 else "train")


# -- espeak-ng --------------------------------------------------------------------------------------------------
def espeak_binary() -> str:
    """The espeak-ng executable, or a one-line DataError naming the package to install."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataError("espeak-ng is not installed: the speech corpus needs the espeak-ng program "
                        "(Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)")
    return path


def speak(text: str, voice: str = "en-us", speed: int = 170, pitch: int = 50, phoneme_input: bool = False
          ) -> tuple[np.ndarray, list[list[str]]]:
    """Speak `text` with espeak-ng: (audio float32 at 22050 Hz, phoneme lines [[phoneme, ...] per clause]).

    `phoneme_input` speaks espeak phoneme mnemonics (`[[...]]` input) instead of text."""
    exe = espeak_binary()
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        body = f"[[{text}]]" if phoneme_input else text
        args = [exe, "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "-x", "--sep=_", "-w", wav]
        if phoneme_input:
            args.append("-z")
        try:
            run = subprocess.run(args + ["--", body], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataError(f"espeak-ng failed on {text!r}: {exc}") from exc
        if run.returncode != 0 or not os.path.isfile(wav):
            raise DataError(f"espeak-ng failed on {text!r} with voice {voice!r}: {run.stderr.strip()[:200]}")
        audio, sr = sf.read(wav, dtype="float32")
    if sr != ESPEAK_RATE:
        from ..audio.io import resample

        audio = resample(audio, sr, ESPEAK_RATE)
    return np.asarray(audio, dtype=np.float32), parse_phonemes(run.stdout)


def parse_phonemes(text: str) -> list[list[str]]:
    """espeak-ng `-x --sep=_` output -> clause lines of phoneme mnemonics (stress marks dropped)."""
    lines = []
    for line in text.splitlines():
        phones = []
        for word in line.split():
            for p in word.split("_"):
                p = p.strip("',;:%=")  # stress and syllable marks
                if p:
                    phones.append(p)
        if phones:
            lines.append(phones)
    return lines


def phoneme_weight(p: str) -> float:
    """A phoneme's share of its region: its calibrated typical duration (see PHONEME_SECONDS)."""
    if p in PHONEME_SECONDS:
        return PHONEME_SECONDS[p]
    return VOWEL_SECONDS if p in VOWELS else CONSONANT_SECONDS


def speech_regions(audio: np.ndarray, sr: int, min_pause: float = 0.06, floor_db: float = -40.0,
                   hop: float = 0.01) -> list[tuple[float, float]]:
    """Speech regions (start, end) in seconds: 10 ms frames above `floor_db` of the loudest frame, with pauses
    shorter than `min_pause` bridged (stop closures inside words stay inside the region)."""
    step = max(1, int(round(hop * sr)))
    n = len(audio) // step
    if n == 0:
        return []
    frames = audio[: n * step].reshape(n, step)
    energy = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    loud = energy > energy.max() + floor_db
    regions, start = [], None
    for i, on in enumerate(loud):
        if on and start is None:
            start = i
        if not on and start is not None:
            regions.append([start, i])
            start = None
    if start is not None:
        regions.append([start, n])
    merged: list[list[int]] = []
    gap = int(round(min_pause / hop))
    for r in regions:
        if merged and r[0] - merged[-1][1] < gap:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return [(a * hop, b * hop) for a, b in merged]


def _spread(phones: list[str], start: float, end: float) -> list[tuple[str, float, float]]:
    weights = np.array([phoneme_weight(p) for p in phones], dtype=np.float64)
    edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [(p, float(edges[i]), float(edges[i + 1])) for i, p in enumerate(phones)]


def align_phonemes(audio: np.ndarray, sr: int, lines: list[list[str]]) -> list[tuple[str, float, float]]:
    """Phonemes with (start, end) seconds, pauses as "sil" (see the module docstring for the method)."""
    duration = len(audio) / sr
    regions = speech_regions(audio, sr)
    phones = [p for line in lines for p in line]
    if not regions or not phones:
        return [("sil", 0.0, duration)]
    out: list[tuple[str, float, float]] = []
    if len(regions) == len(lines):
        groups = list(zip(lines, regions, strict=True))
    else:  # spread all phonemes over the speech time (pauses skipped), then cut at the pauses
        total = sum(b - a for a, b in regions)
        weights = np.array([phoneme_weight(p) for p in phones])
        cuts = np.concatenate([[0.0], np.cumsum(weights) / weights.sum() * total])
        groups, i = [], 0
        elapsed = 0.0
        for a, b in regions:
            members = []
            while i < len(phones) and (cuts[i] + cuts[i + 1]) / 2 < elapsed + (b - a):
                members.append(phones[i])
                i += 1
            elapsed += b - a
            if members:
                groups.append((members, (a, b)))
        if i < len(phones) and groups:
            groups[-1] = (groups[-1][0] + phones[i:], groups[-1][1])
    cursor = 0.0
    for members, (a, b) in groups:
        if a > cursor:
            out.append(("sil", cursor, a))
        out.extend(_spread(members, a, b))
        cursor = b
    if cursor < duration:
        out.append(("sil", cursor, duration))
    return out


def units_from_alignment(alignment: list[tuple[str, float, float]] | list[list], frame_rate: float,
                         num_frames: int | None = None) -> np.ndarray:
    """Alignment -> phoneme id per frame (the phoneme covering the frame's centre) `(S,)` int64."""
    if not alignment:
        raise DataError("empty phoneme alignment")
    end = float(alignment[-1][2])
    n = num_frames if num_frames is not None else max(1, int(round(end * frame_rate)))
    centres = (np.arange(n) + 0.5) / frame_rate
    ends = np.array([float(a[2]) for a in alignment])
    index = np.minimum(np.searchsorted(ends, centres, side="right"), len(alignment) - 1)
    ids = np.array([PHONEME_IDS.get(str(a[0]), UNK_ID) for a in alignment], dtype=np.int64)
    return ids[index]


def phoneme_units(folder: str | os.PathLike, record: CaptionRecord, frame_rate: float,
                  num_frames: int | None = None) -> np.ndarray:
    """The phoneme id per frame of one corpus clip (reads its phonemes/*.json)."""
    rel = record.tags.get("phonemes")
    if not rel:
        raise DataError(f"clip {record.path!r} has no phoneme alignment (tags.phonemes); is this a speech corpus "
                        "made by `soundweave data speech`?")
    file = Path(folder) / rel
    if not file.is_file():
        raise DataError(f"phoneme alignment {str(file)!r} is missing")
    return units_from_alignment(json.loads(file.read_text())["alignment"], frame_rate, num_frames)


def alignment_error(text: str, voice: VoiceSpec, skip_last: int = 3) -> dict[str, float]:
    """Accuracy of `align_phonemes` on one sentence: phoneme boundaries vs. a prefix-synthesis reference.

    espeak re-speaks the sentence from its phoneme mnemonics (`[[...]]` input, so both sides hear the same
    audio); the reference end of phoneme k is the length of phonemes 1..k followed by a fixed tail syllable
    (`REFERENCE_TAIL`, which takes the utterance-final lengthening), minus the tail's own length. The last
    `skip_last` boundaries are left out (there the full utterance's own final lengthening differs from the
    reference's). Returns mean / median absolute boundary error (ms) and the number of boundaries."""
    _, lines = speak(text, voice.voice, voice.speed, voice.pitch)
    phones = [p for line in lines for p in line]

    def span(mnemonic: str) -> tuple[float, float]:
        audio, _ = speak(mnemonic, voice.voice, voice.speed, voice.pitch, phoneme_input=True)
        regions = speech_regions(audio, ESPEAK_RATE)
        return (regions[0][0], regions[-1][1]) if regions else (0.0, 0.0)

    audio, _ = speak(" ".join(phones), voice.voice, voice.speed, voice.pitch, phoneme_input=True)
    ours = [seg for seg in align_phonemes(audio, ESPEAK_RATE, [phones]) if seg[0] != "sil"]
    tail_start, tail_end = span(REFERENCE_TAIL)
    tail = tail_end - tail_start
    count = max(0, len(phones) - skip_last)
    errors = [abs(ours[k - 1][2] - (span(" ".join(phones[:k]) + " " + REFERENCE_TAIL)[1] - tail)) * 1000
              for k in range(1, count + 1)]
    return {"boundaries": len(errors), "mean_ms": float(np.mean(errors)) if errors else 0.0,
            "median_ms": float(np.median(errors)) if errors else 0.0}


# -- the corpus ----------------------------------------------------------------------------------------------
@dataclass
class SpeechCorpusReport:
    folder: Path
    n: int
    sample_rate: int
    seed: int
    elapsed: float
    seconds: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)
    voices: dict[str, int] = field(default_factory=dict)
    phonemes: list[str] = field(default_factory=lambda: list(PHONEMES))
    timing: str = "espeak -x phonemes spread over energy-detected speech regions by class weight"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["folder"] = str(self.folder)
        d["clips_per_second"] = round(self.n / max(self.elapsed, 1e-9), 2)
        return d


def _render_one(job: tuple) -> dict:
    index, seed, folder, sr = job
    rng = np.random.default_rng([seed, index])
    text = random_sentence(rng)
    voice = voice_of(seed, index)
    audio, lines = speak(text, voice.voice, voice.speed, voice.pitch)
    alignment = align_phonemes(audio, ESPEAK_RATE, lines)
    if sr != ESPEAK_RATE:
        from ..audio.io import resample

        audio = np.asarray(resample(audio, ESPEAK_RATE, sr), dtype=np.float32)
    peak = float(np.abs(audio).max()) or 1.0
    audio = (audio * (0.9 / peak)).astype(np.float32)
    rel = f"audio/clip-{index:06d}.wav"
    phon = f"phonemes/clip-{index:06d}.json"
    sf.write(os.path.join(folder, rel), audio, sr, subtype="PCM_16")
    Path(folder, phon).write_text(json.dumps({"text": text, "phonemes": lines, "alignment": [
        [p, round(a, 4), round(b, 4)] for p, a, b in alignment]}))
    tags = {"voice": voice.voice, "accent": voice.accent, "variant": voice.variant, "speed": voice.speed,
            "pitch": voice.pitch, "phonemes": phon, "seconds": round(len(audio) / sr, 3)}
    return {"index": index, "record": asdict(CaptionRecord(path=rel, caption=text, tags=tags, split=split_of(index)))}


def make_speech_corpus(out_dir: str | os.PathLike, n: int = 600, seed: int = 0, sr: int = 16000, *,
                       workers: int | None = None, overwrite: bool = False, progress: bool = False
                       ) -> SpeechCorpusReport:
    """Speak `n` generated sentences with espeak-ng into `out_dir` (audio at `sr`, phoneme alignments, manifest)."""
    from ..audio.io import check_sample_rate

    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CLIPS:
        raise ConfigError(f"n must be an integer between 1 and {MAX_CLIPS}, got {n!r}")
    sr = check_sample_rate(sr)
    espeak_binary()
    folder = Path(out_dir)
    if (folder / MANIFEST_NAME).exists() and not overwrite:
        raise DataError(f"{str(folder)!r} already holds a corpus ({MANIFEST_NAME}); choose another folder or "
                        "pass overwrite")
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    (folder / "phonemes").mkdir(exist_ok=True)
    jobs = [(i, seed, str(folder), sr) for i in range(n)]
    workers = workers or min(os.cpu_count() or 1, 4)
    results: list = [None] * n
    start = time.perf_counter()
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[bold]speak"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        bar.start()
        task = bar.add_task("speak", total=n)
    # threads, not processes: the work is the espeak-ng subprocess (the GIL is released while it runs), and a
    # forked worker can deadlock on locks the parent's torch / OpenMP threads held at fork time
    pool = ThreadPoolExecutor(workers) if workers > 1 and n >= 8 else None
    try:
        iterator = pool.map(_render_one, jobs) if pool is not None else map(_render_one, jobs)
        for item in iterator:
            results[item["index"]] = item["record"]
            if bar is not None:
                bar.update(task, advance=1)
    finally:
        if pool is not None:
            pool.shutdown()
        if bar is not None:
            bar.stop()
    records = [CaptionRecord(**r) for r in results]
    write_manifest(folder, records)
    report = SpeechCorpusReport(folder=folder, n=n, sample_rate=sr, seed=seed, elapsed=time.perf_counter() - start,
                                seconds=round(sum(r.tags["seconds"] for r in records), 2),
                                splits=dict(Counter(r.split for r in records)),
                                voices=dict(Counter(r.tags["voice"] for r in records)))
    (folder / "corpus.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


__all__ = [
    "ACCENTS", "PHONEMES", "PHONEME_IDS", "SIL_ID", "UNK_ID", "VARIANTS", "SpeechCorpusReport", "VoiceSpec",
    "align_phonemes", "alignment_error", "espeak_binary", "make_speech_corpus", "parse_phonemes", "phoneme_units",
    "random_sentence", "speak", "speech_regions", "split_of", "units_from_alignment", "voice_of",
]
