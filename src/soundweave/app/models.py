"""Where the app's models come from, and the one-per-kind cache that holds them.

Models are found by scanning the folders given to `soundweave app --models DIR` (default: the demo's output
folder) for soundweave model folders (`config.json` naming its class), diffusers pipeline folders
(`model_index.json`) and caption corpora (`captions.jsonl`). A hub id or any other folder can be typed into
a tab's model box instead. Nothing is loaded until a tab first needs it; each kind keeps one model loaded,
and loading another frees the previous one (garbage collection + the CUDA cache).
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

# kind -> the classes whose config.json marks a folder as that kind
SOUNDWEAVE_CLASSES = {
    "MuLaN": "mulan",
    "SoundStorm": "soundstorm",
    "SoundStream": "codec",
    "AudioCLIPAligner": "aligner",
}
KINDS = ("mel-diffusion", "mulan", "codec", "soundstorm", "aligner", "stable-diffusion", "corpus", "musiclm", "tts")
# folders that never hold a model of their own (training runs keep checkpoints and caches in them)
SKIP = {"checkpoints", "codes", "samples", "targets", "audio", "midi", "spectrograms", "__pycache__", ".git",
        "node_modules", ".venv"}
MAX_DEPTH = 5

# what a tab says when it has no model: how to get one (the demo step names are `soundweave demo --list`)
HOWTO: dict[str, str] = {
    "mel-diffusion": "run `python3 tasks.py demo --only mel-diffusion` (writes `demo-output/mel-diffusion/model`), "
                     "or train one: `soundweave train mel-diffusion --data CORPUS --out runs/mel`",
    "mulan": "run `python3 tasks.py demo --only mulan` (writes `demo-output/mulan/run/model`), or train one: "
             "`soundweave train mulan --data CORPUS --out runs/mulan`",
    "codec": "run `python3 tasks.py demo --only codec` (writes `demo-output/codec/model`), or train one: "
             "`soundweave train codec --data CORPUS --out runs/codec`",
    "soundstorm": "run `python3 tasks.py demo --only codec,soundstorm` (writes `demo-output/soundstorm/model`), "
                  "or train one: `soundweave train soundstorm --data CORPUS --codec runs/codec --out runs/storm`",
    "aligner": "run `python3 tasks.py demo --only audio2img` (writes `demo-output/audio2img/run/aligner` and a "
               "small random Stable Diffusion), or train one for a real SD: `soundweave train aligner CORPUS "
               "--out runs/a2i --text-encoder stabilityai/stable-diffusion-2-1-base --aligner facebook/w2v-bert-2.0`",
    "stable-diffusion": "type a Stable Diffusion hub id (e.g. `stabilityai/stable-diffusion-2-1-base`, needs the "
                        "hub) or folder; `python3 tasks.py demo --only audio2img` saves a small random one",
    "musiclm": "run `python3 tasks.py demo --only mulan,musiclm` (writes `demo-output/musiclm/model`), or train "
               "the parts into one folder: `soundweave train semantic-tokenizer`, `soundweave train semantic` and "
               "`soundweave train soundstorm --semantic ... --mulan ...` (see `soundweave generate music --help`)",
    "tts": "run `python3 tasks.py demo --only speech` (writes `demo-output/speech/tts`; needs espeak-ng), or train "
           "one: `soundweave train text-to-semantic --data SPEECH --out runs/t2s`, then `soundweave train soundstorm "
           "--data SPEECH --codec runs/codec --out runs/tts --semantic phonemes --text-to-semantic runs/t2s`",
    "corpus": "make one with `soundweave data synth --out corpus --n 200` (the demo's is "
              "`demo-output/corpus/synthetic-corpus`), or type the path of any folder with a `captions.jsonl`",
}


@dataclass(frozen=True)
class ModelEntry:
    """A model (or corpus) folder found on disk."""

    kind: str
    path: Path
    label: str  # what the dropdown shows: the path relative to the folder it was found under

    @property
    def value(self) -> str:
        return str(self.path)


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def is_musiclm_folder(folder: Path) -> bool:
    """A MusicLM folder (`MusicLM.save_pretrained`): musiclm.json, or its quantizer and SoundStorm parts."""
    from ..pipelines.musiclm import PARTS, PIPELINE_FILE

    return (folder / PIPELINE_FILE).is_file() or all(
        (folder / PARTS[part] / "config.json").is_file() for part in ("quantizer", "soundstorm"))


def classify(folder: Path) -> str | None:
    """The kind of model (or 'corpus') `folder` holds, or None. A SoundStorm carrying a TextToSemantic is a
    text-to-speech model ('tts'); a MusicLM folder's parts are one 'musiclm' model, not models of their own."""
    if is_musiclm_folder(folder):
        return "musiclm"
    index = folder / "model_index.json"
    if index.is_file():
        name = str(_read_json(index).get("_class_name", ""))
        if (folder / "mel").is_dir() or name in ("MelDiffusionPipeline", "AudioDiffusionPipeline"):
            return "mel-diffusion"
        if "StableDiffusion" in name or (folder / "unet").is_dir() and (folder / "vae").is_dir():
            return "stable-diffusion"
        return None
    config = folder / "config.json"
    if config.is_file() and (folder / "model.safetensors").is_file():
        data = _read_json(config)
        name = str(data.get("_class", ""))
        if name == "SoundStorm" and data.get("text_to_semantic"):
            return "tts"
        if name in SOUNDWEAVE_CLASSES:
            return SOUNDWEAVE_CLASSES[name]
        if name.endswith("Codec"):  # codecs added later (load_codec) name themselves ...Codec
            return "codec"
        return None
    if (folder / "captions.jsonl").is_file():
        return "corpus"
    return None


def find_models(roots: Iterable[str | Path], max_depth: int = MAX_DEPTH) -> dict[str, list[ModelEntry]]:
    """Every model and corpus folder under `roots` (missing roots are skipped), grouped by kind."""
    found: dict[str, list[ModelEntry]] = {kind: [] for kind in KINDS}
    seen: set[Path] = set()
    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            continue
        stack = [(root, 0)]
        while stack:
            folder, depth = stack.pop()
            real = folder.resolve()
            if real in seen:
                continue
            seen.add(real)
            kind = classify(folder)
            if kind is not None:
                rel = folder.relative_to(root)
                label = str(Path(root.name) / rel) if str(rel) != "." else root.name or str(root)
                found[kind].append(ModelEntry(kind, folder, label))
                continue  # a model folder's subfolders are its parts, not other models
            if depth >= max_depth:
                continue
            try:
                children = sorted((p for p in folder.iterdir() if p.is_dir()), reverse=True)
            except OSError:
                continue
            stack.extend((c, depth + 1) for c in children if c.name not in SKIP and not c.name.startswith("."))
    for entries in found.values():
        entries.sort(key=lambda e: e.label)
    return found


def mel_classes(spec: str) -> list[str]:
    """Class names of a mel-diffusion folder, read from its model_index.json without loading it."""
    folder = Path(str(spec or "")).expanduser()
    data = _read_json(folder / "model_index.json") if folder.is_dir() else {}
    extras = data.get("_soundweave")
    names = extras.get("class_names") if isinstance(extras, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def model_spec(spec: str | None, kind: str) -> str:
    """The folder or hub id typed/picked in a tab, checked; raises ConfigError saying how to get one."""
    text = str(spec or "").strip()
    if not text:
        raise ConfigError(f"no {kind} model is selected and none was found in the model folders; {HOWTO[kind]}; "
                          "or type a model folder or hub id into the model box")
    path = Path(text).expanduser()
    if not path.exists() and not (text.count("/") == 1 and not text.startswith((".", "/", "~"))):
        raise CheckpointError(f"{kind} model {text!r} is neither an existing folder nor a hub id like 'org/name'; "
                              f"{HOWTO[kind]}")
    return str(path) if path.exists() else text


# -- loading -----------------------------------------------------------------------------------------------
def _device():
    from ..runtime import pick_device

    return pick_device()


def _load_codec(path: str):
    """THE one place the app loads a codec: `soundweave.load_codec` (any codec, by folder or hub id)."""
    from soundweave import load_codec

    return load_codec(path)


def load_mel_diffusion(path: str):
    from soundweave import MelDiffusionPipeline

    return MelDiffusionPipeline.from_pretrained(path, device=_device())


def load_mulan(path: str):
    from soundweave import MuLaN

    return MuLaN.from_pretrained(path, device=_device()).eval()


def load_codec_model(path: str):
    codec = _load_codec(path)
    if hasattr(codec, "eval"):
        codec.eval()
    if hasattr(codec, "to"):
        codec.to(_device())
    return codec


def load_soundstorm(path: str):
    from soundweave import SoundStorm

    model = SoundStorm.from_pretrained(path, device=_device()).eval()
    if model.soundstream is None:
        raise CheckpointError(f"the SoundStorm model {path!r} has no codec attached, so it cannot continue audio; "
                              "train it with `soundweave train soundstorm --codec DIR` (which attaches the codec)")
    return model


def load_musiclm(path: str):
    """THE one place the app loads MusicLM: `MusicLM.from_pretrained`, as `soundweave generate music` does."""
    from ..pipelines.musiclm import MusicLM

    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"MusicLM folder {path!r} does not exist (MusicLM loads from a local folder of its "
                              f"parts, not from a hub id); {HOWTO['musiclm']}")
    if not is_musiclm_folder(folder):
        raise CheckpointError(f"{path!r} is not a MusicLM folder (it has no musiclm.json and no mulan_quantizer/ + "
                              f"soundstorm/ parts); {HOWTO['musiclm']}")
    musiclm = MusicLM.from_pretrained(path, device=_device())
    for part in (musiclm.quantizer, musiclm.audio_lm.soundstorm, musiclm.audio_lm.semantic_transformer,
                 musiclm.audio_lm.wav2vec, musiclm.scorer):
        if hasattr(part, "eval"):
            part.eval()
    return musiclm


def load_tts(path: str):
    """A SoundStorm that carries its TextToSemantic and its codec (what `soundweave generate speech` loads)."""
    from soundweave import SoundStorm

    kind = str(_read_json(Path(path) / "config.json").get("_class", "")) if Path(path).is_dir() else "SoundStorm"
    if kind != "SoundStorm":
        raise CheckpointError(f"{path!r} holds a {kind or 'folder without a soundweave config.json'}, not a "
                              f"text-to-speech SoundStorm; {HOWTO['tts']}")
    model = SoundStorm.from_pretrained(path, device=_device()).eval()
    if model.text_to_semantic is None:
        raise CheckpointError(f"the SoundStorm model {path!r} has no TextToSemantic attached, so it cannot read "
                              "text; train it with `soundweave train soundstorm --semantic phonemes "
                              "--text-to-semantic DIR` (which attaches one)")
    if model.soundstream is None:
        raise CheckpointError(f"the SoundStorm model {path!r} has no codec attached, so it cannot make audio; "
                              "train it with `soundweave train soundstorm --codec DIR` (which attaches the codec)")
    return model


def load_audio2img(sd: str, aligner: str):
    from soundweave import Audio2ImagePipeline

    pipe = Audio2ImagePipeline.from_pretrained(sd, aligner, device=_device())
    if hasattr(pipe.sd, "set_progress_bar_config"):
        pipe.sd.set_progress_bar_config(disable=True)
    return pipe


def free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - freeing is best effort
        pass


class ModelCache:
    """One loaded model per kind. `get(kind, key, loader)` returns the cached model when `key` matches, else
    frees the one held for `kind` and loads the new one (one load at a time per kind)."""

    def __init__(self):
        self._models: dict[str, tuple[Any, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.loads: list[tuple[str, Any]] = []  # (kind, key) of every load, for tests and the log

    def _lock(self, kind: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(kind, threading.Lock())

    def loaded(self, kind: str) -> Any | None:
        """The key of the model held for `kind`, or None."""
        held = self._models.get(kind)
        return None if held is None else held[0]

    def free(self, kind: str) -> None:
        if self._models.pop(kind, None) is not None:
            free_memory()

    def get(self, kind: str, key: Any, loader: Callable[[], Any], status: Callable[[str], None] | None = None):
        with self._lock(kind):
            held = self._models.get(kind)
            if held is not None and held[0] == key:
                return held[1]
            if held is not None:
                log.info("freeing the %s model %s", kind, held[0])
                self.free(kind)
            if status is not None:
                status(f"loading the {kind} model {key} ...")
            model = loader()
            self._models[kind] = (key, model)
            self.loads.append((kind, key))
            log.info("loaded the %s model %s", kind, key)
            return model


__all__ = ["HOWTO", "KINDS", "ModelCache", "ModelEntry", "classify", "find_models", "free_memory",
           "is_musiclm_folder", "load_musiclm", "load_tts", "mel_classes", "model_spec"]
