import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from soundweave.data import (
    CaptionedAudioDataset,
    CaptionRecord,
    HFAudioDataset,
    collate_audio,
    parse_filter,
    read_manifest,
    window,
    write_manifest,
)
from soundweave.errors import DataError


def test_manifest_roundtrip_and_split(tmp_path):
    records = [CaptionRecord("a.wav", "a piano", {"instrument": "piano"}, "train"),
               CaptionRecord("b.wav", "drums", {"instrument": "rock drums"}, "test")]
    write_manifest(tmp_path, records)
    assert read_manifest(tmp_path) == records
    assert read_manifest(tmp_path, split="test") == records[1:]


def test_manifest_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(DataError, match="captions.jsonl"):
        read_manifest(tmp_path)
    (tmp_path / "captions.jsonl").write_text('{"path": "a.wav"}\n{not json}\n')
    with pytest.raises(DataError, match=":2:"):
        read_manifest(tmp_path)
    with pytest.raises(DataError, match="split"):
        read_manifest(tmp_path, split="training")


def test_parse_filter():
    assert parse_filter("instrument=piano, mode=minor") == {"instrument": "piano", "mode": "minor"}
    assert parse_filter("") == {}
    with pytest.raises(DataError, match="tag=value"):
        parse_filter("piano")


def test_window_crop_and_pad():
    x = torch.arange(10.0)
    a, m = window(x, 4, "start")
    assert a.tolist() == [0, 1, 2, 3] and m.all()
    a, m = window(x, 4, "center")
    assert a.tolist() == [3, 4, 5, 6]
    a, m = window(x, 4, "random", torch.Generator().manual_seed(0))
    assert a.shape == (4,) and (a[1:] - a[:-1] == 1).all()
    a, m = window(x, 12, "random")
    assert a.shape == (12,) and m.sum() == 10 and not m[10:].any() and (a[10:] == 0).all()


def test_dataset_items_resampling_windows(tiny_corpus):
    ds = CaptionedAudioDataset(tiny_corpus, split="train", sample_rate=8000, seconds=1.0, crop="start")
    assert len(ds) == 32
    item = ds[0]
    assert item["audio"].shape == (8000,) and item["mask"].all() and item["sample_rate"] == 8000
    assert item["caption"] and item["tags"]["instrument"]
    long = CaptionedAudioDataset(tiny_corpus, split="test", sample_rate=8000, seconds=2.0)
    assert long[0]["mask"].sum() == 12000  # 1.5 s of real audio, 0.5 s padding
    whole = CaptionedAudioDataset(tiny_corpus, split="valid")
    assert whole[0]["audio"].shape == (24000,)
    batch = collate_audio([ds[0], ds[1], long[0]])
    assert batch["audio"].shape == (3, 16000) and batch["mask"].shape == (3, 16000)
    assert batch["mask"][0, 8000:].sum() == 0 and len(batch["captions"]) == 3


def test_dataset_filter(tiny_corpus):
    ds = CaptionedAudioDataset(tiny_corpus, split=None, where={"family": "drums"})
    assert len(ds) > 0 and all(r.tags["family"] == "drums" for r in ds.records)
    ds2 = CaptionedAudioDataset(tiny_corpus, split=None, where=lambda r: r.tags["bpm"] > 120)
    assert all(r.tags["bpm"] > 120 for r in ds2.records)
    with pytest.raises(DataError, match="no usable clips"):
        CaptionedAudioDataset(tiny_corpus, where={"instrument": "theremin"})


def test_unreadable_files_reported_and_skipped_or_raised(tmp_path, tiny_corpus):
    folder = tmp_path / "c"
    shutil.copytree(tiny_corpus, folder)
    records = read_manifest(folder, split="train")
    (folder / records[0].path).write_text("garbage, not audio")
    (folder / records[1].path).unlink()
    ds = CaptionedAudioDataset(folder, split="train")
    assert len(ds) == len(records) - 2
    reasons = {s.path: s.reason for s in ds.skipped}
    assert "does not exist" in reasons[records[1].path] and "not" in reasons[records[0].path]
    with pytest.raises(DataError, match=records[0].path):
        CaptionedAudioDataset(folder, split="train", on_error="raise")


def test_dataset_argument_errors(tiny_corpus):
    with pytest.raises(DataError, match="sample_rate"):
        CaptionedAudioDataset(tiny_corpus, seconds=1.0)
    with pytest.raises(DataError, match="crop"):
        CaptionedAudioDataset(tiny_corpus, crop="middle")


def test_hf_dataset_from_disk_and_audiofolder(tmp_path, tiny_corpus):
    import datasets

    records = read_manifest(tiny_corpus)[:6]
    ds = datasets.Dataset.from_dict({"audio": [str(tiny_corpus / r.path) for r in records],
                                     "caption": [r.caption for r in records],
                                     "label": [r.tags["instrument"] for r in records]})
    ds = ds.cast_column("audio", datasets.Audio())
    ds.save_to_disk(str(tmp_path / "saved"))
    hf = HFAudioDataset(tmp_path / "saved", sample_rate=8000, seconds=1.0)
    item = hf[2]
    assert item["audio"].shape == (8000,) and item["caption"] == records[2].caption
    by_tags = HFAudioDataset(tmp_path / "saved", caption_column=None, tag_columns=("label",))
    assert by_tags[0]["caption"] == records[0].tags["instrument"]
    # an audiofolder: audio files + metadata.jsonl
    af = tmp_path / "af"
    af.mkdir()
    with open(af / "metadata.jsonl", "w") as f:
        for i, r in enumerate(records):
            sf.write(af / f"{i}.wav", np.zeros(800, np.float32) + 0.01 * i, 8000)
            f.write(json.dumps({"file_name": f"{i}.wav", "caption": r.caption}) + "\n")
    hf2 = HFAudioDataset(af)
    assert len(hf2) == 6 and hf2[0]["audio"].shape == (800,)
    with pytest.raises(DataError, match="no column"):
        HFAudioDataset(af, caption_column="text")
    with pytest.raises(DataError, match="could not open"):
        HFAudioDataset("definitely-not/a-local-dataset-xyz")
