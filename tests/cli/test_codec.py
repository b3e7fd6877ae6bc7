"""Codec commands: train codec -> codec encode -> codec decode -> eval codec; errors; the demo helper."""

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from soundweave import load_codec
from soundweave.errors import CheckpointError, ShapeError, SoundweaveError
from tests.helpers import invoke_cli as invoke
from tests.helpers import parse_json


@pytest.fixture(scope="module", params=["spectral", "soundstream"])
def trained(request, tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("codec")
    result = invoke("train", "codec", "--data", tiny_corpus, "--out", out, "--steps", 4, "--kmeans-iters", 4,
                    "--preset", "tiny", "--kind", request.param, "--batch-size", 2, "--seconds", 0.2,
                    "--num-quantizers", 3, "--codebook-size", 16)
    assert result.exit_code == 0, result.output
    report = parse_json(result.stdout)
    assert report["steps"] == 4 and "si_sdr" in report["after"] and report["kind"] == request.param
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    return out


def test_encode_decode_eval(trained, tiny_corpus, tmp_path):
    wav = next((tiny_corpus / "audio").glob("*.wav"))
    codes_path = tmp_path / "codes.npy"
    result = invoke("codec", "encode", wav, "--model", trained, "--out", codes_path)
    assert result.exit_code == 0, result.output
    codes = np.load(codes_path)
    audio, sr = sf.read(wav)
    hop = load_codec(trained).hop_length  # tiny presets: SpectralCodec 80, SoundStream 40
    n_expected = int(np.ceil(round(len(audio) * 8000 / sr) / hop))  # tiny presets: 8 kHz
    assert codes.dtype == np.int64 and codes.shape[0] == 1 and codes.shape[2] == 3
    assert abs(codes.shape[1] - n_expected) <= 1 and 0 <= codes.min() and codes.max() < 16
    two = invoke("codec", "encode", wav, "--model", trained, "--out", tmp_path / "two.npy", "--num-quantizers", 2)
    assert two.exit_code == 0 and np.array_equal(np.load(tmp_path / "two.npy"), codes[..., :2])

    result = invoke("codec", "decode", codes_path, "--model", trained, "--out", tmp_path / "out.wav")
    assert result.exit_code == 0, result.output
    out, out_sr = sf.read(tmp_path / "out.wav")
    assert out_sr == 8000 and len(out) == codes.shape[1] * hop
    # a batch of codes gives one file per item
    np.save(tmp_path / "batch.npy", np.concatenate([codes, codes]))
    result = invoke("codec", "decode", tmp_path / "batch.npy", "--model", trained, "--out", tmp_path / "b.wav")
    assert result.exit_code == 0 and (tmp_path / "b-0.wav").is_file() and (tmp_path / "b-1.wav").is_file()

    result = invoke("eval", "codec", "--model", trained, "--data", tiny_corpus, "--max-clips", 2)
    assert result.exit_code == 0, result.output
    metrics = parse_json(result.stdout)
    assert set(metrics) >= {"si_sdr", "mel_distance", "bitrate_kbps", "rtf"}
    assert metrics["bitrate_kbps"] == pytest.approx(8000 / hop * 3 * 4 / 1000) and metrics["clips"] == 2


def test_errors(trained, tiny_corpus, tmp_path):
    np.save(tmp_path / "float.npy", np.zeros((1, 4, 3), dtype=np.float32))
    result = invoke("codec", "decode", tmp_path / "float.npy", "--model", trained, "--out", tmp_path / "x.wav")
    assert isinstance(result.exception, ShapeError)
    np.save(tmp_path / "big.npy", np.full((1, 4, 3), 99, dtype=np.int64))
    result = invoke("codec", "decode", tmp_path / "big.npy", "--model", trained, "--out", tmp_path / "x.wav")
    assert isinstance(result.exception, ShapeError)
    result = invoke("codec", "encode", tmp_path / "missing.wav", "--model", trained, "--out", tmp_path / "c.npy")
    assert isinstance(result.exception, SoundweaveError)
    result = invoke("codec", "encode", next((tiny_corpus / "audio").glob("*.wav")), "--model", tmp_path / "nope",
                    "--out", tmp_path / "c.npy")
    assert isinstance(result.exception, CheckpointError)
    result = invoke("eval", "codec", "--model", trained, "--data", tiny_corpus, "--split", "nope")
    assert isinstance(result.exception, SoundweaveError)


def test_main_prints_one_error_line(trained, tmp_path, capsys):
    from soundweave.cli import main

    np.save(tmp_path / "float.npy", np.zeros((1, 4, 3), dtype=np.float32))
    with pytest.raises(SystemExit) as exit_info:
        main(["codec", "decode", str(tmp_path / "float.npy"), "--model", str(trained),
              "--out", str(tmp_path / "x.wav")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "integers" in err


def test_codec_demo_helper(tiny_corpus, tmp_path):
    from soundweave.cli.codec import codec_demo
    from soundweave.cli.demo import DemoContext

    ctx = DemoContext(out=tmp_path, corpus=tiny_corpus)
    result = codec_demo(ctx, steps=3, max_seconds=None, preset="tiny", model_config=dict(codebook_size=16))
    out = tmp_path / "codec"
    for name in ("original.wav", "reconstruction.wav", "reconstruction-2q.wav", "metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "model" / "config.json").is_file() and result.train.step == 10  # k-means iterations
    picture = Image.open(out / "spectrograms.png")
    assert picture.height > 3 * 100 and picture.width > 100  # three labelled spectrograms, stacked
    assert len(ctx.outputs) == 4
    # SoundStream through the same helper
    ctx = DemoContext(out=tmp_path / "ss", corpus=tiny_corpus)
    result = codec_demo(ctx, steps=3, max_seconds=None, preset="tiny", seconds=0.2, batch_size=2,
                        model_config=dict(codebook_size=16), kind="soundstream")
    assert result.train.step == 3 and (tmp_path / "ss" / "codec" / "spectrograms.png").is_file()
