"""Does face geometry, as a second opinion beside the expression CNN, lift held-out recall? (#31)

    pip install -e '.[train,tflite]'
    python scripts/measure_face_geometry.py          # after train_face.py has cached the aligned faces

MediaPipe's 468-point face mesh (``face_landmark.tflite`` inside the ``mediapipe==0.10.21`` wheel,
Apache-2.0; fetched with ``pip download --no-deps``, never installed, nothing committed) runs on every
aligned 48x48 face of train_face.py's split (padded by 8 px, enlarged to 192x192). The points are
levelled and scaled by the outer eye corners, reduced to 100 principal components, and a head is
trained on the training faces: a class-balanced logistic regression or a one-layer MLP. Scored on
train_face.py's held-out faces (FER2013 PublicTest with FER+ majorities, 10 % of RAF-DB) alone and
fused with the shipped int8 CNN (log p_cnn + alpha log p_geometry). Prints one line per head and alpha;
models/README.md quotes them. Landmarks are cached in .cache/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "scripts"))

import train_face  # noqa: E402
from model_export import download_wheel  # noqa: E402

from emomusic.face.analyzer import ExpressionClassifier  # noqa: E402

WHEEL = "mediapipe==0.10.21"
MESH = "mediapipe/modules/face_landmark/face_landmark.tflite"
PAD = 8  # px added around the 48 px aligned face: the mesh model expects a face with some margin


def mesh_model(cache: Path) -> Path:
    path = cache / "face_landmark.tflite"
    if not path.exists():
        with tempfile.TemporaryDirectory() as tmp, download_wheel(WHEEL, Path(tmp)) as z:
            cache.mkdir(parents=True, exist_ok=True)
            path.write_bytes(z.read(MESH))
    return path


def landmarks(model: Path, faces: np.ndarray) -> np.ndarray:
    """(n, 468, 2) mesh points of aligned gray faces, in the 192 px input's coordinates."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(model), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    points = np.empty((len(faces), 468, 2), np.float32)
    for i, f in enumerate(faces):
        g = cv2.copyMakeBorder(f, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
        rgb = cv2.cvtColor(cv2.resize(g, (192, 192), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2RGB)
        it.set_tensor(inp, rgb[None].astype(np.float32) / 255.0)
        it.invoke()
        points[i] = it.get_tensor(out).reshape(468, 3)[:, :2]
    return points


def geometry(p: np.ndarray) -> np.ndarray:
    """Points centred, levelled by the outer eye corners (33, 263) and scaled by their distance."""
    eye = p[:, 263] - p[:, 33]
    ang = -np.arctan2(eye[:, 1], eye[:, 0])
    cs, sn = np.cos(ang)[:, None], np.sin(ang)[:, None]
    q = p - p.mean(1, keepdims=True)
    q = np.stack([q[..., 0] * cs - q[..., 1] * sn, q[..., 0] * sn + q[..., 1] * cs], -1)
    return (q / np.linalg.norm(eye, axis=1)[:, None, None]).reshape(len(p), -1)


def main() -> int:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5, 1.0])
    args = ap.parse_args()
    data = train_face.load(train_face.DATA / "fer2013_ferplus_48x48.npz",
                           train_face.DATA / "rafdb_basic_train_48x48.npz", 0.3, 0.1, 0)
    sets = ("train", "fer_valid", "raf_valid")
    cache = ROOT / ".cache" / "face_geometry.npz"
    if cache.exists():
        pts = dict(np.load(cache))
    else:
        model, t0 = mesh_model(ROOT / ".cache"), time.time()
        pts = {k: landmarks(model, data[k]["x"]) for k in sets}
        print(f"face mesh on {sum(len(v) for v in pts.values())} faces in {time.time() - t0:.0f} s", flush=True)
        np.savez(cache, **pts)
    scaler = StandardScaler().fit(geometry(pts["train"]))
    pca = PCA(100, random_state=0).fit(scaler.transform(geometry(pts["train"])))

    def features(k: str) -> np.ndarray:
        return np.asarray(pca.transform(scaler.transform(geometry(pts[k]))))

    y = data["train"]["y"].argmax(1)
    cnn = ExpressionClassifier(ROOT / "models", "onnxruntime", "int8")
    held = ("fer_valid", "raf_valid")
    cnn_p = {k: np.concatenate([cnn.classify(list(data[k]["x"][i:i + 256])) for i in range(0, len(data[k]["x"]), 256)])
             for k in held}
    heads = {"logistic": LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced"),
             "mlp": MLPClassifier((256,), alpha=1e-2, max_iter=60, early_stopping=True, random_state=0)}
    for name, head in heads.items():
        head.fit(features("train"), y)
        geo = {}
        for k in held:
            geo[k] = np.full((len(pts[k]), 8), 1e-6)
            geo[k][:, head.classes_] = head.predict_proba(features(k))
        for alpha in [*args.alphas, None]:  # None: the geometry head alone
            fused = geo if alpha is None else {k: np.exp(np.log(cnn_p[k] + 1e-6) + alpha * np.log(geo[k] + 1e-6))
                                               for k in held}
            m = train_face.metrics(fused["fer_valid"], data["fer_valid"], fused["raf_valid"], data["raf_valid"])
            print(f"{name}, {'alone' if alpha is None else f'alpha {alpha}'}: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if k != "score"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
