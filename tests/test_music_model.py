"""The music placement on musicnn's taggers (issue #30): the mel front end against musicnn's own
(librosa), the shipped int8 tagger against TensorFlow's reference, what the tagger hears, the fallback
without its model file, tracks placed by an older model placed again in the background, the tagger
never loaded by the daemon's own process, and the heard tags shown."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emomusic.config import parse_config
from emomusic.music import embedding
from emomusic.music.demo import DEMO_PIECES, synth_music, write_tagged
from emomusic.music.embedding import PATCH, Heard, log_mel, patches, tagger
from emomusic.music.library import Library
from emomusic.music.placement import load_model, place_file
from emomusic.music.scan import refresh_in_background, scan
from emomusic.music.settings import MusicSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
from make_music_mel_reference import reference_signal  # noqa: E402


def test_the_front_end_is_musicnns() -> None:
    """librosa's melspectrogram, float16, log10(1 + 10^4 x): as musicnn's extractor computes it."""
    ref = np.load(ROOT / "tests" / "fixtures" / "music_mel_reference.npy")
    ours = log_mel(reference_signal())
    assert ours.shape == ref.shape == (219, 96)
    assert np.abs(ours - ref).max() < 0.01  # measured 0.0003 (musicnn takes the log in float16)


def test_patches_are_spread_over_the_excerpt() -> None:
    mel = np.arange(1250 * 96, dtype=np.float32).reshape(1250, 96)
    p = patches(mel, 3)
    assert p.shape == (3, PATCH, 96) and p[0, 0, 0] == 0 and p[-1, -1, 0] == mel[-1, 0]
    assert patches(mel).shape == (6, PATCH, 96) and patches(mel[:100]).shape == (1, PATCH, 96)


def test_the_shipped_tagger_gives_what_tensorflow_gave() -> None:
    """The export check, held: the int8 ONNX model on a synthesized piece through the daemon's front end,
    against TensorFlow's tags for it recorded by scripts/build_music_model.py."""
    meta = json.loads((ROOT / "models" / "music_tagger.json").read_text())
    ref = meta["reference"]
    _, bpm, major, bright, *_ = DEMO_PIECES[ref["piece"]]
    p = patches(log_mel(synth_music(ref["seconds"], bpm, major, bright, seed=ref["piece"])))[:3]
    emb, tags = tagger().model.run(p)
    assert emb.shape == (3, 400) and tags.shape == (3, 100) and len(meta["tags"]) == 100
    assert np.abs(tags.mean(axis=0) - np.array(ref["tags"])).max() < 0.03  # measured 0.006
    assert meta["export_check"]["max_abs_diff"]["fp32"]["tags"] < 1e-4


def test_the_tagger_hears_drums_and_quiet() -> None:
    t = tagger()
    loud = t.hear(synth_music(20, 150, False, 0.9, seed=0))
    soft = t.hear(synth_music(20, 62, False, 0.1, seed=0))
    tag = {name: i for i, name in enumerate(t.labels)}
    assert loud.tags[tag["drums"]] > 10 * soft.tags[tag["drums"]] and loud.tags[tag["drums"]] > 0.1
    assert soft.tags[tag["quiet"]] > loud.tags[tag["quiet"]] + 0.08
    assert [name for name, _ in soft.top_tags(t.labels, 3)] and 0 <= soft.tags.min() <= soft.tags.max() <= 1


def _untagged(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"song{i}.ogg"
        write_tagged(p, synth_music(31, 80 + 30 * i, i % 2 == 0, 0.3 + 0.3 * i, seed=i, rate=16000), f"Song {i}", "",
                     rate=16000)
        out.append(p)
    return out


def test_without_the_tagger_the_audio_placement_takes_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    (models / "music_tagger_int8.onnx").unlink()
    with caplog.at_level(logging.WARNING, logger="emomusic.library"):
        model = load_model(models)
    assert model.id.startswith("audio:") and not model.uses_tagger
    assert any("music_tagger_int8.onnx missing" in r.getMessage() for r in caplog.records)
    (v, a), shown = place_file(_untagged(tmp_path / "m", 1)[0], models)
    assert -1 <= v <= 1 and -1 <= a <= 1 and shown["model"] == model.id and "tags" not in shown
    assert load_model().id.startswith("musicnn:")  # the shipped models


def test_the_daemons_own_process_never_loads_the_tagger(tmp_path: Path) -> None:
    tagger.cache_clear()
    lib = Library(tmp_path / "lib.db")
    scan(lib, [tmp_path / "m"] if _untagged(tmp_path / "m", 2) else [], jobs=2)
    assert tagger.cache_info().currsize == 0  # the tagger ran in the scan's worker processes only
    tracks = lib.tracks()
    assert len(tracks) == 2 and {t.source for t in tracks} == {"analysis"}
    assert all(len(t.heard) == 5 and t.confidence is not None and 0.25 <= t.confidence <= 1 for t in tracks)


def test_tracks_an_older_model_placed_are_placed_again_in_the_background(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    music = tmp_path / "m"
    _untagged(music, 2)
    cfg = parse_config({"device": {"state_dir": str(tmp_path / "state")}, "library": {"folders": [str(music)]}}, env={})
    lib = Library(cfg.library_path)
    scan(lib, [music])
    current = load_model().id
    assert lib.stale(current) == 0
    with lib.db:  # as the previous emomusic left them: placed by the audio features, no model named
        for row in lib.db.execute("SELECT id, features FROM tracks").fetchall():
            old = json.loads(row["features"])
            lib.db.execute("UPDATE tracks SET features=?, valence=0.5 WHERE id=?",
                           (json.dumps({k: v for k, v in old.items() if k not in ("model", "tags", "confidence")}),
                            row["id"]))
    assert lib.stale(current) == 2
    assert scan(lib, [music], refresh=False).unchanged == 2  # the daemon's start: played as they are
    with caplog.at_level(logging.INFO, logger="emomusic.library"):
        thread = refresh_in_background(MusicSettings.of(cfg), lambda: False)
        assert thread is not None
        thread.join(120)
    assert lib.stale(current) == 0 and all(t.heard for t in lib.tracks())
    assert any("placing 2 tracks again" in r.getMessage() for r in caplog.records)
    assert refresh_in_background(MusicSettings.of(cfg), lambda: False) is None  # once


def test_emomusic_library_and_the_page_show_what_the_tagger_heard(tmp_path: Path) -> None:
    from emomusic.analyze.snapshot import Snapshot
    from emomusic.web.server import WebServer, WebSettings

    music = tmp_path / "m"
    _untagged(music, 1)
    conf = tmp_path / "config.toml"
    conf.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n[library]\nfolders = ["{music}"]\n')
    subprocess.run([sys.executable, "-m", "emomusic", "scan", "--config", str(conf)], check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run([sys.executable, "-m", "emomusic", "library", "--config", str(conf)], capture_output=True,
                         text=True, timeout=60)
    assert "heard: " in out.stdout and "sure 0." in out.stdout, out.stdout
    cfg = parse_config({"device": {"state_dir": str(tmp_path / "state")}}, env={})
    track = WebServer(WebSettings.of(cfg), Snapshot(cfg), lambda c: None).library_json()["tracks"][0]
    names = [shown.rsplit(" ", 1)[0] for shown in track["heard"]]  # "rock 0.41"
    assert len(names) == 5 and len(set(names)) == 5, names  # both taggers know "rock": shown once
    assert 0 < track["confidence"] <= 1


def test_a_tag_both_taggers_know_is_shown_once_with_the_surer_reading() -> None:
    heard = Heard(np.zeros(400), np.array([0.2, 0.9, 0.5, 0.1, 0.4]))
    assert heard.top_tags(["rock", "jazz", "rock", "pop", "sad"], 3) == [("jazz", 0.9), ("rock", 0.5), ("sad", 0.4)]


def test_the_index_keeps_an_analysed_tracks_model(tmp_path: Path) -> None:
    lib = Library(tmp_path / "lib.db")
    scan(lib, [tmp_path / "m"] if _untagged(tmp_path / "m", 1) else [], jobs=1)
    row = sqlite3.connect(tmp_path / "lib.db").execute("SELECT features FROM tracks").fetchone()
    assert json.loads(row[0])["model"] == load_model().id
    assert embedding.TAGGER_WIDTH == 500
