"""`soundweave train soundstorm`, `soundweave generate soundstorm`, and the SoundStorm demo step."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import ConfigError
from .codec import SOUNDSTORM_LEVELS
from .common import console, done, print_json
from .groups import generate_app, train_app


@train_app.command("soundstorm")
def train_soundstorm_cmd(
        data: str = typer.Option(..., "--data", help="Manifest folder (audio + captions.jsonl) to train on, or "
                                 "WebDataset shards with codes of --codec (`soundweave data shard ... --codec`), "
                                 "streamed: a shard folder, a brace pattern or URLs."),
        codec: Path = typer.Option(..., "--codec", help="Trained codec folder (e.g. from `soundweave train codec`)."),
        out: Path = typer.Option(..., "--out", help="Output folder: the model, checkpoints, logs, cached codes."),
        steps: int = typer.Option(2000, "--steps", help="Optimizer steps."),
        batch_size: int = typer.Option(8, "--batch-size", help="Clips per step."),
        lr: float = typer.Option(3e-4, "--lr", help="Peak learning rate (AdamW, warm-up + cosine decay)."),
        seconds: float = typer.Option(4.0, "--seconds", help="Crop length in seconds (0 = whole clips, padded)."),
        preset: str = typer.Option("small", "--preset", help="Conformer size: tiny, small (dim 256 x 4), base, or "
                                   "paper (dim 1024 x 12, 16 heads: the paper's 350M; GPUs)."),
        dim: int = typer.Option(None, "--dim", help="Override the preset's model width."),
        depth: int = typer.Option(None, "--depth", help="Override the preset's number of Conformer blocks."),
        generation_steps: int = typer.Option(16, "--generation-steps",
                                             help="MaskGIT steps of the first level stored with the model."),
        bf16: bool = typer.Option(False, "--bf16", help="Train in bf16 autocast (faster only on GPUs and CPUs with "
                                  "native bf16 - AVX512-BF16 / AMX; emulated on other CPUs, about 9x slower: a "
                                  "warning says so)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
        init_from: Path = typer.Option(None, "--init-from", help="Start from this trained SoundStorm's network "
                                       "(architecture and weights) and fine-tune it, e.g. a second phase with "
                                       "--level0-share 0.5 after a first that learned level 0 (README: the "
                                       "continuation recipe); with --semantic phonemes a speech SoundStorm (its "
                                       "TextToSemantic stays attached). Not with --dim/--depth/--mulan."),
        ema: float = typer.Option(0.0, "--ema", help="EMA decay of the saved weights (0 = off, e.g. 0.999)."),
        eval_every: int = typer.Option(0, "--eval-every", help="Validation every N steps (0 = only at the end)."),
        save_every: int = typer.Option(500, "--save-every", help="Checkpoint every N steps (0 = never)."),
        log_every: int = typer.Option(10, "--log-every", help="Write a row of log.csv every N steps."),
        filter_: str = typer.Option("", "--filter", help="Only clips with this tag, e.g. instrument=piano."),
        seed: int = typer.Option(0, "--seed", help="Seed for data order, masks and initialisation."),
        level0_share: float = typer.Option(0.8, "--level0-share", help="Share of the training items that train "
                                           "level 0 (the rest train the finer levels evenly); 0 = all levels "
                                           "uniformly, as the paper. With 0.8 a small model learns level 0 (pitch, "
                                           "timbre) on a CPU budget; uniformly it stays at the unigram (README)."),
        mask_embedding: str = typer.Option("zero", "--mask-embedding", help="'zero': a masked token adds nothing "
                                           "to its frame; 'learned': each level has a trained mask embedding "
                                           "(soundstorm-pytorch's way)."),
        tie_embeddings: bool = typer.Option(True, "--tie-embeddings/--no-tie-embeddings", help="Each level's "
                                            "output head is its input embedding table (learns level 0 faster: "
                                            "README, SoundStorm recipe); --no-tie-embeddings for separate heads "
                                            "(soundstorm-pytorch's way)."),
        choice_temperature: float = typer.Option(6.0, "--choice-temperature", help="MaskGIT choice noise stored "
                                                 "as the model's generation default (0 = keep the most confident "
                                                 "tokens, which a small model fills with one held code)."),
        top_k: int = typer.Option(20, "--top-k", help="Top-k stored as the model's generation default: sample "
                                  "each token among its level's k likeliest codes (0 = all codes)."),
        semantic: str = typer.Option("none", "--semantic", help="Conditioning units: 'none'; 'phonemes' (a "
                                     "speech corpus from `soundweave data speech`: its time-aligned phonemes); or a "
                                     "SemanticTokenizer folder (MusicLM: `soundweave train semantic-tokenizer`)."),
        text_to_semantic: Path = typer.Option(None, "--text-to-semantic", help="With --semantic phonemes: a "
                                              "TextToSemantic folder to attach, so the model speaks text."),
        unit_rate: float = typer.Option(0.0, "--unit-rate", help="With --semantic phonemes: units per second "
                                        "(0 = half the codec frame rate)."),
        mulan: Path = typer.Option(None, "--mulan", help="MusicLM: condition on MuLaN tokens of this "
                                                         "MuLaNEmbedQuantizer folder (from train semantic)."),
        namespace: str = typer.Option("coarse", "--namespace", help="MusicLM: quantizer namespace for SoundStorm."),
        cond_drop_prob: float = typer.Option(0.2, "--cond-drop-prob",
                                             help="MusicLM: share of items trained unconditioned (guidance).")) -> None:
    """Train SoundStorm on the codes of a trained codec (codes are computed once and cached in OUT/codes);
    with --semantic phonemes, conditioned on a speech corpus's phoneme units (text to speech); with --semantic
    TOKENIZER_DIR and/or --mulan QUANTIZER_DIR, MusicLM's acoustic stage (semantic ids + MuLaN tokens)."""
    from ..data.manifest import parse_filter
    from ..training.soundstorm import train_soundstorm

    if not 0.0 <= level0_share <= 1.0:
        raise ConfigError(f"--level0-share must be in [0, 1] (0 = uniform over the levels), got {level0_share}")
    if mask_embedding not in ("zero", "learned"):
        raise ConfigError(f"--mask-embedding must be 'zero' or 'learned', got {mask_embedding!r}")
    if not choice_temperature >= 0:
        raise ConfigError(f"--choice-temperature must be >= 0, got {choice_temperature}")
    if top_k < 0:
        raise ConfigError(f"--top-k must be >= 0 (0 = all codes), got {top_k}")
    if init_from is not None:
        if mulan is not None or semantic not in ("none", "phonemes"):
            raise ConfigError("--init-from fine-tunes a plain or a speech (--semantic phonemes) SoundStorm; it does "
                              "not combine with --mulan or a SemanticTokenizer folder")
        if dim is not None or depth is not None:
            raise ConfigError("--init-from fixes the network's size; do not also give --dim or --depth")
    recipe = dict(level0_share=level0_share or None, mask_embedding=mask_embedding, tie_embeddings=tie_embeddings,
                  choice_temperature=choice_temperature, top_k=top_k or None)

    if mulan is not None or semantic not in ("none", "phonemes"):
        from .musiclm import train_conditioned_soundstorm

        tokenizer = None if semantic == "none" else Path(semantic)
        if tokenizer is not None and not tokenizer.is_dir():
            raise ConfigError(f"--semantic must be 'none', 'phonemes' or a SemanticTokenizer folder, got {semantic!r}")
        return train_conditioned_soundstorm(data, codec, out, tokenizer, mulan, namespace, steps=steps,
                                            batch_size=batch_size, lr=lr, seconds=seconds if seconds > 0 else None,
                                            preset=preset, dim=dim, depth=depth, generation_steps=generation_steps,
                                            bf16=bf16, seed=seed, cond_drop_prob=cond_drop_prob, **recipe)
    if semantic == "phonemes":
        from ..training.speech import train_speech_soundstorm

        if filter_:
            raise ConfigError("--filter is not supported with --semantic phonemes")
        res = train_speech_soundstorm(data, codec, out, steps=steps, batch_size=batch_size, lr=lr,
                                      seconds=seconds if seconds > 0 else None, preset=preset, dim=dim, depth=depth,
                                      unit_rate=unit_rate or None, generation_steps=generation_steps,
                                      text_to_semantic=text_to_semantic, bf16=bf16, seed=seed, resume=resume,
                                      eval_every=eval_every, save_every=save_every, progress=True,
                                      init_from=init_from, **recipe)
        losses = res.train.losses
        print_json({"steps": res.train.step, "clips": res.num_clips, "semantic": "phonemes",
                    "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                    "elapsed_s": round(res.train.elapsed, 2), "parameters": res.model.net.num_parameters(),
                    "text_to_semantic": None if text_to_semantic is None else str(text_to_semantic),
                    "init_from": None if init_from is None else str(init_from), **res.metrics})
        done("SoundStorm trained on phoneme units (codec attached"
             + (", TextToSemantic attached)" if res.model.text_to_semantic is not None else ")"), res.model_dir)
        return

    result = train_soundstorm(data, codec, out, steps=steps, batch_size=batch_size, lr=lr,
                              seconds=seconds if seconds > 0 else None, preset=preset, dim=dim, depth=depth,
                              generation_steps=generation_steps, bf16=bf16, resume=resume, seed=seed,
                              ema_decay=ema or None, eval_every=eval_every, save_every=save_every, log_every=log_every,
                              where=parse_filter(filter_) or None, progress=True, init_from=init_from, **recipe)
    losses = result.train.losses
    print_json({"steps": result.train.step, "clips": result.num_clips,
                "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                "elapsed_s": round(result.train.elapsed, 2), "parameters": result.model.net.num_parameters(),
                **result.metrics})
    done("SoundStorm trained (with its codec attached)", result.model_dir)


def sampling_overrides(temperature: float | None, choice_temperature: float | None, top_k: int | None) -> dict:
    """`generate(...)` keyword arguments from the generate commands' --temperature / --choice-temperature /
    --top-k (omitted = the model's own; --top-k 0 = all codes), checked before anything is loaded."""
    for flag, value in (("--temperature", temperature), ("--choice-temperature", choice_temperature)):
        if value is not None and not value >= 0:
            raise ConfigError(f"{flag} must be >= 0 (omit it for the model's own), got {value}")
    if top_k is not None and top_k < 0:
        raise ConfigError(f"--top-k must be >= 0 (0 = all codes; omit it for the model's own), got {top_k}")
    given = {"temperature": temperature, "choice_temperature": choice_temperature, "top_k": top_k}
    return {k: v for k, v in given.items() if v is not None}


def _load_prompt(model, prompt: Path, prompt_seconds: float | None):
    from ..audio import load

    codec = model.soundstream
    if codec is None:
        raise ConfigError("--prompt needs a model with a codec attached (trained with `soundweave train soundstorm`)")
    audio, _ = load(prompt, sr=codec.sample_rate)
    if prompt_seconds:
        audio = audio[: int(round(prompt_seconds * codec.sample_rate))]
    return audio[None]


@generate_app.command("soundstorm")
def generate_soundstorm_cmd(
        model_dir: Path = typer.Option(..., "--model", help="SoundStorm folder (from `soundweave train soundstorm`)."),
        out: Path = typer.Option(..., "--out", help="Folder for the generated files."),
        seconds: float = typer.Option(4.0, "--seconds", help="Length of each output in seconds, prompt included."),
        frames: int = typer.Option(0, "--frames", help="Length in code frames instead (for a model without codec)."),
        prompt: Path = typer.Option(None, "--prompt", help="A wav/flac file to continue (it stays unchanged)."),
        prompt_seconds: float = typer.Option(0.0, "--prompt-seconds", help="Use only this much of the prompt."),
        n: int = typer.Option(1, "--n", help="Number of outputs."),
        steps: int = typer.Option(0, "--steps", help="MaskGIT steps of the first level (0 = the model's)."),
        temperature: float = typer.Option(None, "--temperature", help="Sampling temperature (default: the "
                                          "model's own)."),
        choice_temperature: float = typer.Option(None, "--choice-temperature",
                                                 help="MaskGIT choice noise (default: the model's own)."),
        top_k: int = typer.Option(None, "--top-k", help="Sample among the k likeliest codes (0 = all codes; "
                                  "default: the model's own)."),
        window_frames: int = typer.Option(None, "--window-frames",
                                          help="Generate in sliding windows of at most this many code frames, half "
                                               "of each kept from before (for long outputs: memory grows linearly; "
                                               "0 = one pass; default: the model's own, one pass unless stored)."),
        rerank: Path = typer.Option(None, "--rerank", help="A MuLaN folder: with --prompt and --n >= 2, rank the n "
                                    "continuations by closeness to the prompt in its embedding space (best first: "
                                    "soundstorm-00.wav; the scores go in the JSON)."),
        seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same output."),
        bf16: bool = typer.Option(False, "--bf16", help="Run the network in bf16 autocast."),
        save_codes: bool = typer.Option(False, "--codes", help="Also write each output's codes as .npy.")) -> None:
    """Generate audio (or codes) with a trained SoundStorm, optionally continuing a prompt (best of --n with
    --rerank)."""
    import numpy as np

    from ..audio import save
    from ..models.soundstorm import SoundStorm
    from ..runtime import pick_device

    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    if rerank is not None and (prompt is None or n < 2):
        raise ConfigError("--rerank ranks continuations of a prompt: give --prompt and --n 2 or more")
    if rerank is not None and (save_codes or frames):
        raise ConfigError("--rerank writes ranked audio: it does not go with --codes or --frames")
    sampling = sampling_overrides(temperature, choice_temperature, top_k)
    if window_frames is not None:
        if window_frames < 0 or window_frames == 1:
            raise ConfigError(f"--window-frames must be 0 (one pass) or >= 2, got {window_frames}")
        sampling["window_frames"] = window_frames
    model = SoundStorm.from_pretrained(model_dir, device=pick_device())
    codec = model.soundstream
    if frames < 0:
        raise ConfigError(f"--frames must be >= 0, got {frames}")
    if frames:
        length = frames
    elif codec is not None:
        length = codec.seconds_to_frames(seconds)
    else:
        raise ConfigError("this model has no codec attached: give the length with --frames")
    prompt_audio = _load_prompt(model, prompt, prompt_seconds or None) if prompt is not None else None
    scores = None
    start = time.perf_counter()
    if rerank is not None:
        from ..models.mulan import MuLaN
        from ..pipelines.continuation import ContinuationPipeline

        pipe = ContinuationPipeline(model, scorer=MuLaN.from_pretrained(rerank, device=model.device).eval())
        ranked = pipe(prompt_audio[0], codec.sample_rate, seconds=seconds, num_samples=n, seed=seed,
                      steps=steps or None, precision="bf16" if bf16 else "fp32", return_all=True, **sampling)
        audio, scores = ranked.audio, [round(float(x), 4) for x in ranked.scores]
    else:
        codes = model.generate(length, batch_size=n, prompt_audio=prompt_audio, steps=steps or None,
                               seed=seed,
                               precision="bf16" if bf16 else "fp32", return_codes=True, **sampling)
    elapsed = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if codec is not None:
        audio = codec.decode(codes).cpu() if scores is None else audio
        for i in range(n):
            path = out / f"soundstorm-{i:02d}.wav"
            save(path, audio[i], codec.sample_rate)
            written.append(path)
    if save_codes or codec is None:
        for i in range(n):
            path = out / f"soundstorm-{i:02d}.npy"
            np.save(path, codes[i].cpu().numpy())
            written.append(path)
    print_json({"outputs": [str(p) for p in written], "frames": length, "levels": model.num_quantizers,
                "generation_s": round(elapsed, 3),
                **({"rerank": str(rerank), "prompt_similarity": scores} if scores is not None else {}),
                "prompt_frames": None if prompt_audio is None else codec.seconds_to_frames(
                    prompt_audio.shape[-1] / codec.sample_rate)})
    done(f"{n} output(s) from SoundStorm", out)


def demo(ctx, codec_steps: int = 400, codec_max_seconds: float | None = 60.0, codec_preset: str = "demo",
         codec_config: dict | None = None, steps: int = 1500, max_seconds: float | None = 100.0, dim: int = 128,
         depth: int = 2, crop_seconds: float = 2.0, batch_size: int = 8, lr: float = 1e-3,
         prompt_seconds: float = 1.5, total_seconds: float = 4.0, n: int = 2,
         levels: int = SOUNDSTORM_LEVELS, draws: int = 4) -> None:
    """Train a tiny SoundStorm on the codes of a tiny codec (the codec step's, or one trained here), then
    reconstruct a clip through the codec and continue a prompt with SoundStorm (about 3 minutes on 2 cores).
    A codec with more than `levels` levels (the codec step's 40-level "hifi" SpectralCodec) is cut to its first
    `levels` (`SpectralCodec.first_levels`): the lower-bitrate codec SoundStorm models.

    When the mulan step ran, `draws` continuations are drawn and ranked by that MuLaN's closeness to the prompt
    (`ContinuationPipeline`); the best `n` are written, best first, with their cosines in metrics.json.

    Writes OUT/soundstorm/{model/, original.wav, reconstruction.wav, prompt.wav, continuation-*.wav,
    metrics.json}.
    """
    import json

    import torch

    from ..audio import save
    from ..models.codecs import load_codec
    from ..training.codec import load_clips
    from ..training.soundstorm import train_soundstorm

    corpus = ctx.need_corpus()
    out = ctx.step_dir("soundstorm")
    codec_dir = ctx.model_of("codec")
    if codec_dir is not None:
        console.print(f"  using the codec trained by the codec step: {codec_dir}")
    else:
        from .codec import codec_demo

        result = codec_demo(ctx, steps=codec_steps, max_seconds=codec_max_seconds, preset=codec_preset,
                            step_name="soundstorm/codec", model_config=codec_config)
        codec_dir = result.out_dir
    codec = load_codec(codec_dir)
    if codec.num_quantizers > levels and hasattr(codec, "first_levels"):
        full = codec.describe()
        codec = codec.first_levels(levels)
        console.print(f"  SoundStorm models its first {levels} levels: {codec.describe()} (of {full})")

    result = train_soundstorm(corpus, codec, out / "model", steps=steps, batch_size=batch_size, lr=lr,
                              seconds=crop_seconds, preset="tiny", dim=dim, depth=depth, max_seconds=max_seconds,
                              seed=ctx.seed, progress=True)
    model = result.model
    losses = result.train.losses
    clip = load_clips(corpus, "test", codec.sample_rate, max_clips=1)[0]
    save(out / "original.wav", clip, codec.sample_rate)
    save(out / "reconstruction.wav", codec.reconstruct(clip)[0].cpu(), codec.sample_rate)

    prompt = clip[: int(round(prompt_seconds * codec.sample_rate))]
    mulan_dir = ctx.model_of("mulan")
    scores = None
    start = time.perf_counter()
    generator = torch.Generator(device=model.device).manual_seed(ctx.seed)
    codes = model.generate(seconds=total_seconds, batch_size=max(n, draws) if mulan_dir else n,
                           prompt_audio=prompt[None], generator=generator, return_codes=True)
    elapsed = time.perf_counter() - start
    prompt_codes = codec.encode(prompt[None])
    audio = codec.decode(codes).cpu()
    if mulan_dir is not None:
        from ..models.mulan import MuLaN
        from ..pipelines.continuation import prompt_similarity

        begin = prompt_codes.shape[1] * codec.hop_length
        scores = prompt_similarity(MuLaN.from_pretrained(mulan_dir).eval(), prompt, audio[:, begin:],
                                   codec.sample_rate)
        order = scores.argsort(descending=True)
        audio, codes, scores = audio[order][:n], codes[order.to(codes.device)][:n], scores[order]
        console.print(f"  ranked {len(order)} continuations by the mulan step's MuLaN (cosine with the prompt: "
                      + ", ".join(f"{float(x):.3f}" for x in scores) + f"); writing the best {n}")
    save(out / "prompt.wav", prompt, codec.sample_rate)
    for i in range(n):
        save(out / f"continuation-{i}.wav", audio[i], codec.sample_rate)
    report = {"codec": str(codec_dir), "codec_levels": codec.num_quantizers, "codebook_size": codec.codebook_size,
              "frame_rate": codec.sample_rate / codec.hop_length, "train_steps": result.train.step,
              "train_clips": result.num_clips, "parameters": model.net.num_parameters(),
              "first_loss": round(sum(losses[:10]) / max(1, len(losses[:10])), 4) if losses else None,
              "last_loss": round(sum(losses[-10:]) / max(1, len(losses[-10:])), 4) if losses else None,
              **{k: round(v, 4) for k, v in result.metrics.items()},
              "prompt_frames": prompt_codes.shape[1], "generated_frames": codes.shape[1],
              "prompt_unchanged": bool((codes[:, : prompt_codes.shape[1]] == prompt_codes).all()),
              "generation_s": round(elapsed, 3), "forward_passes": sum(model.steps_for_levels()),
              **({"ranked_by": str(mulan_dir), "prompt_similarity": [round(float(x), 4) for x in scores]}
                 if scores is not None else {})}
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    console.print(f"  SoundStorm: {report['parameters'] / 1e6:.2f}M parameters, {report['train_steps']} steps, "
                  f"loss {report['first_loss']} -> {report['last_loss']}; valid masked-token accuracy "
                  f"{report.get('valid_accuracy', float('nan')):.3f}")
    console.print(f"  continued a {prompt_seconds:g} s prompt to {total_seconds:g} s x {n} in {elapsed:.2f} s "
                  f"({report['forward_passes']} forward passes); prompt codes unchanged: {report['prompt_unchanged']}")
    ctx.add_output("soundstorm", "SoundStorm trained on the codec's codes (codec attached)", out / "model")
    ctx.add_output("soundstorm", "a test clip -> codec codes -> audio", out / "reconstruction.wav")
    ctx.add_output("soundstorm", f"the {prompt_seconds:g} s prompt", out / "prompt.wav")
    ctx.add_output("soundstorm", f"{n} continuations of the prompt to {total_seconds:g} s",
                   out / "continuation-0.wav")
    ctx.add_output("soundstorm", "losses, accuracy, timing", out / "metrics.json")


__all__ = ["demo", "generate_soundstorm_cmd", "train_soundstorm_cmd"]
