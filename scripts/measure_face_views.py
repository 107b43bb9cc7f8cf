"""Does the face classifier gain from more test-time views than the face and its mirror?

Each held-out face of ``train_face.py``'s model selection (FER2013 PublicTest, the stratified 10 % of
RAF-DB train), aligned by the daemon's preprocessing (``train_face.py``'s cache), classified by the
shipped int8 model in its plain and mirrored view, and again slightly zoomed (±6 %), shifted (±1.5 px)
or rolled (±5°), both views each; the logits averaged over the views. Prints the held-out figures for
plain + mirror (what the daemon's window averages) and for each extra pair. No file is written.

    python scripts/measure_face_views.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "scripts"))

import train_face  # noqa: E402

from emomusic.face.analyzer import ExpressionClassifier  # noqa: E402
from emomusic.face.preprocess import FACE_SIZE, standardise  # noqa: E402

VIEWS = {"zoom in 6 %": dict(scale=1.06), "zoom out 6 %": dict(scale=0.94), "right 1.5 px": dict(dx=1.5),
         "left 1.5 px": dict(dx=-1.5), "down 1.5 px": dict(dy=1.5), "up 1.5 px": dict(dy=-1.5),
         "rolled 5°": dict(rot=5.0), "rolled -5°": dict(rot=-5.0)}


def warp(faces: np.ndarray, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0, rot: float = 0.0) -> np.ndarray:
    c = (FACE_SIZE - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), rot, scale)
    m[:, 2] += (dx, dy)
    return np.stack([cv2.warpAffine(f, m, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE) for f in faces])


def main() -> int:
    data = train_face.load(train_face.DATA / "fer2013_ferplus_48x48.npz",
                           train_face.DATA / "rafdb_basic_train_48x48.npz", 0.3, 0.1, 0)
    clf = ExpressionClassifier(ROOT / "models", "onnxruntime", "int8")

    def logits(faces: np.ndarray) -> np.ndarray:
        return np.concatenate([clf.model.run(standardise(list(faces[i : i + 256])))[0]
                               for i in range(0, len(faces), 256)])

    def both(faces: np.ndarray) -> np.ndarray:  # plain + mirrored view, summed
        return logits(faces) + logits(np.ascontiguousarray(faces[:, :, ::-1]))

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    fer, raf = data["fer_valid"], data["raf_valid"]
    base = {"fer": both(fer["x"]), "raf": both(raf["x"])}

    def show(name: str, fer_logits: np.ndarray, raf_logits: np.ndarray) -> None:
        m = train_face.metrics(softmax(fer_logits), fer, softmax(raf_logits), raf)
        print(f"{name:34s}" + " ".join(f"{k} {100 * v:.1f}" for k, v in m.items()), flush=True)

    show("plain + mirror", base["fer"], base["raf"])
    for name, kw in VIEWS.items():
        show(f"  + {name} (both views)", base["fer"] + both(warp(fer["x"], **kw)),
             base["raf"] + both(warp(raf["x"], **kw)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
