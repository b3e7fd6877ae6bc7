"""Mel diffusion: sample spectrograms, vary an upload, in/out-paint it, or continue it to N seconds.

Events: /mel_sample, /mel_variation, /mel_inpaint, /mel_continue (each returns the variant players, the
spectrogram gallery, the files, the settings and the seed used), /mel_model_info (the model's classes),
/mel_variants (how many players show), /mel_stop.
"""

from __future__ import annotations

import gradio as gr

from ... import __version__
from ...errors import ConfigError
from ..jobs import handler
from ..media import mel_image_picture, read_upload, seconds_of, write_png, write_settings, write_wav
from ..models import load_mel_diffusion, mel_classes, model_spec
from .base import Tab, Variant, VariantOutputs, as_float, as_int, resolve_seed

NO_CLASS = "(no class)"
UPLOAD_SECONDS = 30.0  # longest input clip
MAX_SECONDS = 60.0  # longest output (sampling and continuation)
MAX_STEPS = 1000
MODES = ("sample", "variation", "inpaint", "continue")


class MelDiffusionTab(Tab):
    def build(self) -> None:
        ctx = self.ctx
        self.upload_cap = ctx.cap(UPLOAD_SECONDS)
        gr.Markdown("Spectrogram images drawn by a diffusion UNet (DDIM), turned into audio with Griffin-Lim. "
                    "**Sample** from noise, make a **variation** of a clip, **in/out-paint** it (keep its start "
                    "and/or end, redo the rest) or **continue** it to a longer clip.")
        with gr.Row():
            model = self.model_picker("mel-diffusion", "Mel-diffusion model", "mel-diffusion model")
            classes = [NO_CLASS, *mel_classes(ctx.default("mel-diffusion") or "")]
            label = gr.Dropdown(choices=classes, value=classes[min(1, len(classes) - 1)], label="Class",
                                info="for class-conditional models (e.g. an instrument)")
            guidance = gr.Slider(1.0, 8.0, value=1.0, step=0.5, label="Guidance",
                                 info="classifier-free guidance towards the class (1 = off)")
        with gr.Row():
            steps = gr.Slider(1, 200, value=25, step=1, label="Denoising steps (DDIM)")
            n = self.variants_slider()
            seed, random_seed = self.seed_controls()
        audio = self.upload("Input clip for variation, in/out-painting and continuation", self.upload_cap)
        self.examples(audio)
        with gr.Tabs():
            with gr.Tab("Sample"):
                seconds = gr.Slider(0, MAX_SECONDS, value=0, step=0.5, label="Seconds",
                                    info="0 = one spectrogram; longer = chained continuation")
                run_sample = gr.Button("Sample", variant="primary")
            with gr.Tab("Variation"):
                strength = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Strength",
                                     info="how much noise is added to the clip first (1 = all: a new sample)")
                run_variation = gr.Button("Make variations", variant="primary")
            with gr.Tab("In/out-paint"):
                with gr.Row():
                    keep_start = gr.Slider(0, 10, value=1.0, step=0.1, label="Keep the first seconds")
                    keep_end = gr.Slider(0, 10, value=0.0, step=0.1, label="Keep the last seconds")
                run_inpaint = gr.Button("In/out-paint", variant="primary")
            with gr.Tab("Continue"):
                total = gr.Slider(1, MAX_SECONDS, value=8, step=0.5, label="Total seconds",
                                  info="the clip continued to this length (longer than the clip)")
                run_continue = gr.Button("Continue", variant="primary")
        stop = gr.Button("Stop", variant="stop")
        self.out = VariantOutputs(ctx.config.max_variants, elem_prefix=self.key)
        common = [model, label, guidance, steps, n, seed, random_seed]
        outputs = [*self.out.components, seed]
        self.listen(run_sample.click, self.sample, [*common, seconds], outputs, "mel_sample")
        self.listen(run_variation.click, self.variation, [*common, audio, strength], outputs, "mel_variation")
        self.listen(run_inpaint.click, self.inpaint, [*common, audio, keep_start, keep_end], outputs, "mel_inpaint")
        self.listen(run_continue.click, self.continue_clip, [*common, audio, total], outputs, "mel_continue")
        self.light(model.change, self.model_info, [model], [label], "mel_model_info")
        self.out.follow(self, n, "mel_variants")
        self.stop_on(stop, "mel_stop")

    # -- events ----------------------------------------------------------------------------------------------
    def model_info(self, model: str | None):
        """The class dropdown for the chosen model (read from its folder, nothing is loaded)."""
        classes = [NO_CLASS, *mel_classes(model or "")]
        return gr.update(choices=classes, value=classes[min(1, len(classes) - 1)])

    @handler
    def sample(self, model, class_label, guidance, steps, variants, seed, random_seed, seconds,
               progress=gr.Progress(), request: gr.Request = None):
        """Sample spectrograms (and audio) from noise; `seconds` > one spectrogram chains continuations."""
        return self._run("sample", model, class_label, guidance, steps, variants, seed, random_seed, progress,
                         request, seconds=as_float(seconds, "seconds", 0.0, MAX_SECONDS))

    @handler
    def variation(self, model, class_label, guidance, steps, variants, seed, random_seed, audio, strength,
                  progress=gr.Progress(), request: gr.Request = None):
        """Variations of the clip's first spectrogram: noised by `strength`, then denoised."""
        return self._run("variation", model, class_label, guidance, steps, variants, seed, random_seed, progress,
                         request, audio=audio, strength=as_float(strength, "strength", 0.0, 1.0))

    @handler
    def inpaint(self, model, class_label, guidance, steps, variants, seed, random_seed, audio, keep_start, keep_end,
                progress=gr.Progress(), request: gr.Request = None):
        """Keep the first / last seconds of the clip's first spectrogram and generate the rest."""
        return self._run("inpaint", model, class_label, guidance, steps, variants, seed, random_seed, progress,
                         request, audio=audio, keep_start=as_float(keep_start, "keep the first seconds", 0.0),
                         keep_end=as_float(keep_end, "keep the last seconds", 0.0))

    @handler
    def continue_clip(self, model, class_label, guidance, steps, variants, seed, random_seed, audio, total_seconds,
                      progress=gr.Progress(), request: gr.Request = None):
        """Continue the clip to `total_seconds` by chained out-painting."""
        return self._run("continue", model, class_label, guidance, steps, variants, seed, random_seed, progress,
                         request, audio=audio, total=as_float(total_seconds, "total seconds", 0.5, MAX_SECONDS))

    # -- the work --------------------------------------------------------------------------------------------
    def _run(self, mode, model, class_label, guidance, steps, n, seed, random_seed, progress, request,
             audio=None, **opts):
        job = self.start_job(request, progress)
        steps = as_int(steps, "steps", 1, MAX_STEPS)
        n = as_int(n, "variants", 1, self.ctx.config.max_variants)
        guidance = as_float(guidance, "guidance", 1.0, 20.0)
        seed = resolve_seed(seed, random_seed)
        spec = model_spec(model, "mel-diffusion")
        pipe = self.ctx.cache.get("mel-diffusion", spec, lambda: load_mel_diffusion(spec), job.status)
        sr = pipe.sample_rate
        window = pipe.seconds_per_image()
        wave = None
        if mode != "sample":
            wave = read_upload(audio, sample_rate=sr, max_seconds=self.upload_cap, what="a clip to work on")
        if mode == "inpaint" and opts["keep_start"] + opts["keep_end"] >= window:
            raise ConfigError(f"keeping the first {opts['keep_start']:g} s and the last {opts['keep_end']:g} s "
                              f"leaves nothing to generate in a {window:.2f} s spectrogram; keep less")
        if mode == "continue" and opts["total"] <= wave.shape[-1] / sr:
            raise ConfigError(f"the clip already lasts {wave.shape[-1] / sr:.2f} s; ask for a total longer than "
                              f"that (asked for {opts['total']:g} s)")
        label = None if class_label in (None, "", NO_CLASS) else str(class_label)
        common = dict(steps=steps, class_labels=label, guidance_scale=guidance, scheduler="ddim")
        folder = self.ctx.outputs.new(f"mel-{mode}")
        variants, lengths = [], []
        for i in range(n):
            s = seed + i
            callback = job.callback(f"{mode}: denoising", i, n)
            if mode == "sample" and opts["seconds"] > window:
                out = pipe.continue_audio(None, opts["seconds"], seed=s, callback=callback, **common)
            elif mode == "sample":
                out = pipe(seed=s, callback=callback, **common)
                if opts["seconds"]:
                    out.audios = out.audios[:, : int(round(opts["seconds"] * sr))]
            elif mode == "variation":
                start = min(steps - 1, int(round(steps * (1.0 - opts["strength"]))))
                out = pipe(audio=wave, audio_sample_rate=sr, start_step=start, seed=s, callback=callback, **common)
            elif mode == "inpaint":
                out = pipe(audio=wave, audio_sample_rate=sr, mask_start_secs=opts["keep_start"],
                           mask_end_secs=opts["keep_end"], seed=s, callback=callback, **common)
            else:
                out = pipe.continue_audio(wave, opts["total"], audio_sample_rate=sr, seed=s, callback=callback,
                                          **common)
            job.check()
            stem = f"mel-{mode}-seed{s}"
            wav = write_wav(folder, stem, out.audios[0], sr)
            png = write_png(folder, stem, mel_image_picture(out.arrays[0]))
            variants.append(Variant(wav, png, f"{mode} · seed {s}"))
            lengths.append(seconds_of(out.audios[0], sr))
        settings = {"tab": "mel-diffusion", "mode": mode, "model": spec, "seed": seed,
                    "seeds": [seed + i for i in range(n)], "steps": steps, "class": label, "guidance": guidance,
                    "variants": n, "sample_rate": sr, "output_seconds": lengths,
                    "spectrogram_seconds": round(window, 3),
                    **opts, "input": None if audio is None else str(audio).rsplit("/", 1)[-1],
                    "soundweave": __version__}
        extra = [write_settings(folder, f"mel-{mode}-settings", settings)]
        return [*self.out.pack(variants, settings, extra), seed]


__all__ = ["MODES", "MelDiffusionTab"]
