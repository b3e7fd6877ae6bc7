"""Text to speech on the command line: `soundweave data speech`, `soundweave train text-to-semantic`,
`soundweave generate speech`, and the demo's `speech` step. (`soundweave train soundstorm --semantic phonemes`
lives with the other SoundStorm commands and calls `training.speech`.)"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import ConfigError
from .common import console, done, print_json
from .groups import data_app, generate_app, train_app


@data_app.command("speech")
def speech_corpus_cmd(out: Path = typer.Option(..., "--out", help="Folder for audio/*.wav, phonemes/*.json and "
                                                                   "captions.jsonl."),
                      n: int = typer.Option(600, "--n", help="Number of sentences."),
                      seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same corpus."),
                      sr: int = typer.Option(16000, "--sr", help="Sample rate (Hz): the codec's."),
                      workers: int = typer.Option(0, "--workers", help="espeak-ng processes (0 = up to 4)."),
                      overwrite: bool = typer.Option(False, help="Replace a corpus already in --out.")) -> None:
    """Speak generated sentences (statements, questions, numbers, names) with espeak-ng in many voices (5 English
    accents x 10 voice variants, 4 speeds, 4 pitches), with a time-aligned phoneme stream per clip and
    train/valid/test splits. Needs the espeak-ng program (Debian/Ubuntu: apt-get install espeak-ng)."""
    from ..data.speech import make_speech_corpus

    report = make_speech_corpus(out, n=n, seed=seed, sr=sr, workers=workers or None, overwrite=overwrite,
                                progress=True)
    info = report.to_dict()
    info["voices"] = len(report.voices)
    info.pop("phonemes")
    print_json(info)
    done(f"{report.n} spoken sentences ({report.seconds:.0f} s of speech, {len(report.voices)} voices)",
         out / "captions.jsonl", out / "audio", out / "phonemes")


@train_app.command("text-to-semantic")
def train_t2s_cmd(data: Path = typer.Option(..., "--data", help="Speech corpus folder (`soundweave data speech`)."),
                  out: Path = typer.Option(..., "--out", help="Output folder (config.json + model.safetensors)."),
                  steps: int = typer.Option(2000, "--steps", help="Optimizer steps."),
                  batch_size: int = typer.Option(16, "--batch-size", help="Sentences per step."),
                  lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (AdamW, warm-up + cosine)."),
                  preset: str = typer.Option("small", "--preset", help="tiny, small (dim 192, 3 + 3 blocks) or base."),
                  dim: int = typer.Option(None, "--dim", help="Override the preset's width."),
                  depth: int = typer.Option(None, "--depth", help="Override the encoder and decoder depth."),
                  unit_rate: float = typer.Option(25.0, "--unit-rate",
                                                  help="Phoneme units per second (25 = half the 50 Hz codec rate)."),
                  bf16: bool = typer.Option(False, "--bf16", help="bf16 autocast."),
                  eval_every: int = typer.Option(0, "--eval-every", help="Validate every N steps (0 = at the end)."),
                  seed: int = typer.Option(0, "--seed", help="Seed for data order and initialisation.")) -> None:
    """Train the TextToSemantic encoder-decoder: caption text -> the clip's phoneme units (then EOS)."""
    from ..training.text_to_semantic import train_text_to_semantic

    result = train_text_to_semantic(data, out, steps=steps, batch_size=batch_size, lr=lr, preset=preset, dim=dim,
                                    depth=depth, unit_rate=unit_rate, bf16=bf16, eval_every=eval_every, seed=seed,
                                    progress=True)
    losses = result.train.losses
    print_json({"steps": result.train.step, "pairs": result.num_pairs, "parameters": result.model.num_parameters(),
                "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                "elapsed_s": round(result.train.elapsed, 2), **result.metrics})
    done("TextToSemantic trained", result.model_dir)


@generate_app.command("speech")
def generate_speech_cmd(text: list[str] = typer.Argument(..., help="One or more sentences to speak."),
                        model_dir: Path = typer.Option(..., "--model", help="SoundStorm folder trained with "
                                                       "`soundweave train soundstorm --semantic phonemes`."),
                        out: Path = typer.Option(Path("speech-output"), "--out", help="Folder for the wav files."),
                        voice: Path = typer.Option(None, "--voice", help="A wav/flac of the voice to speak in "
                                                   "(its first --voice-seconds are the prompt)."),
                        voice_seconds: float = typer.Option(3.0, "--voice-seconds", help="Prompt length in seconds."),
                        text_to_semantic: Path = typer.Option(None, "--text-to-semantic",
                                                              help="TextToSemantic folder, if the model has none."),
                        steps: int = typer.Option(0, "--steps", help="MaskGIT steps of the first level (0 = model's)."),
                        choice_temperature: float = typer.Option(None, "--choice-temperature",
                                                                 help="MaskGIT choice noise (default: the model's "
                                                                      "own)."),
                        top_k: int = typer.Option(None, "--top-k", help="Sample among the k likeliest codes (0 = all "
                                                  "codes; default: the model's own)."),
                        semantic_temperature: float = typer.Option(0.0, "--semantic-temperature",
                                                                   help="TextToSemantic sampling temperature "
                                                                        "(0 = greedy)."),
                        seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same audio."),
                        spectrograms: bool = typer.Option(True, "--spectrograms/--no-spectrograms",
                                                          help="Write a spectrogram PNG beside each wav.")) -> None:
    """Text to speech: TextToSemantic -> phoneme units -> SoundStorm codes -> codec -> wav, one file per text."""
    from ..audio import load, save
    from ..models.soundstorm import SoundStorm
    from ..models.text_to_semantic import TextToSemantic
    from ..runtime import pick_device
    from .soundstorm import sampling_overrides

    sampling = sampling_overrides(None, choice_temperature, top_k)
    model = SoundStorm.from_pretrained(model_dir, device=pick_device())
    if text_to_semantic is not None:
        model.attach_text_to_semantic(TextToSemantic.from_pretrained(text_to_semantic, device=model.device))
    if model.soundstream is None:
        raise ConfigError(f"{str(model_dir)!r} has no codec attached; train it with `soundweave train soundstorm`")
    codec = model.soundstream
    prompt = None
    if voice is not None:
        if not voice_seconds > 0:
            raise ConfigError(f"--voice-seconds must be > 0, got {voice_seconds}")
        audio, _ = load(voice, sr=codec.sample_rate)
        prompt = audio[: int(round(voice_seconds * codec.sample_rate))][None]
    from rich.progress import Progress

    start = time.perf_counter()
    with Progress(transient=True, console=console) as bar:
        task = bar.add_task("SoundStorm passes", total=None)
        speech = model.generate(texts=list(text), prompt_audio=prompt, seed=seed, steps=steps or None,
                                semantic_temperature=semantic_temperature, **sampling,
                                callback=lambda i, n: bar.update(task, completed=i, total=n))
    elapsed = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, wave in enumerate(speech):
        path = out / f"speech-{i:02d}.wav"
        save(path, wave.cpu(), codec.sample_rate)
        written.append(path)
    if spectrograms:
        from ..audio.spectrogram_png import save_spectrograms

        rows = [(f"{i}: {t[:60]}", w.cpu(), codec.sample_rate)
                for i, (t, w) in enumerate(zip(text, speech, strict=True))]
        if prompt is not None:
            rows.insert(0, ("voice prompt", prompt[0].cpu(), codec.sample_rate))
        written.append(save_spectrograms(out / "speech-spectrograms.png", rows, sample_rate=codec.sample_rate))
    seconds = sum(w.numel() for w in speech) / codec.sample_rate
    print_json({"outputs": [str(p) for p in written], "texts": list(text), "seconds": round(seconds, 3),
                "generation_s": round(elapsed, 3), "rtf": round(elapsed / max(seconds, 1e-9), 3),
                "voice_prompt": None if voice is None else str(voice)})
    done(f"{len(speech)} sentence(s) spoken", out)





def transcribe(audio, sample_rate: int) -> str | None:
    """pocketsphinx's English transcript of `audio` (None when pocketsphinx is not installed)."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        return None
    import numpy as np
    import torch

    from ..audio.io import resample

    audio = audio.reshape(-1).float().cpu()
    if sample_rate != 16000:
        audio = resample(audio, sample_rate, 16000)
    audio = audio / audio.abs().max().clamp_min(1e-6) * 0.8
    pad = torch.zeros(3200)
    pcm = (torch.cat([pad, audio, pad]).clamp(-1, 1).numpy() * 32767).astype(np.int16).tobytes()
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


DEMO_SENTENCES = ("The small cat sees the red bird near the river.", "Where is the old clock?")


def demo(ctx, n: int = 300, t2s_seconds: float = 60.0, soundstorm_seconds: float = 60.0,
         sentences: tuple[str, ...] = DEMO_SENTENCES) -> None:
    """Speak a small corpus with espeak-ng, fit the offline codec on it, train a small TextToSemantic and a
    phoneme-conditioned SoundStorm briefly, then say two sentences in two voices (3 s prompts from held-out
    clips). Writes OUT/speech/{corpus/, codec/, text-to-semantic/, tts/, voice-*.wav, speech-*.wav,
    spectrograms.png, transcripts.json}."""
    import json

    from ..audio import load, save
    from ..audio.spectrogram_png import save_spectrograms
    from ..data.manifest import read_manifest
    from ..data.speech import make_speech_corpus
    from ..training.codec import train_codec
    from ..training.speech import train_speech_soundstorm
    from ..training.text_to_semantic import train_text_to_semantic

    out = ctx.step_dir("speech")
    corpus = out / "corpus"
    report = make_speech_corpus(corpus, n=n, seed=ctx.seed, overwrite=True, progress=True)
    codec = train_codec(corpus, out / "codec", kind="spectral", seed=ctx.seed, progress=True, kmeans_iters=6,
                        model_config=dict(num_quantizers=4, codebook_size=256)).model
    t2s = train_text_to_semantic(corpus, out / "text-to-semantic", steps=3000, preset="small", batch_size=16,
                                 max_seconds=t2s_seconds, seed=ctx.seed, progress=True)
    tts = train_speech_soundstorm(corpus, codec, out / "tts", steps=3000, preset="small", dim=128, depth=3,
                                  batch_size=8, lr=1e-3, seconds=3.0, max_seconds=soundstorm_seconds,
                                  text_to_semantic=t2s.model, seed=ctx.seed, progress=True)
    model = tts.model
    held = read_manifest(corpus, "test")
    voices, seen = [], set()
    for record in held:
        if record.tags["voice"] not in seen and len(voices) < 2:
            seen.add(record.tags["voice"])
            voices.append(record)
    sr = codec.sample_rate
    rows, transcripts = [], []
    for i, (record, text) in enumerate(zip(voices, sentences, strict=False)):
        audio, _ = load(corpus / record.path, sr=sr)
        prompt = audio[: 3 * sr]
        start = time.perf_counter()
        speech = model.generate(texts=[text], prompt_audio=prompt[None], seed=ctx.seed)[0].cpu()
        elapsed = time.perf_counter() - start
        save(out / f"voice-{i}.wav", prompt, sr)
        save(out / f"speech-{i}.wav", speech, sr)
        heard = transcribe(speech, sr)
        transcripts.append({"text": text, "voice": record.tags["voice"], "recognized": heard,
                            "prompt_recognized": transcribe(prompt, sr), "seconds": round(speech.numel() / sr, 2),
                            "generation_s": round(elapsed, 2)})
        rows += [(f"voice {i} prompt ({record.tags['voice']})", prompt, sr), (f"speech {i}: {text}", speech, sr)]
        console.print(f"  [{record.tags['voice']}] {text!r} -> pocketsphinx heard {heard!r}")
    save_spectrograms(out / "spectrograms.png", rows, sample_rate=sr)
    metrics = {"corpus_clips": report.n, "corpus_seconds": report.seconds,
               "t2s_steps": t2s.train.step, "t2s_valid": t2s.metrics, "soundstorm_steps": tts.train.step,
               "soundstorm_valid": tts.metrics, "transcripts": transcripts}
    (out / "transcripts.json").write_text(json.dumps(metrics, indent=2))
    ctx.add_output("speech", f"{report.n} espeak-ng sentences with phoneme alignments", corpus)
    ctx.add_output("speech", "TTS model (SoundStorm + TextToSemantic + codec)", out / "tts")
    ctx.add_output("speech", "two sentences in two voices", out / "speech-0.wav")
    ctx.add_output("speech", "spectrograms: prompts and speech", out / "spectrograms.png")
    ctx.add_output("speech", "input text vs pocketsphinx transcript", out / "transcripts.json")
__all__ = ["demo", "generate_speech_cmd", "speech_corpus_cmd", "train_t2s_cmd", "transcribe"]
