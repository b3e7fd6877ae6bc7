"""CLI: data speech, train text-to-semantic, train soundstorm --semantic phonemes, generate speech."""

from __future__ import annotations

from pathlib import Path

from soundweave import ConformerWrapper, SpectralCodec
from tests.helpers import invoke_cli, parse_json


def test_speech_cli_end_to_end(tmp_path):
    data, t2s, tts, out = tmp_path / "speech", tmp_path / "t2s", tmp_path / "tts", tmp_path / "out"
    result = invoke_cli("data", "speech", "--out", data, "--n", 12, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["n"] == 12 and (data / "captions.jsonl").is_file()

    result = invoke_cli("train", "text-to-semantic", "--data", data, "--out", t2s, "--steps", 3, "--preset", "tiny")
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["steps"] == 3 and (t2s / "model.safetensors").is_file()

    SpectralCodec(num_quantizers=2, codebook_size=16, n_mels=32, griffin_lim_iters=2).save_pretrained(tmp_path / "c")
    result = invoke_cli("train", "soundstorm", "--data", data, "--codec", tmp_path / "c", "--out", tts,
                        "--semantic", "phonemes", "--text-to-semantic", t2s, "--steps", 2, "--preset", "tiny",
                        "--batch-size", 2, "--seconds", 1.0)
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["semantic"] == "phonemes"

    voice = data / "audio" / "clip-000002.wav"
    result = invoke_cli("generate", "speech", "hello there", "a longer sentence to say", "--model", tts,
                        "--voice", voice, "--out", out, "--steps", 2)
    assert result.exit_code == 0, result.output
    info = parse_json(result.stdout)
    assert [Path(p).name for p in info["outputs"]] == ["speech-00.wav", "speech-01.wav", "speech-spectrograms.png"]
    assert all(Path(p).is_file() for p in info["outputs"])
    # this call's sampling: the same seed with --top-k 1 --choice-temperature 0 is the model's call with those
    import torch

    from soundweave import SoundStorm
    from soundweave.audio import load

    result = invoke_cli("generate", "speech", "hello there", "--model", tts, "--voice", voice, "--out", out / "k1",
                        "--steps", 2, "--top-k", 1, "--choice-temperature", 0, "--seed", 4, "--no-spectrograms")
    assert result.exit_code == 0, result.output
    model = SoundStorm.from_pretrained(tts)
    prompt = load(voice, sr=model.soundstream.sample_rate)[0][None, : 3 * model.soundstream.sample_rate]
    expected = model.generate(texts=["hello there"], prompt_audio=prompt, seed=4, steps=2, top_k=1,
                              choice_temperature=0.0)[0]
    got = load(out / "k1" / "speech-00.wav")[0]
    assert got.shape == expected.shape and torch.allclose(got, expected.float(), atol=1e-4)
    result = invoke_cli("generate", "speech", "hi", "--model", tts, "--top-k", -4)
    assert "--top-k" in str(result.exception)

    # a second phase: --init-from a speech SoundStorm keeps its network (size, weights at lr ~0) and its TextToSemantic
    phase2 = tmp_path / "tts2"
    result = invoke_cli("train", "soundstorm", "--data", data, "--codec", tmp_path / "c", "--out", phase2,
                        "--semantic", "phonemes", "--init-from", tts, "--steps", 1, "--batch-size", 2,
                        "--seconds", 1.0, "--lr", 1e-9, "--level0-share", 0.5)
    assert result.exit_code == 0, result.output
    assert parse_json(result.stdout)["init_from"] == str(tts)
    tuned = SoundStorm.from_pretrained(phase2)
    assert tuned.net.config.conformer == model.net.config.conformer and tuned.text_to_semantic is not None
    assert tuned.config.level_probs == [0.5, 0.5]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(tuned.net.state_dict().values(),
                                                               model.net.state_dict().values(), strict=True))
    assert tuned.generate(texts=["hello there"], seed=0, steps=2)[0].numel() > 0
    # a plain (unconditioned) SoundStorm cannot be a speech model's start: refused before any work
    plain = tmp_path / "plain"
    SoundStorm(ConformerWrapper(codebook_size=16, num_quantizers=2, conformer=dict(dim=16, depth=1, heads=2,
                                                                                   dim_head=8)),
               soundstream=model.soundstream).save_pretrained(plain)
    result = invoke_cli("train", "soundstorm", "--data", data, "--codec", tmp_path / "c", "--out", tmp_path / "no",
                        "--semantic", "phonemes", "--init-from", plain, "--steps", 1)
    assert result.exit_code != 0 and "phoneme units" in str(result.exception)
    assert not (tmp_path / "no").exists()


def test_bad_semantic_option_is_one_line_error(tmp_path):
    result = invoke_cli("train", "soundstorm", "--data", tmp_path, "--codec", tmp_path, "--out", tmp_path / "o",
                        "--semantic", "hubert")
    assert result.exit_code != 0 and "--semantic must be" in str(result.exception or result.output)
