"""Benchmarks: per-stage latency, the whole daemon's CPU and memory, and the seeds' model sizes.

    python scripts/bench.py [--out docs/PERFORMANCE.md] [--quick] [--music FOLDER...]
    python scripts/bench.py --web     # only the web stage's CPU, idle and with a page open
    python scripts/bench.py --memory | --stages | --scan FOLDER...   # one part, printed as JSON
    python scripts/bench.py --voice-memory   # the voice's memory traffic with a Pi 4's caches (valgrind)
    python scripts/bench.py --hide-int8-dot-product ...   # the same, as on a CPU without VNNI/AMX

Not a test: it measures and writes docs/PERFORMANCE.md with the machine's description.
- Per stage (median of repeated runs, one thread): capture decode, face detection (full and short
  range), face classification, VAD per 30 ms frame, mel frames, the speaker encoder and the emotion
  head per 2 s window, fusion update, MQTT publish round trip through a mosquitto on loopback; the
  models for onnxruntime and LiteRT, int8 and fp32.
- ``emomusic run`` on its defaults (first start and steady): peak RSS, steady CPU.
- ``emomusic replay`` of a 640x480 @ 15 fps video with 16 kHz speech at real-time pace with the
  default settings, as a subprocess: CPU seconds per second of stream, peak RSS.
- The page's CPU, idle and with a page open; with ``--music FOLDER...`` the first library scan rate.
- The seeds' choice, in the same run: a Swin-T-sized face model at 224x224 and a WavLM-base-sized
  audio model (transformers' architectures with random weights, exported to ONNX and run by the
  same onnxruntime), as the cost per second of stream, and the ratio to ours.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from emomusic.audio import PlaybackGuard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.runtime import INT8_DOT_FLAGS, cpuid_features, int8_dot_product  # noqa: E402

MODELS = ROOT / "models"
MEASURED = Path(tempfile.gettempdir()) / "emomusic-bench-figures.json"  # the last full run's figures


def timeit(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    code = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    try:
        dot = int8_dot_product(Path("/proc/cpuinfo").read_text())
    except OSError:
        dot = False
    return {"cpu": cpu, "cores": str(os.cpu_count()), "arch": platform.machine(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "code": code.stdout.strip() or "unknown", "kind": HIDDEN_KIND if hidden() else CPU_KINDS[dot]}


CPU_KINDS = {True: "with int8 dot product", False: "without int8 dot product"}
HIDDEN_KIND = "the first kind, its int8 dot product hidden"  # the same CPU, as software sees one without
HIDDEN_ENV = "EMOMUSIC_BENCH_DOT_PRODUCT_HIDDEN"
HIDER = ROOT / "scripts" / "hide_int8_dot_product.c"


def hidden() -> bool:
    """Whether this run is under ``--hide-int8-dot-product`` and numpy, asking the CPU, sees no AVX-512."""
    if not os.environ.get(HIDDEN_ENV):
        return False
    seen = cpuid_features()
    if seen.get("AVX512F") or seen.get("AVX512VNNI"):
        raise SystemExit("--hide-int8-dot-product: the CPU's AVX-512 is still visible; nothing was hidden")
    return True


def cannot_hide() -> str:
    """Why ``--hide-int8-dot-product`` cannot run on this machine; empty when it can."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if platform.machine() != "x86_64" or "cpuid_fault" not in flags or not int8_dot_product(flags):
        return "it needs an x86-64 CPU with an int8 dot product whose kernel offers CPUID faulting (cpuid_fault)"
    if not (shutil.which("cc") or shutil.which("gcc")):
        return "it needs a C compiler (cc)"
    return ""


def build_hider(folder: Path) -> Path:
    """``hide_int8_dot_product.c`` built into ``folder``, to be named in LD_PRELOAD."""
    lib = folder / "hide.so"
    cc = shutil.which("cc") or shutil.which("gcc") or "cc"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(HIDER), "-ldl"], check=True)
    return lib


def rerun_hidden(argv: list[str]) -> int:
    """This benchmark again, with AVX-512, VNNI and AMX hidden from every CPUID its processes make
    (``hide_int8_dot_product.c`` as LD_PRELOAD, built with cc): onnxruntime, LiteRT and numpy then take the
    paths of a CPU without an int8 dot product, on the same hardware, so the two runs differ in the
    instructions only (a CPU that lacks them is usually older and slower in everything as well)."""
    if why := cannot_hide():
        raise SystemExit(f"--hide-int8-dot-product: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_hider(Path(tmp))
        preload = " ".join(filter(None, [str(lib), os.environ.get("LD_PRELOAD", "")]))
        return subprocess.run([sys.executable, *argv], env=os.environ | {"LD_PRELOAD": preload, HIDDEN_ENV: "1"},
                              check=False).returncode


# -- per stage -------------------------------------------------------------------------------------
def audible_guard(playing: bool) -> PlaybackGuard:
    """The voice stage's self-hearing guard as the player leaves it: music a microphone hears, or none."""
    from emomusic.audio import PlaybackGuard

    guard = PlaybackGuard()
    guard.set_playback(playing, 0.6)
    return guard


def frame_decoder(seconds: float) -> Callable[[], None]:
    """Decodes the next frame of a generated 640x480 MJPG video each call (from its start again at its end),
    as a camera's frames are decoded."""
    import cv2

    from emomusic.sources.samples import make_video

    path = Path(tempfile.mkdtemp()) / "v.avi"
    make_video(path, seconds=seconds)
    cap = cv2.VideoCapture(str(path))

    def decode() -> None:
        ok, _ = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    return decode


def sample_frame() -> np.ndarray:
    """A 640x480 frame with the sample face in it, the stages' face input."""
    import cv2

    from emomusic.sources.samples import SAMPLE_FACE

    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[150:326, 230:406] = cv2.imread(str(SAMPLE_FACE))
    return frame


def voiced_window() -> np.ndarray:
    """2 s of a voice-like signal at 16 kHz in -1..1 (a 180 Hz tone swaying in level 3 times a second, a little
    noise): a voice stage's input where espeak-ng is not at hand."""
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    return 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(32000)


def stage_benchmarks(repeat: int) -> dict[str, float]:

    from emomusic.config.fusion import FusionConfig
    from emomusic.face.analyzer import ExpressionClassifier
    from emomusic.face.detector import FaceDetector
    from emomusic.face.preprocess import align_face
    from emomusic.face.tracking import FaceFollower
    from emomusic.fusion.fuser import Fusion
    from emomusic.messages import Observation
    from emomusic.sources.samples import espeak_speech
    from emomusic.voice.analyzer import VoiceClassifier
    from emomusic.voice.encoder import VoiceEncoder, mel_frames
    from emomusic.voice.vad import speech_windows

    out: dict[str, float] = {}
    out["capture decode 640x480 MJPG frame"] = timeit(frame_decoder(4), repeat)
    frame = sample_frame()
    for backend in ("onnxruntime", "tflite"):
        for model in ("full", "short"):
            det = FaceDetector(model, backend)
            out[f"face detect ({model} range, {backend})"] = timeit(lambda d=det: d.detect(frame), repeat)
        found = FaceDetector("full").detect(frame)[0]
        crop = align_face(frame, found.box, found.keypoints)
        if backend == "onnxruntime":
            out["face align (keypoints -> level 48x48 crop)"] = timeit(
                lambda f=found: align_face(frame, f.box, f.keypoints), repeat)
            follower = FaceFollower(frame, FaceDetector("full").detect(frame)[0])
            out["face following between detections (template match)"] = timeit(
                lambda f=follower: f.follow(frame), repeat)
        for precision in ("int8", "fp32"):
            clf = ExpressionClassifier(MODELS, backend, precision)
            out[view_key(precision, backend)] = timeit(
                lambda c=clf, x=crop: c.classify([x], "plain"), repeat)
            out[f"face classify, one face with its mirror ({precision}, {backend})"] = timeit(
                lambda c=clf, x=crop: c.classify([x]), repeat)
            small = ExpressionClassifier(MODELS, backend, precision, size="small")
            out[view_key(precision, backend, "small")] = timeit(
                lambda c=small, x=crop: c.classify([x], "plain"), repeat)
    speech = espeak_speech("Measuring how long the voice pipeline takes for one window of speech.")
    assert speech is not None
    window = (np.resize(speech, 32000) * 16000).astype(np.int16)
    import webrtcvad

    vad = webrtcvad.Vad(2)
    frame30 = window[:480].tobytes()
    out["VAD per 30 ms frame"] = timeit(lambda: vad.is_speech(frame30, 16000), repeat * 10)
    talk = np.concatenate([window, np.zeros(64000, np.int16)] * 3)  # 18 s: 2 s of speech, then 4 s of pause
    for playing in (False, True):  # music a microphone hears: each frame is held against its level too
        out["voice activity per second of audio (levels, VAD, windows)" + (", music playing" if playing else "")] \
            = timeit(lambda p=playing: speech_windows(talk, guard=audible_guard(p)), max(3, repeat // 20)) / 18
    out["voice mel frames per 2 s window"] = timeit(lambda: mel_frames(window / 32768.0), repeat)
    enc = VoiceEncoder(MODELS)
    out["voice encoder per 2 s window (int8 weights)"] = timeit(lambda: enc.encode([window]), repeat)
    cold = VoiceClassifier(MODELS)
    out["voice encoder + head per 2 s window (cold)"] = timeit(lambda: cold.classify([window]), repeat)
    adapted = VoiceClassifier(MODELS, adaptation=True)
    out["voice encoder + adaptation + head per 2 s window"] = timeit(lambda: adapted.classify([window]), repeat)
    fusion = Fusion(FusionConfig())
    probs = {"happy": 0.7, "sad": 0.1, "neutral": 0.2}
    counter = [0.0]

    def fuse() -> None:
        counter[0] += 0.2
        fusion.add(Observation("face", counter[0], probs, 0.8))
        fusion.update(counter[0])

    out["fusion update (add + state)"] = timeit(fuse, repeat * 10)
    out.update(house_cost(repeat))
    rtt = mqtt_round_trip(repeat)
    if rtt is not None:
        out["MQTT publish round trip (loopback mosquitto, QoS 0)"] = rtt
    return out


HOUSE_MESSAGES_PER_S = 2.0  # a room sends its state at most once a second (min_interval_s), its player on change


def house_cost(repeat: int) -> dict[str, float]:
    """Following the house: one room's retained message taken in, and the mood worked out (once per
    supervision tick, 4 a second), priced per room at HOUSE_MESSAGES_PER_S."""
    import json

    from emomusic.house.view import HouseView

    view = HouseView("emomusic", "me", 0.5)
    for i in range(8):  # a big house: eight rooms known
        view.on_message(f"emomusic/r{i}/availability", b"online")
    state = json.dumps({"emotion": "happy", "confidence": 0.71, "valence": 0.52, "arousal": 0.33,
                        "probabilities": {k: 0.1 for k in ("neutral", "happy", "sad", "angry", "calm", "fearful")},
                        "modalities": {"face": {"emotion": "happy", "weight": 0.6, "age_s": 0.4},
                                       "voice": {"emotion": "calm", "weight": 0.2, "age_s": 2.1}},
                        "time": "2026-12-03T04:00:00Z"}).encode()
    message = timeit(lambda: view.on_message("emomusic/r3/state", state), repeat * 10)
    mood = timeit(lambda: (view.leader(), view.mood()), repeat * 10)
    return {"house: one room's state message taken in": message,
            "house: who leads and the mood, 8 rooms (4 a second)": mood,
            "house: following one room, % of one core": (message * HOUSE_MESSAGES_PER_S + mood * 4 / 8) / 10}


def mqtt_round_trip(repeat: int) -> float | None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = Path(tempfile.mkdtemp()) / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        got = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2)
        c.on_message = lambda *a: got.set()
        c.connect("127.0.0.1", port)
        c.subscribe("bench/rtt")
        c.loop_start()
        time.sleep(0.3)

        def once() -> None:
            got.clear()
            c.publish("bench/rtt", b"x" * 300)
            got.wait(2)

        result = timeit(once, repeat)
        c.loop_stop()
        c.disconnect()
        return result
    finally:
        proc.kill()


# -- whole daemon ------------------------------------------------------------------------------------
def whole_daemon(seconds: float, warmup_s: float = 15.0) -> dict[str, float]:
    """Replay generated media at real-time pace in a subprocess: CPU per stream second overall and
    in steady state (after ``warmup_s``, i.e. without start-up and model loading), and peak RSS."""
    from emomusic.sources.samples import make_speech_track, make_video

    tmp = Path(tempfile.mkdtemp())
    make_video(tmp / "video.avi", seconds=seconds, fps=15, size=(640, 480))
    make_speech_track(tmp / "audio.wav")
    import soundfile as sf

    speech, _ = sf.read(tmp / "audio.wav", dtype="int16")
    reps = int(np.ceil(seconds * 16000 / speech.size))
    sf.write(tmp / "audio.wav", np.tile(speech, reps)[: int(seconds * 16000)], 16000)
    tick = os.sysconf("SC_CLK_TCK")

    def cpu_of(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime of every thread

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "emomusic", "replay", "--video", str(tmp / "video.avi"),
                             "--audio", str(tmp / "audio.wav"), "--jsonl", str(tmp / "out.jsonl")],
                            env=os.environ | {"EMOMUSIC_STATE_DIR": str(tmp / "state")}, stdout=subprocess.DEVNULL)
    marks: list[tuple[float, float]] = []
    while proc.poll() is None:
        try:
            marks.append((time.perf_counter() - t0, cpu_of(proc.pid)))
        except (OSError, IndexError):
            pass
        time.sleep(0.5)
    if proc.returncode:
        raise SystemExit(f"emomusic replay failed with exit code {proc.returncode}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    steady = [(t, c) for t, c in marks if t >= warmup_s]
    steady_pct = 100 * (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else None
    return {"stream_s": seconds, "wall_s": round(wall, 1), "cpu_s": round(cpu, 2),
            "cpu_s_per_stream_s": round(cpu / seconds, 4), "cpu_percent_of_one_core": round(100 * cpu / seconds, 1),
            "steady_from_s": warmup_s, "steady_cpu_percent_of_one_core":
                None if steady_pct is None else round(steady_pct, 1),
            "peak_rss_mb": round(after.ru_maxrss / 1024, 1)}


ThreadTimes = dict[tuple[str, str], tuple[float, int, int]]  # (thread id, name) -> CPU s, times scheduled in, faults
THREAD_KEY = "steady cpu by thread (% of one core, wakeups a second, page faults a second)"


def full_daemon_memory(seconds: float = 60.0, warmup_s: float = 20.0) -> dict[str, float]:
    """``emomusic run`` on its defaults (sample media, the demo library through SDL's dummy driver, the
    page, no broker) in a fresh state dir, twice: peak RSS of the first start (sample media and demo
    library made and indexed in the daemon) and of a second start (the steady daemon), read from the
    process's own VmHWM so nothing else the benchmark ran can be counted; and the steady daemon's CPU
    after ``warmup_s``."""
    state = Path(tempfile.mkdtemp())
    env = os.environ | {"EMOMUSIC_STATE_DIR": str(state), "SDL_AUDIODRIVER": "dummy", "EMOMUSIC_WEB_PORT": "0"}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {"seconds": seconds, "warmup_s": warmup_s}
    for run in ("first start", "steady"):
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "emomusic", "run", "--config", str(ROOT / "config.toml"),
                                 "--no-mqtt", "--duration", str(seconds)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hwm_kb, top_kb, split = 0, 0, (0, 0)
        marks: list[tuple[float, float]] = []
        threads: list[tuple[float, ThreadTimes]] = []  # the steady window's first, latest sample
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                hwm_kb = int(status.split("VmHWM:")[1].split()[0])
                rss_kb = int(status.split("VmRSS:")[1].split()[0])
                if rss_kb > top_kb:  # what the largest sampled RSS was made of
                    top_kb = rss_kb
                    split = tuple(int(status.split(k)[1].split()[0]) for k in ("RssAnon:", "RssFile:"))
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                marks.append((time.monotonic() - t0, (int(fields[11]) + int(fields[12])) / tick))
                if run == "steady" and warmup_s <= marks[-1][0] <= seconds:  # the daemon's own clock starts later
                    now = (marks[-1][0], thread_times(proc.pid))
                    threads = [threads[0] if threads else now, now]
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.5)
        if proc.returncode:
            raise SystemExit(f"emomusic run failed with exit code {proc.returncode}")
        out[f"{run} peak RSS (MB)"] = round(hwm_kb / 1024, 1)
        out[f"{run} anonymous / file-backed at the largest sample (MB)"] = [round(v / 1024, 1) for v in split]
        steady = [(t, c) for t, c in marks if t >= warmup_s]
        if run == "steady" and len(steady) > 1:
            span = steady[-1][0] - steady[0][0]
            out["steady cpu (% of one core)"] = round(100 * (steady[-1][1] - steady[0][1]) / span, 1)
            if threads and threads[1][0] > threads[0][0]:
                out[THREAD_KEY] = by_thread(
                    threads[0][1], threads[1][1], threads[1][0] - threads[0][0])
    return out


def thread_times(pid: int) -> ThreadTimes:
    """Each thread of a process by (id, name): its CPU seconds and times scheduled in (/proc/PID/task/TID/schedstat,
    exact where the per-tick stat is not), and the pages it faulted in (minflt of its stat)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ns, _, slices = (task / "schedstat").read_text().split()
            name = "main (supervision)" if task.name == str(pid) else (task / "comm").read_text().strip()
            faults = int((task / "stat").read_text().rsplit(")", 1)[1].split()[7])
            out[task.name, name] = (int(ns) / 1e9, int(slices), faults)
        except (OSError, ValueError):
            continue
    return out


def by_thread(first: ThreadTimes, last: ThreadTimes,
              span: float) -> dict[str, list[float]]:
    """Each thread name's share of a core, wakeups and page faults a second between two samples (threads of one
    name summed)."""
    out: dict[str, list[float]] = {}
    for (tid, name), (cpu, slices, faults) in last.items():
        cpu0, slices0, faults0 = first.get((tid, name), (0.0, 0, 0))
        row = out.setdefault(name, [0.0, 0.0, 0.0])
        row[0] += 100 * (cpu - cpu0) / span
        row[1] += (slices - slices0) / span
        row[2] += (faults - faults0) / span
    return {k: [round(c, 3), round(w, 1), round(f, 1)]
            for k, (c, w, f) in sorted(out.items(), key=lambda kv: -kv[1][0])}


MEMORY_STEPS = """
import json, sys
def rss():
    s = open('/proc/self/status').read()
    return [int(s.split(k)[1].split()[0]) / 1024 for k in ('RssAnon:', 'RssFile:')]
out, last = {}, rss()
out['Python itself'] = last
def step(name, fn):
    global last
    fn()
    now = rss()
    out[name] = [round(a - b, 1) for a, b in zip(now, last)]
    last = now
step('numpy and OpenCV', lambda: (__import__('numpy'), __import__('cv2')))
step('onnxruntime', lambda: __import__('onnxruntime'))
step('settings (emomusic.config: msgspec)', lambda: __import__('emomusic.config'))
step('the page (aiohttp)', lambda: __import__('emomusic.web.server'))
def player():
    import pygame
    pygame.mixer.init()
step('the player (pygame, its mixer started)', player)
def ours():
    import emomusic.cli.main, emomusic.service.daemon, emomusic.music.controller, emomusic.mqtt.bridge  # noqa
step('the rest of emomusic and paho-mqtt', ours)
def models():
    import numpy as np
    from pathlib import Path
    from emomusic.runtime import Model
    d = Path(sys.argv[1])
    for name, weight_only in (('face_detector_full.onnx', False), ('face_detector_short.onnx', False),
                              ('face_expression_int8.onnx', False), ('voice_encoder_int8.onnx', False)):
        m = Model(d / name, weight_only=weight_only)
        shape = [1, 160, 40] if name.startswith('voice') else [1 if v < 0 else v for v in m.input_shape]
        m.run(np.zeros(shape, np.float32))
        models.keep.append(m)
models.keep = []
step('the four models loaded and run once (onnxruntime)', models)
print(json.dumps(out))
"""


def memory_breakdown() -> dict[str, list[float]]:
    """Where a daemon's memory goes, step by step in a fresh process of this interpreter: each step's
    growth of anonymous and file-backed RSS (MB), as the daemon meets them (the steady daemon's peak
    minus their sum is its threads, buffers, library, player and page at work)."""
    env = os.environ | {"SDL_AUDIODRIVER": "dummy"}
    res = subprocess.run([sys.executable, "-c", MEMORY_STEPS, str(ROOT / "models")], env=env, capture_output=True,
                         text=True, timeout=300)
    if res.returncode:
        raise SystemExit(f"memory breakdown failed: {res.stderr.strip().splitlines()[-1:]}")
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


class FaceWork(NamedTuple):
    """What the face analyzer does per frame of the sample video (a seated listener swaying)."""

    detect_share: float  # frames on which a detection runs (every n-th, and whenever the face moved)
    near_share: float  # of those detections, the ones that looked only around the followed face
    full_runs: float  # the full range's runs per frame (all its looks: whole frame, quarters)
    short_runs: float  # the short range's (second looks, around a face)
    views: float  # faces classified per frame (a steady face is classified on every other frame only)


def face_work(seconds: float = 60.0) -> FaceWork:
    """The face analyzer on the daemon's defaults over ``seconds`` of the sample video, counted."""
    import cv2

    from emomusic.config import load_config
    from emomusic.face.analyzer import FaceAnalyzer
    from emomusic.face.detector import BothRanges
    from emomusic.messages import VideoFrame
    from emomusic.sources.samples import make_video

    tmp = Path(tempfile.mkdtemp())
    make_video(tmp / "v.avi", seconds=seconds)
    cfg = load_config(None, env={})
    analyzer = FaceAnalyzer(cfg.face, cfg.models)
    cap = cv2.VideoCapture(str(tmp / "v.avi"))
    step = round(cap.get(cv2.CAP_PROP_FPS) / cfg.camera.analysis_fps)
    frames = 0
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            analyzer.process(VideoFrame(i / cap.get(cv2.CAP_PROP_FPS), frame, frames))
            frames += 1
        i += 1
    det, n, sched = analyzer.detector, max(1, frames), analyzer.schedule
    full, short = (det.full.runs, det.short.runs) if isinstance(det, BothRanges) else (getattr(det, "runs", 0), 0)
    runs = sched.runs + sched.near_runs
    return FaceWork(runs / n, sched.near_runs / max(1, runs), full / n, short / n, analyzer.views / n)


# -- the seeds' models ---------------------------------------------------------------------------------
def seed_models(repeat: int) -> dict[str, float]:
    """Swin-T (224x224) and WavLM-base (2 s at 16 kHz) with random weights, through onnxruntime."""
    import onnxruntime as ort
    import torch
    from transformers import SwinConfig, SwinModel, WavLMConfig, WavLMModel

    tmp = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    out = {}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    for name, model, example in (
        ("Swin-T face model, 224x224 (per frame)", SwinModel(SwinConfig()).eval(), torch.randn(1, 3, 224, 224)),
        ("WavLM-base audio model, 2 s window", WavLMModel(WavLMConfig()).eval(), torch.randn(1, 32000)),
    ):
        path = tmp / "m.onnx"
        with torch.no_grad():
            torch.onnx.export(model, (example,), str(path), opset_version=17, dynamo=False)
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: example.numpy()}
        out[name] = timeit(lambda s=sess, f=feed: s.run(None, f), max(3, repeat // 10), warmup=1)
        out[name + " parameters (M)"] = sum(p.numel() for p in model.parameters()) / 1e6
    return out


# The goals the issues set, each once: the opening table shows them and the "Not met today" line checks them.
GOALS = {
    "`emomusic run` CPU": ("≤", 3.0, "%"),  # #35: on a CPU without an int8 dot product too
    "`emomusic run` steady RSS": ("≤", 150.0, "MB"),
    "first start RSS": ("≤", 190.0, "MB"),
    "one face view": ("≤", 1.5, "ms"),
    "voice per second of speech": ("≤", 10.0, "ms"),
    "cheaper than seed-sized models": ("≥", 50.0, "×"),
    "library scan": ("≥", 5.0, "tracks/s"),
    "following the house": ("≤", 0.2, "% per room"),
}


def _goal(key: str) -> str:
    op, value, unit = GOALS[key]
    return f"{op} {value:g} {unit}"


def _voice_ms(st: dict[str, float]) -> float:
    """Voice per second of speech: mel, encoder, adaptation and head on one 2 s window a second. An utterance is
    read at 1 s (its provisional first second), 2 s, 3 s …: 1.03-1.05 windows a second of speech on the sample
    story and two proof scenarios (0.61-0.69 before the first second was read, 2026-12-05)."""
    return st["voice mel frames per 2 s window"] + st["voice encoder + adaptation + head per 2 s window"]


def measured(info: dict[str, Any]) -> dict[str, float]:
    """Today's figure for each goal this run measured."""
    st, run = info["stages"], info["memory"]
    out = {
        "`emomusic run` CPU": run["steady cpu (% of one core)"] or 0.0,
        "`emomusic run` steady RSS": run["steady peak RSS (MB)"],
        "first start RSS": run["first start peak RSS (MB)"],
        "one face view": st[view_key("int8", "onnxruntime", info["classifier"])],
        "voice per second of speech": _voice_ms(st),
        "following the house": st["house: following one room, % of one core"],
    }
    if "seeds_per_stream_s_ms" in info:
        out["cheaper than seed-sized models"] = info["seeds_per_stream_s_ms"] / info["ours_per_stream_s_ms"]
    if info.get("scan"):
        out["library scan"] = info["scan"]["tracks_per_s"]
    return out


def _row(what: str, value: str, goal: str = "") -> str:
    return f"| {what} | {value} | {goal} |"


def summary_rows(info: dict[str, Any]) -> list[str]:
    """The opening table: today's figure of everything a goal was set for, beside the goal."""
    st, run, w = info["stages"], info["memory"], info["daemon"]
    rows = [
        _row("`emomusic run` on its defaults (sample media, demo music, page), CPU in steady state",
             f"**{run['steady cpu (% of one core)']} %** of one core", _goal("`emomusic run` CPU")),
        _row("`emomusic replay` at real-time pace (face, voice, fusion), CPU in steady state",
             f"{w['steady_cpu_percent_of_one_core']} % of one core", ""),
        _row("the models per second of stream", f"{info['ours_per_stream_s_ms']:.1f} ms", ""),
    ]
    if "seeds_per_stream_s_ms" in info:
        seeds = "cheaper than seed-sized models"
        rows.append(_row(f"{seeds} ({info['fps']:g} × Swin-T + 1 × WavLM-base per second)",
                         f"**{measured(info)[seeds]:.0f}×**", _goal(seeds)))
    rows += [
        _row("`emomusic run` peak RSS, steady (library and sample media exist)",
             f"**{run['steady peak RSS (MB)']} MB**", _goal("`emomusic run` steady RSS")),
        _row("`emomusic run` peak RSS, first start (sample media and demo library made)",
             f"{run['first start peak RSS (MB)']} MB", _goal("first start RSS")),
        _row(f"one face view, int8, onnxruntime (the {info['classifier']} model, what `face.classifier` auto "
             "chooses on this CPU)", f"{st[view_key('int8', 'onnxruntime', info['classifier'])]:.2f} ms",
             _goal("one face view")),
        _row("voice per second of speech (mel, encoder, adaptation, head: one 2 s window a second, an "
             "utterance's provisional first second included)",
             f"{_voice_ms(st):.1f} ms", _goal("voice per second of speech")),
        _row("following the house, per room (its messages taken in, the mood worked out)",
             f"{st['house: following one room, % of one core']:.4f} % of one core", _goal("following the house")),
    ]
    scan = info.get("scan")
    rows.append(_row(f"first library scan of real music ({scan['files']} files, {scan['jobs']} workers)"
                     if scan else "first library scan of real music", f"**{scan['tracks_per_s']} tracks/s**"
                     if scan else "not measured in this run (`--music FOLDER`)", _goal("library scan")))
    web = info.get("web")
    if web:
        rows.append(_row("the page's CPU: no page open / one page open",
                         f"{web['idle_no_page_percent_of_one_core']} % / "
                         f"{web['one_page_open_percent_of_one_core']} % of one core", "< 1 %"))
    player = info.get("player")
    if player:
        from emomusic.music.players.pygame_player import MIXER_BUFFER

        ours = [v for k, v in player.items() if k.endswith(f"buffer {MIXER_BUFFER}")]
        default = [v for k, v in player.items() if k.endswith("buffer 512")]
        rows.append(_row(f"the pygame player mixing a track (Ogg, MP3, FLAC; {MIXER_BUFFER}-sample buffer, "
                         "pygame's default 512)", f"{min(ours):.2f}-{max(ours):.2f} % "
                         f"({min(default):.2f}-{max(default):.2f} %) of one core", ""))
    mic = info.get("microphone")
    if mic:
        rows.append(_row("a live microphone's path: a callback per 300 ms block (every 30 ms, as until 2026-12-04; "
                         "PortAudio stood in for, no sound card here)", f"{mic['a callback per 300 ms block']:.2f} % "
                         f"({mic['a callback every 30 ms']:.2f} %) of one core", ""))
    low, high = info.get("pi_run_percent", (0.0, 0.0))
    rows.append(_row("Pi 4 estimate, `emomusic run` in steady state (from instructions counted on its kernels, below)",
                     f"~{low:.0f}-{high:.0f} % of one of its four cores", ""))
    return rows


def goals_not_met(figures: dict[str, float]) -> list[str]:
    """The goals these figures miss, said in one line under a table rather than left to be spotted."""
    out = []
    for what, value in figures.items():
        op, goal, unit = GOALS[what]
        if value > goal if op == "≤" else value < goal:
            out.append(f"{what} ({value:.1f} {unit}, goal {op} {goal:g} {unit})")
    return out


def int8_against_fp32(st: dict[str, float], size: str) -> str:
    """One face view in each precision and backend of this run: what a per-CPU choice would choose from."""
    views = face_views(st, size)
    cells = [f"{b}: int8 {views[b + ' int8']:.2f} ms, fp32 {views[b + ' fp32']:.2f} ms"
             for b in ("onnxruntime", "tflite") if b + " int8" in views]
    text = "One face view by precision and backend in this run: " + "; ".join(cells) + "."
    if "tflite int8" in views:
        full = "face detect (full range, {})"
        saved = 5 * (views["onnxruntime int8"] - views["tflite int8"]) + st[full.format("onnxruntime")] \
            - st[full.format("tflite")]
        text += " The daemon runs onnxruntime on every kind of CPU: "
        if saved <= 0:
            text += (f"the face models on LiteRT would cost {-saved:.1f} ms a second more here "
                     f"({-saved / 10:.2f} % of a core), and LiteRT beside onnxruntime (which the voice encoder "
                     f"needs anyway) holds {LITERT_MB:.0f} MB more.")
        else:
            text += (f"the face models on LiteRT would save {saved:.1f} ms a second here ({saved / 10:.2f} % of a "
                     f"core), but the voice encoder needs onnxruntime anyway and LiteRT beside it holds "
                     f"{LITERT_MB:.0f} MB more (its library and the face model's interpreter, measured 2026-12-03), "
                     "against a memory budget the daemon is within a few MB of.")
    return text


LITERT_MB = 14.4  # ai_edge_litert's import (8.4 MB) and one int8 face model's interpreter (6.0 MB) beside onnxruntime


def memory_section(run: dict[str, Any]) -> list[str]:
    """Where the steady daemon's peak RSS goes (anonymous: the heap, objects, model weights; file-backed:
    the pages of libraries and code it touched)."""
    parts = run.get("breakdown")
    if not parts:
        return []
    anon, file = run["steady anonymous / file-backed at the largest sample (MB)"]
    rows = ["", "## Memory: where the steady daemon's RSS goes", "",
            "| step (`bench.py --memory`, a fresh process) | anonymous MB | file-backed MB |", "|---|---|---|"]
    rows += [f"| {k} | {a:.1f} | {f:.1f} |" for k, (a, f) in parts.items()]
    sa, sf = sum(a for a, _ in parts.values()), sum(f for _, f in parts.values())
    rows += [f"| threads, buffers, the library, the player and page at work (the steady daemon's largest sample "
             f"minus the steps) | {anon - sa:.1f} | {file - sf:.1f} |",
             f"| **the steady daemon** ({run['steady peak RSS (MB)']} MB peak) | **{anon:.1f}** | **{file:.1f}** |",
             "",
             "File-backed pages are the libraries' code and data as far as they were touched; right after `pip "
             "install` the kernel maps freshly written files in larger pieces, so the same daemon reads larger in "
             "a just-built venv such as the dev venv `scripts/test.sh` makes (measured 2026-12-03: numpy, OpenCV "
             "and onnxruntime imported to 95.7 MB RSS there and 60.3 MB in an older venv, 59.2 MB in both after "
             "dropping the page cache; the same modules are imported in both, none because an extra is "
             "installed). Anonymous memory is the part no page cache can explain."]
    return rows


def cpu_section(run: dict[str, Any]) -> list[str]:
    """Where the steady daemon's CPU goes, thread by thread (the daemon names its stage threads)."""
    threads = run.get(THREAD_KEY)
    if not threads:
        return []
    rows = ["", "## CPU: where the steady daemon's time goes", "",
            "| thread | % of one core | wakeups a second | page faults a second |", "|---|---|---|---|"]
    rows += [f"| {name} | {cpu:.2f} | {wakes:.1f} | {faults:.1f} |"
             for name, (cpu, wakes, faults) in threads.items() if cpu >= 0.005]
    total = [sum(row[i] for row in threads.values()) for i in range(3)]
    rows += [f"| **the whole daemon** | **{total[0]:.2f}** | {total[1]:.1f} | {total[2]:.1f} |", "",
             "Each thread's CPU time and the times it was scheduled in, from `/proc/PID/task/TID/schedstat`, and the "
             "pages it faulted in (`minflt` of its `stat`), over the "
             "steady window of `emomusic run` below. The stage threads carry their names (`service/threadnames.py`): "
             "`analyzer-*` read frames and speech with the models, `source-*` decode the camera and read the "
             "microphone, `music` steps the player four times a second, `SDLAudioP2` is SDL's mixer; `python` "
             "threads are libraries' own (FFmpeg's decoder, PortAudio; a library's thread started from a stage "
             "thread carries that stage's name). A wakeup costs more than its work here: on "
             "this VM a thread that only sleeps and wakes spends ~0.1 ms of CPU each time (measured 2026-12-05), and "
             "a stage's code runs slower from cold caches than in the stage timings above. So does a page "
             "fault (~0.7 us here, and the mapping's system calls): until 2026-12-05 the models' activations and "
             "the detector's input were fresh memory on every run, 1,560 faults a second. Reused since "
             "(`runtime._shared_arena`, `service.memory`), a loop of the stream's models takes 16 % less CPU; the "
             "whole daemon changed within this VM's noise (`bench.py --memory` back to back, before / after: "
             "2.6 / 2.4 % and 2.6 / 2.7 % with the int8 dot product hidden, 2.5 / 2.5 % shown)."]
    return rows


KINDS_FILE = ROOT / "docs" / "performance-cpus.json"


FACE_VIEWS = ("onnxruntime int8", "onnxruntime fp32", "tflite int8", "tflite fp32")


def view_key(precision: str, backend: str, size: str = "large") -> str:
    """The stage timing of one face view of the ``size`` classifier (``face.classifier``)."""
    return f"face classify, one face, one view ({precision}, {backend})" + (", small model" if size == "small" else "")


def face_views(st: dict[str, float], size: str) -> dict[str, float]:
    """One face view's time in each backend and precision of this run, of the classifier the daemon chose."""
    out = {}
    for combo in FACE_VIEWS:
        backend, precision = combo.split()
        key = view_key(precision, backend, size)
        if key in st:
            out[combo] = round(st[key], 4)
    return out


def both_kinds(info: dict[str, Any], path: Path = KINDS_FILE) -> list[str]:
    """The headline figures of the last run on each kind of CPU (with and without an int8 dot product),
    side by side: this run's replaces its kind's entry in ``path``."""
    m = info["machine"]
    kinds = json.loads(path.read_text()) if path.is_file() else {}
    kinds[m["kind"]] = {"date": time.strftime("%Y-%m-%d"), "cpu": f"{m['cores']}-core {m['cpu']}",
                        "code": m["code"], "figures": {k: round(v, 4) for k, v in measured(info).items()},
                        "face view": face_views(info["stages"], info["classifier"])}
    path.write_text(json.dumps(kinds, indent=1) + "\n")
    order = [k for k in (*CPU_KINDS.values(), HIDDEN_KIND) if k in kinds]
    head = " | ".join(f"{k}: {kinds[k]['cpu']}, {kinds[k]['date']} ({kinds[k]['code']})" for k in order)
    rows = [f"| figure | {head} | goal |", "|---|" + "---|" * len(order) + "---|"]
    for key in GOALS:
        vals = [kinds[k]["figures"].get(key) for k in order]
        if any(v is not None for v in vals):
            cells = " | ".join("—" if v is None else f"{v:.4g} {GOALS[key][2]}" for v in vals)
            rows.append(f"| {key} | {cells} | {_goal(key)} |")
    for combo in FACE_VIEWS:  # what a per-CPU choice of backend and precision would choose from
        vals = [kinds[k].get("face view", {}).get(combo) for k in order]
        if any(v is not None for v in vals):
            rows.append(f"| one face view, {combo} | " + " | ".join("—" if v is None else f"{v:.3g} ms" for v in vals)
                        + " | |")
    missed = [f"{k}: " + "; ".join(m) for k in order if (m := goals_not_met(kinds[k]["figures"]))]
    return [*rows, "", "**Not met on the last run of each kind:** " + (". ".join(missed) or "none") + ".",
            *older_code_note(kinds, order, info["machine"]["code"]), *hidden_note(kinds)]


def older_code_note(kinds: dict[str, Any], order: list[str], code: str) -> list[str]:
    """A column measured on older code, where the daemon or the models have changed since: its figures are that
    code's, not today's (a kind of CPU this machine is not must wait for such a machine to be re-run)."""
    notes = []
    for k in order:
        then = kinds[k]["code"].removesuffix("-dirty")
        if then == code.removesuffix("-dirty"):
            continue
        since = subprocess.run(["git", "rev-list", "--count", f"{then}..HEAD", "--", "daemon", "models",
                                ":(exclude)models/*.md"], cwd=ROOT, capture_output=True, text=True)
        changed = int(since.stdout.strip() or 0) if since.returncode == 0 else 0
        if changed:
            notes.append(f"{k}: measured at {then}; {changed} commits changed the daemon or the models "
                         f"between it and {code}")
    return ["", "**Older code:** " + "; ".join(notes) + ". Those figures are that code's; the column waits for a "
            "re-run on its kind of CPU."] if notes else []


def hidden_note(kinds: dict[str, Any]) -> list[str]:
    """What the int8 instructions alone are worth: the run with them against the run with them hidden, when
    both were taken on the same day on the same kind of machine."""
    with_, hid = kinds.get(CPU_KINDS[True]), kinds.get(HIDDEN_KIND)
    if not with_ or not hid or (with_["date"], with_["cpu"]) != (hid["date"], hid["cpu"]):
        return []
    a, b = with_["figures"], hid["figures"]
    keys = ("`emomusic run` CPU", "one face view", "voice per second of speech", "library scan")
    if any(k not in a or k not in b for k in keys):
        return []
    run, face, voice, scan = ((a[k], b[k]) for k in keys)
    return ["", f"**The instructions alone** (the first and third columns: one machine, {hid['date']}): hiding them "
            f"moves `emomusic run` from {run[0]:.1f} to {run[1]:.1f} % of a core, one int8 face view from "
            f"{face[0]:.2f} to {face[1]:.2f} ms, the voice from {voice[0]:.1f} to {voice[1]:.1f} ms per second of "
            f"speech, the scan from {scan[0]:.1f} to {scan[1]:.1f} tracks/s (its models compute in float32). A CPU "
            "without them that does worse than the third column is slower in everything, float32 included."]


def write_report(path: Path, info: dict[str, Any]) -> None:
    st = info["stages"]
    m = info["machine"]
    lines = ["# Performance", "",
             "The last run of `python scripts/bench.py` on each kind of CPU (`/proc/cpuinfo` names an int8 "
             f"dot-product instruction, {', '.join(sorted(INT8_DOT_FLAGS))}, or not), and on a CPU of the first "
             "kind with those instructions and AVX-512 hidden from the software (`--hide-int8-dot-product`: the "
             f"same hardware, the kernels of a CPU without; `{KINDS_FILE.name}`):", "",
             *both_kinds(info), "",
             f"Today's figures in detail, measured on **{time.strftime('%Y-%m-%d')}** "
             f"(code {m['code']}) on a {m['cores']}-core {m['cpu']} ({m['arch']}, {m['kind']}, Python {m['python']}, "
             f"onnxruntime {m['onnxruntime']}). Earlier figures: docs/HISTORY.md.", "",
             "| what | today | goal |", "|---|---|---|", *summary_rows(info), "",
             "**Not met today:** " + ("; ".join(goals_not_met(measured(info))) or "none") + ".", "",
             int8_against_fp32(st, info["classifier"]), "",
             "Absolute times depend on the machine and, on a shared VM like this one, on the neighbours: between "
             "runs on the same day single stages varied by up to 2x. Ratios and shares are taken within one run.",
             "", "## Per stage (median, one thread)", "", "| stage | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in st.items()]
    w = info["daemon"]
    run = info["memory"]
    lines += arm64_section(arm64_counts())
    lines += memory_section(run)
    lines += cpu_section(run)
    lines += ["", "## How each figure is taken", "",
              f"- **`emomusic run`**: the README's first command on its defaults (sample video and speech, the demo "
              "library through SDL's dummy driver, the page, no broker) in a fresh state dir, twice: a first start "
              f"(sample media and the demo library made inside the daemon) and a second start for {run['seconds']:.0f} "
              "s (the steady daemon). Peak RSS from the process's own `VmHWM`; CPU from `/proc/PID/stat` after "
              f"{run['warmup_s']:.0f} s. No microphone hears music played through the dummy driver, so the voice "
              "stage's self-hearing guard is off in this run; with music heard, its activity detection costs what the "
              "'voice activity …, music playing' stage below shows instead of the plain one.",
              f"- **`emomusic replay`**: a {w['stream_s']:.0f} s 640x480 @ 15 fps video with 16 kHz speech at "
              f"real-time pace, default settings (face at {info['fps']:g} fps, BlazeFace full range on every "
              f"{info['detect_every']}th analysed frame, followed in between, int8 models, onnxruntime, one BLAS "
              f"thread); no music, no page. Steady state from {w['steady_from_s']:.0f} s of stream; overall "
              f"{w['cpu_percent_of_one_core']} % of one core including Python start-up and model loading; "
              f"peak RSS {w['peak_rss_mb']} MB (`ru_maxrss`).",
              f"- **Models per second of stream**: {info['fps']:g} × ({info['full_runs_per_frame']:.2f} × full range + "
              f"{info['short_runs_per_frame']:.2f} × short range: the runs per analysed frame of the sample video, "
              f"where a detection ran on {100 * info['detection_share']:.0f} % of the frames, every "
              f"{info['detect_every']}th and again when the face could not be followed, "
              f"{100 * info['near_share']:.0f} % of them only around the followed face) + {info['fps']:g} × "
              f"(following + {info['views_per_frame']:.2f} × classify one view, int8: the views classified per "
              "frame there, a steady face on every other frame only; the daemon alternates the plain and mirrored "
              "view) + 1 × "
              "(voice mel, encoder, adaptation and head, as if someone spoke all the time) + 33 × VAD. "
              "A face that cannot be followed is "
              f"detected on every frame: {info['ours_detect_always_ms']:.1f} ms."]
    s = info.get("seeds")
    if s:
        lines += [f"- **Seed-sized models**: Swin-T ({s['Swin-T face model, 224x224 (per frame) parameters (M)']:.1f} "
                  f"M parameters, {s['Swin-T face model, 224x224 (per frame)']:.1f} ms per 224x224 frame, "
                  f"{info['fps']:g} a second, as the daemon analyses frames) "
                  f"and WavLM-base ({s['WavLM-base audio model, 2 s window parameters (M)']:.1f} M parameters, "
                  f"{s['WavLM-base audio model, 2 s window']:.1f} ms per 2 s window, one a second): "
                  f"{info['seeds_per_stream_s_ms']:.1f} ms per second of stream, transformers' architectures with "
                  "random weights exported to ONNX and run by the same onnxruntime, one thread (this compares cost, "
                  "not accuracy)."]
    scan = info.get("scan")
    if scan:
        lines += [f"- **Library scan**: `emomusic scan`'s code into a fresh index over {scan['files']} files "
                  f"({scan['megabytes']} MB; {scan['analysed']} analysed, {scan['not_queued']} too short): tags, "
                  "musicnn's two taggers on three 3 s patches and the audio features of the middle 20 s, index "
                  f"writes included; {scan['wall_s']} s with {scan['jobs']} worker processes. The folders: "
                  f"{', '.join(scan['folders'])}."]
    if info.get("web"):
        lines += ["- **The page**: the CPU of the web stage's thread (aiohttp in its own event loop, "
                  "`/proc/self/task/TID/stat`) over a minute with no page open, then a minute with one page's event "
                  "stream open, while fused states arrive twice a second as live."]
    lines += [f"- **Pi 4 estimate** (not measured on a Pi): {info['pi_note']}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


ARM64_FILE = ROOT / "docs" / "arm64-instructions.json"  # sudo scripts/check-arm64.sh --instructions > it
PI4, PI5 = "Cortex-A72 (Pi 4)", "Cortex-A76 (Pi 5)"
A72_GHZ = 1.5  # a Pi 4's clock
# Instructions a cycle assumed for this work on an A72: it decodes at most 3 a cycle; its two NEON pipes take
# the float multiply-adds, only one of them the integer ones; interpreted Python runs near 1.
A72_IPC = (1.0, 2.0)
PI_FACTOR = 6.0  # the threads neither `emomusic replay` nor the player runs (the page, the music stage): an A72 core
PIPELINE = ("analyzer-", "source-", "fusion")  # the threads `emomusic replay` runs as well
MIXER = "SDLAudio"  # SDL's mixer thread, which decodes and mixes the music: counted on its own (PLAYER_COUNT)
PLAYER_COUNT = "player, all threads, per second of music"
# What a 2 s voice window moves between a Pi 4's 1 MB L2 and memory (`bench.py --voice-memory`, 2026-12-05:
# the float first layer's 1 MB of recurrent weights, read once a step, do not stay in it; 53.2-54.9 MB as the
# process's heap lies), and a Pi 4's memory read rate, taken low
VOICE_DRAM_MB, PI4_DRAM_GBS = 54.5, 4.0
A72_CACHES = ["--I1=49152,3,64", "--D1=32768,2,64", "--LL=1048576,16,64"]  # a Cortex-A72's L1s, a Pi 4's L2
VOICE_WINDOWS = """
import sys, numpy as np
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench import voiced_window
from emomusic.voice.analyzer import VoiceClassifier
window = (voiced_window() * 32767).astype(np.int16)
voice = VoiceClassifier(Path(sys.argv[1]), adaptation=True)
for _ in range(int(sys.argv[2])):
    voice.classify([window])
"""


def voice_memory() -> dict[str, float]:
    """Bytes a voice window moves beyond the last-level cache, simulated by cachegrind with a Pi 4's caches:
    three windows less one (the first, cold, and start-up drop out), halved. x86 kernels stand in for the
    A72's: the LSTM's weights are read in the same order whatever the vector width."""
    if shutil.which("valgrind") is None:
        raise SystemExit("bench.py --voice-memory: valgrind is not installed (apt-get install valgrind)")
    misses = []
    for windows in (1, 3):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cachegrind.out"
            subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=yes", *A72_CACHES,
                            f"--cachegrind-out-file={out}", sys.executable, "-c", VOICE_WINDOWS, str(MODELS),
                            str(windows), str(ROOT / "scripts")], check=True, capture_output=True)
            lines = out.read_text().splitlines()
            events = next(line.split()[1:] for line in lines if line.startswith("events:"))
            totals = next(line.split()[1:] for line in lines if line.startswith("summary:"))
            counts = dict(zip(events, map(int, totals), strict=True))
            misses.append(counts["DLmr"] + counts["DLmw"])
    per_window = (misses[1] - misses[0]) / 2 * 64
    return {"voice window, MB beyond a 1 MB L2": round(per_window / 1e6, 1)}


def per_stream_second(fps: float, work: FaceWork, full: float, short: float, view: float, follow: float,
                      voice_window: float, vad_frame: float) -> float:
    """What the models cost a second of stream, in ms or in instructions alike: the face as the sample video
    asks it (``work``), a voice window a second (someone speaking all the time, as the budgets count) and
    the VAD's 33 frames."""
    return fps * (per_frame_detection(full, short, work.full_runs, work.short_runs) + work.views * view + follow) \
        + voice_window + 33 * vad_frame


def per_frame_detection(full: float, short: float, full_runs: float, short_runs: float) -> float:
    """The detector's cost per analysed frame (in ms or in multiply-adds): each range's cost times its runs
    per frame."""
    return full * full_runs + short * short_runs


LSTM_OPS = ("LSTM", "DynamicQuantizeLSTM")  # float and int8 (onnxruntime's) LSTM layers


def lstm_steps(m: Any) -> dict[str, int]:
    """Each LSTM node's sequence length (by its input's name) on a window of MAX_FRAMES frames: the graph
    run once with those inputs exposed as outputs (the top layer's steps come from a reshape that static
    shape inference cannot follow)."""
    import onnx
    import onnxruntime as ort

    from emomusic.voice.encoder import MAX_FRAMES, N_MELS

    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    seqs = [n.input[0] for n in probe.graph.node if n.op_type in LSTM_OPS]
    probe.graph.output.extend(onnx.ValueInfoProto(name=x) for x in seqs)
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(seqs, {sess.get_inputs()[0].name: np.zeros((1, MAX_FRAMES, N_MELS), np.float32)})
    return {x: int(o.shape[0]) for x, o in zip(seqs, outs, strict=True)}  # (steps, batch, features)


def model_macs() -> dict[str, float]:
    """Multiply-adds of one run of each model, counted from its ONNX graph: convolutions and matrix
    products from their shapes, the voice encoder's LSTM per step times the steps each layer takes on
    a 1.6 s window (the top layer takes half as many)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    def count(name: str) -> float:
        m = shape_inference.infer_shapes(onnx.load(str(MODELS / name)))
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                  for v in [*m.graph.value_info, *m.graph.input, *m.graph.output]}
        shapes |= {i.name: list(numpy_helper.to_array(i).shape) for i in m.graph.initializer}
        steps = lstm_steps(m) if any(n.op_type in LSTM_OPS for n in m.graph.node) else {}
        total = 0.0
        for node in m.graph.node:
            if node.op_type == "Conv":
                w, out = shapes.get(node.input[1], []), shapes.get(node.output[0], [])
                if len(w) == 4 and len(out) == 4:
                    total += float(np.prod(out[1:])) * w[1] * w[2] * w[3]
            elif node.op_type in LSTM_OPS:  # weights (dirs, 4h, in) and (dirs, 4h, h), or in int8 transposed: per step
                w, r = shapes.get(node.input[1], []), shapes.get(node.input[2], [])
                if w and r:
                    total += steps[node.input[0]] * w[0] * (w[1] * w[2] + r[1] * r[2])
        return total

    return {"full": count("face_detector_full.onnx"), "short": count("face_detector_short.onnx"),
            "face": count("face_expression_int8.onnx"), "face_small": count("face_expression_small_int8.onnx"),
            "voice": count("voice_encoder_int8.onnx")}


def arm64_counts(path: Path = ARM64_FILE) -> dict[str, Any] | None:
    """The instructions each stage executes on a Pi 4's and a Pi 5's kernels, as check-arm64.sh counted them."""
    return json.loads(path.read_text()) if path.exists() else None


def pipeline_instructions(c: dict[str, float], fps: float, work: FaceWork, classifier: str, backend: str) -> float:
    """The models' instructions a stream second from the counted stages (the voice window's count includes its
    mel frames)."""
    return per_stream_second(fps, work, c[f"face detect, full range, {backend}"],
                             c[f"face detect, short range, {backend}"],
                             c[f"face classify one view, {classifier}, int8, {backend}"], c["face following"],
                             c["voice encoder + adaptation + head per 2 s window"], c["VAD per 30 ms frame"])


def arm64_section(counts: dict[str, Any] | None) -> list[str]:
    """Each stage's instructions on a Pi 4's and a Pi 5's kernels (counted under emulation, not timed)."""
    if counts is None:
        return []
    a72, a76 = counts[PI4], counts[PI5]
    rows = ["", "## Per stage on a Raspberry Pi's kernels (instructions a run, counted)", "",
            f"| stage | {PI4} | {PI5} |", "|---|---|---|"]
    rows += [f"| {k} | {a72[k] / 1e6:.2f} M | {a76[k] / 1e6:.2f} M |" for k in a72
             if k in a76 and not k.startswith(("replay", "story"))]
    key = "replay, all threads, per second of stream"
    rows += [f"| **`emomusic replay`, all threads, a second of stream** | **{a72[key] / 1e6:.0f} M** | "
             f"**{a76[key] / 1e6:.0f} M** |", "",
             f"`sudo scripts/check-arm64.sh --instructions` ({counts['date']}, code {counts['code']}; "
             f"`{ARM64_FILE.name}`): the arm64 root's Python under qemu-user emulating each core, so that "
             "onnxruntime, XNNPACK and the daemon pick the kernels and the face CNN that core gets (the A72 has no "
             "SDOT, the A76 has), with a plugin that counts the instructions each thread executes "
             "(`scripts/insn_count_plugin.c`); each stage the fewest of its runs after a warm-up, the replay the "
             "whole story less its first half (start-up and loading drop out). Counts are the kernels' own and "
             "do not depend on the emulator's speed; they leave out what memory and the pipeline add, below."]
    return rows


def pi_note(info: dict[str, Any], fps: float, work: FaceWork) -> str:
    """The Pi 4 estimate from the instructions counted on a Cortex-A72's own kernels (check-arm64.sh
    --instructions): the whole pipeline's per stream second at an assumed range of instructions a cycle, the
    voice's memory traffic beyond the L2, the player's mixing counted alike, and the threads neither runs by a
    core-to-core factor."""
    counts = arm64_counts()
    threads = info["memory"].get(THREAD_KEY) or {}
    rest = sum(cpu for name, (cpu, _, _) in threads.items() if not name.startswith(PIPELINE))
    if counts is None:
        info["pi_run_percent"] = (0.0, 0.0)
        return f"no instruction counts ({ARM64_FILE.name}): run `sudo scripts/check-arm64.sh --instructions`."
    a72, a76 = counts[PI4], counts[PI5]
    per_s = a72["replay, all threads, per second of stream"]
    cycles = [per_s / ipc / (A72_GHZ * 1e9) * 100 for ipc in (3.0, *reversed(A72_IPC))]  # % of a core
    memory = VOICE_DRAM_MB / 1000 / PI4_DRAM_GBS * 100  # % of a core a second of speech, if it never overlapped
    counted = PLAYER_COUNT in a72  # the player's mixing counted: only the other threads go by the factor
    mixing = [a72.get(PLAYER_COUNT, 0.0) / ipc / (A72_GHZ * 1e9) * 100 for ipc in reversed(A72_IPC)]
    if counted:
        rest -= sum(cpu for name, (cpu, _, _) in threads.items() if name.startswith(MIXER))
    lo, hi = cycles[1] + mixing[0] + rest * PI_FACTOR, cycles[2] + memory + mixing[1] + rest * PI_FACTOR
    info["pi_run_percent"] = (lo, hi)
    ort, lite = (pipeline_instructions(a72, fps, work, "small", b) for b in ("onnxruntime", "tflite"))
    macs = model_macs()
    model_macs_s = fps * (per_frame_detection(macs["full"], macs["short"], work.full_runs, work.short_runs)
                          + work.views * macs["face_small"]) + macs["voice"]

    def view(core: dict[str, float], size: str, precision: str) -> float:
        return core[f"face classify one view, {size}, {precision}, onnxruntime"] / 1e6

    return (
        f"counted, not timed: `emomusic replay` of the sample story executes **{per_s / 1e6:.0f} M instructions a "
        f"second of stream** on a Cortex-A72's kernels (`sudo scripts/check-arm64.sh --instructions`, "
        f"{counts['date']}, code {counts['code']}, `{ARM64_FILE.name}`: the face, the voice and fusion, all their "
        f"threads, Python included). A Pi 4's core runs at {A72_GHZ} GHz and decodes at most 3 instructions a "
        f"cycle: at least {cycles[0]:.1f} % of one core; at {A72_IPC[1]:.0f}-{A72_IPC[0]:.0f} a cycle (assumed: its "
        f"two NEON pipes take the float multiply-adds, one of them the integer ones; interpreted Python runs near "
        f"1) {cycles[1]:.0f}-{cycles[2]:.0f} %. Beyond the instructions, the voice's float first layer reads its 1 "
        f"MB of recurrent weights once a step, more than stays in a Pi 4's 1 MB L2: {VOICE_DRAM_MB:.0f} MB a window "
        f"from memory (`bench.py --voice-memory`: cachegrind with a Pi 4's caches), up to {memory:.1f} % of a "
        f"core a second of speech at "
        f"{PI4_DRAM_GBS:.0f} GB/s if none of it overlapped. "
        + (f"The player, counted alike (SDL's mixer decoding and mixing an Ogg track through the dummy driver): "
           f"{a72[PLAYER_COUNT] / 1e6:.1f} M instructions a second of music, {mixing[0]:.1f}-{mixing[1]:.1f} %. "
           if counted else "")
        + ("The threads neither `replay` nor the player covers (the music stage's steps, the page, supervision"
           if counted else "The threads `replay` does not run (the player, the music stage's steps, the "
           "page, supervision")
        + f": {rest:.2f} % of a core here) at about {PI_FACTOR:.0f}x this core's time: "
        f"~{rest * PI_FACTOR:.1f} %; in all about {lo:.0f}-{hi:.0f} % of one of its four cores. What the counts "
        f"rank on the A72's kernels (one view of the face CNN, onnxruntime; all stages in the table above): the "
        f"small CNN {view(a72, 'small', 'int8'):.1f} M instructions against the large one's "
        f"{view(a72, 'large', 'int8'):.1f} M, so `face.classifier` auto runs the small one there; int8 "
        f"{view(a72, 'small', 'int8'):.1f} M against fp32 {view(a72, 'small', 'fp32'):.1f} M (fewer, though the "
        f"A72 has one pipe for integer multiplies against two for float: about even); LiteRT's XNNPACK would "
        f"execute {(ort - lite) / 1e6:.0f} M fewer a stream second than onnxruntime ({(ort - lite) / ort:.0%} of "
        f"the models' {ort / 1e6:.0f} M with someone speaking all the time, as the budgets count them; its "
        f"detectors most), which does not pay for the 14 MB LiteRT holds beside onnxruntime. "
        f"On a Pi 5's Cortex-A76, with SDOT, the large CNN takes "
        f"{view(a76, 'large', 'int8'):.1f} M (the A72 {view(a72, 'large', 'int8'):.1f} M) and its fp32 copy "
        f"{view(a76, 'large', 'fp32'):.1f} M: there `auto` runs the large one. The models do "
        f"{model_macs_s / 1e6:.0f} M multiply-adds a stream second (counted from the ONNX graphs) in "
        f"{ort / 1e6:.0f} M A72 instructions, speech all the time (the sample story speaks part of the time). "
        "Timings under qemu cannot stand in for these counts: it computes "
        "floating point in software, so an fp32 stage ran 20-60x slower against an int8 one there than on real "
        "CPUs (2026-12-03). Run `bench.py` on a Pi for real numbers."
    )


def scan_rate(folders: list[Path], jobs: int) -> dict[str, Any]:
    """A first scan of real music (tags, analysis of every untagged track, index writes) into a
    fresh index, as a new user's first ``emomusic scan``; tracks per second of wall time."""
    from emomusic.music.library import Library
    from emomusic.music.scan import scan

    with tempfile.TemporaryDirectory() as tmp:
        lib = Library(Path(tmp) / "library.db")
        t0 = time.perf_counter()
        report = scan(lib, folders, jobs=jobs)
        wall = time.perf_counter() - t0
        analysed = sum(1 for r in lib.rows() if r["source"] == "analysis")
        size = sum(Path(r["path"]).stat().st_size for r in lib.rows())
    return {"folders": [str(f) for f in folders],
            "files": report.seen, "analysed": analysed, "not_queued": report.skipped, "unreadable": report.failed,
            "megabytes": round(size / 1e6, 1), "wall_s": round(wall, 2),
            "tracks_per_s": round(report.seen / wall, 1), "jobs": jobs or os.cpu_count()}


# The end of each measuring subprocess below: its own CPU over ``seconds`` once settled, as % of one core.
CPU_OF_THIS_PROCESS = """
time.sleep(3)  # settled
t0, w0 = time.process_time(), time.monotonic()
time.sleep(seconds)
print(100 * (time.process_time() - t0) / (time.monotonic() - w0), flush=True)
os._exit(0)  # the figure is out: no interpreter teardown under running threads (it can abort in C++)
"""


PLAYER_CPU = """
import os, sys, time
os.environ['SDL_AUDIODRIVER'] = 'dummy'
from emomusic.music.players import pygame_player
pygame_player.MIXER_BUFFER = int(sys.argv[2])
player = pygame_player.PygamePlayer(fade_ms=0)
player.play(sys.argv[1])
seconds = float(sys.argv[3])
""" + CPU_OF_THIS_PROCESS


def demo_track(path: Path, seconds: float) -> Path:
    """A synthesised piece of ``seconds`` written as the demo library writes its tracks (44.1 kHz, the format by
    ``path``'s suffix): the player's input in this benchmark and in count_instructions.py."""
    from emomusic.audio import RATE
    from emomusic.music.demo import synth_music, write_tagged

    write_tagged(path, synth_music(seconds), "bench", "", source_rate=RATE)
    return path


def player_cpu(seconds: float = 20.0) -> dict[str, float]:
    """The pygame player's CPU (% of one core) while it plays a demo track of each format through SDL's
    dummy driver (which mixes as a sound card's would), with the daemon's mixer buffer and with pygame's
    default of 512 samples, each in a fresh process that does nothing else."""
    from emomusic.music.players.pygame_player import MIXER_BUFFER

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".ogg", ".mp3", ".flac"):
            # longer than the 3 s to settle and the seconds measured
            track = demo_track(Path(tmp) / f"track{suffix}", seconds + 10.0)
            for buffer in (MIXER_BUFFER, 512):
                res = subprocess.run([sys.executable, "-c", PLAYER_CPU, str(track), str(buffer), str(seconds)],
                                     capture_output=True, text=True, timeout=seconds + 60)
                if res.returncode:
                    raise SystemExit(f"player benchmark failed: {res.stderr.strip().splitlines()[-1:]}")
                out[f"{suffix[1:]}, buffer {buffer}"] = round(float(res.stdout.strip()), 2)
    return out


MICROPHONE_CPU = """
import os, sys, threading, time
import numpy as np
import sounddevice
from emomusic.queues import DropOldestQueue
from emomusic.sources.microphone import MicrophoneSource
RATE, every_s, seconds = 48000, float(sys.argv[1]), float(sys.argv[2])

class PacedStream:  # PortAudio stood in for: a thread calling back with a block on time, as a sound card's driver would
    def __init__(self, *, device, channels, samplerate, dtype, blocksize, callback):
        self.frames = round(every_s * samplerate) if every_s else blocksize
        self.rate, self.callback, self.active = samplerate, callback, False
        self.closed = threading.Event()
    def start(self):
        self.active = True
        threading.Thread(target=self.run, daemon=True).start()
    def run(self):
        block = (0.1 * np.random.default_rng(0).standard_normal((self.frames, 1))).astype(np.float32)
        flags = type("Flags", (), {"input_overflow": False})()
        due = time.monotonic()
        while True:
            due += self.frames / self.rate
            if self.closed.wait(max(0.0, due - time.monotonic())):
                return
            self.callback(block, self.frames, None, flags)
    def close(self):
        self.active = False
        self.closed.set()

sounddevice.query_devices = lambda device, kind: {"default_samplerate": float(RATE)}
sounddevice.InputStream = PacedStream
out = DropOldestQueue(1000, "microphone")
MicrophoneSource("default", out).start()  # block_ms as configured by default (300)
threading.Thread(target=lambda: [out.get(1.0) for _ in iter(int, 1)], daemon=True).start()
""" + CPU_OF_THIS_PROCESS


def microphone_cpu(seconds: float = 20.0) -> dict[str, float]:
    """A live microphone's path in the daemon (% of one core): the stream's callbacks, resampling 48 kHz to
    16 kHz, 300 ms chunks handed on, with PortAudio stood in for by a thread that calls back on time (no
    sound card here). Once with a callback per 300 ms block (the daemon's) and once every 30 ms (PortAudio's
    block until 2026-12-04), each in a fresh process that does nothing else."""
    out: dict[str, float] = {}
    for name, every_s in (("a callback per 300 ms block", 0.0), ("a callback every 30 ms", 0.03)):
        res = subprocess.run([sys.executable, "-c", MICROPHONE_CPU, str(every_s), str(seconds)],
                             capture_output=True, text=True, timeout=seconds + 60)
        if res.returncode:
            raise SystemExit(f"microphone benchmark failed: {res.stderr.strip().splitlines()[-1:]}")
        out[name] = round(float(res.stdout.strip().splitlines()[-1]), 2)
    return out


def web_idle(seconds: float = 60.0) -> dict[str, float]:
    """CPU of the web stage's thread (% of one core) with no page open, then with one page open
    (server-sent events), while the state changes twice a second as it does live."""
    import threading
    import urllib.request

    from emomusic.analyze.snapshot import Snapshot
    from emomusic.config import parse_config
    from emomusic.messages import FusedState
    from emomusic.web.server import WebServer, WebSettings

    cfg = parse_config({"web": {"port": 0}}, env={})
    server = WebServer(WebSettings.of(cfg), Snapshot(cfg), lambda cmd: None, set)
    assert server.start()
    stop = threading.Event()

    def states() -> None:
        k = 0
        while not stop.wait(0.5):
            k += 1
            server.on_state(FusedState(time.time(), "happy", 0.5 + 0.01 * (k % 10), 0.6, 0.4, {"happy": 1.0}, {}))

    def ticks() -> int:
        tid = server._thread.native_id
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    hz = os.sysconf("SC_CLK_TCK")
    threading.Thread(target=states, daemon=True).start()
    out = {}
    t0, c0 = time.monotonic(), ticks()
    time.sleep(seconds)
    out["idle_no_page_percent_of_one_core"] = round(100 * (ticks() - c0) / hz / (time.monotonic() - t0), 2)

    def page() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/events") as r:
            while not stop.is_set():
                r.readline()

    threading.Thread(target=page, daemon=True).start()
    time.sleep(2)
    t0, c0 = time.monotonic(), ticks()
    time.sleep(seconds)
    out["one_page_open_percent_of_one_core"] = round(100 * (ticks() - c0) / hz / (time.monotonic() - t0), 2)
    stop.set()
    server.stop()
    return out


def one_measurement(args: argparse.Namespace) -> dict[str, Any] | None:
    """The figures of the one measurement a flag asks for (--web, --microphone, --memory, --stages, --scan);
    None for the full run."""
    if args.web:
        return web_idle(30.0 if args.quick else 60.0)
    if args.microphone:
        return microphone_cpu(10.0 if args.quick else 20.0)
    if args.memory:
        return {**full_daemon_memory(), "breakdown": memory_breakdown()}
    if args.stages:
        return stage_benchmarks(args.repeat or (20 if args.quick else 100))
    if args.scan:
        return scan_rate(args.scan, args.jobs)
    if args.voice_memory:
        return voice_memory()
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="no measuring: write --out from a full run's figures (saved in MEASURED before the report)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, shorter stream, no seed models")
    ap.add_argument("--stream-s", type=float, default=120.0)
    ap.add_argument("--memory", action="store_true",
                    help="only the full daemon's peak memory (first start and steady), printed as JSON")
    ap.add_argument("--stages", action="store_true", help="only the per-stage timings, printed as JSON")
    ap.add_argument("--repeat", type=int, help="timed runs per stage (default 100, 20 with --quick; under emulation 2)")
    ap.add_argument("--scan", type=Path, nargs="+", metavar="FOLDER",
                    help="only the library scan rate over these music folders (fresh index), printed as JSON")
    ap.add_argument("--jobs", type=int, default=0, help="with --scan: worker processes (0 = one per core)")
    ap.add_argument("--web", action="store_true", help="only the web stage's CPU, idle and with a page open, as JSON")
    ap.add_argument("--microphone", action="store_true", help="only a live microphone's path, its CPU as JSON")
    ap.add_argument("--voice-memory", action="store_true",
                    help="only what a voice window moves beyond a Pi 4's 1 MB L2 (valgrind's cachegrind), as JSON")
    ap.add_argument("--hide-int8-dot-product", action="store_true",
                    help="run as on a CPU without VNNI/AMX: hide them (and AVX-512) from the processes' CPUID")
    ap.add_argument("--music", type=Path, nargs="+", metavar="FOLDER",
                    help="in the full run: also the first library scan of these folders of real music")
    args = ap.parse_args()
    if args.render:
        info = json.loads(args.render.read_text())
        work = FaceWork(info["detection_share"], info["near_share"], info["full_runs_per_frame"],
                        info["short_runs_per_frame"], info["views_per_frame"])
        info["pi_note"] = pi_note(info, info["fps"], work)  # today's counts and constants
        write_report(args.out, info)
        print(f"wrote {args.out}")
        return 0
    if args.hide_int8_dot_product and not os.environ.get(HIDDEN_ENV):
        return rerun_hidden(sys.argv)
    if (one := one_measurement(args)) is not None:
        print(json.dumps(one, indent=1))
        return 0
    if not args.quick and not all(importlib.util.find_spec(m) for m in ("torch", "transformers")):
        raise SystemExit("bench.py: the seed-sized models need torch and transformers (pip install -e '.[bench]'); "
                         "--quick runs without them")  # said at the start, not after half an hour of measuring
    repeat = 20 if args.quick else 100
    from emomusic.face.analyzer import chosen_classifier

    info: dict[str, Any] = {"machine": machine(), "classifier": chosen_classifier()}
    info["stages"] = stage_benchmarks(repeat)
    info["daemon"] = whole_daemon(30.0, 10.0) if args.quick else whole_daemon(args.stream_s)
    info["memory"] = full_daemon_memory(30.0 if args.quick else 60.0, 10.0 if args.quick else 20.0)
    info["memory"]["breakdown"] = memory_breakdown()
    info["web"] = web_idle(30.0 if args.quick else 60.0)
    info["player"] = player_cpu(10.0 if args.quick else 20.0)
    info["microphone"] = microphone_cpu(10.0 if args.quick else 20.0)
    if args.music:
        info["scan"] = scan_rate(args.music, args.jobs)
    st = info["stages"]
    from emomusic.config import load_config

    cfg = load_config(None, env={})
    fps, every = cfg.camera.analysis_fps, cfg.face.detect_every
    info["detect_every"] = every
    work = face_work()
    info["fps"], info["views_per_frame"] = fps, round(work.views, 3)
    info["detection_share"], info["near_share"] = round(work.detect_share, 3), round(work.near_share, 3)
    info["full_runs_per_frame"], info["short_runs_per_frame"] = round(work.full_runs, 3), round(work.short_runs, 3)
    full_ms, short_ms = st["face detect (full range, onnxruntime)"], st["face detect (short range, onnxruntime)"]
    classify, follow = (st[view_key("int8", "onnxruntime", info["classifier"])],
                        st["face following between detections (template match)"])
    window, vad = st["voice encoder + adaptation + head per 2 s window"], st["VAD per 30 ms frame"]
    info["ours_per_stream_s_ms"] = per_stream_second(fps, work, full_ms, short_ms, classify, follow, window, vad)
    # a face detected anew on every frame is never steady: classified on every frame
    info["ours_detect_always_ms"] = fps * (full_ms + classify + follow) + window + 33 * vad
    if not args.quick:
        info["seeds"] = seed_models(repeat)
        info["seeds_per_stream_s_ms"] = fps * info["seeds"]["Swin-T face model, 224x224 (per frame)"] \
            + info["seeds"]["WavLM-base audio model, 2 s window"]
    info["pi_note"] = pi_note(info, fps, work)
    MEASURED.write_text(json.dumps(info, default=float))  # a report that fails can be written again (--render)
    write_report(args.out, info)
    print(json.dumps({k: v for k, v in info.items() if k != "pi_note"}, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
