"""How often the face detector finds a face that turned, is lit from one side, is dim, tilted or small,
on its own and right after it was found plain at the same place (a listener who turns their head).

    python scripts/measure_detector.py --faces ../shared/data/faces/rafdb_basic_train_48x48.npz

Each face (gray, padded by a quarter of its side) is pasted at one of three places of a 640x480 frame of
blurred noise, at 160 and 256 px, and changed: ``plain``, ``turned`` (a perspective warp: the far side
narrowed to 55 % of the width and 75 % of the height, like a head turned some 40 degrees), ``side-lit``
(brightness falling from 100 % to 15 % across the face), ``dim`` (30 % and sensor noise), ``tilted``
(rolled 30 degrees), and ``gone`` (the face removed: a face found there must be a false one). Scored:
a detection whose box overlaps the face's by IoU >= 0.3 (for ``gone``: any detection).

``fresh``: the detector (``face.detector = "both"``) on the changed frame alone. ``after plain``: the
same detector first given the plain frame (counted only where it found the face there), then the
changed one; with ``--recall`` runs of its second look near the face just seen (``face.recall``).
Prints JSON; the model card quotes it.

``--photo``: one still picture each, as ``emomusic analyze`` reads it: both ranges alone against
``BothRanges.still`` (closer looks where they find nothing) on ``plain``, ``turned`` and ``gone`` frames,
and on scikit-image's sample pictures without a face (any face found there is a false one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.face.detector import BothRanges, iou, make_detector  # noqa: E402

W, H = 640, 480
PLACES = ((0.5, 0.5), (0.3, 0.45), (0.7, 0.55))


def background(rng: np.random.Generator) -> np.ndarray:
    import cv2

    noise = rng.normal(0, 1, (H // 8, W // 8)).astype(np.float32)
    smooth = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(120 + 35 * smooth, 0, 255).astype(np.uint8)


def changed(face: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    """A square gray face patch (float) after ``how``; NaN where nothing of the face is (keep the frame)."""
    import cv2

    n = face.shape[0]
    out = face.astype(np.float32)
    if how == "turned":
        src = np.array([[0, 0], [n, 0], [n, n], [0, n]], np.float32)
        far_top, far_bottom = n * 0.125, n * 0.875
        dst = np.array([[n * 0.2, 0], [n * 0.75, far_top], [n * 0.75, far_bottom], [n * 0.2, n]], np.float32)
        return cv2.warpPerspective(out, cv2.getPerspectiveTransform(src, dst), (n, n), borderValue=np.nan)
    if how == "side-lit":
        return out * np.linspace(1.0, 0.15, n, dtype=np.float32)[None, :]
    if how == "dim":
        return out * 0.3 + rng.normal(0, 4, out.shape).astype(np.float32)
    if how == "tilted":
        m = cv2.getRotationMatrix2D((n / 2, n / 2), 30, 1.0)
        return cv2.warpAffine(out, m, (n, n), borderValue=np.nan)
    return out


def frame(face48: np.ndarray, size: int, place: tuple[float, float], how: str, bg: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A BGR frame with the face at ``place`` and the face's box (the unpadded face)."""
    import cv2

    pad = face48.shape[0] // 4
    padded = cv2.copyMakeBorder(face48, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    patch = cv2.resize(padded, (size, size), interpolation=cv2.INTER_CUBIC)
    img = bg.astype(np.float32)
    x0, y0 = int(place[0] * W - size / 2), int(place[1] * H - size / 2)
    if how != "gone":
        p = changed(patch, how, rng)
        region = img[y0 : y0 + size, x0 : x0 + size]
        img[y0 : y0 + size, x0 : x0 + size] = np.where(np.isnan(p), region, p)
    inner = size * 48 / (48 + 2 * pad)
    m = (size - inner) / 2
    gray = np.clip(img, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), (x0 + m, y0 + m, x0 + m + inner, y0 + m + inner)


def hit(dets: list, box: tuple[float, float, float, float], how: str) -> bool:
    if how == "gone":
        return bool(dets)
    return any(iou(np.array(d.box), np.array([box]))[0] >= 0.3 for d in dets)


FACELESS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "moon", "page",
            "text", "coins", "horse", "clock", "brick", "grass", "gravel", "colorwheel", "checkerboard", "retina",
            "cat", "logo")


def photos(detector: BothRanges, faces: np.ndarray, sizes: list[int],
           rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Share of still pictures with the face found (any face, for ``gone`` and the faceless pictures)."""
    import cv2
    from skimage import data

    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        for how in ("plain", "turned", "gone"):
            hits = {"both ranges": 0, "still": 0}
            for i, face in enumerate(faces):
                img, box = frame(face, size, PLACES[i % len(PLACES)], how, background(rng), rng)
                hits["both ranges"] += hit(detector.full.detect(img) or detector.short.detect(img), box, how)
                hits["still"] += hit(detector.still(img), box, how)
            out[f"{size} px {how}"] = {k: round(v / len(faces), 3) for k, v in hits.items()}
            print(json.dumps({f"{size} px {how}": out[f"{size} px {how}"]}), flush=True)
    found = {"both ranges": 0, "still": 0}
    for name in FACELESS:
        pic = getattr(data, name)()
        pic = (255 * (pic / max(float(pic.max()), 1.0))).astype(np.uint8) if pic.dtype != np.uint8 else pic
        bgr = cv2.cvtColor(pic, cv2.COLOR_GRAY2BGR) if pic.ndim == 2 else np.ascontiguousarray(pic[:, :, 2::-1])
        found["both ranges"] += bool(detector.full.detect(bgr) or detector.short.detect(bgr))
        found["still"] += bool(detector.still(bgr))
    out[f"{len(FACELESS)} faceless sample pictures"] = found
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=Path, required=True, help="an .npz with 'images' (n, 48, 48) uint8")
    ap.add_argument("--n", type=int, default=200, help="faces to use (the first n of a seeded shuffle)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 256])
    ap.add_argument("--recall", type=int, default=3, help="detections after a face during which it is looked for "
                    "near where it was (0: the detector without the second look)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photo", action="store_true", help="still pictures: both ranges against BothRanges.still")
    args = ap.parse_args()
    images = np.load(args.faces)["images"]
    rng = np.random.default_rng(args.seed)
    faces = images[rng.permutation(len(images))[: args.n]]
    fresh_detector = make_detector("both")
    assert isinstance(fresh_detector, BothRanges)
    if args.photo:
        print(json.dumps(photos(fresh_detector, faces, args.sizes, rng), indent=1))
        return 0
    full, short = fresh_detector.full, fresh_detector.short
    kinds = ("plain", "turned", "side-lit", "dim", "tilted", "gone")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for size in args.sizes:
        fresh = {k: 0 for k in kinds}
        after = {k: 0 for k in kinds}
        seen = 0
        for i, face in enumerate(faces):
            place = PLACES[i % len(PLACES)]
            bg = background(rng)
            plain, box = frame(face, size, place, "plain", bg, rng)
            tracked = BothRanges(full, short, 0, args.recall)
            first = hit(tracked.detect(plain), box, "plain")
            seen += first
            for how in kinds:
                img, _ = frame(face, size, place, how, bg, rng)
                fresh[how] += hit(fresh_detector.detect(img), box, how)
                if first:
                    t = BothRanges(full, short, 0, args.recall)
                    t.detect(plain)
                    after[how] += hit(t.detect(img), box, how)
        out[f"{size} px"] = {
            "fresh": {k: round(v / len(faces), 3) for k, v in fresh.items()},
            "after plain": {k: round(v / max(seen, 1), 3) for k, v in after.items()} | {"faces": seen},
        }
        print(json.dumps({f"{size} px": out[f"{size} px"]}), flush=True)
    print(json.dumps({"faces": args.n, "recall": args.recall, "result": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
