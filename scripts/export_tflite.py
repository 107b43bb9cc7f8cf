"""Convert the trained ONNX classifiers to TFLite (float32 and int8) for the LiteRT backend.

TensorFlow is far too heavy for the daemon and the normal dev setup, so this script builds a
throwaway venv (``--venv``, default under /tmp) with tensorflow-cpu and onnx2tf, converts there,
and checks each TFLite model against its ONNX original on the calibration inputs. Calibration
inputs come from the same preprocessing as training (emomusic.face.preprocess);
they are written to a temporary folder and never into the repository.

    python scripts/export_tflite.py [--faces NPZ] [--speech DIR]

Writes models/face_expression{,_small}{,_int8}.tflite. The int8 files are onnx2tf's "integer_quant" output:
int8 weights and activations, float32 input and output. (The voice path has no TFLite copy: its
encoder is an LSTM with int8 weights that onnxruntime runs, and its head is a dot product.)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

TF_PACKAGES = ["tensorflow-cpu==2.21.0", "tf-keras==2.21.0", "onnx2tf==1.28.8", "onnx", "onnxruntime",
               "onnx-graphsurgeon", "sng4onnx", "psutil", "ai-edge-litert"]


def ensure_venv(path: Path) -> Path:
    py = path / "bin" / "python"
    if not (path / "bin" / "onnx2tf").exists():
        venv.create(path, with_pip=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *TF_PACKAGES], check=True)
    return path / "bin" / "onnx2tf"


def face_calibration(npz: Path, n: int = 256) -> np.ndarray:
    from emomusic.face.preprocess import align_face, crop_locator, locate_in_crop, standardise

    d = np.load(npz)
    idx = np.flatnonzero(d["split"] == "train")
    pick = np.random.default_rng(0).choice(idx, n, replace=False)
    locator = crop_locator()
    return standardise([align_face(img, *locate_in_crop(locator, img)) for img in d["images"][pick]])


def convert(onnx2tf: Path, onnx_path: Path, calib_nchw: np.ndarray, out_dir: Path, stem: str) -> None:
    work = Path(tempfile.mkdtemp())
    # onnx2tf wants calibration data in its own (channels-last) layout
    calib = calib_nchw.transpose(0, 2, 3, 1) if calib_nchw.ndim == 4 else calib_nchw.transpose(0, 2, 1)
    np.save(work / "calib.npy", calib.astype(np.float32))
    zeros = "[" * (calib.ndim - 1) + "0" + "]" * (calib.ndim - 1)
    ones = zeros.replace("0", "1")
    source = work / onnx_path.name  # onnx2tf rewrites its input file; keep ours untouched
    shutil.copy(onnx_path, source)
    subprocess.run([str(onnx2tf), "-i", str(source), "-o", str(work / "tf"), "-n", "-oiqt", "-qt", "per-channel",
                    "-cind", "input", str(work / "calib.npy"), zeros, ones],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.copy(work / "tf" / f"{onnx_path.stem}_float32.tflite", out_dir / f"{stem}.tflite")
    shutil.copy(work / "tf" / f"{onnx_path.stem}_integer_quant.tflite", out_dir / f"{stem}_int8.tflite")
    shutil.rmtree(work)


def check(models: Path, stem: str, calib: np.ndarray) -> None:
    from emomusic.runtime import Model

    ref = Model(models / f"{stem}.onnx").run(calib)[0]
    for suffix in ("", "_int8"):
        got = Model(models / f"{stem}{suffix}.tflite", "tflite").run(calib)[0]
        agree = float((got.argmax(1) == ref.argmax(1)).mean())
        print(f"{stem}{suffix}.tflite vs {stem}.onnx: argmax agreement {agree:.3f}, "
              f"max |logit diff| {np.abs(got - ref).max():.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=Path, default=ROOT.parent / "shared/data/faces/fer2013_ferplus_48x48.npz")
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "emomusic-tf-venv")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--only", choices=["face", "face_small"])
    args = ap.parse_args()
    onnx2tf = ensure_venv(args.venv)
    jobs = {"face": ("face_expression", lambda: face_calibration(args.faces)),
            "face_small": ("face_expression_small", lambda: face_calibration(args.faces))}
    for name, (stem, calib_fn) in jobs.items():
        if args.only and name != args.only:
            continue
        calib = calib_fn()
        convert(onnx2tf, args.models / f"{stem}.onnx", calib, args.models, stem)
        check(args.models, stem, calib)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
