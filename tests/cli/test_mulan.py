import json

import numpy as np
import pytest
from typer.testing import CliRunner

from soundweave.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from soundweave.data.synth import make_corpus

    folder = tmp_path_factory.mktemp("mulan_cli_corpus")
    make_corpus(folder, n=20, seconds=1.0, sr=16000, seed=3, workers=1)
    return folder


def invoke(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def last_json(text: str) -> dict:
    start = text.index("{")
    return json.loads(text[start : text.rindex("}") + 1])


def test_train_resume_eval_embed(corpus, tmp_path):
    run = tmp_path / "run"
    common = [
        "train",
        "mulan",
        "--data",
        corpus,
        "--out",
        run,
        "--text-tower",
        "scratch",
        "--size",
        "tiny",
        "--batch-size",
        "4",
        "--seconds",
        "1.0",
    ]
    invoke([*common, "--steps", "2", "--save-every", "2", "--grad-cache-chunk", "2", "--min-seconds", "0.5"])
    assert json.loads((run / "train_config.json").read_text())["min_seconds"] == 0.5
    assert (run / "model" / "config.json").is_file() and (run / "checkpoints").is_dir()
    resumed = invoke([*common, "--steps", "4", "--resume", "--bf16", "--eval-every", "2"])
    summary = last_json(resumed.stdout)
    assert summary["step"] == 4  # continued from step 2, did not restart
    assert "text_to_audio_R@1" in summary["last_eval"]

    result = invoke(["eval", "mulan", "--model", run / "model", "--data", corpus, "--seconds", "1.0"])
    metrics = json.loads(result.stdout)
    for key in (
        "text_to_audio_R@1",
        "text_to_audio_R@5",
        "text_to_audio_R@10",
        "audio_to_text_R@1",
        "audio_to_text_R@10",
        "zero_shot_instrument_acc",
        "zero_shot_tempo_acc",
        "zero_shot_mode_acc",
    ):
        assert 0.0 <= metrics[key] <= 1.0

    files = sorted((corpus / "audio").glob("*.wav"))[:2]
    out = tmp_path / "emb"
    invoke(["embed", "--model", run / "model", *files, "--out", out, "--text", "a slow piano"])
    vec = np.load(out / f"{files[0].stem}.npy")
    assert vec.shape == (128,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4
    assert np.load(out / "texts.npy").shape == (1, 128)


def test_bad_input_is_one_error_line(tmp_path, corpus):
    from soundweave.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "mulan", "--model", str(tmp_path / "nope"), "--data", str(corpus)])
    assert exc.value.code == 1
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "mulan",
                "--data",
                str(tmp_path / "nodata"),
                "--out",
                str(tmp_path / "o"),
                "--text-tower",
                "scratch",
            ]
        )
    assert exc.value.code == 1


def test_demo_step_retrieves(corpus, tmp_path):
    from soundweave.cli.demo import DemoContext
    from soundweave.cli.mulan import demo

    ctx = DemoContext(out=tmp_path / "demo", corpus=corpus)
    demo(ctx, steps=3, batch_size=4, size="tiny", top_k=2, queries=("a slow piano melody", "fast drums"))
    report = json.loads((tmp_path / "demo" / "mulan" / "retrieval.json").read_text())
    assert [q["query"] for q in report["queries"]] == ["a slow piano melody", "fast drums"]
    assert all(
        len(q["results"]) == 2 and q["results"][0]["score"] >= q["results"][1]["score"]
        for q in report["queries"]
    )
    assert "text_to_audio_R@10" in report["test_metrics"]
    assert {step for step, _, _ in ctx.outputs} == {"mulan"}
