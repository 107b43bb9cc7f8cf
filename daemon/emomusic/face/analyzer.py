"""The face pipeline: detect faces, classify each crop's expression, pool over a sliding window.

Each face is tracked across frames by box overlap, so the pooled expression belongs to one person
even when several are in view. One observation per analysed frame, none while no face is seen
(fusion then fades the modality out). Frames never leave this process.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emomusic.audio import PlaybackGuard
from emomusic.config import Config
from emomusic.config.perception import FaceConfig, ModelsConfig
from emomusic.face.detector import BothRanges, Detection, Detects, FaceDetector, in_photo, make_detector
from emomusic.face.preprocess import align_face, crop_locator, locate_in_crop, standardise, to_bgr8
from emomusic.face.tracking import DetectionSchedule, FaceTracker, Track, face_quality
from emomusic.labels import FACE_LABELS
from emomusic.messages import Observation, Sensed, VideoFrame
from emomusic.runtime import Backend, load_classifier, offers_int8_dot_product, peakedness, softmax

REBUILD_FACE = "python scripts/train_face.py (see models/README.md)"
STEMS = {"large": "face_expression", "small": "face_expression_small"}  # face.classifier -> model files
log = logging.getLogger("emomusic.face")
CROP_MAX_PX = 256  # a still photo this small in which no face is found is read as one face crop...
FLAT_STD = 8.0  # ...unless it is flat (a blank image is no face)


def chosen_classifier(choice: str = "auto") -> str:
    """``face.classifier`` resolved: "auto" is the large model where the CPU has an int8 dot product, the
    small one (0.56x the multiply-adds) where it has none."""
    if choice != "auto":
        return choice
    return "large" if offers_int8_dot_product() else "small"


class ExpressionClassifier:
    """The trained expression CNN: gray face crops -> probabilities over FACE_LABELS."""

    def __init__(self, models_dir: Path, backend: Backend = "onnxruntime", precision: str = "int8",
                 threads: int = 1, size: str = "large") -> None:
        self.model = load_classifier(models_dir, STEMS[size], FACE_LABELS, backend, precision, threads,
                                     REBUILD_FACE)
        self.labels = FACE_LABELS

    def classify(self, faces: list[np.ndarray], view: str = "both") -> np.ndarray:
        """Probabilities per aligned 48x48 face (``preprocess.align_face``). ``view`` "both" averages
        the face with its mirror image (what a single photo gets); "plain" or "mirrored" classifies one
        view, for the daemon, which alternates them from frame to frame so its sliding window averages
        both at half the cost."""
        if not faces:
            return np.zeros((0, len(self.labels)), np.float32)
        x = standardise(faces)
        if view == "plain":
            return softmax(self.model.run(x)[0])
        if view == "mirrored":
            return softmax(self.model.run(np.ascontiguousarray(x[:, :, :, ::-1]))[0])
        both = np.concatenate([x, x[:, :, :, ::-1]])
        logits = self.model.run(both, transient=True)[0]  # a photo's faces: not kept in the stream's arena
        n = len(faces)
        return softmax((logits[:n] + logits[n:]) / 2)


def _fills(d: Detection, image: np.ndarray) -> bool:
    """The face covers most of the image: a tight crop (which the short range finds) rather than a photo."""
    x0, y0, x1, y1 = d.box
    return (x1 - x0) * (y1 - y0) >= 0.5 * image.shape[0] * image.shape[1]


class FaceAnalyzer:
    """VideoFrame -> Observation of the largest (or every) face's expression over the window."""

    modality = "face"
    latency_s = 0.0  # an observation is stamped with its frame's time

    def __init__(self, f: FaceConfig, m: ModelsConfig, detector: Detects | None = None,
                 classifier: ExpressionClassifier | None = None) -> None:
        self.cfg = f
        self.detector = detector or make_detector(
            f.detector, m.backend, score_threshold=f.score_threshold, min_face_px=f.min_face_px,
            threads=m.threads, models_dir=m.path, tile_every=f.tile_every, recall=f.recall,
        )
        if classifier is None:
            size = chosen_classifier(f.classifier)
            has = "an" if size == "large" else "no"
            why = "" if f.classifier != "auto" else f" (auto: {has} int8 dot product here)"
            log.info("face classifier: the %s model%s", size, why)
            classifier = ExpressionClassifier(m.path, m.backend, m.precision, m.threads, size)
        self.classifier = classifier
        self.cfg_models = m
        self._locator: FaceDetector | None = None  # for still photos that are face crops (made when needed)
        self.tracker = FaceTracker(f.window_s)
        near = self.detector.refresh if isinstance(self.detector, BothRanges) else None
        self.schedule = DetectionSchedule(self.detector, f.detect_every, f.quiet_every, near, f.scan_every)
        self.views = 0  # frames classified, plain and mirrored views alternating (the benchmark counts them)
        self._rested = 0  # frames in a row whose classification was left out (a steady face)

    def process(self, item: Sensed) -> Observation | None:
        if not isinstance(item, VideoFrame):
            raise TypeError(f"the face analyzer reads camera frames, not {type(item).__name__}")
        image = to_bgr8(item.image)
        if image is None:
            return None
        dets = self.schedule.detections(image)
        if not dets:
            self._rested = 0
            return None
        qualities = [face_quality(d, self.cfg.min_face_px) for d in dets]
        tracks = self.tracker.match(item.t, dets)
        if self._may_rest(tracks):
            self._rested += 1
        else:
            self._rested = 0
            faces = [align_face(image, d.box, d.keypoints) for d in dets]
            self.views += 1
            probs = self.classifier.classify(faces, "mirrored" if self.views % 2 else "plain")
            for track, p, q in zip(tracks, probs, qualities, strict=True):
                track.add(item.t, p, q, self.cfg.window_s)
        return self.observe(item.t, dets, tracks, qualities)

    def _may_rest(self, tracks: list[Track]) -> bool:
        """Whether this frame's classification may be left out (``face.steady_every``): one face, the same
        as the last frame's (followed, or found again around it; not detected anew), whose last views all
        read one clear expression (``Track.steady``), and fewer than steady_every - 1 frames left out in a
        row. A change of expression is then seen at most steady_every - 1 frames late; whatever makes the
        follower lose the face (a turn, a new face in its place) brings a detection and a classification
        at once. The face's observation goes on every frame, pooled from the views in its window."""
        return (self._rested < self.cfg.steady_every - 1 and self.schedule.same_faces and len(tracks) == 1
                and tracks[0].steady())

    def photo(self, image: np.ndarray) -> Observation | None:
        """One still image (``emomusic analyze``, the web page): every face found, both views
        averaged, no window; None when no face is found. A small image that is a face crop (no face
        found in it, or one that fills most of it) is read as one face crop, located as the training
        photos were (``extras["read_as"]`` says so)."""
        bgr = to_bgr8(image)
        dets = in_photo(self.detector, bgr) if bgr is not None else []
        if bgr is not None and max(bgr.shape[:2]) <= CROP_MAX_PX and bgr.std() >= FLAT_STD \
                and (not dets or _fills(dets[0], bgr)):
            return self._crop(bgr)
        if bgr is None or not dets:
            return None
        probs = self.classifier.classify([align_face(bgr, d.box, d.keypoints) for d in dets], "both")
        qualities = [face_quality(d, self.cfg.min_face_px) for d in dets]
        return self.observe(0.0, dets, FaceTracker(self.cfg.window_s).update(0.0, dets, probs, qualities), qualities)

    def _crop(self, bgr: np.ndarray) -> Observation:
        if self._locator is None:
            m = self.cfg_models
            self._locator = crop_locator(m.backend, m.path)
        box, keypoints = locate_in_crop(self._locator, bgr)
        d = Detection(box, 0.5, keypoints)  # a face assumed, not detected: half the weight of a sure one
        probs = self.classifier.classify([align_face(bgr, box, keypoints)], "both")
        quality = face_quality(d, self.cfg.min_face_px)
        obs = self.observe(0.0, [d], FaceTracker(self.cfg.window_s).update(0.0, [d], probs, [quality]), [quality])
        obs.extras["read_as"] = "a face crop: the whole image read as one face crop"
        return obs

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


def build(cfg: Config, playback: PlaybackGuard, persist: bool) -> FaceAnalyzer:
    """The face modality's analyzer (config.modalities): it keeps nothing and hears no music."""
    return FaceAnalyzer(cfg.face, cfg.models)
