"""ClapMuLaN: a tiny random ClapConfig saved to a folder, behind MuLaN's interface; resampling to 48 kHz."""

from __future__ import annotations

import pytest
import torch

from soundweave.errors import CheckpointError, ShapeError
from tests.helpers import tone


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        PreTrainedTokenizerFast,
    )

    torch.manual_seed(0)
    audio = ClapAudioConfig(window_size=4, num_mel_bins=32, spec_size=64, patch_size=2, patch_stride=2, hidden_size=32,
                            patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 2], projection_dim=16)
    text = ClapTextConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=37, projection_dim=16, max_position_embeddings=64)
    folder = tmp_path_factory.mktemp("clap")
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)
    ClapModel(config).save_pretrained(folder)
    ClapFeatureExtractor(feature_size=32, sampling_rate=48000, max_length_s=1, truncation="rand_trunc",
                         padding="repeatpad").save_pretrained(folder)
    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(["a slow piano melody", "fast loud rock drums", "a bright marimba"],
                              trainers.WordLevelTrainer(special_tokens=["<s>", "<pad>", "</s>", "<unk>"]))
    PreTrainedTokenizerFast(tokenizer_object=words, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    return folder


def test_clap_behind_mulans_interface(clap_folder):
    from soundweave import ClapMuLaN

    clap = ClapMuLaN(clap_folder)
    assert clap.sample_rate == 48000 and clap.dim_latent == 16
    audio = torch.stack([tone(220, 1.0), tone(880, 1.0)])
    a = clap.get_audio_latents(audio, sample_rate=16000)
    assert a.shape == (2, 16) and torch.allclose(a.norm(dim=-1), torch.ones(2), atol=1e-5)
    # audio at 16 kHz is resampled to 48 kHz first: the same as handing CLAP the 48 kHz version
    same = clap.get_audio_latents(torch.stack([tone(220, 1.0, 48000), tone(880, 1.0, 48000)]))
    assert float((a * same).sum(-1).min()) > 0.999
    unresampled = clap.get_audio_latents(audio, sample_rate=48000)  # 16 kHz samples taken for 48 kHz ones
    assert float((a * unresampled).sum(-1).min()) < float((a * same).sum(-1).min())
    t = clap.get_text_latents(raw_texts=["a slow piano melody", "fast loud rock drums"])
    assert t.shape == (2, 16) and not torch.allclose(t[0], t[1])
    scores = clap.score(audio, ["a slow piano melody"], sample_rate=16000)
    assert scores.shape == (1, 2) and torch.allclose(scores, t[:1] @ a.t(), atol=1e-5)
    with pytest.raises(ShapeError):
        clap.get_text_latents(raw_texts=[""])


def test_clap_reranks_in_musiclm(clap_folder, tmp_path):
    from soundweave import ClapMuLaN, MusicLM
    from soundweave.audio.io import resample
    from tests.pipelines.test_musiclm import Parts

    clap = ClapMuLaN(clap_folder)
    parts = Parts()
    out = MusicLM(parts.audio_lm, parts.quantizer, scorer=clap)("a bright marimba", num_samples=3, seconds=1.0, seed=0,
                                                                return_all=True)
    direct = (clap.get_audio_latents(resample(out.audio, 16000, 48000)) @ clap.get_text_latents(
        raw_texts=["a bright marimba"]).t())[:, 0]
    assert torch.allclose(out.scores, direct, atol=1e-5) and torch.all(out.scores[:-1] >= out.scores[1:])
    # saved and loaded as a folder
    clap.save_pretrained(tmp_path / "copy")
    again = ClapMuLaN.from_pretrained(tmp_path / "copy")
    assert torch.allclose(again.get_text_latents(raw_texts=["a slow piano melody"]),
                          clap.get_text_latents(raw_texts=["a slow piano melody"]))
    with pytest.raises(CheckpointError):
        ClapMuLaN(tmp_path / "missing")


def test_clap_inside_mulan_embed_quantizer(clap_folder, tmp_path):
    from soundweave import ClapMuLaN, MuLaNEmbedQuantizer

    quantizer = MuLaNEmbedQuantizer(ClapMuLaN(clap_folder), conditioning_dims=(8, 12),
                                    namespaces=("semantic", "coarse"), rq_num_quantizers=2, codebook_size=4)
    quantizer.fit_codebooks(torch.nn.functional.normalize(torch.randn(32, 16), dim=-1))
    quantizer.eval()
    conds, ids = quantizer(raw_texts=["a slow piano melody"], namespace="coarse", return_embed_ids=True)
    assert conds.shape == (1, 2, 12) and ids.shape == (1, 2)
    audio_conds = quantizer(wavs=tone(440, 1.0)[None], sample_rate=16000, namespace="semantic")
    assert audio_conds.shape == (1, 2, 8)
    quantizer.save_pretrained(tmp_path / "q")
    assert (tmp_path / "q" / "clap" / "config.json").is_file()
    again = MuLaNEmbedQuantizer.from_pretrained(tmp_path / "q")
    assert type(again.mulan).__name__ == "ClapMuLaN"
    assert torch.equal(again.get_embed_ids(raw_texts=["a slow piano melody"]), ids)
