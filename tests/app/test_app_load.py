"""Load: 20 gradio_client requests at once against the tiny-model app on a loopback port.

Every request either finishes with its own result (each uploads a tone of its own pitch, and the clip it gets back
has that pitch) or is told the queue is full; none is lost or mixed up, the server's memory stays bounded, and it
answers the next request. Peak RSS is printed as JSON (`-s` shows it).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import psutil
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.utils import QueueError

from tests.app.conftest import free_port
from tests.app.tiny_models import SR, write_tone

pytestmark = pytest.mark.usefixtures("one_thread")
REQUESTS, QUEUE_SIZE = 20, 6


def pitch(path) -> float:
    audio, sr = sf.read(str(path), dtype="float32")
    audio = audio if audio.ndim == 1 else audio.mean(axis=1)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * sr / len(audio))


@pytest.fixture(scope="module")
def loaded_server(models_dir, tmp_path_factory):
    from soundweave.app import AppConfig, build_app, launch

    demo = build_app(AppConfig(model_dirs=[models_dir], output_dir=tmp_path_factory.mktemp("load"),
                               queue_size=QUEUE_SIZE, concurrency=1))
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    yield url.rstrip("/")
    demo.close()


def test_twenty_concurrent_requests(loaded_server, models_dir, tmp_path):
    codec = str(models_dir / "codec" / "model")
    freqs = [220.0 + 50.0 * i for i in range(REQUESTS)]  # 220 .. 1170 Hz, 50 Hz apart
    tones = [write_tone(tmp_path / f"tone-{i}.wav", seconds=1.0, sr=SR, freq=f) for i, f in enumerate(freqs)]
    assert [round(pitch(t)) for t in tones] == [round(f) for f in freqs]
    clients = [Client(loaded_server, verbose=False) for _ in range(REQUESTS)]

    process = psutil.Process()
    start_rss, peak = process.memory_info().rss, [process.memory_info().rss]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)

    outcomes: dict[int, tuple[str, object]] = {}
    barrier = threading.Barrier(REQUESTS)

    def request(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = ("done", clients[i].predict(codec, handle_file(str(tones[i])), 0, api_name="/codec"))
        except QueueError as exc:
            outcomes[i] = ("queue full", exc)
        except Exception as exc:  # reported below: anything else is a failure
            outcomes[i] = ("error", exc)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    threads = [threading.Thread(target=request, args=(i,)) for i in range(REQUESTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.perf_counter() - began
    sampling.set()
    sampler.join()

    assert sorted(outcomes) == list(range(REQUESTS)), "a request was lost (no answer at all)"
    errors = {i: o for i, o in outcomes.items() if o[0] == "error"}
    assert not errors, errors
    finished = [i for i, o in outcomes.items() if o[0] == "done"]
    refused = [i for i, o in outcomes.items() if o[0] == "queue full"]
    assert all("Queue is full" in str(outcomes[i][1]) for i in refused)
    assert len(finished) >= QUEUE_SIZE  # the queue really held jobs (at least as many as it has places)
    for i in finished:  # each got its own clip back, not another request's
        original, decoded, gallery, files, settings = outcomes[i][1]
        assert abs(pitch(original) - freqs[i]) < 5, (i, pitch(original), freqs[i])
        assert sf.info(decoded).frames == sf.info(original).frames == SR  # its own 1 s, decoded
        assert settings["levels_kept"] == 3
    growth_mb = (peak[0] - start_rss) / 2**20
    print(json.dumps({"load_test": {"requests": REQUESTS, "finished": len(finished), "told_queue_full": len(refused),
                                    "lost": 0, "mixed": 0, "seconds": round(elapsed, 1),
                                    "peak_rss_mb": round(peak[0] / 2**20, 1), "rss_growth_mb": round(growth_mb, 1)}}))
    assert growth_mb < 1500, f"server memory grew by {growth_mb:.0f} MB"

    # and the server still answers, with the right result
    after = Client(loaded_server, verbose=False).predict(codec, handle_file(str(tones[3])), 1, api_name="/codec")
    assert abs(pitch(after[0]) - freqs[3]) < 5 and after[4]["levels_kept"] == 1
