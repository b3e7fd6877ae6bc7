"""The foundation's commands: --help everywhere, data synth, audio info, mel encode/decode, demo, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from soundweave.data import read_manifest
from tests.helpers import check_margin
from tests.helpers import invoke_cli as invoke


def test_help_everywhere():
    result = invoke("--help")
    assert result.exit_code == 0
    for group in ("data", "audio", "mel", "train", "eval", "generate", "codec", "demo"):
        assert group in result.output
    for args in (["data", "synth"], ["audio", "info"], ["mel", "encode"], ["mel", "decode"], ["demo"]):
        sub = invoke(*args, "--help")
        assert sub.exit_code == 0 and "Usage" in sub.output, args


def test_data_synth_and_audio_info(tmp_path):
    result = invoke("data", "synth", "--out", tmp_path / "c", "--n", 12, "--seconds", 1, "--sr", 16000,
                    "--seed", 3, "--workers", 1)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"): result.stdout.rindex("}") + 1])
    assert report["n"] == 12 and report["sample_rate"] == 16000
    assert len(read_manifest(tmp_path / "c")) == 12
    info = invoke("audio", "info", tmp_path / "c" / "audio" / "clip-000000.wav")
    assert info.exit_code == 0
    assert json.loads(info.stdout)[0]["sample_rate"] == 16000


def test_mel_encode_then_decode(tmp_path):
    sr = 22050
    t = np.arange(int(sr * 3.2)) / sr
    sf.write(tmp_path / "in.wav", 0.5 * np.sin(2 * np.pi * 330 * t), sr)
    result = invoke("mel", "encode", tmp_path / "in.wav", "--out", tmp_path / "png", "--x-res", 64, "--y-res", 64,
                    "--hop-length", 512)
    assert result.exit_code == 0, result.output
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == int(sr * 3.2) // (64 * 512 - 1)
    decoded = invoke("mel", "decode", *pngs, "--out", tmp_path / "out.wav", "--hop-length", 512, "--n-iter", 8)
    assert decoded.exit_code == 0, decoded.output
    audio, out_sr = sf.read(tmp_path / "out.wav")
    assert out_sr == sr and len(audio) == len(pngs) * 63 * 512
    spectrum = np.abs(np.fft.rfft(audio[: sr]))
    check_margin("cli.mel_decode.peak_offset_hz", abs(np.argmax(spectrum) * sr / sr - 330), 15)  # the tone comes back


def test_errors_print_one_line_and_exit_1(tmp_path):
    run = subprocess.run([sys.executable, "-c", "from soundweave.cli import main; main()", "audio", "info",
                          str(tmp_path / "missing.wav")], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error: ") and "does not exist" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    (tmp_path / "x.png").write_text("not an image")
    bad = subprocess.run([sys.executable, "-c", "from soundweave.cli import main; main()", "mel", "decode",
                          str(tmp_path / "x.png"), "--out", str(tmp_path / "o.wav")], capture_output=True, text=True)
    assert bad.returncode == 1 and "not a readable image" in bad.stderr


@pytest.mark.parametrize("args", [["data", "synth", "--out", "X", "--n", "0"], ["demo", "--only", "nonsense"]])
def test_bad_options_are_clear(tmp_path, args):
    args = [str(tmp_path / "o") if a == "X" else a for a in args]
    run = subprocess.run([sys.executable, "-c", "from soundweave.cli import main; main()", *args],
                         capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.startswith("error: ")


def test_demo_corpus_step(tmp_path):
    result = invoke("demo", "--only", "corpus", "--out", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    out = tmp_path / "demo" / "corpus"
    assert len(list((out / "spectrograms").glob("*.png"))) == 6
    audio, sr = sf.read(out / "roundtrip.wav")
    assert sr == 22050 and len(audio) == 255 * 256
    assert len(read_manifest(out / "synthetic-corpus")) >= 100
    assert "demo outputs are in" in result.stdout
    # the README's main job run a second time into the same folder renders its corpus again instead of stopping
    first = [(r.path, r.caption) for r in read_manifest(out / "synthetic-corpus")]
    again = invoke("demo", "--only", "corpus", "--out", tmp_path / "demo")
    assert again.exit_code == 0, again.output
    assert [(r.path, r.caption) for r in read_manifest(out / "synthetic-corpus")] == first  # same seed, same clips
