"""WebDataset shards and HF streaming: writing, reading, splitting over ranks and workers, resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader

from soundweave.data import CaptionedAudioDataset, collate_audio, read_manifest
from soundweave.data.shards import HFStream, ShardStream, is_stream, open_stream, stream_captions, write_shards
from soundweave.errors import ConfigError, DataError
from tests.helpers import invoke_cli, parse_json

SR = 16000


@pytest.fixture(scope="module")
def shards(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_shards(tiny_corpus, out, shard_size=4)
    return out


def train_paths(corpus):
    return sorted(r.path for r in read_manifest(corpus, "train"))


def test_write_shards_index_and_contents(tiny_corpus, shards):
    index = json.loads((shards / "shards.json").read_text())
    records = read_manifest(tiny_corpus)
    for split in ("train", "valid", "test"):
        wanted = [r for r in records if r.split == split]
        info = index["splits"][split]
        assert info["clips"] == len(wanted) == sum(s["clips"] for s in info["shards"])
        assert all(s["clips"] <= 4 for s in info["shards"]) and len(info["shards"]) == -(-len(wanted) // 4)
        assert all((shards / s["name"]).is_file() for s in info["shards"])
    instruments = {str(r.tags["instrument"]) for r in records if r.split == "train"}
    assert index["splits"]["train"]["tags"]["instrument"] == sorted(instruments)


def test_stream_gives_every_clip_once_with_the_manifest_audio(tiny_corpus, shards):
    stream = ShardStream(shards, "train", sample_rate=SR, seed=3)
    items = list(stream)
    assert sorted(i["path"] for i in items) == train_paths(tiny_corpus)
    folder = CaptionedAudioDataset(tiny_corpus, "train", sample_rate=SR)
    by_path = {r.path: i for i, r in enumerate(folder.records)}
    for item in items[:5]:
        ref = folder[by_path[item["path"]]]
        torch.testing.assert_close(item["audio"], ref["audio"])
        assert item["caption"] == ref["caption"] and item["tags"] == ref["tags"]
    assert len(stream) == len(items)


def test_brace_patterns_lists_and_windows(tiny_corpus, shards):
    names = sorted(p.name for p in shards.glob("train-*.tar"))
    last = len(names) - 1
    pattern = str(shards / f"train-{{000000..{last:06d}}}.tar")
    assert is_stream(pattern) and is_stream(shards) and not is_stream(tiny_corpus)
    a = sorted(i["path"] for i in open_stream(pattern, sample_rate=SR, seconds=0.5, crop="start"))
    b = sorted(i["path"] for i in open_stream([str(shards / n) for n in names], sample_rate=SR))
    assert a == b == train_paths(tiny_corpus)
    one = next(iter(open_stream(pattern, sample_rate=SR, seconds=0.5, crop="start")))
    assert one["audio"].shape == (8000,) and one["mask"].all()


def test_epochs_reshuffle_deterministically(shards):
    def order(epoch, seed=0):
        s = ShardStream(shards, "train", sample_rate=SR, seed=seed)
        s.set_epoch(epoch)
        return [i["path"] for i in s]

    assert order(0) == order(0)
    assert order(0) != order(1) and sorted(order(0)) == sorted(order(1))
    assert order(0, seed=1) != order(0)


def test_split_across_ranks_and_workers(tiny_corpus, shards, monkeypatch):
    everything = train_paths(tiny_corpus)
    seen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        stream = ShardStream(shards, "train", sample_rate=SR)
        loader = DataLoader(stream, batch_size=None, num_workers=2)
        paths = [item["path"] for item in loader]
        seen.append(paths)
        assert 0 < len(paths) < len(everything)
    assert not set(seen[0]) & set(seen[1])  # no clip on both ranks
    assert sorted(seen[0] + seen[1]) == everything  # and none left out


def test_resume_continues_where_the_stream_was(shards):
    def batches(skip=0):
        stream = ShardStream(shards, "train", sample_rate=SR, seconds=0.25, crop="start", seed=5)
        stream.set_epoch(2)
        stream.skip_batches(skip, 2)
        loader = DataLoader(stream, batch_size=2, num_workers=2, collate_fn=collate_audio, drop_last=True)
        return [b["paths"] for b in loader]

    full = batches()
    assert len(full) >= 8
    assert batches(skip=3) == full[3:]


def test_trainer_on_a_stream_resumes_to_the_same_losses(shards, tmp_path):
    from soundweave.training import Trainer, TrainerConfig

    def run(out, stop_at=None, resume=False):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(400, 8), torch.nn.Dropout(0.1), torch.nn.Linear(8, 1))
        stream = ShardStream(shards, "train", sample_rate=SR, seconds=0.25, crop="random", seed=0)

        def step(m, batch):
            x = batch["audio"].reshape(batch["audio"].shape[0], 10, 400).mean(1)
            return (m(x * 10).squeeze(-1) - batch["audio"].abs().mean(-1) * 10).pow(2).mean()

        cfg = TrainerConfig(out_dir=str(out), max_steps=14, batch_size=4, lr=1e-2, save_every=5, progress=False,
                            cpu=True)
        return Trainer(model, stream, step, cfg, collate_fn=collate_audio).fit(resume=resume, stop_at=stop_at)

    straight = run(tmp_path / "a")
    assert straight.step == 14  # 32 training clips / batch 4 = 8 steps an epoch: into the second epoch
    first = run(tmp_path / "b", stop_at=5)
    rest = run(tmp_path / "b", resume=True)
    assert first.losses + rest.losses == pytest.approx(straight.losses, abs=1e-6)


def test_hf_streaming_dataset(tiny_corpus, tmp_path, monkeypatch):
    import datasets

    rows = [{"audio": str(tiny_corpus / r.path), "caption": r.caption, "instrument": str(r.tags["instrument"])}
            for r in read_manifest(tiny_corpus, "train")]
    table = tmp_path / "table.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def stream(**kw):
        ds = datasets.load_dataset("json", data_files=str(table), split="train", streaming=True)
        return HFStream(ds, sample_rate=SR, seconds=0.5, crop="start", tag_columns=("instrument",), **kw)

    items = list(stream())
    assert sorted(i["caption"] for i in items) == sorted(r["caption"] for r in rows)
    assert items[0]["audio"].shape == (8000,) and "instrument" in items[0]["tags"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    halves = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        halves.append([i["caption"] for i in stream()])
    assert sorted(halves[0] + halves[1]) == sorted(r["caption"] for r in rows)
    assert len(halves[0]) == len(rows) // 2
    resumed = stream()
    resumed.skip_batches(2, 3)
    assert [i["caption"] for i in resumed] == halves[1][6:]
    with pytest.raises(DataError, match="no column 'text'"):
        HFStream(datasets.load_dataset("json", data_files=str(table), split="train", streaming=True),
                 caption_column="text")


def test_captions_without_decoding(shards, tiny_corpus):
    captions = stream_captions(ShardStream(shards, "train"), limit=5)
    assert len(captions) == 5 and set(captions) <= {r.caption for r in read_manifest(tiny_corpus)}


def test_codes_are_stored_with_a_codec(tiny_corpus, tmp_path):
    from soundweave import SoundStream
    from tests.models.test_codec import TINY

    codec = SoundStream(**{**TINY, "sample_rate": SR}).eval()
    write_shards(tiny_corpus, tmp_path, shard_size=100, splits=["valid"], codec=codec)
    index = json.loads((tmp_path / "shards.json").read_text())
    assert index["codec"]["num_quantizers"] == 3 and list(index["splits"]) == ["valid"]
    item = next(iter(ShardStream(tmp_path, "valid", sample_rate=SR, shuffle=False)))
    with torch.no_grad():
        expected = codec.encode(item["audio"][None])[0]
    assert item["codes"].dtype == torch.int64 and torch.equal(item["codes"], expected.long())


def test_cli_data_shard(tiny_corpus, tmp_path):
    result = invoke_cli("data", "shard", tiny_corpus, "--out", tmp_path / "s", "--shard-size", "200KB")
    assert result.exit_code == 0, result.output
    report = parse_json(result.stdout)
    assert sum(v["clips"] for v in report.values()) == len(read_manifest(tiny_corpus))
    assert all(p.stat().st_size < 400_000 for p in (tmp_path / "s").glob("*.tar"))
    again = invoke_cli("data", "shard", tiny_corpus, "--out", tmp_path / "s")
    assert again.exit_code != 0 and "already holds shards" in str(again.exception)


def test_bad_input(tiny_corpus, shards, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ShardStream(str(shards / "train-{000000..000099}.tar"))
    with pytest.raises(DataError, match="has no shards.json"):
        ShardStream(tmp_path)
    with pytest.raises(DataError, match="not 'holdout'"):
        ShardStream(shards, "holdout")
    with pytest.raises(ConfigError, match="shard size"):
        write_shards(tiny_corpus, tmp_path / "x", shard_size="lots")
    with pytest.raises(DataError, match="sample_rate"):
        ShardStream(shards, seconds=1.0)
    import webdataset as wds

    with wds.TarWriter(str(tmp_path / "bad.tar")) as sink:
        sink.write({"__key__": "a", "json": b'{"caption": "x"}'})
    with pytest.raises(DataError, match="has no audio"):
        list(ShardStream(str(tmp_path / "bad.tar"), sample_rate=SR))


def test_cli_train_mulan_streams_an_hf_dataset(tiny_corpus, tmp_path):
    """`--data hf://datasets/NAME` streams with `datasets` (here NAME is a local folder of jsonl files, offline;
    the hub's 'validation' split serves as 'valid')."""
    folder = tmp_path / "hf"
    folder.mkdir()
    for split, name in (("train", "train"), ("valid", "validation")):
        rows = [{"audio": str(tiny_corpus / r.path), "caption": r.caption} for r in read_manifest(tiny_corpus, split)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = invoke_cli("train", "mulan", "--data", f"hf://datasets/{folder}", "--out", tmp_path / "run",
                        "--text-tower", "scratch", "--size", "tiny", "--steps", 3, "--batch-size", 4, "--seconds", 1,
                        "--eval-every", 3)
    assert result.exit_code == 0, result.output
    report = parse_json(result.stdout)
    assert report["step"] == 3 and report["last_eval"]["clips"] == len(read_manifest(tiny_corpus, "valid"))
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
