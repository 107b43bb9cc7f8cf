"""Fit the music placement model (audio features -> valence and arousal) on the 4Q emotion dataset.

    pip install -e '.[train]'          # scikit-learn
    python scripts/train_music.py      # ../shared/data/music/4q/labels.csv

Every clip goes through the daemon's own analysis (``emomusic.music.analysis.analyze_file``: the
middle 30 s, 16 kHz, numpy features); the vectors are cached in .cache/ (git-ignored). Two
L2-regularised logistic regressions, one for the sign of valence and one for the sign of arousal,
on standardised features. The regularisation strength is chosen by 5-fold cross-validation
*grouped by artist* (no artist in both the training and the test fold), scored on quadrant accuracy.
Writes models/music_placement.json: feature names, the standardisation, both weight vectors and the
cross-validation report. At run time it is a dot product (``emomusic.music.placement``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.music.analysis import analyze_file, feature_names  # noqa: E402
from emomusic.music.placement import Z_CLIP  # noqa: E402


def clip_z(z: np.ndarray) -> np.ndarray:
    """Standardised features clipped as the daemon clips them (an odd recording must not dominate)."""
    return np.clip(z, -Z_CLIP, Z_CLIP)

DATA = ROOT.parent / "shared/data/music/4q"


def load(labels: Path, jobs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features (cached), valence sign, arousal sign, artist of every clip."""
    with open(labels, newline="") as f:
        rows = list(csv.DictReader(f))
    cache = ROOT / ".cache" / "music_features_4q.npz"
    names = feature_names()
    if cache.exists() and list(np.load(cache)["names"]) == names and len(np.load(cache)["x"]) == len(rows):
        x = np.load(cache)["x"]
    else:
        t0 = time.time()
        with ProcessPoolExecutor(jobs) as pool:
            x = np.stack(list(pool.map(analyze_file, [labels.parent / r["path"] for r in rows], chunksize=8)))
        print(f"analysed {len(rows)} clips in {time.time() - t0:.0f} s", flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=x, names=np.array(names))
    v = np.array([int(r["valence_sign"]) > 0 for r in rows])
    a = np.array([int(r["arousal_sign"]) > 0 for r in rows])
    return x, v, a, np.array([r["artist"] for r in rows])


def quadrant(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where(a, np.where(v, 1, 2), np.where(v, 4, 3))


def cross_validate(x: np.ndarray, v: np.ndarray, a: np.ndarray, groups: np.ndarray, c: float,
                   folds: int = 5) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    pv, pa = np.zeros(len(x), bool), np.zeros(len(x), bool)
    for tr, te in GroupKFold(folds).split(x, v, groups):
        for y, out in ((v, pv), (a, pa)):
            model = make_pipeline(StandardScaler(), FunctionTransformer(clip_z), LogisticRegression(C=c, max_iter=2000))
            out[te] = model.fit(x[tr], y[tr]).predict(x[te])
    return {"C": c, "quadrant_accuracy": float((quadrant(pv, pa) == quadrant(v, a)).mean()),
            "valence_accuracy": float((pv == v).mean()), "arousal_accuracy": float((pa == a).mean())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, default=DATA / "labels.csv")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "music_placement.json")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, v, a, artists = load(args.labels, args.jobs)
    print(f"{len(x)} clips, {len(set(artists))} artists, {x.shape[1]} features", flush=True)
    grid = [cross_validate(x, v, a, artists, c) for c in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)]
    for g in grid:
        print(f"C={g['C']:<6} quadrant {g['quadrant_accuracy']:.3f}  valence {g['valence_accuracy']:.3f}  "
              f"arousal {g['arousal_accuracy']:.3f}", flush=True)
    best = max(grid, key=lambda g: g["quadrant_accuracy"])
    scaler = StandardScaler().fit(x)
    z = clip_z(scaler.transform(x))
    heads = {}
    for name, y in (("valence", v), ("arousal", a)):
        m = LogisticRegression(C=best["C"], max_iter=2000).fit(z, y)
        heads[name] = {"weights": [round(float(w), 6) for w in m.coef_[0]], "bias": round(float(m.intercept_[0]), 6)}
    import json

    args.out.write_text(json.dumps({
        "features": feature_names(),
        "mean": [round(float(m), 6) for m in scaler.mean_],
        "scale": [round(float(s), 6) for s in scaler.scale_],
        **heads,
        "trained_on": f"4Q audio emotion dataset, {len(x)} clips of {len(set(artists))} artists (the half "
                      "shipped in ../shared; research use)",
        "selected_by": "5-fold cross-validation grouped by artist, quadrant accuracy",
        "cross_validation": grid,
        "selected": best,
    }, indent=1) + "\n")
    print(f"wrote {args.out}: C={best['C']}, grouped-CV quadrant {best['quadrant_accuracy']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
