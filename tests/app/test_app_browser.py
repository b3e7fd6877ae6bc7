"""The app in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

CI installs chromium (.ci/run); where it is missing these tests FAIL with the command that installs it -
they never skip silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SOUNDWEAVE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TRACKERS = "[...document.querySelectorAll('[data-testid=\"status-tracker\"]')]"
IDLE = f"() => {TRACKERS}.every(e => e.classList.contains('hide'))"  # every tracker hidden: nothing running
# after an error Gradio leaves an "Error" badge on the outputs (not a spinner): settled = hidden or that badge
SETTLED = f"() => {TRACKERS}.every(e => e.classList.contains('hide') || e.innerText.trim().startsWith('Error'))"
DOCS_SCREENSHOT = os.environ.get("SOUNDWEAVE_SCREENSHOT")  # set to docs/app.png to refresh the README's picture


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's browser with `apt-get install -y "
                    "--no-install-recommends chromium` (or point SOUNDWEAVE_CHROMIUM at one); `playwright install` "
                    "cannot download browsers here")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium"),
                                    args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(server + "/", wait_until="networkidle")
    yield page
    page.close()


def upload(page, tab: str, path: Path) -> None:
    """Upload through the component's file input; done when its player (time display) appears."""
    page.locator(f"#{tab}-upload input[type=file]").set_input_files(str(path))
    page.wait_for_function(f"() => !!document.querySelector('#{tab}-upload time')")


def test_codec_round_trip_in_the_browser(page, clips, tmp_path):
    page.get_by_role("tab", name="Codec round trip").click()
    upload(page, "codec", clips["tone"])
    page.get_by_role("button", name="Encode and decode").click()
    page.wait_for_function("() => { const a = document.querySelector('#codec-player-1 audio'); return a && a.src; }")
    page.wait_for_function(IDLE)
    assert page.locator(".toast-body").count() == 0
    src = page.locator("#codec-player-1 audio").get_attribute("src") or page.evaluate(
        "() => document.querySelector('#codec-player-1 audio').src")
    assert src.endswith("decoded-3of3-levels.wav")
    assert page.locator("#codec-gallery img").count() == 2
    page.screenshot(path=str(tmp_path / "codec.png"), full_page=True)
    assert (tmp_path / "codec.png").stat().st_size > 10_000


def test_a_bad_upload_shows_the_message_and_the_next_run_works(page, clips, tmp_path):
    page.get_by_role("tab", name="Mel diffusion").click()
    upload(page, "mel-diffusion", clips["silence"])
    page.get_by_role("tab", name="Variation").click()
    page.get_by_role("button", name="Make variations").click()
    toast = page.locator(".toast-body").first
    toast.wait_for()
    assert "silence.wav is silent" in toast.inner_text()
    page.wait_for_function(SETTLED)  # no spinner left behind
    page.get_by_role("tab", name="Sample", exact=True).click()
    page.get_by_role("button", name="Sample", exact=True).click()
    page.wait_for_function(
        "() => { const a = document.querySelector('#mel-diffusion-player-0 audio'); return a && a.src; }")
    page.wait_for_function(IDLE)
    page.screenshot(path=str(tmp_path / "mel.png"), full_page=False)
    if DOCS_SCREENSHOT:
        page.screenshot(path=DOCS_SCREENSHOT, full_page=False)


def test_text_to_speech_shows_one_player_per_line_in_the_browser(page):
    page.get_by_role("tab", name="Text to speech").click()
    second = page.locator("#text-to-speech-player-1")
    assert second.count() == 0 or not second.is_visible()  # one line of text: one player
    page.locator("#tab-text-to-speech textarea").first.fill("a cat\nthe old clock is here")
    second.wait_for(state="visible")
    page.get_by_role("button", name="Speak").click()
    for i in (0, 1):
        page.wait_for_function(
            f"() => {{ const a = document.querySelector('#text-to-speech-player-{i} audio'); return a && a.src; }}")
    page.wait_for_function(IDLE)
    assert page.locator(".toast-body").count() == 0
    assert page.locator("#text-to-speech-player-2").count() == 0 or not page.locator(
        "#text-to-speech-player-2").is_visible()
    assert page.locator("#text-to-speech-gallery img").count() == 2


def test_text_to_music_shows_the_best_sample_in_the_browser(page):
    page.get_by_role("tab", name="Text to music").click()
    page.get_by_role("button", name="Make music").click()
    page.wait_for_function(
        "() => { const a = document.querySelector('#text-to-music-player-0 audio'); return a && a.src; }")
    page.wait_for_function(IDLE)
    assert page.locator(".toast-body").count() == 0
    assert page.locator("#text-to-music-gallery img").count() == 1
    assert "MuLaN" in page.locator("#text-to-music-gallery").inner_text()
