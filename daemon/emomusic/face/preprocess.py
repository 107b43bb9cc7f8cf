"""The one face preprocessing used by training, evaluation and the daemon, so they cannot drift.

A face box from the detector becomes a square crop with a margin (FER images are framed a little
wider than a detector box), grayscale, resized to 48x48, then standardised per image (zero mean,
unit variance) so a dim living room and a bright studio look alike to the classifier.
"""

from __future__ import annotations

import numpy as np

FACE_SIZE = 48
CROP_MARGIN = 0.25  # fraction of the box side added around it


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


def crop_face(image: np.ndarray, box: tuple[float, float, float, float], margin: float = CROP_MARGIN) -> np.ndarray:
    """Square gray crop around ``box`` = (x0, y0, x1, y1) in pixels, padded by replication at the edges."""
    import cv2

    gray = to_gray(image)
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = max(1, int(round(side)))
    h, w = gray.shape
    pad = max(0, -left, -top, left + size - w, top + size - h)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top = left + pad, top + pad
    return gray[top : top + size, left : left + size]


def preprocess_faces(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Gray uint8 crops of any size -> float32 (N, 1, 48, 48), standardised per image."""
    import cv2

    out = np.empty((len(crops), 1, FACE_SIZE, FACE_SIZE), dtype=np.float32)
    for i, crop in enumerate(crops):
        c = to_gray(np.asarray(crop))
        if c.shape != (FACE_SIZE, FACE_SIZE):
            interp = cv2.INTER_AREA if min(c.shape) > FACE_SIZE else cv2.INTER_LINEAR
            c = cv2.resize(c, (FACE_SIZE, FACE_SIZE), interpolation=interp)
        x = c.astype(np.float32)
        out[i, 0] = (x - x.mean()) / max(float(x.std()), 8.0)
    return out
