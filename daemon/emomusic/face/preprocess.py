"""The one face preprocessing used by training, evaluation and the daemon, so they cannot drift.

A face becomes a 48x48 gray crop *aligned on its keypoints*: rotated so the eyes are level and
scaled/shifted so the eyes and mouth land on the same template positions whatever the camera, the
head tilt or the photo's own framing (FER2013 frames faces wider than RAF-DB; the detector's box is
wider still). The crop is then standardised per image (zero mean, unit variance) so a dim living
room and a bright studio look alike to the classifier. Training images are pre-cropped photos:
``locate_in_crop`` finds their keypoints with the same BlazeFace the daemon uses.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from emomusic.runtime import Backend

FACE_SIZE = 48
CROP_MARGIN = 0.25  # a pre-cropped photo without a detected face is taken as its box plus this margin
# Where the eyes' midpoint and the mouth land in the 48x48 crop, and the distances they are scaled to.
TEMPLATE_EYE_DIST = 19.0
TEMPLATE_EYE_MOUTH = 20.0
TEMPLATE_CENTER = (24.0, 27.0)  # the midpoint between the eyes' midpoint and the mouth
# BlazeFace keypoints (right eye, left eye, mouth) relative to the box centre, in box sides: the
# average over 600 FER2013 and RAF-DB faces; used when a face comes without keypoints.
BOX_KEYPOINTS = ((-0.203, -0.212), (0.212, -0.218), (0.014, 0.226))

Box = tuple[float, float, float, float]


def to_bgr8(image: np.ndarray) -> np.ndarray | None:
    """Any frame a camera or file may give (gray, gray with a channel axis, BGRA, 16-bit, float in
    [0, 1]) as (H,W,3) uint8 BGR; None for an empty frame. Raises ValueError for what is no image."""
    import cv2

    x = np.asarray(image)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] not in (3, 4)):
        raise ValueError(f"expected a gray, BGR or BGRA frame, got an array of shape {x.shape}")
    if x.size == 0:
        return None
    if x.dtype == np.uint16:
        x = (x >> 8).astype(np.uint8)
    elif x.dtype.kind == "f":
        x = (np.clip(np.nan_to_num(x), 0.0, 1.0) * 255).astype(np.uint8)
    elif x.dtype != np.uint8:
        raise ValueError(f"expected 8-bit, 16-bit or float pixels, got {x.dtype}")
    if x.ndim == 2:
        return cv2.cvtColor(x, cv2.COLOR_GRAY2BGR)
    if x.shape[2] == 4:
        return cv2.cvtColor(x, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(x)


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H,W) gray or (H,W,3) BGR uint8 -> (H,W) uint8 gray."""
    if image.ndim == 2:
        return image
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def landmarks(box: Box, keypoints: Any = ()) -> np.ndarray:
    """(3, 2) right eye, left eye, mouth: BlazeFace's keypoints 0, 1 and 3, or the box's average."""
    if len(keypoints) >= 4:
        k = np.asarray(keypoints, dtype=np.float64)
        return k[[0, 1, 3]]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1.0)
    return np.array([((x0 + x1) / 2 + dx * side, (y0 + y1) / 2 + dy * side) for dx, dy in BOX_KEYPOINTS])


def alignment(points: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (image -> crop) that levels the eyes and puts eyes and mouth on
    the template; its scale averages the eye distance and the eye-mouth distance (either alone
    fails on a turned or a tilted-back head)."""
    right, left, mouth = points
    eyes = (right + left) / 2
    angle = math.atan2(left[1] - right[1], left[0] - right[0])
    eye_dist = max(float(np.hypot(*(left - right))), 1e-3)
    eye_mouth = max(float(np.hypot(*(mouth - eyes))), 1e-3)
    scale = (TEMPLATE_EYE_DIST / eye_dist + TEMPLATE_EYE_MOUTH / eye_mouth) / 2
    c, s = math.cos(-angle) * scale, math.sin(-angle) * scale
    centre = (eyes + mouth) / 2
    rot = np.array([[c, -s], [s, c]])
    shift = np.array(TEMPLATE_CENTER) - rot @ centre
    return np.hstack([rot, shift[:, None]])


def gray_patch(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, scale: float) -> np.ndarray:
    """Gray pixels of [x0:x1, y0:y1] (clipped to the frame, edges replicated) resized by ``scale``."""
    import cv2

    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
    patch = src[y0 + pad : y1 + pad, x0 + pad : x1 + pad]
    patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.ndim == 3 else patch
    size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
    return cv2.resize(patch, size, interpolation=cv2.INTER_AREA)


def align_face(image: np.ndarray, box: Box, keypoints: Any = ()) -> np.ndarray:
    """The 48x48 gray aligned crop of the face at ``box`` (with BlazeFace ``keypoints`` when known).

    A face much larger than 48 px is first shrunk with area averaging (as the training photos were),
    so a close-up does not alias; edges are replicated where the crop runs off the image."""
    import cv2

    pts = landmarks(box, keypoints)
    m = alignment(pts)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    if scale < 0.5:  # pre-shrink: cut a region around the face, resize it by area, fold into m
        cx, cy = pts.mean(0)
        half = 1.5 * FACE_SIZE / scale / 2
        x0, y0 = int(math.floor(cx - half)), int(math.floor(cy - half))
        side = int(math.ceil(2 * half))
        target = max(FACE_SIZE, int(round(side * scale * 1.5)))
        f = target / side  # region pixel -> shrunk pixel
        src = gray_patch(image, x0, y0, x0 + side, y0 + side, f)
        m = m @ np.array([[1 / f, 0, x0], [0, 1 / f, y0], [0, 0, 1]])
    else:
        src = to_gray(image)
    return cv2.warpAffine(src, m, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


LOCATE_SCORE = 0.3  # a pre-cropped photo is known to hold a face: accept a less certain detection


def crop_locator(backend: Backend = "onnxruntime", models_dir: Path | None = None) -> Any:
    """The detector ``locate_in_crop`` is meant to be given (short range, low threshold)."""
    from emomusic.face.detector import MODELS_DIR, FaceDetector

    return FaceDetector("short", backend, score_threshold=LOCATE_SCORE, min_face_px=8,
                        models_dir=models_dir or MODELS_DIR)


def locate_in_crop(detector: Any, crop: np.ndarray) -> tuple[Box, tuple[tuple[float, float], ...]]:
    """Box and keypoints of the face in a pre-cropped photo (a training or evaluation image).

    The photo is enlarged to 96 px and framed with replicated edges so BlazeFace sees a face of the
    size it was trained on; if it finds none, the photo is taken as a face box plus CROP_MARGIN."""
    import cv2

    gray = to_gray(np.asarray(crop))
    h, w = gray.shape
    f = 96.0 / max(h, w)
    big = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_LINEAR)
    pad = 24
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    dets = detector.detect(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
    if dets:
        d = dets[0]
        x0, y0, x1, y1 = ((v - pad) / f for v in d.box)
        kps = tuple(((kx - pad) / f, (ky - pad) / f) for kx, ky in d.keypoints)
        return (x0, y0, x1, y1), kps
    side = max(h, w) / (1 + CROP_MARGIN)
    cx, cy = w / 2, h / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), ()


def standardise(faces: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Aligned 48x48 gray faces -> float32 (N, 1, 48, 48), standardised per image."""
    out = np.empty((len(faces), 1, FACE_SIZE, FACE_SIZE), dtype=np.float32)
    for i, face in enumerate(faces):
        x = np.asarray(face, dtype=np.float32)
        if x.shape != (FACE_SIZE, FACE_SIZE):
            raise ValueError(f"expected an aligned {FACE_SIZE}x{FACE_SIZE} face, got shape {x.shape}")
        out[i, 0] = (x - x.mean()) / max(float(x.std()), 8.0)
    return out
