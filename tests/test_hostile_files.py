"""Files from strangers cannot run code, and manifests cannot reach outside their folder.

The source scan proves the rule for every loader in soundweave (every `torch.load` passes weights_only=True; no
pickle/joblib/dill/marshal/shelve; no numpy pickles; nothing turns on `trust_remote_code`); the payload tests
prove it on real files: a pickle that would create a marker file when unpickled is put where soundweave reads
checkpoints and weights, including the `.bin` files transformers and diffusers would fall back to.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch

from soundweave.errors import CheckpointError, DataError, SoundweaveError

SRC = Path(__file__).parents[1] / "src" / "soundweave"
UNPICKLERS = {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "marshal", "shelve"}


def _sources():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50  # the scan really sees the package
    return [(f, ast.parse(f.read_text(), str(f))) for f in files]


def _name(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str, *, unpacked_counts: bool = True):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
        if kw.arg is None and unpacked_counts:  # **kwargs: cannot be proven
            return kw
    return None


def test_every_torch_load_is_weights_only_and_nothing_unpickles():
    loads, problems = 0, []
    for file, tree in _sources():
        torch_load_aliases = {"torch.load", "torch.serialization.load"}
        for node in ast.walk(tree):
            where = f"{file.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
                torch_load_aliases |= {a.asname or a.name for a in node.names if a.name == "load"}
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(m.split(".")[0] in UNPICKLERS for m in modules):
                    problems.append(f"{where}: imports {modules}")
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            if name in torch_load_aliases:
                loads += 1
                value = _keyword(node, "weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where}: {name} without weights_only=True")
            if name.endswith(("np.load", "numpy.load")):
                value = _keyword(node, "allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{where}: {name} may unpickle")
            if name.endswith(("pd.read_pickle", "pandas.read_pickle")):
                problems.append(f"{where}: {name}")
    assert loads >= 2, "the scan found no torch.load at all: is it looking at the right files?"
    assert not problems, problems


def test_nothing_turns_on_trust_remote_code():
    problems = []
    for file, tree in _sources():
        for node in ast.walk(tree):
            where = f"{file.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                value = _keyword(node, "trust_remote_code", unpacked_counts=False)  # **kwargs: see dicts below
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{where}: passes trust_remote_code={ast.unparse(value)}")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                positional = args.posonlyargs + args.args
                defaults = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults):]], args.defaults,
                                    strict=True))
                defaults |= {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None}
                value = defaults.get("trust_remote_code")
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{where}: {node.name}(trust_remote_code={ast.unparse(value)})")
            if isinstance(node, ast.Dict):  # e.g. kwargs = {"trust_remote_code": True}
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "trust_remote_code" and not (
                            isinstance(value, ast.Constant) and value.value is False):
                        problems.append(f"{where}: {{'trust_remote_code': {ast.unparse(value)}}}")
    assert not problems, problems


class _Payload:
    """Unpickling this creates the marker file: what a malicious checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def payload(tmp_path):
    """write(path): a torch file whose unpickling would create `marker`; proven live first."""
    marker = tmp_path / "PWNED"

    def write(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"step": 1, "x": _Payload(marker)}, path)
        return path

    probe = write(tmp_path / "probe.pt")
    torch.load(probe, weights_only=False)  # what an unsafe loader would do: the payload runs
    assert marker.exists()
    marker.unlink()
    return write, marker


def test_a_pickled_training_state_is_refused(tmp_path, payload):
    from soundweave.training.checkpoint import load_state
    from tests.training.trainer_script import build

    write, marker = payload
    build(tmp_path / "run", 5).fit()
    folder = tmp_path / "run" / "checkpoints" / "step-00000005"
    write(folder / "training_state.pt")
    with pytest.raises(CheckpointError, match="training_state.pt"):
        load_state(folder)
    with pytest.raises(CheckpointError, match="training_state.pt"):
        build(tmp_path / "run", 5).fit(resume=folder)
    assert not marker.exists()


def test_a_pickled_rng_file_is_a_checkpoint_error(tmp_path, payload):
    from tests.training.trainer_script import build

    write, marker = payload
    build(tmp_path / "run", 5).fit()
    folder = tmp_path / "run" / "checkpoints" / "step-00000005"
    write(folder / "rng_0.pt")
    with pytest.raises(CheckpointError, match="rng_0.pt"):
        build(tmp_path / "run", 5).load_checkpoint(folder)
    assert not marker.exists()


def test_pickled_weights_beside_a_transformers_codec_are_never_loaded(tmp_path, payload):
    from transformers import EncodecConfig, EncodecModel

    from soundweave import load_codec

    write, marker = payload
    folder = tmp_path / "encodec"
    config = EncodecConfig(num_filters=4, codebook_size=16, codebook_dim=8, hidden_size=8, num_lstm_layers=1,
                           upsampling_ratios=[4, 2], target_bandwidths=[1.5])
    EncodecModel(config).save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    write(folder / "pytorch_model.bin")  # what a hub repo without safetensors would hold
    with pytest.raises(SoundweaveError):
        load_codec(folder)
    assert not marker.exists()


def test_pickled_weights_in_a_diffusers_folder_are_never_loaded(tmp_path, payload):
    from soundweave import MelDiffusionPipeline
    from tests.app.tiny_models import tiny_mel_pipeline

    write, marker = payload
    folder = tmp_path / "mel"
    tiny_mel_pipeline().save_pretrained(folder)
    weights = next((folder / "unet").glob("*.safetensors"))
    weights.unlink()
    write(folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(Exception):  # noqa: B017 - whatever diffusers says, the payload must not run
        MelDiffusionPipeline.from_pretrained(folder)
    assert not marker.exists()


# -- manifests ----------------------------------------------------------------------------------------------

ESCAPES = ["../secret.wav", "../../etc/passwd", "audio/../../secret.wav", "/etc/passwd", "C:\\Windows\\x.wav",
           "..", "audio\\..\\..\\secret.wav", "a.wav\x00.txt", "", 7]


def _manifest(folder: Path, paths) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"path": p, "caption": "x", "split": "train"}) for p in paths]
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("bad", ESCAPES)
def test_manifest_paths_outside_the_folder_are_rejected(tmp_path, bad):
    from soundweave.data import CaptionedAudioDataset
    from soundweave.data.manifest import read_manifest

    secret = tmp_path / "secret.wav"
    shutil.copy(Path(__file__).parent / "fuzz_inputs" / "seeds" / "tone.wav", secret)
    folder = _manifest(tmp_path / "corpus", ["audio/ok.wav", bad])
    with pytest.raises(DataError) as caught:
        read_manifest(folder)
    message = str(caught.value)
    assert "captions.jsonl:2" in message
    assert ("outside the data folder" in message) or ("NUL" in message) or ("non-empty string" in message)
    with pytest.raises(DataError):
        CaptionedAudioDataset(folder, split="train", sample_rate=16000)


def test_manifest_paths_that_stay_inside_are_fine(tmp_path):
    from soundweave.data.manifest import read_manifest

    folder = _manifest(tmp_path / "corpus", ["audio/a.wav", "audio/../audio/b.wav", "./c.wav", "sub/dir/d.flac"])
    assert [r.path for r in read_manifest(folder)] == ["audio/a.wav", "audio/../audio/b.wav", "./c.wav",
                                                       "sub/dir/d.flac"]


def test_an_audiofolder_file_name_outside_the_folder_is_rejected(tmp_path):
    from soundweave.data import HFAudioDataset

    shutil.copy(Path(__file__).parent / "fuzz_inputs" / "seeds" / "tone.wav", tmp_path / "secret.wav")
    folder = tmp_path / "af"
    folder.mkdir()
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "../secret.wav", "caption": "x"}) + "\n")
    dataset = HFAudioDataset(folder, sample_rate=16000)
    with pytest.raises(DataError, match="outside the data folder"):
        dataset[0]
