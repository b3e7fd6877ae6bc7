"""The optional `callback(step, total)` of the samplers the app shows progress for (and stops through), and
the `soundweave app` command line."""

from __future__ import annotations

import pytest
import torch

from soundweave.errors import ConfigError
from tests.app.tiny_models import tiny_mel_pipeline, tiny_soundstorm
from tests.helpers import invoke_cli

pytestmark = pytest.mark.usefixtures("one_thread")


class Stop(Exception):
    pass


def test_mel_diffusion_calls_back_after_every_step_and_a_raise_stops_it():
    pipe = tiny_mel_pipeline()
    seen = []
    out = pipe(steps=5, seed=0, class_labels="bass", callback=lambda s, t: seen.append((s, t)))
    assert seen == [(i, 5) for i in range(1, 6)]
    plain = pipe(steps=5, seed=0, class_labels="bass")
    assert (out.arrays == plain.arrays).all()  # the callback changes nothing
    wave = torch.from_numpy(out.audios[0])
    seen.clear()
    pipe(audio=wave, audio_sample_rate=pipe.sample_rate, start_step=2, steps=5, seed=0, class_labels="bass",
         callback=lambda s, t: seen.append((s, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]  # a variation runs only the steps after start_step

    def stop(step, total):
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        pipe(steps=5, seed=0, class_labels="bass", callback=stop)


@pytest.mark.parametrize("with_audio", [False, True])
def test_continue_audio_counts_the_steps_of_all_windows_together(with_audio):
    pipe = tiny_mel_pipeline()
    seen = []
    audio = torch.from_numpy(pipe(steps=2, seed=1, class_labels="flute").audios[0]) if with_audio else None
    out = pipe.continue_audio(audio, 2.0, steps=3, seed=0, class_labels="bass",
                              callback=lambda s, t: seen.append((s, t)))
    totals = {t for _, t in seen}
    assert len(totals) == 1 and [s for s, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == totals.pop()
    window = pipe.mel.x_res
    columns = out.arrays.shape[-1]
    assert len(seen) % 3 == 0 and len(seen) // 3 >= (columns - window) // (window // 2)


def test_soundstorm_calls_back_once_per_network_pass():
    storm = tiny_soundstorm()
    seen = []
    audio = storm.generate(20, seed=0, callback=lambda s, t: seen.append((s, t)))
    total = sum(storm.steps_for_levels())
    assert seen == [(i, total) for i in range(1, total + 1)] and audio.shape == (1, 20 * storm.soundstream.hop_length)
    seen.clear()
    storm.generate(20, seed=0, steps=2, callback=lambda s, t: seen.append((s, t)))
    assert seen[-1] == (4, 4)  # 2 passes for the first level + one for each of the 2 finer levels

    def stop(step, total):
        raise Stop

    with pytest.raises(Stop):
        storm.generate(20, seed=0, callback=stop)
    assert not storm.training  # the mode is restored after a stopped generation


def test_app_command_help_and_auth():
    from soundweave.cli.webapp import parse_auth

    result = invoke_cli("app", "--help")
    assert result.exit_code == 0
    for flag in ("--models", "--host", "--port", "--share", "--auth", "--max-file-size", "--queue-size",
                 "--concurrency", "--max-seconds"):
        assert flag in result.output
    assert parse_auth("admin:s3:cret") == ("admin", "s3:cret") and parse_auth(None) is None
    for bad in ("admin", ":pw", "admin:"):
        with pytest.raises(ConfigError, match="USER:PASSWORD"):
            parse_auth(bad)
    result = invoke_cli("app", "--auth", "nopassword", "--models", "/nonexistent")
    assert result.exit_code != 0

    from soundweave.app import AppConfig

    for bad in ({"max_file_size": "20 parsecs"}, {"concurrency": 0}, {"queue_size": 0}, {"max_seconds": -1}):
        with pytest.raises(ConfigError):
            AppConfig(**bad)
    assert AppConfig(max_file_size="20MB").max_file_size == "20MB"
