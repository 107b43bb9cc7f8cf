"""BlazeFace (MediaPipe) face detection, decoded in numpy.

The network outputs, for each SSD anchor, a box regression (centre, size and six keypoints
relative to the anchor) and a logit. Decoding follows MediaPipe's ``TensorsToDetections`` and
``NonMaxSuppression`` calculators: sigmoid scores, anchor-relative boxes, then *weighted* NMS —
overlapping detections are averaged by score instead of dropped, which steadies the box.

Two models: ``full`` (192x192, faces at room distance) and ``short`` (128x128, faces within ~2 m,
cheaper); by default both (:class:`BothRanges`): the full range first, the short range where it finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from emomusic.runtime import Backend, Model

MODELS_DIR = Path(__file__).resolve().parents[3] / "models"


@dataclass(frozen=True)
class AnchorSpec:
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with interpolated aspect ratio (short range), 1 without (full range)


SPECS = {
    "short": AnchorSpec(128, (8, 16, 16, 16), 2),
    "full": AnchorSpec(192, (4,), 1),
}


@dataclass(frozen=True, slots=True)
class Detection:
    """A face in pixel coordinates of the original image."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def moved(self, dx: float, dy: float) -> Detection:
        """The same face ``dx``, ``dy`` pixels further (a crop's detection in frame coordinates, a followed face)."""
        x0, y0, x1, y1 = self.box
        return Detection((x0 + dx, y0 + dy, x1 + dx, y1 + dy), self.score,
                         tuple((kx + dx, ky + dy) for kx, ky in self.keypoints))


def ssd_anchors(spec: AnchorSpec) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], in the network's output order (fixed anchor size 1x1)."""
    centres: list[tuple[float, float]] = []
    i = 0
    strides = spec.strides
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:  # layers of equal stride share a grid
            j += 1
        per_cell = spec.anchors_per_layer * (j - i)
        n = int(np.ceil(spec.input_size / strides[i]))
        for y in range(n):
            for x in range(n):
                centres.extend([((x + 0.5) / n, (y + 0.5) / n)] * per_cell)
        i = j
    return np.asarray(centres, dtype=np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> boxes (N, 4) as normalised x0, y0, x1, y1; scores (N,); keypoints (N, 6, 2) normalised."""
    r = raw_boxes.reshape(-1, raw_boxes.shape[-1]).astype(np.float32) / input_size
    cx = r[:, 0] + anchors[:, 0]
    cy = r[:, 1] + anchors[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = r[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    logits = np.clip(raw_scores.reshape(-1).astype(np.float32), -80, 80)
    return boxes, 1.0 / (1.0 + np.exp(-logits)), kp


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` (4,) against boxes ``b`` (M, 4)."""
    x0 = np.maximum(a[0], b[:, 0])
    y0 = np.maximum(a[1], b[:, 1])
    x1 = np.minimum(a[2], b[:, 2])
    y1 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3,
                 keypoints: np.ndarray | None = None) -> list[tuple[np.ndarray, float, np.ndarray | None]]:
    """MediaPipe's weighted NMS: each cluster (IoU > threshold with its best box) becomes the
    score-weighted mean of its members, with the best member's score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kps = keypoints[order] if keypoints is not None else None
    out = []
    remaining = np.arange(len(boxes))
    while remaining.size:
        best = remaining[0]
        overlap = iou(boxes[best], boxes[remaining]) > iou_threshold
        members = remaining[overlap]
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kp = (kps[members] * w[:, :, None]).sum(0) / w.sum() if kps is not None else None
        out.append((box, float(scores[best]), kp))
        remaining = remaining[~overlap]
    return out


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to ``width`` x ``height`` by area averaging, halved first while it is more than
    twice that: OpenCV averages exact halves in a fast path, so a 640x480 frame reaches the full range's
    192x144 in 0.63 ms instead of 1.74 ms in one step (measured 2026-12-03, one thread), with the
    same anti-aliasing."""
    import cv2

    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class Detects(Protocol):
    """What the face pipeline needs of a detector: faces in a BGR image, largest first."""

    def detect(self, image: np.ndarray) -> list[Detection]: ...


class FaceDetector:
    """Detects faces in a BGR image; returns them largest first."""

    def __init__(self, model: str = "full", backend: Backend = "onnxruntime", score_threshold: float = 0.6,
                 min_face_px: int = 24, iou_threshold: float = 0.3, threads: int = 1,
                 models_dir: Path = MODELS_DIR) -> None:
        if model not in SPECS:
            raise ValueError(f"face detector model must be one of {sorted(SPECS)}, got {model!r}")
        self.spec = SPECS[model]
        ext = "onnx" if backend == "onnxruntime" else "tflite"
        self.runs = 0  # model runs (the benchmark counts their cost)
        self.model = Model(models_dir / f"face_detector_{model}.{ext}", backend, threads,
                           rebuild_hint="python scripts/build_models.py", prepack=False)  # as fast, less memory
        self.anchors = ssd_anchors(self.spec)
        size = self.spec.input_size
        self._input = np.empty((1, 3, size, size), np.float32)  # preprocess's buffer (one thread per detector)
        self.score_threshold = score_threshold
        self.min_face_px = min_face_px
        self.iou_threshold = iou_threshold

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """Letterbox to the square input, RGB in [-1, 1], NCHW. Returns the tensor and the mapping back."""
        import cv2

        h, w = image.shape[:2]
        size = self.spec.input_size
        scale = size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        resized = shrink(image, nw, nh)
        if resized.ndim == 2:
            resized = cv2.cvtColor(resized, cv2.COLOR_GRAY2BGR)
        top, left = (size - nh) // 2, (size - nw) // 2
        # Written into one buffer per detector, which the next call overwrites: a fresh 442 KB input (and
        # its copy in NCHW order) was ~160 page faults a run (service.memory's mmap threshold; #35).
        x = self._input
        x.fill(-1.0)  # the letterbox's black
        for c in range(3):  # RGB planes from BGR, in [-1, 1]: (v / 127.5) - 1 in float32, as the model wants
            plane = x[0, c, top : top + nh, left : left + nw]
            np.divide(resized[:, :, 2 - c], np.float32(127.5), out=plane)
            plane -= 1.0
        return x, scale, left, top

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.runs += 1
        x, scale, left, top = self.preprocess(image)
        outputs = self.model.run(x)
        raw_boxes, raw_scores = sorted(outputs, key=lambda a: a.shape[-1], reverse=True)[:2]
        boxes, scores, kps = decode(raw_boxes, raw_scores, self.anchors, self.spec.input_size)
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        size = self.spec.input_size
        h, w = image.shape[:2]
        dets = []
        for box, score, kp in weighted_nms(boxes[keep], scores[keep], self.iou_threshold, kps[keep]):
            px = (box * size - [left, top, left, top]) / scale
            px = np.clip(px, 0, [w, h, w, h])
            kpx = (kp * size - [left, top]) / scale if kp is not None else np.zeros((0, 2))
            box_px = (float(px[0]), float(px[1]), float(px[2]), float(px[3]))
            det = Detection(box_px, score, tuple((float(a), float(b)) for a, b in kpx))
            if det.size >= self.min_face_px:
                dets.append(det)
        return sorted(dets, key=lambda d: d.size, reverse=True)


CLOSER_LOOK_MIN_PX = 256  # a photo up to this size gets no closer look (BothRanges.still)


class BothRanges:
    """Full range first, short range where it finds nothing (``face.detector = "both"``, the default).

    The full-range model is made for faces at room distance and misses many near, large ones: on the
    proof scenarios' faces (150-260 px in a 640x480 frame) it found the face on 50 % of the frames at
    the default threshold, the short range on 92 %, and neither found a face on any of 72 pictures
    without one (docs/PROOF.md). The second model runs only when the first found nothing, and
    detection runs about once a second: it costs about 1 ms a second at most.

    Small faces are the other end: the full range sees the frame at 192x192, where a face under about
    60 px of a 640 px frame is a dozen pixels. After ``tile_every`` detections in a row that found
    nothing, the full range looks at the frame's four overlapping quarters, each enlarged 1.7x
    (four runs, once every ``tile_every`` seconds while nobody is found; 0 turns it off).

    A face seen a moment ago that neither range finds now has often turned, not gone: for ``recall``
    detections after one last found a face, the short range looks again at the square twice its size
    around where it was, enlarged to the model's input (one extra 1 ms run; 0 turns it off). Zoomed in,
    it finds most turned faces at its usual threshold; what it finds never extends the ``recall``
    detections, so a face that left is not kept alive by a face-like wall.
    """

    def __init__(self, full: FaceDetector, short: FaceDetector, tile_every: int = 0, recall: int = 0) -> None:
        self.full, self.short, self.tile_every = full, short, tile_every
        self.recall = recall
        # which extra looks ran (each range's ``runs`` counts every model run, for the benchmark)
        self.second_looks = 0  # the short range on the frame, where the full range found nothing
        self.tiled_looks = 0
        self.near_looks = 0
        self._empty = 0
        self._last: Detection | None = None  # the largest face of the last detection that found one

    def detect(self, image: np.ndarray) -> list[Detection]:
        found = self.full.detect(image)
        if not found:
            self.second_looks += 1
            found = self.short.detect(image)
        if found:
            self._last, self._empty = found[0], 0
            return found
        self._empty += 1  # a look near the last face counts as empty too: what it finds never extends it
        if self._last is not None and self._empty <= self.recall:
            self.near_looks += 1
            return self.near(image, self._last)
        if not self.tile_every or self._empty % self.tile_every:
            return []
        self.tiled_looks += 1
        return self.in_quarters(image)

    def refresh(self, image: np.ndarray, followed: Detection) -> list[Detection]:
        """The face being followed, found again by the short range around where it is (``near``) instead
        of the whole frame searched with both ranges: a quarter of the cost (``DetectionSchedule``
        searches the whole frame every ``face.scan_every`` detections). [] where it is not there."""
        found = self.near(image, followed)
        if found:
            self._last, self._empty = found[0], 0
        return found

    def near(self, image: np.ndarray, last: Detection) -> list[Detection]:
        """The short range on the square twice the size of ``last`` around it: a face whose centre lies
        within ``last``'s box, mapped back to the frame."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = last.box
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
        left, top = int(max(0, cx - half)), int(max(0, cy - half))
        right, bottom = int(min(w, cx + half)), int(min(h, cy + half))
        if right - left < self.short.min_face_px or bottom - top < self.short.min_face_px:
            return []
        for d in self.short.detect(image[top:bottom, left:right]):
            moved = d.moved(left, top)
            mx, my = (moved.box[0] + moved.box[2]) / 2, (moved.box[1] + moved.box[3]) / 2
            if x0 <= mx <= x1 and y0 <= my <= y1:
                return [moved]
        return []

    def in_quarters(self, image: np.ndarray, detector: FaceDetector | None = None) -> list[Detection]:
        """The full range (or ``detector``) on four overlapping quarters (60 % of each side), boxes mapped
        back, one per face."""
        model = detector or self.full
        h, w = image.shape[:2]
        th, tw = int(h * 0.6), int(w * 0.6)
        found: list[Detection] = []
        for y in (0, h - th):
            for x in (0, w - tw):
                for d in model.detect(image[y:y + th, x:x + tw]):
                    moved = d.moved(x, y)
                    if all(iou(np.array(moved.box), np.array([o.box]))[0] <= model.iou_threshold for o in found):
                        found.append(moved)
        return sorted(found, key=lambda d: d.size, reverse=True)

    def still(self, image: np.ndarray) -> list[Detection]:
        """Faces in one photo (``emomusic analyze``, the page, ``evaluate.py faces --detect``): looked for
        harder than in a frame of the stream, which gets another chance a moment later, and without the
        stream's memory (the last face, the empty looks), so a photo reads the same whatever came before.
        Each look only where the ones before found nothing: both ranges; the full range on the quarters (a
        small face); the short range on the central 70 % and then on the quarters (a near or turned face,
        enlarged); a picture of at most ``CLOSER_LOOK_MIN_PX`` gets both ranges only (a face crop, or too
        small to look closer). Measured (models/README.md): RAF-DB faces turned some 40 degrees, 256 px in a
        640x480 picture, found 47 -> 71 %; none in 600 faceless frames, one in 19 faceless pictures (stars)."""
        h, w = image.shape[:2]
        ch, cw = int(h * 0.7), int(w * 0.7)
        top, left = (h - ch) // 2, (w - cw) // 2
        looks: tuple[Callable[[], list[Detection]], ...] = (
            lambda: self.full.detect(image), lambda: self.short.detect(image), lambda: self.in_quarters(image),
            lambda: [d.moved(left, top) for d in self.short.detect(image[top:top + ch, left:left + cw])],
            lambda: self.in_quarters(image, self.short))
        for look in looks if max(h, w) > CLOSER_LOOK_MIN_PX else looks[:2]:
            if found := look():
                return found
        return []


def in_photo(detector: Detects, image: np.ndarray) -> list[Detection]:
    """Faces in one still photo: ``BothRanges.still`` where both ranges are configured (the default),
    else the one range's plain detection."""
    return detector.still(image) if isinstance(detector, BothRanges) else detector.detect(image)


def make_detector(model: str, backend: Backend = "onnxruntime", score_threshold: float = 0.6,
                  min_face_px: int = 24, threads: int = 1, models_dir: Path = MODELS_DIR,
                  tile_every: int = 0, recall: int = 0) -> Detects:
    """The detector ``face.detector`` names: ``full``, ``short`` or ``both``."""
    if model == "both":
        full, short = (FaceDetector(m, backend, score_threshold, min_face_px, threads=threads,
                                    models_dir=models_dir) for m in ("full", "short"))
        return BothRanges(full, short, tile_every, recall)
    return FaceDetector(model, backend, score_threshold, min_face_px, threads=threads, models_dir=models_dir)
