"""Voice pipeline: MFCC/mel against librosa's definitions, VAD segmentation on generated audio, the
self-hearing guard, the encoder and calibrated head, speaker adaptation (bounded, persisted, voices
told apart), the streaming analyzer, evaluate.py (plain and --adapt) on a tiny generated CSV, and what
the listener's statements teach each voice (bounded, persisted, reset)."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emomusic.audio import PlaybackGuard
from emomusic.config import parse_config
from emomusic.labels import VOICE_LABELS
from emomusic.messages import AudioChunk, Observation, Sensed
from emomusic.music.demo import synth_music
from emomusic.queues import DropOldestQueue
from emomusic.runtime import ModelError, softmax
from emomusic.service.workers import AnalyzerWorker
from emomusic.sources.samples import espeak_speech
from emomusic.voice import personal
from emomusic.voice.adapt import MAX_SHIFT, MAX_VOICES, MAX_WEIGHT, MIN_VAR_RATIO, SpeakerAdapter
from emomusic.voice.analyzer import ADAPTATION_FILE, VoiceAnalyzer, VoiceClassifier
from emomusic.voice.analyzer import build as voice_build
from emomusic.voice.encoder import MAX_FRAMES, STATE_DIM, VoiceEncoder, mel_frames
from emomusic.voice.head import load_head, pack_int8, unpack_int8
from emomusic.voice.personal import MAX_WINDOWS, PERSONAL_FILE
from emomusic.voice.vad import FRAME, SpeechWindower, frames_db, speech_windows

ROOT = Path(__file__).resolve().parents[1]

RATE = 16000


def pcm(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    voice = espeak_speech("The quick brown fox jumps over the lazy dog, and then it runs away.")
    assert voice is not None, "espeak-ng is required (scripts/system-deps.sh installs it)"
    return voice / np.abs(voice).max() * 0.5


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
    # stamped where its audio ends (the observation's time), not a full window later
    assert second + 1.2 - 0.1 <= w.end <= second + 1.2 + 0.5
    assert all(x.end == pytest.approx(x.t + 2.0) for x in long_windows)
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


def test_the_guards_music_level_is_the_median_of_its_history_as_frames_come_and_go() -> None:
    # kept sorted frame by frame (#35): it must equal numpy's median of the same history at every frame,
    # through a full history that evicts its oldest, repeated levels and a change of volume that forgets
    guard = PlaybackGuard(history_s=1.5)  # 50 frames
    guard.set_playback(True, 0.6)
    rng = np.random.default_rng(5)
    levels = np.round(rng.normal(-40.0, 8.0, 400), 1)
    heard: list[float] = []
    for i, db in enumerate(levels.tolist()):
        if i == 250:
            guard.set_playback(True, 0.3)  # the volume changed: what was learned no longer holds
            heard = []
        guard.observe(db)
        heard = (heard + [db])[-50:]
        expected = float(np.median(heard)) if len(heard) >= 30 else None
        assert guard.music_level_db() == expected, i
        assert guard.threshold_db() == (math.inf if expected is None else expected + guard.margin_db)
    guard.set_playback(False, 0.3)
    assert guard.music_level_db() is None and guard.threshold_db() == -math.inf


def test_frame_levels_of_a_chunk_equal_each_frames_own() -> None:
    rng = np.random.default_rng(2)
    frames = (rng.normal(0, 3000, (12, FRAME)) * rng.uniform(0, 1, (12, 1))).astype(np.int16)
    frames[3] = 0  # digital silence: the floor, not -inf
    got = frames_db(frames)
    for frame, db in zip(frames, got, strict=True):
        x = frame.astype(np.float64) / 32768.0
        assert db == pytest.approx(10 * math.log10(float(np.mean(x * x)) + 1e-10), abs=1e-4)
    assert got[3] == pytest.approx(-100.0)


def windows_of(y: np.ndarray) -> list[np.ndarray]:
    return [w.samples for w in speech_windows(pcm(np.concatenate([np.zeros(RATE), y])))]


@pytest.mark.parametrize("adapt", [False, True])
def test_classifier_outputs_a_calibrated_distribution(speech: np.ndarray, adapt: bool) -> None:
    clf = VoiceClassifier(ROOT / "models", adaptation=adapt)
    windows = windows_of(speech)
    p = clf.classify(windows)
    assert p.shape == (len(windows), len(VOICE_LABELS))
    assert np.allclose(p.sum(1), 1, atol=1e-5) and (p >= 0).all()
    assert clf.head.temperature > 0
    cold = VoiceClassifier(ROOT / "models")
    np.testing.assert_allclose(VoiceClassifier(ROOT / "models", adaptation=True).classify(windows, learn=False),
                               cold.classify(windows), atol=1e-5)  # a voice never heard: exactly the cold model


def test_int8_hidden_weights_round_trip_within_half_a_step() -> None:
    w = np.random.default_rng(0).standard_normal((16, 40)) * np.linspace(0.01, 3, 16)[:, None]
    back = unpack_int8(pack_int8(w))
    step = np.abs(w).max(1, keepdims=True) / 127
    assert back.dtype == np.float32 and back.shape == w.shape
    assert (np.abs(back - w) <= step / 2 + 1e-6).all()


def test_a_linear_head_file_still_loads_and_reads_as_written(tmp_path: Path) -> None:
    """A head trained with ``train_voice_head.py --hidden 0`` (the format shipped until 2026-12-05)."""
    rng = np.random.default_rng(1)
    k = len(VOICE_LABELS)
    w, b = rng.standard_normal((k, STATE_DIM)), rng.standard_normal(k)
    path = tmp_path / "voice_head.json"
    path.write_text(json.dumps({"labels": list(VOICE_LABELS), "prior_mean": [0.0] * STATE_DIM,
                                "prior_var": [1.0] * STATE_DIM, "weights": w.tolist(), "bias": b.tolist(),
                                "class_means": np.zeros((k, STATE_DIM)).tolist(), "temperature": 2.0}))
    loaded = load_head(path, VOICE_LABELS, STATE_DIM)
    z = rng.standard_normal((3, STATE_DIM)).astype(np.float32)
    assert loaded.head.hidden_w is None and loaded.head.dim == STATE_DIM
    np.testing.assert_allclose(loaded.head.logits(z), (z @ w.T + b) / 2.0, rtol=1e-4, atol=1e-3)


def test_the_shipped_head_reads_through_its_hidden_layer() -> None:
    loaded = load_head(ROOT / "models" / "voice_head.json", VOICE_LABELS, STATE_DIM)
    head = loaded.head
    assert head.hidden_w is not None and head.hidden_b is not None
    assert head.hidden_w.shape == (head.w.shape[1], STATE_DIM)
    # each emotion's training centre reads as that emotion through the whole head, clearly (measured: by
    # 0.60-0.92 in probability over the runner-up; plain numpy, no int8 kernels)
    p = softmax(head.logits(head.class_means))
    assert list(p.argmax(1)) == list(range(len(VOICE_LABELS)))
    top2 = np.sort(p, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0] >= 0.4).all()


@pytest.mark.parametrize("damage", ["truncated", "wrong width"])
def test_a_damaged_hidden_layer_is_a_model_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    head = json.loads((ROOT / "models" / "voice_head.json").read_text())
    if damage == "truncated":
        head["hidden"]["int8"] = head["hidden"]["int8"][:4000]
        expected = "cannot be loaded"
    else:
        head["hidden"]["bias"] = head["hidden"]["bias"][:-1]
        expected = "does not fit"
    path = tmp_path / "voice_head.json"
    path.write_text(json.dumps(head))
    with pytest.raises(ModelError, match=f"{re.escape(str(path))}.*{expected}.*train_voice_head.py"):
        load_head(path, VOICE_LABELS, STATE_DIM)


def test_mel_frames_are_resemblyzers_and_ignore_the_volume(speech: np.ndarray) -> None:
    m = mel_frames(speech[:32000])
    assert m.shape == (201, 40) and m.dtype == np.float32 and (m >= 0).all()
    np.testing.assert_allclose(mel_frames(speech[:32000] * 0.1), m, rtol=1e-3, atol=1e-6)


def _fake(n: int, d: int, offset: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) + offset


def test_adaptation_learns_a_baseline_but_a_one_emotion_speaker_cannot_drag_it_far() -> None:
    d = 16
    prior_mean, prior_var = np.zeros(d), np.ones(d)
    who = np.tile(np.eye(d)[0], (400, 1))  # one voice
    ad = SpeakerAdapter(prior_mean, prior_var)
    x = _fake(400, d, 0.0, 1) * 0.5 + 0.4  # a voice whose resting features sit 0.4 sd up, half as variable
    ad.update(x, who)
    z, adapted = ad.transform(x, who)
    assert adapted > 0.9 and len(ad.voices) == 1
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.15  # its own baseline is taken out
    angry = SpeakerAdapter(prior_mean, prior_var)
    angry.update(_fake(2000, d, 6.0, 2), who[:1].repeat(2000, 0))  # heard only while shouting
    z, _ = angry.transform(np.zeros((1, d)), who[:1])
    assert np.abs(z).max() <= MAX_SHIFT / np.sqrt(MIN_VAR_RATIO) + 1e-6  # bounded shift, bounded shrink
    assert angry.voices[0].weight <= MAX_WEIGHT  # old speech decays


def test_the_encoder_with_weight_prepacking_gives_what_the_unpacked_one_gives(speech: np.ndarray) -> None:
    """The voice encoder loads with onnxruntime's weight prepacking (its int8 LSTM layers run twice as
    fast from packed weights, docs/PERFORMANCE.md); the layout must not change what it computes."""
    from emomusic.runtime import Model

    enc = VoiceEncoder(ROOT / "models")
    assert enc.model.prepack
    unpacked = Model(ROOT / "models" / "voice_encoder_int8.onnx", weight_only=True, prepack=False)
    mel = mel_frames(windows_of(speech)[0].astype(np.float32) / 32768.0)[None]
    (emb_a, states_a), (emb_b, states_b) = enc.model.run(mel), unpacked.run(mel)
    # Measured 0 here. Where the two layouts sum the float first layer in another order (2.5e-6 apart on a
    # CPU without VNNI), the int8 layers may round a state to the next uint8 step: 1e-6 relative noise on
    # the input moves the states by up to 0.013 and the embedding by 0.003 here, hence these bounds.
    assert np.abs(states_a - states_b).max() < 0.05
    assert float(np.sum(emb_a * emb_b)) > 0.999
    assert np.abs(states_a).max() > 1e-2  # and not all zeros


def test_the_encoders_int8_layers_fit_seven_bits_so_every_cpu_reads_a_voice_alike() -> None:
    """The upper two LSTM layers multiply uint8 states by int8 weights; on x86 without VNNI onnxruntime
    does it with VPMADDUBSW, whose int16 pair sums saturate for weights past 7 bits (under an emulated
    Haswell the 8-bit encoder read speech differently than here, models/README.md). The first layer,
    which reads raw mel power, must stay float: in int8 its input would lose the quiet bands."""
    import onnx
    from onnx import numpy_helper

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench import LSTM_OPS

    model = onnx.load(str(ROOT / "models" / "voice_encoder_int8.onnx"))
    layers = [n for n in model.graph.node if n.op_type in LSTM_OPS]
    assert [n.op_type for n in layers] == ["LSTM", "DynamicQuantizeLSTM", "DynamicQuantizeLSTM"]
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in layers[1:]:
        for w in (init[node.input[1]], init[node.input[2]]):  # input and recurrent weights
            assert w.dtype == np.int8 and int(np.abs(w.astype(np.int32)).max()) <= 64


def test_the_encoders_top_layer_takes_half_the_steps_of_the_layers_below() -> None:
    """The voice's cost per second of speech (docs/PERFORMANCE.md, models/README.md) rests on the top LSTM
    layer reading the one below in 20 ms steps: 160, 160 and 80 steps for a 1.6 s window, 174 M
    multiply-adds; a rebuilt encoder that lost the step would cost a quarter more, silently."""
    import onnx

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench import lstm_steps, model_macs

    steps = lstm_steps(onnx.load(str(ROOT / "models" / "voice_encoder_int8.onnx")))
    assert sorted(steps.values(), reverse=True) == [MAX_FRAMES, MAX_FRAMES, MAX_FRAMES // 2]
    assert abs(model_macs()["voice"] - 174.3e6) < 0.5e6


def test_voices_are_told_apart_by_the_speaker_embedding(speech: np.ndarray) -> None:
    enc = VoiceEncoder(ROOT / "models")
    other = espeak_speech("Please put the kettle on, we are having friends over tonight.",
                          ("-v", "en-us+f3", "-p", "80"))
    assert other is not None
    a_who, a_x = enc.encode(windows_of(speech))
    b_who, b_x = enc.encode(windows_of(other / np.abs(other).max() * 0.5))
    clf = VoiceClassifier(ROOT / "models", adaptation=True)
    assert clf.adapter is not None
    clf.adapter.update(a_x, a_who)
    clf.adapter.update(b_x, b_who)
    assert len(clf.adapter.voices) == 2
    assert clf.adapter.voice_of(a_who[0]) != clf.adapter.voice_of(b_who[0])


def test_a_forgotten_voices_id_is_never_given_to_a_new_voice() -> None:
    """What the listener told is kept per voice id: a newcomer must not inherit a forgotten voice's."""
    dim = 8
    adapter = SpeakerAdapter(np.zeros(dim), np.ones(dim))
    who = np.eye(256)[: MAX_VOICES + 2] * 3.0  # orthogonal speaker embeddings: all different voices
    ids = [adapter.update(np.zeros((1, dim)), who[i : i + 1], now=float(i))[0] for i in range(len(who))]
    assert ids == list(range(1, MAX_VOICES + 3))  # the 9th and 10th evicted the oldest, with new ids
    assert sorted(v.id for v in adapter.voices) == list(range(3, MAX_VOICES + 3))


def test_the_voice_heard_longest_ago_is_forgotten_wherever_it_is_kept() -> None:
    """A full house of voices each heard for over ten minutes (their weights saturate alike) where the first
    spoke again: the next newcomer replaces the second, the voice heard longest ago, from the middle of the
    list (forgetting it once compared voices field by field, arrays included, and raised)."""
    dim = 8
    adapter = SpeakerAdapter(np.zeros(dim), np.ones(dim))
    who = np.eye(256)[: MAX_VOICES + 1] * 3.0
    n = int(MAX_WEIGHT)
    for i in range(MAX_VOICES):
        adapter.update(np.zeros((n, dim)), np.repeat(who[i : i + 1], n, 0), now=float(i))
    adapter.update(np.zeros((1, dim)), who[0:1], now=100.0)  # the first voice again: now the most recent
    new = adapter.update(np.zeros((1, dim)), who[MAX_VOICES : MAX_VOICES + 1], now=101.0)
    assert new == [MAX_VOICES + 1]
    assert sorted(v.id for v in adapter.voices) == [1, *range(3, MAX_VOICES + 2)]  # voice 2 forgotten


def test_adaptation_persists_across_a_restart_and_stores_no_audio(tmp_path: Path, speech: np.ndarray) -> None:
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}}, env={})
    analyzer = voice_build(cfg, PlaybackGuard(), True)
    audio = pcm(np.concatenate([np.zeros(RATE), speech, np.zeros(RATE)]))
    for i in range(0, audio.size, 4800):
        analyzer.process(AudioChunk(t=i / RATE, samples=audio[i : i + 4800]))
    analyzer.close()  # the worker calls this when the daemon stops
    state = tmp_path / ADAPTATION_FILE
    saved = json.loads(state.read_text())
    assert set(saved) == {"version", "dim", "next_id", "voices"} and len(saved["voices"]) == 1
    assert set(saved["voices"][0]) == {"weight", "mean", "var", "centroid", "last_heard", "id"}
    assert len(saved["voices"][0]["mean"]) == saved["dim"] < 2000  # statistics, not samples
    again = voice_build(cfg, PlaybackGuard(), True)  # a restart
    assert isinstance(again.classifier, VoiceClassifier) and again.classifier.adapter is not None
    restored = again.classifier.adapter.voices
    assert len(restored) == 1 and restored[0].weight == pytest.approx(saved["voices"][0]["weight"])
    state.write_text("{not json")
    assert voice_build(cfg, PlaybackGuard(), True).classifier.adapter.voices == []  # type: ignore[union-attr]
    off = voice_build(parse_config({"device": {"state_dir": str(tmp_path / "off")},
                                    "voice": {"adapt": False}}, env={}), PlaybackGuard(), True)
    assert isinstance(off.classifier, VoiceClassifier) and off.classifier.adapter is None


def test_an_utterances_first_second_is_read_once_before_its_first_whole_window(speech: np.ndarray) -> None:
    """#32's first answer: one provisional, padded window per utterance once 1 s of it is voiced, stamped
    where that second ends; the whole windows come as they would without it."""
    gap = np.zeros(2 * RATE)
    audio = pcm(np.concatenate([gap, speech, gap, speech[: int(1.5 * RATE)], gap]))
    plain = speech_windows(audio)
    got = speech_windows(audio, first_s=1.0)
    early = [w for w in got if w.provisional]
    assert [(w.t, w.end) for w in got if not w.provisional] == [(w.t, w.end) for w in plain]
    assert not any(w.provisional for w in plain)
    assert len(early) == 2  # one per utterance, the 1.5 s one too (its padded whole window follows)
    for w in early:
        whole = min((x for x in plain if x.t >= w.t - 0.05), key=lambda x: x.end)
        assert 1.0 <= w.speech_s < 1.4 and w.samples.size == 2 * RATE
        assert w.end < whole.end - 0.25  # earlier than the utterance's first whole reading
        assert w.end - w.t < 1.7


def test_a_provisional_reading_is_marked_and_teaches_the_voices_baseline_nothing(
        speech: np.ndarray, tmp_path: Path) -> None:
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}, "voice": {"first_s": 1.0}}, env={})
    analyzer = voice_build(cfg, PlaybackGuard(), False)
    audio = pcm(np.concatenate([np.zeros(RATE), speech, np.zeros(2 * RATE)]))
    seen: list[tuple[Observation, float]] = []
    for i in range(0, audio.size, 4800):
        o = analyzer.process(AudioChunk(t=i / RATE, samples=audio[i : i + 4800]))
        if o is not None:
            adapter = analyzer.classifier.adapter
            assert adapter is not None
            seen.append((o, sum(v.weight for v in adapter.voices)))
    assert seen[0][0].provisional and not any(o.provisional for o, _ in seen[1:])
    assert seen[0][1] == 0.0 and seen[1][1] > 0  # the baseline learns from whole windows only
    assert seen[0][0].t < seen[1][0].t - 0.25 and 0 < seen[0][0].confidence < 0.7  # half a window of speech


def test_voice_analyzer_emits_observations_only_for_speech(speech: np.ndarray, tmp_path: Path) -> None:
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}}, env={})
    analyzer = voice_build(cfg, PlaybackGuard(), True)
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
    silent = voice_build(cfg, PlaybackGuard(), True)
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
    with open(tmp_path / "labels.csv", "a", newline="") as f:
        csv.writer(f).writerow(["a.wav", "happy"])
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    (tmp_path / "spk.csv").write_text("\n".join([rows[0] + ",speaker"] + [r + ",s1" for r in rows[1:]]) + "\n")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "voice", "--labels",
                          str(tmp_path / "spk.csv"), "--adapt", "--seed", "3"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    adapted = json.loads(res.stdout.strip().splitlines()[-1])
    assert adapted["n"] == 5 and adapted["no_speech"] == 1 and adapted.keys() == out.keys()
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "voice", "--labels",
                          str(tmp_path / "spk.csv"), "--feedback", "1"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    told = json.loads(res.stdout.strip().splitlines()[-1])["feedback"]
    assert told["n"] == 1 and told["scored"] == 4  # one of the two happy clips was told, the rest scored
    assert {"before", "after", "gain", "personal"} <= told.keys()


# -- what the listener's statements teach the voice (voice/personal.py) -----------------------------

def say(analyzer: VoiceAnalyzer, speech: np.ndarray, n: int) -> dict[str, float]:
    """The ``n``-th utterance of one continuous stream (1 s of silence either side); the last
    observation's probabilities."""
    audio = pcm(np.concatenate([np.zeros(RATE), speech, np.zeros(RATE)]))
    last = None
    for i in range(0, audio.size, 4800):
        o = analyzer.process(AudioChunk(t=(n * audio.size + i) / RATE, samples=audio[i : i + 4800]))
        last = o or last
    assert last is not None
    return last.probabilities


def after(speech: np.ndarray, n: int) -> float:
    """Stream time just after the ``n``-th utterance (``say``)."""
    return (n + 1) * (speech.size + 2 * RATE) / RATE


def test_a_statement_teaches_this_voice_and_a_restart_keeps_it(tmp_path: Path, speech: np.ndarray) -> None:
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}}, env={})
    analyzer = voice_build(cfg, PlaybackGuard(), True)
    for k in range(3):
        before = say(analyzer, speech, k)
    # the population head hears no fear in this sentence; the listener says that is how they sound afraid
    assert before["fearful"] < 0.1, before
    analyzer.teach("fearful", after(speech, 2))
    taught_now = say(analyzer, speech, 3)
    assert taught_now["fearful"] >= 0.4, taught_now  # (0.65 on x86-64)
    taught = analyzer.classifier.personal.voices[1].update  # type: ignore[union-attr]
    analyzer.close()
    saved = json.loads((tmp_path / PERSONAL_FILE).read_text())
    [voice] = saved["voices"].values()
    assert [s["label"] for s in voice["statements"]] == ["fearful"]
    # a few 2 s windows' summaries (float16), not samples: at most MAX_WINDOWS x STATE_DIM numbers
    assert len(base64.b64decode(voice["statements"][0]["windows"])) <= 2 * MAX_WINDOWS * STATE_DIM
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    (plain_dir / ADAPTATION_FILE).write_bytes((tmp_path / ADAPTATION_FILE).read_bytes())
    again = voice_build(cfg, PlaybackGuard(), True)  # a restart
    plain = voice_build(parse_config({"device": {"state_dir": str(plain_dir)}}, env={}), PlaybackGuard(), True)
    assert again.classifier.personal is not None
    restored = again.classifier.personal.voices[1].update
    assert restored is not None and taught is not None
    assert np.abs(restored.dw - taught.dw).max() <= 0.01 * np.abs(taught.dw).max()
    # the same voice, the same adaptation, with and without what was taught (0.40 and 0.00 on x86-64)
    assert say(again, speech, 0)["fearful"] - say(plain, speech, 0)["fearful"] >= 0.15
    (tmp_path / PERSONAL_FILE).write_text("{not json")  # a corrupt file: started afresh, said in the log
    assert voice_build(cfg, PlaybackGuard(), True).classifier.personal.voices == {}  # type: ignore[union-attr]
    off = voice_build(parse_config({"device": {"state_dir": str(tmp_path / "off")},
                                    "voice": {"personalise": False}}, env={}), PlaybackGuard(), True)
    assert off.classifier.personal is None


@pytest.mark.parametrize("anchored", [True, False])
def test_a_listener_who_only_ever_says_sad_does_not_make_everything_sad(
        speech: np.ndarray, anchored: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five "I feel sad" said in the voice's everyday tone. With the anchors, every emotion's population
    centre still reads as itself and the voice's everyday tone moves only part of the way to sad; the
    unanchored fit (the same statements, anchors weighted 0) is what the bound prevents."""
    if not anchored:
        monkeypatch.setattr(personal, "ANCHOR", 0.0)
        monkeypatch.setattr(personal, "CENTRE", 0.0)
    analyzer = voice_build(parse_config({}, env={}), PlaybackGuard(), False)
    for n in range(3):
        say(analyzer, speech, n)
    for n in range(3, 8):
        analyzer.teach("sad", after(speech, n - 1))
        say(analyzer, speech, n)
    clf = analyzer.classifier
    assert clf.personal is not None and clf.adapter is not None
    [(vid, told)] = clf.personal.voices.items()
    assert told.update is not None and len(told.statements) == personal.MAX_PER_LABEL
    head = clf.head
    sad = VOICE_LABELS.index("sad")
    centre = clf.adapter.centre(vid)
    assert centre is not None
    everyday = softmax(head.logits(centre[None]) + told.update(centre[None]))[0]
    centres = softmax(head.logits(head.class_means) + told.update(head.class_means))
    if anchored:
        assert list(centres.argmax(1)) == list(range(len(VOICE_LABELS)))
        assert centres.max(1).min() >= 0.6  # each read as itself, clearly (>= 0.86 on x86-64)
        assert everyday[sad] <= 0.6  # part of the way (0.43 on x86-64)
    else:
        assert everyday[sad] >= 0.9  # everything this voice says is now sad (0.99 on x86-64)


def test_profile_reset_forgets_what_the_voice_was_taught_even_while_running(
        tmp_path: Path, speech: np.ndarray) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(f'[device]\nstate_dir = "{tmp_path}"\n')
    analyzer = voice_build(parse_config({"device": {"state_dir": str(tmp_path)}}, env={}), PlaybackGuard(), True)
    say(analyzer, speech, 0)
    analyzer.teach("fearful", after(speech, 0))
    assert (tmp_path / PERSONAL_FILE).exists()
    shown = subprocess.run([sys.executable, "-m", "emomusic", "profile", "--config", str(conf)],
                           capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout)["voice_statements"] == {"1": {"fearful": 1}}
    res = subprocess.run([sys.executable, "-m", "emomusic", "profile", "--config", str(conf), "--reset"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["voice_personalisation_forgotten"] is True
    assert not (tmp_path / PERSONAL_FILE).exists()
    assert analyzer.classifier.personal is not None
    analyzer.classifier.personal.refresh()  # what the running analyzer does every few seconds
    assert analyzer.classifier.personal.voices == {}


def test_a_statement_reaches_the_analyzer_on_its_own_thread() -> None:
    class Learner:
        modality, latency_s = "voice", 0.0

        def __init__(self) -> None:
            self.taught: list[tuple[str, float, str]] = []

        def process(self, item: Sensed) -> Observation | None:
            return None

        def teach(self, label: str, t: float) -> None:
            self.taught.append((label, t, threading.current_thread().name))

    learner = Learner()
    inbox: DropOldestQueue[Sensed] = DropOldestQueue(4, "in")
    worker = AnalyzerWorker("voice", lambda: learner, inbox, DropOldestQueue(4, "out"), first=learner)
    worker.start()
    worker.tell("sad", 12.5)
    deadline = time.monotonic() + 5
    while not learner.taught and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    worker.join(5)
    assert learner.taught == [("sad", 12.5, "analyzer-voice")]
