"""AudioCLIPAligner: Wav2Vec2-BERT + a convolutional adapter whose output SEQUENCE stands in for a text
encoder's hidden states (e.g. the CLIP text encoder of Stable Diffusion), after audio2img.

    aligner = AudioCLIPAligner.from_pretrained("facebook/w2v-bert-2.0", target_dim=1024, target_len=77)
    seq = aligner.encode(audio, sr)             # (B, 77, 1024), a drop-in for CLIP's last_hidden_state
    out = aligner.embed(audio, sr); out.pooled  # (B, 1024) pooled vector for models that need one

How a clip of any length becomes exactly `target_len` tokens (covering the WHOLE clip, up to
`max_seconds`):

1. audio at any rate is resampled to 16 kHz; clips longer than `max_seconds` (default 10 s) are cropped
   (`crop='start'|'center'`, flagged in `AlignerOutput.cropped`); clips shorter than one adapter frame
   raise `AudioTooShortError` unless `pad_short=True` zero-pads them to that minimum.
2. `SeamlessM4TFeatureExtractor`: 80 Kaldi fbank bins every 10 ms, normalised per bin, stacked by 2
   -> 160-d frames at 50 per second (per clip, no fixed 375-frame cut as in the published model).
3. the Wav2Vec2-BERT conformer, then the adapter: each layer strides by `adapter_stride` with
   L' = floor((L + 2p - k) / s) + 1. With the default 2 layers of stride 2 that is 12.5 tokens per
   second, so a 10 s clip gives 125 tokens and a 6 s clip 75: the adapter is sized so that the longest
   allowed clip has at least `target_len - 1` tokens (3 layers would give only 62 at 10 s). The adapter
   runs here with padding masked at every layer, so a batch of clips of different lengths gives the
   same tokens as each clip alone.
4. the valid adapter tokens of each clip are resampled to `target_len - 1` tokens with a linear (tent)
   kernel whose width grows with the ratio (anti-aliased when shrinking, linear interpolation when
   stretching): every output token covers an equal share of the clip, whatever its length.
5. a projection to `target_dim` (when the adapter width differs), then a learned BOS embedding is put
   in front (CLIP's first position does not depend on the text, so one learned vector stands in).

Silence: clips whose peak is below `silence_threshold` (default 1e-4, -80 dBFS) are replaced by exact
digital silence, so every silent clip of a given length maps to the same finite embedding; flagged in
`AlignerOutput.silent`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio.io import check_audio, check_sample_rate, resample
from ..errors import AudioError, CheckpointError, ConfigError, ShapeError
from ..nn.conv import depthwise_conv_time_last
from ..nn.quantized import Int8Linears, int8_available, int8_engine
from ..runtime import autocast, cpu_bf16_native, default_precision
from .aligner_ops import _float_linear, conv_out_length, kaldi_fbank, relative_key_bias, resample_tokens
from .base import PretrainedModel, read_config, resolve_pretrained

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
CROPS = ("start", "center")
# SeamlessM4TFeatureExtractor framing: 25 ms window, 10 ms hop at 16 kHz
_WIN, _HOP = 400, 160


class AudioTooShortError(AudioError):
    """A clip shorter than one adapter frame of the aligner."""


def default_feature_extractor_config() -> dict[str, Any]:
    from transformers import SeamlessM4TFeatureExtractor

    return SeamlessM4TFeatureExtractor().to_dict()


@dataclass
class AlignerConfig:
    encoder: dict[str, Any]  # a Wav2Vec2BertConfig as a dict
    target_dim: int = 1024
    target_len: int = 77
    max_seconds: float = 10.0
    crop: str = "start"
    silence_threshold: float = 1e-4
    feature_extractor: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlignerInputs:
    """Model-ready features of a batch of clips."""

    input_features: torch.Tensor  # (B, F, 160) stacked fbank frames
    attention_mask: torch.Tensor  # (B, F) 1 = real frame
    seconds: torch.Tensor  # (B,) seconds of audio used per clip (after cropping/padding)
    cropped: torch.Tensor  # (B,) bool: the clip was longer than max_seconds and was cropped
    silent: torch.Tensor  # (B,) bool: the clip was silent (peak < silence_threshold)


@dataclass
class AlignerOutput:
    last_hidden_state: torch.Tensor  # (B, target_len, target_dim): BOS + resampled tokens
    pooled: torch.Tensor  # (B, target_dim): mean of the content tokens (all but BOS)
    num_tokens: torch.Tensor  # (B,) adapter tokens per clip before resampling to target_len - 1
    seconds: torch.Tensor | None = None
    cropped: torch.Tensor | None = None
    silent: torch.Tensor | None = None


class AudioCLIPAligner(PretrainedModel):
    """Wav2Vec2-BERT + adapter -> a (target_len, target_dim) sequence that stands in for a text encoder's
    hidden states. See the module docstring for how clips map to tokens.

    config: a transformers `Wav2Vec2BertConfig` (or its dict). Set `add_adapter=True` and the adapter
        options in it (from_pretrained does: kernel 3, stride 2, 2 layers, layerdrop 0.0, as audio2img).
    target_dim: width of the text encoder to imitate (1024 for SD 2.x's CLIP, 768 for SD 1.x).
    target_len: positions of that encoder (77 for CLIP).
    max_seconds: longest audio used; longer clips are cropped (`crop='start'|'center'`).
    encoder: an already built `Wav2Vec2BertModel` for `config` to wrap (from_pretrained uses this).

    Reference: audio2img (w2v-bert-2.0 aligned to SD 2.1's CLIP text encoder); Wav2Vec2-BERT, Seamless
    (arXiv 2312.05187).
    """

    def __init__(self, config, target_dim: int = 1024, target_len: int = 77, max_seconds: float = 10.0,
                 crop: str = "start", silence_threshold: float = 1e-4,
                 feature_extractor: dict[str, Any] | None = None, encoder: nn.Module | None = None):
        super().__init__()
        from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

        if isinstance(config, dict):
            config = Wav2Vec2BertConfig.from_dict(dict(config))
        if not isinstance(config, Wav2Vec2BertConfig):
            raise ConfigError(f"config must be a Wav2Vec2BertConfig or its dict, got {type(config).__name__}")
        if int(target_len) < 2:
            raise ConfigError(f"target_len must be >= 2 (a BOS slot plus content tokens), got {target_len}")
        if int(target_dim) < 1:
            raise ConfigError(f"target_dim must be positive, got {target_dim}")
        if not max_seconds or max_seconds <= 0:
            raise ConfigError(f"max_seconds must be positive, got {max_seconds}")
        if crop not in CROPS:
            raise ConfigError(f"crop must be one of {CROPS}, got {crop!r}")
        fe = dict(feature_extractor) if feature_extractor else default_feature_extractor_config()
        if int(fe.get("sampling_rate", SAMPLE_RATE)) != SAMPLE_RATE or int(fe.get("stride", 2)) * 80 != \
                config.feature_projection_input_dim:
            raise ConfigError(f"feature extractor {fe} does not produce the encoder's "
                              f"{config.feature_projection_input_dim}-d frames at {SAMPLE_RATE} Hz")
        self.config = AlignerConfig(encoder=config.to_dict(), target_dim=int(target_dim),
                                    target_len=int(target_len), max_seconds=float(max_seconds), crop=crop,
                                    silence_threshold=float(silence_threshold), feature_extractor=fe)
        model = encoder if encoder is not None else Wav2Vec2BertModel(config)
        # the adapter is run by `_adapt`, which masks padding at every layer (transformers' adapter lets
        # padded frames leak into the last valid token of a batched clip)
        self.adapter = model.adapter
        model.adapter = None
        self.encoder = model
        width = config.output_hidden_size if self.adapter is not None else config.hidden_size
        self.proj = nn.Linear(width, target_dim) if width != target_dim else nn.Identity()
        self.bos = nn.Parameter(torch.zeros(target_dim))
        self._fe = None
        self._int8_packs = Int8Linears()  # packed int8 weights for precision='int8', rebuilt when weights change

    # -- configuration -----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        c = self.config
        return {"encoder": c.encoder, "target_dim": c.target_dim, "target_len": c.target_len,
                "max_seconds": c.max_seconds, "crop": c.crop, "silence_threshold": c.silence_threshold,
                "feature_extractor": c.feature_extractor}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        config = dict(config)
        return cls(config.pop("encoder"), **config)

    @property
    def encoder_config(self):
        return self.encoder.config

    @property
    def feature_extractor(self):
        if self._fe is None:
            from transformers import SeamlessM4TFeatureExtractor

            fe = SeamlessM4TFeatureExtractor(**{k: v for k, v in self.config.feature_extractor.items()
                                                 if k != "feature_extractor_type"})
            # the same Kaldi fbank in torch, vectorised over frames (transformers loops over them in numpy):
            # ~10x faster, equal to ~1e-5 (tested); normalisation, padding and stacking stay transformers'
            fe._extract_fbank_features = functools.partial(kaldi_fbank, window=fe.window, mel_filters=fe.mel_filters)
            self._fe = fe
        return self._fe

    @property
    def adapter_frames(self) -> int:
        """Stacked feature frames per adapter output token (the adapter's total stride)."""
        if self.adapter is None:
            return 1
        c = self.encoder_config
        return int(c.adapter_stride) ** int(c.num_adapter_layers)

    @property
    def tokens_per_second(self) -> float:
        stride = int(self.config.feature_extractor.get("stride", 2))
        return SAMPLE_RATE / _HOP / stride / self.adapter_frames

    @property
    def min_samples(self) -> int:
        """Fewest 16 kHz samples that make one adapter frame (95 ms with the default adapter)."""
        stride = int(self.config.feature_extractor.get("stride", 2))
        return _WIN + (stride * self.adapter_frames - 1) * _HOP

    @property
    def max_samples(self) -> int:
        return int(round(self.config.max_seconds * SAMPLE_RATE))

    @property
    def dtype(self) -> torch.dtype:
        return self.bos.dtype

    @property
    def device(self) -> torch.device:
        return self.bos.device

    # -- loading -------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, target_dim: int | None = None,
                        target_len: int | None = None, *, revision: str | None = None,
                        device: str | torch.device | None = None, strict: bool = True,
                        max_seconds: float | None = None, crop: str | None = None, add_adapter: bool = True,
                        adapter_kernel_size: int = 3, adapter_stride: int = 2, num_adapter_layers: int = 2,
                        layerdrop: float = 0.0, **encoder_overrides) -> Self:
        """Load a saved aligner folder, or start a new aligner from a Wav2Vec2-BERT checkpoint.

        path_or_id: a folder written by `save_pretrained` (the trained aligner), or a hub id / local
            folder of a transformers `Wav2Vec2BertModel` (e.g. "facebook/w2v-bert-2.0"): its weights
            are loaded and the adapter (`add_adapter`, `adapter_kernel_size`, `adapter_stride`,
            `num_adapter_layers`), projection and BOS slot are new. `encoder_overrides` are further
            Wav2Vec2BertConfig fields (e.g. `apply_spec_augment=False`, `output_hidden_size=...`).
        target_dim / target_len: the text encoder to imitate (default 1024 x 77, SD 2.x's CLIP). For a
            saved aligner they must match what it was trained for (or be left out).
        """
        folder = resolve_pretrained(path_or_id, revision=revision, allow_patterns=[
            "config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors",
            "preprocessor_config.json"])
        stored = read_config(folder)
        if stored.get("_class") == cls.__name__:
            for name, value in (("target_dim", target_dim), ("target_len", target_len)):
                if value is not None and int(value) != int(stored[name]):
                    raise ConfigError(f"the aligner in {str(folder)!r} was trained for {name}={stored[name]}, "
                                      f"not {value}; train a new aligner for that text encoder")
            overrides = {k: v for k, v in (("max_seconds", max_seconds), ("crop", crop)) if v is not None}
            return super().from_pretrained(folder, device=device, strict=strict, **overrides)
        if stored.get("model_type") != "wav2vec2-bert":
            raise CheckpointError(f"{str(path_or_id)!r} is neither a saved AudioCLIPAligner nor a Wav2Vec2-BERT "
                                  f"checkpoint (its config.json has model_type={stored.get('model_type')!r})")
        from transformers import Wav2Vec2BertModel

        try:
            encoder = Wav2Vec2BertModel.from_pretrained(
                str(folder), add_adapter=add_adapter, adapter_kernel_size=adapter_kernel_size,
                adapter_stride=adapter_stride, num_adapter_layers=num_adapter_layers, layerdrop=layerdrop,
                **encoder_overrides)
        except (OSError, ValueError, TypeError) as exc:
            raise CheckpointError(f"could not load Wav2Vec2-BERT from {str(folder)!r}: {exc}") from exc
        fe = None
        if (folder / "preprocessor_config.json").is_file():
            from transformers import SeamlessM4TFeatureExtractor

            fe = SeamlessM4TFeatureExtractor.from_pretrained(str(folder)).to_dict()
        model = cls(encoder.config, target_dim=target_dim or 1024, target_len=target_len or 77,
                    max_seconds=max_seconds or 10.0, crop=crop or "start", feature_extractor=fe, encoder=encoder)
        model.eval()
        if device is not None:
            model.to(device)
        return model

    # -- audio -> features -----------------------------------------------------------------------------
    def preprocess(self, audio, sr: int, *, lengths=None, pad_short: bool = False) -> AlignerInputs:
        """Audio -> fbank features for the encoder.

        audio: (T,), (B, T) tensor/array, or a list of 1-D clips of different lengths. sr: its rate
        (resampled to 16 kHz). lengths: (B,) valid samples per row of a zero-padded (B, T) batch.
        pad_short: zero-pad clips shorter than one adapter frame instead of raising AudioTooShortError.
        """
        sr = check_sample_rate(sr)
        clips = self._split_clips(audio, lengths)
        cfg = self.config
        arrays, seconds, cropped, silent = [], [], [], []
        for i, clip in enumerate(clips):
            clip = resample(clip, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else clip
            n = clip.shape[-1]
            if n > self.max_samples:
                start = 0 if cfg.crop == "start" else (n - self.max_samples) // 2
                clip = clip[start: start + self.max_samples]
                log.warning("clip %d lasts %.2f s; the aligner uses %s %.1f s (max_seconds)", i, n / SAMPLE_RATE,
                            "the first" if cfg.crop == "start" else "the middle", cfg.max_seconds)
                cropped.append(True)
            else:
                cropped.append(False)
            if clip.shape[-1] < self.min_samples:
                if not pad_short:
                    raise AudioTooShortError(
                        f"clip {i} lasts {1000 * clip.shape[-1] / SAMPLE_RATE:.1f} ms, shorter than one adapter "
                        f"frame of this aligner ({1000 * self.min_samples / SAMPLE_RATE:.0f} ms at 16 kHz); "
                        "pass pad_short=True to zero-pad it, or use a longer clip")
                clip = F.pad(clip, (0, self.min_samples - clip.shape[-1]))
            is_silent = bool(clip.abs().max() < cfg.silence_threshold)
            if is_silent:
                clip = torch.zeros_like(clip)
            silent.append(is_silent)
            seconds.append(clip.shape[-1] / SAMPLE_RATE)
            arrays.append(clip.detach().cpu().numpy().astype(np.float32))
        out = self.feature_extractor(arrays, sampling_rate=SAMPLE_RATE, padding=True, return_tensors="np",
                                     return_attention_mask=True)
        features = torch.from_numpy(out["input_features"])
        # exact silence has zero variance per bin; the extractor's normalisation then yields 0 (keep it finite)
        features = torch.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0)
        return AlignerInputs(input_features=features, attention_mask=torch.from_numpy(out["attention_mask"]).long(),
                             seconds=torch.tensor(seconds), cropped=torch.tensor(cropped),
                             silent=torch.tensor(silent))

    @staticmethod
    def _split_clips(audio, lengths) -> list[torch.Tensor]:
        if isinstance(audio, (list, tuple)):
            if not audio:
                raise ShapeError("audio is an empty list; pass at least one clip")
            clips = [check_audio(a, f"audio[{i}]") for i, a in enumerate(audio)]
            for i, c in enumerate(clips):
                if c.ndim != 1:
                    raise ShapeError(f"audio[{i}] must be a 1-D clip, got shape {tuple(c.shape)}")
            return clips
        audio = check_audio(audio)
        if audio.ndim == 1:
            audio = audio[None]
        if lengths is None:
            return list(audio.unbind(0))
        lengths = torch.as_tensor(lengths).long().tolist()
        if len(lengths) != audio.shape[0]:
            raise ShapeError(f"lengths has {len(lengths)} entries for {audio.shape[0]} clips")
        if any(n < 1 or n > audio.shape[1] for n in lengths):
            raise ShapeError(f"lengths must be in 1..{audio.shape[1]}, got {lengths}")
        return [row[:n] for row, n in zip(audio, lengths, strict=True)]

    # -- the network --------------------------------------------------------------------------------------
    def _adapt(self, hidden: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the adapter layers with padding zeroed before every strided convolution and masked in
        attention. (B, F, H) -> (B, F', output_hidden_size), new valid lengths (B,)."""
        adapter = self.adapter
        if adapter is None:
            return hidden, lengths
        from transformers.masking_utils import create_bidirectional_mask

        if adapter.proj is not None:
            hidden = adapter.proj_layer_norm(adapter.proj(hidden))
        for layer in adapter.layers:
            keep = (torch.arange(hidden.shape[1], device=hidden.device)[None] < lengths[:, None])[..., None]
            conv = layer.residual_conv
            residual = layer.residual_layer_norm(hidden).masked_fill(~keep, 0.0)
            residual = layer.activation(conv(residual.transpose(1, 2))).transpose(1, 2)
            x = layer.self_attn_layer_norm(hidden).masked_fill(~keep, 0.0)
            x = layer.activation(layer.self_attn_conv(x.transpose(1, 2))).transpose(1, 2)
            lengths = conv_out_length(lengths, conv.kernel_size[0], conv.stride[0], conv.padding[0])
            mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]).long()
            attn_mask = create_bidirectional_mask(config=layer.config, inputs_embeds=x, attention_mask=mask)
            x, _ = layer.self_attn(x, attention_mask=attn_mask)
            x = layer.self_attn_dropout(x) + residual
            hidden = layer.ffn(layer.ffn_layer_norm(x)) + x
        return hidden, lengths

    @torch.no_grad()
    def _encode_fast(self, features: torch.Tensor, keep: torch.Tensor, int8: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The conformer stack at inference, equal to transformers' forward (tested) but faster on a CPU:
        the relative-key position bias is computed as q @ E^T over the (left + right + 1) distance buckets,
        then gathered, instead of materialising a (T, T, head_dim) embedding table in every layer;
        attention runs through one fused scaled_dot_product_attention call; the pointwise convolutions
        run as matrix products on (B, T, C) without transposes. With `int8=True` every linear and
        pointwise layer runs as a dynamic int8 product (oneDNN), the rest in fp32. Then the adapter
        (`_adapt_fast`). Returns (adapter output (B, T', H), valid lengths (B,))."""
        enc = self.encoder
        cfg = enc.config
        b, t, _ = features.shape
        if int8:
            packs = self._int8_packs

            def lin(x, weight, bias=None):
                return packs.linear(x, weight, bias)
        else:
            lin = _float_linear
        # int8 mode: attention itself in bf16 where the CPU has native bf16 (the CPU flash kernel is then ~2x faster
        # than fp32 with a bias); where bf16 is emulated (AVX2) it gains nothing (4-layer benchmark: 2.10 / 2.13 s
        # fp32 vs 2.15 / 2.17 s bf16 attention, one thread), so attention stays fp32 - and exact - there
        attn_dtype = torch.bfloat16 if int8 and cpu_bf16_native() else None

        proj = enc.feature_projection
        hidden = proj.dropout(lin(proj.layer_norm(features), proj.projection.weight, proj.projection.bias))
        hidden = hidden.masked_fill(~keep[..., None], 0.0)
        pad = None
        if not bool(keep.all()):
            pad = torch.zeros(b, 1, 1, t, dtype=hidden.dtype, device=hidden.device)
            pad = pad.masked_fill(~keep[:, None, None, :], float("-inf"))
        left, right = int(cfg.left_max_position_embeddings), int(cfg.right_max_position_embeddings)
        relative = (left, right)
        conv_keep = None if pad is None else keep[..., None]

        def ffn(module, x):
            return self._ffn(module, x, lin)

        for layer in enc.encoder.layers:
            hidden = torch.add(hidden, ffn(layer.ffn1, layer.ffn1_layer_norm(hidden)), alpha=0.5)
            hidden += self._relative_key_attention(layer.self_attn, layer.self_attn_layer_norm(hidden), relative,
                                                   pad, lin, attn_dtype)
            hidden += self._conv_module(layer.conv_module, hidden, conv_keep, lin)
            hidden.add_(ffn(layer.ffn2, layer.ffn2_layer_norm(hidden)), alpha=0.5)
            hidden = layer.final_layer_norm(hidden)
        if enc.intermediate_ffn is not None:
            hidden = torch.add(hidden, ffn(enc.intermediate_ffn, hidden), alpha=0.5)
        return self._adapt_fast(hidden, keep.sum(1), lin, attn_dtype)

    @staticmethod
    def _ffn(module, x: torch.Tensor, lin) -> torch.Tensor:
        """transformers' Wav2Vec2BertFeedForward at inference (no dropout), products through `lin`."""
        h = lin(x, module.intermediate_dense.weight, module.intermediate_dense.bias)
        act = module.intermediate_act_fn
        h = F.silu(h, inplace=True) if isinstance(act, nn.SiLU) else act(h)
        return lin(h, module.output_dense.weight, module.output_dense.bias)

    @staticmethod
    def _conv_module(conv, x: torch.Tensor, keep: torch.Tensor | None, lin) -> torch.Tensor:
        """transformers' Wav2Vec2BertConvolutionModule on (B, T, C), pointwise layers as products."""
        h = conv.layer_norm(x)
        if keep is not None:
            h = h.masked_fill(~keep, 0.0)
        h = F.glu(lin(h, conv.pointwise_conv1.weight, conv.pointwise_conv1.bias), dim=-1)
        dw = conv.depthwise_conv
        h = depthwise_conv_time_last(h, dw.weight, dw.bias, (dw.kernel_size[0] - 1, 0))
        h = conv.activation(conv.depthwise_layer_norm(h))
        return lin(h, conv.pointwise_conv2.weight, conv.pointwise_conv2.bias)

    @staticmethod
    def _relative_key_attention(attn, x: torch.Tensor, relative: tuple[int, int] | None, pad: torch.Tensor | None,
                                lin, attn_dtype: torch.dtype | None = None) -> torch.Tensor:
        """transformers' self-attention at inference: softmax((q k^T + q E[bucket(i, j)]^T) * scale) v with the
        relative_key bias when `relative` = (left, right) is given, plain scaled attention (the adapter's)
        when it is None."""
        b, t, _ = x.shape
        heads, dim = attn.num_heads, attn.head_size
        dtype = attn_dtype or x.dtype
        qkv = lin(x, (attn.linear_q.weight, attn.linear_k.weight, attn.linear_v.weight),
                  (attn.linear_q.bias, attn.linear_k.bias, attn.linear_v.bias)).view(b, t, 3, heads, dim)
        if dtype != qkv.dtype:  # bf16 attention: a plain cast, then strided views (measured faster than a copy)
            q, k, v = qkv.to(dtype).permute(2, 0, 3, 1, 4).unbind(0)
        else:  # same dtype: contiguous (B, H, T, Dh) q, k, v, which the CPU flash kernel runs faster
            q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)
        bias = pad
        if relative is not None:
            table = attn.distance_embedding.weight.to(qkv.dtype)  # (buckets, head_dim)
            # scale the small (B, H, T, buckets) table of q . E, then spread it into the (B, H, T, T) bias
            rel = torch.matmul(qkv[:, :, 0].transpose(1, 2), table.T) * attn.scaling
            bias = relative_key_bias(rel, *relative, dtype)
            if pad is not None:
                bias = bias + pad.to(dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(dtype),
                                             scale=attn.scaling)
        out = out.transpose(1, 2).reshape(b, t, heads * dim).to(x.dtype)
        return lin(out, attn.linear_out.weight, attn.linear_out.bias)

    def _adapt_fast(self, hidden: torch.Tensor, lengths: torch.Tensor, lin, attn_dtype: torch.dtype | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`_adapt` at inference with every product through `lin` (int8 or float): the strided convolutions
        as products over unfolded (B, T', kernel * C) windows, attention fused. Equal to `_adapt` (tested)."""
        adapter = self.adapter
        if adapter is None:
            return hidden, lengths
        if adapter.proj is not None:
            hidden = adapter.proj_layer_norm(lin(hidden, adapter.proj.weight, adapter.proj.bias))

        def strided_conv(conv, x):  # (B, T, C) -> (B, T', O), as Conv1d(C, O, k, s, padding=p) on (B, C, T)
            k, st, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            windows = F.pad(x, (0, 0, p, p)).unfold(1, k, st)  # (B, T', C, k)
            return lin(windows.reshape(*windows.shape[:2], -1), conv.weight, conv.bias)

        for layer in adapter.layers:
            keep = (torch.arange(hidden.shape[1], device=hidden.device)[None] < lengths[:, None])[..., None]
            conv = layer.residual_conv
            residual = F.glu(strided_conv(conv, layer.residual_layer_norm(hidden).masked_fill(~keep, 0.0)), dim=-1)
            x = F.glu(strided_conv(layer.self_attn_conv, layer.self_attn_layer_norm(hidden).masked_fill(~keep, 0.0)),
                      dim=-1)
            lengths = conv_out_length(lengths, conv.kernel_size[0], conv.stride[0], conv.padding[0])
            valid = torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]
            pad = None
            if not bool(valid.all()):
                pad = torch.zeros(x.shape[0], 1, 1, x.shape[1], dtype=x.dtype, device=x.device)
                pad = pad.masked_fill(~valid[:, None, None, :], float("-inf"))
            x = self._relative_key_attention(layer.self_attn, x, None, pad, lin, attn_dtype) + residual
            hidden = self._ffn(layer.ffn, layer.ffn_layer_norm(x), lin) + x
        return hidden, lengths

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                int8: bool = False) -> AlignerOutput:
        """(B, F, 160) features (+ (B, F) mask) -> AlignerOutput with (B, target_len, target_dim).

        int8: run the conformer's linear and pointwise layers as dynamic int8 products (CPU inference
        only, fp32 weights; see `embed(precision='int8')`)."""
        if input_features.ndim != 3 or input_features.shape[-1] != self.encoder_config.feature_projection_input_dim:
            raise ShapeError(f"input_features must be (B, frames, {self.encoder_config.feature_projection_input_dim}),"
                             f" got {tuple(input_features.shape)}")
        b, frames, _ = input_features.shape
        if attention_mask is None:
            attention_mask = torch.ones(b, frames, dtype=torch.long, device=input_features.device)
        attention_mask = attention_mask.long()
        features = input_features.to(self.dtype)
        fast = not self.training and self.encoder_config.position_embeddings_type == "relative_key"
        if int8:
            if not fast or self.dtype != torch.float32 or self.device.type != "cpu" or not int8_available():
                raise ConfigError("int8 inference needs an fp32 aligner on the CPU in eval mode, with relative_key "
                                  f"positions and a quantized engine (got {self.dtype} on {self.device}, "
                                  f"training={self.training}, "
                                  f"positions={self.encoder_config.position_embeddings_type})")
            with int8_engine():
                hidden, lengths = self._encode_fast(features, attention_mask.bool(), int8=True)
        elif fast:
            hidden, lengths = self._encode_fast(features, attention_mask.bool())
        else:
            hidden = self.encoder(features, attention_mask=attention_mask).last_hidden_state
            hidden, lengths = self._adapt(hidden, attention_mask.sum(1))
        tokens = self.proj(resample_tokens(hidden, lengths, self.config.target_len - 1))  # (B, L-1, D)
        bos = self.bos.to(tokens.dtype)[None, None].expand(b, 1, -1)
        return AlignerOutput(last_hidden_state=torch.cat([bos, tokens], dim=1), pooled=tokens.mean(1),
                             num_tokens=lengths)

    def embed(self, audio, sr: int, *, lengths=None, pad_short: bool = False,
              precision: str | None = None) -> AlignerOutput:
        """Audio -> AlignerOutput (sequence, pooled vector, and per-clip seconds/cropped/silent flags).

        precision: None runs in the weights' dtype; 'bf16' runs under bf16 autocast; 'fp32' plain; 'int8'
            runs the conformer's linear layers as dynamic int8 products (CPU, fp32 weights), the rest in
            fp32 - the fastest CPU path; `cpu_precision()` says which one a CPU should use by default.
        """
        if precision not in (None, "fp32", "bf16", "int8"):
            raise ConfigError(f"precision must be None, 'fp32', 'bf16' or 'int8', got {precision!r}")
        inputs = self.preprocess(audio, sr, lengths=lengths, pad_short=pad_short)
        device = self.device
        int8 = precision == "int8"
        ctx = autocast(device, precision) if precision in ("fp32", "bf16") else autocast(device, "fp32")
        with ctx:
            out = self(inputs.input_features.to(device), inputs.attention_mask.to(device), int8=int8)
        out.seconds, out.cropped, out.silent = inputs.seconds, inputs.cropped, inputs.silent
        return out

    def cpu_precision(self) -> str:
        """The default precision on a CPU: 'int8' when this aligner and PyTorch build support it (fp32 weights,
        relative-key positions, a quantized engine, eval mode), else 'bf16' on a CPU with native bf16 and 'fp32' on
        one without (`runtime.default_precision`)."""
        ok = (int8_available() and self.dtype == torch.float32 and not self.training
              and self.encoder_config.position_embeddings_type == "relative_key")
        return "int8" if ok else default_precision("cpu")

    def encode(self, audio, sr: int, **kwargs) -> torch.Tensor:
        """Audio -> (B, target_len, target_dim), the stand-in for the text encoder's last_hidden_state."""
        return self.embed(audio, sr, **kwargs).last_hidden_state

    def set_bos(self, value: torch.Tensor) -> None:
        """Initialise the BOS slot (e.g. with the text encoder's position-0 state, which CLIP keeps fixed)."""
        value = torch.as_tensor(value).reshape(-1)
        if value.numel() != self.config.target_dim:
            raise ShapeError(f"BOS must have {self.config.target_dim} values, got {value.numel()}")
        with torch.no_grad():
            self.bos.copy_(value.to(self.bos))

    def describe(self) -> str:
        c = self.config
        return (f"AudioCLIPAligner: {self.num_parameters() / 1e6:.1f}M parameters, {self.tokens_per_second:g} adapter "
                f"tokens/s -> {c.target_len} x {c.target_dim}, up to {c.max_seconds:g} s "
                f"({math.ceil(c.max_seconds * self.tokens_per_second)} adapter tokens at the maximum)")


__all__ = ["AlignerConfig", "AlignerInputs", "AlignerOutput", "AudioCLIPAligner", "AudioTooShortError",
           "conv_out_length", "kaldi_fbank", "resample_tokens", "relative_key_bias"]
