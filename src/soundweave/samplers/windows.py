"""Sliding windows for generating sequences longer than a model was trained on: each window is at most `window`
frames and starts with up to `context` frames already there (the prompt, or the previous window's end)."""

from __future__ import annotations

import math

from ..errors import ConfigError


def check_window(window: int | None, context: float) -> None:
    """`window`: frames per pass (None: one pass over everything); `context`: the share of a window kept from
    what came before, in [0, 1)."""
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 2):
        raise ConfigError(f"window_frames must be an integer >= 2 (or None: one pass), got {window!r}")
    if isinstance(context, bool) or not isinstance(context, (int, float)) or not 0 <= context < 1:
        raise ConfigError(f"window_context must be a share in [0, 1), got {context!r}")


def sliding_windows(total: int, known: int, window: int | None, context: float = 0.5) -> list[tuple[int, int, int]]:
    """Spans `(start, first, end)` covering frames `known..total-1`: a pass sees frames start..end-1 (at most
    `window`) and generates first..end-1; everything before `first` is known by then. The first window holds as
    much of the known frames as fits; each later one generates `window - floor(window * context)` new frames
    after at least `floor(window * context)` known ones (the last one, with fewer left, keeps more). One span when
    `window` is None or the whole sequence fits."""
    check_window(window, context)
    if window is None or total <= window:
        return [(0, known, total)]
    keep = min(window - 1, math.floor(window * context))
    spans, first = [], known
    while first < total:
        end = min(total, window if first < window else first + window - keep)
        start = max(0, end - window)
        spans.append((start, first, end))
        first = end
    return spans
