"""The face pipeline: detect faces, classify each crop's expression, pool over a sliding window.

Each face is tracked across frames by box overlap, so the pooled expression belongs to one person
even when several are in view. One observation per analysed frame, none while no face is seen
(fusion then fades the modality out). Frames never leave this process.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emomusic.config import Config
from emomusic.face_detector import Detection, FaceDetector, iou
from emomusic.face_preprocess import crop_face, preprocess_faces, to_bgr8
from emomusic.labels import FACE_LABELS
from emomusic.messages import Observation, VideoFrame
from emomusic.runtime import Backend, load_classifier

REBUILD_FACE = "python scripts/train_face.py (see models/README.md)"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class ExpressionClassifier:
    """The trained expression CNN: gray face crops -> probabilities over FACE_LABELS."""

    def __init__(self, models_dir: Path, backend: Backend = "onnxruntime", precision: str = "int8",
                 threads: int = 1) -> None:
        self.model = load_classifier(models_dir, "face_expression", FACE_LABELS, backend, precision, threads,
                                     REBUILD_FACE)
        self.labels = FACE_LABELS

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, len(self.labels)), np.float32)
        x = preprocess_faces(crops)
        # Average with the mirrored face: cheap, and steadier than one view.
        both = np.concatenate([x, x[:, :, :, ::-1]])
        logits = self.model.run(both)[0]
        n = len(crops)
        return softmax((logits[:n] + logits[n:]) / 2)


@dataclass
class Track:
    """One face followed across frames: (time, probabilities, quality) within the window."""

    id: int
    box: tuple[float, float, float, float]
    last_seen: float
    history: deque[tuple[float, np.ndarray, float]] = field(default_factory=deque)

    def pooled(self) -> np.ndarray:
        w = np.array([q for _, _, q in self.history])
        p = np.stack([p for _, p, _ in self.history])
        return (p * w[:, None]).sum(0) / max(w.sum(), 1e-9)


def face_quality(det: Detection, min_face_px: int) -> float:
    """Detector certainty times how usable the face's size is (tiny faces classify poorly)."""
    size_factor = min(1.0, det.size / max(3.0 * min_face_px, 1.0))
    return float(det.score) * max(0.2, size_factor)


def peakedness(p: np.ndarray) -> float:
    """1 for a one-hot distribution, 0 for a uniform one."""
    q = np.clip(p, 1e-9, 1)
    return float(1 + (q * np.log(q)).sum() / math.log(len(q)))


class FaceTracker:
    """Greedy IoU matching of detections to tracks; tracks unseen for a window are dropped."""

    def __init__(self, window_s: float, iou_threshold: float = 0.3) -> None:
        self.window_s = window_s
        self.iou_threshold = iou_threshold
        self.tracks: list[Track] = []
        self._ids = itertools.count()

    def update(self, t: float, dets: list[Detection], probs: np.ndarray, qualities: list[float]) -> list[Track]:
        """Assign each detection to a track; returns the tracks seen in this frame (same order as dets)."""
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= self.window_s]
        free = list(self.tracks)
        seen: list[Track] = []
        for det, p, q in zip(dets, probs, qualities, strict=True):
            match = None
            if free:
                overlaps = iou(np.array(det.box), np.array([tr.box for tr in free]))
                k = int(np.argmax(overlaps))
                if overlaps[k] >= self.iou_threshold:
                    match = free.pop(k)
            if match is None:
                match = Track(next(self._ids), det.box, t)
                self.tracks.append(match)
            match.box, match.last_seen = det.box, t
            match.history.append((t, p, q))
            while match.history and t - match.history[0][0] > self.window_s:
                match.history.popleft()
            seen.append(match)
        return seen


MOTION_REDETECT = 12.0  # mean absolute change (gray levels) of a face's thumbnail that forces a new detection


def thumbnail(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """A 16x16 gray thumbnail of ``box``: enough to notice that a face moved or left."""
    import cv2

    h, w = image.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, max(x0 + 1, int(box[2]))), min(h, max(y0 + 1, int(box[3])))
    patch = image[y0:y1, x0:x1]
    small = cv2.resize(patch, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    return small.mean(axis=2) if small.ndim == 3 else small


class DetectionSchedule:
    """Runs the detector on every ``every``-th frame and reuses its boxes in between.

    Detection is most of the face pipeline's cost, while a seated listener's face barely moves in
    a fraction of a second; the expression is still classified on every analysed frame. A face
    whose thumbnail changes (it moved, turned away or left) is detected again at once.
    """

    def __init__(self, detector: FaceDetector, every: int) -> None:
        self.detector = detector
        self.every = every
        self.runs = 0
        self._since = every  # the first frame is always detected
        self._dets: list[Detection] = []
        self._thumbs: list[np.ndarray] = []

    def detections(self, image: np.ndarray) -> list[Detection]:
        self._since += 1
        if self._since >= self.every or self._moved(image):
            self._dets = self.detector.detect(image)
            self._thumbs = [thumbnail(image, d.box) for d in self._dets]
            self._since = 0
            self.runs += 1
        return self._dets

    def _moved(self, image: np.ndarray) -> bool:
        return any(float(np.abs(thumbnail(image, d.box) - th).mean()) > MOTION_REDETECT
                   for d, th in zip(self._dets, self._thumbs, strict=True))


class FaceAnalyzer:
    """VideoFrame -> Observation of the largest (or every) face's expression over the window."""

    modality = "face"

    def __init__(self, cfg: Config, detector: FaceDetector | None = None,
                 classifier: ExpressionClassifier | None = None) -> None:
        m, f = cfg.models, cfg.face
        self.cfg = f
        self.detector = detector or FaceDetector(
            f.detector, m.backend, score_threshold=f.score_threshold, min_face_px=f.min_face_px,
            threads=m.threads, models_dir=m.path,
        )
        self.classifier = classifier or ExpressionClassifier(m.path, m.backend, m.precision, m.threads)
        self.tracker = FaceTracker(f.window_s)
        self.schedule = DetectionSchedule(self.detector, f.detect_every)

    def process(self, item: VideoFrame) -> Observation | None:
        image = to_bgr8(item.image)
        if image is None:
            return None
        dets = self.schedule.detections(image)
        if not dets:
            return None
        crops = [crop_face(image, d.box) for d in dets]
        probs = self.classifier.classify(crops)
        qualities = [face_quality(d, self.cfg.min_face_px) for d in dets]
        tracks = self.tracker.update(item.t, dets, probs, qualities)
        return self.observe(item.t, dets, tracks, qualities)

    def observe(self, t: float, dets: list[Detection], tracks: list[Track], qualities: list[float]) -> Observation:
        """Pool the chosen face(s) over the window and weigh the result."""
        if self.cfg.faces == "largest":  # detections come largest first
            pooled, quality = tracks[0].pooled(), qualities[0]
        else:
            pooled = np.mean([tr.pooled() for tr in tracks], axis=0)
            quality = float(np.mean(qualities))
        confidence = quality * (0.5 + 0.5 * peakedness(pooled))
        return Observation(
            modality=self.modality,
            t=t,
            probabilities={label: float(p) for label, p in zip(FACE_LABELS, pooled, strict=True)},
            confidence=float(np.clip(confidence, 0.0, 1.0)),
            extras={"box": [round(v, 1) for v in dets[0].box], "faces": len(dets), "track": tracks[0].id},
        )
