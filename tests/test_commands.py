"""Strict parsing of command and external-emotion payloads."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emomusic.commands import Command, PayloadError, parse_command, parse_external_emotion


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("mode/set", b"regulate", Command("mode", "regulate")),
        ("mode/set", b'"OFF"', Command("mode", "off")),
        ("volume/set", b"55", Command("volume", 55)),
        ("volume/set", b"42.6", Command("volume", 43)),
        ("player/set", b" skip\n", Command("player", "skip")),
        ("player/set", b"Pause", Command("player", "pause")),
        ("player/set", b"Dislike", Command("player", "dislike")),
        ("player/set", b'{"action": "like", "track": " Song 2 "}', Command("player", "like", "Song 2")),
        ("feedback/set", b"sad", Command("feedback", "sad")),
        ("feedback/set", b'"Happiness"', Command("feedback", "happy")),
        ("feedback/set", b'{"emotion": "fear"}', Command("feedback", "fearful")),
    ],
)
def test_valid_commands(topic: str, payload: bytes, expected: Command) -> None:
    assert parse_command(topic, payload, 1024) == expected


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("mode/set", b"party", "expected one of match, regulate, fixed, off"),
        ("volume/set", b"loud", "expected a number 0-100"),
        ("volume/set", b"101", "expected a number 0-100"),
        ("volume/set", b"nan", "expected a number 0-100"),
        ("volume/set", b"-inf", "expected a number 0-100"),
        ("player/set", b"rewind", "expected one of play, pause, toggle, skip"),
        ("player/set", b"\xff\xfe", "not valid UTF-8"),
        ("player/set", b"x" * 2000, "exceeds the limit of 1024"),
        ("player/set", b'"unterminated', "not a JSON string"),
        ("player/set", b'"5', "not a JSON string"),
        ("other/set", b"x", "unknown command topic"),
        ("feedback/set", b"bored", "expected one of neutral"),
        ("feedback/set", b'{"feeling": "sad"}', 'expected an emotion label or {"emotion"'),
        ("feedback/set", b'{"emotion": 3}', 'expected an emotion label or {"emotion"'),
        ("player/set", b'{"action": "skip", "track": "x"}', 'expected {"action": "like" or "dislike"'),
        ("player/set", b'{"action": "like"}', 'expected {"action": "like" or "dislike"'),
        ("player/set", b"love", "expected one of play, pause, toggle, skip, like, dislike"),
    ],
)
def test_invalid_commands_say_why(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=re.escape(reason)):
        parse_command(topic, payload, 1024)


@pytest.mark.parametrize(
    ("payload", "label", "confidence"),
    [
        (b"happy", "happy", 1.0),
        (b"  Anger ", "angry", 1.0),
        (b'{"emotion": "sadness", "confidence": 0.4}', "sad", 0.4),
        (b'{"emotion": "calm"}', "calm", 1.0),
        (b'"surprise"', "surprised", 1.0),
    ],
)
def test_external_emotion_forms(payload: bytes, label: str, confidence: float) -> None:
    o = parse_external_emotion(payload, 1024, t=5.0)
    assert (o.modality, o.t, o.probabilities, o.confidence) == ("external", 5.0, {label: 1.0}, confidence)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"ecstatic", "unknown emotion"),
        (b'{"emotion": 3}', "expected"),
        (b'{"mood": "happy"}', "expected"),
        (b"[1, 2]", "unknown emotion"),
        (b'{"emotion": "happy", "confidence": "high"}', "confidence must be a number"),
        (b'{"emotion": "happy", "confidence": true}', "confidence must be a number"),
        (b'{"emotion": "happy", "confidence": 1.5}', "confidence must be in"),
        (b'{"emotion": "happy", "confidence": NaN}', "confidence must be in"),
        (b'{"emotion": "happy", "confidence": -Infinity}', "confidence must be in"),
        (b'{"emotion": "happy"', "invalid JSON"),
        (b"\xc3\x28", "not valid UTF-8"),
    ],
)
def test_external_emotion_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_external_emotion(payload, 1024, t=0.0)


@given(st.binary(max_size=2048), st.sampled_from(["mode/set", "volume/set", "player/set"]))
def test_any_bytes_give_a_valid_command_or_a_payload_error(payload: bytes, topic: str) -> None:
    try:
        cmd = parse_command(topic, payload, 1024)
    except PayloadError:
        return
    assert cmd.kind in ("mode", "volume", "player")
    if cmd.kind == "volume":
        assert isinstance(cmd.value, int) and 0 <= cmd.value <= 100


@given(st.one_of(st.binary(max_size=512), st.builds(lambda d: __import__("json").dumps(d).encode(),
       st.dictionaries(st.sampled_from(["emotion", "confidence", "x"]),
                       st.one_of(st.text(max_size=12), st.floats(), st.integers(), st.none())))))
def test_any_external_payload_gives_a_valid_observation_or_a_payload_error(payload: bytes) -> None:
    try:
        o = parse_external_emotion(payload, 1024, t=0.0)
    except PayloadError:
        return
    assert math.isfinite(o.confidence) and 0 <= o.confidence <= 1
    assert list(o.probabilities.values()) == [1.0]
