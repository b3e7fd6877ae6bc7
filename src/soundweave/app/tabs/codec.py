"""Codec round trip: an upload encoded to codes and decoded back, to hear what the codec keeps.

Events: /codec (returns the original and decoded players, their spectrograms, the files and the figures:
bitrate, SI-SDR, frames), /codec_stop.
"""

from __future__ import annotations

import math

import gradio as gr
import torch

from ... import __version__
from ...metrics.audio import si_sdr
from ..jobs import handler
from ..media import read_upload, seconds_of, spectrogram_image, write_png, write_settings, write_wav
from ..models import load_codec_model, model_spec
from .base import Tab, Variant, VariantOutputs, as_int

UPLOAD_SECONDS = 60.0


class CodecTab(Tab):
    def build(self) -> None:
        ctx = self.ctx
        self.upload_cap = ctx.cap(UPLOAD_SECONDS)
        gr.Markdown("Audio -> codes `(frames, levels)` -> audio. Fewer residual levels mean a lower bitrate: "
                    "listen to what each level adds.")
        model = self.model_picker("codec", "Codec", "codec")
        audio = self.upload("Clip", self.upload_cap)
        self.examples(audio)
        levels = gr.Slider(0, 32, value=0, step=1, label="Levels to keep",
                           info="residual quantizer levels decoded (0 = all of them)")
        run, stop = self.run_stop("Encode and decode")
        self.out = VariantOutputs(2, labels=["Original", "Decoded"], elem_prefix=self.key)
        self.listen(run.click, self.round_trip, [model, audio, levels], self.out.components, "codec")
        self.stop_on(stop, "codec_stop")

    @handler
    def round_trip(self, model, audio, levels, progress=gr.Progress(), request: gr.Request = None):
        """Encode the clip, keep the first `levels` residual levels (0 = all), decode, and compare."""
        job = self.start_job(request, progress)
        levels = as_int(levels, "levels", 0, 1024)
        spec = model_spec(model, "codec")
        codec = self.ctx.cache.get("codec", spec, lambda: load_codec_model(spec), job.status)
        sr = int(codec.sample_rate)
        wave = read_upload(audio, sample_rate=sr, max_seconds=self.upload_cap, what="a clip")
        job.status("encoding")
        with torch.no_grad():
            codes = codec.encode(wave[None], sample_rate=sr)
            total_levels = int(codes.shape[-1])
            kept = total_levels if levels == 0 else min(levels, total_levels)
            job.status("decoding")
            decoded = codec.decode(codes[..., :kept])
        decoded = decoded.reshape(-1)[: wave.shape[-1]].float().cpu()
        if decoded.shape[-1] < wave.shape[-1]:
            decoded = torch.nn.functional.pad(decoded, (0, wave.shape[-1] - decoded.shape[-1]))
        folder = self.ctx.outputs.new("codec")
        name = str(audio).rsplit("/", 1)[-1].rsplit(".", 1)[0][:60] or "clip"
        variants = []
        for stem, clip, label in ((f"{name}-original", wave, "original"),
                                  (f"{name}-decoded-{kept}of{total_levels}-levels", decoded,
                                   f"decoded with {kept} of {total_levels} levels")):
            wav = write_wav(folder, stem, clip, sr)
            png = write_png(folder, stem, spectrogram_image(clip.numpy(), sr))
            variants.append(Variant(wav, png, label))
        frames = int(codes.shape[1])
        codebook = int(getattr(codec, "codebook_size", 0) or 0)
        frame_rate = frames / (wave.shape[-1] / sr)
        bitrate = round(frame_rate * kept * math.log2(codebook) / 1000, 3) if codebook > 1 else None
        score = float(si_sdr(wave[None], decoded[None]).mean())
        settings = {"tab": "codec", "model": spec, "codec": type(codec).__name__, "sample_rate": sr,
                    "seconds": seconds_of(wave, sr), "frames": frames, "levels_kept": kept, "levels": total_levels,
                    "codebook_size": codebook or None, "bitrate_kbps": bitrate, "si_sdr_db": round(score, 2),
                    "input": str(audio).rsplit("/", 1)[-1], "soundweave": __version__}
        extra = [write_settings(folder, f"{name}-codec-settings", settings)]
        return self.out.pack(variants, settings, extra)


__all__ = ["CodecTab"]
