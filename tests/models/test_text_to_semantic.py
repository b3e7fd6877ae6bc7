"""TextToSemantic: shapes, ids, errors, persistence, and that a tiny model overfits sentence -> units pairs."""

from __future__ import annotations

import warnings

import pytest
import torch

from soundweave import TextToSemantic
from soundweave.errors import CheckpointError, ConfigError, ShapeError
from soundweave.models.text_to_semantic import PAD
from tests.helpers import check_margin

PAIRS = [
    ("the rain in spain", [3, 3, 4, 4, 4, 7, 1, 1, 9]),
    ("stays mainly", [5, 5, 2, 2, 8, 8, 8]),
    ("in the plain", [6, 6, 6, 1, 4, 4, 0, 0, 2, 2, 3, 3, 3]),
    ("the quick brown fox", [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0]),
    ("a b", [2, 2]),
]


def tiny(**kw):
    return TextToSemantic(dim=32, source_depth=1, target_depth=2, heads=2, dim_head=16, num_semantic_token_ids=10, **kw)


def padded(rows):
    out = torch.full((len(rows), max(map(len, rows))), PAD)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out


def test_overfits_pairs_exact_units_and_eos():
    torch.manual_seed(0)
    model = tiny()
    texts, target = [t for t, _ in PAIRS], padded([u for _, u in PAIRS])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss, parts = model(texts, target)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    check_margin("t2s overfit loss ratio", float(loss.detach()) / first, 0.05)
    units, lengths = model.generate(texts, temperature=0.0, return_lengths=True)
    for i, (_, want) in enumerate(PAIRS):
        assert lengths[i] == len(want), (i, lengths[i], want)  # EOS right after the last unit
        assert units[i, : len(want)].tolist() == want
        assert (units[i, len(want):] == PAD).all()


def test_padding_is_not_a_target_and_eos_is():
    model = tiny()
    target = padded([[1, 2, 3], [4]])
    labels = model.check_targets(target, 2)
    assert labels.tolist() == [[1, 2, 3, 10], [4, 10, PAD, PAD]]  # EOS = num_semantic_token_ids
    _, parts = model(["abc", "d"], target)
    assert parts["tokens"] == 6  # 4 units + 2 EOS, the two pads are not counted
    # the loss of the short item does not depend on what the padded positions would have held
    torch.manual_seed(0)
    a, _ = model(["d"], torch.tensor([[4]]))
    b, _ = model(["d"], torch.tensor([[4, PAD, PAD, PAD]]))
    assert torch.allclose(a, b, atol=1e-6)


def test_whole_model_trains():
    model = tiny()
    loss, _ = model(["hello"], torch.tensor([[1, 2]]))
    loss.backward()
    frozen = [n for n, p in model.named_parameters() if p.grad is None or not p.requires_grad]
    assert frozen == []


def test_same_seed_same_units_and_length_cap():
    model = tiny()
    a = model.generate(["some words", "more"], seed=3, max_length=20)
    b = model.generate(["some words", "more"], seed=3, max_length=20)
    assert torch.equal(a, b) and a.shape[1] <= 20


def test_required_arguments_openai_tokenizer_warns_once(tmp_path):
    import soundweave.models.text_to_semantic as mod

    mod._WARNED_OPENAI[0] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = TextToSemantic(dim=32, source_depth=1, target_depth=1, num_text_token_ids=50000,
                           num_semantic_token_ids=20, use_openai_tokenizer=True, heads=2, dim_head=16)
        TextToSemantic(dim=32, source_depth=1, target_depth=1, num_text_token_ids=50000,
                       num_semantic_token_ids=20, use_openai_tokenizer=True, heads=2, dim_head=16)
    messages = [str(w.message) for w in caught if "OpenAI" in str(w.message)]
    assert len(messages) == 1 and "UTF-8 bytes" in messages[0]
    assert a.text_embed.num_embeddings == 50000
    a.save_pretrained(tmp_path / "m")
    b = TextToSemantic(dim=32, source_depth=1, target_depth=1, num_text_token_ids=50000, num_semantic_token_ids=20,
                       use_openai_tokenizer=True, heads=2, dim_head=16)
    assert b.load(tmp_path / "m") is b
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    c = TextToSemantic.from_pretrained(tmp_path / "m")
    assert torch.equal(c.generate(["x y"], seed=0, max_length=5), a.generate(["x y"], seed=0, max_length=5))


def test_bad_inputs(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="another architecture"):
        TextToSemantic(dim=64, source_depth=1, target_depth=2, heads=2, dim_head=16,
                       num_semantic_token_ids=10).load(tmp_path / "m")
    with pytest.raises(CheckpointError, match="does not exist"):
        model.load("/nonexistent/folder")
    with pytest.raises(ShapeError, match="empty"):
        model.generate([""])
    with pytest.raises(ShapeError, match="must lie in"):
        model(["abc"], torch.tensor([[1, 10, 2]]))  # EOS (10) is allowed only at the end
    with pytest.raises(ShapeError, match="must lie in"):
        model(["abc"], torch.tensor([[11]]))
    with pytest.raises(ShapeError, match="3 target sequences for 1"):
        model(["abc"], [[1], [2], [3]])
    with pytest.raises(ConfigError, match="dim"):
        TextToSemantic(dim=0)
    with pytest.raises(ConfigError, match="source_type"):
        model.generate(["a"], source_type="speech")
