"""Text to speech quality: intelligibility (pocketsphinx WER), voice (speaker classifier), speed (RTF per stage),
unit quality (PNMI) and phoneme-timing accuracy. Prints JSON.

    python benchmarks/tts_quality.py --data DIR --tts MODEL_DIR [--n-eval 50]

DIR is a speech corpus (`soundweave data speech`), MODEL_DIR a SoundStorm trained with `--semantic phonemes`
and a TextToSemantic attached. Held-out sentences are the corpus's test + valid clips (never trained on).
(a) the espeak-ng originals, (b) their codec resynthesis, (c) our TTS of the same sentence with a 3 s prompt
of another clip in the same voice, are transcribed by pocketsphinx (its PyPI wheel ships the English model);
WER by jiwer against the text (numbers spelled out). Voice: a logistic-regression speaker classifier on
MFCC mean/std features, trained on the corpus's train split, labels the TTS outputs; chance = 1 / voices. The
same classifier labels the codec resyntheses of the held-out clips (what a perfect TTS through this codec would
reach), and a second one, trained on the codec resyntheses of the train split (`--codec-domain-classifier`),
labels all three again - TTS audio can only ever be codec audio.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict

import numpy as np
import torch

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
       "seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    return " ".join(number_words(int(d)) for d in str(n))


def normalise(text: str) -> str:
    text = re.sub(r"\d+", lambda m: " " + number_words(int(m.group())) + " ", text.lower())
    return " ".join(re.sub(r"[^a-z' ]", " ", text).split())


class Recognizer:
    """pocketsphinx with its English LM, or (`sentences` given) a trigram LM of those sentences (pocketsphinx's
    own ARPA builder) - a domain LM over the corpus's training captions; the held-out sentences are not in it."""

    def __init__(self, sentences: list[str] | None = None):
        import tempfile

        from pocketsphinx import Decoder
        from pocketsphinx.lm import ArpaBoLM

        self.decoder = Decoder(samprate=16000, loglevel="FATAL")
        if sentences:
            lm = ArpaBoLM(text="\n".join(sentences), add_start=True)
            lm.compute()
            with tempfile.TemporaryDirectory() as tmp:
                path = f"{tmp}/corpus.arpa"
                lm.write_file(path)
                self.decoder.add_lm_file("corpus", path)
            self.decoder.activate_search("corpus")

    def __call__(self, audio: torch.Tensor, sr: int) -> str:
        from soundweave.audio.io import resample

        audio = audio.reshape(-1).float()
        if sr != 16000:
            audio = resample(audio, sr, 16000)
        audio = audio / audio.abs().max().clamp_min(1e-6) * 0.8
        pad = torch.zeros(3200)
        pcm = (torch.cat([pad, audio, pad]).clamp(-1, 1).numpy() * 32767).astype(np.int16).tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return normalise(hyp.hypstr) if hyp is not None else ""


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return float(jiwer.wer(refs, [h if h else "<empty>" for h in hyps]))


def speaker_features(audio: torch.Tensor, sr: int) -> torch.Tensor:
    from soundweave.models.speech_units import MFCCUnits

    feats = MFCCUnits(k=2, frame_rate=100.0, sample_rate=16000, n_mels=40, n_mfcc=20, deltas=False).features(
        audio.reshape(-1), sr)
    return torch.cat([feats.mean(0), feats.std(0)])


def fit_classifier(x: torch.Tensor, y: torch.Tensor, classes: int, steps: int = 500) -> torch.nn.Module:
    torch.manual_seed(0)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-5)
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=0.05, weight_decay=1e-4)
    xn = (x - mean) / std
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(lin(xn), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lambda z: lin((z - mean) / std).argmax(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--tts", required=True, help="SoundStorm folder with codec and TextToSemantic attached")
    parser.add_argument("--text-to-semantic", default=None, help="TextToSemantic folder to attach (if --tts has none)")
    parser.add_argument("--n-eval", type=int, default=50)
    parser.add_argument("--prompt-seconds", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=0, help="MaskGIT steps of the first level (0 = model's)")
    parser.add_argument("--alignment-clips", type=int, default=5)
    parser.add_argument("--top-k", type=int, default=None,
                        help="SoundStorm top-k for generation (default: the model's own; 0 = all codes)")
    parser.add_argument("--choice-temperature", type=float, default=None,
                        help="SoundStorm MaskGIT choice noise (default: the model's own)")
    parser.add_argument("--codec-domain-classifier", action=argparse.BooleanOptionalAction, default=True,
                        help="also train a speaker classifier on the codec resyntheses of the train split")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    try:  # fail before the work, not after it
        import jiwer  # noqa: F401
    except ImportError:
        raise SystemExit("tts_quality needs jiwer for the word error rate: pip install -e '.[bench]'") from None
    torch.set_num_threads(args.threads)

    from soundweave.audio import load
    from soundweave.data.manifest import read_manifest
    from soundweave.data.speech import VoiceSpec, alignment_error, phoneme_units
    from soundweave.models.soundstorm import SoundStorm
    from soundweave.models.speech_units import MFCCUnits, pnmi, purity

    started = time.perf_counter()
    model = SoundStorm.from_pretrained(args.tts)
    if args.text_to_semantic:
        from soundweave.models.text_to_semantic import TextToSemantic

        model.attach_text_to_semantic(TextToSemantic.from_pretrained(args.text_to_semantic))
    if args.choice_temperature is not None:
        model.config.choice_temperature = args.choice_temperature
    if args.top_k is not None:
        model.config.top_k = args.top_k or None
    codec, t2s = model.soundstream, model.text_to_semantic
    sr = codec.sample_rate
    held = (read_manifest(args.data, "test") + read_manifest(args.data, "valid"))[: args.n_eval]
    train = read_manifest(args.data, "train")
    by_voice = defaultdict(list)
    for r in train:
        by_voice[r.tags["voice"]].append(r)
    recognizer = Recognizer()
    closed = Recognizer([normalise(r.caption) for r in train])
    refs, hyp_a, hyp_b, hyp_c = [], [], [], []
    closed_hyps: dict[str, list[str]] = {"espeak_originals": [], "codec_resynthesis": [], "tts": []}
    times = {"text_to_semantic": 0.0, "soundstorm": 0.0, "codec_decode": 0.0}
    tts_seconds = 0.0
    voice_true, tts_audio, resynths = [], [], []
    for i, record in enumerate(held):
        audio, _ = load(f"{args.data}/{record.path}", sr=sr)
        refs.append(normalise(record.caption))
        resynth = codec.reconstruct(audio[None])[0]
        resynths.append(resynth)
        hyp_a.append(recognizer(audio, sr))
        hyp_b.append(recognizer(resynth, sr))
        closed_hyps["espeak_originals"].append(closed(audio, sr))
        closed_hyps["codec_resynthesis"].append(closed(resynth, sr))
        pool = by_voice.get(record.tags["voice"]) or train
        prompt_clip, _ = load(f"{args.data}/{pool[i % len(pool)].path}", sr=sr)
        prompt = prompt_clip[: int(args.prompt_seconds * sr)][None]
        g = torch.Generator().manual_seed(i)
        t0 = time.perf_counter()
        units, lengths = t2s.generate([record.caption], temperature=0.0, return_lengths=True)
        t1 = time.perf_counter()
        codes = model.generate_speech([record.caption], prompt_audio=prompt, generator=g, return_codes=True,
                                      steps=args.steps or None)[0]
        t2 = time.perf_counter()
        speech = codec.decode(codes[None])[0]
        t3 = time.perf_counter()
        times["text_to_semantic"] += t1 - t0
        times["soundstorm"] += (t2 - t1) - (t1 - t0)  # generate_speech runs the text stage again
        times["codec_decode"] += t3 - t2
        tts_seconds += speech.numel() / sr
        hyp_c.append(recognizer(speech, sr))
        closed_hyps["tts"].append(closed(speech, sr))
        voice_true.append(record.tags["voice"])
        tts_audio.append(speech)

    # speaker classifier over the corpus's voices
    voices = sorted(by_voice)
    index = {v: j for j, v in enumerate(voices)}
    train_audio = [load(f"{args.data}/{r.path}", sr=16000)[0] for r in train]  # read once, for both classifiers
    feats = torch.stack([speaker_features(a, 16000) for a in train_audio])
    labels = torch.tensor([index[r.tags["voice"]] for r in train])
    classify = fit_classifier(feats, labels, len(voices))
    known = [k for k, v in enumerate(voice_true) if v in index]
    orig_feats = torch.stack([speaker_features(load(f"{args.data}/{held[k].path}", sr=16000)[0], 16000)
                              for k in known])
    tts_feats = torch.stack([speaker_features(tts_audio[k], sr) for k in known])
    truth = torch.tensor([index[voice_true[k]] for k in known])
    voice_acc_orig = float((classify(orig_feats) == truth).float().mean())
    voice_acc_tts = float((classify(tts_feats) == truth).float().mean())
    resynth_feats = torch.stack([speaker_features(resynths[k], sr) for k in known])
    voice_acc_resynth = float((classify(resynth_feats) == truth).float().mean())
    codec_domain = None
    if args.codec_domain_classifier:
        with torch.no_grad():
            coded = torch.stack([speaker_features(codec.reconstruct(a[None], sample_rate=16000)[0], sr)
                                 for a in train_audio])
        classify_coded = fit_classifier(coded, labels, len(voices))
        codec_domain = {name: round(float((classify_coded(f) == truth).float().mean()), 4)
                        for name, f in (("tts_with_3s_prompt", tts_feats), ("codec_resynthesis", resynth_feats),
                                        ("espeak_originals", orig_feats))}

    # unit quality: phoneme labels at 100 Hz vs (i) the 25 Hz phoneme units, (ii) MFCC k-means units
    rate = codec.frame_rate / 2
    mfcc = MFCCUnits(k=100, frame_rate=rate, sample_rate=sr).fit(
        [load(f"{args.data}/{r.path}", sr=sr)[0] for r in train[:200]], generator=torch.Generator().manual_seed(0))
    lab, ph, km = [], [], []
    for r in held:
        audio, _ = load(f"{args.data}/{r.path}", sr=sr)
        k_units = mfcc(audio)
        n = k_units.shape[0]
        fine = torch.from_numpy(phoneme_units(args.data, r, rate * 4, n * 4))
        lab.append(fine)
        ph.append(torch.from_numpy(phoneme_units(args.data, r, rate, n)).repeat_interleave(4))
        km.append(k_units.repeat_interleave(4))
    lab, ph, km = torch.cat(lab), torch.cat(ph), torch.cat(km)

    align = [alignment_error(held[k].caption, VoiceSpec(held[k].tags["accent"], held[k].tags["variant"],
                                                        held[k].tags["speed"], held[k].tags["pitch"]))
             for k in range(min(args.alignment_clips, len(held)))]
    report = {
        "held_out_sentences": len(held),
        "choice_temperature": model.config.choice_temperature,
        "top_k": model.config.top_k,
        "wer": {"espeak_originals": round(wer(refs, hyp_a), 4), "codec_resynthesis": round(wer(refs, hyp_b), 4),
                "tts": round(wer(refs, hyp_c), 4)},
        "wer_domain_lm": {k: round(wer(refs, v), 4) for k, v in closed_hyps.items()},
        "wer_note": "wer: pocketsphinx's general English LM; wer_domain_lm: a trigram LM of the corpus's training "
                    "captions (held-out sentences are new combinations of the same templates and words)",
        "wer_goal": "tts <= 1.5 x codec_resynthesis",
        "voice_accuracy": {"tts_with_3s_prompt": round(voice_acc_tts, 4), "espeak_originals": round(voice_acc_orig, 4),
                           "codec_resynthesis": round(voice_acc_resynth, 4),
                           "chance": round(1 / len(voices), 4), "voices": len(voices), "evaluated": len(known),
                           "classifier": "trained on the train split's espeak-ng originals"},
        "voice_accuracy_codec_domain": codec_domain and {
            **codec_domain, "classifier": "trained on the codec resyntheses of the train split"},
        "rtf": {k: round(v / max(tts_seconds, 1e-9), 4) for k, v in times.items()},
        "rtf_total": round(sum(times.values()) / max(tts_seconds, 1e-9), 4),
        "tts_audio_seconds": round(tts_seconds, 2),
        "units": {"phonemes_25hz_pnmi": round(pnmi(ph, lab), 4), "phonemes_25hz_purity": round(purity(ph, lab), 4),
                  "mfcc_kmeans100_pnmi": round(pnmi(km, lab), 4), "mfcc_kmeans100_purity": round(purity(km, lab), 4),
                  "labels": "phoneme alignment at 100 Hz"},
        "phoneme_timing_error_ms": {"mean": round(float(np.mean([a["mean_ms"] for a in align])), 1),
                                    "median": round(float(np.median([a["median_ms"] for a in align])), 1),
                                    "clips": len(align)},
        "examples": [{"text": refs[k], "original": hyp_a[k], "codec": hyp_b[k], "tts": hyp_c[k],
                      "tts_domain_lm": closed_hyps["tts"][k]} for k in range(min(3, len(refs)))],
        "model": {"soundstorm_parameters": model.net.num_parameters(), "t2s_parameters": t2s.num_parameters(),
                  "codec": codec.describe()},
        "budget": {"threads": args.threads, "cpu": "2 shared cores, contended by other jobs",
                   "elapsed_s": round(time.perf_counter() - started, 1)},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
