"""`soundweave train semantic-tokenizer | semantic | soundstorm --semantic --mulan` and `generate music`."""

from __future__ import annotations

import json

import torch

from tests.helpers import invoke_cli, parse_json


def test_train_and_generate_music_end_to_end(tiny_corpus, tmp_path):
    from soundweave import MuLaN, SpectralCodec
    from soundweave.training.semantic import load_audio_folder
    from tests.pipelines.test_musiclm import tiny_mulan

    mulan_dir = tmp_path / "mulan"
    tiny_mulan().save_pretrained(mulan_dir)
    assert MuLaN.from_pretrained(mulan_dir) is not None
    codec = SpectralCodec(num_quantizers=2, codebook_size=32, griffin_lim_iters=4)
    codec.fit([item.audio for item in load_audio_folder(tiny_corpus, 16000)][:8], iters=3)
    codec.save_pretrained(tmp_path / "codec")
    model = tmp_path / "musiclm"

    r = invoke_cli("train", "semantic-tokenizer", "--data", tiny_corpus, "--out", model / "semantic_tokenizer",
                   "--codebook-size", 16, "--iters", 20)
    assert r.exit_code == 0, r.output
    metrics = parse_json(r.stdout)
    assert 0 < metrics["code_usage"] <= 1 and "pnmi" in metrics["instrument"]
    assert json.loads((model / "semantic_tokenizer" / "metrics.json").read_text())["codebook_size"] == 16

    r = invoke_cli("train", "semantic", "--data", tiny_corpus, "--tokenizer", model / "semantic_tokenizer",
                   "--mulan", mulan_dir, "--out", model, "--dim", 32, "--depth", 1, "--heads", 2, "--steps", 3,
                   "--batch-size", 4, "--seconds", 1, "--cond-dim", 24, "--rq-quantizers", 2, "--rq-codebook", 8)
    assert r.exit_code == 0, r.output
    assert parse_json(r.stdout)["steps"] == 3
    assert (model / "mulan_quantizer" / "model.safetensors").is_file()

    r = invoke_cli("train", "soundstorm", "--data", tiny_corpus, "--codec", tmp_path / "codec", "--out",
                   model / "soundstorm", "--semantic", model / "semantic_tokenizer",
                   "--mulan", model / "mulan_quantizer",
                   "--steps", 3, "--batch-size", 4, "--seconds", 1, "--preset", "tiny", "--dim", 32, "--depth", 1)
    assert r.exit_code == 0, r.output
    assert parse_json(r.stdout)["namespace"] == "coarse"

    out = tmp_path / "music"
    r = invoke_cli("generate", "music", "a slow piano melody", "--model", model, "--seconds", 1, "--num-samples", 3,
                   "--out", out, "--seed", 7)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "music.json").read_text())
    assert report["prompt"] == "a slow piano melody" and report["seed"] == 7 and report["num_samples"] == 3
    assert report["scores"] == sorted(report["scores"], reverse=True)
    for rank in range(3):
        assert (out / f"music-{rank}.wav").is_file() and (out / f"music-{rank}.png").is_file()
    # same seed, same music
    again = tmp_path / "again"
    invoke_cli("generate", "music", "a slow piano melody", "--model", model, "--seconds", 1, "--num-samples", 3,
               "--out", again, "--seed", 7)
    from soundweave.audio import load

    assert torch.equal(load(out / "music-0.wav")[0], load(again / "music-0.wav")[0])
    # --choice-temperature overrides the choice noise the trained SoundStorm stores (6, the recipe's)
    greedy = tmp_path / "greedy"
    r = invoke_cli("generate", "music", "a slow piano melody", "--model", model, "--seconds", 1, "--num-samples", 3,
                   "--out", greedy, "--seed", 7, "--choice-temperature", 0)
    assert r.exit_code == 0, r.output
    assert not torch.equal(load(out / "music-0.wav")[0], load(greedy / "music-0.wav")[0])
    picky = tmp_path / "picky"
    r = invoke_cli("generate", "music", "a slow piano melody", "--model", model, "--seconds", 1, "--num-samples", 3,
                   "--out", picky, "--seed", 7, "--acoustic-top-k", 1)
    assert r.exit_code == 0, r.output
    assert not torch.equal(load(out / "music-0.wav")[0], load(picky / "music-0.wav")[0])


def test_generate_music_errors(tmp_path):
    from soundweave.errors import CheckpointError, ConfigError

    r = invoke_cli("generate", "music", "drums", "--model", tmp_path / "missing")
    assert isinstance(r.exception, CheckpointError) and "does not exist" in str(r.exception)
    r = invoke_cli("generate", "music", "drums", "--model", tmp_path / "missing", "--choice-temperature", -1)
    assert isinstance(r.exception, ConfigError) and "--choice-temperature" in str(r.exception)
    r = invoke_cli("generate", "music", "drums", "--model", tmp_path / "missing", "--acoustic-top-k", -1)
    assert isinstance(r.exception, ConfigError) and "--acoustic-top-k" in str(r.exception)
    (tmp_path / "empty").mkdir()
    r = invoke_cli("generate", "music", "drums", "--model", tmp_path / "empty")
    assert isinstance(r.exception, CheckpointError) and "mulan_quantizer" in str(r.exception)
    r = invoke_cli("train", "semantic", "--help")
    assert r.exit_code == 0 and "--tokenizer" in r.output and "--mulan" in r.output
