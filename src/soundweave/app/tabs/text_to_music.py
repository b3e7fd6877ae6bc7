"""Text to music (MusicLM): a caption -> MuLaN tokens -> semantic tokens -> SoundStorm -> codec -> audio, N samples
drawn in one batch and ranked by MuLaN (what `soundweave generate music` does).

Events: /text_to_music (the sample players - the best one, or all of them best first -, the spectrogram
gallery, the files, the settings with every MuLaN score, and the seed used), /text_to_music_players (how many
players show), /text_to_music_stop.
"""

from __future__ import annotations

import functools

import gradio as gr

from ... import __version__
from ...errors import ConfigError
from ..jobs import handler
from ..media import read_upload, seconds_of, spectrogram_image, write_png, write_settings, write_wav
from ..models import load_musiclm, model_spec
from .base import Tab, Variant, VariantOutputs, as_float, as_int, resolve_seed

MIN_SECONDS, MAX_SECONDS = 0.5, 30.0  # length of each sample (a continued clip included)
MAX_SAMPLES = 8  # best of N: N drawn in one batch
MAX_PROMPT_CHARS = 300
UPLOAD_SECONDS = 30.0
STAGES = {"semantic": "semantic tokens", "acoustic": "SoundStorm passes", "rerank": "MuLaN rerank"}


def check_prompt(text, max_chars: int = MAX_PROMPT_CHARS) -> str:
    prompt = " ".join(str(text or "").split())
    if not prompt:
        raise ConfigError("type a text prompt describing the music, e.g. 'a slow piano melody'")
    if len(prompt) > max_chars:
        raise ConfigError(f"the prompt has {len(prompt)} characters; at most {max_chars} are taken: describe the "
                          "music in a sentence or two")
    return prompt


class TextToMusicTab(Tab):
    def build(self) -> None:
        ctx = self.ctx
        self.upload_cap = ctx.cap(UPLOAD_SECONDS)
        gr.Markdown("MusicLM turns a caption into music: MuLaN's text embedding, quantized, conditions the semantic "
                    "transformer and SoundStorm; the codec decodes. N samples are drawn in one batch and ranked by "
                    "MuLaN's text-audio similarity (best of N).")
        model = self.model_picker("musiclm", "MusicLM folder (semantic_tokenizer/, mulan_quantizer/, "
                                  "semantic_transformer/, soundstorm/)", "MusicLM model")
        prompt = gr.Textbox(value="a slow piano melody", label="Prompt", lines=2, max_length=MAX_PROMPT_CHARS,
                            info="what the music should sound like")
        with gr.Row():
            seconds = gr.Slider(MIN_SECONDS, MAX_SECONDS, value=4, step=0.5, label="Seconds",
                                info="the length of each sample")
            samples = gr.Slider(1, MAX_SAMPLES, value=4, step=1, label="Samples",
                                info="drawn in one batch; MuLaN ranks them")
            show_all = gr.Checkbox(value=False, label="Show every sample",
                                   info="all of them best first with their scores (else only the best)")
        with gr.Row():
            cond_scale = gr.Slider(1, 10, value=3.0, step=0.5, label="Guidance (cond_scale)",
                                   info="classifier-free guidance; 1 = off")
            temperature = gr.Slider(0, 2, value=0.95, step=0.05, label="Temperature",
                                    info="semantic sampling temperature (0 = greedy)")
            top_k = gr.Slider(0, 256, value=0, step=1, label="Top-k", info="keep the k likeliest tokens (0 = all)")
            seed, random_seed = self.seed_controls()
        with gr.Accordion("Continue a clip (optional)", open=False):
            prime = self.upload("Clip to continue: the output starts with it", self.upload_cap)
            self.examples(prime)
        run, stop = self.run_stop("Make music")
        self.out = VariantOutputs(MAX_SAMPLES, label="Sample", elem_prefix=self.key)
        inputs = [model, prompt, seconds, samples, show_all, cond_scale, temperature, top_k, prime, seed, random_seed]
        self.listen(run.click, self.generate, inputs, [*self.out.components, seed], "text_to_music")

        def shown(n, every):
            count = max(1, min(MAX_SAMPLES, int(float(n or 1)))) if every else 1
            return [gr.update(visible=i < count) for i in range(MAX_SAMPLES)]

        self.light(functools.partial(gr.on, [samples.change, show_all.change]), shown, [samples, show_all],
                   self.out.players, "text_to_music_players")
        self.stop_on(stop, "text_to_music_stop")

    @handler
    def generate(self, model, prompt, seconds, samples, show_all, cond_scale, temperature, top_k, prime, seed,
                 random_seed, progress=gr.Progress(), request: gr.Request = None):
        """`samples` clips of `seconds` for `prompt` in one batch, ranked by MuLaN; the best (or all, best first)."""
        job = self.start_job(request, progress)
        prompt = check_prompt(prompt)
        seconds = as_float(seconds, "seconds", MIN_SECONDS, MAX_SECONDS)
        n = as_int(samples, "samples", 1, MAX_SAMPLES)
        cond_scale = as_float(cond_scale, "cond_scale", 0.0, 20.0)
        temperature = as_float(temperature, "temperature", 0.0, 10.0)
        top_k = as_int(top_k, "top-k", 0, 100_000)
        seed = resolve_seed(seed, random_seed)
        spec = model_spec(model, "musiclm")
        musiclm = self.ctx.cache.get("musiclm", spec, lambda: load_musiclm(spec), job.status)
        if musiclm.audio_lm.has_semantic_stage:  # more than the vocabulary = all of it
            top_k = min(top_k, int(musiclm.audio_lm.semantic_transformer.num_semantic_tokens))
        sr = int(musiclm.sample_rate)
        wave = None
        if prime is not None and str(prime).strip():
            wave = read_upload(prime, sample_rate=sr, max_seconds=self.upload_cap, what="a clip to continue")
            if seconds_of(wave, sr) >= seconds:
                raise ConfigError(f"the clip to continue lasts {seconds_of(wave, sr):g} s: ask for more seconds "
                                  f"than that (now {seconds:g} s; the length includes the clip)")
        reports = {}

        def stage(name: str, done: int, total: int) -> None:
            if name not in reports:
                reports[name] = job.callback(STAGES.get(name, name))
            reports[name](done, total)

        job.status(f"drawing {n} sample(s)")
        result = musiclm(prompt, num_samples=n, seconds=seconds, cond_scale=cond_scale, temperature=temperature,
                         top_k=top_k or None, seed=seed, return_all=True, prime_wave=wave,
                         prime_wave_sample_rate=sr if wave is not None else None, callback=stage)
        job.check()
        scores = [round(float(s), 4) for s in result.scores]
        shown = len(scores) if show_all else 1
        folder = self.ctx.outputs.new("text-to-music")
        variants = []
        for rank in range(shown):
            clip = result.audio[rank].float().cpu()
            stem = f"music-seed{seed}-rank{rank + 1}"
            wav = write_wav(folder, stem, clip, sr)
            png = write_png(folder, stem, spectrogram_image(clip.numpy(), sr))
            variants.append(Variant(wav, png, f"rank {rank + 1} of {n} · MuLaN {scores[rank]:.3f}"))
        settings = {"tab": "text-to-music", "model": spec, "prompt": prompt, "seed": seed, "seconds": seconds,
                    "samples": n, "shown": "all" if show_all else "best", "scores": scores,
                    "cond_scale": cond_scale, "temperature": temperature, "top_k": top_k or None,
                    "sample_rate": sr, "semantic_stage": musiclm.audio_lm.has_semantic_stage,
                    "continued": None if wave is None else str(prime).rsplit("/", 1)[-1],
                    "timings_s": {k: round(v, 3) for k, v in result.timings.items()}, "soundweave": __version__}
        extra = [write_settings(folder, "music-settings", settings)]
        return [*self.out.pack(variants, settings, extra), seed]


__all__ = ["TextToMusicTab", "check_prompt"]
