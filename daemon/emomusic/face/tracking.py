"""Following faces between detector runs: tracks by box overlap, template matching, the detection schedule."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from emomusic.face.detector import Detection, Detects, iou
from emomusic.face.preprocess import gray_patch

STEADY_VIEWS = 4  # views in a row that must agree before a face counts as steady (1.3 s at 3 fps)
STEADY_MARGIN = 0.3  # ...and the pooled expression's lead over the runner-up


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

    def add(self, t: float, probs: np.ndarray, quality: float, window_s: float) -> None:
        """One classified view at ``t``; views older than the window are forgotten."""
        self.history.append((t, probs, quality))
        while self.history and t - self.history[0][0] > window_s:
            self.history.popleft()

    def steady(self) -> bool:
        """Whether the last ``STEADY_VIEWS`` views all name the pooled expression, and it leads the
        runner-up by ``STEADY_MARGIN``: a face whose next view would most likely say the same."""
        if len(self.history) < STEADY_VIEWS:
            return False
        pooled = self.pooled()
        second, first = np.sort(pooled)[-2:]
        top = int(np.argmax(pooled))
        recent = itertools.islice(reversed(self.history), STEADY_VIEWS)
        return first - second >= STEADY_MARGIN and all(int(np.argmax(p)) == top for _, p, _ in recent)


def face_quality(det: Detection, min_face_px: int) -> float:
    """Detector certainty times how usable the face's size is (tiny faces classify poorly)."""
    size_factor = min(1.0, det.size / max(3.0 * min_face_px, 1.0))
    return float(det.score) * max(0.2, size_factor)


class FaceTracker:
    """Greedy IoU matching of detections to tracks; tracks unseen for a window are dropped."""

    def __init__(self, window_s: float, iou_threshold: float = 0.3) -> None:
        self.window_s = window_s
        self.iou_threshold = iou_threshold
        self.tracks: list[Track] = []
        self._ids = itertools.count()

    def update(self, t: float, dets: list[Detection], probs: np.ndarray, qualities: list[float]) -> list[Track]:
        """Assign each detection to a track and add its view; returns the tracks seen in this frame (same
        order as dets)."""
        seen = self.match(t, dets)
        for track, p, q in zip(seen, probs, qualities, strict=True):
            track.add(t, p, q, self.window_s)
        return seen

    def match(self, t: float, dets: list[Detection]) -> list[Track]:
        """Each detection's track (a new, empty one where none overlaps it enough), moved to it."""
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= self.window_s]
        free = list(self.tracks)
        seen: list[Track] = []
        for det in dets:
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
            seen.append(match)
        return seen


TRACK_MIN_SCORE = 0.6  # normalised correlation below which a tracked face is taken as changed or gone


TRACK_SIDE = 24  # a face is tracked at this size (pixels), whatever its size in the frame


class FaceFollower:
    """Follows one detected face between detector runs by template matching (a few hundredths of a
    millisecond instead of a detector run): the box moves with the head; a match below
    ``TRACK_MIN_SCORE`` (the face turned away, left, or was replaced) asks for a new detection."""

    def __init__(self, image: np.ndarray, det: Detection) -> None:
        x0, y0, x1, y1 = det.box
        self.det = det
        self.scale = TRACK_SIDE / max(x1 - x0, y1 - y0, 1.0)
        self.template = gray_patch(image, int(x0), int(y0), int(x1), int(y1), self.scale)

    def follow(self, image: np.ndarray) -> Detection | None:
        import cv2

        x0, y0, x1, y1 = self.det.box
        mx, my = (x1 - x0) / 2, (y1 - y0) / 2  # search half a face in every direction
        sx0, sy0 = int(x0 - mx), int(y0 - my)
        search = gray_patch(image, sx0, sy0, int(x1 + mx), int(y1 + my), self.scale)
        th, tw = self.template.shape
        if search.shape[0] < th or search.shape[1] < tw:
            return None
        scores = cv2.matchTemplate(search, self.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        if not np.isfinite(best) or best < TRACK_MIN_SCORE:
            return None
        self.det = self.det.moved(sx0 + bx / self.scale - x0, sy0 + by / self.scale - y0)
        return self.det


QUIET_AFTER = 5  # detections in a row that found nobody before a still room is looked at less often
THUMB = (64, 48)  # the size frames are compared at: each pixel the mean of a 10x10 block, sensor noise averaged out
CHANGED_LEVEL = 12  # grey levels a thumbnail pixel must move by to count as changed
STILL_SHARE = 0.01  # below this share of changed pixels (31 of 3,072; a hand is ~100) the scene is the same


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey copy of a frame for telling whether anything moved."""
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, THUMB, interpolation=cv2.INTER_AREA).astype(np.int16)


class DetectionSchedule:
    """Runs the detector on every ``every``-th frame and follows the faces it found in between.

    Detection is most of the face pipeline's cost, while a seated listener's face moves little and
    smoothly; the expression is still classified on the followed box (``FaceAnalyzer``). A face
    that can no longer be followed (turned away, left, replaced) is detected again at once.

    An empty room is the daemon's most common sight, and there every detection runs both ranges (and the
    quarters every few): once ``QUIET_AFTER`` detections in a row found nobody, a detection whose frame
    shows the same scene as the last empty one (nothing moved) is skipped, up to ``quiet_every`` - 1 in a
    row, so a still empty room is searched every ``quiet_every`` detections and anyone who walks in is
    looked for at once (as Frigate gates its object detector on motion).

    A single listener is the other common sight. While exactly one face is followed and ``near`` is
    given (``BothRanges.refresh``), a due detection first looks only around that face; the whole frame
    is searched again when that look fails and on every ``scan_every``-th detection, so someone coming
    in is found within ``scan_every`` detections.
    """

    def __init__(self, detector: Detects, every: int, quiet_every: int = 1,
                 near: Callable[[np.ndarray, Detection], list[Detection]] | None = None,
                 scan_every: int = 1) -> None:
        self.detector = detector
        self.every = every
        self.quiet_every = quiet_every
        self.near = near
        self.scan_every = scan_every
        self.runs = 0  # whole-frame detections
        self.near_runs = 0  # detections that looked only around the followed face
        self._near_in_row = 0
        self.skipped = 0  # detections left out in a still empty room (the benchmark counts them)
        self.same_faces = False  # whether the last frame's faces are the frame's before, followed or found again
        self._since = every  # the first frame is always detected
        self._followers: list[FaceFollower] = []
        self._empty_runs = 0
        self._empty_view: np.ndarray | None = None
        self._quiet = 0

    def detections(self, image: np.ndarray) -> list[Detection]:
        self._since += 1
        self.same_faces = False
        if self._since < self.every:
            followed = [f.follow(image) for f in self._followers]
            if all(d is not None for d in followed):
                self.same_faces = bool(followed)
                return [d for d in followed if d is not None]
        found = self._look_near(image)
        if found:
            self._followers = [FaceFollower(image, found[0])]
            self._since = 0
            self.near_runs += 1
            self.same_faces = True
            return found
        view = self._view_if_quiet(image)
        if view is not None and self._same_scene(view):
            self._since = 0
            self.skipped += 1
            return []
        dets = self.detector.detect(image)
        self._followers = [FaceFollower(image, d) for d in dets]
        self._since = 0
        self.runs += 1
        self._quiet = 0
        self._empty_runs = 0 if dets else self._empty_runs + 1
        if dets or self.quiet_every <= 1:
            self._empty_view = None
        elif self._empty_runs >= QUIET_AFTER:  # what the next frames are compared with (this frame's, made once)
            self._empty_view = view if view is not None else thumbnail(image)
        return dets

    def _look_near(self, image: np.ndarray) -> list[Detection]:
        """The one followed face looked for around where it was; [] where the whole frame is to be searched
        (no single face followed, the look failed, or ``scan_every`` - 1 looks in a row already)."""
        if self.near is None or len(self._followers) != 1 or self._near_in_row >= self.scan_every - 1:
            self._near_in_row = 0
            return []
        found = self.near(image, self._followers[0].det)
        self._near_in_row = self._near_in_row + 1 if found else 0
        return found

    def _view_if_quiet(self, image: np.ndarray) -> np.ndarray | None:
        """This frame's thumbnail where a detection may be left out: nobody found for a while and fewer
        than ``quiet_every`` - 1 left out in a row; None where the detector must run anyway."""
        if self._empty_view is None or self._quiet >= self.quiet_every - 1:
            return None
        return thumbnail(image)

    def _same_scene(self, view: np.ndarray) -> bool:
        """Whether nothing moved since the last empty detection (counted as one more left out)."""
        assert self._empty_view is not None
        if float((np.abs(view - self._empty_view) > CHANGED_LEVEL).mean()) >= STILL_SHARE:
            return False
        self._quiet += 1
        return True
