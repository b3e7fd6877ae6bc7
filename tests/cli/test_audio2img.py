"""`soundweave train aligner`, `eval aligner`, `audio2img`, and the audio2img demo step on a tiny corpus."""

from __future__ import annotations

import json

import pytest

from soundweave.cli.audio2img import tiny_stable_diffusion
from soundweave.cli.demo import DemoContext
from tests.helpers import invoke_cli as invoke

pytestmark = pytest.mark.usefixtures("one_thread")



def last_json(text: str) -> dict:
    return json.loads(text[text.index("{"): text.rindex("}") + 1])


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("aligner-run")
    result = invoke("train", "aligner", tiny_corpus, "--out", out, "--aligner", "tiny", "--text-encoder", "minilm",
                    "--target-len", 8, "--steps", 3, "--batch-size", 4, "--seconds", 1.0, "--eval-every", 0)
    assert result.exit_code == 0, result.output
    return out


def test_train_and_eval_aligner(trained, tiny_corpus):
    assert (trained / "aligner" / "config.json").is_file() and (trained / "aligner" / "model.safetensors").is_file()
    recorded = json.loads((trained / "aligner" / "target_encoder.json").read_text())
    assert recorded["target_dim"] == 384 and recorded["target_len"] == 8
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["steps"] == 3 and "R_at_10" in metrics["after"]
    result = invoke("eval", "aligner", trained / "aligner", tiny_corpus, "--split", "valid")
    assert result.exit_code == 0, result.output
    evaluated = last_json(result.stdout)
    assert {"cosine", "mse", "euclidean", "R_at_1", "R_at_10"} <= set(evaluated)


def test_audio2img_command(trained, tiny_corpus, tmp_path):
    tiny_stable_diffusion(cross_attention_dim=384, sample_size=8).save_pretrained(tmp_path / "sd")
    clip = sorted((tiny_corpus / "audio").glob("*.wav"))[0]
    result = invoke("audio2img", clip, "--out", tmp_path / "img.png", "--sd", tmp_path / "sd", "--aligner",
                    trained / "aligner", "--steps", 2, "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "img.png").is_file()
    assert "expected about" in result.output
    settings = last_json(result.stdout)
    assert settings["num_inference_steps"] == 2 and settings["scheduler"] == "dpm"


def test_audio2img_errors(trained, tiny_corpus, tmp_path, capsys):
    from soundweave.cli import main

    clip = sorted((tiny_corpus / "audio").glob("*.wav"))[0]
    tiny_stable_diffusion(cross_attention_dim=16, sample_size=8).save_pretrained(tmp_path / "sd16")
    with pytest.raises(SystemExit) as exit_info:
        main(["audio2img", str(clip), "--sd", str(tmp_path / "sd16"), "--aligner", str(trained / "aligner"),
              "--out", str(tmp_path / "x.png")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "error: the aligner outputs 384-d" in err and "384" in err and "cross_attention_dim=16" in err
    with pytest.raises(SystemExit):
        main(["audio2img", str(clip), "--out", str(tmp_path / "y.png")])
    assert "--aligner" in capsys.readouterr().err


def test_demo_step_runs_small(tiny_corpus, tmp_path):
    from soundweave.cli.audio2img import demo

    ctx = DemoContext(out=tmp_path / "demo", corpus=tiny_corpus)
    demo(ctx, steps=3, preset="tiny", target_len=8, seconds=1.0, image_steps=2)
    step = tmp_path / "demo" / "audio2img"
    assert (step / "audio2img.png").is_file() and (step / "retrieval.json").is_file()
    readme = (step / "README.txt").read_text()
    assert "RANDOMLY INITIALISED" in readme and "soundweave audio2img" in readme
    assert len(json.loads((step / "retrieval.json").read_text())["nearest"]) == 3
    assert [label for s, label, _ in ctx.outputs if s == "audio2img"]
