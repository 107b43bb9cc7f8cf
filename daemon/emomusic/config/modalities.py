"""The modalities: every kind of evidence fusion weighs, in one registry.

Adding one is an analyzer module and one ``register`` line; the rest reads this: the analyzer
workers (``service.workers``), fusion's default decay and reliability (``config.fusion``), the
MQTT topic ``…/modality/<name>`` and its Home Assistant sensor, the replay's JSON lines and the
listener profile's per-listener calibration.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Modality:
    name: str
    label: str  # for people (Home Assistant's "Face emotion")
    source: str | None  # "camera" or "microphone": what feeds its analyzer; None: told (MQTT, the listener)
    analyzer: str | None  # "module:function(cfg, context) -> analyzer", imported when the daemon starts
    tau_s: float  # default decay of its evidence (fusion.tau_s overrides)
    reliability: float  # default weight (fusion.reliability overrides)
    calibrated: bool = False  # the listener's "I feel …" fits a per-listener correction of its readings
    told: bool = False  # the listener's own word: obeyed at once, the latest replaces the one before


MODALITIES: dict[str, Modality] = {}


def register(m: Modality) -> Modality:
    """Add (or replace) a modality; returns it."""
    MODALITIES[m.name] = m
    return m


def fed_by(source: str) -> list[Modality]:
    """The modalities whose analyzers read ``source``."""
    return [m for m in MODALITIES.values() if m.source == source and m.analyzer is not None]


# Defaults chosen on held-out scenarios (docs/PROOF.md): the face is pooled over its own window and
# forgotten fast, speech comes in bursts and is kept over pauses. Reliability: the accuracy measured when
# fusion was tuned (the voice's today's 72 % as its weight scored no better on the scenarios, 2026-12-05).
FACE = register(Modality("face", "Face", "camera", "emomusic.face.analyzer:build", 0.5, 0.81, calibrated=True))
# The voice learns from the listener's statements itself, per voice (voice/personal.py; not calibrated here).
VOICE = register(Modality("voice", "Voice", "microphone", "emomusic.voice.analyzer:build", 3.0, 0.65))
EXTERNAL = register(Modality("external", "Other devices", None, None, 10.0, 0.5))
LISTENER = register(Modality("listener", "The listener", None, None, 60.0, 1.0, told=True))
