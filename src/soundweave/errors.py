"""One family of errors for everything soundweave rejects.

Every message says what was wrong, with which input, and what to do about it. Code that catches
library errors deep inside (soundfile, torch, safetensors) re-raises them as one of these.
"""

from __future__ import annotations


class SoundweaveError(Exception):
    """Base class of every error soundweave raises on purpose."""


class AudioError(SoundweaveError):
    """Audio that cannot be used: unreadable, empty, non-finite, too long, bad sample rate."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio path does not exist."""


class AudioDecodeError(AudioError):
    """The file exists but is not audio soundfile can decode (or is truncated/corrupt)."""


class EmptyAudioError(AudioError):
    """Zero samples."""


class NonFiniteAudioError(AudioError):
    """NaN or Inf samples."""


class SampleRateError(AudioError):
    """A sample rate that is not a positive number in a sane range."""


class AudioTooLongError(AudioError):
    """Longer than the configured maximum duration."""


class ShapeError(SoundweaveError, ValueError):
    """A tensor or array with the wrong shape, dtype or size for the call."""


class ConfigError(SoundweaveError, ValueError):
    """An invalid configuration value or combination."""


class CheckpointError(SoundweaveError):
    """A model folder or training checkpoint that is missing, incomplete or does not match."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint or model folder could not be written (disk full, read-only, permissions); the previous
    checkpoint is left as it was."""


class DataError(SoundweaveError):
    """A dataset or manifest that cannot be used."""


class TrainingError(SoundweaveError):
    """A training run that cannot go on."""


class NonFiniteLossError(TrainingError):
    """A NaN or Inf loss (or gradient norm): the run stopped before the bad step touched the weights."""


def describe_path(path: object) -> str:
    return repr(str(path))
