"""SoundStorm continuation: the first seconds of an upload, continued by MaskGIT decoding of codec tokens.

With a MuLaN picked under "Rank by MuLaN", the variants come back ordered by how close each continuation is to
the prompt in MuLaN's audio space (best first; `ContinuationPipeline`'s ranking), with the cosines in the settings.

Events: /soundstorm (returns the variant players, the spectrogram gallery, the files, the settings and the
seed used), /soundstorm_variants (how many players show), /soundstorm_stop.
"""

from __future__ import annotations

import gradio as gr
import torch

from ... import __version__
from ...errors import ConfigError
from ...pipelines.continuation import prompt_similarity
from ..jobs import handler
from ..media import read_upload, seconds_of, spectrogram_image, write_png, write_settings, write_wav
from ..models import load_mulan, load_soundstorm, model_spec
from .base import Tab, Variant, VariantOutputs, as_float, as_int, resolve_seed

UPLOAD_SECONDS = 30.0
MAX_SECONDS = 30.0  # longest output, prompt included


class SoundStormTab(Tab):
    def build(self) -> None:
        ctx = self.ctx
        self.upload_cap = ctx.cap(UPLOAD_SECONDS)
        gr.Markdown("SoundStorm fills codec tokens level by level with confidence-based parallel decoding. Upload "
                    "a clip: its first seconds are the prompt (kept unchanged), the rest is generated, then the "
                    "codec attached to the model decodes it.")
        model = self.model_picker("soundstorm", "SoundStorm model (with its codec)", "SoundStorm model")
        audio = self.upload("Prompt clip", self.upload_cap)
        self.examples(audio)
        with gr.Row():
            prompt_seconds = gr.Slider(0.1, 10, value=1.5, step=0.1, label="Prompt seconds",
                                       info="how much of the clip is kept as the prompt")
            seconds = gr.Slider(0.5, MAX_SECONDS, value=4, step=0.5, label="Total seconds",
                                info="the length of each output, prompt included")
        with gr.Row():
            steps = gr.Slider(0, 64, value=0, step=1, label="Steps of the first level",
                              info="MaskGIT passes for the coarsest level (0 = the model's own)")
            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature")
            n = self.variants_slider()
            seed, random_seed = self.seed_controls()
        rank = self.optional_picker("mulan", "Rank by MuLaN",
                                    "a MuLaN folder: with 2 or more variants, order them by closeness to the "
                                    "prompt (best first); empty = seed order")
        run, stop = self.run_stop("Continue the clip")
        self.out = VariantOutputs(ctx.config.max_variants, label="Continuation", elem_prefix=self.key)
        inputs = [model, audio, prompt_seconds, seconds, steps, temperature, n, seed, random_seed, rank]
        self.listen(run.click, self.continue_clip, inputs, [*self.out.components, seed], "soundstorm")
        self.out.follow(self, n, "soundstorm_variants")
        self.stop_on(stop, "soundstorm_stop")

    @handler
    def continue_clip(self, model, audio, prompt_seconds, seconds, steps, temperature, variants, seed, random_seed,
                      rank_by="", progress=gr.Progress(), request: gr.Request = None):
        """Continue the first `prompt_seconds` of the clip to `seconds`, `variants` times (seeds seed, seed+1, ...);
        with `rank_by` (a MuLaN folder) and 2+ variants, ordered by MuLaN cosine with the prompt, best first."""
        job = self.start_job(request, progress)
        prompt_seconds = as_float(prompt_seconds, "prompt seconds", 0.01, self.upload_cap)
        seconds = as_float(seconds, "total seconds", 0.05, MAX_SECONDS)
        steps = as_int(steps, "steps", 0, 1000)
        temperature = as_float(temperature, "temperature", 0.0, 10.0)
        n = as_int(variants, "variants", 1, self.ctx.config.max_variants)
        seed = resolve_seed(seed, random_seed)
        if seconds <= prompt_seconds:
            raise ConfigError(f"the total ({seconds:g} s) must be longer than the prompt ({prompt_seconds:g} s)")
        spec = model_spec(model, "soundstorm")
        storm = self.ctx.cache.get("soundstorm", spec, lambda: load_soundstorm(spec), job.status)
        codec = storm.soundstream
        sr = int(codec.sample_rate)
        wave = read_upload(audio, sample_rate=sr, max_seconds=self.upload_cap, what="a prompt clip")
        prompt = wave[: int(round(prompt_seconds * sr))]
        frames = int(codec.seconds_to_frames(seconds))
        folder = self.ctx.outputs.new("soundstorm")
        prompt_wav = write_wav(folder, "soundstorm-prompt", prompt, sr)
        variants, continuations = [], []
        start = codec.frames_to_samples(codec.seconds_to_frames(prompt.shape[0] / sr))  # after the prompt's frames
        for i in range(n):
            s = seed + i
            job.status(f"continuation {i + 1}/{n}")
            generated = storm.generate(frames, prompt_audio=prompt[None].to(storm.device), steps=steps or None,
                                       temperature=temperature, seed=s,
                                       callback=job.callback("MaskGIT decoding", i, n))
            job.check()
            clip = generated[0, : int(round(seconds * sr))].float().cpu()
            continuations.append(clip[start:])
            stem = f"soundstorm-seed{s}"
            wav = write_wav(folder, stem, clip, sr)
            png = write_png(folder, stem, spectrogram_image(clip.numpy(), sr))
            variants.append(Variant(wav, png, f"continuation · seed {s}"))
        seeds, scores = [seed + i for i in range(n)], None
        rank_by = (rank_by or "").strip()
        if rank_by and n > 1:
            mulan_spec = model_spec(rank_by, "mulan")
            mulan = self.ctx.cache.get("mulan", mulan_spec, lambda: load_mulan(mulan_spec), job.status)
            job.status("ranking by MuLaN")
            scores = prompt_similarity(mulan, prompt.float().cpu(), torch.stack(continuations), sr)
            order = scores.argsort(descending=True).tolist()
            variants = [Variant(variants[i].wav, variants[i].png, f"{variants[i].label} · similarity "
                                f"{float(scores[i]):.3f}") for i in order]
            seeds = [seeds[i] for i in order]
        settings = {"tab": "soundstorm", "model": spec, "seed": seed, "seeds": seeds,
                    "variants": n, "prompt_seconds": seconds_of(prompt, sr), "seconds": seconds, "frames": frames,
                    "steps_first_level": steps or storm.config.steps,
                    "passes": sum(storm.steps_for_levels(steps or None)),
                    "temperature": temperature, "sample_rate": sr, "levels": storm.num_quantizers,
                    "input": str(audio).rsplit("/", 1)[-1], "soundweave": __version__,
                    **({"ranked_by": rank_by, "prompt_similarity": [round(float(scores[i]), 4) for i in order]}
                       if scores is not None else {})}
        extra = [prompt_wav, write_settings(folder, "soundstorm-settings", settings)]
        return [*self.out.pack(variants, settings, extra), seed]


__all__ = ["SoundStormTab"]
