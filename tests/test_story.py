"""The sample story a first run shows (README's quick start): through the real models, on both
backends and with either face classifier (``face.classifier`` auto picks one by the CPU), each settled
scene leads its runner-up by a clear margin, and the music re-plans for the listener's move within the
first two minutes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from emomusic.cli.replay import run_replay
from emomusic.config import parse_config
from emomusic.messages import FusedState
from emomusic.music.controller import MusicController
from emomusic.music.demo import DEMO_PIECES, DEMO_SECONDS
from emomusic.music.library import Track
from emomusic.music.moods import mood_to_va
from emomusic.music.settings import MusicSettings
from emomusic.sources.samples import STORY, STORY_MARGIN, ensure_samples, scene_readings

from fakes import FakeLibrary, FakePlayer

# The scene's label must lead the runner-up by STORY_MARGIN (0.2) in fused probability, averaged over the
# scene once settled: measured here 0.34 (neutral, the face alone; 0.30 at 5 frames a second), 0.40 (sad, the
# voice alone; 0.34 before its provisional first second, 0.42 with the linear voice head before 2026-12-05) and
# 0.42 (happy), on a CPU without VNNI, LiteRT alike; int8 kernels of other CPUs move single readings by about 0.01.
# The small face classifier (2026-12-05, a Xeon with VNNI, both backends): neutral 0.54-0.55, sad 0.40, happy 0.42.
# The int8 copies with their first block in float (2026-12-05, an EPYC with VNNI): neutral 0.34 (large), 0.55 (small).
FIRST_RUN_S = 120.0  # the README promises the re-plan within the first two minutes


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_samples(tmp_path_factory.mktemp("story"))


RUNS = [(backend, size) for backend in ("onnxruntime", "tflite") for size in ("large", "small")]


@pytest.fixture(scope="module")
def replayed(story: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The story replayed (as fast as it goes, on the stream's clock) through each backend and face classifier."""
    out = {}
    for backend, size in RUNS:
        tmp = tmp_path_factory.mktemp(f"{backend}-{size}")
        cfg = parse_config({"device": {"state_dir": str(tmp / "state")}, "models": {"backend": backend},
                            "face": {"classifier": size}}, env={})
        run_replay(cfg, str(story[0]), str(story[1]), tmp / "story.jsonl", fast=True)
        lines = [json.loads(line) for line in (tmp / "story.jsonl").read_text().splitlines()]
        out[f"{backend} {size}"] = lines
    return out


@pytest.mark.parametrize(("backend", "size"), RUNS)
def test_each_scene_leads_by_a_clear_margin(replayed: dict[str, list[dict[str, Any]]], backend: str,
                                            size: str) -> None:
    for r in scene_readings(replayed[f"{backend} {size}"]):
        assert r.states >= 10, f"{r.scene.shows}: only {r.states} fused states"
        assert r.margin >= STORY_MARGIN and r.share >= 0.9, (
            f"{backend}, the {size} face classifier, {r.scene.shows}: leads {r.runner_up} by {r.margin:+.2f}, "
            f"labelled so {r.share:.0%} of the time")


@pytest.mark.parametrize("size", ["large", "small"])
@pytest.mark.parametrize("music_starts_at", [0.0, 20.0])  # at once, or after a first run's demo library is made
def test_the_music_replans_for_the_listener_within_two_minutes(replayed: dict[str, list[dict[str, Any]]],
                                                                music_starts_at: float, size: str) -> None:
    """The story's fused states, on their own clock, into the music stage (demo tracks as their mood tags
    place them): the README's "listener moved … and held it for 30 s" comes before two minutes are up."""
    tracks = []
    for i, (title, *_, mood, _ext) in enumerate(DEMO_PIECES):
        va = mood_to_va(mood)
        assert va is not None
        tracks.append(Track(i + 1, f"/demo/{i}", title, "emomusic demo", DEMO_SECONDS, va[0], va[1], "tag", mood))
    now = [0.0]
    cfg = parse_config({"device": {"state_dir": tempfile.mkdtemp()}}, env={})
    mc = MusicController(MusicSettings.of(cfg), clock=lambda: now[0])
    mc.library, mc.player = FakeLibrary(tracks), FakePlayer()  # type: ignore[assignment]
    moved_at = None
    for r in replayed[f"onnxruntime {size}"]:
        if r["t"] < music_starts_at:
            continue
        now[0] = r["t"]
        if mc.current is not None and now[0] - mc.started_at >= DEMO_SECONDS:
            mc.player.done = True
        mc.on_state(FusedState(r["t"], r["emotion"], r["confidence"], r["valence"] or 0.0, r["arousal"] or 0.0,
                               r["probabilities"], {}))
        mc.step()
        if moved_at is None and any("held it for 30 s" in d for d in mc.decisions):
            moved_at = now[0]
    assert moved_at is not None and moved_at < FIRST_RUN_S - 15, (moved_at, mc.decisions)
    held = next(d for d in mc.decisions if "held it for 30 s" in d)
    assert "to v=-" in held  # the sad scene: valence below zero


def test_the_story_fits_the_dwell_time() -> None:
    assert [s.shows for s in STORY] == ["happy", "sad", "neutral"]
    assert all(s.seconds > 30.0 for s in STORY) and DEMO_SECONDS > STORY[0].seconds
