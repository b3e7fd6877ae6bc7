"""The served app hands out only its own outputs and example clips, and refuses oversized uploads."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from gradio_client import Client, handle_file


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def secrets(models_dir, served, tmp_path_factory):
    """Files that must not be reachable: beside the outputs, inside the model folders, and system files."""
    outputs = served[0].soundweave.outputs.root
    beside = outputs.parent / "secret-beside-outputs.txt"
    beside.write_text("SECRET-BESIDE")
    inside_models = models_dir / "secret-in-models.txt"
    inside_models.write_text("SECRET-MODELS")
    return {"beside": beside, "models_file": inside_models, "weights": models_dir / "codec" / "model" /
            "model.safetensors", "captions": models_dir / "corpus" / "synthetic-corpus" / "captions.jsonl",
            "outputs": outputs}


def _get(server: str, route: str) -> httpx.Response:
    return httpx.get(server + route, timeout=30, follow_redirects=False)


def test_an_output_is_served_but_nothing_else_on_disk(client, server, models_dir, clips, secrets):
    original, decoded, *_ = client.predict(str(models_dir / "codec" / "model"), handle_file(str(clips["tone"])), 0,
                                           api_name="/codec")
    # the server's own result, by its server-side path: this route works (so the refusals below mean something)
    produced = next(secrets["outputs"].rglob("*.wav"))
    ok = _get(server, f"/gradio_api/file={produced}")
    assert ok.status_code == 200 and ok.content[:4] == b"RIFF"

    outputs = secrets["outputs"]
    attempts = []
    for target in ("beside", "models_file", "weights", "captions"):
        path = secrets[target]
        attempts += [str(path), f"{outputs}/../{path.name}" if target == "beside" else f"{outputs}/../../{path}",
                     f"{outputs}/{'../' * 12}{str(path).lstrip('/')}"]
    attempts += ["/etc/passwd", f"{outputs}/../../../../../../../../etc/passwd", "../../../../etc/passwd",
                 "..%2f..%2f..%2fetc%2fpasswd", f"{outputs}/%2e%2e/%2e%2e/etc/passwd", "~/.bashrc",
                 "file:///etc/passwd", "/proc/self/environ"]
    served_wrongly = []
    for attempt in attempts:
        for route in ("/gradio_api/file=", "/file="):
            for quoted in (attempt, urllib.parse.quote(attempt, safe="")):
                r = _get(server, route + quoted)
                body = r.content
                if r.status_code == 200 and (b"SECRET" in body or b"root:" in body or b"safetensors" in body[:64]
                                              or b'"path"' in body or b"PATH=" in body):
                    served_wrongly.append((route + quoted, r.status_code))
                elif r.status_code == 200 and r.headers.get("content-type", "").startswith(("audio", "application")):
                    served_wrongly.append((route + quoted, r.status_code, r.headers.get("content-type")))
    assert not served_wrongly, served_wrongly
    assert len(attempts) == 20  # 20 paths x 2 routes x 2 spellings tried


def test_an_upload_over_the_size_limit_is_refused(server, clips):
    small = httpx.post(f"{server}/gradio_api/upload", files={"files": ("tone.wav", clips["tone"].read_bytes())},
                       timeout=60)
    assert small.status_code == 200 and small.json()
    big = httpx.post(f"{server}/gradio_api/upload", files={"files": ("big.wav", b"\0" * (3 * 1024 * 1024))},
                     timeout=60)  # the served fixture allows 2 MB
    assert big.status_code == 413, big.text[:300]
    assert "maximum allowed size of 2097152 bytes" in big.text


def test_the_client_is_told_when_a_file_is_too_big(client, models_dir, tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"RIFF" + b"\0" * (3 * 1024 * 1024))
    with pytest.raises(Exception, match="big.wav exceeds the maximum file size of 2097152 bytes"):
        client.predict(str(models_dir / "codec" / "model"), handle_file(str(big)), 0, api_name="/codec")
