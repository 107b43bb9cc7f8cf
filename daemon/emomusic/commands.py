"""Strict parsing of what arrives over MQTT: command topics and other devices' emotions.

Every payload is checked for size, UTF-8, and a closed set of values; anything else raises
:class:`PayloadError` with a one-line reason that the daemon publishes on ``…/error``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emomusic.config.music import MODES
from emomusic.labels import ALL_LABELS, normalize_label
from emomusic.listener.store import write_json
from emomusic.messages import Observation

log = logging.getLogger("emomusic.commands")

PLAYER_ACTIONS = ("play", "pause", "toggle", "skip", "like", "dislike")
COMMAND_TOPICS = ("mode/set", "volume/set", "player/set", "mood/set", "feedback/set")


class PayloadError(ValueError):
    """A payload that was rejected; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Handover:
    """The controls a room adopts with the music it takes over (house/follow.py)."""

    mode: str
    mood: str
    volume: int


@dataclass(frozen=True, slots=True)
class Command:
    """A validated command: ``kind`` is 'mode', 'volume' (0-100), 'player', 'mood' (the fixed mood),
    'feedback' (the listener says how they feel: an emotion label), or 'takeover' (made by the daemon
    only, house/follow.py: ``value`` the room the listener came from, ``target`` the next track, ``paths``
    what played there, ``handover`` its controls: one command, so the music stage adopts the controls and
    the track in one step and never shows the other room's mode with its own music)."""

    kind: str
    value: str | int
    target: str = ""  # like/dislike of a named track (its path or title) instead of the current one
    paths: tuple[str, ...] = ()
    handover: Handover | None = None


CONTROLS_FILE = "controls.json"  # in the state dir: what the user set survives a restart


@dataclass
class Controls:
    """What the user steers: the music mode, volume and fixed mood. One instance, owned by the daemon;
    the music stage reads it and acts on the changes. With a ``path`` every change is saved there
    (atomically), and ``restore`` reads it back at start: the config's values are only the defaults
    of a first start."""

    mode: str
    volume: int
    mood: str
    path: Path | None = field(default=None, compare=False)

    def apply(self, cmd: Command) -> bool:
        """Take a mode, volume or mood command; False for commands that change no control (player)."""
        before = (self.mode, self.volume, self.mood)
        if cmd.kind == "mode":
            self.mode = str(cmd.value)
        elif cmd.kind == "volume":
            self.volume = int(cmd.value)
        elif cmd.kind == "mood":
            self.mood, self.mode = str(cmd.value), "fixed"
        else:
            return False
        self._save_if_changed(before)
        return True

    def adopt(self, h: Handover) -> bool:
        """Another room's controls, with its music (applied by the music stage, in the same step as the
        track: not by ``apply``); whether anything changed."""
        before = (self.mode, self.volume, self.mood)
        self.mode, self.volume, self.mood = h.mode, h.volume, h.mood if h.mode == "fixed" else self.mood
        return self._save_if_changed(before)

    def _save_if_changed(self, before: tuple[str, int, str]) -> bool:
        changed = (self.mode, self.volume, self.mood) != before
        if changed:
            self.save()
        return changed

    def save(self) -> None:
        if self.path is None:
            return
        try:
            write_json(self.path, {"mode": self.mode, "volume": self.volume, "mood": self.mood})
        except OSError as e:  # a read-only or full state dir: the controls still work, until a restart
            log.warning("controls not saved to %s (%s); they will reset at the next start", self.path, e.strerror)

    @classmethod
    def restore(cls, mode: str, volume: int, mood: str, path: Path) -> Controls:
        """The controls saved in ``path``, each value checked; the given defaults for what is missing,
        unreadable or invalid (said in one line)."""
        controls = cls(mode, volume, mood, path)
        if not path.exists():
            return controls
        try:
            saved = json.loads(path.read_text())
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
            for key in ("mode", "volume", "mood"):  # the same checks as the MQTT command of each
                if key in saved:
                    value = parse_command(f"{key}/set", str(saved[key]).encode(), 100).value
                    setattr(controls, key, value)
        except (OSError, ValueError) as e:
            log.warning("%s: saved controls unusable (%s); using the config's", path, e)
            return cls(mode, volume, mood, path)
        return controls


def decode_text(payload: bytes, max_bytes: int) -> str:
    if len(payload) > max_bytes:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the limit of {max_bytes}")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("payload is not valid UTF-8") from None


def _loads(text: str) -> Any:
    """json.loads that fails only with PayloadError: also for nesting deep enough to exhaust the stack
    and for integers past Python's 4300-digit conversion limit."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PayloadError(f"invalid JSON: {e.msg} at char {e.pos}") from None
    except RecursionError:
        raise PayloadError("invalid JSON: nested too deeply") from None
    except ValueError as e:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise PayloadError(f"invalid JSON: {str(e)[:80]}") from None


def _unwrap_json_string(text: str) -> str:
    """Accept ``"skip"`` as well as ``skip`` (Node-RED often sends JSON strings)."""
    if text.startswith('"'):
        try:
            value = _loads(text)
        except PayloadError:
            raise PayloadError("payload starts with '\"' but is not a JSON string") from None
        if not isinstance(value, str):
            raise PayloadError("expected a string")
        return value.strip()
    return text


def parse_command(subtopic: str, payload: bytes, max_bytes: int) -> Command:
    """Parse the payload of ``<prefix>/<subtopic>``."""
    text = _unwrap_json_string(decode_text(payload, max_bytes))
    parser = _PARSERS.get(subtopic)
    if parser is None:
        raise PayloadError(f"unknown command topic {subtopic!r}")
    return parser(text)


def _mode(text: str) -> Command:
    mode = text.lower()
    if mode not in MODES:
        raise PayloadError(f"expected one of {', '.join(MODES)}, got {text[:40]!r}")
    return Command("mode", mode)


def _volume(text: str) -> Command:
    try:
        value = float(text)
    except ValueError:
        raise PayloadError(f"expected a number 0-100, got {text[:40]!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise PayloadError(f"expected a number 0-100, got {text[:40]!r}")
    return Command("volume", round(value))


def _player(text: str) -> Command:
    if text.startswith("{"):
        return _track_opinion(text)
    action = text.lower()
    if action not in PLAYER_ACTIONS:
        raise PayloadError(f"expected one of {', '.join(PLAYER_ACTIONS)}, got {text[:40]!r}")
    return Command("player", action)


def _mood(text: str) -> Command:
    label = normalize_label(text)
    if label is None:
        raise PayloadError(f"expected one of {', '.join(ALL_LABELS)}, got {text[:40]!r}")
    return Command("mood", label)


def _track_opinion(text: str) -> Command:
    """``{"action": "like", "track": "<path or title>"}``: an opinion of a track that is not playing
    (the undo of a dislike)."""
    data = _loads(text)
    shape = 'expected {"action": "like" or "dislike", "track": "<path or title>"}'
    if not isinstance(data, dict) or data.get("action") not in ("like", "dislike"):
        raise PayloadError(shape)
    track = data.get("track")
    if not isinstance(track, str) or not track.strip():
        raise PayloadError(shape)
    return Command("player", data["action"], track.strip())


def _feeling(text: str) -> str:
    """``sad`` or ``{"emotion": "sad"}``: the label the listener chose."""
    if text.startswith("{"):
        data = _loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("emotion"), str):
            raise PayloadError('expected an emotion label or {"emotion": "<label>"}')
        text = data["emotion"]
    label = normalize_label(text)
    if label is None:
        raise PayloadError(f"expected one of {', '.join(ALL_LABELS)}, got {text[:40]!r}")
    return label


def parse_external_emotion(payload: bytes, max_bytes: int, t: float, modality: str = "external") -> Observation:
    """``{"emotion": "happy", "confidence": 0.8}`` or a bare label -> an observation."""
    text = decode_text(payload, max_bytes)
    confidence: Any = 1.0
    if text.startswith("{") or text.startswith('"'):
        data = _loads(text)
        if isinstance(data, str):
            label_text = data
        elif isinstance(data, dict):
            emotion = data.get("emotion")
            if not isinstance(emotion, str):
                raise PayloadError('expected {"emotion": "<label>", "confidence": 0..1}')
            label_text = emotion
            confidence = data.get("confidence", 1.0)
        else:
            raise PayloadError('expected {"emotion": "<label>", "confidence": 0..1} or a bare label')
    else:
        label_text = text
    label = normalize_label(label_text)
    if label is None:
        raise PayloadError(f"unknown emotion {label_text[:40]!r}; expected one of {', '.join(ALL_LABELS)}")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise PayloadError("confidence must be a number in [0, 1]")
    try:
        value = float(confidence)  # an int too large for a float raises OverflowError
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise PayloadError(f"confidence must be in [0, 1], got {str(confidence)[:40]}")
    return Observation(modality=modality, t=t, probabilities={label: 1.0}, confidence=value)


_PARSERS: dict[str, Callable[[str], Command]] = {
    "mode/set": _mode, "volume/set": _volume, "player/set": _player, "mood/set": _mood,
    "feedback/set": lambda text: Command("feedback", _feeling(text)),
}
