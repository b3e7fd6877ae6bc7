"""Audio I/O, checks, resampling, mel spectrograms and the spectrogram-image codec."""

from .griffin_lim import griffin_lim, mel_to_linear
from .io import (
    AudioInfo,
    check_audio,
    check_sample_rate,
    fix_length,
    info,
    load,
    resample,
    save,
    to_mono,
)
from .mel import MelConfig, MelSpectrogram, log_mel_spectrogram, mel_filterbank, power_to_db, stft
from .mel_image import MelImageCodec, MelImageConfig

__all__ = [
    "AudioInfo", "MelConfig", "MelImageCodec", "MelImageConfig", "MelSpectrogram", "check_audio",
    "check_sample_rate", "fix_length", "griffin_lim", "info", "load", "log_mel_spectrogram", "mel_filterbank",
    "mel_to_linear", "power_to_db", "resample", "save", "stft", "to_mono",
]
