"""SoundStorm commands: train soundstorm -> generate soundstorm (with a prompt); errors; the demo step."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from soundweave import SoundStorm, SoundStream
from soundweave.cli.demo import DEMO_STEPS, DemoContext
from soundweave.errors import SoundweaveError
from tests.helpers import invoke_cli as invoke
from tests.helpers import parse_json


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codec")
    torch.manual_seed(0)
    SoundStream(sample_rate=16000, channels=4, channel_mults=(1, 2, 4), strides=(4, 8, 10), codebook_dim=16,
                codebook_size=32, rq_num_quantizers=3, attn_depth=0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained(tiny_corpus, codec_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("storm")
    result = invoke("train", "soundstorm", "--data", tiny_corpus, "--codec", codec_dir, "--out", out, "--steps", 6,
                    "--batch-size", 4, "--seconds", 1.0, "--preset", "tiny", "--dim", 32, "--depth", 1)
    assert result.exit_code == 0, result.output
    report = parse_json(result.stdout)
    assert report["steps"] == 6 and report["last_loss"] > 0 and "valid_accuracy" in report
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert list((out / "codes").glob("*.safetensors"))
    return out


def test_generate_writes_audio_and_continues_a_prompt(trained, tiny_corpus, tmp_path):
    result = invoke("generate", "soundstorm", "--model", trained, "--seconds", 0.6, "--out", tmp_path / "a",
                    "--n", 2, "--seed", 1, "--codes")
    assert result.exit_code == 0, result.output
    audio, sr = sf.read(tmp_path / "a" / "soundstorm-01.wav")
    assert sr == 16000 and len(audio) == 30 * 320  # ceil(0.6 s * 50 frames/s) frames of 320 samples
    codes = np.load(tmp_path / "a" / "soundstorm-00.npy")
    assert codes.shape == (30, 3) and codes.max() < 32

    wav = next((tiny_corpus / "audio").glob("*.wav"))
    result = invoke("generate", "soundstorm", "--model", trained, "--seconds", 1.0, "--out", tmp_path / "b",
                    "--prompt", wav, "--prompt-seconds", 0.4, "--codes")
    assert result.exit_code == 0, result.output
    report = parse_json(result.stdout)
    assert report["prompt_frames"] == 20 and report["frames"] == 50
    from soundweave import SoundStorm
    from soundweave.audio import load

    model = SoundStorm.from_pretrained(trained)
    prompt, _ = load(wav, sr=16000)
    expected = model.soundstream.encode(prompt[None, :6400])[0].numpy()
    assert np.array_equal(np.load(tmp_path / "b" / "soundstorm-00.npy")[:20], expected)  # the prompt is kept


def test_generate_reranks_continuations_by_closeness_to_the_prompt(trained, tiny_corpus, tmp_path):
    from soundweave.audio import load
    from soundweave.pipelines.continuation import ContinuationPipeline
    from tests.pipelines.test_musiclm import tiny_mulan

    mulan = tiny_mulan(8000).eval()
    mulan.save_pretrained(tmp_path / "mulan")
    wav = next((tiny_corpus / "audio").glob("*.wav"))
    result = invoke("generate", "soundstorm", "--model", trained, "--seconds", 1.0, "--out", tmp_path / "r",
                    "--prompt", wav, "--prompt-seconds", 0.4, "--n", 3, "--seed", 5, "--rerank", tmp_path / "mulan")
    assert result.exit_code == 0, result.output
    report = parse_json(result.stdout)
    scores = report["prompt_similarity"]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and report["rerank"] == str(tmp_path / "mulan")
    # the files are the pipeline's ranking of the same draw, best first
    prompt, _ = load(wav, sr=16000)
    ranked = ContinuationPipeline(SoundStorm.from_pretrained(trained), scorer=mulan)(
        prompt[:6400], 16000, seconds=1.0, num_samples=3, seed=5, return_all=True)
    assert np.allclose(scores, ranked.scores.numpy(), atol=1e-3)
    for i in range(3):
        audio, sr = sf.read(tmp_path / "r" / f"soundstorm-{i:02d}.wav", dtype="float32")
        assert sr == 16000 and np.allclose(audio, ranked.audio[i].numpy(), atol=1e-3)
    # refused before any work: no prompt, one output, or with --codes
    for args in ((), ("--prompt", wav), ("--prompt", wav, "--n", 2, "--codes")):
        result = invoke("generate", "soundstorm", "--model", tmp_path / "missing", "--out", tmp_path / "x",
                        "--rerank", tmp_path / "mulan", *args)
        assert isinstance(result.exception, SoundweaveError) and "--rerank" in str(result.exception)
        assert not (tmp_path / "x").exists()


def test_generate_sampling_options_are_this_calls_sampling(trained, tmp_path):
    from soundweave import SoundStorm

    model = SoundStorm.from_pretrained(trained)
    for args, kwargs in (((), {}), (("--top-k", 1), {"top_k": 1}), (("--temperature", 3.0), {"temperature": 3.0}),
                         (("--window-frames", 8), {"window_frames": 8}),
                         (("--choice-temperature", 0, "--top-k", 0), {"choice_temperature": 0.0, "top_k": 0})):
        out = tmp_path / f"s{len(args)}"
        result = invoke("generate", "soundstorm", "--model", trained, "--seconds", 0.4, "--out", out, "--seed", 3,
                        "--codes", *args)
        assert result.exit_code == 0, result.output
        expected = model.generate(20, seed=3, return_codes=True, **kwargs)[0].numpy()
        assert np.array_equal(np.load(out / "soundstorm-00.npy"), expected), args
    # omitted = the model's own; every negative value (-1 included) is an error
    for args, message in ((("--top-k", -1), "--top-k"), (("--choice-temperature", -1), "--choice-temperature"),
                          (("--temperature", -0.5), "--temperature"), (("--window-frames", 1), "--window-frames"),
                          (("--window-frames", -2), "--window-frames")):
        result = invoke("generate", "soundstorm", "--model", tmp_path / "missing", "--out", tmp_path, *args)
        assert isinstance(result.exception, SoundweaveError) and message in str(result.exception)


def test_bad_input_gives_one_error_line(trained, tmp_path):
    for args in (["--model", tmp_path / "missing", "--out", tmp_path],
                 ["--model", trained, "--out", tmp_path, "--seconds", 0.2, "--prompt", tmp_path / "no.wav"],
                 ["--model", trained, "--out", tmp_path, "--n", 0]):
        result = invoke("generate", "soundstorm", *args)
        assert result.exit_code != 0
        assert isinstance(result.exception, SoundweaveError)
    wav = tmp_path / "long.wav"
    sf.write(wav, np.zeros(16000), 16000)
    result = invoke("generate", "soundstorm", "--model", trained, "--out", tmp_path, "--seconds", 0.5, "--prompt", wav)
    assert isinstance(result.exception, SoundweaveError) and "prompt" in str(result.exception)


def test_demo_step_runs_end_to_end_on_a_tiny_corpus(tiny_corpus, tmp_path):
    from soundweave.cli.soundstorm import demo

    assert ("soundstorm", "soundweave.cli.soundstorm:demo") in DEMO_STEPS
    ctx = DemoContext(out=tmp_path, corpus=tiny_corpus)
    demo(ctx, codec_steps=3, codec_max_seconds=None, codec_preset="tiny",
         codec_config=dict(hop_length=160, num_quantizers=3, codebook_size=16), steps=8, max_seconds=None,
         dim=32, depth=1, crop_seconds=1.0, batch_size=4, prompt_seconds=0.5, total_seconds=1.0, n=2)
    out = tmp_path / "soundstorm"
    for name in ("reconstruction.wav", "prompt.wav", "continuation-0.wav", "continuation-1.wav", "metrics.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "metrics.json").read_text())
    assert report["prompt_unchanged"] and report["train_steps"] == 8 and report["generated_frames"] == 50
    audio, sr = sf.read(out / "continuation-1.wav")
    assert sr == 8000 and len(audio) == 50 * 160
    assert {step for step, _, _ in ctx.outputs} >= {"soundstorm", "soundstorm/codec"}


def test_demo_step_reuses_the_codec_steps_codec(tiny_corpus, codec_dir, tmp_path):
    from soundweave.cli.soundstorm import demo

    ctx = DemoContext(out=tmp_path, corpus=tiny_corpus)
    ctx.add_output("codec", "trained codec", codec_dir)
    demo(ctx, steps=4, max_seconds=None, dim=32, depth=1, crop_seconds=1.0, batch_size=4, prompt_seconds=0.5,
         total_seconds=1.0, n=1)
    report = json.loads((tmp_path / "soundstorm" / "metrics.json").read_text())
    assert report["codec"] == str(codec_dir) and report["prompt_unchanged"]
    assert not (tmp_path / "soundstorm" / "codec").exists() and "prompt_similarity" not in report


def test_demo_step_ranks_its_continuations_with_the_mulan_steps_model(tiny_corpus, codec_dir, tmp_path):
    from soundweave.audio import load
    from soundweave.cli.soundstorm import demo
    from soundweave.pipelines.continuation import prompt_similarity
    from tests.pipelines.test_musiclm import tiny_mulan

    mulan = tiny_mulan(16000).eval()
    mulan.save_pretrained(tmp_path / "mulan-model")
    ctx = DemoContext(out=tmp_path, corpus=tiny_corpus)
    ctx.add_output("codec", "trained codec", codec_dir)
    ctx.add_output("mulan", "trained MuLaN", tmp_path / "mulan-model")
    demo(ctx, steps=4, max_seconds=None, dim=32, depth=1, crop_seconds=1.0, batch_size=4, prompt_seconds=0.5,
         total_seconds=1.0, n=2, draws=3)
    out = tmp_path / "soundstorm"
    report = json.loads((out / "metrics.json").read_text())
    scores = report["prompt_similarity"]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert report["ranked_by"] == str(tmp_path / "mulan-model") and report["prompt_unchanged"]
    assert not (out / "continuation-2.wav").exists()
    # continuation-0 is the best: its cosine with the prompt is the top score
    prompt, sr = load(out / "prompt.wav")
    begin = report["prompt_frames"] * 320
    best, _ = load(out / "continuation-0.wav")
    second, _ = load(out / "continuation-1.wav")
    direct = prompt_similarity(mulan, prompt, torch.stack([best[begin:], second[begin:]]), sr)
    assert torch.allclose(direct, torch.tensor(scores[:2]), atol=5e-3), (direct, scores)


def test_codec_step_fits_on_fresh_clips_and_soundstorm_models_its_first_8_levels(tiny_corpus, tmp_path):
    """The demo's chain: the codec step fits a codec with more than 8 levels on freshly rendered clips (the demo
    corpus stays as it is); the SoundStorm step models that codec's first 8 levels."""
    from soundweave import SoundStorm
    from soundweave.cli.codec import codec_demo
    from soundweave.cli.soundstorm import demo
    from soundweave.models.codecs import load_codec

    ctx = DemoContext(out=tmp_path, corpus=tiny_corpus)
    result = codec_demo(ctx, preset="tiny", model_config=dict(hop_length=160, num_quantizers=10, codebook_size=16),
                        fit_clips=12, kmeans_iters=2)
    state = json.loads((result.out_dir / "codec_train.json").read_text())
    assert Path(state["data"]) != Path(tiny_corpus) and state["clips"] > 0
    assert not Path(state["data"]).exists()  # fitted on the freshly rendered clips, removed afterwards
    out = tmp_path / "codec"
    assert (out / "reconstruction-8q.wav").is_file() and (out / "reconstruction-2q.wav").is_file()
    codec = load_codec(result.out_dir)
    assert codec.num_quantizers == 10
    demo(ctx, steps=3, max_seconds=None, dim=32, depth=1, crop_seconds=1.0, batch_size=4, prompt_seconds=0.5,
         total_seconds=1.0, n=1)
    report = json.loads((tmp_path / "soundstorm" / "metrics.json").read_text())
    assert report["codec_levels"] == 8 and report["prompt_unchanged"]
    storm = SoundStorm.from_pretrained(tmp_path / "soundstorm" / "model")
    assert storm.num_quantizers == 8 and torch.equal(storm.soundstream.codebooks, codec.codebooks[:8])


@pytest.mark.parametrize("args, message", [(("--level0-share", "1.5"), "--level0-share"),
                                           (("--mask-embedding", "random"), "--mask-embedding"),
                                           (("--choice-temperature", "-1"), "--choice-temperature"),
                                           (("--top-k", "-1"), "--top-k")])
def test_train_soundstorm_refuses_a_bad_recipe_before_any_work(args, message, tiny_corpus, codec_dir, tmp_path):
    out = tmp_path / "never"
    result = invoke("train", "soundstorm", "--data", tiny_corpus, "--codec", codec_dir, "--out", out, "--steps", 1,
                    *args)
    assert result.exit_code != 0 and isinstance(result.exception, SoundweaveError)
    assert message in str(result.exception)
    assert not out.exists()


def test_train_soundstorm_recipe_options_reach_the_model(tiny_corpus, codec_dir, tmp_path):
    out = tmp_path / "uniform"
    result = invoke("train", "soundstorm", "--data", tiny_corpus, "--codec", codec_dir, "--out", out, "--steps", 1,
                    "--batch-size", 2, "--seconds", 0.5, "--preset", "tiny", "--dim", 32, "--depth", 1,
                    "--level0-share", 0, "--mask-embedding", "learned", "--no-tie-embeddings",
                    "--choice-temperature", 0, "--top-k", 7, "--save-every", 0)
    assert result.exit_code == 0, result.output
    model = SoundStorm.from_pretrained(out)
    assert model.config.level_probs is None and model.net.config.mask_embedding == "learned"
    assert not model.net.config.tie_embeddings and model.net.head_weight is not None
    assert model.config.choice_temperature == 0.0 and model.config.top_k == 7


def test_train_soundstorm_init_from_fine_tunes_a_trained_model(trained, tiny_corpus, codec_dir, tmp_path):
    out = tmp_path / "phase2"
    result = invoke("train", "soundstorm", "--data", tiny_corpus, "--codec", codec_dir, "--out", out, "--steps", 2,
                    "--batch-size", 2, "--seconds", 0.5, "--lr", 1e-9, "--level0-share", 0.5, "--save-every", 0,
                    "--init-from", trained)
    assert result.exit_code == 0, result.output
    start, tuned = SoundStorm.from_pretrained(trained), SoundStorm.from_pretrained(out)
    assert tuned.net.config.conformer == start.net.config.conformer  # its size, not the default preset's
    assert tuned.config.level_probs == pytest.approx([0.5, 0.25, 0.25])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(tuned.net.state_dict().values(),
                                                               start.net.state_dict().values(), strict=True))


@pytest.mark.parametrize("args, message", [(("--dim", "64"), "--dim"), (("--mulan", "m"), "--mulan"),
                                           (("--semantic", "phonemes"), "phoneme units"), ((), "no config.json")])
def test_train_soundstorm_init_from_refuses_what_it_cannot_do(args, message, trained, tiny_corpus, codec_dir,
                                                             tmp_path):
    out = tmp_path / "never"
    start = tmp_path / "empty" if not args else trained
    start.mkdir(exist_ok=True)
    result = invoke("train", "soundstorm", "--data", tiny_corpus, "--codec", codec_dir, "--out", out, "--steps", 1,
                    "--init-from", start, *args)
    assert result.exit_code != 0 and isinstance(result.exception, SoundweaveError)
    assert message in str(result.exception) and not out.exists()


def test_train_soundstorm_cli_defaults_are_the_training_recipe():
    # the command keeps torch out of its import, so its defaults are literals: they must stay the recipe's constants
    import inspect

    from soundweave.cli.soundstorm import train_soundstorm_cmd
    from soundweave.training import soundstorm as recipe

    params = inspect.signature(train_soundstorm_cmd).parameters
    names = ("level0_share", "mask_embedding", "tie_embeddings", "choice_temperature", "top_k")
    assert {name: params[name].default.default for name in names} == {
        "level0_share": recipe.LEVEL0_SHARE, "mask_embedding": recipe.MASK_EMBEDDING,
        "tie_embeddings": recipe.TIE_EMBEDDINGS, "choice_temperature": recipe.CHOICE_TEMPERATURE,
        "top_k": recipe.TOP_K or 0}
