"""Every failure benchmarks/fuzz.py found, replayed: the input files are kept in tests/fuzz_inputs/regressions/TARGET/
and go through the same target setup the fuzzer used (its tiny model, checkpoint and corpus). Each must now end
in success or a SoundweaveError that names the input, within the fuzzer's 5 s, with the message given here."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from soundweave.errors import CheckpointError, DataError, NonFiniteLossError, SoundweaveError

ROOT = Path(__file__).parents[1]
INPUTS = Path(__file__).parent / "fuzz_inputs" / "regressions"

# file -> (error class, words of its message); what the fuzzer saw first is in the comment
EXPECTED = {
    # UnicodeDecodeError from read_text
    "manifest/not-utf8.jsonl": (DataError, "captions.jsonl:2: not UTF-8 text"),
    # TypeError: unhashable type: 'dict' (the registry lookup)
    "pretrained_config/class-is-a-dict.json": (CheckpointError, "'_class' in"),
    # a hang: TextTransformer depth 2**63 built layer after layer
    "pretrained_config/hang-depth-2-63.json": (CheckpointError, "far more than model.safetensors holds"),
    # a hang: 2000 residual-quantizer levels, each small, built one by one on the meta device
    "pretrained_config/hang-2000-quantizers.json": (CheckpointError, "rq_num_quantizers must be at most 1024"),
    # a hang: the multi-scale mel loss computing 2 ** (2 ** 63)
    "pretrained_config/hang-window-power-2-63.json": (CheckpointError, "window powers of two must be whole numbers"),
    # ConfigError without the folder's name
    "pretrained_config/mulan-config-error-unnamed.json": (CheckpointError, "is not a valid MuLaN: loss must be"),
    # out of memory: codebook_dim 8,000,000 allocated before the build failed
    "pretrained_config/oom-codebook-dim-8e6.json": (CheckpointError, "parameter values, far more than model.safe"),
    # out of memory: vector-quantize-pytorch's per-level settings tuple for 2e9 RVQ levels
    "pretrained_config/oom-2e9-quantizer-levels.json": (CheckpointError, "rq_num_quantizers must be at most 1024"),
    # out of memory: a 16M x 65 mel filter bank (a non-persistent buffer: not in the weights file at all)
    "pretrained_config/oom-mulan-16M-mel-bands.json": (CheckpointError, "describes buffers of over"),
    # out of memory: patch size 8M x 8 (with 3M mel bands)
    "pretrained_config/oom-mulan-patch-size-8M.json": (CheckpointError, "describes buffers of over"),
    # out of memory: a 1e9-sample STFT window for the training loss
    "pretrained_config/oom-stft-loss-fft-size-1e9.json": (CheckpointError, "STFT loss FFT sizes must be whole numbers"),
    # ConfigError without the folder's name
    "pretrained_config/soundstream-config-error-unnamed.json": (CheckpointError,
                                                                "is not a valid SoundStream: rq_quantize_dropout"),
    # SafetensorError (header too large) from the EMA weights on resume
    "resume/ema-header-too-large.bin": (CheckpointError, "could not read weights"),
    # SafetensorError (incomplete metadata) from the model weights on resume
    "resume/model-header-incomplete.bin": (CheckpointError, "could not read weights"),
    # a finite but huge weight: the resumed run's next loss is inf. The designed outcome: stop with the step.
    "resume/weights-make-inf-loss.bin": (NonFiniteLossError, "loss is inf at step 3"),
}


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("soundweave_fuzz", ROOT / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    fuzz = _fuzz_module()
    made = {}

    def get(name):
        if name not in made:
            made[name] = fuzz.TARGETS[name](tmp_path_factory.mktemp(f"fuzz-{name}"))
        return made[name]

    return get


def test_every_kept_input_has_an_expectation():
    kept = sorted(str(p.relative_to(INPUTS)) for p in INPUTS.rglob("*") if p.is_file())
    assert kept == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fuzz_failure_is_fixed(name, targets):
    target = targets(name.split("/")[0])
    data = (INPUTS / name).read_bytes()
    error, words = EXPECTED[name]
    start = time.perf_counter()
    with pytest.raises(SoundweaveError) as caught:
        target.run(data)
    elapsed = time.perf_counter() - start
    assert type(caught.value) is error and words in str(caught.value), str(caught.value)
    assert target.names_input(str(caught.value), data)
    assert elapsed < 5.0
