"""`soundweave train mel-diffusion`, `soundweave generate mel` and the demo step, end to end on a tiny corpus."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from soundweave.cli import main


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from soundweave.data.synth import make_corpus

    folder = tmp_path_factory.mktemp("cli-mel-corpus")
    make_corpus(folder, n=34, seconds=1.5, sr=22050, seed=1)
    return folder


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def model(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-mel-model") / "run"
    try:
        main(["train", "mel-diffusion", "--data", str(corpus), "--out", str(out), "--resolution", "32",
              "--hop-length", "1024", "--channels", "8,16", "--steps", "3", "--batch-size", "4",
              "--filter", "instrument=bass|flute", "--class-tag", "instrument", "--ema", "--sample-every", "3",
              "--sample-steps", "2"])
    except SystemExit as exc:
        assert not exc.code
    return out


def test_train_writes_a_pipeline_folder_and_samples(model):
    for part in ("unet/config.json", "scheduler/scheduler_config.json", "mel/mel_config.json", "model_index.json",
                 "log.csv", "samples/step-00000003/sample-00-bass.png", "samples/step-00000003/sample-01-flute.wav"):
        assert (model / part).is_file(), part
    index = json.loads((model / "model_index.json").read_text())
    assert index["_soundweave"]["class_names"] == ["bass", "flute"]


def test_train_resume_prints_json(model, corpus, capsys):
    code, out, err = run(["train", "mel-diffusion", "--data", str(corpus), "--out", str(model), "--steps", "4",
                          "--batch-size", "4", "--filter", "instrument=bass|flute", "--class-tag", "instrument",
                          "--ema", "--resume"], capsys)
    assert code == 0, err
    report = json.loads(out[out.rindex("\n{") :])  # the trainer's progress bar comes first
    assert report["steps"] == 4 and report["classes"] == ["bass", "flute"]
    assert "done" in err and str(model) in err.replace("\n", "")


def test_generate_writes_wav_and_png(model, tmp_path, capsys):
    out = tmp_path / "gen"
    code, stdout, err = run(["generate", "mel", "--model", str(model), "--n", "2", "--steps", "3", "--seconds", "1",
                             "--out", str(out), "--class", "bass", "--seed", "3"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["sample-00.png", "sample-00.wav", "sample-01.png",
                                                     "sample-01.wav"]
    audio, sr = sf.read(out / "sample-00.wav")
    assert sr == 22050 and len(audio) == 22050
    assert json.loads(stdout)["samples"] == 2 and str(out) in err.replace("\n", "")


def test_generate_variation_and_continuation(model, corpus, tmp_path, capsys):
    clip = next((corpus / "audio").glob("*.wav"))
    code, _, err = run(["generate", "mel", "--model", str(model), "--n", "1", "--steps", "10", "--out",
                        str(tmp_path / "var"), "--audio", str(clip), "--start-step", "500", "--class", "flute"], capsys)
    assert code == 0, err
    assert "step 5 of 10" in err  # 500 of 1000 training timesteps
    code, _, err = run(["generate", "mel", "--model", str(model), "--steps", "4", "--out", str(tmp_path / "wide"),
                        "--audio", str(clip), "--start-step", "2", "--seconds", "2", "--class", "bass"], capsys)
    assert code == 0, err  # longer than one 1.45 s spectrogram: a 2x wider variation, trimmed to 2 s
    assert sf.info(tmp_path / "wide" / "sample-00.wav").frames == 2 * 22050
    from PIL import Image

    assert Image.open(tmp_path / "wide" / "sample-00.png").size == (64, 32)
    code, _, err = run(["generate", "mel", "--model", str(model), "--steps", "2", "--out", str(tmp_path / "cont"),
                        "--audio", str(clip), "--continue", "--seconds", "3", "--class", "flute"], capsys)
    assert code == 0, err
    assert sf.info(tmp_path / "cont" / "sample-00.wav").frames == 3 * 22050
    code, _, err = run(["generate", "mel", "--model", str(model), "--steps", "2", "--out", str(tmp_path / "long"),
                        "--seconds", "3.5", "--class", "bass"], capsys)  # longer than one image: chained
    assert code == 0, err
    assert sf.info(tmp_path / "long" / "sample-00.wav").frames == int(3.5 * 22050)


@pytest.mark.parametrize("argv, message", [
    (["--class", "banjo"], "unknown class"),
    (["--start-step", "3"], "need --audio"),
    (["--n", "0"], "--n"),
    (["--sampler", "euler"], "--sampler"),
])
def test_generate_errors(model, tmp_path, capsys, argv, message):
    code, _, err = run(["generate", "mel", "--model", str(model), "--steps", "2", "--out", str(tmp_path / "x"),
                        *argv], capsys)
    assert code == 1 and err.startswith("error:") and message in err


def test_cli_errors_on_bad_model_and_data(corpus, tmp_path, capsys):
    code, _, err = run(["generate", "mel", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "x")], capsys)
    assert code == 1 and "error:" in err
    code, _, err = run(["train", "mel-diffusion", "--data", str(corpus), "--out", str(tmp_path / "o"),
                        "--resolution", "48"], capsys)
    assert code == 1 and "resolution" in err
    code, _, err = run(["train", "mel-diffusion", "--data", str(corpus), "--out", str(tmp_path / "o"),
                        "--channels", "8,x"], capsys)
    assert code == 1 and "--channels" in err
    code, _, err = run(["train", "mel-diffusion", "--data", str(corpus), "--out", str(tmp_path / "o"),
                        "--prediction", "x0"], capsys)
    assert code == 1 and "prediction_type" in err


def test_demo_step(corpus, tmp_path):
    from soundweave.cli.demo import DemoContext
    from soundweave.cli.mel_diffusion import demo

    ctx = DemoContext(out=tmp_path / "demo", corpus=corpus)
    demo(ctx, steps=2, resolution=32, channels=(8, 16), batch_size=4, sample_steps=2, continue_seconds=2.0)
    step = tmp_path / "demo" / "mel-diffusion"
    assert (step / "model" / "unet" / "config.json").is_file()
    assert (step / "continued.wav").is_file() and sf.info(step / "continued.wav").frames == 2 * 22050
    assert len(list(step.glob("sample-*.png"))) == len(list(step.glob("sample-*.wav"))) >= 2
    assert (step / "variation.wav").is_file() and (step / "variation-source.png").is_file()
    assert {label for s, label, _ in ctx.outputs if s == "mel-diffusion"}


def test_mulan_conditioning_trains_and_answers_text(corpus, model, tmp_path, capsys):
    import torch

    from soundweave.models.mulan import AudioSpectrogramTransformer, MuLaN, TextTransformer
    from soundweave.pipelines.mel_diffusion import MelDiffusionPipeline

    torch.manual_seed(0)
    ast = AudioSpectrogramTransformer(dim=32, depth=1, heads=2, dim_head=16, spec_n_fft=256, spec_win_length=256,
                                      spec_hop_length=64, n_mels=32, patch_size=(16, 8), max_seconds=1.0)
    text = TextTransformer(dim=32, depth=1, heads=2, dim_head=16, num_tokens=300, max_seq_len=24)
    MuLaN(ast, text, dim_latent=16).save_pretrained(tmp_path / "mulan")
    out = tmp_path / "cond"
    code, _, err = run(["train", "mel-diffusion", "--data", str(corpus), "--out", str(out), "--resolution", "32",
                        "--hop-length", "1024", "--channels", "8,16", "--steps", "2", "--batch-size", "4",
                        "--mulan", str(tmp_path / "mulan"), "--sample-every", "2", "--sample-steps", "2"], capsys)
    assert code == 0, err
    pipe = MelDiffusionPipeline.from_pretrained(out)
    assert pipe.is_cross_attention and pipe.unet.config.cross_attention_dim == 16
    assert pipe.metadata["conditioning"] == "mulan" and pipe.metadata["mulan"] == str((tmp_path / "mulan").resolve())
    assert len(list((out / "samples" / "step-00000002").glob("*.wav"))) == 4
    arrays = {}
    for caption in ("a deep bass line", "a bright flute melody"):
        folder = tmp_path / caption.replace(" ", "-")
        code, _, err = run(["generate", "mel", "--model", str(out), "--text", caption, "--guidance", "2",
                            "--steps", "3", "--out", str(folder), "--seed", "0"], capsys)
        assert code == 0, err
        arrays[caption] = sf.read(folder / "sample-00.wav")[0]
    a, b = arrays.values()
    assert a.shape == b.shape and not (a == b).all()  # the caption reaches the UNet
    code, _, err = run(["generate", "mel", "--model", str(model), "--text", "drums", "--steps", "2", "--out",
                        str(tmp_path / "x")], capsys)
    assert code == 1 and "--mulan" in err
