"""The app in-process: it builds on a folder of tiny models, every handler returns audio / images of the right
shape with its files and settings, and bad input is a one-line gr.Error with the project's message."""

from __future__ import annotations

import json
import subprocess
import sys
import weakref
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from soundweave.app import API_NAMES
from soundweave.app.jobs import Jobs
from soundweave.app.models import ModelCache, find_models
from tests.app.tiny_models import SR

pytestmark = pytest.mark.usefixtures("one_thread")


def audio_of(path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32")
    return data, sr


def check_outputs(result, players: int, n: int, sr: int, seconds: float | None = None) -> dict:
    """A VariantOutputs result: n wav paths then None, n (png, caption) pairs, files, settings."""
    wavs, gallery, files, settings = result[:players], result[players], result[players + 1], result[players + 2]
    assert all(w is not None for w in wavs[:n]) and all(w is None for w in wavs[n:])
    for wav in wavs[:n]:
        data, rate = audio_of(wav)
        assert rate == sr and data.ndim == 1 and np.isfinite(data).all() and np.abs(data).max() > 0
        if seconds is not None:
            assert abs(len(data) / sr - seconds) < 0.05
    assert len(gallery) == n
    for png, caption in gallery:
        image = Image.open(png)
        assert image.mode == "RGB" and image.height >= 32 and caption
    assert {Path(f).suffix for f in files} >= {".wav", ".png", ".json"}
    saved = json.loads(next(Path(f) for f in files if f.endswith(".json")).read_text())
    assert saved == json.loads(json.dumps(settings, default=str))
    return settings


def test_models_are_found_by_kind_with_readable_labels(models_dir, app):
    found = find_models([models_dir])
    assert {k: [e.label for e in v] for k, v in found.items()} == {
        "mel-diffusion": ["demo-output/mel-diffusion/model"], "mulan": ["demo-output/mulan/run/model"],
        "codec": ["demo-output/codec/model"], "soundstorm": ["demo-output/soundstorm/model"],
        "aligner": ["demo-output/audio2img/run/aligner"],
        "stable-diffusion": ["demo-output/audio2img/stable-diffusion"],
        "corpus": ["demo-output/corpus/synthetic-corpus"], "musiclm": ["demo-output/musiclm/model"],
        "tts": ["demo-output/speech/tts"]}  # a MusicLM folder's parts and a TTS SoundStorm are not listed as others
    assert find_models([models_dir / "nothing-here"]) == {k: [] for k in found}
    assert [p.parent.parent.name for p in app.soundweave.examples] == ["synthetic-corpus"] * 3  # corpus clips


def test_every_event_has_its_documented_api_name(app):
    named = [fn.api_name for fn in app.fns.values() if fn.fn is not None and not fn.api_name.startswith("load_example")]
    assert sorted(named) == sorted(n for names in API_NAMES.values() for n in names)  # gr.Examples adds load_example
    ui_only = {fn.api_name for fn in app.fns.values() if fn.api_visibility == "undocumented"
               and not fn.api_name.startswith("load_example")}
    assert ui_only == {"mel_model_info", "mel_variants", "soundstorm_variants", "refresh_models",
                       "text_to_music_players", "text_to_speech_players"}
    # heavy events share one concurrency group; the queue is configured
    heavy = {fn.api_name: fn for fn in app.fns.values() if fn.api_name in ("mel_sample", "codec", "soundstorm",
                                                                           "text_to_music", "text_to_speech")}
    assert len(heavy) == 5
    assert {fn.concurrency_id for fn in heavy.values()} == {"soundweave-models"}
    assert app._queue.default_concurrency_limit == 1 and app._queue.max_size == 16


def test_every_tab_is_a_working_tab_in_the_page(app):
    from soundweave.app.tabs import TABS, PlannedTab

    tabs = app.soundweave_tabs
    assert list(tabs) == [spec.key for spec in TABS]
    assert [t.title for t in tabs.values()][-2:] == ["Text to music", "Text to speech"]
    assert not any(isinstance(t, PlannedTab) for t in tabs.values())
    assert tabs["text-to-music"].api_names == ["text_to_music", "text_to_music_players", "text_to_music_stop"]
    assert tabs["text-to-speech"].api_names == ["text_to_speech", "text_to_speech_players", "text_to_speech_stop"]
    page = {b.elem_id for b in app.blocks.values() if isinstance(b, gr.Tab)}
    assert {"tab-text-to-music", "tab-text-to-speech"} <= page
    texts = [b.value for b in app.blocks.values() if isinstance(b, gr.Markdown)]
    assert not any("not available yet" in t for t in texts)


def test_a_planned_tab_says_it_is_not_available_and_how_to_get_it():
    from soundweave.app import AppConfig, AppContext
    from soundweave.app.tabs import PlannedTab

    with gr.Blocks() as blocks:
        PlannedTab(AppContext(AppConfig(model_dirs=[], examples=False)), key="later", title="Later", what="X to Y",
                   issue="99").build()
    texts = [b.value for b in blocks.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("Later: not available yet" in t and "issue 99" in t and "How to get it" in t for t in texts)


def test_mel_diffusion_sample_variation_inpaint_continue(app, clips):
    tab = app.soundweave_tabs["mel-diffusion"]
    model = app.soundweave.default("mel-diffusion")
    players = app.soundweave.config.max_variants
    window = 32 * 256 / SR  # tiny model: 32 columns, hop 256
    out = tab.sample(model, "bass", 2.0, 3, 2, 7, False, 0)
    settings = check_outputs(out, players, 2, SR)
    assert settings["seeds"] == [7, 8] and out[-1] == 7 and settings["class"] == "bass"
    again = tab.sample(model, "bass", 2.0, 3, 1, 7, False, 0)
    assert np.array_equal(audio_of(again[0])[0], audio_of(out[0])[0])  # the seed reproduces variant 1
    long = tab.sample(model, "flute", 1.0, 2, 1, 0, False, 1.2)  # > one spectrogram: chained continuation
    check_outputs(long, players, 1, SR, seconds=1.2)
    var = tab.variation(model, "flute", 1.0, 4, 1, 3, False, str(clips["tone44k"]), 0.5)
    assert check_outputs(var, players, 1, SR)["strength"] == 0.5
    inp = tab.inpaint(model, "bass", 1.0, 3, 1, 0, False, str(clips["tone"]), 0.2, 0.1)
    check_outputs(inp, players, 1, SR)
    cont = tab.continue_clip(model, "bass", 1.0, 2, 1, 0, False, str(clips["tone"]), 2.5)
    check_outputs(cont, players, 1, SR, seconds=2.5)
    assert window < 1.5 < 2.5
    rnd = tab.sample(model, "bass", 1.0, 2, 1, 0, True, 0)
    assert rnd[-1] == rnd[players + 2]["seed"]  # a random seed is shown back in the seed box and the settings
    assert tab.model_info(model)["choices"] == ["(no class)", "bass", "flute"]


def test_soundstorm_continues_the_prompt(app, clips):
    tab = app.soundweave_tabs["soundstorm"]
    out = tab.continue_clip(app.soundweave.default("soundstorm"), str(clips["tone44k"]), 0.5, 1.5, 2, 1.0, 2, 4,
                            False)
    settings = check_outputs(out, app.soundweave.config.max_variants, 2, SR, seconds=1.5)
    assert settings["seeds"] == [4, 5] and settings["prompt_seconds"] == 0.5 and settings["passes"] == 2 + 2


def test_soundstorm_ranks_variants_by_mulan_closeness_to_the_prompt(app, clips):
    from soundweave import MuLaN, SoundStorm
    from soundweave.audio import load
    from soundweave.pipelines.continuation import prompt_similarity

    tab, ctx = app.soundweave_tabs["soundstorm"], app.soundweave
    args = (ctx.default("soundstorm"), str(clips["tone44k"]), 0.5, 1.5, 2, 1.0, 3, 4, False)
    plain = tab.continue_clip(*args)
    out = tab.continue_clip(*args, ctx.default("mulan"))
    settings = check_outputs(out, ctx.config.max_variants, 3, SR, seconds=1.5)
    scores = settings["prompt_similarity"]
    assert scores == sorted(scores, reverse=True) and sorted(settings["seeds"]) == [4, 5, 6]
    assert settings["ranked_by"] == ctx.default("mulan") and "prompt_similarity" not in plain[-2]
    # the order is MuLaN's cosine of each seed's continuation (after the prompt's frames) with the prompt
    storm, mulan = SoundStorm.from_pretrained(ctx.default("soundstorm")), MuLaN.from_pretrained(ctx.default("mulan"))
    prompt, _ = load(clips["tone44k"], sr=SR)
    prompt = prompt[: SR // 2]
    hop = storm.soundstream.hop_length
    start = -(-prompt.shape[0] // hop) * hop
    frames = storm.soundstream.seconds_to_frames(1.5)
    clips_by_seed = {s: storm.generate(frames, prompt_audio=prompt[None], steps=2, temperature=1.0, seed=s)[0]
                     for s in (4, 5, 6)}
    direct = prompt_similarity(mulan, prompt, torch.stack([clips_by_seed[s][start: int(1.5 * SR)]
                                                           for s in settings["seeds"]]), SR)
    assert torch.allclose(direct, torch.tensor(scores), atol=2e-3)
    # one variant: nothing to rank
    one = tab.continue_clip(*args[:6], 1, 4, False, ctx.default("mulan"))
    assert "prompt_similarity" not in one[-2]


def test_codec_round_trip_keeps_the_length_and_fewer_levels_lower_the_bitrate(app, clips):
    tab = app.soundweave_tabs["codec"]
    full = tab.round_trip(app.soundweave.default("codec"), str(clips["tone44k"]), 0)
    settings = check_outputs(full, 2, 2, SR, seconds=2.5)
    one = tab.round_trip(app.soundweave.default("codec"), str(clips["tone44k"]), 1)
    assert (settings["levels_kept"], one[4]["levels_kept"]) == (3, 1) and one[4]["bitrate_kbps"] < settings[
        "bitrate_kbps"]
    assert Path(one[1]).name == "tone-44k-decoded-1of3-levels.wav"


def test_mulan_search_and_zero_shot_tags(app, clips):
    tab = app.soundweave_tabs["mulan"]
    model, corpus = app.soundweave.default("mulan"), app.soundweave.default("corpus")
    rows, *players, settings = tab.search(model, corpus, "a slow piano melody", 4)
    assert [r[0] for r in rows] == [1, 2, 3, 4] and settings["clips_searched"] == 6
    assert all(rows[i][1] >= rows[i + 1][1] for i in range(3))
    assert len(players) == 3 and all(audio_of(p)[1] == SR for p in players)
    tags, info = tab.tag(model, str(clips["tone"]), "piano, drums, flute")
    assert set(tags) == {"piano", "drums", "flute"} and abs(sum(tags.values()) - 1) < 1e-5
    assert set(info["cosine"]) == set(tags)


def test_audio_to_image_draws_one_image_per_seed(app, clips):
    tab = app.soundweave_tabs["audio2img"]
    ctx = app.soundweave
    pictures, files, settings, seed = tab.draw(ctx.default("aligner"), ctx.default("stable-diffusion"),
                                              str(clips["tone"]), 2, 3.0, "default", 2, 5, False)
    assert [c for _, c in pictures] == ["seed 5", "seed 6"] and settings["seeds"] == [5, 6] and seed == 5
    assert [Image.open(p).size for p, _ in pictures] == [(32, 32)] * 2  # tiny SD: 16 latents x VAE scale 2
    assert any(f.endswith("-spectrogram.png") for f in files) and any(f.endswith(".json") for f in files)


BAD = [
    ("codec", "not_audio", "not a readable audio file"),
    ("codec", "silence", "is silent"),
    ("codec", "long", "at most 60 s"),
    ("codec", "low_rate", "4000 Hz"),
    ("codec", "short", "needs at least"),
    ("codec", None, "upload a clip first"),
    ("mel", "long", "at most 30 s"),
    ("storm", "silence", "is silent"),
    ("tags", "not_audio", "not a readable audio file"),
    ("a2i", "silence", "is silent"),
]


@pytest.mark.parametrize("tab,clip,message", BAD, ids=[f"{t}-{c}" for t, c, _ in BAD])
def test_bad_uploads_are_a_one_line_gr_error(app, clips, tab, clip, message):
    ctx, tabs = app.soundweave, app.soundweave_tabs
    path = str(clips[clip]) if clip else None
    calls = {
        "codec": lambda: tabs["codec"].round_trip(ctx.default("codec"), path, 0),
        "mel": lambda: tabs["mel-diffusion"].variation(ctx.default("mel-diffusion"), "bass", 1, 2, 1, 0, False, path,
                                                       0.5),
        "storm": lambda: tabs["soundstorm"].continue_clip(ctx.default("soundstorm"), path, 0.5, 1.0, 1, 1.0, 1, 0,
                                                          False),
        "tags": lambda: tabs["mulan"].tag(ctx.default("mulan"), path, "a, b"),
        "a2i": lambda: tabs["audio2img"].draw(ctx.default("aligner"), ctx.default("stable-diffusion"), path, 1, 1,
                                              "default", 1, 0, False),
    }
    with pytest.raises(gr.Error) as info:
        calls[tab]()
    text = info.value.message
    assert message in text and "Traceback" not in text and "\n" not in text
    assert "/tmp/gradio" not in text and (clip is None or Path(path).name in text or clip == "short")


@pytest.mark.parametrize("call,message", [
    (lambda t, c: t["codec"].round_trip("", c, 0), "tasks.py demo --only codec"),
    (lambda t, c: t["codec"].round_trip("/no/such/folder", c, 0), "neither an existing folder nor a hub id"),
    (lambda t, c: t["mel-diffusion"].sample(None, "bass", 1, 3, 1, 0, False, 0), "--only mel-diffusion"),
    (lambda t, c: t["mel-diffusion"].sample("models/mel", "x", 1, 0, 1, 0, False, 0), "steps must be"),
    (lambda t, c: t["mel-diffusion"].sample("models/mel", "x", 1, 3, 9, 0, False, 0), "variants must be"),
    (lambda t, c: t["mulan"].search("", "", "query", 3), "--only mulan"),
    (lambda t, c: t["soundstorm"].continue_clip("x/y", c, 2.0, 1.0, 1, 1, 1, 0, False), "longer than the prompt"),
])
def test_bad_settings_and_missing_models_say_what_to_do(app, clips, call, message):
    with pytest.raises(gr.Error) as info:
        call(app.soundweave_tabs, str(clips["tone"]))
    assert message in info.value.message


def test_unknown_class_and_hub_offline_errors_come_through_as_messages(app, clips):
    tabs, ctx = app.soundweave_tabs, app.soundweave
    with pytest.raises(gr.Error, match="unknown class label 'piano'"):
        tabs["mel-diffusion"].sample(ctx.default("mel-diffusion"), "piano", 1, 2, 1, 0, False, 0)
    with pytest.raises(gr.Error, match="HF_HUB_OFFLINE"):
        tabs["codec"].round_trip("nobody/no-such-codec", str(clips["tone"]), 0)


def test_progress_counts_sampler_steps_and_stop_ends_the_job(app):
    tab = app.soundweave_tabs["mel-diffusion"]
    model = app.soundweave.default("mel-diffusion")
    seen = []

    def progress(value, desc=None, unit=None):
        seen.append(value)

    tab.sample(model, "bass", 1.0, 4, 2, 0, False, 0, progress=progress)
    steps = [v for v in seen if isinstance(v, tuple)]
    assert steps == [(i, 8) for i in range(1, 9)]  # 2 variants x 4 steps, counted together

    def stop_after_two(value, desc=None, unit=None):
        if isinstance(value, tuple) and value[0] == 2:
            app.soundweave.jobs.stop(None, "codec")  # another tab's Stop leaves this job running
            app.soundweave.jobs.stop(None, "mel-diffusion")  # this tab's Stop, same session ("local")

    with pytest.raises(gr.Error) as info:
        tab.sample(model, "bass", 1.0, 50, 4, 0, False, 0, progress=stop_after_two)
    assert info.value.title == "Stopped" and "Stop button" in info.value.message


def test_jobs_are_per_session_and_tab():
    class Request:
        def __init__(self, session_hash):
            self.session_hash = session_hash

    jobs = Jobs()
    a, b, other_tab = jobs.start(Request("a"), scope="mel"), jobs.start(Request("b"), scope="mel"), jobs.start(
        Request("a"), scope="codec")
    jobs.stop(Request("a"), "mel")
    assert a.flag.is_set() and not b.flag.is_set() and not other_tab.flag.is_set()
    assert not jobs.start(Request("a"), scope="mel").flag.is_set()  # a new job of that session starts afresh


def test_cache_holds_one_model_per_kind_and_frees_the_old_one():
    class Model:
        pass

    cache = ModelCache()
    first = cache.get("codec", "a", Model)
    ref = weakref.ref(first)
    assert cache.get("codec", "a", Model) is first and cache.loads == [("codec", "a")]
    del first
    cache.get("codec", "b", Model)
    assert ref() is None and cache.loaded("codec") == "b"
    cache.get("mulan", "m", Model)
    assert cache.loaded("codec") == "b" and cache.loaded("mulan") == "m"


def test_codecs_load_through_load_codec(models_dir, tmp_path):
    from soundweave import SoundStream, SpectralCodec
    from soundweave.app.models import _load_codec

    assert isinstance(_load_codec(str(models_dir / "codec" / "model")), SoundStream)
    SpectralCodec(sample_rate=8000, hop_length=80, n_mels=32, num_quantizers=2, codebook_size=8).save_pretrained(
        tmp_path / "spectral")
    assert isinstance(_load_codec(str(tmp_path / "spectral")), SpectralCodec)


def test_the_app_never_imports_training():
    code = ("import sys; import soundweave.app, soundweave.cli.webapp; "
            "from soundweave.app.tabs import TABS; import importlib; "
            "[importlib.import_module(t.target.partition(':')[0]) for t in TABS]; "
            "bad = [m for m in sys.modules if m.startswith('soundweave.training')]; print(bad); sys.exit(bool(bad))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_rescan_refreshes_every_picker_the_optional_rank_box_too(models_dir, tmp_path):
    import shutil

    from soundweave.app import AppConfig, build_app

    folder = tmp_path / "models"
    shutil.copytree(models_dir / "soundstorm", folder / "soundstorm")  # a SoundStorm, no MuLaN yet
    demo = build_app(AppConfig(model_dirs=[folder], output_dir=tmp_path / "out", examples=False))
    ctx = demo.soundweave
    rank = next(p for kind, what, p, notice in ctx.pickers if kind == "mulan" and notice is None)
    assert rank.label == "Rank by MuLaN" and [v for _, v in rank.choices] == [""]
    refresh = next(fn for fn in demo.fns.values() if fn.api_name == "refresh_models")
    assert [c._id for c in refresh.outputs] == [c._id for _, _, p, n in ctx.pickers for c in (p, n) if c is not None]

    shutil.copytree(models_dir / "mulan", folder / "mulan")  # trained while the app runs, then "Rescan"
    values = [p.value for _, _, p, _ in ctx.pickers]
    at = [c._id for c in refresh.outputs].index(rank._id)  # the rank box's place among the rescan's outputs
    rank_update = refresh.fn(*values)[at]
    found = [v for _, v in ctx.choices("mulan")]
    assert len(found) == 1 and found[0].startswith(str(folder / "mulan"))
    assert [v for _, v in rank_update["choices"]] == ["", *found]
    assert rank_update["value"] == ""  # empty (seed order) stays empty
    picked = [found[0] if p is rank else v for (_, _, p, _), v in zip(ctx.pickers, values, strict=True)]
    assert refresh.fn(*picked)[at]["value"] == found[0]
