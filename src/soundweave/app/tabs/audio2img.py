"""Audio to image: an aligner turns a clip into a text encoder's hidden states for Stable Diffusion.

Events: /audio2img (returns the image gallery, the files, the settings and the seed used), /audio2img_stop.
"""

from __future__ import annotations

import gradio as gr

from ... import __version__
from ..jobs import handler
from ..media import read_upload, spectrogram_image, write_png, write_settings
from ..models import load_audio2img, model_spec
from .base import Tab, as_float, as_int, resolve_seed

UPLOAD_SECONDS = 30.0
DEFAULT_SD = "stabilityai/stable-diffusion-2-1-base"
SIZES = ["default", "256", "384", "512", "768"]
SAMPLE_RATE = 16000  # the aligner's rate (it resamples anything else)


class Audio2ImageTab(Tab):
    def build(self) -> None:
        ctx = self.ctx
        self.upload_cap = ctx.cap(UPLOAD_SECONDS)
        gr.Markdown("A Wav2Vec2-BERT aligner turns the clip into the token sequence a Stable Diffusion text encoder "
                    "would give, and SD draws from it. The aligner must be trained for that SD's text encoder. "
                    "On a CPU: bf16, DPM-Solver++, at most 512 px unless set here.")
        with gr.Row():
            aligner = self.model_picker("aligner", "Aligner", "aligner")
            sd = self.model_picker("stable-diffusion", "Stable Diffusion (folder or hub id)", "Stable Diffusion",
                                   fallback=DEFAULT_SD)
        audio = self.upload("Clip", self.upload_cap)
        self.examples(audio)
        with gr.Row():
            steps = gr.Slider(1, 100, value=20, step=1, label="Denoising steps")
            guidance = gr.Slider(1.0, 15.0, value=7.5, step=0.5, label="Guidance")
            size = gr.Dropdown(SIZES, value="default", label="Size (pixels)",
                               info="default: the model's own size, at most 512 on a CPU")
        with gr.Row():
            n = self.variants_slider("Images")
            seed, random_seed = self.seed_controls()
        run, stop = self.run_stop("Draw")
        gallery = gr.Gallery(label="Images", columns=4, rows=1, height=320, object_fit="contain", format="png",
                             elem_id="audio2img-gallery")
        with gr.Row():
            files = gr.File(label="Downloads: images, spectrogram, settings", file_count="multiple", interactive=False)
            settings = gr.JSON(label="Settings (with the seed)")
        inputs = [aligner, sd, audio, steps, guidance, size, n, seed, random_seed]
        self.listen(run.click, self.draw, inputs, [gallery, files, settings, seed], "audio2img")
        self.stop_on(stop, "audio2img_stop")

    @handler
    def draw(self, aligner, stable_diffusion, audio, steps, guidance, size, images, seed, random_seed,
             progress=gr.Progress(),
             request: gr.Request = None):
        """Draw `images` images from the clip (seeds seed, seed+1, ...)."""
        job = self.start_job(request, progress)
        steps = as_int(steps, "steps", 1, 500)
        guidance = as_float(guidance, "guidance", 1.0, 50.0)
        pixels = None if str(size or "default") == "default" else as_int(size, "size", 64, 2048)
        n = as_int(images, "images", 1, self.ctx.config.max_variants)
        seed = resolve_seed(seed, random_seed)
        aligner_spec = model_spec(aligner, "aligner")
        sd_spec = model_spec(stable_diffusion, "stable-diffusion")
        wave = read_upload(audio, sample_rate=SAMPLE_RATE, max_seconds=self.upload_cap, what="a clip")
        key = (sd_spec, aligner_spec)
        pipe = self.ctx.cache.get("audio2img", key, lambda: load_audio2img(sd_spec, aligner_spec), job.status)
        folder = self.ctx.outputs.new("audio2img")
        name = str(audio).rsplit("/", 1)[-1].rsplit(".", 1)[0][:60] or "clip"
        pictures, paths, runs = [], [], []
        for i in range(n):
            s = seed + i
            report = job.callback("denoising", i, n)

            def on_step(_pipe, step, _timestep, kwargs, report=report):
                report(step + 1, steps)
                return kwargs

            job.status(f"image {i + 1}/{n}: encoding the clip")
            result = pipe(wave, sr=SAMPLE_RATE, seed=s, num_inference_steps=steps, guidance_scale=guidance,
                          height=pixels, width=pixels, verbose=False, callback_on_step_end=on_step)
            job.check()
            path = write_png(folder, f"{name}-seed{s}", result.images[0])
            pictures.append((str(path), f"seed {s}"))
            paths.append(path)
            runs.append(result.settings)
        spectrogram = write_png(folder, f"{name}-spectrogram", spectrogram_image(wave.numpy(), SAMPLE_RATE))
        settings = {"tab": "audio2img", "aligner": aligner_spec, "stable_diffusion": sd_spec, "seed": seed,
                    "seeds": [seed + i for i in range(n)], "steps": steps, "guidance": guidance,
                    "size": pixels or "default", "run": runs[0] if runs else {},
                    "input": str(audio).rsplit("/", 1)[-1], "soundweave": __version__}
        settings_path = write_settings(folder, f"{name}-audio2img-settings", settings)
        return pictures, [str(p) for p in (*paths, spectrogram, settings_path)], settings, seed


__all__ = ["Audio2ImageTab"]
