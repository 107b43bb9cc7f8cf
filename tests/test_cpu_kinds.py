"""The int8 models on a CPU without an int8 dot product, on this machine: ``scripts/bench.py
--hide-int8-dot-product`` hides VNNI, AMX and AVX-512 from a process's CPUID, and onnxruntime, LiteRT and
numpy then run the kernels such a CPU gets (AVX2: VPMADDUBSW instead of VPDPBUSD, other rounding).
Skipped where the hiding cannot work (no VNNI, no CPUID faulting, no C compiler)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from emomusic.runtime import cpuid_features, int8_dot_product

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench import HIDDEN_ENV, build_hider, cannot_hide  # noqa: E402

READ = """
import sys, numpy as np
from pathlib import Path
from emomusic.face.analyzer import ExpressionClassifier
from emomusic.voice.analyzer import VoiceClassifier
from emomusic.runtime import cpuid_features as cpu_features
from emomusic.face.analyzer import chosen_classifier
io = np.load(sys.argv[1])
models = Path(sys.argv[2])
out = {"vnni": np.array(bool(cpu_features().get("AVX512VNNI"))), "chosen": np.array(chosen_classifier())}
for backend in ("onnxruntime", "tflite"):
    out[backend] = ExpressionClassifier(models, backend, "int8").classify(list(io["faces"]), "both")
    out[backend + " small"] = ExpressionClassifier(models, backend, "int8", size="small").classify(
        list(io["faces"]), "both")
voice = VoiceClassifier(models, adaptation=False)
out["who"], states = voice.encoder.encode(list(io["speech"]))
out["voice"] = voice.classify(list(io["speech"]))
np.savez(sys.argv[3], **out)
"""


def test_the_face_classifier_follows_what_the_cpu_offers() -> None:
    """face.classifier auto: the large CNN where int8 has a dot product, the small one (a Pi 4) where not; the
    CPU's own answer (numpy's CPUID view, what the kernels see) before /proc/cpuinfo's flags."""
    from emomusic.config import load_config
    from emomusic.face.analyzer import STEMS, chosen_classifier
    from emomusic.runtime import offers_int8_dot_product

    vnni = "flags\t\t: fpu avx2 avx512f avx512_vnni\n"
    pi4 = "Features\t: fp asimd evtstrm crc32 cpuid\n"
    assert offers_int8_dot_product({"AVX2": True, "AVX512VNNI": True}, pi4)
    assert not offers_int8_dot_product({"AVX2": True, "AVX512VNNI": False}, vnni)  # hidden from CPUID: not offered
    assert offers_int8_dot_product({"ASIMD": True, "ASIMDDP": True}, "")  # a Pi 5
    assert not offers_int8_dot_product({"ASIMD": True, "ASIMDDP": False}, "")  # a Pi 4
    assert offers_int8_dot_product({}, vnni) and not offers_int8_dot_product({}, pi4)  # numpy silent: the flags
    assert chosen_classifier("small") == "small" and chosen_classifier("large") == "large"
    assert chosen_classifier() == ("large" if offers_int8_dot_product() else "small")
    assert load_config(None, env={}).face.classifier == "auto"
    for size in ("large", "small"):
        assert (ROOT / "models" / f"{STEMS[size]}_int8.onnx").is_file()
        assert (ROOT / "models" / f"{STEMS[size]}_int8.tflite").is_file()


def test_the_cpu_kind_is_read_from_cpuinfo_on_x86_and_arm64() -> None:
    assert int8_dot_product("flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni cpuid_fault\n")
    assert int8_dot_product("Features\t: fp asimd evtstrm crc32 atomics asimdrdm lrcpc dcpop asimddp\n")  # Pi 5
    assert not int8_dot_product("flags\t\t: fpu sse2 avx avx2 fma bmi2\n")
    assert not int8_dot_product("Features\t: fp asimd evtstrm crc32 cpuid\n")  # Pi 4 (Cortex-A72)
    assert not int8_dot_product("")


@pytest.fixture(scope="module")
def hider(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if why := cannot_hide():
        pytest.skip(why)
    if not cpuid_features().get("AVX512VNNI"):  # what the test checks was hidden (not AVX-VNNI alone)
        pytest.skip("it needs a CPU with AVX-512 VNNI")
    lib = build_hider(tmp_path_factory.mktemp("hide"))
    ask = "from bench import hidden; print(hidden())"
    seen = subprocess.run([sys.executable, "-c", ask], cwd=ROOT / "scripts", capture_output=True, text=True,
                          env=os.environ | {"LD_PRELOAD": str(lib), HIDDEN_ENV: "1"})
    if seen.stdout.strip() != "True":  # a sandbox (seccomp) that refuses CPUID faulting
        pytest.skip(f"the CPU's AVX-512 stays visible here: {seen.stderr.strip() or 'nothing hidden'}")
    return lib


def _read(tmp: Path, inputs: Path, name: str, preload: Path | None) -> dict[str, np.ndarray]:
    env = os.environ | ({"LD_PRELOAD": str(preload)} if preload else {})
    out = tmp / f"{name}.npz"
    subprocess.run([sys.executable, "-X", "faulthandler", "-c", READ, str(inputs), str(ROOT / "models"), str(out)],
                   cwd=ROOT / "scripts", env=env, check=True, timeout=120)
    return dict(np.load(out))


def test_the_int8_models_read_alike_without_the_int8_dot_product(hider: Path, tmp_path: Path) -> None:
    """The same faces and speech through the shipped int8 models with the CPU's VNNI and without: what
    the product says must not depend on the kind of x86 CPU. Measured on a 2-core EPYC (2026-12-04): the
    face probabilities identical on both backends (7-bit weights: no saturating pair sums), speaker
    embeddings at cosine 0.99998, voice emotion probabilities within 0.002; the bounds leave 15x that."""
    from emomusic.face.detector import FaceDetector
    from emomusic.face.preprocess import align_face
    from emomusic.sources.samples import espeak_speech
    from emomusic.voice.vad import speech_windows

    image = np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])
    det = FaceDetector("short", "onnxruntime").detect(image)[0]
    face = align_face(image, det.box, det.keypoints)
    faces = np.stack([face, np.ascontiguousarray(face[:, ::-1]), np.clip(face * 0.6 + 40, 0, 255).astype(face.dtype)])
    voice = espeak_speech("The quick brown fox jumps over the lazy dog, and then it runs away.")
    assert voice is not None, "espeak-ng is required (scripts/system-deps.sh installs it)"
    pcm = (np.concatenate([np.zeros(16000), voice / np.abs(voice).max() * 0.5]) * 32767).astype(np.int16)
    speech = np.stack([w.samples for w in speech_windows(pcm)])
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, faces=faces, speech=speech)

    plain, hidden = _read(tmp_path, inputs, "plain", None), _read(tmp_path, inputs, "hidden", hider)
    assert bool(plain["vnni"]) and not bool(hidden["vnni"])  # the two runs really took different kernels
    assert (str(plain["chosen"]), str(hidden["chosen"])) == ("large", "small")  # face.classifier auto
    for backend in ("onnxruntime", "tflite"):
        for model in (backend, backend + " small"):
            assert np.abs(plain[model] - hidden[model]).max() < 0.03, model
    assert float(np.min(np.sum(plain["who"] * hidden["who"], axis=1))) > 0.995
    assert np.abs(plain["voice"] - hidden["voice"]).max() < 0.03


def test_the_pi_estimate_rests_on_the_instructions_counted_on_each_pis_kernels() -> None:
    """docs/arm64-instructions.json (check-arm64.sh --instructions) backs `face.classifier` auto on both Pis:
    without SDOT (a Pi 4) the small CNN executes clearly fewer instructions than the large one; with it (a
    Pi 5) the large one executes fewer than the small one does without; and the estimate is worked out
    from it, the player's mixing counted alike where the file has it, the threads neither covers added on."""
    from bench import PI4, PI5, PLAYER_COUNT, THREAD_KEY, FaceWork, arm64_counts, pi_note

    counts = arm64_counts()
    assert counts is not None
    a72, a76 = counts[PI4], counts[PI5]
    view = "face classify one view, {}, int8, onnxruntime"
    assert a72[view.format("small")] < 0.7 * a72[view.format("large")]
    assert a76[view.format("large")] < 0.8 * a72[view.format("small")]
    threads = {"analyzer-face": (0.7, 9.0, 1.0), "music": (0.2, 4.0, 0.0), "SDLAudioP2": (0.17, 11.0, 0.0)}
    info: dict[str, object] = {"memory": {THREAD_KEY: threads}}
    note = pi_note(info, 3.0, FaceWork(0.33, 0.8, 0.07, 0.27, 0.54))
    low, high = info["pi_run_percent"]  # type: ignore[misc]
    per_s = a72["replay, all threads, per second of stream"]
    assert f"{per_s / 1e6:.0f} M instructions a second of stream" in note
    # the player's thread: its counted instructions at 2 a cycle where the file has them, else 6x its share here
    player = a72[PLAYER_COUNT] / 2 / 1.5e9 * 100 if PLAYER_COUNT in a72 else 0.17 * 6
    assert per_s / 2 / 1.5e9 * 100 + player + 0.2 * 6 == pytest.approx(low)
    assert low < high
