"""Replay: the real pipeline on files into JSON lines, stream-time ordering, and the scenario metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from emomusic.cli.replay import JsonlSink, run_replay
from emomusic.config import parse_config
from emomusic.sources.samples import ensure_samples

from fakes import factories

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from evaluate import scenario_metrics  # noqa: E402


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_samples(tmp_path_factory.mktemp("s"))


def test_fast_replay_is_ordered_complete_and_repeatable(tmp_path: Path, samples: tuple[Path, Path]) -> None:
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}}, env={})
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}.jsonl"
        n = run_replay(cfg, str(samples[0]), str(samples[1]), out, fast=True,
                       analyzers=factories(face="happy", voice="sad"))
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert n == len(rows) > 100
        outs.append(rows)
    rows = outs[0]
    ts = [r["t"] for r in rows]
    assert ts == sorted(ts)  # merged in stream-time order
    assert 0.0 <= ts[0] < 1.0 and ts[-1] > 15.0  # the whole 20 s video, on its own clock
    assert {"face", "voice"} <= {m for r in rows for m in r["modalities"]}
    assert outs[0] == outs[1]  # the same files give the same timeline
    assert all(set(r) >= {"t", "emotion", "probabilities", "valence", "arousal", "modalities"} for r in rows)


def test_jsonl_sink_line_format(tmp_path: Path) -> None:
    from emomusic.messages import FusedState, ModalityEstimate

    path = tmp_path / "x.jsonl"
    with open(path, "w") as f:
        sink = JsonlSink(f, t0=10.0)
        est = ModalityEstimate("face", "happy", {"happy": 0.9, "sad": 0.1}, 0.7, 0.2)
        sink.on_state(FusedState(12.5, "happy", 0.6, 0.7, 0.4, {"happy": 0.9, "sad": 0.1}, {"face": est}))
    row = json.loads(path.read_text())
    assert row["t"] == 2.5 and row["modalities"]["face"]["probabilities"]["happy"] == 0.9


def row(t: float, fused: str, face: str | None = None, voice: str | None = None) -> dict:
    mods = {k: {"emotion": v} for k, v in (("face", face), ("voice", voice)) if v}
    return {"t": t, "emotion": fused, "modalities": mods}


def test_scenario_metrics_on_a_constructed_timeline() -> None:
    truth = [(0.0, 10.0, "happy"), (10.0, 20.0, "sad")]
    rows = [row(0.0, "neutral", "neutral"), row(1.0, "happy", "happy", "happy"), row(12.0, "sad", "sad"),
            row(15.0, "angry", "sad", "angry"), row(16.0, "sad", "sad", "sad")]
    m = scenario_metrics(rows, truth, settle_s=3.0, step=0.5)
    # scored: 3-10 s (14 samples, fused right) and 13-20 s (14 samples; 15-16 s wrong = 2 samples)
    assert m["fused_accuracy"] == pytest.approx(26 / 28, abs=1e-3)
    assert m["face_accuracy"] == pytest.approx(1.0)
    assert m["voice_accuracy"] == pytest.approx((14 + 0 + 8) / 28, abs=1e-3)
    assert m["reactions_s"] == [1.0, 2.0] and m["median_reaction_s"] == 1.5
    assert m["median_reaction_after_change_s"] == 2.0  # the first segment starts from nothing, not a change
    # label changes: neutral->happy->sad->angry->sad = 4 over 20 s; truth changes once
    assert m["flips_per_min"] == pytest.approx(12.0) and m["flips_beyond_truth_per_min"] == pytest.approx(9.0)
