"""Speech SoundStorm data: unit-aligned crops and the voice-prompt layout."""

from __future__ import annotations

import torch

from soundweave.training.speech import SpeechCodeDataset, collate_speech, make_speech_step_fn
from soundweave.training.text_to_semantic import collate_text_units


def test_prompt_layout_puts_another_clip_of_the_same_voice_in_front_with_pad_units():
    codes = [torch.full((8, 2), i, dtype=torch.long) for i in range(3)]
    units = [torch.full((4,), 10 + i, dtype=torch.long) for i in range(3)]
    data = SpeechCodeDataset(codes, units, ratio=2, frames=None, voices=["a", "b", "a"], prompt_units=2,
                             prompt_prob=1.0, pad_id=-1)
    torch.manual_seed(0)
    item = data[0]
    assert item["codes"].shape == (12, 2) and item["units"].shape == (6,)
    assert (item["codes"][:4] == 2).all() and (item["codes"][4:] == 0).all()  # clip 2 (same voice "a") in front
    assert item["units"].tolist() == [-1, -1, 10, 10, 10, 10]
    alone = data[1]  # voice "b" has no other clip: no prompt
    assert alone["codes"].shape == (8, 2) and (alone["units"] == 11).all()


def test_crops_start_on_unit_boundaries_and_collate_pads():
    codes = [torch.arange(20).repeat(2, 1).T.contiguous(), torch.arange(6).repeat(2, 1).T.contiguous()]
    units = [torch.arange(10), torch.arange(3)]
    data = SpeechCodeDataset(codes, units, ratio=2, frames=9)  # 9 -> 8 frames = 4 units
    for _ in range(10):
        item = data[0]
        assert item["codes"].shape == (8, 2)
        assert item["codes"][0, 0] == 2 * item["units"][0]  # frame 2u carries unit u
    batch = collate_speech([data[0], data[1]])
    assert batch["codes"].shape == (2, 8, 2) and batch["units"].shape == (2, 4)
    assert batch["mask"][1].tolist() == [True] * 6 + [False] * 2 and batch["units"][1, 3] == -1
    text = collate_text_units([{"text": "a", "units": torch.tensor([1, 2])}, {"text": "b", "units": torch.tensor([3])}])
    assert text["target"].tolist() == [[1, 2], [3, -1]] and text["texts"] == ["a", "b"]


def test_step_fn_blanks_only_a_prefix():
    seen = {}

    class Probe(torch.nn.Module):
        training = True

        class net:  # noqa: N801 - stands in for model.net
            class config:  # noqa: N801
                semantic_pad_id = -1

        def forward(self, codes, cond_semantic_token_ids=None, mask=None):
            seen["units"] = cond_semantic_token_ids
            return torch.zeros(()), {}

    torch.manual_seed(0)
    units = torch.arange(1, 41).repeat(64, 1)
    make_speech_step_fn(prompt_blank_prob=1.0)(Probe(), {"codes": None, "mask": None, "units": units})
    out = seen["units"]
    for row in out:
        blanked = (row == -1).int()
        assert blanked.sum() <= 20 and (blanked.diff() <= 0).all()  # a prefix, at most half
    assert (out == -1).any()


def test_init_from_refuses_a_network_or_size_of_its_own_before_any_work(tmp_path):
    import pytest

    from soundweave.errors import ConfigError
    from soundweave.training.speech import train_speech_soundstorm

    for extra in ({"dim": 32}, {"depth": 2}, {"net": object()}):
        with pytest.raises(ConfigError, match="init_from fixes the network"):
            train_speech_soundstorm(tmp_path / "data", tmp_path / "codec", tmp_path / "out", init_from=tmp_path,
                                    **extra)
    assert not (tmp_path / "out").exists()


def test_a_given_network_whose_codes_do_not_match_the_codec_is_refused_before_any_work(tmp_path):
    import pytest

    from soundweave import ConformerWrapper, SpectralCodec
    from soundweave.data.speech import PHONEMES
    from soundweave.errors import ConfigError
    from soundweave.training.speech import train_speech_soundstorm

    codec = SpectralCodec(num_quantizers=2, codebook_size=16, n_mels=32, griffin_lim_iters=2)
    net = ConformerWrapper(codebook_size=16, num_quantizers=3, conformer=dict(dim=16, depth=1, heads=2, dim_head=8),
                           num_semantic_token_ids=len(PHONEMES), semantic_ratio=2.0)
    with pytest.raises(ConfigError, match="3 x 16"):
        train_speech_soundstorm(tmp_path / "data", codec, tmp_path / "out", net=net)
    assert not (tmp_path / "out").exists()
