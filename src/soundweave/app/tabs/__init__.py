"""The app's tabs: one module per capability, listed in `TABS`.

Adding a capability's tab is one small module plus one line here: a `Tab` subclass whose `build()` lays out
its controls inside the `gr.Tab` the app opens for it, and registers its events with `self.listen(...)`
(explicit `api_name`, shared concurrency group, cancellable by the tab's Stop button). Capabilities that
are not built yet are listed with `PlannedTab`, which says what is missing and where it is tracked; when the
capability lands, its entry points at the new module instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .base import PlannedTab, Tab


@dataclass(frozen=True)
class TabSpec:
    key: str  # the tab's id (also its element id in the page)
    title: str
    target: str  # "module:Class" of a Tab subclass
    options: tuple[tuple[str, str], ...] = ()  # keyword arguments for the class (PlannedTab's texts)

    def create(self, ctx) -> Tab:
        module, _, name = self.target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls(ctx, key=self.key, title=self.title, **dict(self.options))


TABS: list[TabSpec] = [
    TabSpec("mel-diffusion", "Mel diffusion", "soundweave.app.tabs.mel_diffusion:MelDiffusionTab"),
    TabSpec("soundstorm", "SoundStorm continuation", "soundweave.app.tabs.soundstorm:SoundStormTab"),
    TabSpec("audio2img", "Audio to image", "soundweave.app.tabs.audio2img:Audio2ImageTab"),
    TabSpec("mulan", "MuLaN search and tags", "soundweave.app.tabs.mulan:MuLaNTab"),
    TabSpec("codec", "Codec round trip", "soundweave.app.tabs.codec:CodecTab"),
    TabSpec("text-to-music", "Text to music", "soundweave.app.tabs.text_to_music:TextToMusicTab"),
    TabSpec("text-to-speech", "Text to speech", "soundweave.app.tabs.text_to_speech:TextToSpeechTab"),
]

__all__ = ["TABS", "PlannedTab", "Tab", "TabSpec"]
