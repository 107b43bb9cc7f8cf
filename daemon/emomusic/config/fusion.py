"""Settings of fusion: per-modality decay and reliability, hysteresis, the circumplex table."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator

from emomusic.config.base import VA, Section
from emomusic.config.modalities import LISTENER, MODALITIES

DEFAULT_CIRCUMPLEX: dict[str, tuple[float, float]] = {
    # Positions after Russell (1980) and Posner et al. (2005): valence left-right, arousal bottom-top.
    "neutral": (0.0, 0.0),
    "calm": (0.5, -0.6),
    "happy": (0.8, 0.5),
    "surprised": (0.3, 0.8),
    "sad": (-0.7, -0.5),
    "angry": (-0.6, 0.8),
    "fearful": (-0.7, 0.7),
    "disgust": (-0.7, 0.3),
    "contempt": (-0.5, 0.2),
}


DEFAULT_TAU_S = 4.0
FEEDBACK_MODALITY = LISTENER.name  # the listener's own word ("I feel sad"): evidence like a modality's


def _defaults(attr: str) -> dict[str, float]:
    """Each registered modality's default (the listener's has keys of its own: feedback_*)."""
    return {m.name: float(getattr(m, attr)) for m in MODALITIES.values() if not m.told}


class FusionConfig(Section):
    tau_s: dict[str, float] = Field(
        default_factory=lambda: _defaults("tau_s"),
        description="Per-modality time constant of the exponential evidence decay (one number = all modalities).",
    )
    stale_after_s: float = Field(10.0, gt=0, description="A modality silent this long contributes nothing.")
    margin: float = Field(0.2, ge=0, le=1, description="A new leader must beat the current label by this much...")
    hold_s: float = Field(0.25, ge=0, description="...for this long before the published label changes.")
    jump_margin: float = Field(0.5, ge=0, le=1, description="A new leader ahead by more than this takes over at "
                               "once, without the hold: a clear change is not held back (1 = never).")
    reliability: dict[str, float] = Field(
        default_factory=lambda: _defaults("reliability"),
        description="Per-modality weight; defaults are the models' measured accuracy (models/README.md).",
    )
    circumplex: dict[str, VA] = Field(default_factory=lambda: dict(DEFAULT_CIRCUMPLEX))
    feedback_tau_s: float = Field(
        LISTENER.tau_s, gt=0, description="The listener's \"I feel …\" fades with this time constant: strong at once, "
        "so a glance a second later does not overrule it, then the sensors take over again.")
    feedback_s: float = Field(240.0, gt=0, description="…and counts for nothing after this many seconds.")
    feedback_weight: float = Field(LISTENER.reliability, ge=0, le=1,
                                   description="Its weight (reliability) while fresh.")

    @field_validator("tau_s", mode="before")
    @classmethod
    def _tau_number(cls, v: Any) -> Any:
        """One number sets every modality; a table sets the modalities it names, the rest keep their defaults."""
        if isinstance(v, int | float) and not isinstance(v, bool):
            return {name: v for name in _defaults("tau_s")}
        return {**_defaults("tau_s"), **v} if isinstance(v, dict) else v

    @field_validator("tau_s")
    @classmethod
    def _tau_positive(cls, v: dict[str, float]) -> dict[str, float]:
        for name, tau in v.items():
            if not (math.isfinite(tau) and tau > 0):
                raise ValueError(f"tau of '{name}' must be a finite number > 0, got {tau}")
        return v

    def tau(self, modality: str) -> float:
        """The decay time constant of ``modality`` (unlisted ones decay like the slowest listed)."""
        if _told(modality):
            return self.feedback_tau_s
        return self.tau_s.get(modality, max(self.tau_s.values(), default=DEFAULT_TAU_S))

    def stale_after(self, modality: str) -> float:
        return self.feedback_s if _told(modality) else self.stale_after_s

    def weight(self, modality: str, default: float) -> float:
        """The reliability of ``modality`` (``default`` for one not configured)."""
        if _told(modality):
            return self.feedback_weight
        return self.reliability.get(modality, default)

    @field_validator("reliability")
    @classmethod
    def _reliability_range(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not (math.isfinite(w) and 0 <= w <= 1):
                raise ValueError(f"reliability of '{name}' must be in [0, 1], got {w}")
        return v

    @field_validator("circumplex", mode="before")
    @classmethod
    def _circumplex_defaults(cls, v: Any) -> Any:
        """Labels not given keep their default place: moving one label takes one line."""
        return {**DEFAULT_CIRCUMPLEX, **v} if isinstance(v, dict) else v

    @field_validator("circumplex")
    @classmethod
    def _circumplex_range(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        unknown = sorted(set(v) - set(DEFAULT_CIRCUMPLEX))
        if unknown:
            raise ValueError(f"unknown labels {unknown}; expected {sorted(DEFAULT_CIRCUMPLEX)}")
        for name, (val, aro) in v.items():
            if not (-1 <= val <= 1 and -1 <= aro <= 1):
                raise ValueError(f"'{name}' must lie in [-1, 1] x [-1, 1], got {(val, aro)}")
        return v


def _told(modality: str) -> bool:
    m = MODALITIES.get(modality)
    return m is not None and m.told
