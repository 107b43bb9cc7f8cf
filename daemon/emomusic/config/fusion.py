"""Settings of fusion: per-modality decay and reliability, hysteresis, the circumplex table."""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
from msgspec import Meta, field

from emomusic.config.base import VA, Section, meant
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


def _known_modalities(**tables: dict[str, float]) -> None:
    """Every per-modality table names registered modalities: a typo would leave the meant one at its default."""
    known = list(_defaults("tau_s"))
    for key, table in tables.items():
        for name in table:
            if name not in known:
                raise ValueError(f"{key}.{name}: unknown modality ({meant(name, known)})")


class FusionConfig(Section, frozen=True):
    tau_s: Annotated[
        dict[str, float],
        Meta(description="Per-modality time constant of the exponential evidence decay (one number = all modalities)."),
    ] = field(default_factory=lambda: _defaults("tau_s"))
    stale_after_s: Annotated[float, Meta(gt=0, description="A modality silent this long contributes nothing.")] = 10.0
    margin: Annotated[
        float, Meta(ge=0, le=1, description="A new leader must beat the current label by this much...")
    ] = 0.15
    hold_s: Annotated[float, Meta(ge=0, description="...for this long before the published label changes.")] = 0.25
    jump_margin: Annotated[
        float,
        Meta(
            ge=0,
            le=1,
            description="A new leader ahead by more than this takes over at "
            "once, without the hold: a clear change is not held back (1 = never).",
        ),
    ] = 0.3
    reliability: Annotated[
        dict[str, float],
        Meta(description="Per-modality weight; defaults are the models' accuracy measured when fusion was tuned."),
    ] = field(default_factory=lambda: _defaults("reliability"))
    circumplex: dict[str, VA] = field(default_factory=lambda: dict(DEFAULT_CIRCUMPLEX))
    feedback_tau_s: Annotated[
        float,
        Meta(
            gt=0,
            description='The listener\'s "I feel …" fades with this time constant: strong at once, '
            "so a glance a second later does not overrule it, then the sensors take over again.",
        ),
    ] = LISTENER.tau_s
    feedback_s: Annotated[float, Meta(gt=0, description="…and counts for nothing after this many seconds.")] = 240.0
    feedback_weight: Annotated[float, Meta(ge=0, le=1, description="Its weight (reliability) while fresh.")] = (
        LISTENER.reliability
    )

    @classmethod
    def prepare(cls, raw: Any) -> Any:
        """One number sets every modality's tau; a table sets the modalities it names, the rest keep their
        defaults; circumplex labels not given keep their default place (moving one label takes one line)."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        tau = raw.get("tau_s")
        if isinstance(tau, int | float) and not isinstance(tau, bool):
            raw["tau_s"] = {name: tau for name in _defaults("tau_s")}
        elif isinstance(tau, dict):
            raw["tau_s"] = {**_defaults("tau_s"), **tau}
        if isinstance(raw.get("circumplex"), dict):
            for name, va in raw["circumplex"].items():
                if not (isinstance(va, list | tuple) and len(va) == 2):
                    raise ValueError(f"circumplex.{name}: expected [valence, arousal], got {va!r}")
            raw["circumplex"] = {**DEFAULT_CIRCUMPLEX, **raw["circumplex"]}
        return raw

    def __post_init__(self) -> None:
        # built in code (FusionConfig(tau_s=5.0)) the raw table has not been through prepare
        tau_s, circumplex = self.prepare({"tau_s": self.tau_s, "circumplex": self.circumplex}).values()
        msgspec.structs.force_setattr(self, "tau_s", tau_s)
        msgspec.structs.force_setattr(self, "circumplex", circumplex)
        _known_modalities(tau_s=self.tau_s, reliability=self.reliability)
        for name, tau in self.tau_s.items():
            if not (math.isfinite(tau) and tau > 0):
                raise ValueError(f"tau_s: tau of '{name}' must be a finite number > 0, got {tau}")
        for name, w in self.reliability.items():
            if not (math.isfinite(w) and 0 <= w <= 1):
                raise ValueError(f"reliability: reliability of '{name}' must be in [0, 1], got {w}")
        unknown = sorted(set(self.circumplex) - set(DEFAULT_CIRCUMPLEX))
        if unknown:
            raise ValueError(f"circumplex: unknown labels {unknown}; expected {sorted(DEFAULT_CIRCUMPLEX)}")
        for name, (val, aro) in self.circumplex.items():
            if not (-1 <= val <= 1 and -1 <= aro <= 1):
                raise ValueError(f"circumplex: '{name}' must lie in [-1, 1] x [-1, 1], got {(val, aro)}")

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


def _told(modality: str) -> bool:
    m = MODALITIES.get(modality)
    return m is not None and m.told
