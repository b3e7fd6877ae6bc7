"""The `Tab` base class and the UI pieces the tabs share: model picker, seed, run/stop, variant outputs."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ...errors import ConfigError
from ..context import CONCURRENCY_ID, AppContext


def as_int(value, name: str, lo: int, hi: int | None = None) -> int:
    """A whole number from a control (the API may send floats or strings), checked against [lo, hi]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number) or number < lo or (hi is not None and number > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{name} must be a whole number {bounds}, got {value!r}")
    return int(number)


def as_float(value, name: str, lo: float, hi: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < lo or (hi is not None and number > hi):
        bounds = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
        raise ConfigError(f"{name} must be a number {bounds}, got {value!r}")
    return number


def resolve_seed(seed, random_seed: bool = False) -> int:
    """The seed a job uses: the control's value, or a fresh random one (shown back with the result)."""
    if random_seed:
        return secrets.randbelow(2**31)
    return as_int(0 if seed is None or seed == "" else seed, "seed", 0, 2**63 - 1)


def player(label: str, elem_id: str | None = None, visible: bool = True) -> gr.Audio:
    """An output player: the browser's own <audio> element (its src is the result file) with a download button;
    the spectrogram PNGs beside it show what the waveform view would."""
    return gr.Audio(label=label, type="filepath", interactive=False, elem_id=elem_id, visible=visible,
                    waveform_options=gr.WaveformOptions(show_recording_waveform=False))


@dataclass
class Variant:
    """One generated item: its audio file, its spectrogram picture, and the label shown with both."""

    wav: Path
    png: Path
    label: str


class Tab:
    """A capability's tab. Subclasses lay out controls in `build()` and register events with `listen`."""

    def __init__(self, ctx: AppContext, *, key: str, title: str):
        self.ctx, self.key, self.title = ctx, key, title
        self.events: list = []  # what the Stop button cancels
        self.api_names: list[str] = []

    def build(self) -> None:  # pragma: no cover - every tab overrides it
        raise NotImplementedError

    # -- pieces --------------------------------------------------------------------------------------------
    def model_picker(self, kind: str, label: str, what: str, fallback: str | None = None) -> gr.Dropdown:
        """A dropdown of the `kind` folders found (typing a folder or hub id also works), with a note saying what
        was found or how to get one. `fallback`: the value when none was found (e.g. a hub id)."""
        with gr.Column(min_width=240):
            picker = gr.Dropdown(choices=self.ctx.choices(kind), value=self.ctx.default(kind) or fallback,
                                 label=label, allow_custom_value=True, interactive=True,
                                 info="a folder found in the model folders, or type a model folder or hub id")
            notice = gr.Markdown(self.ctx.notice(kind, what))
        self.ctx.pickers.append((kind, what, picker, notice))
        return picker

    def optional_picker(self, kind: str, label: str, info: str) -> gr.Dropdown:
        """A dropdown of the `kind` folders found with an empty first choice (= not used), refreshed by "Rescan"
        like the model pickers; typing a folder or hub id also works."""
        picker = gr.Dropdown(choices=self.ctx.choices(kind, optional=True), value="", label=label,
                             allow_custom_value=True, interactive=True, info=info)
        self.ctx.pickers.append((kind, None, picker, None))
        return picker

    def upload(self, label: str, seconds: float) -> gr.Audio:
        return gr.Audio(label=f"{label} (at most {seconds:g} s)", type="filepath", sources=["upload"], format=None,
                        elem_id=f"{self.key}-upload")

    def examples(self, audio: gr.Audio) -> None:
        if self.ctx.examples:
            gr.Examples(examples=[[str(p)] for p in self.ctx.examples], inputs=[audio],
                        label="Examples from the synthetic corpus", examples_per_page=len(self.ctx.examples))

    def seed_controls(self) -> tuple[gr.Number, gr.Checkbox]:
        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", info="the same seed gives the same result")
        random_seed = gr.Checkbox(value=False, label="Random seed", info="draw a new seed each run (shown back)")
        return seed, random_seed

    def variants_slider(self, label: str = "Variants") -> gr.Slider:
        n = self.ctx.config.max_variants
        return gr.Slider(1, n, value=1, step=1, label=label, info="seeds seed, seed+1, ...")

    def run_stop(self, label: str) -> tuple[gr.Button, gr.Button]:
        with gr.Row():
            run = gr.Button(label, variant="primary")
            stop = gr.Button("Stop", variant="stop")
        return run, stop

    # -- events --------------------------------------------------------------------------------------------
    def listen(self, trigger, fn, inputs: list, outputs: list, api_name: str, **kwargs):
        """A model-running event: explicit api_name, the shared concurrency group, cancellable by Stop."""
        event = trigger(fn, inputs=inputs, outputs=outputs, api_name=api_name, concurrency_id=CONCURRENCY_ID,
                        show_progress="full", **kwargs)
        self.events.append(event)
        self.api_names.append(api_name)
        return event

    def light(self, trigger, fn, inputs: list, outputs: list, api_name: str):
        """A quick UI event that loads nothing (reading a config, showing players): never waits for the models;
        callable by name but left out of the API page."""
        self.api_names.append(api_name)
        return trigger(fn, inputs=inputs, outputs=outputs, api_name=api_name, concurrency_limit=None,
                       show_progress="hidden", api_visibility="undocumented")

    def start_job(self, request, progress):
        """The job of a running event: progress reporting, and the flag this tab's Stop button sets."""
        return self.ctx.jobs.start(request, progress, scope=self.key)

    def stop_on(self, button: gr.Button, api_name: str) -> None:
        jobs, scope = self.ctx.jobs, self.key

        def stop(request: gr.Request):
            jobs.stop(request, scope)

        self.api_names.append(api_name)
        button.click(stop, inputs=None, outputs=None, cancels=list(self.events), api_name=api_name,
                     concurrency_limit=None, queue=False)


class VariantOutputs:
    """Audio players (one per variant, hidden when unused), their spectrograms, the files and the settings."""

    def __init__(self, count: int, label: str = "Variant", labels: list[str] | None = None, elem_prefix: str = "out"):
        """`count` players labelled "`label` 1", ... (only the first shown until `follow` shows more), or one
        always-visible player per name in `labels`. Element ids: `{elem_prefix}-player-{i}`, `-gallery`, ..."""
        self.count = len(labels) if labels else count
        names = labels or [f"{label} {i + 1}" for i in range(count)]
        with gr.Row():
            self.players = [player(names[i], f"{elem_prefix}-player-{i}", visible=bool(labels) or i == 0)
                            for i in range(self.count)]
        self.gallery = gr.Gallery(label="Spectrograms", columns=4, rows=1, height=220, object_fit="contain",
                                  format="png", elem_id=f"{elem_prefix}-gallery")
        with gr.Row():
            self.files = gr.File(label="Downloads: audio, spectrograms, settings", file_count="multiple",
                                 interactive=False, elem_id=f"{elem_prefix}-files")
            self.settings = gr.JSON(label="Settings" if labels else "Settings (with the seed)",
                                    elem_id=f"{elem_prefix}-settings")

    @property
    def components(self) -> list:
        return [*self.players, self.gallery, self.files, self.settings]

    def pack(self, variants: list[Variant], settings: dict, extra_files: list[Path] = ()) -> list:
        """Plain values (a path or None per player), so API clients get file paths, not update dicts."""
        players = [str(variants[i].wav) if i < len(variants) else None for i in range(self.count)]
        files = [str(p) for v in variants for p in (v.wav, v.png)] + [str(p) for p in extra_files]
        return [*players, [(str(v.png), v.label) for v in variants], files, settings]

    def follow(self, tab: Tab, slider: gr.Slider, api_name: str) -> None:
        """Show as many players as the variants slider asks for."""

        def show(n):
            count = max(1, min(self.count, int(float(n or 1))))
            return [gr.update(visible=i < count) for i in range(self.count)]

        tab.light(slider.change, show, [slider], self.players, api_name)


class PlannedTab(Tab):
    """A capability that is not built yet: what it will do, where it is tracked, and how to get it."""

    def __init__(self, ctx: AppContext, *, key: str, title: str, what: str, issue: str):
        super().__init__(ctx, key=key, title=title)
        self.what, self.issue = what, issue

    def build(self) -> None:
        gr.Markdown(
            f"### {self.title}: not available yet\n"
            f"{self.what}.\n\n"
            f"This capability is still being built (soundweave issue {self.issue}); this version of soundweave has "
            "no model or pipeline for it, so there is nothing to run here yet.\n\n"
            "**How to get it:** once the issue has landed, update soundweave (`git pull && python3 tasks.py "
            "setup`), run `python3 tasks.py demo` to train a small model, and restart `soundweave app`: the tab "
            "then finds its model like the others.")


__all__ = ["player", "PlannedTab", "Tab", "Variant", "VariantOutputs", "as_float", "as_int", "resolve_seed"]
