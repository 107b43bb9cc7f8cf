"""Scenario proof tools end to end: make_scenario.py builds a stream whose timeline is known,
evaluate.py scores the real pipeline on it, and replay --plot draws the timeline. Inputs are made
here (drawn squares and tones; the astronaut from scikit-image; espeak-ng speech), never ../shared."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from skimage import data as skdata

from emomusic.sources.samples import espeak_speech

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
TONE_HZ = {"happy": 440.0, "sad": 1000.0}
SHADE = {"happy": 250, "sad": 5}  # the background is 40-200, ±20 of noise: both stand out


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def make_scenario(faces: Path, voices: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run(str(SCRIPTS / "make_scenario.py"), "--faces", str(faces), "--voices", str(voices), "--out", str(out),
               *options)


def write_voices(folder: Path, clips: dict[str, list[np.ndarray]]) -> Path:
    """A voice CSV in the evaluation format (path,emotion,speaker) with 16 kHz WAVs beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for emotion, waves in clips.items():
        for i, wave in enumerate(waves):
            sf.write(folder / f"{emotion}{i}.wav", wave, 16000, subtype="PCM_16")
            rows.append({"path": f"{emotion}{i}.wav", "emotion": emotion, "speaker": f"{i + 1:02d}"})
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "emotion", "speaker"])
        w.writeheader()
        w.writerows(rows)
    return folder / "labels.csv"


def read_video(path: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def test_make_scenario_puts_each_segments_face_and_voice_in_its_segment(tmp_path: Path) -> None:
    npz = tmp_path / "faces.npz"
    np.savez(npz, images=np.stack([np.full((48, 48), SHADE[e], np.uint8) for e in ("happy", "sad", "happy")]),
             labels=np.array(["happiness", "sadness", "happy"]))  # the evaluation format's label names
    t = np.arange(16000) / 16000
    voices = write_voices(tmp_path / "voices", {e: [0.3 * np.sin(2 * np.pi * hz * t)] * 2 for e, hz in TONE_HZ.items()})
    out = tmp_path / "scn"
    res = make_scenario(npz, voices, out, "--segments", "4", "--segment-s", "4", "--seed", "3")
    assert res.returncode == 0, res.stderr

    with open(out / "truth.csv", newline="") as f:
        truth = [(float(r["start_s"]), float(r["end_s"]), r["emotion"]) for r in csv.DictReader(f)]
    assert [(a, b) for a, b, _ in truth] == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0), (12.0, 16.0)]
    labels = [e for _, _, e in truth]
    assert set(labels) <= set(TONE_HZ) and all(a != b for a, b in zip(labels, labels[1:], strict=False))

    frames = read_video(out / "video.avi")
    assert len(frames) == 4 * 4 * 15 and frames[0].shape == (480, 640, 3)
    audio, rate = sf.read(out / "audio.wav", dtype="float32")
    assert rate == 16000 and audio.ndim == 1 and audio.size == 16 * 16000
    for k, (start, end, emotion) in enumerate(truth):
        other = next(e for e in TONE_HZ if e != emotion)
        for frame in frames[k * 60 + 5 : (k + 1) * 60 : 20]:  # the face of this segment's emotion, and not the other
            gray = frame.mean(axis=2)
            face = gray > 235 if emotion == "happy" else gray < 12
            assert face.sum() > 0.9 * 150 * 150, (k, emotion)
            assert (gray < 12 if emotion == "happy" else gray > 235).sum() < 500
        seg = audio[int(start * rate) : int(end * rate)]
        spectrum = np.abs(np.fft.rfft(seg))
        freqs = np.fft.rfftfreq(seg.size, 1 / rate)
        power = {e: spectrum[np.abs(freqs - hz) < 5].max() for e, hz in TONE_HZ.items()}
        assert power[emotion] > 100 * power[other], (k, emotion)  # its clips are there, the other's are not
        assert np.abs(seg).max() > 0.25 and (np.abs(seg) < 1e-4).mean() > 0.2  # clips with pauses between


def test_make_scenario_says_what_is_missing(tmp_path: Path) -> None:
    npz = tmp_path / "faces.npz"
    np.savez(npz, images=np.zeros((1, 48, 48), np.uint8), labels=np.array(["angry"]))
    voices = write_voices(tmp_path / "v", {"happy": [np.zeros(1600)]})
    res = make_scenario(npz, voices, tmp_path / "o")
    assert res.returncode != 0 and "no emotion occurs in both the faces and the voices" in res.stderr
    res = make_scenario(npz, voices, tmp_path / "o", "--speakers", "17")
    assert res.returncode != 0 and "no clips of speakers 17" in res.stderr


@pytest.fixture(scope="module")
def smiling_scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 8 s segments of the astronaut's smile, espeak-ng sentences for the voice."""
    tmp = tmp_path_factory.mktemp("smile")
    face = skdata.astronaut()[40:220, 150:310, ::-1]  # the face with some margin, BGR
    npz = tmp / "faces.npz"
    np.savez(npz, images=face[None], labels=np.array(["happy"]))
    sentences = ("What a lovely day it is today.", "I am so glad to see you here.")
    waves = [espeak_speech(s) for s in sentences]
    assert all(w is not None for w in waves), "espeak-ng is required (scripts/system-deps.sh installs it)"
    voices = write_voices(tmp / "voices", {"happy": [w for w in waves if w is not None]})
    out = tmp / "scn"
    res = make_scenario(npz, voices, out, "--segments", "2", "--segment-s", "8", "--seed", "1")
    assert res.returncode == 0, res.stderr
    return out


def test_evaluate_scenario_scores_the_real_pipeline(smiling_scenario: Path) -> None:
    res = run(str(SCRIPTS / "evaluate.py"), "scenario", "--dir", str(smiling_scenario))
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"fused_accuracy", "face_accuracy", "voice_accuracy", "median_reaction_s", "flips_per_min"} <= set(m)
    # The face model sees the smile (the detector finds the face wherever the scenario put it) and
    # fusion follows it within the first seconds; whatever the voice model makes of espeak-ng.
    assert m["face_accuracy"] >= 0.9 and m["fused_accuracy"] >= 0.9
    assert m["median_reaction_s"] is not None and m["median_reaction_s"] <= 3.0
    assert 0.0 <= m["voice_accuracy"] <= 1.0 and m["flips_beyond_truth_per_min"] <= 4.0


def test_replay_plots_the_timeline(smiling_scenario: Path, tmp_path: Path) -> None:
    d = smiling_scenario
    png, jsonl = tmp_path / "timeline.png", tmp_path / "replay.jsonl"
    res = run("-m", "emomusic", "replay", "--video", str(d / "video.avi"), "--audio", str(d / "audio.wav"),
              "--jsonl", str(jsonl), "--fast", "--plot", str(png), "--truth", str(d / "truth.csv"))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert rows and rows[-1]["t"] > 14.0 and {"face", "voice"} <= {m for r in rows for m in r["modalities"]}
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 400 and img.shape[1] > 800
    assert np.unique(img.reshape(-1, img.shape[2])[:, :3], axis=0).shape[0] > 20  # drawn, not blank


def test_a_missing_or_undecodable_file_played_once_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("not audio")
    res = run("-m", "emomusic", "replay", "--video", str(tmp_path / "gone.avi"), "--audio", str(tmp_path / "notes.wav"),
              "--jsonl", str(tmp_path / "x.jsonl"), "--fast", timeout=60)
    assert res.returncode == 1
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("emomusic replay: ") and "gone.avi does not exist" in line
    assert "notes.wav cannot be decoded" in line
    config = tmp_path / "config.toml"
    config.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n[player]\nenabled = false\n')
    res = run("-m", "emomusic", "run", "--once", "--no-mqtt", "--config", str(config), "--camera",
              str(tmp_path / "gone.avi"), "--microphone", str(tmp_path / "notes.wav"), timeout=60)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert "input failed" in last and "gone.avi does not exist" in last and "notes.wav cannot be decoded" in last


def test_make_scenario_gaps_look_away_fall_silent_and_talk_over(tmp_path: Path) -> None:
    npz = tmp_path / "faces.npz"
    np.savez(npz, images=np.stack([np.full((48, 48), SHADE[e], np.uint8) for e in ("happy", "sad")]),
             labels=np.array(["happy", "sad"]))
    t = np.arange(16000) / 16000
    voices = write_voices(tmp_path / "voices", {e: [0.3 * np.sin(2 * np.pi * hz * t)] * 2 for e, hz in TONE_HZ.items()})
    out = tmp_path / "gaps"
    res = make_scenario(npz, voices, out, "--segments", "8", "--segment-s", "16", "--seed", "2", "--gaps")
    assert res.returncode == 0, res.stderr
    with open(out / "gaps.csv", newline="") as f:
        gaps = [r["gap"] for r in csv.DictReader(f)]
    assert gaps[0] == "none" and {"look_away", "silent", "two_voices"} <= set(gaps), gaps
    with open(out / "truth.csv", newline="") as f:
        truth = [r["emotion"] for r in csv.DictReader(f)]
    frames = read_video(out / "video.avi")
    audio, rate = sf.read(out / "audio.wav", dtype="float32")
    for k, gap in enumerate(gaps):
        seg = audio[k * 16 * rate : (k + 1) * 16 * rate]
        faces = [((f.mean(axis=2) > 235) | (f.mean(axis=2) < 12)).sum() > 0.9 * 150 * 150
                 for f in frames[k * 240 : (k + 1) * 240 : 15]]
        if gap == "silent":
            assert np.abs(seg).max() < 1e-4, k
        else:
            assert np.abs(seg).max() > 0.25, k
        assert all(faces) == (gap != "look_away"), (k, gap)  # only a look-away has seconds without the face
        spectrum = np.abs(np.fft.rfft(seg))
        freqs = np.fft.rfftfreq(seg.size, 1 / rate)
        other = next(e for e in TONE_HZ if e != truth[k])
        said, overheard = (spectrum[np.abs(freqs - TONE_HZ[e]) < 5].max() for e in (truth[k], other))
        if gap == "two_voices":
            assert 0.2 * said < overheard < said, k  # someone else, quieter
        elif gap != "silent":
            assert overheard < 0.01 * said, k
