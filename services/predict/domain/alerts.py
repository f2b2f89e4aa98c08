"""Alert episodes: one alert when risk rises past the threshold, silence until it has clearly fallen.

Hysteresis (close only below `threshold - clear_margin`) keeps a probability hovering around the
threshold from opening a new episode at every run.
"""

from __future__ import annotations

from typing import Literal

Transition = Literal["open", "close", "stay"]


def transition(
    *, episode_open: bool, probability: float, threshold: float, clear_margin: float
) -> Transition:
    if not episode_open and probability >= threshold:
        return "open"
    if episode_open and probability < threshold - clear_margin:
        return "close"
    return "stay"
