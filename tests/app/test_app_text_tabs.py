"""The "Text to music" (MusicLM) and "Text to speech" tabs: in-process handlers on tiny real models, their bad
inputs, and the same events through gradio_client on the served app."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch
from gradio_client import Client, handle_file

from tests.app.test_app_handlers import audio_of, check_outputs
from tests.app.tiny_models import SR, TTS_TEXTS, write_tone

pytestmark = pytest.mark.usefixtures("one_thread")

PLAYERS = 8  # both tabs: up to 8 samples / utterances
HOP = 320  # the tiny TTS codec's samples per frame


def music(app, prompt="a slow piano melody", seconds=1.0, samples=3, show_all=False, cond_scale=3.0,
          temperature=0.95, top_k=0, prime=None, seed=0, random_seed=False, model=None, **kw):
    tab = app.soundweave_tabs["text-to-music"]
    model = app.soundweave.default("musiclm") if model is None else model
    return tab.generate(model, prompt, seconds, samples, show_all, cond_scale, temperature, top_k, prime, seed,
                        random_seed, **kw)


def speech(app, text, voice=None, steps=0, temperature=1.0, semantic_temperature=0.0, seed=0, random_seed=False,
           model=None, **kw):
    tab = app.soundweave_tabs["text-to-speech"]
    model = app.soundweave.default("tts") if model is None else model
    return tab.speak(model, text, voice, steps, temperature, semantic_temperature, seed, random_seed, **kw)


# -- text to music ---------------------------------------------------------------------------------------------
def test_text_to_music_gives_the_best_of_n_with_every_score(app):
    out = music(app, samples=3, seed=5)
    settings = check_outputs(out, PLAYERS, 1, SR, seconds=1.0)
    scores = settings["scores"]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and settings["shown"] == "best"
    assert settings["seed"] == 5 and out[-1] == 5 and settings["prompt"] == "a slow piano melody"
    assert out[PLAYERS][0][1] == f"rank 1 of 3 · MuLaN {scores[0]:.3f}"
    assert set(settings["timings_s"]) == {"semantic_s", "acoustic_s", "decode_s"}


def test_text_to_music_returns_all_samples_sorted_by_their_mulan_score(app):
    from soundweave.pipelines.musiclm import rerank

    out = music(app, samples=4, show_all=True, seed=2)
    settings = check_outputs(out, PLAYERS, 4, SR, seconds=1.0)
    scores = settings["scores"]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    assert [c for _, c in out[PLAYERS]] == [f"rank {i + 1} of 4 · MuLaN {s:.3f}" for i, s in enumerate(scores)]
    # the files shown are the clips scored: MuLaN on the written wavs gives the scores listed, in that order
    musiclm = app.soundweave.cache.get("musiclm", app.soundweave.default("musiclm"), lambda: None)
    audio = torch.stack([torch.from_numpy(audio_of(w)[0]) for w in out[:4]])
    again = rerank(musiclm.scorer, audio, SR, "a slow piano melody")
    assert np.allclose(again.numpy(), scores, atol=2e-3)
    # the best-only answer of the same seed is rank 1 of this one
    best = music(app, samples=4, seed=2)
    assert np.array_equal(audio_of(best[0])[0], audio_of(out[0])[0]) and best[PLAYERS + 2]["scores"] == scores


def test_text_to_music_same_seed_same_music_and_another_seed_differs(app):
    a, b, c = music(app, seed=7), music(app, seed=7), music(app, seed=8)
    assert np.array_equal(audio_of(a[0])[0], audio_of(b[0])[0])
    assert not np.array_equal(audio_of(a[0])[0], audio_of(c[0])[0])
    rnd = music(app, samples=1, random_seed=True)
    assert rnd[-1] == rnd[PLAYERS + 2]["seed"]  # a random seed is shown back
    longer = music(app, seconds=2.5, samples=1)
    check_outputs(longer, PLAYERS, 1, SR, seconds=2.5)


def test_text_to_music_continues_an_uploaded_clip(app, clips):
    out = music(app, seconds=2.5, samples=2, prime=str(clips["tone"]))
    settings = check_outputs(out, PLAYERS, 1, SR, seconds=2.5)
    assert settings["continued"] == "tone.wav"
    plain = music(app, seconds=2.5, samples=2)
    assert not np.array_equal(audio_of(out[0])[0], audio_of(plain[0])[0])


def test_text_to_music_reports_each_stage_and_stops(app):
    seen = []

    def progress(value, desc=None, unit=None):
        seen.append((value, desc))

    music(app, samples=2, progress=progress)
    stages = [d for v, d in seen if isinstance(v, tuple)]
    assert list(dict.fromkeys(stages)) == ["semantic tokens", "SoundStorm passes", "MuLaN rerank"]
    semantic = [v for v, d in seen if d == "semantic tokens"]
    assert semantic[-1][0] == semantic[-1][1] == 25  # 1 s at the tokenizer's 25 tokens/s, one step per token

    def stop_early(value, desc=None, unit=None):
        if isinstance(value, tuple) and value[0] == 3:
            app.soundweave.jobs.stop(None, "text-to-music")

    with pytest.raises(gr.Error) as info:
        music(app, samples=2, progress=stop_early)
    assert info.value.title == "Stopped"


# -- text to speech --------------------------------------------------------------------------------------------
def test_text_to_speech_speaks_each_line_and_a_longer_text_is_longer(app):
    out = speech(app, "\n".join(TTS_TEXTS) + "\n\n", seed=3)
    settings = check_outputs(out, PLAYERS, 3, SR)
    lengths = [len(audio_of(w)[0]) for w in out[:3]]
    # the tiny TextToSemantic learned one unit per two characters; 2 frames per unit (ratio 2), 320 samples each
    assert lengths == [len(t) // 2 * 2 * HOP for t in TTS_TEXTS] and lengths[0] < lengths[1] < lengths[2]
    assert [u["text"] for u in settings["utterances"]] == list(TTS_TEXTS)
    assert [u["seconds"] for u in settings["utterances"]] == [n / SR for n in lengths]
    assert out[-1] == 3 and settings["voice_prompt"] is None
    assert [c for _, c in out[PLAYERS]][0] == "1: a cat"


def test_text_to_speech_same_seed_same_audio(app):
    a = speech(app, TTS_TEXTS[1], seed=4)
    b = speech(app, TTS_TEXTS[1], seed=4)
    c = speech(app, TTS_TEXTS[1], seed=5)
    assert np.array_equal(audio_of(a[0])[0], audio_of(b[0])[0])
    assert not np.array_equal(audio_of(a[0])[0], audio_of(c[0])[0])
    # a line gives the same audio whatever lines surround it (each line is spoken on its own, same seed)
    both = speech(app, f"{TTS_TEXTS[0]}\n{TTS_TEXTS[1]}", seed=4)
    assert np.array_equal(audio_of(both[1])[0], audio_of(a[0])[0])


def test_text_to_speech_uses_the_first_3_s_of_the_voice(app, tmp_path):
    long_voice = write_tone(tmp_path / "my-voice.wav", seconds=5.0, sr=44100, freq=200.0)
    out = speech(app, TTS_TEXTS[1], voice=str(long_voice), seed=1)
    settings = check_outputs(out, PLAYERS, 1, SR)
    assert settings["voice_prompt"] == "my-voice.wav" and settings["voice_prompt_seconds"] == 3.0
    prompt_wav = next(f for f in out[PLAYERS + 1] if f.endswith("speech-voice-prompt.wav"))
    assert len(audio_of(prompt_wav)[0]) == 3 * SR
    # the prompt is not part of the answer: the speech has the text's length, and the voice changes it
    plain = speech(app, TTS_TEXTS[1], seed=1)
    assert len(audio_of(out[0])[0]) == len(audio_of(plain[0])[0]) == len(TTS_TEXTS[1]) // 2 * 2 * HOP
    assert not np.array_equal(audio_of(out[0])[0], audio_of(plain[0])[0])


def test_text_to_speech_progress_counts_soundstorm_passes(app):
    seen = []

    def progress(value, desc=None, unit=None):
        seen.append((value, desc))

    speech(app, f"{TTS_TEXTS[0]}\n{TTS_TEXTS[2]}", steps=3, progress=progress)
    passes = [v for v, d in seen if isinstance(v, tuple)]
    assert passes[-1] == (8, 8)  # 2 lines x (3 + 1) passes, counted together
    assert [d for v, d in seen if isinstance(d, str) and d.startswith("utterance")] == [
        "utterance 1/2: text to units", "utterance 2/2: text to units"]

    def stop_at_first_pass(value, desc=None, unit=None):
        if isinstance(value, tuple):
            app.soundweave.jobs.stop(None, "text-to-music")  # the other text tab's Stop leaves this job running
            app.soundweave.jobs.stop(None, "text-to-speech")

    with pytest.raises(gr.Error) as info:
        speech(app, f"{TTS_TEXTS[0]}\n{TTS_TEXTS[2]}", steps=3, progress=stop_at_first_pass)
    assert info.value.title == "Stopped" and "Stop button" in info.value.message


# -- bad input -------------------------------------------------------------------------------------------------
def _folder(app, kind):
    return app.soundweave.default(kind)


BAD_MUSIC = [
    (dict(prompt=""), "type a text prompt"),
    (dict(prompt="   "), "type a text prompt"),
    (dict(prompt="piano " * 80), "at most 300 are taken"),
    (dict(seconds=0.1), "seconds must be a number between 0.5 and 30"),
    (dict(seconds=120), "seconds must be a number between 0.5 and 30"),
    (dict(samples=0), "samples must be a whole number between 1 and 8"),
    (dict(samples=9), "samples must be a whole number between 1 and 8"),
    (dict(model=""), "tasks.py demo --only mulan,musiclm"),
    (dict(model="/no/such/musiclm"), "neither an existing folder nor a hub id"),
    (dict(model="codec"), "is not a MusicLM folder"),
    (dict(model="soundstorm"), "is not a MusicLM folder"),
    (dict(model="nobody/musiclm"), "loads from a local folder of its parts, not from a hub id"),
    (dict(prime="tone44k", seconds=2.0), "ask for more seconds than that"),
    (dict(prime="silence", seconds=2.0), "silence.wav is silent"),
    (dict(prime="not_audio", seconds=2.0), "notes.wav is not a readable audio file"),
]


@pytest.mark.parametrize("kwargs,message", BAD_MUSIC, ids=[f"music-{i}" for i in range(len(BAD_MUSIC))])
def test_bad_text_to_music_input_is_a_one_line_error(app, clips, kwargs, message):
    kwargs = dict(kwargs)
    if kwargs.get("model") in ("codec", "soundstorm"):
        kwargs["model"] = _folder(app, kwargs["model"])
    if "prime" in kwargs:
        kwargs["prime"] = str(clips[kwargs["prime"]])
    with pytest.raises(gr.Error) as info:
        music(app, **kwargs)
    text = info.value.message
    assert message in text and "\n" not in text and "Traceback" not in text


BAD_SPEECH = [
    (dict(text=""), "type the text to speak"),
    (dict(text=" \n\n  "), "type the text to speak"),
    (dict(text="\n".join(["hello"] * 9)), "the text has 9 lines; at most 8"),
    (dict(text="hello\n" + "word " * 70), "line 2 is too long (349 characters, at most 300)"),
    (dict(model=""), "tasks.py demo --only speech"),
    (dict(model="/no/such/tts"), "neither an existing folder nor a hub id"),
    (dict(model="codec"), "holds a SoundStream, not a text-to-speech SoundStorm"),
    (dict(model="soundstorm"), "has no TextToSemantic attached"),
    (dict(model="musiclm"), "not a text-to-speech SoundStorm"),
    (dict(model="nobody/no-such-tts"), "HF_HUB_OFFLINE is set"),
    (dict(voice="short"), "needs at least 1 s of audio"),
    (dict(voice="tone44k", steps=-1), "steps must be a whole number"),
    (dict(voice="silence"), "silence.wav is silent"),
    (dict(voice="not_audio"), "notes.wav is not a readable audio file"),
    (dict(voice="long"), "at most 60 s"),
]


@pytest.mark.parametrize("kwargs,message", BAD_SPEECH, ids=[f"speech-{i}" for i in range(len(BAD_SPEECH))])
def test_bad_text_to_speech_input_is_a_one_line_error(app, clips, kwargs, message):
    kwargs = dict(kwargs)
    kwargs.setdefault("text", "the old clock is here")
    if kwargs.get("model") in ("codec", "soundstorm", "musiclm"):
        kwargs["model"] = _folder(app, kwargs["model"])
    if "voice" in kwargs:
        kwargs["voice"] = str(clips[kwargs["voice"]])
    with pytest.raises(gr.Error) as info:
        speech(app, **kwargs)
    text = info.value.message
    assert message in text and "\n" not in text and "Traceback" not in text and "/tmp/gradio" not in text


def test_a_musiclm_folder_missing_a_part_says_which(app, models_dir, tmp_path):
    import shutil

    broken = tmp_path / "musiclm"
    shutil.copytree(models_dir / "musiclm" / "model", broken)
    shutil.rmtree(broken / "soundstorm")
    with pytest.raises(gr.Error, match="has no soundstorm folder"):
        music(app, model=str(broken))
    shutil.rmtree(broken / "mulan_quantizer")
    (broken / "musiclm.json").unlink()
    with pytest.raises(gr.Error, match="is not a MusicLM folder"):
        music(app, model=str(broken))


def test_a_line_too_long_for_the_model_is_refused(app, models_dir, tmp_path):
    """A model whose text encoder takes fewer tokens than the tab's character limit: the model's limit rules."""
    from soundweave import SoundStorm

    model = SoundStorm.from_pretrained(models_dir / "speech" / "tts")
    config = json.loads((models_dir / "speech" / "tts" / "config.json").read_text())
    config["text_to_semantic"]["max_source_len"] = 16
    model.save_pretrained(tmp_path / "short-tts")
    (tmp_path / "short-tts" / "config.json").write_text(json.dumps(config))
    ok = speech(app, "a cat", model=str(tmp_path / "short-tts"))
    assert ok[0] is not None
    with pytest.raises(gr.Error, match="line 1 is too long for this model"):
        speech(app, "the old clock is here", model=str(tmp_path / "short-tts"))


# -- through the API -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def test_the_api_takes_the_documented_parameters(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in api["/text_to_music"]["parameters"]] == [
        "model", "prompt", "seconds", "samples", "show_all", "cond_scale", "temperature", "top_k", "prime", "seed",
        "random_seed"]
    assert [p["parameter_name"] for p in api["/text_to_speech"]["parameters"]] == [
        "model", "text", "voice", "steps", "temperature", "semantic_temperature", "seed", "random_seed"]
    assert {"/text_to_music_stop", "/text_to_speech_stop"} <= set(api)


def test_text_to_music_through_the_api(client, models_dir):
    *wavs, gallery, files, settings, seed = client.predict(
        str(models_dir / "musiclm" / "model"), "fast rock drums", 1.0, 3, True, 3.0, 0.95, 0, None, 11, False,
        api_name="/text_to_music")
    assert len(wavs) == PLAYERS and all(wavs[:3]) and not any(wavs[3:]) and seed == 11
    for wav in wavs[:3]:
        data, sr = sf.read(wav)
        assert sr == SR and len(data) == SR and np.abs(data).max() > 0
    assert settings["scores"] == sorted(settings["scores"], reverse=True) and len(gallery) == 3
    assert sum(f.endswith(".json") for f in files) == 1
    with pytest.raises(Exception, match="type a text prompt"):
        client.predict(str(models_dir / "musiclm" / "model"), " ", 1.0, 1, False, 3.0, 0.95, 0, None, 0, False,
                       api_name="/text_to_music")
    with pytest.raises(Exception, match="greater than maximum value 30"):  # the slider's own bound, in the API too
        client.predict(str(models_dir / "musiclm" / "model"), "fast rock drums", 99, 1, False, 3.0, 0.95, 0, None, 0,
                       False, api_name="/text_to_music")


def test_text_to_speech_through_the_api(client, models_dir, clips):
    model = str(models_dir / "speech" / "tts")
    *wavs, gallery, files, settings, seed = client.predict(
        model, f"{TTS_TEXTS[0]}\n{TTS_TEXTS[2]}", handle_file(str(clips["tone44k"])), 0, 1.0, 0.0, 2, False,
        api_name="/text_to_speech")
    assert all(wavs[:2]) and not any(wavs[2:]) and seed == 2 and len(gallery) == 2
    lengths = [len(sf.read(w)[0]) for w in wavs[:2]]
    assert lengths == [len(t) // 2 * 2 * HOP for t in (TTS_TEXTS[0], TTS_TEXTS[2])]
    assert settings["voice_prompt"] == "tone-44k.wav" and settings["voice_prompt_seconds"] == 2.5
    with pytest.raises(Exception, match="type the text to speak"):
        client.predict(model, "  ", None, 0, 1.0, 0.0, 0, False, api_name="/text_to_speech")
    with pytest.raises(Exception, match="needs at least 1 s of audio"):
        client.predict(model, "a cat", handle_file(str(clips["short"])), 0, 1.0, 0.0, 0, False,
                       api_name="/text_to_speech")
    client.predict(api_name="/text_to_speech_stop")  # nothing running: a no-op, and the next request works
    again = client.predict(model, "a cat", None, 0, 1.0, 0.0, 2, False, api_name="/text_to_speech")
    assert len(sf.read(again[0])[0]) == len("a cat") // 2 * 2 * HOP


def test_outputs_are_written_where_the_settings_say(app):
    out = speech(app, "a cat")
    folder = Path(out[0]).parent
    assert folder.parent == app.soundweave.outputs.root and folder.name.split("-", 2)[2].startswith("text-to-speech")
    assert json.loads((folder / "speech-settings.json").read_text())["utterances"][0]["wav"] == Path(out[0]).name
