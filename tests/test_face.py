"""Face pipeline: BlazeFace decoding on constructed tensors, the real detector on a real photo,
the trained classifier's output, the sliding window and tracks, and evaluate.py on a tiny npz."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from emomusic.config import parse_config
from emomusic.face.analyzer import ExpressionClassifier, FaceAnalyzer
from emomusic.face.detector import SPECS, Detection, FaceDetector, decode, iou, shrink, ssd_anchors, weighted_nms
from emomusic.face.preprocess import (
    FACE_SIZE,
    TEMPLATE_CENTER,
    TEMPLATE_EYE_DIST,
    align_face,
    alignment,
    crop_locator,
    landmarks,
    locate_in_crop,
    standardise,
)
from emomusic.face.tracking import STEADY_VIEWS, TRACK_SIDE, DetectionSchedule, FaceTracker, Track
from emomusic.labels import FACE_LABELS
from emomusic.messages import VideoFrame
from emomusic.runtime import ModelError, peakedness

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])  # BGR, 512x512, face near (175-280, 70-175)


def test_anchor_counts_and_order_match_blazeface() -> None:
    short, full = ssd_anchors(SPECS["short"]), ssd_anchors(SPECS["full"])
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # short range: 16x16 grid with 2 anchors per cell, then 8x8 with 6 per cell
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8]) and np.allclose(short[517], short[512])
    assert np.allclose(short[518], [1.5 / 8, 0.5 / 8])
    assert np.allclose(full[48], [0.5 / 48, 1.5 / 48])


def test_decode_places_boxes_relative_to_anchors() -> None:
    anchors = np.array([[0.5, 0.5], [0.25, 0.75]], np.float32)
    raw = np.zeros((1, 2, 16), np.float32)
    raw[0, 0, :4] = [12.8, -6.4, 32.0, 64.0]  # in input pixels (128): dx=+0.1, dy=-0.05, w=0.25, h=0.5
    raw[0, 1, 4:6] = [12.8, 0.0]  # first keypoint shifted right by 0.1
    scores = np.array([[[0.0], [100.0]]], np.float32)
    boxes, s, kp = decode(raw, scores, anchors, 128)
    assert np.allclose(boxes[0], [0.6 - 0.125, 0.45 - 0.25, 0.6 + 0.125, 0.45 + 0.25])
    assert np.allclose(s, [0.5, 1.0])
    assert np.allclose(kp[1, 0], [0.35, 0.75])


def test_weighted_nms_merges_overlaps_by_score_and_keeps_separate_faces() -> None:
    boxes = np.array([[0.0, 0, 1, 1], [0.1, 0, 1.1, 1], [5, 5, 6, 6]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    out = weighted_nms(boxes, scores, 0.3)
    assert len(out) == 2
    merged, score, _ = out[0]
    assert score == pytest.approx(0.9)
    assert merged[0] == pytest.approx((0.0 * 0.9 + 0.1 * 0.3) / 1.2)
    assert np.allclose(out[1][0], [5, 5, 6, 6])
    assert iou(np.array([0, 0, 2, 2.0]), np.array([[1, 1, 3, 3.0]]))[0] == pytest.approx(1 / 7)


@pytest.mark.parametrize("backend", ["onnxruntime", "tflite"])
@pytest.mark.parametrize("model", ["full", "short"])
def test_detector_finds_the_astronauts_face(astronaut: np.ndarray, model: str, backend: str) -> None:
    dets = FaceDetector(model, backend).detect(astronaut)  # type: ignore[arg-type]
    assert len(dets) == 1
    x0, y0, x1, y1 = dets[0].box
    assert 150 < x0 < 200 and 240 < x1 < 300 and 50 < y0 < 100 and 150 < y1 < 200
    assert dets[0].score > 0.8
    assert len(dets[0].keypoints) == 6


def test_detector_finds_nothing_in_noise_and_respects_min_size(astronaut: np.ndarray) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert FaceDetector("full").detect(noise) == []
    assert FaceDetector("full", min_face_px=200).detect(astronaut) == []


def test_detector_maps_boxes_back_through_the_letterbox(astronaut: np.ndarray) -> None:
    wide = np.zeros((512, 1024, 3), np.uint8)
    wide[:, 300:812] = astronaut
    det = FaceDetector("full").detect(wide)[0]
    ref = FaceDetector("full").detect(astronaut)[0]
    # Same face, same place (at half the input resolution, so a few pixels of jitter are expected).
    centre = lambda b: np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])  # noqa: E731
    assert np.allclose(centre(det.box), centre(ref.box) + [300, 0], atol=10)
    assert det.size == pytest.approx(ref.size, rel=0.15)


def test_the_detector_input_is_the_letterboxed_frame_whatever_came_before(astronaut: np.ndarray) -> None:
    """preprocess writes into one buffer per detector (no fresh 442 KB a run): each result is the letterboxed
    RGB frame in [-1, 1] (black margins at -1), the same as a fresh array would be, even after a frame of
    another shape filled other parts of the buffer."""
    import cv2

    det = FaceDetector("full")
    size = det.spec.input_size
    tall = np.ascontiguousarray(np.rot90(astronaut)[:, :200])  # 512x200: wide margins left and right
    gray = cv2.cvtColor(astronaut[:300], cv2.COLOR_BGR2GRAY)  # 300x512 gray: margins above and below
    for image in (astronaut, tall, gray, tall):
        x, scale, left, top = det.preprocess(image)
        h, w = image.shape[:2]
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        canvas = np.zeros((size, size, 3), np.uint8)
        small = shrink(image, nw, nh)
        canvas[top : top + nh, left : left + nw] = small[:, :, None] if small.ndim == 2 else small
        expected = (canvas[:, :, ::-1].astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        assert x.shape == (1, 3, size, size) and x.flags["C_CONTIGUOUS"]
        assert np.array_equal(x, expected)
    assert det.detect(astronaut) and det.detect(tall) == det.detect(tall)


def _aligned(image: np.ndarray) -> np.ndarray:
    det = FaceDetector("full", models_dir=MODELS).detect(image)[0]
    return align_face(image, det.box, det.keypoints)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_alignment_levels_the_eyes_and_puts_eyes_and_mouth_on_the_template() -> None:
    # a face tilted by 25 degrees, 100 px between the eyes, somewhere in a big frame
    a = np.deg2rad(25)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    face = np.array([[-50.0, 0], [50, 0], [0, 105]]) @ rot.T + [400, 300]  # right eye, left eye, mouth
    m = alignment(face)
    out = face @ m[:, :2].T + m[:, 2]
    assert out[0, 1] == pytest.approx(out[1, 1], abs=1e-6)  # eyes level
    assert out[1, 0] - out[0, 0] > 0  # and not mirrored
    centre = (out[:2].mean(0) + out[2]) / 2
    np.testing.assert_allclose(centre, TEMPLATE_CENTER, atol=1e-6)
    assert out[1, 0] - out[0, 0] == pytest.approx(TEMPLATE_EYE_DIST, rel=0.05)


def test_a_tilted_or_larger_face_gives_the_same_aligned_crop(astronaut: np.ndarray) -> None:
    import cv2

    ref = _aligned(astronaut)
    assert ref.shape == (FACE_SIZE, FACE_SIZE) and ref.dtype == np.uint8
    tilt = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((230, 130), 20, 1.0), (512, 512),
                          borderMode=cv2.BORDER_REPLICATE)
    assert _corr(_aligned(tilt), ref) > 0.9  # the eyes are levelled again
    big = cv2.resize(astronaut, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)  # 260 px face: pre-shrunk
    assert _corr(_aligned(big), ref) > 0.95
    unaligned = cv2.resize(cv2.cvtColor(tilt[60:200, 160:300], cv2.COLOR_BGR2GRAY), (FACE_SIZE, FACE_SIZE))
    assert _corr(unaligned, ref) < 0.8  # what a plain box crop of the tilted face gives


def test_a_pre_cropped_photo_is_aligned_as_the_daemon_aligns_a_frame(astronaut: np.ndarray) -> None:
    """Training and evaluation photos are tight crops; locate_in_crop must land on the same face."""
    import cv2

    photo = cv2.resize(cv2.cvtColor(astronaut[40:220, 140:320], cv2.COLOR_BGR2GRAY), (48, 48),
                       interpolation=cv2.INTER_AREA)  # like a FER2013 image
    box, kps = locate_in_crop(crop_locator(models_dir=MODELS), photo)
    assert len(kps) == 6  # BlazeFace found it, keypoints mapped back into the 48 px photo
    assert _corr(align_face(photo, box, kps), _aligned(astronaut)) > 0.9


def test_a_face_without_keypoints_or_off_the_frame_still_gives_a_crop(astronaut: np.ndarray) -> None:
    det = FaceDetector("full", models_dir=MODELS).detect(astronaut)[0]
    guessed = landmarks(det.box)  # the box's average keypoints stand in
    np.testing.assert_allclose(guessed, landmarks(det.box, det.keypoints), atol=0.12 * det.size)
    assert _corr(align_face(astronaut, det.box), _aligned(astronaut)) > 0.6  # roughly the same framing
    edge = align_face(astronaut, (-30, -30, 30, 30))  # runs off the image: edges replicated
    assert edge.shape == (FACE_SIZE, FACE_SIZE)
    x = standardise([_aligned(astronaut), edge])
    assert x.shape == (2, 1, FACE_SIZE, FACE_SIZE) and x.dtype == np.float32
    assert abs(float(x[0].mean())) < 1e-3 and abs(float(x[0].std()) - 1) < 1e-2
    with pytest.raises(ValueError, match="aligned 48x48 face"):
        standardise([np.zeros((60, 60), np.uint8)])


@pytest.mark.parametrize("size", ["large", "small"])
@pytest.mark.parametrize("backend", ["onnxruntime", "tflite"])
@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_classifier_gives_a_distribution_and_sees_a_smile(astronaut: np.ndarray, precision: str,
                                                          backend: str, size: str) -> None:
    clf = ExpressionClassifier(MODELS, backend, precision, size=size)  # type: ignore[arg-type]
    crop = _aligned(astronaut)
    p = clf.classify([crop, np.full((FACE_SIZE, FACE_SIZE), 128, np.uint8)])
    assert p.shape == (2, len(FACE_LABELS))
    assert np.allclose(p.sum(1), 1, atol=1e-5) and (p >= 0).all()
    # Eileen Collins smiles in this portrait: happy ahead by 0.97 in every copy (2026-12-05); 0.5 leaves room
    happy = FACE_LABELS.index("happy")
    assert p[0, happy] - np.delete(p[0], happy).max() > 0.5


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"face_expression_int8.onnx not found; rebuild it with python scripts/"):
        ExpressionClassifier(tmp_path)
    (tmp_path / "face_detector_full.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"face_detector_full.onnx cannot be loaded"):
        FaceDetector("full", models_dir=tmp_path)


class ScriptedDetector:
    def __init__(self, frames: list[list[Detection]]) -> None:
        self.frames = frames
        self.i = 0

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.i += 1
        return self.frames[self.i - 1]


class ScriptedClassifier:
    """Class = the crop's mean brightness bucket, so each synthetic face has a known expression."""

    def __init__(self) -> None:
        self.views: list[str] = []

    def classify(self, crops: list[np.ndarray], view: str = "both") -> np.ndarray:
        self.views.append(view)
        out = np.full((len(crops), len(FACE_LABELS)), 0.02)
        for i, c in enumerate(crops):
            out[i, int(c.mean()) // 32] = 1.0
        return out / out.sum(1, keepdims=True)


def frame_with(faces: dict[tuple[int, int, int, int], int]) -> np.ndarray:
    img = np.zeros((240, 320, 3), np.uint8)
    for (x0, y0, x1, y1), value in faces.items():
        img[max(0, y0 - 20) : y1 + 20, max(0, x0 - 20) : x1 + 20] = value
    return img


def test_analyzer_pools_the_largest_face_over_its_window() -> None:
    cfg = parse_config({"face": {"window_s": 1.0, "min_face_px": 10, "detect_every": 1}}, env={})
    big, small = (100, 60, 200, 160), (10, 10, 50, 50)
    dets = [[Detection(big, 0.9), Detection(small, 0.9)]] * 10 + [[]] * 2
    analyzer = FaceAnalyzer(cfg.face, cfg.models, ScriptedDetector(dets), ScriptedClassifier())  # type: ignore[arg-type]
    happy, sad = FACE_LABELS.index("happy"), FACE_LABELS.index("sad")
    observations = []
    for i in range(12):
        value = happy * 32 + 5 if i < 5 else sad * 32 + 5
        img = frame_with({big: value, small: 7 * 32 + 5})
        observations.append(analyzer.process(VideoFrame(t=i * 0.2, image=img, index=i)))
    assert observations[0] is not None and observations[0].top() == "happy"
    assert observations[0].extras["faces"] == 2
    # At t=1.0 the window (1 s) still holds happy frames from t=0.0-0.8 but sad ones dominate soon after.
    assert observations[5] is not None and observations[5].top() == "happy"
    assert observations[9] is not None and observations[9].top() == "sad"
    assert {o.extras["track"] for o in observations[:10] if o} == {0}
    assert observations[10] is None and observations[11] is None  # no face: no observation
    assert all(0 < o.confidence <= 1 for o in observations[:10] if o)


def test_detector_runs_every_nth_frame_and_faces_are_followed_in_between(astronaut: np.ndarray) -> None:
    detector = FaceDetector("full", models_dir=MODELS)
    calls: list[int] = []
    schedule = DetectionSchedule(detector, every=3)
    frames = 0

    def step(image: np.ndarray) -> list[Detection]:
        nonlocal frames
        runs = schedule.runs
        dets = schedule.detections(image)
        if schedule.runs > runs:
            calls.append(frames)
        frames += 1
        return dets

    first = step(astronaut)[0].box
    # Following matches a TRACK_SIDE-pixel thumbnail of the face: it is right to one thumbnail pixel
    # (the 106 px box / 24 = 4.4 px here; measured errors 0.2-2.5 px, depending on the detector's box)
    cell = (first[2] - first[0]) / TRACK_SIDE
    for dx, dy in ((12, 0), (12, 10)):  # the head sways right, then down: followed, not detected
        (det,) = step(np.roll(np.roll(astronaut, dx, axis=1), dy, axis=0))
        assert calls == [0]
        assert det.box[0] == pytest.approx(first[0] + dx, abs=cell)
        assert det.box[1] == pytest.approx(first[1] + dy, abs=cell)
    step(astronaut)
    assert calls == [0, 3]  # every 3rd frame the detector runs anyway
    assert step(np.zeros_like(astronaut)) == [] and calls[-1] == 4  # gone: detected at once
    for _ in range(3):
        assert step(np.zeros_like(astronaut)) == []
    assert calls == [0, 3, 4, 7]  # nobody in view: every 3rd frame only


def test_a_still_empty_room_is_searched_less_often_and_movement_brings_a_search_at_once(
        astronaut: np.ndarray) -> None:
    """Nobody found 5 times and nothing moves: 1 detection in quiet_every (5); camera noise is not
    movement; someone walking in is detected on the very next chance, and found; quiet_every = 1 keeps
    the old schedule."""
    import cv2

    rng = np.random.default_rng(0)
    room = cv2.GaussianBlur(rng.integers(0, 256, astronaut.shape).astype(np.uint8), (0, 0), 8)  # max score 0.23

    def noisy(image: np.ndarray) -> np.ndarray:  # sensor noise, sd 4 grey levels, new on every frame
        return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)

    detector = FaceDetector("full", models_dir=MODELS)
    schedule = DetectionSchedule(detector, every=1, quiet_every=5)
    for _ in range(25):
        assert schedule.detections(noisy(room)) == []
    assert schedule.runs == 5 + 4  # five searches, then one in five: the 10th, 15th, 20th and 25th frames
    assert schedule.skipped == 16
    walked_in = room.copy()
    walked_in[:, : astronaut.shape[1] // 2] = astronaut[:, : astronaut.shape[1] // 2]  # the astronaut's half
    runs = schedule.runs
    found = schedule.detections(noisy(walked_in))
    assert schedule.runs == runs + 1 and len(found) == 1  # searched at once, and found (score 0.89)
    always = DetectionSchedule(detector, every=1, quiet_every=1)
    for _ in range(12):
        always.detections(noisy(room))
    assert always.runs == 12 and always.skipped == 0


def test_views_alternate_and_a_mirrored_view_is_the_mirror_image(astronaut: np.ndarray) -> None:
    clf = ExpressionClassifier(MODELS)
    crop = _aligned(astronaut)
    flipped = np.ascontiguousarray(crop[:, ::-1])
    np.testing.assert_allclose(clf.classify([crop], "mirrored"), clf.classify([flipped], "plain"), atol=1e-5)
    # no symmetry, no certainty
    lopsided = np.random.default_rng(0).integers(0, 256, (FACE_SIZE, FACE_SIZE)).astype(np.uint8)
    assert not np.allclose(clf.classify([lopsided], "mirrored"), clf.classify([lopsided], "plain"), atol=1e-3)
    scripted = ScriptedClassifier()
    cfg = parse_config({"face": {"min_face_px": 10}}, env={})
    detector = ScriptedDetector([[Detection((100, 60, 200, 160), 0.9)]] * 4)
    analyzer = FaceAnalyzer(cfg.face, cfg.models, detector, scripted)  # type: ignore[arg-type]
    for i in range(4):
        analyzer.process(VideoFrame(i * 0.2, frame_with({(100, 60, 200, 160): 37}), i))
    assert scripted.views == ["mirrored", "plain", "mirrored", "plain"]


def test_a_steady_face_is_classified_on_every_other_frame_and_a_change_of_expression_undoes_it(
        astronaut: np.ndarray) -> None:
    """A followed face that read one clear expression for STEADY_VIEWS views is classified on every other
    frame only (face.steady_every = 2, the default), observed on every frame all the same; a new expression
    is classified at most one frame late and then on every frame until it is steady in turn; steady_every
    = 1 classifies every frame."""
    box = FaceDetector("full", models_dir=MODELS).detect(astronaut)[0].box
    brighter = np.clip(astronaut.astype(np.int16) + 70, 0, 255).astype(np.uint8)  # another brightness bucket

    def classified(steady_every: int, frames: list[np.ndarray]) -> tuple[list[bool], list[str | None]]:
        cfg = parse_config({"face": {"min_face_px": 10, "detect_every": 3, "steady_every": steady_every}}, env={})
        scripted = ScriptedClassifier()
        analyzer = FaceAnalyzer(cfg.face, cfg.models, ScriptedDetector([[Detection(box, 0.9)]] * len(frames)),
                                scripted)  # type: ignore[arg-type]
        done, tops = [], []
        for i, image in enumerate(frames):
            before = len(scripted.views)
            o = analyzer.process(VideoFrame(i / 3, image, i))
            done.append(len(scripted.views) > before)
            tops.append(o.top() if o else None)
        assert analyzer.views == sum(done)
        return done, tops

    frames = [astronaut] * 13 + [brighter] * 7
    done, tops = classified(2, frames)
    # detections on frames 0, 3, 6, ...; from frame 4 on (4 views, all alike) the followed face rests on
    # every other frame, never two in a row
    assert done[:4] == [True] * 4 and STEADY_VIEWS == 4
    assert done[4:13] == [False, True, True, False, True, True, False, True, True]
    assert all(t == tops[0] for t in tops[:13]) and None not in tops  # an observation on every frame
    # the expression changes on frame 13, a frame that may rest: classified on frame 14, then on every frame
    # until its own last views agree (frame 19 rests again)
    assert done[13:] == [False] + [True] * 5 + [False]
    assert tops[-1] != tops[0]
    assert all(classified(1, frames)[0])


def test_a_track_is_steady_after_enough_clear_views_that_agree() -> None:
    def track(rows: list[list[float]]) -> Track:
        tr = Track(0, (0, 0, 10, 10), 0.0)
        for i, p in enumerate(rows):
            tr.add(i * 0.2, np.array(p), 1.0, window_s=2.0)
        return tr

    clear, other = [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]
    assert track([clear] * STEADY_VIEWS).steady()
    assert not track([clear] * (STEADY_VIEWS - 1)).steady()  # too few views yet
    assert not track([clear] * STEADY_VIEWS + [other]).steady()  # the last view disagrees
    assert not track([[0.5, 0.4, 0.1]] * STEADY_VIEWS).steady()  # agreed, but a lead of 0.1 is no clear reading
    assert track([clear] * 9 + [other] * 2 + [clear] * STEADY_VIEWS).steady()


def test_all_faces_mode_averages_tracks() -> None:
    cfg = parse_config({"face": {"faces": "all", "min_face_px": 10}}, env={})
    a, b = (20, 20, 100, 100), (180, 20, 260, 100)
    analyzer = FaceAnalyzer(cfg.face, cfg.models, ScriptedDetector([[Detection(a, 0.9), Detection(b, 0.9)]]),
                            ScriptedClassifier())  # type: ignore[arg-type]
    img = frame_with({a: 1 * 32 + 5, b: 3 * 32 + 5})
    o = analyzer.process(VideoFrame(0.0, img, 0))
    assert o is not None
    assert o.probabilities["happy"] == pytest.approx(o.probabilities["sad"])
    assert o.probabilities["happy"] > 0.4


def test_tracker_keeps_identity_by_overlap_and_expires_tracks() -> None:
    tr = FaceTracker(window_s=1.0)
    p = np.full(len(FACE_LABELS), 1 / len(FACE_LABELS))
    t1 = tr.update(0.0, [Detection((0, 0, 10, 10), 1), Detection((50, 50, 60, 60), 1)], np.stack([p, p]), [1, 1])
    t2 = tr.update(0.2, [Detection((51, 50, 61, 60), 1), Detection((1, 0, 11, 10), 1)], np.stack([p, p]), [1, 1])
    assert [t.id for t in t2] == [t1[1].id, t1[0].id]
    t3 = tr.update(2.0, [Detection((0, 0, 10, 10), 1)], np.stack([p]), [1])
    assert t3[0].id not in {t1[0].id, t1[1].id} and len(tr.tracks) == 1


def test_peakedness_bounds() -> None:
    assert peakedness(np.full(8, 1 / 8)) == pytest.approx(0, abs=1e-6)
    assert peakedness(np.eye(8)[0]) == pytest.approx(1, abs=1e-6)


def test_evaluate_faces_on_a_tiny_npz(tmp_path: Path, astronaut: np.ndarray) -> None:
    gray = astronaut[:, :, 1]
    images = np.stack([gray, gray, np.full_like(gray, 90)])  # the last has no face
    npz = tmp_path / "tiny.npz"
    np.savez(npz, images=images, labels=np.array(["happiness", "fear", "neutral"]))
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "faces", "--npz", str(npz),
                          "--detect"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["n"] == 3 and out["no_face"] == 1
    assert out["labels"] == ["neutral", "happy", "fearful"]
    assert out["confusion"]["neutral"]["none"] == 1
    assert out["per_class_recall"]["happy"] == 1.0 and out["accuracy"] == pytest.approx(1 / 3, abs=1e-3)
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=images, labels=np.array(["happy", "joyous", "sad"]))
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "faces", "--npz", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "unknown emotion names ['joyous']" in res.stderr


def test_int8_weights_fit_seven_bits_so_every_cpu_reads_the_model_alike() -> None:
    """On x86 without VNNI, onnxruntime multiplies uint8 activations by int8 weights with VPMADDUBSW,
    whose int16 pair sums saturate for weights past 7 bits: the model would read differently there
    than on the machine it was measured on (models/README.md). scripts/model_export.py quantizes with
    reduce_range; this keeps a re-export from silently dropping it."""
    import onnx
    from onnx import numpy_helper

    for name in ("face_expression_int8.onnx", "face_expression_small_int8.onnx"):
        model = onnx.load(str(ROOT / "models" / name))
        weights = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
        assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64, name


def test_the_face_cnns_first_block_stays_in_float() -> None:
    """Over one gray channel the first convolution is 9 multiply-adds an output: int8 kernels gain nothing
    there and pay for quantizing the input (scripts/model_export.float_stem). The shipped int8 models take
    the input straight into a float convolution and quantize after its pooling; a model whose input has
    more than one channel is quantized whole."""
    import onnx

    sys.path.insert(0, str(ROOT / "scripts"))
    from model_export import float_stem

    assert float_stem(ROOT / "models" / "face_expression.onnx") == ["/0/Conv", "/2/Relu", "/3/MaxPool"]
    assert float_stem(ROOT / "models" / "face_detector_full.onnx") == []  # 3 channels
    for name in ("face_expression_int8.onnx", "face_expression_small_int8.onnx"):
        graph = onnx.load(str(ROOT / "models" / name)).graph
        weights = {t.name for t in graph.initializer}
        floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
        first = next(n for n in graph.node if n.op_type == "Conv")
        assert first.input[0] == graph.input[0].name and first.input[1] in floats, name
        ops = [n.op_type for n in graph.node if not (n.op_type == "DequantizeLinear" and n.input[0] in weights)]
        assert ops[:4] == ["Conv", "Relu", "MaxPool", "QuantizeLinear"], (name, ops[:4])


def _near_gray_face() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The astronaut's face as a tight 96 px gray crop blown up to 400 px, close to the camera (like the
    proof scenarios' FER faces): the full-range model scores it about 0.44, the short range about 0.85."""
    import cv2

    img = skdata.astronaut()[:, :, ::-1].copy()
    x0, y0, x1, y1 = (int(v) for v in FaceDetector("short").detect(img)[0].box)
    p = int(0.15 * (x1 - x0))
    gray = cv2.cvtColor(img[y0 + p:y1 - p, x0 + p:x1 - p], cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(cv2.resize(gray, (96, 96), interpolation=cv2.INTER_AREA), (400, 400))
    frame = np.full((480, 640), 128, np.uint8)
    frame[40:440, 120:520] = gray
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), (120, 40, 520, 440)


def test_both_ranges_find_a_near_face_the_full_range_misses() -> None:
    from emomusic.face.detector import BothRanges, make_detector

    frame, (fx0, fy0, fx1, fy1) = _near_gray_face()
    assert FaceDetector("full").detect(frame) == []  # scores ~0.44 against the 0.6 threshold
    both = make_detector("both")
    assert isinstance(both, BothRanges)
    found = both.detect(frame)
    assert len(found) == 1 and both.second_looks == 1
    cx, cy = (found[0].box[0] + found[0].box[2]) / 2, (found[0].box[1] + found[0].box[3]) / 2
    assert fx0 < cx < fx1 and fy0 < cy < fy1  # on the face
    # A face the full range finds is not looked at twice; a frame without a face finds nothing in either.
    assert both.detect(skdata.astronaut()[:, :, ::-1].copy()) and both.second_looks == 1
    assert both.detect(np.full((480, 640, 3), 90, np.uint8)) == [] and both.second_looks == 2
    assert parse_config({}, env={}).face.detector == "both"
    analyzer = FaceAnalyzer(parse_config({}, env={}).face, parse_config({}, env={}).models)
    assert isinstance(analyzer.detector, BothRanges)
    assert analyzer.schedule.near == analyzer.detector.refresh and analyzer.schedule.scan_every == 5


def test_one_followed_face_is_found_again_around_it_and_the_whole_frame_searched_every_nth(
        astronaut: np.ndarray) -> None:
    """face.scan_every: while one face is followed, a due detection runs the short range around it, not
    both ranges on the whole frame; every scan_every-th detection searches the whole frame, so a second
    face is found within scan_every detections; a face that left is searched for in the whole frame at
    once. (Scores: the astronaut 0.84 beside a grey half, 0.72/0.76 twice, 0.92 around it; threshold 0.6.)"""
    from emomusic.face.detector import BothRanges, make_detector

    both = make_detector("both")
    assert isinstance(both, BothRanges)
    schedule = DetectionSchedule(both, every=1, near=both.refresh, scan_every=3)
    grey = np.full_like(astronaut, 90)
    one, two = np.concatenate([astronaut, grey], axis=1), np.concatenate([astronaut, astronaut], axis=1)
    assert len(schedule.detections(one)) == 1 and (both.full.runs, both.short.runs) == (1, 0)
    for _ in range(2):  # found again around it: the short range on the face's surroundings only
        (det,) = schedule.detections(one)
        assert 170 < (det.box[0] + det.box[2]) / 2 < 270
    assert (both.full.runs, both.short.runs, schedule.near_runs, schedule.runs) == (1, 2, 2, 1)
    assert len(schedule.detections(two)) == 2 and both.full.runs == 2  # the 3rd: whole frame, the newcomer
    assert len(schedule.detections(two)) == 2 and both.full.runs == 3  # two followed: whole frame each time
    assert len(schedule.detections(one)) == 1 and both.full.runs == 4
    assert len(schedule.detections(one)) == 1 and both.full.runs == 4  # one again: around it
    full = both.full.runs
    assert schedule.detections(np.concatenate([grey, grey], axis=1)) == []  # gone: not around it, nor anywhere
    assert both.full.runs == full + 1 and schedule.near_runs == 3
    every = DetectionSchedule(both, every=1, near=both.refresh, scan_every=1)
    for _ in range(3):
        every.detections(one)
    assert every.runs == 3 and every.near_runs == 0  # scan_every = 1: always the whole frame


def test_a_small_face_is_found_in_the_quarters_after_a_few_empty_looks() -> None:
    """A small, soft face (the astronaut's, 64 px gray blown up to 112 px with its surroundings, as a far
    webcam shows one): the full range scores it about 0.39 and the short range finds nothing; in the frame's
    quarters, enlarged 1.7x, the full range scores it about 0.85. Neither look finds a face where there is none."""
    import cv2

    from emomusic.face.detector import make_detector

    img = skdata.astronaut()[:, :, ::-1].copy()
    x0, y0, x1, y1 = (int(v) for v in FaceDetector("short").detect(img)[0].box)
    p = (x1 - x0) // 4
    gray = cv2.cvtColor(img[max(0, y0 - p):y1 + p, max(0, x0 - p):x1 + p], cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA), (112, 112))
    frame = np.full((480, 640), 110, np.uint8)
    frame[180:292, 260:372] = gray
    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    both = make_detector("both", tile_every=3)
    assert both.detect(frame) == [] and both.detect(frame) == []  # two empty looks: no quarters yet
    found = both.detect(frame)  # the third in a row looks in the quarters
    assert len(found) == 1 and both.tiled_looks == 1
    bx0, by0, bx1, by1 = found[0].box
    assert 260 <= (bx0 + bx1) / 2 <= 372 and 180 <= (by0 + by1) / 2 <= 292  # on the face, in frame coordinates
    assert all(260 <= x <= 372 and 180 <= y <= 292 for x, y in found[0].keypoints)
    empty = np.full((480, 640, 3), 110, np.uint8)
    assert all(both.detect(empty) == [] for _ in range(6)) and both.tiled_looks == 3
    assert parse_config({}, env={}).face.tile_every == 5


def _astronaut_plain_and_turned() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's face, gray, 220 px, and the same turned (a perspective warp narrowing the far side;
    NaN where the face is not)."""
    import cv2

    img = skdata.astronaut()[:, :, ::-1].copy()
    x0, y0, x1, y1 = (int(v) for v in FaceDetector("short").detect(img)[0].box)
    p = (x1 - x0) // 3
    face = cv2.resize(cv2.cvtColor(img[max(0, y0 - p):y1 + p, max(0, x0 - p):x1 + p], cv2.COLOR_BGR2GRAY),
                      (220, 220)).astype(np.float32)
    n = 220
    src = np.float32([[0, 0], [n, 0], [n, n], [0, n]])
    dst = np.float32([[n * 0.24, 0], [n * 0.7, n * 0.15], [n * 0.7, n * 0.85], [n * 0.24, n]])
    return face, cv2.warpPerspective(face, cv2.getPerspectiveTransform(src, dst), (n, n), borderValue=np.nan)


def _in_grey_frame(patch: np.ndarray | None, top: int, left: int) -> np.ndarray:
    """A 640x480 grey BGR frame with ``patch`` (220 px, NaN: the frame shows) at (top, left)."""
    import cv2

    out = np.full((480, 640), 110, np.float32)
    if patch is not None:
        region = out[top:top + 220, left:left + 220]
        out[top:top + 220, left:left + 220] = np.where(np.isnan(patch), region, patch)
    return cv2.cvtColor(out.astype(np.uint8), cv2.COLOR_GRAY2BGR)


def test_a_photo_gets_a_closer_look_and_reads_the_same_whatever_came_before() -> None:
    """emomusic analyze, the page and evaluate.py --detect read each photo alone (``BothRanges.still``): a
    turned face both ranges miss (each scores it ~0.14 against 0.6) is found by the short range on
    the picture's quarters (~0.82); the stream's memory (the last face, the empty looks) is neither used
    nor changed; a cat is no face, and a picture of at most 256 px gets both ranges only."""
    import cv2

    from emomusic.face.detector import BothRanges, in_photo, make_detector

    _, turned_face = _astronaut_plain_and_turned()
    turned = _in_grey_frame(turned_face, 250, 400)
    both = make_detector("both", tile_every=1, recall=3)
    assert isinstance(both, BothRanges)
    assert both.full.detect(turned) == [] and both.short.detect(turned) == []
    (found,) = both.still(turned)
    assert 400 < (found.box[0] + found.box[2]) / 2 < 620 and 250 < (found.box[1] + found.box[3]) / 2 < 470
    assert (both.second_looks, both.near_looks, both.tiled_looks) == (0, 0, 0)
    # after a face elsewhere, a blank photo is blank and the turned one reads as before
    assert both.still(skdata.astronaut()[:, :, ::-1].copy()) and both.still(_in_grey_frame(None, 0, 0)) == []
    assert [d.box for d in both.still(turned)] == [found.box]
    assert both.still(np.ascontiguousarray(skdata.chelsea()[:, :, ::-1])) == []
    assert both.still(cv2.resize(turned, (256, 192), interpolation=cv2.INTER_AREA)) == []
    assert in_photo(FaceDetector("full"), turned) == [] and in_photo(both, turned)
    obs = FaceAnalyzer(parse_config({}, env={}).face, parse_config({}, env={}).models).photo(turned)
    assert obs is not None and obs.extras["faces"] == 1


def test_a_turned_face_just_seen_is_found_again_where_it_was() -> None:
    """The astronaut's face found plain, then turned (a perspective warp: the far side narrowed): fresh, the
    full range scores it about 0.46 and the short range 0.17, both under 0.6; the second look near where it
    was (the short range on a crop twice its size) scores it about 0.83, over its 0.6. What that look finds
    never extends it: it stops ``recall`` detections after the last one that found the face itself."""
    from emomusic.face.detector import BothRanges, make_detector

    face, turned_face = _astronaut_plain_and_turned()

    def frame(patch: np.ndarray | None) -> np.ndarray:
        return _in_grey_frame(patch, 130, 210)

    turned = frame(turned_face)
    fresh = make_detector("both")
    assert fresh.detect(turned) == []
    both = make_detector("both", recall=2)
    assert isinstance(both, BothRanges)
    assert both.detect(frame(face)) and both.near_looks == 0  # found plain: no second look needed
    found = both.detect(turned)
    assert len(found) == 1 and both.near_looks == 1
    bx0, by0, bx1, by1 = found[0].box
    assert 210 < (bx0 + bx1) / 2 < 430 and 130 < (by0 + by1) / 2 < 350  # on the face, in frame coordinates
    gone = frame(None)
    # the face left: one more look (two after the last full detection), never a face, then no more looks
    assert [both.detect(gone) for _ in range(4)] == [[]] * 4 and both.near_looks == 2
    assert parse_config({}, env={}).face.recall == 3
