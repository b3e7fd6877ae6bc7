import io

import numpy as np
import pytest
import soundfile as sf
import torch

from soundweave import audio as A
from soundweave.errors import (
    AudioDecodeError,
    AudioError,
    AudioFileNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    NonFiniteAudioError,
    SampleRateError,
    ShapeError,
    SoundweaveError,
)
from tests.helpers import check_margin, tone


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_save_load_roundtrip_formats(tmp_path, suffix):
    x = tone(440, 1.0, 16000)
    path = A.save(tmp_path / f"a{suffix}", x, 16000)
    y, sr = A.load(path)
    assert sr == 16000 and y.dtype == torch.float32 and y.ndim == 1
    assert abs(y.shape[0] - x.shape[0]) <= 1200  # lossy codecs may pad a frame
    if suffix in (".wav", ".flac"):
        assert y.shape == x.shape
        assert torch.allclose(y, x, atol=1e-3)
    # the spectrum peak survives every codec
    spectrum = torch.fft.rfft(y[:16000] if y.shape[0] >= 16000 else torch.nn.functional.pad(y, (0, 16000 - len(y))))
    # the peak bin is an integer: within 2 bins of 440 Hz <=> below 2.5
    check_margin(f"io.roundtrip{suffix}.peak_offset_hz", abs(int(spectrum.abs().argmax()) - 440), 2.5)


def test_load_resamples_and_mixes_down(tmp_path):
    stereo = np.stack([tone(300, 1.0, 22050).numpy(), -0.5 * tone(300, 1.0, 22050).numpy()], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 22050, subtype="FLOAT")
    y, sr = A.load(tmp_path / "s.wav", sr=16000)
    assert sr == 16000 and y.ndim == 1 and abs(y.shape[0] - 16000) <= 1
    both, _ = A.load(tmp_path / "s.wav", mono=False)
    assert both.shape == (2, 22050)
    assert torch.allclose(A.load(tmp_path / "s.wav")[0], both.mean(0))


def test_load_from_bytes_and_file_object(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, tone().numpy(), 16000, format="WAV")
    y1, _ = A.load(buf.getvalue())
    buf.seek(0)
    y2, _ = A.load(buf)
    assert torch.equal(y1, y2) and y1.shape == (16000,)


def test_offset_and_duration_window(tmp_path):
    x = torch.linspace(-0.5, 0.5, 16000)
    A.save(tmp_path / "r.wav", x, 16000, subtype="FLOAT")
    y, _ = A.load(tmp_path / "r.wav", offset=0.25, duration=0.5)
    assert y.shape == (8000,) and torch.allclose(y, x[4000:12000])


def test_info(tmp_path):
    A.save(tmp_path / "i.flac", tone(seconds=2.0), 16000)
    i = A.info(tmp_path / "i.flac")
    assert (i.sample_rate, i.channels, i.frames) == (16000, 1, 32000) and i.duration == pytest.approx(2.0)


def test_resample_lengths_and_identity():
    x = tone(440, 1.0, 48000)
    y = A.resample(x, 48000, 16000)
    assert y.shape == (16000,)
    assert A.resample(x, 48000, 48000) is not None and torch.equal(A.resample(x, 48000, 48000), x)
    batch = A.resample(torch.stack([x, x]), 48000, 24000)
    assert batch.shape == (2, 24000)


# ---- bad input: every case is a SoundweaveError with a message naming the problem ----

def test_missing_file(tmp_path):
    with pytest.raises(AudioFileNotFoundError, match="does not exist"):
        A.load(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="empty"):
        A.load(tmp_path / "e.wav")
    with pytest.raises(EmptyAudioError):
        A.load(b"")


def test_truncated_file(tmp_path):
    A.save(tmp_path / "t.flac", tone(seconds=1.0), 16000)
    data = (tmp_path / "t.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[:30])
    with pytest.raises(AudioError):
        A.load(tmp_path / "cut.flac")


def test_non_audio_file(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio at all" * 20)
    with pytest.raises(AudioDecodeError, match="not"):
        A.load(tmp_path / "notes.wav")
    with pytest.raises(AudioDecodeError):
        A.info(tmp_path / "notes.wav")
    with pytest.raises(AudioDecodeError, match="folder"):
        A.load(tmp_path)


def test_zero_length_audio(tmp_path):
    sf.write(tmp_path / "z.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(EmptyAudioError, match="zero samples"):
        A.load(tmp_path / "z.wav")
    with pytest.raises(EmptyAudioError):
        A.save(tmp_path / "z2.wav", torch.zeros(0), 16000)


def test_nan_and_inf_samples(tmp_path):
    x = tone().numpy()
    x[100] = np.nan
    sf.write(tmp_path / "n.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match="NaN/Inf"):
        A.load(tmp_path / "n.wav")
    with pytest.raises(NonFiniteAudioError):
        A.check_audio(torch.tensor([0.0, float("inf")]))


@pytest.mark.parametrize("sr", [0, -16000, 5, 10**9, 44100.5, float("nan"), "16k", True])
def test_absurd_sample_rates(sr, tmp_path):
    with pytest.raises(SampleRateError):
        A.check_sample_rate(sr)
    with pytest.raises(SoundweaveError):
        A.save(tmp_path / "x.wav", tone(), sr)


def test_absurd_sample_rate_in_file(tmp_path):
    # a header claiming 200 Hz (soundfile writes it) is rejected on load
    sf.write(tmp_path / "low.wav", np.zeros(100, np.float32), 200)
    with pytest.raises(SampleRateError, match="200 Hz"):
        A.load(tmp_path / "low.wav")


def test_over_long_file(tmp_path):
    A.save(tmp_path / "long.wav", tone(seconds=3.0), 16000)
    with pytest.raises(AudioTooLongError, match="maximum"):
        A.load(tmp_path / "long.wav", max_seconds=2.0)
    y, _ = A.load(tmp_path / "long.wav", max_seconds=None)
    assert y.shape == (48000,)


def test_wrong_shapes():
    with pytest.raises(ShapeError):
        A.check_audio(torch.zeros(1, 2, 3))
    with pytest.raises(ShapeError):
        A.check_audio([0.1, 0.2])


def test_fix_length_and_to_mono():
    x = torch.arange(10.0)
    assert A.fix_length(x, 4).tolist() == [0, 1, 2, 3]
    assert A.fix_length(x, 12)[-2:].tolist() == [0, 0]
    assert A.to_mono(torch.stack([x, -x])).abs().sum() == 0
