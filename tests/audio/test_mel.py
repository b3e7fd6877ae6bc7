import pytest
import torch

from soundweave.audio import MelSpectrogram, log_mel_spectrogram, mel_filterbank, power_to_db
from soundweave.audio.mel import db_to_power, hz_to_mel, mel_to_hz
from soundweave.errors import ConfigError, EmptyAudioError, ShapeError
from tests.helpers import tone


def test_mel_scale_roundtrip_and_slaney_break():
    f = torch.tensor([0.0, 200.0, 1000.0, 4000.0, 11025.0])
    assert torch.allclose(mel_to_hz(hz_to_mel(f)), f.double(), atol=1e-6)
    assert torch.allclose(mel_to_hz(hz_to_mel(f, htk=True), htk=True), f.double(), atol=1e-6)
    assert hz_to_mel(1000.0).item() == pytest.approx(15.0)  # Slaney: linear to 1 kHz (15 mel)


def test_filterbank_shape_and_order():
    fb = mel_filterbank(22050, 2048, 128)
    assert fb.shape == (128, 1025) and (fb >= 0).all()
    peaks = fb.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all()  # filters go up in frequency
    assert (fb.sum(dim=1) > 0).all()
    with pytest.raises(ConfigError):
        mel_filterbank(16000, 512, 40, fmin=9000)


def test_melspectrogram_shapes_batching_and_peak_bin():
    sr = 16000
    mel = MelSpectrogram(sample_rate=sr, n_fft=1024, hop_length=256, n_mels=64)
    x = torch.stack([tone(500, 1.0, sr), tone(3000, 1.0, sr)])
    out = mel(x)
    assert out.shape == (2, 64, 16000 // 256 + 1) == (2, 64, mel.num_frames(16000))
    assert torch.allclose(out[1], mel(x[1]), atol=1e-4)  # batched == one at a time
    peak_low, peak_high = out[0].mean(-1).argmax(), out[1].mean(-1).argmax()
    assert peak_high > peak_low
    filters = mel_filterbank(sr, 1024, 64)
    assert filters[:, round(3000 / (sr / 1024))].argmax() == peak_high


def test_log_floor_and_functional():
    silence = torch.zeros(1, 4000)
    out = log_mel_spectrogram(silence, 16000, n_fft=512, hop_length=128, n_mels=32)
    assert torch.allclose(out, torch.full_like(out, torch.log(torch.tensor(1e-5))))


def test_bad_audio():
    mel = MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=128, n_mels=32, center=False)
    with pytest.raises(ShapeError, match="shorter than n_fft"):
        mel(torch.zeros(1, 100))
    with pytest.raises(EmptyAudioError):
        mel(torch.zeros(1, 0))


def test_power_to_db_top_db():
    p = torch.tensor([[[1.0, 1e-3, 1e-12]]])
    db = power_to_db(p, top_db=80)
    assert db.flatten().tolist() == pytest.approx([0.0, -30.0, -80.0])
    assert torch.allclose(db_to_power(torch.tensor(-30.0)), torch.tensor(1e-3))
