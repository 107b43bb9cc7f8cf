"""Evaluate the shipped models the way the daemon runs them; last stdout line is one JSON object.

    python scripts/evaluate.py faces --npz FILE [--detect] [--backend onnxruntime|tflite] [--fp32] [--classifier small]
    python scripts/evaluate.py faces --npz ../shared/data/faces/fer2013_ferplus_48x48.npz \\
        --split valid --target ferplus|fer2013
    python scripts/evaluate.py voice --labels DIR/labels.csv [--adapt] [--feedback N] [--seed N]
    python scripts/evaluate.py scenario --dir DIR     (a scenario from scripts/make_scenario.py)
    python scripts/evaluate.py music --labels FILE.csv [--jobs 2]
    python scripts/evaluate.py story FILE.jsonl  (a replay of the sample story: exit 1 if a scene is unclear)

A music CSV has at least ``path,quadrant`` (Russell quadrant 1-4: 1 = +valence +arousal, 2 = -valence
+arousal, 3 = -valence -arousal, 4 = +valence -arousal; paths relative to the CSV). Each file takes the
library's exact placement path (music.placement.place_file: the middle 20 s at 16 kHz, the features,
the model); a file that cannot be analysed counts as wrong and is reported as unplaced. Scores:
quadrant accuracy and the sign agreement of valence and arousal; ``confusion`` rows are the true
quadrant, columns the placed one (0 = unplaced).

A voice CSV has at least ``path,emotion`` (paths relative to the CSV; any format and sample rate
soundfile reads). Each file takes the daemon's path: resample to 16 kHz mono, VAD segmentation,
2 s windows, the encoder and head, the mean over the file's windows; a file without a voiced window
counts as wrong and is reported as no_speech. With ``--adapt`` the daemon's speaker adaptation runs:
per speaker (the CSV's ``speaker`` column; all files are one speaker without it) the files are
streamed in a seeded shuffled order and each is scored *before* the adapter learns from it. With
``--feedback N`` a listener who corrects the daemon is simulated (scripts/feedback_sim.py): per speaker,
N clips of each emotion (seeded choice) go in as "I feel <emotion>" and the speaker's other clips are
scored before, after the bias calibration the face uses ("after"), and after the voice's own per-voice
update (emomusic.voice.personal, "personal": what the daemon does; add --adapt, as the daemon runs).

A faces npz holds ``images`` (uint8, (N,H,W) gray or (N,H,W,3) BGR) and ``labels`` (strings; canonical
names or FER2013/corpus spellings such as fear, surprise, happiness). The prediction is the argmax
over the classes that occur in the labels. With ``--detect`` the face detector runs first and the
largest face is classified; an image without a face counts as wrong and is reported as no_face.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.labels import normalize_label  # noqa: E402

FERPLUS_ORDER = ("neutral", "happy", "surprised", "sad", "angry", "disgust", "fearful", "contempt")


def summarize(truth: list[str], pred: list[str | None], labels: list[str], missing_key: str) -> dict[str, Any]:
    """Accuracy, macro recall, per-class recall and confusion; a None prediction is always wrong."""
    n = len(truth)
    correct = sum(t == p for t, p in zip(truth, pred, strict=True))
    confusion = {t: {p: 0 for p in [*labels, "none"]} for t in labels}
    for t, p in zip(truth, pred, strict=True):
        confusion[t][p or "none"] += 1
    recall = {t: (confusion[t][t] / max(1, sum(confusion[t].values()))) for t in labels}
    return {
        "n": n,
        "accuracy": round(correct / max(1, n), 4),
        "macro_recall": round(float(np.mean(list(recall.values()))) if recall else 0.0, 4),
        "per_class_recall": {k: round(v, 4) for k, v in recall.items()},
        "confusion": confusion,
        missing_key: sum(p is None for p in pred),
        "labels": labels,
    }


def load_faces(args: argparse.Namespace) -> tuple[np.ndarray, list[str]]:
    d = np.load(args.npz, allow_pickle=False)
    if "labels" in d.files:
        raw = [str(x) for x in d["labels"]]
        labels = [normalize_label(x) for x in raw]
        bad = sorted({r for r, lab in zip(raw, labels, strict=True) if lab is None})
        if bad:
            raise SystemExit(f"{args.npz}: labels: unknown emotion names {bad}")
        return d["images"], [str(lab) for lab in labels]
    if "ferplus_votes" not in d.files:
        raise SystemExit(f"{args.npz}: expected keys images+labels, or the shared FER2013/FER+ npz")
    m = d["split"] == args.split
    images = d["images"][m]
    if args.target == "fer2013":
        names = [str(n) for n in d["fer2013_label_names"]]
        return images, [str(normalize_label(names[i])) for i in d["fer2013_label"][m]]
    votes = d["ferplus_votes"][m]
    major = votes.argmax(1)
    keep = (votes[:, 0] != 255) & (major < 8)
    return images[keep], [FERPLUS_ORDER[i] for i in major[keep]]


def eval_faces(args: argparse.Namespace) -> dict[str, Any]:
    from emomusic.face.analyzer import ExpressionClassifier
    from emomusic.face.detector import in_photo, make_detector
    from emomusic.face.preprocess import align_face, crop_locator, locate_in_crop

    models = Path(args.models)
    images, truth = load_faces(args)
    labels = sorted(set(truth), key=FERPLUS_ORDER.index)
    clf = ExpressionClassifier(models, args.backend, "fp32" if args.fp32 else "int8", size=args.classifier)
    detector = make_detector(args.detector, args.backend, models_dir=models) if args.detect else None
    # a pre-cropped photo is located and aligned exactly as the training photos were
    locator = crop_locator(args.backend, models)
    idx = [clf.labels.index(lab) for lab in labels]
    preds: list[str | None] = []
    batch: list[np.ndarray] = []
    slots: list[int] = []
    for img in images:
        if detector is not None:
            bgr = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
            dets = in_photo(detector, bgr)  # each photo alone, as emomusic analyze reads it
            if not dets:
                preds.append(None)
                continue
            crop = align_face(bgr, dets[0].box, dets[0].keypoints)
        else:
            crop = align_face(img, *locate_in_crop(locator, img))
        slots.append(len(preds))
        preds.append(None)
        batch.append(crop)
    for start in range(0, len(batch), 256):
        probs = clf.classify(batch[start : start + 256])[:, idx]
        for k, row in enumerate(probs):
            preds[slots[start + k]] = labels[int(row.argmax())]
    return summarize(truth, preds, labels, "no_face")


def eval_voice(args: argparse.Namespace) -> dict[str, Any]:
    import csv

    from emomusic.audio import read_audio_file
    from emomusic.voice.analyzer import VoiceClassifier
    from emomusic.voice.vad import speech_windows

    base = args.labels.parent
    with open(args.labels, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "emotion"} <= set(rows[0]):
        raise SystemExit(f"{args.labels}: expected a CSV with at least the columns path,emotion")
    truth = []
    for i, row in enumerate(rows, start=2):
        label = normalize_label(row["emotion"])
        if label is None:
            raise SystemExit(f"{args.labels}:{i}: emotion: unknown emotion name {row['emotion']!r}")
        truth.append(label)
    clf = VoiceClassifier(Path(args.models), adaptation=args.adapt)
    labels = [lab for lab in clf.labels if lab in set(truth)]
    idx = [clf.labels.index(lab) for lab in labels]
    preds: list[str | None] = [None] * len(rows)
    probs_of: list[np.ndarray | None] = [None] * len(rows)  # the model's probabilities, for --feedback
    inputs_of: list[np.ndarray | None] = [None] * len(rows)  # the head's inputs, for --feedback
    # --adapt: each speaker's files stream through the daemon's adaptation in a seeded shuffled
    # order, each scored before the adapter learns from it; a fresh adapter per speaker
    speakers: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        speakers.setdefault(row.get("speaker") or "room", []).append(i)
    rng = np.random.default_rng(args.seed)
    for members in speakers.values():
        if clf.adapter is not None:
            clf.adapter.voices = []
        for i in (rng.permutation(members) if args.adapt else members):
            windows = speech_windows(read_audio_file(base / rows[i]["path"]))
            if windows:
                probs_of[i] = clf.classify([w.samples for w in windows]).mean(0)
                inputs_of[i] = clf.inputs
                preds[i] = labels[int(probs_of[i][idx].argmax())]
    out = summarize(truth, preds, labels, "no_speech")
    if args.feedback:
        from feedback_sim import simulate

        told = {spk: [(clf.labels.index(truth[i]), probs_of[i], inputs_of[i]) for i in members]
                for spk, members in speakers.items()}
        out["feedback"] = simulate(told, clf.labels, args.feedback, args.seed, classes=idx, head=clf.head)
    return out


def label_at(rows: list[dict[str, Any]], key: Any) -> Any:
    """A step function over the replay: the value of ``key(row)`` of the last row at or before t."""
    times = np.array([r["t"] for r in rows])
    values = [key(r) for r in rows]

    def at(t: float) -> Any:
        i = int(np.searchsorted(times, t, side="right")) - 1
        return values[i] if i >= 0 else None

    return at


def scenario_metrics(rows: list[dict[str, Any]], truth: list[tuple[float, float, str]],
                     settle_s: float = 3.0, step: float = 0.1) -> dict[str, Any]:
    """Time-based accuracy (after each segment's first ``settle_s``), reaction time and flips."""
    fused = label_at(rows, lambda r: r["emotion"])
    per_mod = {m: label_at(rows, lambda r, m=m: r["modalities"].get(m, {}).get("emotion")) for m in ("face", "voice")}
    hits = {"fused": 0, "face": 0, "voice": 0}
    n = 0
    reactions: list[float | None] = []
    voice_first: list[float | None] = []
    voice_right: list[float | None] = []
    for start, end, emotion in truth:
        for t in np.arange(start + settle_s, end, step):
            n += 1
            hits["fused"] += fused(t) == emotion
            for m, f in per_mod.items():
                hits[m] += f(t) == emotion
        reached = next((t for t in np.arange(start, end, step) if fused(t) == emotion), None)
        reactions.append(None if reached is None else round(float(reached - start), 2))
        # the voice alone: its first reading of this segment's speech, and its first right one
        heard = [r for r in rows if start <= r["t"] < end and "voice" in r["modalities"]
                 and r["t"] - r["modalities"]["voice"].get("age_s", 0.0) >= start]
        first = next((r["t"] for r in heard), None)
        right = next((r["t"] for r in heard if r["modalities"]["voice"].get("emotion") == emotion), None)
        voice_first.append(None if first is None else round(float(first - start), 2))
        voice_right.append(None if right is None else round(float(right - start), 2))
    labels = [r["emotion"] for r in rows if rows and r["t"] <= truth[-1][1]]
    flips = sum(a != b for a, b in zip(labels, labels[1:], strict=False))
    truth_changes = sum(a[2] != b[2] for a, b in zip(truth, truth[1:], strict=False))
    minutes = (truth[-1][1] - truth[0][0]) / 60
    reached_times = [r for r in reactions if r is not None]
    after_change = [r for (a, b), r in zip(zip(truth, [None, *truth], strict=False), reactions, strict=True)
                    if b is not None and b[2] != a[2] and r is not None]
    return {
        "fused_accuracy": round(hits["fused"] / max(1, n), 4),
        "face_accuracy": round(hits["face"] / max(1, n), 4),
        "voice_accuracy": round(hits["voice"] / max(1, n), 4),
        "median_reaction_s": _median(reached_times),
        "p90_reaction_s": round(float(np.percentile(reached_times, 90)), 2) if reached_times else None,
        "median_reaction_after_change_s": _median(after_change),
        "segments_never_reached": sum(r is None for r in reactions),
        "flips_per_min": round(flips / minutes, 2),
        "flips_beyond_truth_per_min": round(max(0, flips - truth_changes) / minutes, 2),
        "reactions_s": reactions,
        "voice_first_reading_s": voice_first,
        "voice_first_right_s": voice_right,
    }


def eval_scenario(args: argparse.Namespace) -> dict[str, Any]:
    """Each scenario's metrics on a line of its own; the result pools them (time-weighted accuracy,
    the median over every segment's reaction)."""
    import tempfile

    from emomusic.cli.replay import ReplayError, read_truth, run_replay
    from emomusic.config import load_config

    cfg = load_config(args.config) if args.config else load_config(None, env={})
    per_dir = []
    for d in args.dir:
        out = Path(tempfile.mkdtemp()) / "replay.jsonl"
        try:
            run_replay(cfg, str(d / "video.avi"), str(d / "audio.wav"), out, fast=True)
        except ReplayError as e:
            raise SystemExit(f"{d}: {e}") from None
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        if not rows:
            raise SystemExit(f"{d}: the replay produced no fused state")
        m = scenario_metrics(rows, read_truth(d / "truth.csv"))
        per_dir.append(m)
        if len(args.dir) > 1:
            print(json.dumps({"dir": str(d), **m}), flush=True)
    if len(per_dir) == 1:
        return per_dir[0]
    truths = [read_truth(d / "truth.csv") for d in args.dir]
    changes = [[b[2] != a[2] for a, b in zip([None, *t], t, strict=False) if a is not None] for t in truths]
    reactions = [r for m in per_dir for r in m["reactions_s"] if r is not None]
    after = [r for m, ch in zip(per_dir, changes, strict=True) for r, c in zip(m["reactions_s"][1:], ch, strict=True)
             if c and r is not None]
    pooled = {k: round(float(np.mean([m[k] for m in per_dir])), 4)
              for k in ("fused_accuracy", "face_accuracy", "voice_accuracy", "flips_per_min",
                        "flips_beyond_truth_per_min")}
    return {"scenarios": len(per_dir), **pooled,
            "median_reaction_s": _median(reactions),
            "p90_reaction_s": round(float(np.percentile(reactions, 90)), 2) if reactions else None,
            "median_reaction_after_change_s": _median(after),
            "segments_never_reached": sum(m["segments_never_reached"] for m in per_dir),
            **{f"voice_median_{k}": _median([v for m in per_dir for v in m[f"voice_{k}"] if v is not None])
               for k in ("first_reading_s", "first_right_s")}}


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 2) if values else None


def _place(path: str) -> tuple[float, float] | None:
    from emomusic.music.analysis import AnalysisError
    from emomusic.music.placement import place_file

    try:
        return place_file(Path(path))[0]
    except AnalysisError as e:
        print(f"{path}: not placed: {e}", file=sys.stderr)
        return None


def eval_music(args: argparse.Namespace) -> dict[str, Any]:
    import csv
    from concurrent.futures import ProcessPoolExecutor

    with open(args.labels, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "quadrant"} <= set(rows[0]):
        raise SystemExit(f"{args.labels}: expected a CSV with columns path,quadrant")
    truth = [int(r["quadrant"]) for r in rows]
    if not set(truth) <= {1, 2, 3, 4}:
        raise SystemExit(f"{args.labels}: quadrant must be 1, 2, 3 or 4")
    paths = [str((args.labels.parent / r["path"]).resolve()) for r in rows]
    with ProcessPoolExecutor(args.jobs) as pool:
        placed = list(pool.map(_place, paths, chunksize=4))
    quad = [0 if p is None else (1 if p[1] >= 0 and p[0] >= 0 else 2 if p[1] >= 0 else 3 if p[0] < 0 else 4)
            for p in placed]
    confusion = [[sum(1 for t, q in zip(truth, quad, strict=True) if t == i and q == j) for j in range(5)]
                 for i in range(1, 5)]
    v_true = [t in (1, 4) for t in truth]
    a_true = [t in (1, 2) for t in truth]
    n = len(rows)
    return {
        "n": n,
        "quadrant_accuracy": round(sum(t == q for t, q in zip(truth, quad, strict=True)) / n, 4),
        "valence_accuracy": round(sum(p is not None and (p[0] >= 0) == v for p, v in zip(placed, v_true,
                                                                                      strict=True)) / n, 4),
        "arousal_accuracy": round(sum(p is not None and (p[1] >= 0) == a for p, a in zip(placed, a_true,
                                                                                      strict=True)) / n, 4),
        "unplaced": quad.count(0),
        "confusion": confusion,
    }


def eval_story(args: argparse.Namespace) -> dict[str, Any]:
    """Each scene of the sample story in a replay (emomusic replay --jsonl): its lead over the runner-up."""
    from emomusic.sources.samples import STORY_MARGIN, scene_readings

    rows = [json.loads(line) for line in args.jsonl.read_text().splitlines() if line.strip()]
    scenes = [{"scene": r.scene.shows, "states": r.states, "share": round(r.share, 3), "runner_up": r.runner_up,
               "margin": round(r.margin, 3)} for r in scene_readings(rows)]
    return {"margin_needed": STORY_MARGIN, "scenes": scenes,
            "clear": all(s["margin"] >= STORY_MARGIN and s["states"] >= 10 for s in scenes)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("faces", help="facial expression classifier")
    f.add_argument("--npz", type=Path, required=True)
    f.add_argument("--detect", action="store_true", help="run the face detector first (largest face)")
    f.add_argument("--detector", choices=["both", "full", "short"], default="both")
    f.add_argument("--split", default="valid", help="with the shared npz: which split")
    f.add_argument("--target", choices=["ferplus", "fer2013"], default="ferplus", help="with the shared npz")
    v = sub.add_parser("voice", help="speech-emotion classifier")
    v.add_argument("--labels", type=Path, required=True, help="CSV with path,emotion[,speaker]")
    v.add_argument("--adapt", action="store_true", help="stream each speaker through the on-device adaptation")
    v.add_argument("--seed", type=int, default=0, help="the shuffle with --adapt, the choice with --feedback")
    v.add_argument("--feedback", type=int, default=0, metavar="N",
                   help="simulate a listener who tells the daemon N clips per emotion (per speaker)")
    v.add_argument("--models", default=str(ROOT / "models"))
    sc = sub.add_parser("scenario", help="the whole daemon on a scenario from make_scenario.py")
    sc.add_argument("--dir", type=Path, nargs="+", required=True, help="one or more scenario directories")
    sc.add_argument("--config", help="a config.toml to use (default: built-in defaults)")
    mu = sub.add_parser("music", help="music placement (valence/arousal of songs)")
    mu.add_argument("--labels", type=Path, required=True, help="CSV with path,quadrant")
    mu.add_argument("--jobs", type=int, default=2, help="processes analysing audio")
    st = sub.add_parser("story", help="the sample story in a replay: each scene's lead over its runner-up")
    st.add_argument("jsonl", type=Path, help="emomusic replay --jsonl output of the sample media")
    f.add_argument("--backend", choices=["onnxruntime", "tflite"], default="onnxruntime")
    f.add_argument("--fp32", action="store_true", help="the fp32 model instead of int8")
    f.add_argument("--classifier", choices=["large", "small"], default="large", help="which expression CNN")
    f.add_argument("--models", default=str(ROOT / "models"))
    args = ap.parse_args(argv)
    result = {"faces": eval_faces, "voice": eval_voice, "scenario": eval_scenario,
              "music": eval_music, "story": eval_story}[args.what](args)
    print(json.dumps(result))
    return 0 if result.get("clear", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
