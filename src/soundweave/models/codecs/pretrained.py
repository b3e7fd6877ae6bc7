"""Pretrained EnCodec, DAC and Mimi (transformers models) behind soundweave's `Codec` interface, mono.

    codec = load_codec("facebook/encodec_24khz")               # hub id (needs network once) or a local folder
    codec = EncodecCodec.from_pretrained("facebook/encodec_24khz", bandwidth=12.0)
    codes = codec.encode(audio, sample_rate=44100)              # (B, N, Q) int64, N = ceil(T / hop)
    audio = codec.decode(codes)                                 # (B, N * hop) at codec.sample_rate

| class          | hub ids (per their configs)         | rate      | hop      | frames/s   | levels x codes          |
|----------------|-------------------------------------|-----------|----------|------------|-------------------------|
| `EncodecCodec` | facebook/encodec_24khz              | 24 kHz    | 320      | 75         | 2-32 x 1024 (bandwidth) |
|                | facebook/encodec_32khz (MusicGen's) | 32 kHz    | 640      | 50         | 4 x 2048 (2.2 kbps)     |
| `DacCodec`     | descript/dac_16khz, _24khz, _44khz  | 16/24/44k | 320/320/512 | 50/75/86 | 12/32/9 x 1024        |
| `MimiCodec`    | kyutai/mimi (level 0: semantic)     | 24 kHz    | 1920     | 12.5       | 32 x 2048 (default 8)   |

Each wraps the transformers model (`codec.model`) and reads every fact from its config: sample rate, hop,
codebook size. The number of levels Q is a setting of the wrapper: EnCodec's `bandwidth` (one of the config's
`target_bandwidths`; default 6.0 kbps when offered - 8 levels at 24 kHz, what VALL-E-style models use - else the
highest), DAC's and Mimi's `num_quantizers` (DAC: all `n_codebooks`; Mimi: 8, as Moshi uses). Input is zero-padded
to a multiple of the hop, so `encode` gives ceil(T / hop) frames; `decode` gives exactly N * hop samples.

`save_pretrained(folder)` writes the transformers folder (config.json with `model_type`, model.safetensors) with
the setting as an extra config key (`soundweave_bandwidth` / `soundweave_num_quantizers`), so `load_codec(folder)`
and `transformers.EncodecModel.from_pretrained(folder)` both load it. Weights are read from safetensors only,
never with remote code. The wrappers are for inference and stay in eval mode; fine-tune `codec.model` with
transformers' tools if you need to.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
import torch.nn.functional as F

from ...errors import CheckpointError, ConfigError
from ..base import PretrainedModel, looks_like_hub_id
from .base import Codec


def download_hint(name: str) -> str:
    return (f"download it once while online (`hf download {name}`; with huggingface_hub < 1.0 `huggingface-cli "
            f"download {name}`; or the same call with network) and load it by the same id from the cache (works with "
            "HF_HUB_OFFLINE=1), or pass the local folder written by save_pretrained")


class TransformersCodec(Codec, PretrainedModel):
    """Shared wrapper of a transformers audio-codec model. Subclasses name the classes and read the facts."""

    model_type: ClassVar[str] = ""
    setting: ClassVar[str] = "num_quantizers"  # the wrapper's own setting, stored as `soundweave_<setting>`

    def __init__(self, config: Any = None, *, model: Any = None):
        super().__init__()
        config_cls, model_cls = self._transformers_classes()
        name = type(self).__name__
        if model is not None:
            if config is not None:
                raise ConfigError(f"{name}: give a transformers config or a model, not both")
            if not isinstance(model, model_cls):
                raise ConfigError(f"{name} wraps a transformers {model_cls.__name__}, got {type(model).__name__}")
        else:
            model = model_cls(self._as_config(config, config_cls))
        if getattr(model.config, "audio_channels", 1) != 1:
            raise ConfigError(f"{name} is mono, but this {model_cls.__name__} has {model.config.audio_channels} audio "
                              "channels (e.g. facebook/encodec_48khz is stereo); use a mono model")
        self.model = model.float()
        self.sample_rate = int(model.config.sampling_rate)
        self.codebook_size = int(model.config.codebook_size)
        self.eval()

    # -- the transformers side --------------------------------------------------------------------------
    @classmethod
    def _transformers_classes(cls) -> tuple[type, type]:  # pragma: no cover - overridden
        raise ConfigError(f"{cls.__name__} is not a concrete codec; use EncodecCodec, DacCodec or MimiCodec")

    @classmethod
    def _as_config(cls, config: Any, config_cls: type) -> Any:
        if config is None:
            return config_cls()  # the default (real-size) configuration
        if isinstance(config, config_cls):
            return config
        if isinstance(config, dict):
            kind = config.get("model_type", cls.model_type)
            if kind != cls.model_type:
                raise ConfigError(f"{cls.__name__} needs a transformers config of model_type {cls.model_type!r}, "
                                  f"got {kind!r}")
            try:
                return config_cls.from_dict({k: v for k, v in config.items() if not k.startswith("soundweave_")})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{cls.__name__}: invalid {config_cls.__name__}: {exc}") from exc
        raise ConfigError(f"{cls.__name__} needs a transformers {config_cls.__name__} (or its dict), "
                          f"got {type(config).__name__}")

    def _stored_setting(self) -> Any:
        return getattr(self.model.config, f"soundweave_{self.setting}", None)

    def train(self, mode: bool = True) -> Self:
        """Kept in eval mode: the wrappers are for inference (training mode would change e.g. DAC's levels)."""
        return super().train(False)

    # -- persistence ------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config = {k: v for k, v in self.model.config.to_dict().items() if not k.startswith("soundweave_")}
        return {"transformers_config": config, self.setting: getattr(self, self.setting)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """Rebuild with random weights from `get_config()` (SoundStorm then loads the weights it saved)."""
        config = dict(config)
        if "transformers_config" not in config:
            raise ConfigError(f"{cls.__name__} config needs 'transformers_config', got keys {sorted(config)}")
        tc = config.pop("transformers_config")
        unknown = set(config) - {cls.setting}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} setting(s) {sorted(unknown)}; accepted: {cls.setting!r}")
        return cls(tc, **config)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write a transformers folder (config.json + model.safetensors) that load_codec and transformers read."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        setattr(self.model.config, f"soundweave_{self.setting}", getattr(self, self.setting))
        self.model.save_pretrained(folder)
        return folder

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, *, revision: str | None = None,
                        device: str | torch.device | None = None, strict: bool = True,
                        cache_dir: str | os.PathLike | None = None, **settings) -> Self:
        """Load a transformers checkpoint: a local folder, or a hub id (downloaded to the cache; needs network once).

        `settings`: `bandwidth=` (EnCodec) or `num_quantizers=` (DAC, Mimi); default: the value saved with the folder,
        else the class default. `strict`: fail if the weights miss any parameter of the model.
        """
        from transformers import PreTrainedConfig

        unknown = set(settings) - {cls.setting}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} option(s) {sorted(unknown)}; accepted: {cls.setting!r}")
        name = str(path_or_id)
        local = Path(name).expanduser()
        if not local.is_dir() and (local.exists() or not looks_like_hub_id(name)):
            what = "is a file" if local.exists() else "does not exist"
            raise CheckpointError(f"codec folder {name!r} {what} (and is not a hub id like 'facebook/encodec_24khz')")
        source = str(local) if local.is_dir() else name
        hub = {"revision": revision, "cache_dir": None if cache_dir is None else str(cache_dir)}

        def fail(exc: Exception) -> CheckpointError:
            if local.is_dir():
                return CheckpointError(f"could not load a transformers {cls.model_type} model from {name!r}: "
                                       f"{type(exc).__name__}: {exc}")
            return CheckpointError(f"could not load {name!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
                                   f"to use it, {download_hint(name)}")

        if local.is_dir() and not (local / "config.json").is_file():
            raise CheckpointError(f"{name!r} has no config.json; is it a transformers {cls.model_type} folder?")
        try:
            config_dict, _ = PreTrainedConfig.get_config_dict(source, **hub)
        except Exception as exc:  # offline, unknown repo, bad JSON: one clear error
            raise fail(exc) from exc
        kind = config_dict.get("model_type")
        if kind != cls.model_type:
            raise CheckpointError(f"{name!r} holds a transformers model of type {kind!r}, not {cls.model_type!r} "
                                  f"({cls.__name__}); load_codec picks the right class for a codec folder")
        config_cls, model_cls = cls._transformers_classes()
        try:
            config = config_cls.from_dict(config_dict)
            model, info = model_cls.from_pretrained(source, config=config, dtype=torch.float32, use_safetensors=True,
                                                    output_loading_info=True, **hub)
        except Exception as exc:
            raise fail(exc) from exc
        bad = sorted(info.get("missing_keys", ())) + sorted(info.get("mismatched_keys", ()))
        if strict and bad:
            raise CheckpointError(f"weights in {name!r} do not fit {model_cls.__name__}: missing or mismatched "
                                  f"{bad[:8]}; pass strict=False to load anyway (those weights stay random)")
        codec = cls(model=model, **settings)
        if device is not None:
            codec.to(device)
        return codec

    # -- audio <-> codes ----------------------------------------------------------------------------------
    def _encode_padded(self, audio: torch.Tensor, num_quantizers: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError  # (B, 1, N * hop) -> codes (B, Q', N), Q' >= num_quantizers

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError  # codes (B, Q', N) -> audio (B, T') or (B, 1, T')

    def _encode(self, audio: torch.Tensor, num_quantizers: int) -> torch.Tensor:
        """audio (B, T) -> codes (B, N, Q) with N = ceil(T / hop) (the tail zero-padded)."""
        frames = math.ceil(audio.shape[-1] / self.hop_length)
        padded = self._pad_to_hop(audio.float())[:, None]
        codes = self._encode_padded(padded, num_quantizers)
        if codes.shape[-1] != frames:
            raise ConfigError(f"{type(self).__name__}: the model gave {codes.shape[-1]} frames for {padded.shape[-1]} "
                              f"samples, expected {frames} at hop {self.hop_length}; its config is not one this "
                              "wrapper understands")
        return codes[:, :num_quantizers].transpose(1, 2).long()

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, N, Q') -> audio (B, N * hop): the model's output trimmed or zero-padded to exactly that."""
        batch, frames, _ = codes.shape
        audio = self._decode_codes(codes.transpose(1, 2).contiguous()).reshape(batch, -1)
        target = frames * self.hop_length
        if audio.shape[-1] >= target:
            return audio[:, :target]
        return F.pad(audio, (0, target - audio.shape[-1]))

    def _levels(self, value: Any, maximum: int, default: int, minimum: int = 1) -> int:
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= maximum:
            raise ConfigError(f"{type(self).__name__} num_quantizers must be an integer in [{minimum}, {maximum}], "
                              f"got {value!r}")
        return int(value)


class EncodecCodec(TransformersCodec):
    """EnCodec (Défossez et al. 2022, arXiv 2210.13438) through transformers' `EncodecModel`.

    `bandwidth` (kbps, one of the config's `target_bandwidths`) chooses the number of levels Q; default 6.0 when
    offered (facebook/encodec_24khz: 8 levels of 1024 codes at 75 frames/s), else the highest (encodec_32khz:
    2.2 kbps = 4 levels of 2048 at 50 frames/s). Chunked configs (`chunk_length_s`) are not supported: the 48 kHz
    model, the only one that uses chunks, is stereo. With `normalize=True` in the config the model encodes the
    clip scaled to unit RMS and the codes do not carry that scale, so `decode` returns audio at unit RMS (the
    public 24 and 32 kHz models have `normalize=False`).
    """

    model_type = "encodec"
    setting = "bandwidth"
    DEFAULT_BANDWIDTH: ClassVar[float] = 6.0

    def __init__(self, config: Any = None, *, model: Any = None, bandwidth: float | None = None):
        super().__init__(config, model=model)
        cfg = self.model.config
        if cfg.chunk_length_s is not None:
            raise ConfigError(f"EncodecCodec does not support chunked EnCodec configs (chunk_length_s="
                              f"{cfg.chunk_length_s}): codes (B, N, Q) cannot carry per-chunk scales")
        choices = [float(b) for b in cfg.target_bandwidths]
        if bandwidth is None:
            bandwidth = self._stored_setting()
        if bandwidth is None:
            bandwidth = self.DEFAULT_BANDWIDTH if self.DEFAULT_BANDWIDTH in choices else max(choices)
        if isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real) or float(bandwidth) not in choices:
            raise ConfigError(f"EncodecCodec bandwidth must be one of this model's target_bandwidths {choices} "
                              f"(kbps), got {bandwidth!r}")
        self.bandwidth = float(bandwidth)
        self.hop_length = int(math.prod(cfg.upsampling_ratios))
        self.num_quantizers = int(self.model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth))

    @classmethod
    def _transformers_classes(cls):
        from transformers import EncodecConfig, EncodecModel

        return EncodecConfig, EncodecModel

    def _encode_padded(self, audio: torch.Tensor, num_quantizers: int) -> torch.Tensor:
        out = self.model.encode(audio, bandwidth=self.bandwidth, return_dict=True)
        return out.audio_codes[0]  # (1 chunk, B, Q, N) -> (B, Q, N)

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes[None], [None], return_dict=True).audio_values


class DacCodec(TransformersCodec):
    """Descript Audio Codec (Kumar et al. 2023, arXiv 2306.06546) through transformers' `DacModel`.

    `num_quantizers` (default: all `n_codebooks` of the config) keeps the first levels: descript/dac_16khz has 12
    levels of 1024 codes at 50 frames/s, dac_24khz 32 at 75, dac_44khz 9 at 86.1 (per their configs).
    """

    model_type = "dac"

    def __init__(self, config: Any = None, *, model: Any = None, num_quantizers: int | None = None):
        super().__init__(config, model=model)
        cfg = self.model.config
        total = int(cfg.n_codebooks)
        stored = self._stored_setting()
        self.num_quantizers = self._levels(stored if num_quantizers is None else num_quantizers, total, total)
        self.hop_length = int(math.prod(cfg.downsampling_ratios))

    @classmethod
    def _transformers_classes(cls):
        from transformers import DacConfig, DacModel

        return DacConfig, DacModel

    def _encode_padded(self, audio: torch.Tensor, num_quantizers: int) -> torch.Tensor:
        return self.model.encode(audio, n_quantizers=num_quantizers, return_dict=True).audio_codes

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(audio_codes=codes, return_dict=True).audio_values


class MimiCodec(TransformersCodec):
    """Mimi (Défossez et al. 2024, Moshi, arXiv 2410.00037) through transformers' `MimiModel`.

    kyutai/mimi: 24 kHz, 12.5 frames/s (hop 1920), 32 levels of 2048 codes; level 0 is the semantic one
    (distilled from WavLM), the rest acoustic. `num_quantizers` keeps the first levels (default 8, as Moshi uses:
    1.1 kbps).
    """

    model_type = "mimi"
    DEFAULT_NUM_QUANTIZERS: ClassVar[int] = 8

    def __init__(self, config: Any = None, *, model: Any = None, num_quantizers: int | None = None):
        super().__init__(config, model=model)
        cfg = self.model.config
        if self.model.encoder is None or self.model.decoder is None:
            raise ConfigError("MimiCodec needs a Mimi with both an encoder and a decoder")
        total = int(cfg.num_quantizers)
        stored = self._stored_setting()
        self.num_quantizers = self._levels(stored if num_quantizers is None else num_quantizers, total,
                                           min(self.DEFAULT_NUM_QUANTIZERS, total))
        self.num_semantic_quantizers = int(cfg.num_semantic_quantizers)
        stride = cfg.latent_stride if cfg.frame_rate != cfg.encodec_frame_rate else 1
        self.hop_length = int(math.prod(cfg.upsampling_ratios)) * int(stride)
        if abs(self.sample_rate / self.hop_length - float(cfg.frame_rate)) > 1e-6 * float(cfg.frame_rate):
            raise ConfigError(f"MimiCodec: frame_rate {cfg.frame_rate} is not sampling_rate {self.sample_rate} / "
                              f"a whole hop (upsampling_ratios {list(cfg.upsampling_ratios)})")

    @classmethod
    def _transformers_classes(cls):
        from transformers import MimiConfig, MimiModel

        return MimiConfig, MimiModel

    def _encode_padded(self, audio: torch.Tensor, num_quantizers: int) -> torch.Tensor:
        levels = max(num_quantizers, self.num_semantic_quantizers)  # the model always encodes the semantic levels
        return self.model.encode(audio, num_quantizers=levels).audio_codes

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes).audio_values


__all__ = ["DacCodec", "EncodecCodec", "MimiCodec", "TransformersCodec", "download_hint"]
