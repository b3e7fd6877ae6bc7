"""What `MelDiffusionPipeline.continue_audio` needs beside the sampler: one progress count over all windows,
and the original prompt spliced back at the start of the output."""

from __future__ import annotations

import torch


class WindowProgress:
    """Turns each window's `(step, total)` into one count over all windows of `continue_audio`."""

    def __init__(self, callback, overlap: int, width: int, factor: int, needed: int):
        self.callback, self.overlap, self.width, self.factor, self.needed = callback, overlap, width, factor, needed
        self.windows, self.done = 1, 0

    def start(self, columns: int | None) -> None:
        """`columns`: those of the input audio (None: a first window is generated from noise)."""
        self.windows = 0 if columns is not None else 1
        columns = self.width if columns is None else columns
        while columns < self.needed:
            columns += self.width - min(self.overlap, columns // self.factor * self.factor)
            self.windows += 1

    def next_window(self) -> None:
        self.done += 1

    def __call__(self, step: int, total: int) -> None:
        if self.callback is not None:
            self.callback(self.done * total + step, max(self.windows, self.done + 1) * total)


def splice_prompt(prompt: torch.Tensor, audio: torch.Tensor, fade: int) -> torch.Tensor:
    """Put the original prompt samples back at the start of the re-synthesised audio `(B, T)`: the generated
    part is scaled to the prompt's RMS and joined with a linear crossfade of `fade` samples."""
    n = min(prompt.shape[-1], audio.shape[-1])
    out = audio.clone()
    ref = audio[:, :n].pow(2).mean(-1, keepdim=True).sqrt()
    scale = prompt[:, :n].pow(2).mean(-1, keepdim=True).sqrt() / ref.clamp_min(1e-8)
    out = out * torch.where(ref > 1e-8, scale, torch.ones_like(scale))
    fade = max(1, min(fade, n))
    ramp = torch.linspace(0, 1, fade)
    out[:, : n - fade] = prompt[:, : n - fade]
    out[:, n - fade : n] = prompt[:, n - fade : n] * (1 - ramp) + out[:, n - fade : n] * ramp
    return out
