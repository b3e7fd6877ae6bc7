"""The app served on a loopback port and driven with gradio_client, the documented programmatic use."""

from __future__ import annotations

import threading
import time

import pytest
import soundfile as sf
from gradio_client import Client, handle_file

from soundweave.app import API_NAMES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def test_the_api_lists_every_documented_endpoint(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    ui_only = {"mel_model_info", "mel_variants", "soundstorm_variants", "refresh_models", "text_to_music_players",
               "text_to_speech_players"}
    assert set(api) == {f"/{name}" for names in API_NAMES.values() for name in names if name not in ui_only}
    assert [p["parameter_name"] for p in api["/codec"]["parameters"]] == ["model", "audio", "levels"]
    assert [p["parameter_name"] for p in api["/mel_sample"]["parameters"]] == [
        "model", "class_label", "guidance", "steps", "variants", "seed", "random_seed", "seconds"]


def test_upload_a_wav_and_get_audio_back(client, models_dir, clips):
    original, decoded, gallery, files, settings = client.predict(
        str(models_dir / "codec" / "model"), handle_file(str(clips["tone"])), 0, api_name="/codec")
    a, sr = sf.read(original)
    b, sr_b = sf.read(decoded)
    assert sr == sr_b == 16000 and len(a) == len(b) == 24000 and abs(b).max() > 0
    assert len(gallery) == 2 and settings["levels_kept"] == 3 and len(files) == 5


def test_soundstorm_rank_by_is_optional_for_scripts(client, models_dir, clips):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    params = api["/soundstorm"]["parameters"]
    assert [p["parameter_name"] for p in params][-1] == "rank_by" and params[-1]["parameter_has_default"]
    model, prompt = str(models_dir / "soundstorm" / "model"), handle_file(str(clips["tone"]))
    old_style = client.predict(model, prompt, 0.5, 1.0, 2, 1.0, 2, 3, False, api_name="/soundstorm")  # 9 inputs
    assert old_style[-2]["seeds"] == [3, 4] and "prompt_similarity" not in old_style[-2]
    ranked = client.predict(model, prompt, 0.5, 1.0, 2, 1.0, 2, 3, False, str(models_dir / "mulan" / "run" / "model"),
                            api_name="/soundstorm")
    scores = ranked[-2]["prompt_similarity"]
    assert len(scores) == 2 and scores[0] >= scores[1] and sorted(ranked[-2]["seeds"]) == [3, 4]


def test_a_bad_upload_errors_and_the_next_good_request_works(client, models_dir, clips):
    codec = str(models_dir / "codec" / "model")
    with pytest.raises(Exception, match="notes.wav is not a readable audio file"):
        client.predict(codec, handle_file(str(clips["not_audio"])), 0, api_name="/codec")
    with pytest.raises(Exception, match="is silent"):
        client.predict(codec, handle_file(str(clips["silence"])), 0, api_name="/codec")
    result = client.predict(codec, handle_file(str(clips["tone"])), 1, api_name="/codec")
    assert result[4]["levels_kept"] == 1


def test_two_concurrent_clients_both_finish(server, models_dir):
    model = str(models_dir / "mel-diffusion" / "model")
    results, errors = {}, []

    def run(seed):
        try:
            results[seed] = Client(server, verbose=False).predict(model, "bass", 1.0, 3, 1, seed, False, 0,
                                                                  api_name="/mel_sample")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and sorted(results) == [1, 2]
    assert [results[s][-2]["seed"] for s in (1, 2)] == [1, 2] and all(results[s][0] for s in (1, 2))


def test_stop_ends_a_running_job_and_frees_the_worker(client, served, models_dir):
    jobs = served[0].soundweave.jobs
    model = str(models_dir / "mel-diffusion" / "model")
    # 4 variants of 30 s by chained 0.5 s windows, 200 steps each: minutes of work unless stopped
    job = client.submit(model, "bass", 1.0, 200, 4, 0, False, 30, api_name="/mel_sample")
    deadline = time.time() + 30
    while time.time() < deadline and not (job.status().progress_data or job.done()):
        time.sleep(0.05)
    assert not job.done(), "the long job finished before it could be stopped"
    start = time.perf_counter()
    client.predict(api_name="/mel_stop")
    while not job.done() and time.perf_counter() - start < 20:
        time.sleep(0.05)
    assert job.done() and time.perf_counter() - start < 10
    while jobs.busy and time.perf_counter() - start < 10:  # the sampling loop itself ended, not just the event
        time.sleep(0.05)
    assert jobs.busy == 0
    quick = client.predict(model, "bass", 1.0, 2, 1, 0, False, 0, api_name="/mel_sample")
    assert quick[0] and time.perf_counter() - start < 15


def test_uploads_over_max_file_size_are_refused(client, served, models_dir, clips):
    assert served[0].max_file_size == 2 * 1024**2 and clips["long"].stat().st_size > 2 * 1024**2
    with pytest.raises(Exception, match="(?i)too large|exceeds|maximum"):
        client.predict(str(models_dir / "codec" / "model"), handle_file(str(clips["long"])), 0, api_name="/codec")
