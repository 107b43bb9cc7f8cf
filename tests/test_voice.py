"""Voice pipeline: MFCC against librosa's values, VAD segmentation on generated audio, the self-hearing
guard, the trained model's output, the streaming analyzer, and evaluate.py on a tiny generated CSV."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emomusic.config import parse_config
from emomusic.labels import VOICE_LABELS
from emomusic.messages import AudioChunk
from emomusic.music.demo import synth_music
from emomusic.sources.samples import espeak_speech
from emomusic.voice.analyzer import VoiceAnalyzer, VoiceClassifier
from emomusic.voice.mfcc import mfcc, voice_features
from emomusic.voice.vad import PlaybackGuard, SpeechWindower, speech_windows

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
from make_mfcc_reference import reference_signal  # noqa: E402

RATE = 16000


def pcm(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    voice = espeak_speech("The quick brown fox jumps over the lazy dog, and then it runs away.")
    assert voice is not None, "espeak-ng is required (scripts/system-deps.sh installs it)"
    return voice / np.abs(voice).max() * 0.5


def test_mfcc_matches_librosa_reference() -> None:
    ref = np.load(ROOT / "tests" / "fixtures" / "mfcc_reference.npy")
    ours = mfcc(reference_signal())
    assert ours.shape == ref.shape == (40, 101)
    assert np.abs(ours - ref).max() < 1e-2


def test_voice_features_are_normalised_per_coefficient(speech: np.ndarray) -> None:
    f = voice_features(pcm(speech[:32000]))
    assert f.shape == (40, 201) and f.dtype == np.float32
    assert np.allclose(f.mean(1), 0, atol=1e-4) and np.allclose(f.std(1), 1, atol=1e-2)


def test_silence_and_steady_noise_give_no_windows() -> None:
    assert speech_windows(np.zeros(5 * RATE, np.int16)) == []
    noise = np.random.default_rng(0).standard_normal(5 * RATE) * 0.01
    assert speech_windows(pcm(noise)) == []


def test_speech_is_segmented_where_it_is(speech: np.ndarray) -> None:
    gap = np.zeros(2 * RATE)
    audio = np.concatenate([gap, speech, gap, speech[: int(1.2 * RATE)], gap])
    audio += np.random.default_rng(1).standard_normal(audio.size) * 0.002
    windows = speech_windows(pcm(audio))
    first_end = (2 * RATE + speech.size) / RATE
    second = (4 * RATE + speech.size) / RATE
    long_windows = [w for w in windows if w.t < first_end]
    short_windows = [w for w in windows if w.t >= first_end]
    # The long utterance yields hop-spaced full windows; none starts well before the speech.
    assert len(long_windows) >= int(speech.size / RATE) - 1
    assert all(1.5 <= w.t for w in long_windows)
    assert np.allclose(np.diff([w.t for w in long_windows[:-1]]), 1.0, atol=0.05)
    # The 1.2 s utterance: one zero-padded window covering it.
    assert len(short_windows) == 1
    w = short_windows[0]
    assert second - 0.3 <= w.t <= second + 0.1 and 1.0 <= w.speech_s <= 1.8
    assert all(x.samples.size == 2 * RATE and x.snr_db > 20 for x in windows)


def test_a_too_short_blip_is_ignored(speech: np.ndarray) -> None:
    audio = np.concatenate([np.zeros(RATE), speech[: int(0.4 * RATE)], np.zeros(RATE)])
    assert speech_windows(pcm(audio)) == []


def test_streaming_windows_do_not_depend_on_chunk_size(speech: np.ndarray) -> None:
    audio = pcm(np.concatenate([np.zeros(RATE), speech, np.zeros(RATE)]))
    whole = speech_windows(audio)
    for chunk in (480, 4800, 7000):
        w = SpeechWindower()
        got = []
        for i in range(0, audio.size, chunk):
            got += w.feed(audio[i : i + chunk], i / RATE)
        got += w.flush()
        assert [round(x.t, 3) for x in got] == [round(x.t, 3) for x in whole]
        assert all(np.array_equal(a.samples, b.samples) for a, b in zip(got, whole, strict=True))


def test_self_hearing_guard_rejects_the_daemons_own_music(speech: np.ndarray) -> None:
    music = synth_music(30.0, bpm=120, major=True, brightness=0.7, seed=3) * 0.5
    # Without the guard, WebRTC VAD takes much of the music for speech...
    unguarded = speech_windows(pcm(music))
    # ...with it (the player says it is playing), music alone yields (almost) nothing.
    guard = PlaybackGuard(margin_db=10.0)
    guard.set_playback(True, 0.6)
    guarded = SpeechWindower(guard=guard)
    windows = guarded.feed(pcm(music), 0.0) + guarded.flush()
    assert len(unguarded) >= 5
    assert len(windows) <= 1
    # A voice clearly louder than the music (quiet background music ~20 dB under a voice near the Pi)
    # still gets through.
    mix = music * 0.1
    start = 15 * RATE
    mix[start : start + speech.size] += speech * 1.6
    guard2 = PlaybackGuard(margin_db=10.0)
    guard2.set_playback(True, 0.6)
    w2 = SpeechWindower(guard=guard2)
    through = w2.feed(pcm(mix), 0.0) + w2.flush()
    assert any(14.0 <= w.t <= 15.0 + speech.size / RATE for w in through)
    assert all(w.over_music_db is not None for w in through)


@pytest.mark.parametrize("backend", ["onnxruntime", "tflite"])
@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_classifier_outputs_a_distribution(speech: np.ndarray, precision: str, backend: str) -> None:
    clf = VoiceClassifier(ROOT / "models", backend, precision)  # type: ignore[arg-type]
    windows = [w.samples for w in speech_windows(pcm(np.concatenate([np.zeros(RATE), speech])))]
    p = clf.classify(windows)
    assert p.shape == (len(windows), len(VOICE_LABELS))
    assert np.allclose(p.sum(1), 1, atol=1e-5) and (p >= 0).all()
    if backend == "tflite":  # the converted model agrees with the ONNX original
        ref = VoiceClassifier(ROOT / "models", "onnxruntime", precision).classify(windows)
        assert (ref.argmax(1) == p.argmax(1)).mean() >= 0.5 and np.abs(ref - p).max() < 0.25


def test_voice_analyzer_emits_observations_only_for_speech(speech: np.ndarray) -> None:
    cfg = parse_config({}, env={})
    analyzer = VoiceAnalyzer(cfg)
    audio = pcm(np.concatenate([np.zeros(3 * RATE), speech, np.zeros(2 * RATE)]))
    obs = []
    for i in range(0, audio.size, 4800):
        o = analyzer.process(AudioChunk(t=i / RATE, samples=audio[i : i + 4800]))
        if o is not None:
            obs.append(o)
    assert obs, "speech must produce voice observations"
    assert all(o.t >= 3.0 and 0 < o.confidence <= 1 for o in obs)
    assert all(abs(sum(o.probabilities.values()) - 1) < 1e-5 for o in obs)
    assert set(obs[0].probabilities) == set(VOICE_LABELS)
    silent = VoiceAnalyzer(cfg)
    assert all(silent.process(AudioChunk(t=i * 0.3, samples=np.zeros(4800, np.int16))) is None for i in range(20))


def test_evaluate_voice_on_a_tiny_csv(tmp_path: Path, speech: np.ndarray) -> None:
    sf.write(tmp_path / "a.wav", np.concatenate([np.zeros(8000), speech]), RATE)
    sf.write(tmp_path / "b.flac", np.concatenate([np.zeros(4000), speech[::2]]), 8000)  # 8 kHz FLAC
    stereo = np.stack([speech, speech], axis=1)
    sf.write(tmp_path / "c.wav", stereo, RATE, subtype="PCM_U8")  # 8-bit, 2 channels
    sf.write(tmp_path / "silent.wav", np.zeros(RATE * 2), RATE)
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([["path", "emotion"], ["a.wav", "happiness"], ["b.flac", "anger"], ["c.wav", "neutral"],
                     ["silent.wav", "sadness"]])
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "voice", "--labels",
                          str(tmp_path / "labels.csv")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["n"] == 4 and out["no_speech"] == 1
    assert out["labels"] == ["neutral", "happy", "sad", "angry"]
    assert out["confusion"]["sad"]["none"] == 1
    assert {"accuracy", "macro_recall", "per_class_recall"} <= out.keys()
