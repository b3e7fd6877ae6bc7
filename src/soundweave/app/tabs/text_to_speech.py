"""Text to speech: each line of text -> TextToSemantic units -> SoundStorm codes -> codec -> a wav, optionally in the
voice of the first 3 s of an upload (what `soundweave generate speech "text" --voice prompt.wav` does).

Events: /text_to_speech (one player per line, the spectrogram gallery, the files, the settings and the seed
used), /text_to_speech_players (how many players show), /text_to_speech_stop.
"""

from __future__ import annotations

import gradio as gr

from ... import __version__
from ...errors import ConfigError
from ..jobs import handler
from ..media import read_upload, seconds_of, spectrogram_image, write_png, write_settings, write_wav
from ..models import load_tts, model_spec
from .base import Tab, Variant, VariantOutputs, as_float, as_int, resolve_seed

MAX_LINES = 8  # utterances per request
MAX_CHARS = 300  # characters per line
VOICE_SECONDS = 3.0  # the voice prompt: the first seconds of the upload
MIN_VOICE_SECONDS = 1.0
UPLOAD_SECONDS = 60.0


def split_lines(text, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> list[str]:
    """The non-empty lines of `text`, whitespace tidied, checked against the limits."""
    lines = [" ".join(line.split()) for line in str(text or "").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ConfigError("type the text to speak, e.g. 'Where is the old clock?' (one line per utterance)")
    if len(lines) > max_lines:
        raise ConfigError(f"the text has {len(lines)} lines; at most {max_lines} utterances are spoken per run: "
                          "remove some lines or run again with the rest")
    for i, line in enumerate(lines, 1):
        if len(line) > max_chars:
            raise ConfigError(f"line {i} is too long ({len(line)} characters, at most {max_chars}): split it into "
                              "shorter lines, one sentence each")
    return lines


class TextToSpeechTab(Tab):
    def build(self) -> None:
        ctx = self.ctx
        self.upload_cap = ctx.cap(UPLOAD_SECONDS)
        gr.Markdown("Text to speech as in SPEAR-TTS + SoundStorm: a TextToSemantic turns each line into phoneme "
                    "units, SoundStorm fills the codec tokens under them, the codec decodes. Upload a voice: its "
                    f"first {VOICE_SECONDS:g} s are the prompt the speech continues in (else the model's default "
                    "voice).")
        model = self.model_picker("tts", "Text-to-speech model (SoundStorm with its TextToSemantic and codec)",
                                  "text-to-speech model")
        text = gr.Textbox(value="Where is the old clock?", label="Text", lines=3,
                          info=f"one utterance per line (at most {MAX_LINES} lines of {MAX_CHARS} characters)")
        voice = self.upload(f"Voice prompt (optional; its first {VOICE_SECONDS:g} s are used)", self.upload_cap)
        with gr.Row():
            steps = gr.Slider(0, 64, value=0, step=1, label="Steps of the first level",
                              info="MaskGIT passes for the coarsest level (0 = the model's own)")
            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature",
                                    info="SoundStorm's sampling temperature")
            semantic_temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="Text-to-semantic temperature",
                                             info="0 = greedy units (the most likely pronunciation)")
            seed, random_seed = self.seed_controls()
        run, stop = self.run_stop("Speak")
        self.out = VariantOutputs(MAX_LINES, label="Utterance", elem_prefix=self.key)
        inputs = [model, text, voice, steps, temperature, semantic_temperature, seed, random_seed]
        self.listen(run.click, self.speak, inputs, [*self.out.components, seed], "text_to_speech")

        def shown(value):
            count = len([line for line in str(value or "").splitlines() if line.strip()])
            return [gr.update(visible=i < max(1, min(MAX_LINES, count))) for i in range(MAX_LINES)]

        self.light(text.change, shown, [text], self.out.players, "text_to_speech_players")
        self.stop_on(stop, "text_to_speech_stop")

    @handler
    def speak(self, model, text, voice, steps, temperature, semantic_temperature, seed, random_seed,
              progress=gr.Progress(), request: gr.Request = None):
        """Each line of `text` spoken (every line with the same seed and voice prompt)."""
        job = self.start_job(request, progress)
        lines = split_lines(text)
        steps = as_int(steps, "steps", 0, 1000)
        temperature = as_float(temperature, "temperature", 0.0, 10.0)
        semantic_temperature = as_float(semantic_temperature, "text-to-semantic temperature", 0.0, 10.0)
        seed = resolve_seed(seed, random_seed)
        spec = model_spec(model, "tts")
        tts = self.ctx.cache.get("tts", spec, lambda: load_tts(spec), job.status)
        _, mask = tts.text_to_semantic.tokenize(lines)
        limit = int(tts.text_to_semantic.config.max_source_len)
        for i, used in enumerate(mask.sum(1).tolist(), 1):
            if used >= limit:
                raise ConfigError(f"line {i} is too long for this model ({limit} text tokens at most): split it "
                                  "into shorter lines")
        codec = tts.soundstream
        sr = int(codec.sample_rate)
        prompt = None
        folder = self.ctx.outputs.new("text-to-speech")
        extra = []
        if voice is not None and str(voice).strip():
            wave = read_upload(voice, sample_rate=sr, max_seconds=self.upload_cap, what="a voice prompt",
                               min_seconds=MIN_VOICE_SECONDS)
            prompt = wave[: int(round(VOICE_SECONDS * sr))]
            extra.append(write_wav(folder, "speech-voice-prompt", prompt, sr))
        variants, spoken = [], []
        for i, line in enumerate(lines):
            job.status(f"utterance {i + 1}/{len(lines)}: text to units")
            speech = tts.generate(texts=[line], prompt_audio=None if prompt is None else prompt[None].to(tts.device),
                                  seed=seed, steps=steps or None, temperature=temperature,
                                  semantic_temperature=semantic_temperature,
                                  callback=job.callback("SoundStorm passes", i, len(lines)))[0]
            job.check()
            clip = speech.float().cpu()
            stem = f"speech-{i + 1:02d}-seed{seed}"
            wav = write_wav(folder, stem, clip, sr)
            png = write_png(folder, stem, spectrogram_image(clip.numpy(), sr))
            short = line if len(line) <= 48 else line[:47] + "…"
            variants.append(Variant(wav, png, f"{i + 1}: {short}"))
            spoken.append({"text": line, "seconds": seconds_of(clip, sr), "wav": wav.name})
        settings = {"tab": "text-to-speech", "model": spec, "seed": seed, "utterances": spoken,
                    "voice_prompt": None if prompt is None else str(voice).rsplit("/", 1)[-1],
                    "voice_prompt_seconds": None if prompt is None else seconds_of(prompt, sr),
                    "default_voice": prompt is None and tts.default_voice is not None,
                    "steps_first_level": steps or tts.config.steps, "temperature": temperature,
                    "semantic_temperature": semantic_temperature, "sample_rate": sr, "soundweave": __version__}
        extra.append(write_settings(folder, "speech-settings", settings))
        return [*self.out.pack(variants, settings, extra), seed]


__all__ = ["TextToSpeechTab", "split_lines"]
