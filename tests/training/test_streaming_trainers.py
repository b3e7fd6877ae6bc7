"""Trainers on streamed WebDataset shards (one process): SoundStorm on stored codes, mel diffusion with classes."""

from __future__ import annotations

import json

import pytest
import torch

from soundweave import SoundStream
from soundweave.data.shards import write_shards
from soundweave.errors import ConfigError, DataError
from soundweave.training.mel_diffusion import MelDiffusionTrainConfig, train_mel_diffusion
from soundweave.training.soundstorm import train_soundstorm

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_codec(seed=0):
    torch.manual_seed(seed)
    return SoundStream(sample_rate=16000, channels=4, channel_mults=(1, 2, 4), strides=(4, 8, 10), codebook_dim=16,
                       codebook_size=32, rq_num_quantizers=3, attn_depth=0).eval()


def test_soundstorm_trains_on_the_codes_stored_in_shards(tiny_corpus, tmp_path):
    codec = tiny_codec()
    write_shards(tiny_corpus, tmp_path / "shards", shard_size=8, codec=codec)
    result = train_soundstorm(str(tmp_path / "shards"), codec, tmp_path / "run", steps=12, batch_size=8,
                              seconds=1.0, preset="tiny", dim=32, depth=1, lr=3e-3, warmup_steps=0, progress=False,
                              eval_every=12)
    assert result.train.step == 12 and result.num_clips == 32
    assert not (tmp_path / "run" / "codes").exists()  # nothing re-encoded: the stream's codes were used
    assert "valid_accuracy" in result.metrics and (tmp_path / "run" / "model.safetensors").is_file()
    losses = result.train.losses
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4
    with pytest.raises(DataError, match="another codec"):
        train_soundstorm(str(tmp_path / "shards"), tiny_codec(seed=1), tmp_path / "run2", steps=1, progress=False)
    write_shards(tiny_corpus, tmp_path / "plain", shard_size=8)
    with pytest.raises(DataError, match="carry no codes"):
        train_soundstorm(str(tmp_path / "plain"), codec, tmp_path / "run3", steps=1, progress=False)


def test_mel_diffusion_on_shards_with_class_names_from_the_index(tiny_corpus, tmp_path):
    write_shards(tiny_corpus, tmp_path / "shards", shard_size=8)
    pattern = str(tmp_path / "shards" / "train-{000000..000003}.tar")
    cfg = MelDiffusionTrainConfig(data=pattern, out=str(tmp_path / "run"), resolution=32, hop_length=1024,
                                  channels=(8, 16), steps=4, batch_size=4, class_tag="instrument", progress=False)
    trained = train_mel_diffusion(cfg)
    assert trained.result.step == 4 and len(trained.result.losses) == 4
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    assert trained.pipeline.class_names == index["splits"]["train"]["tags"]["instrument"]  # from shards.json
    assert (tmp_path / "run" / "unet" / "config.json").is_file()
    cfg2 = MelDiffusionTrainConfig(data=f"hf://datasets/{tmp_path}/nothing-here", out=str(tmp_path / "run2"),
                                   resolution=32, steps=1, batch_size=2, class_tag="instrument", progress=False)
    with pytest.raises((ConfigError, DataError)):
        train_mel_diffusion(cfg2)


def test_soundstream_codec_trains_on_shards(tiny_corpus, tmp_path):
    from soundweave.training.codec import train_codec

    write_shards(tiny_corpus, tmp_path / "shards", shard_size=8)
    result = train_codec(str(tmp_path / "shards"), tmp_path / "run", 3, kind="soundstream", preset="tiny",
                         batch_size=4, seconds=0.2, eval_clips=2, progress=False)
    assert result.train.step == 3 and len(result.train.losses) == 3
    assert {"si_sdr", "mel_distance"} <= set(result.final_metrics)  # on the valid stream's first 2 clips
    assert (tmp_path / "run" / "model.safetensors").is_file()
    with pytest.raises(ConfigError, match="SpectralCodec"):
        train_codec(str(tmp_path / "shards"), tmp_path / "run2", 1, kind="spectral", progress=False)
