"""Fusion on synthetic observation streams: decay, staleness, hysteresis, reliability."""

from __future__ import annotations

import math

import pytest

from emomusic.config.fusion import FusionConfig
from emomusic.fusion.fuser import UNKNOWN, Fusion
from emomusic.labels import FACE_LABELS, VOICE_LABELS
from emomusic.messages import Observation


def obs(modality: str, t: float, label: str, p: float = 0.8, conf: float = 1.0) -> Observation:
    labels = FACE_LABELS if modality == "face" else VOICE_LABELS
    rest = (1 - p) / (len(labels) - 1)
    return Observation(modality, t, {n: (p if n == label else rest) for n in labels}, conf)


def cfg(**kw: object) -> FusionConfig:
    base = {"tau_s": 4.0, "stale_after_s": 10.0, "margin": 0.1, "hold_s": 2.0}
    return FusionConfig(**(base | kw))


def test_no_evidence_is_unknown() -> None:
    s = Fusion(cfg()).update(0.0)
    assert (s.emotion, s.confidence, s.valence, s.arousal, s.modalities) == (UNKNOWN, 0.0, 0.0, 0.0, {})


def test_first_evidence_is_adopted_at_once_and_maps_to_the_circumplex() -> None:
    f = Fusion(cfg())
    f.add(obs("face", 0.0, "happy", p=1.0))
    s = f.update(0.0)
    assert s.emotion == "happy"
    assert (s.valence, s.arousal) == pytest.approx(f.cfg.circumplex["happy"])
    assert math.isclose(sum(s.probabilities.values()), 1.0)


def test_weight_decays_exponentially_with_age() -> None:
    f = Fusion(cfg())
    f.add(obs("face", 0.0, "sad"))
    w0 = f.estimates(0.0)["face"].weight
    w4 = f.estimates(4.0)["face"].weight
    assert w4 == pytest.approx(w0 * math.exp(-1.0))
    assert f.estimates(4.0)["face"].age_s == pytest.approx(4.0)


def test_old_evidence_decays_so_new_evidence_wins_within_the_modality() -> None:
    f = Fusion(cfg())
    for i in range(10):
        f.add(obs("face", i * 0.2, "sad"))
    for i in range(10):
        f.add(obs("face", 20 + i * 0.2, "happy"))
    est = f.estimates(22.0)["face"]
    assert est.emotion == "happy"
    assert est.probabilities["sad"] < 0.05


def test_stale_modality_contributes_nothing_and_the_state_fades_to_unknown() -> None:
    f = Fusion(cfg(stale_after_s=5.0))
    f.add(obs("voice", 0.0, "angry"))
    f.add(obs("face", 4.0, "happy"))
    assert set(f.estimates(5.0)) == {"voice", "face"}
    assert set(f.estimates(5.1)) == {"face"}
    assert f.update(5.1).modalities.keys() == {"face"}
    assert f.update(9.5).emotion == UNKNOWN


def test_rate_does_not_outvote_an_equally_reliable_modality() -> None:
    f = Fusion(cfg(reliability={"face": 0.7, "voice": 0.7}))
    for i in range(25):  # face at 5 fps
        f.add(obs("face", i * 0.2, "happy"))
    for i in range(5):  # voice once a second
        f.add(obs("voice", i * 1.0 + 0.8, "sad"))
    est = f.estimates(5.0)
    assert est["face"].weight == pytest.approx(est["voice"].weight, rel=0.25)


def test_reliability_and_confidence_weight_the_modalities() -> None:
    f = Fusion(cfg(reliability={"face": 0.9, "voice": 0.3}))
    f.add(obs("face", 0.0, "happy"))
    f.add(obs("voice", 0.0, "sad"))
    assert f.update(0.0).emotion == "happy"
    g = Fusion(cfg(reliability={"face": 0.5, "voice": 0.5}))
    g.add(obs("face", 0.0, "happy", conf=0.2))
    g.add(obs("voice", 0.0, "sad", conf=1.0))
    assert g.update(0.0).emotion == "sad"


def test_hysteresis_needs_margin_and_hold_time() -> None:
    f = Fusion(cfg(tau_s=0.5, hold_s=2.0, margin=0.1, jump_margin=1.0))
    f.add(obs("face", 0.0, "happy"))
    assert f.update(0.0).emotion == "happy"
    # Sadness takes the lead clearly from t=10: the label follows only after the hold time.
    labels = {}
    for i in range(0, 31):
        t = 10 + i * 0.1
        f.add(obs("face", t, "sad"))
        labels[round(t, 1)] = f.update(t).emotion
    assert labels[10.0] == "happy"
    assert labels[11.5] == "happy"
    assert labels[13.0] == "sad"


def test_a_clear_jump_skips_the_hold_but_a_small_lead_waits_for_it() -> None:
    f = Fusion(cfg(tau_s=0.5, hold_s=2.0, margin=0.1, jump_margin=0.5))
    f.add(Observation("face", 0.0, {"happy": 0.9, "sad": 0.1}, 1.0))
    assert f.update(0.0).emotion == "happy"
    f.add(Observation("face", 5.0, {"happy": 0.4, "sad": 0.6}, 1.0))  # leads by 0.2: held
    assert f.update(5.0).emotion == "happy"
    f.add(Observation("face", 10.0, {"happy": 0.05, "sad": 0.95}, 1.0))  # leads by 0.9: at once
    assert f.update(10.0).emotion == "sad"


def test_a_lead_below_the_margin_never_switches() -> None:
    f = Fusion(cfg(margin=0.3, hold_s=0.0))
    f.add(Observation("face", 0.0, {"happy": 0.6, "sad": 0.4}, 1.0))
    assert f.update(0.0).emotion == "happy"
    for i in range(50):
        f.add(Observation("face", 0.1 * i, {"happy": 0.45, "sad": 0.55}, 1.0))
        assert f.update(0.1 * i).emotion == "happy"


def test_flapping_leader_resets_the_hold() -> None:
    f = Fusion(cfg(tau_s=0.1, hold_s=1.0, jump_margin=1.0))
    f.add(obs("face", 0.0, "happy"))
    f.update(0.0)
    for i in range(40):  # alternates every 0.5 s: never held for 1 s
        t = 1 + i * 0.1
        f.add(obs("face", t, "sad" if (i // 5) % 2 == 0 else "happy"))
        assert f.update(t).emotion == "happy"


@pytest.mark.parametrize(
    "bad",
    [
        Observation("face", 0.0, {"happy": float("nan")}, 1.0),
        Observation("face", 0.0, {"happy": 1.0}, float("inf")),
        Observation("face", 0.0, {"happy": 1.0}, 1.5),
        Observation("face", 0.0, {"elated": 1.0}, 1.0),
        Observation("face", 0.0, {"happy": 0.0}, 1.0),
        Observation("face", float("nan"), {"happy": 1.0}, 1.0),
    ],
)
def test_invalid_observations_are_rejected_and_leave_state_valid(bad: Observation) -> None:
    f = Fusion(cfg())
    with pytest.raises(ValueError):
        f.add(bad)
    assert f.update(1.0).emotion == UNKNOWN


def test_confidence_grows_with_agreeing_modalities() -> None:
    one = Fusion(cfg())
    one.add(obs("face", 0.0, "happy"))
    both = Fusion(cfg())
    both.add(obs("face", 0.0, "happy"))
    both.add(obs("voice", 0.0, "happy"))
    assert 0 < one.update(0.0).confidence < both.update(0.0).confidence <= 1


def provisional(t: float, label: str, conf: float) -> Observation:
    return Observation("voice", t, obs("voice", t, label).probabilities, conf, provisional=True)


def test_a_provisional_reading_counts_until_the_modalitys_next_reading_replaces_it() -> None:
    """A voice's first second (#32) answers at once, and the whole window's reading takes its place
    instead of adding to it: afterwards the state is what it would have been without it."""
    with_it, only_last, without = Fusion(cfg()), Fusion(cfg()), Fusion(cfg())
    for f in (with_it, only_last, without):
        f.add(obs("voice", 0.0, "happy"))
    with_it.add(provisional(1.0, "sad", 0.5))
    sad = with_it.estimates(1.0)["voice"].probabilities["sad"]
    assert with_it.estimates(1.0)["voice"].provisional and not without.estimates(1.0)["voice"].provisional
    assert sad > without.estimates(1.0)["voice"].probabilities["sad"] + 0.1
    with_it.add(provisional(1.5, "angry", 0.4))  # a newer provisional reading replaces the older one
    only_last.add(provisional(1.5, "angry", 0.4))
    a, b = with_it.estimates(1.5)["voice"], only_last.estimates(1.5)["voice"]
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-12) and a.weight == pytest.approx(b.weight)
    assert a.probabilities["sad"] < sad - 0.1
    for f in (with_it, without):
        f.add(obs("voice", 2.0, "happy"))
    a, b = with_it.estimates(2.5)["voice"], without.estimates(2.5)["voice"]
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-12) and a.weight == pytest.approx(b.weight)
    assert not a.provisional
