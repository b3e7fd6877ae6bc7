"""soundweave's web app (Gradio 6): one tab per capability, thin over the public API.

    from soundweave.app import AppConfig, build_app
    demo = build_app(AppConfig(model_dirs=["demo-output"]))
    launch(demo)                       # or: soundweave app --models demo-output

Programmatic use of a running app: `gradio_client.Client(url).predict(..., api_name="/mel_sample")`; every
event's api_name is listed in `API_NAMES` (and the README).
"""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from .context import AppConfig, AppContext
from .tabs import TABS, Tab

log = logging.getLogger("soundweave.app")

# every event of the app, by tab (the model-running ones first; tests check the built app against this)
API_NAMES: dict[str, list[str]] = {
    "app": ["refresh_models"],
    "mel-diffusion": ["mel_sample", "mel_variation", "mel_inpaint", "mel_continue", "mel_model_info", "mel_variants",
                      "mel_stop"],
    "soundstorm": ["soundstorm", "soundstorm_variants", "soundstorm_stop"],
    "audio2img": ["audio2img", "audio2img_stop"],
    "mulan": ["mulan_search", "mulan_tags", "mulan_stop"],
    "codec": ["codec", "codec_stop"],
    "text-to-music": ["text_to_music", "text_to_music_players", "text_to_music_stop"],
    "text-to-speech": ["text_to_speech", "text_to_speech_players", "text_to_speech_stop"],
}

# system fonts only: the page loads nothing from the internet (Gradio's default theme fetches web fonts)
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                       font_mono=["ui-monospace", "SFMono-Regular", "monospace"])


def build_app(config: AppConfig | None = None, **overrides) -> gr.Blocks:
    """The Blocks of the app (queue configured, not launched). `overrides` are AppConfig fields."""
    if config is None:
        config = AppConfig(**overrides)
    elif overrides:
        raise TypeError("give an AppConfig or AppConfig fields, not both")
    ctx = AppContext(config)
    tabs: dict[str, Tab] = {}
    with gr.Blocks(title="soundweave", analytics_enabled=False) as demo:
        gr.Markdown("# soundweave\nGenerate sound, and steer other generators with sound. Models are loaded on "
                    f"first use from {ctx.folders_text()} (or a folder / hub id typed into a tab).")
        with gr.Tabs():
            for spec in TABS:
                with gr.Tab(spec.title, id=spec.key, elem_id=f"tab-{spec.key}"):
                    tab = spec.create(ctx)
                    tab.build()
                    tabs[spec.key] = tab
        rescan = gr.Button("Rescan the model folders", size="sm")
        _refresh_event(ctx, rescan)
    demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)
    demo.soundweave = ctx  # for tests and embedding: the shared context ...
    demo.soundweave_tabs = tabs  # ... and the tab objects (their handlers are plain methods)
    return demo


def _refresh_event(ctx: AppContext, button: gr.Button) -> None:
    pickers = ctx.pickers

    def refresh(*values):
        ctx.refresh()
        updates = []
        for (kind, what, _, notice), value in zip(pickers, values, strict=True):
            if notice is None:  # an optional picker: empty stays empty
                updates.append(gr.update(choices=ctx.choices(kind, optional=True), value=value or ""))
                continue
            keep = value if value else ctx.default(kind)
            updates += [gr.update(choices=ctx.choices(kind), value=keep), gr.update(value=ctx.notice(kind, what))]
        return updates

    outputs = [c for _, _, picker, notice in pickers for c in (picker, notice) if c is not None]
    button.click(refresh, inputs=[p for _, _, p, _ in pickers], outputs=outputs, api_name="refresh_models",
                 concurrency_limit=None, show_progress="hidden", api_visibility="undocumented")


def launch(demo: gr.Blocks, *, host: str | None = None, port: int | None = None, share: bool = False,
           auth: tuple[str, str] | None = None, prevent_thread_lock: bool = False, quiet: bool = False):
    """Serve `demo` (host/port default to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, else 127.0.0.1:7860)."""
    ctx: AppContext = demo.soundweave
    # the file routes reach the app's own outputs and the example clips it offers, nothing else: not the model
    # folders (weights, corpora), not the rest of the disk (tests/app/test_app_safety.py tries traversals)
    allowed = [str(ctx.outputs.root.resolve())] + [str(Path(p).resolve()) for p in ctx.examples]
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth,
                       max_file_size=ctx.config.max_file_size, allowed_paths=allowed, show_error=False,
                       prevent_thread_lock=prevent_thread_lock, quiet=quiet, theme=THEME, ssr_mode=False)


__all__ = ["API_NAMES", "AppConfig", "AppContext", "build_app", "launch"]
