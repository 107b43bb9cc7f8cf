"""The listener in the loop (issue #18): controls that survive a restart, "I feel …" (fusion and calibration),
like/dislike, and the listener profile."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emomusic.commands import CONTROLS_FILE, Command, Controls
from emomusic.listener.calibration import Calibration, fit
from emomusic.listener.profile import PROFILE_FILE, ListenerProfile
from emomusic.messages import Observation
from emomusic.service.daemon import Daemon

from conftest import Broker, Probe, daemon_config, wait
from fakes import factories

PREFIX = "emomusic/listener"


def run_until_stopped(cfg: object) -> tuple[Daemon, threading.Thread]:
    d = Daemon(cfg, analyzers={})  # type: ignore[arg-type]
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    return d, t


def test_controls_set_over_mqtt_are_restored_after_a_restart(
        broker: Broker, tmp_path: Path, probe_factory: Callable[..., Probe]) -> None:
    cfg = daemon_config(broker, tmp_path, "listener", camera={"enabled": False}, microphone={"enabled": False})
    first, thread = run_until_stopped(cfg)
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    probe.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online")
    probe.publish(f"{PREFIX}/volume/set", "35")
    probe.publish(f"{PREFIX}/mood/set", "sad")  # sets the mode to fixed as well
    probe.wait_for(f"{PREFIX}/mood", lambda m: m.payload == b"sad")
    probe.wait_for(f"{PREFIX}/volume", lambda m: m.payload == b"35")
    first.request_stop()
    thread.join(10)
    assert json.loads((tmp_path / "state" / CONTROLS_FILE).read_text()) == {"mode": "fixed", "volume": 35,
                                                                           "mood": "sad"}
    for topic in ("mode", "volume", "mood"):  # clear the retained values: the restarted daemon must say them
        probe.publish(f"{PREFIX}/{topic}", b"", retain=True)
    again = probe_factory(broker.port, [f"{PREFIX}/#"])
    second, thread = run_until_stopped(cfg)  # the config still says match / 60 / its default mood
    try:
        again.wait_for(f"{PREFIX}/volume", lambda m: m.payload == b"35")
        again.wait_for(f"{PREFIX}/mode", lambda m: m.payload == b"fixed")
        again.wait_for(f"{PREFIX}/mood", lambda m: m.payload == b"sad")
        assert (second.controls.mode, second.controls.volume, second.controls.mood) == ("fixed", 35, "sad")
    finally:
        second.request_stop()
        thread.join(10)


@pytest.mark.parametrize("content", ['{"volume": 500}', "{not json", '["match"]', '{"mode": "loud"}'])
def test_unusable_saved_controls_fall_back_to_the_config_in_one_line(
        tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / CONTROLS_FILE
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="emomusic.commands"):
        c = Controls.restore("match", 60, "calm", path)
    assert (c.mode, c.volume, c.mood) == ("match", 60, "calm")
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()


def test_only_a_change_is_saved_and_a_read_only_state_dir_is_survived(tmp_path: Path) -> None:
    path = tmp_path / "state" / CONTROLS_FILE
    c = Controls.restore("match", 60, "calm", path)
    assert c.apply(Command("player", "skip")) is False and not path.exists()  # not a control
    assert c.apply(Command("volume", 60)) and not path.exists()  # no change: nothing written
    c.apply(Command("mode", "regulate"))
    assert json.loads(path.read_text())["mode"] == "regulate"
    blocked = Controls("match", 60, "calm", tmp_path / "file" / CONTROLS_FILE)
    (tmp_path / "file").write_text("a file where the state dir should be")
    assert blocked.apply(Command("volume", 20)) and blocked.volume == 20  # works, just not saved


# -- "I feel …": calibration, fusion, the profile ------------------------------------------------
FACE = ("neutral", "happy", "surprised", "sad", "angry", "disgust", "fearful", "contempt")


def face_obs(t: float, probs: dict[str, float], conf: float = 0.8) -> Observation:
    return Observation("face", t, {k: probs.get(k, 0.02) for k in FACE}, conf)


def test_calibration_starts_as_no_correction_and_learns_a_listeners_bias() -> None:
    rng = np.random.default_rng(0)
    # This listener's resting face reads as sad: the model says sad (0.5) over neutral (0.3).
    reads = np.array([[0.3, 0.05, 0.02, 0.5, 0.03, 0.03, 0.04, 0.03]]) + rng.uniform(0, 0.02, (12, 8))
    reads /= reads.sum(1, keepdims=True)
    none = fit(FACE, reads[:0], [])
    assert none.n == 0 and np.allclose(none.apply_vector(reads[0]), reads[0] / reads[0].sum())
    once = fit(FACE, reads[:1], [0])  # one statement moves it a little, not all the way
    many = fit(FACE, reads, [0] * 12)
    p1, p12 = once.apply_vector(reads[0]), many.apply_vector(reads[0])
    assert reads[0][0] < p1[0] < p12[0]
    assert FACE[int(p12.argmax())] == "neutral"
    assert Calibration.from_json(json.loads(json.dumps(many.to_json()))).to_json() == many.to_json()


def test_feeling_pairs_with_recent_output_and_corrects_later_observations(tmp_path: Path) -> None:
    profile = ListenerProfile(tmp_path / PROFILE_FILE)
    sadish = {"neutral": 0.3, "sad": 0.5}
    for k in range(10):
        for t in range(3):
            profile.calibrate(face_obs(100.0 * k + t, sadish))
        assert profile.feel("neutral", 100.0 * k + 3)["face"] == k + 1
    assert profile.feel("happy", 10_000.0) == {}  # nothing recent to pair with: only the event
    out = profile.calibrate(face_obs(20_000.0, sadish))
    assert out.top() == "neutral" and out.probabilities != face_obs(0, sadish).probabilities
    assert profile.calibrate(Observation("external", 0.0, {"sad": 1.0}, 1.0)).probabilities == {"sad": 1.0}
    again = ListenerProfile(tmp_path / PROFILE_FILE)  # a restart: the same correction
    assert again.summary()["feedback"] == 11 and again.summary()["feelings"] == {"neutral": 10, "happy": 1}
    assert again.calibrate(face_obs(0.0, sadish)).top() == "neutral"


def test_a_profile_deleted_on_disk_is_forgotten_and_an_unusable_one_moved_aside(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / PROFILE_FILE
    profile = ListenerProfile(path)
    profile.track_feedback("/music/a.ogg", "dislike")
    assert profile.banned() == {"/music/a.ogg"}
    ListenerProfile(path).reset()  # what `emomusic profile --reset` does while the daemon runs
    assert profile.refresh() and profile.banned() == set()
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="emomusic.listener"):
        fresh = ListenerProfile(path)
    assert fresh.summary()["feedback"] == 0 and len(caplog.records) == 1
    assert str(path) in caplog.records[0].getMessage()
    assert [p.read_text() for p in tmp_path.glob(f"{PROFILE_FILE}.unusable-*")] == ["{not json"]


def test_the_listeners_word_wins_at_once_and_fades_slowly() -> None:
    from emomusic.config.fusion import FEEDBACK_MODALITY, FusionConfig
    from emomusic.fusion.fuser import Fusion

    cfg = FusionConfig(hold_s=3.0)
    fusion = Fusion(cfg)
    for t in range(10):
        fusion.add(face_obs(t * 0.2, {"happy": 0.8}))
    assert fusion.update(2.0).emotion == "happy"
    fusion.add(Observation(FEEDBACK_MODALITY, 2.0, {"sad": 1.0}, 1.0))
    assert fusion.update(2.0).emotion == "sad"  # no hold: the listener said so
    for t in range(10, 60):  # a happy-looking face for 10 more seconds does not overrule it
        fusion.add(face_obs(t * 0.2, {"happy": 0.8}))
        assert fusion.update(t * 0.2).emotion == "sad"
    labels = []
    for t in range(60, 1500):  # minutes later the sensors have it again
        fusion.add(face_obs(t * 0.2, {"happy": 0.8}))
        labels.append(fusion.update(t * 0.2).emotion)
    assert labels[-1] == "happy" and FEEDBACK_MODALITY not in fusion.estimates(300.0)
    assert labels.index("happy") * 0.2 > 30  # a confident face takes it back after half a minute or more


def test_likes_move_a_track_only_near_its_mood_and_a_ban_holds() -> None:
    from emomusic.music.library import Track
    from emomusic.music.policy import pick

    def track(i: int, v: float) -> Track:
        return Track(i, f"/m/{i}.ogg", str(i), "", 60.0, v, 0.0, "tag", "")

    tracks = [track(1, 0.0), track(2, 0.1), track(3, 0.9)]
    assert [t.id for t in pick([(0.0, 0.0)], tracks, set())] == [1]
    assert [t.id for t in pick([(0.0, 0.0)], tracks, set(), prefer={2: 1.0})] == [2]  # liked, and near
    assert [t.id for t in pick([(0.0, 0.0)], tracks, set(), prefer={3: 1.0})] == [1]  # liked, but far
    assert [t.id for t in pick([(0.0, 0.0)] * 3, tracks, set(), banned={1})] == [2, 3]  # never, even if short


# -- against a real broker -------------------------------------------------------------------------
def cli(conf: Path, *words: str) -> subprocess.CompletedProcess[str]:
    cmd, *rest = words
    return subprocess.run([sys.executable, "-m", "emomusic", cmd, "--config", str(conf), *rest],
                          capture_output=True, text=True, timeout=60)


def cli_config(broker: Broker, tmp_path: Path) -> Path:
    conf = tmp_path / "cli.toml"
    conf.write_text(f'[device]\nid = "listener"\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
    return conf


def test_i_feel_sad_is_followed_within_seconds_and_kept_in_the_profile(
        broker: Broker, tmp_path: Path, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    cfg = daemon_config(broker, tmp_path, "listener", microphone={"enabled": False})
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    daemon = supervised(cfg, analyzers=factories(face="happy"))
    probe.wait_for(f"{PREFIX}/state", lambda m: m.json()["emotion"] == "happy", timeout=30)
    conf = cli_config(broker, tmp_path)
    n = len(probe.messages)
    sent = time.monotonic()
    assert cli(conf, "feel", "sad").returncode == 0
    probe.wait_for(f"{PREFIX}/state", lambda m: m.json()["emotion"] == "sad", timeout=5, after=n)
    assert time.monotonic() - sent < 5
    time.sleep(3)  # the happy face keeps coming; the state stays with the listener's word
    assert daemon.last_state is not None and daemon.last_state.emotion == "sad"
    probe.publish(f"{PREFIX}/feedback/set", '{"emotion": "anger"}')  # the JSON form, an alias
    probe.wait_for(f"{PREFIX}/state", lambda m: m.json()["emotion"] == "angry", timeout=5)
    probe.publish(f"{PREFIX}/feedback/set", "bored")
    assert "expected one of" in probe.wait_for(f"{PREFIX}/error", lambda m: b"feedback" in m.payload).json()["error"]
    shown = json.loads(cli(conf, "profile").stdout)  # read from the state dir while the daemon runs
    assert shown["feedback"] == 2 and shown["feelings"] == {"sad": 1, "angry": 1}
    assert shown["calibration"]["face"]["n"] == 2  # the happy-reading face was paired with both
    daemon.request_stop()
    again = Daemon(cfg, analyzers={})  # a restart: the profile is back
    assert again.profile.summary()["calibration"]["face"]["n"] == 2
    reset = cli(conf, "profile", "--reset")
    assert json.loads(reset.stdout)["feedback_forgotten"] == 2
    assert json.loads(cli(conf, "profile").stdout)["feedback"] == 0


def test_dislike_skips_now_keeps_the_track_out_and_like_lets_it_back(
        broker: Broker, tmp_path: Path, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    from emomusic.music.demo import synth_music, write_tagged

    music = tmp_path / "music"
    music.mkdir()
    for i in range(3):
        write_tagged(music / f"{i}.ogg", synth_music(30.0, 100, False, 0.5, seed=i), f"Song {i}", "calm", rate=16000)
    cfg = daemon_config(broker, tmp_path, "listener", camera={"enabled": False}, microphone={"enabled": False},
                        player={"enabled": True, "fade_ms": 0, "mode": "fixed", "fixed_mood": "calm"},
                        library={"folders": [str(music)], "min_track_s": 0})
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    daemon = supervised(cfg, analyzers={})
    first = probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["state"] == "playing", timeout=60).json()["title"]
    conf = cli_config(broker, tmp_path)
    n = len(probe.messages)
    sent = time.monotonic()
    assert cli(conf, "send", "player", "dislike").returncode == 0
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["title"] not in (first, None), timeout=8, after=n)
    assert time.monotonic() - sent < 8
    path = str(music / f"{first.split()[-1]}.ogg")
    assert daemon.profile.banned() == {path}
    for _ in range(2):  # the other two songs, over and over: never the disliked one
        probe.publish(f"{PREFIX}/player/set", "skip")
        time.sleep(0.5)
    assert first not in daemon.player.played[1:] and all(t.path != path for t in daemon.player.queue)
    skips = json.loads(cli(conf, "profile").stdout)["track_feedback"]
    assert skips == {"like": 0, "dislike": 1, "skip": 2, "pick": 0}  # skips seconds after the start: mild dislikes
    daemon.request_stop()
    daemon.player.join(10)  # pygame's mixer is one per process: the next daemon gets it after this one
    restarted = supervised(cfg, analyzers={})  # the ban survives a restart
    assert restarted.profile.banned() == {path}
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["state"] == "playing", timeout=60, after=len(probe.messages))
    probe.publish(f"{PREFIX}/player/set", json.dumps({"action": "like", "track": "No Such Song"}))
    assert "no track 'No Such Song'" in probe.wait_for(
        f"{PREFIX}/error", lambda m: b"No Such" in m.payload).json()["error"]
    probe.publish(f"{PREFIX}/player/set", json.dumps({"action": "like", "track": first.lower()}))  # the undo
    end = time.monotonic() + 8
    while restarted.profile.banned() and time.monotonic() < end:
        time.sleep(0.1)
    assert restarted.profile.banned() == set()


def test_simulated_feedback_corrects_a_speaker_the_model_misreads() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from feedback_sim import simulate

    rng = np.random.default_rng(1)
    labels = ["neutral", "happy", "sad"]

    def clip(y: int, shift: int) -> tuple[int, np.ndarray, None]:  # this speaker's neutral reads as sad
        p = rng.dirichlet(np.ones(3)) * 0.3
        p[y] += 0.5
        if y == 0 and shift:
            p[2] += 0.6
        return y, p / p.sum(), None  # (no model inputs: the calibration alone)

    speakers = {f"s{k}": [clip(y, 1) for y in (0, 1, 2) for _ in range(6)] for k in range(4)}
    misread = simulate(speakers, labels, 2, seed=0)
    assert misread["scored"] == 4 * 12 and misread["after"] > misread["before"] + 0.1
    fair = {f"s{k}": [clip(y, 0) for y in (0, 1, 2) for _ in range(6)] for k in range(4)}
    read_right = simulate(fair, labels, 2, seed=0)
    assert read_right["after"] >= read_right["before"] - 0.05  # little feedback cannot make things much worse


# -- closed-loop regulation (issue #19) -------------------------------------------------------------
def grid_tracks() -> list[Any]:
    from emomusic.music.library import Track

    points = [(v / 4, a / 4) for v in range(-4, 5) for a in range(-4, 5)]
    return [Track(i + 1, f"/m/{i + 1}.ogg", f"t{i + 1}", f"artist {i // 3}", 180.0, v, a, "tag", "")
            for i, (v, a) in enumerate(points)]


def test_a_track_that_agitates_this_listener_stops_being_chosen_to_calm_them(tmp_path: Path) -> None:
    from emomusic.listener.effects import Candidate
    from emomusic.music.policy import plan

    tracks = grid_tracks()
    start, target = (-0.5, 0.5), (0.5, -0.5)

    def first(effects: Any) -> Any:
        return plan("regulate", start, tracks, set(), n=4, target=target, step=0.4, fixed=(0, 0),
                    effects=effects, continuing=True).tracks[0]

    profile = ListenerProfile(tmp_path / PROFILE_FILE)
    chosen = first(profile.effects)  # no plays yet: the open loop's choice
    assert chosen == plan("regulate", start, tracks, set(), n=4, target=target, step=0.4, fixed=(0, 0),
                          continuing=True).tracks[0]
    assert (chosen.valence, chosen.arousal) == (-0.25, 0.25)  # placed a step toward calm
    told_calming = Candidate(chosen.path, (chosen.valence, chosen.arousal), chosen.artist)
    for _ in range(3):  # ...but every time it played, this listener got more agitated
        profile.observe_effect(told_calming, start, (-0.6, 0.7))
    for other in tracks[::7]:  # other tracks did roughly what their placement says
        s = (other.valence * 0.5, other.arousal * 0.5)
        profile.observe_effect(Candidate(other.path, (other.valence, other.arousal), other.artist), s,
                               (s[0] + 0.5 * (other.valence - s[0]), s[1] + 0.5 * (other.arousal - s[1])))
    again = first(profile.effects)
    assert again.path != chosen.path
    assert again.valence - again.arousal >= -0.5  # and still as far toward calm as the first choice
    restarted = ListenerProfile(tmp_path / PROFILE_FILE)  # what it learned survives a restart
    assert first(restarted.effects).path == again.path and restarted.effects.plays == profile.effects.plays
    assert restarted.summary()["effects"]["tracks"][chosen.path]["plays"] == 3
    restarted.reset()
    assert restarted.effects.plays == 0 and first(restarted.effects).path == chosen.path


def test_only_a_play_heard_clearly_and_long_enough_counts(tmp_path: Path) -> None:
    from emomusic.messages import FusedState
    from emomusic.music.observer import PlayObserver

    now = [0.0]
    profile = ListenerProfile(tmp_path / PROFILE_FILE)
    observer = PlayObserver(profile, lambda: now[0])
    track = grid_tracks()[0]

    def state(emotion: str, confidence: float, v: float, a: float) -> FusedState:
        return FusedState(now[0], emotion, confidence, v, a, {}, {})

    observer.started(track, state("angry", 0.8, -0.6, 0.8))
    now[0] += 10.0  # skipped after 10 s of a 3-minute track: says nothing about its effect
    observer.ended(state("angry", 0.8, -0.6, 0.8))
    observer.started(track, state("unknown", 0.0, 0.0, 0.0))  # nobody there when it started
    now[0] += 180.0
    observer.ended(state("calm", 0.8, 0.4, -0.5))
    assert profile.effects.plays == 0
    observer.started(track, state("angry", 0.8, -0.6, 0.8))
    now[0] += 180.0
    observer.ended(state("calm", 0.6, 0.4, -0.5))
    assert profile.effects.plays == 1
    assert json.loads((tmp_path / PROFILE_FILE).read_text())["effects"]["tracks"][track.path]["n"] == 1


def test_the_learned_effects_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from emomusic.listener import effects as effects_mod

    monkeypatch.setattr(effects_mod, "MAX_TRACKS", 5)
    e = effects_mod.Effects()
    for i in range(20):
        e.observe(effects_mod.Candidate(f"/m/{i}", (0.0, 0.0)), (0.0, 0.0), (0.1, 0.1))
    assert len(e.tracks) == 5 and set(e.tracks) == {f"/m/{i}" for i in range(15, 20)} and e.plays == 20
    assert effects_mod.Effects.from_json(json.loads(json.dumps(e.to_json()))).to_json() == e.to_json()


def test_the_simulated_listener_prints_its_numbers() -> None:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "simulate_listener.py"),
                          "--seed", "3", "--episodes", "3"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 3 and result["learning_tracks"] == 50
    assert result["open_loop_s"] > 0 and result["closed_loop_s"] > 0 and "closed_loop_frozen_s" in result


def test_the_daemon_learns_from_each_play_and_plans_with_it_after_a_restart(
        broker: Broker, tmp_path: Path, supervised: Callable[..., Daemon]) -> None:
    from emomusic.music.demo import synth_music, write_tagged

    music = tmp_path / "music"
    music.mkdir()
    for i, mood in enumerate(("calm", "sad", "happy")):
        write_tagged(music / f"{i}.ogg", synth_music(3.0, 90, False, 0.5, seed=i), f"Song {i}", mood, rate=16000)
    cfg = daemon_config(broker, tmp_path, "listener", microphone={"enabled": False},
                        player={"enabled": True, "fade_ms": 0, "mode": "regulate"},
                        library={"folders": [str(music)], "min_track_s": 0})
    daemon = supervised(cfg, analyzers=factories(face="sad"))  # a sad face throughout
    end = time.monotonic() + 60
    while time.monotonic() < end and not any("closed loop" in d for d in daemon.player.decisions):
        time.sleep(0.2)
    assert daemon.profile.effects.plays >= 1  # a whole 3 s track heard with a clear state
    assert any("closed loop" in d for d in daemon.player.decisions)
    plays = daemon.profile.effects.plays
    daemon.request_stop()
    daemon.player.join(10)
    again = Daemon(cfg, analyzers={})
    assert again.profile.effects.plays >= plays


def test_i_feel_teaches_the_running_daemons_voice_what_this_voice_sounds_like(
        broker: Broker, tmp_path: Path, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    """The whole path: the broker's feedback topic, the daemon, the voice worker's own thread, the
    voice's statements kept in the state dir (a real voice analyzer hearing espeak-ng speech)."""
    import soundfile as sf

    from emomusic.sources.samples import espeak_speech
    from emomusic.voice.personal import PERSONAL_FILE

    speech = espeak_speech("The quick brown fox jumps over the lazy dog, and then it runs away.")
    assert speech is not None, "espeak-ng is required (scripts/system-deps.sh installs it)"
    wav = tmp_path / "talk.wav"
    sf.write(wav, np.concatenate([np.zeros(16000), speech / np.abs(speech).max() * 0.5, np.zeros(16000)]), 16000)
    cfg = daemon_config(broker, tmp_path, "listener", microphone={"source": str(wav)}, camera={"enabled": False})
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    supervised(cfg)  # the registered (real) analyzers
    # a whole window's reading: a provisional first second (#32) pairs with no statement
    heard = lambda m: not m.json().get("modalities", {}).get("voice", {"provisional": True})["provisional"]  # noqa: E731
    probe.wait_for(f"{PREFIX}/state", heard, timeout=30)
    probe.publish(f"{PREFIX}/feedback/set", "fearful")
    state = tmp_path / "state" / PERSONAL_FILE
    wait(lambda: state.exists(), 15, "the voice's statements in the state dir")
    [voice] = json.loads(state.read_text())["voices"].values()
    assert [s["label"] for s in voice["statements"]] == ["fearful"]
