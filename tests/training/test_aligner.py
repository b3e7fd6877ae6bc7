"""Aligner training: cached targets, the proof that it learns (MiniLM targets, synthetic corpus), trainer options."""

from __future__ import annotations

import json

import pytest
import torch

from soundweave.errors import ConfigError
from soundweave.models.aligner import AudioCLIPAligner
from soundweave.training.aligner import (
    FeaturePairs,
    TargetCache,
    TextTargets,
    build_aligner,
    collate_features,
    evaluate_aligner_on,
    open_split,
    train_aligner,
)
from tests.helpers import check_margin

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def minilm():
    return TextTargets("minilm", target_len=12)


def test_targets_are_minilm_hidden_states_cached_on_disk(tmp_path, minilm):
    captions = ["a slow piano melody", "fast drums", "a slow piano melody"]
    cache = TargetCache.build(minilm, captions, tmp_path)
    assert cache.captions == ["a slow piano melody", "fast drums"]  # one row per distinct caption
    assert cache.targets.shape == (2, 12, 384) and cache.path.is_file()
    torch.testing.assert_close(cache.targets, minilm.encode(cache.captions))

    def boom(*args, **kwargs):
        raise AssertionError("the text encoder must not run again")

    minilm_encode, minilm.encode = minilm.encode, boom
    try:
        again = TargetCache.build(minilm, captions, tmp_path)
    finally:
        minilm.encode = minilm_encode
    torch.testing.assert_close(again.targets, cache.targets)


def test_features_are_the_inference_path(tiny_corpus, minilm, tmp_path):
    data = open_split(tiny_corpus, "valid")
    cache = TargetCache.build(minilm, data.captions, None)
    aligner = build_aligner("tiny", 384, 12)
    pairs = FeaturePairs(data, cache, aligner, seconds=None)
    batch = collate_features([pairs[0], pairs[1]])
    assert batch["features"].shape[0] == 2 and batch["features"].shape[2] == 160
    audio, sr = data.load_clip(0)
    with torch.no_grad():
        direct = aligner.encode(audio, sr)
        via = aligner(batch["features"][:1], batch["attention_mask"][:1]).last_hidden_state
    torch.testing.assert_close(via, direct)
    with pytest.raises(ConfigError, match="384"):
        build_aligner(AudioCLIPAligner(aligner.encoder_config, target_dim=16, target_len=12), 384, 12)


def test_tiny_aligner_learns_minilm_targets(tiny_corpus, minilm, tmp_path):
    """Proof that it learns: trained briefly, a tiny aligner beats the untrained one on per-token cosine and
    audio->caption retrieval (ranking all 32 training captions; chance R@10 = 10/32)."""
    torch.manual_seed(0)
    result = train_aligner(tiny_corpus, tmp_path / "run", text_encoder=minilm, aligner="tiny", max_steps=30,
                           batch_size=8, lr=3e-3, warmup_steps=3, eval_every=30, valid_split="train", seed=0,
                           progress=False)
    before, after = result.before, result.after
    check_margin("aligner.tiny_learns.cosine_vs_untrained_plus_0.08", after["cosine"], before["cosine"] + 0.08,
                 above=True)
    check_margin("aligner.tiny_learns.mse_vs_untrained", after["mse"], before["mse"])
    check_margin("aligner.tiny_learns.R_at_10", after["R_at_10"], 0.6, above=True)
    check_margin("aligner.tiny_learns.R_at_10_vs_untrained_plus_0.3", after["R_at_10"], before["R_at_10"] + 0.3,
                 above=True)
    check_margin("aligner.tiny_learns.R_at_1_vs_untrained", after["R_at_1"], before["R_at_1"], above=True)
    # training loss over the first epoch vs the last complete one: the same 32 clips (whole, 1.5 s < 4 s window)
    losses, per_epoch = result.train.losses, len(open_split(tiny_corpus, "train")) // 8
    last_epoch = len(losses) // per_epoch - 1
    check_margin("aligner.tiny_learns.last_epoch_loss_vs_first_epoch",
                 sum(losses[last_epoch * per_epoch:(last_epoch + 1) * per_epoch]) / per_epoch,
                 sum(losses[:per_epoch]) / per_epoch)
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["after"]["R_at_10"] == pytest.approx(after["R_at_10"])
    loaded = AudioCLIPAligner.from_pretrained(result.aligner_dir)
    clip, sr = open_split(tiny_corpus, "train").load_clip(0)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(clip, sr), result.aligner.encode(clip, sr))
    # the saved folder records its text encoder, so evaluation needs only the folder and the data
    metrics = evaluate_aligner_on(result.aligner_dir, tiny_corpus, split="train", seconds=None)
    assert metrics["R_at_10"] == pytest.approx(after["R_at_10"], abs=1e-6)


def test_bf16_accumulation_ema_checkpoint_and_resume(tiny_corpus, minilm, tmp_path):
    kwargs = dict(text_encoder=minilm, aligner="tiny", batch_size=4, grad_accum=2, mixed_precision="bf16",
                  ema_decay=0.9, save_every=2, eval_every=0, eval_before=False, progress=False)
    first = train_aligner(tiny_corpus, tmp_path / "run", max_steps=2, **kwargs)
    assert first.train.step == 2 and (tmp_path / "run" / "checkpoints").is_dir()
    resumed = train_aligner(tiny_corpus, tmp_path / "run", max_steps=3, resume=True, **kwargs)
    assert resumed.train.step == 3 and len(resumed.train.losses) == 1
    assert all(torch.isfinite(torch.tensor(resumed.train.losses)))


def test_hf_audiofolder_with_labels_turned_into_captions(tiny_corpus, minilm, tmp_path):
    import shutil

    from soundweave.data import read_manifest

    folder = tmp_path / "hf"
    folder.mkdir()
    rows = []
    for record in read_manifest(tiny_corpus)[:8]:
        name = record.path.split("/")[-1]
        shutil.copy(tiny_corpus / record.path, folder / name)
        rows.append({"file_name": name, "instrument": record.tags["instrument"], "tempo": record.tags["tempo"]})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = train_aligner(folder, tmp_path / "run", text_encoder=minilm, aligner="tiny", max_steps=2, batch_size=4,
                           eval_every=0, progress=False, hf={"caption_column": None,
                                                             "tag_columns": ("instrument", "tempo")})
    assert result.train.step == 2 and "R_at_10" in result.after
    assert result.after["gallery"] == len({f"{r['instrument']}, {r['tempo']}" for r in rows})
