"""Build models/music_tagger_int8.onnx from musicnn's two taggers (Pons & Serra; ISC licence).

    python scripts/build_music_model.py [--venv DIR] [--check-dir DIR] [--keep-fp32 FILE]

The PyPI wheel ``musicnn==0.1.0`` ships the TensorFlow 1 checkpoints of its taggers. This script
downloads the wheel (``pip download --no-deps``: musicnn itself, which pulls in TensorFlow and librosa, is
never installed), builds a throwaway venv (``--venv``, default under /tmp) with tensorflow-cpu 2.15.1
(numpy < 2) and tf2onnx, and there restores both checkpoints with the wheel's own ``models.py`` side by
side in one graph (MSD_musicnn, trained on the Million Song Dataset's last.fm tags, and MTT_musicnn, on
MagnaTagATune's), freezes it (3 s patches of 187 log-mel frames x 96 bands in; each model's 200-wide
penultimate layer and 50 tag probabilities out, concatenated) and exports it to ONNX: one file, one
session. The ONNX model's weights are then stored as int8
(weight-only, one scale per output channel: the arithmetic stays float32, so the file shrinks to a quarter
and every CPU computes the same), and both are checked against TensorFlow on the same patches: the
daemon's own log-mel front end (``emomusic.music.embedding``) of synthesized music and, with
``--check-dir``, of real recordings. The maximum absolute differences go to models/music_tagger.json and
the model card. The daemon never imports TensorFlow.
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
sys.path.insert(0, str(ROOT / "scripts"))

WHEEL = "musicnn==0.1.0"
TF_PACKAGES = ["tensorflow-cpu==2.15.1", "numpy<2", "ml_dtypes~=0.3.1", "tf2onnx==1.16.1", "onnx==1.16.2",
               "protobuf<4.24"]
MODELS = "MSD_musicnn,MTT_musicnn"
REFERENCE_S = 9.5  # three patches of a synthesized piece
MTT_LABELS = ["guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
              "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals",
              "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft",
              "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal",
              "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral"]
MSD_LABELS = ["rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
              "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul",
              "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies",
              "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop",
              "70s", "party", "country", "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal",
              "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy"]

# Runs inside the TensorFlow venv: restore, freeze, export; then TensorFlow's outputs on the check patches.
INNER = r"""
import sys, numpy as np, tensorflow as tf, tf2onnx, onnx
tf.compat.v1.disable_eager_execution()
wheel, names, onnx_out, patches_in, ref_out = sys.argv[1:6]
sys.path.insert(0, wheel)
from musicnn import models
x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96], name="logmel")
sess = tf.compat.v1.Session()
embeddings, tags = [], []
for name in names.split(","):
    with tf.compat.v1.variable_scope(name):
        logits, _, _, _, _, _, _, _, penultimate = models.define_model(x, False, name, 50)
    embeddings.append(penultimate)
    tags.append(tf.nn.sigmoid(logits))
    own = {v.op.name[len(name) + 1:]: v for v in tf.compat.v1.global_variables() if v.op.name.startswith(name + "/")}
    tf.compat.v1.train.Saver(own).restore(sess, f"{wheel}/musicnn/{name}/")
    print(f"restored {name}: {sum(int(np.prod(v.shape)) for v in own.values())} parameters")
emb = tf.concat(embeddings, 1, name="embedding")
tag = tf.concat(tags, 1, name="tags")
frozen = tf.compat.v1.graph_util.convert_variables_to_constants(sess, sess.graph_def, ["embedding", "tags"])
model, _ = tf2onnx.convert.from_graph_def(frozen, input_names=["logmel:0"], output_names=["embedding:0", "tags:0"],
                                          opset=17)
rename = {"logmel:0": "logmel", "embedding:0": "embedding", "tags:0": "tags"}
for node in model.graph.node:
    node.input[:] = [rename.get(n, n) for n in node.input]
    node.output[:] = [rename.get(n, n) for n in node.output]
for v in [*model.graph.input, *model.graph.output]:
    v.name = rename.get(v.name, v.name)
onnx.save(model, onnx_out)
p = np.load(patches_in)
e, t = sess.run([emb, tag], {x: p})
np.savez(ref_out, embedding=e, tags=t)
"""


def ensure_venv(path: Path) -> Path:
    py = path / "bin" / "python"
    if not (path / "bin" / "tf2onnx").exists() and not py.exists():
        venv.create(path, with_pip=True)
    check = subprocess.run([str(py), "-c", "import tensorflow, tf2onnx"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", *TF_PACKAGES], check=True)
    return py


def check_patches(check_dir: Path | None) -> np.ndarray:
    """3 s log-mel patches from the daemon's own front end: synthesized pieces, and real recordings."""
    from emomusic.music.analysis import load_excerpt
    from emomusic.music.demo import DEMO_PIECES, synth_music
    from emomusic.music.embedding import log_mel, patches

    out = []
    for i, (_title, bpm, major, bright, *_rest) in enumerate(DEMO_PIECES[::4]):  # the first is the reference
        out.append(patches(log_mel(synth_music(REFERENCE_S, bpm, major, bright, seed=i)))[:3])
    for path in sorted(check_dir.rglob("*.*"))[:8] if check_dir else []:
        try:
            out.append(patches(log_mel(load_excerpt(path)))[:3])
        except Exception as e:  # noqa: BLE001 - a file that does not decode is just not a check clip
            print(f"skipping {path}: {e}")
    return np.concatenate(out).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "emomusic-tf-venv-musicnn")
    ap.add_argument("--check-dir", type=Path, help="real recordings to check the export on (e.g. the 4Q clips)")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--keep-fp32", type=Path, metavar="FILE", help="also keep the fp32 ONNX model here (to "
                    "compare the placement on it: scripts/train_music.py --tagger FILE)")
    args = ap.parse_args()

    import onnxruntime as ort
    from build_voice_encoder import weight_only_int8
    from model_export import download_wheel, wheel_license, write_metadata

    py = ensure_venv(args.venv)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with download_wheel(WHEEL, tmp) as z:
            z.extractall(tmp / "wheel")
            (args.out / "LICENSE.musicnn.txt").write_bytes(wheel_license(z))
        fp32, int8 = tmp / "tagger.onnx", args.out / "music_tagger_int8.onnx"
        check = check_patches(args.check_dir)
        np.save(tmp / "patches.npy", check)
        (tmp / "inner.py").write_text(INNER)
        subprocess.run([str(py), str(tmp / "inner.py"), str(tmp / "wheel"), MODELS, str(fp32),
                        str(tmp / "patches.npy"), str(tmp / "ref.npz")], check=True)
        weight_only_int8(fp32, int8)
        ref = np.load(tmp / "ref.npz")
        diffs = {}
        for name, path in (("fp32", fp32), ("int8", int8)):
            emb, tags = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"logmel": check})
            diffs[name] = {"embedding": float(np.abs(emb - ref["embedding"]).max()),
                           "tags": float(np.abs(tags - ref["tags"]).max())}
            print(f"{name} ONNX vs TensorFlow on {len(check)} patches: max |diff| embedding "
                  f"{diffs[name]['embedding']:.2e}, tags {diffs[name]['tags']:.2e}")
        if diffs["fp32"]["tags"] > 1e-3 or diffs["int8"]["tags"] > 0.05:
            raise SystemExit("the export drifted from TensorFlow; not kept")
        write_metadata(args.out / "music_tagger.json", {
            "source": f"{WHEEL}: MSD_musicnn (Million Song Dataset, last.fm tags) and MTT_musicnn (MagnaTagATune), "
                      "Pons & Serra 2019, side by side",
            "licence": "ISC (LICENSE.musicnn.txt)",
            "input": [187, 96], "input_meaning": "3 s of log10(1 + 10^4 mel power), 16 kHz, n_fft 512, hop 256",
            "outputs": {"embedding": 400, "tags": len(MSD_LABELS) + len(MTT_LABELS)},
            "tags": MSD_LABELS + MTT_LABELS,
            "export_check": {"patches": int(len(check)), "max_abs_diff": diffs},
            # TensorFlow's tags for a synthesized piece through the daemon's own front end: a test holds
            # the shipped model to them (tests/test_music_model.py)
            "reference": {"piece": 0, "seconds": REFERENCE_S,
                          "tags": [round(float(t), 5) for t in ref["tags"][:3].mean(axis=0)]},
        })
        if args.keep_fp32:
            shutil.copy(fp32, args.keep_fp32)
        print(f"wrote {int8} ({int8.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
