"""The MFCC-CNN speech-emotion baseline, trained speaker-independently (ONNX fp32 + int8).

No longer shipped: the daemon reads emotion from the voice encoder (scripts/train_voice_head.py),
which transfers better to new voices and corpora; models/README.md compares the two. This script
stays so that comparison can be repeated; it writes to .cache/voice_cnn_baseline by default.

    pip install -e '.[train]'
    python scripts/train_voice.py --speech ../shared/data/speech

Data: RAVDESS actors 01-20 (8 emotions) and EMO-DB (boredom dropped: it has no RAVDESS
counterpart, and calling it "calm" would teach the model that calm sounds bored). Every clip goes
through the daemon's own path — resample to 16 kHz, WebRTC VAD segmentation, 2 s windows
(emomusic.voice.vad.speech_windows) and MFCCs (emomusic.voice.mfcc.voice_features) — so the features cannot
drift from what the daemon computes. Augmented copies (noise, gain, speed/pitch, room reverb) go
through the same path.

Model selection: 5-fold leave-speakers-out cross-validation over the RAVDESS actors (4 actors per
fold, both genders), never a clip split; EMO-DB is always in training. Reports mean ± std accuracy
per configuration (fp32 and int8 through onnxruntime), per-class recall, and a leave-corpus-out
check (train on RAVDESS only, test on EMO-DB). The chosen configuration is then trained on all
speakers and written to --out as voice_emotion{,_int8}.onnx with voice_emotion.json.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "scripts"))

from model_export import export_onnx, quantize_int8, write_metadata  # noqa: E402

from emomusic.audio import read_audio_file  # noqa: E402
from emomusic.labels import VOICE_LABELS, normalize_label  # noqa: E402
from emomusic.voice.mfcc import N_MFCC, voice_features  # noqa: E402
from emomusic.voice.vad import RATE, speech_windows  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "w48": {"width": 48, "dropout": 0.3, "epochs": 30},
    "w64": {"width": 64, "dropout": 0.4, "epochs": 30},
    "w64e60": {"width": 64, "dropout": 0.4, "epochs": 60},
    "w96e60": {"width": 96, "dropout": 0.5, "epochs": 60},
    "w128e80": {"width": 128, "dropout": 0.5, "epochs": 80},
}


# -- data -------------------------------------------------------------------------------------
def load_clips(speech: Path) -> list[dict[str, Any]]:
    clips = []
    for corpus in ("ravdess", "emodb"):
        with open(speech / corpus / "labels.csv", newline="") as f:
            for row in csv.DictReader(f):
                label = normalize_label(row["emotion"])
                if label is None:  # EMO-DB boredom
                    continue
                clips.append({"path": speech / corpus / row["path"], "corpus": corpus,
                              "speaker": f"{corpus}:{row['speaker']}", "label": VOICE_LABELS.index(label)})
    return clips


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Pi's microphone in a room: speed/pitch shift, reverb, gain, background noise."""
    import soxr

    y = x.astype(np.float32) / 32768.0
    factor = rng.uniform(0.92, 1.08)  # resampling shifts pitch and tempo together
    y = soxr.resample(y, RATE, int(RATE / factor))
    if rng.random() < 0.6:
        rt60 = rng.uniform(0.15, 0.6)
        n = int(rt60 * RATE)
        rir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
        rir[0] = 1.0
        wet = np.convolve(y, rir / np.sqrt((rir**2).sum()))[: y.size]
        y = 0.5 * y + 0.5 * wet
    y *= 10 ** (rng.uniform(-8, 4) / 20)
    snr = rng.uniform(8, 35)
    noise = rng.standard_normal(y.size)
    if rng.random() < 0.5:  # pink-ish noise: integrate white noise a little
        noise = np.convolve(noise, np.ones(8) / 8, mode="same")
    sig = np.sqrt(np.mean(y**2) + 1e-10)
    y = y + noise / (np.sqrt(np.mean(noise**2)) + 1e-10) * sig * 10 ** (-snr / 20)
    return (np.clip(y, -1, 1) * 32767).astype(np.int16)


def featurize(clips: list[dict[str, Any]], copies: int, seed: int) -> dict[str, np.ndarray]:
    """Windows of every clip (clean, plus ``copies`` augmented versions) through the daemon's path."""
    rng = np.random.default_rng(seed)
    feats, clip_ids, variants = [], [], []
    no_speech = 0
    for i, clip in enumerate(clips):
        audio = read_audio_file(clip["path"])
        for v in range(copies + 1):
            x = audio if v == 0 else augment(audio, rng)
            windows = speech_windows(x)
            if v == 0 and not windows:
                no_speech += 1
            for w in windows:
                feats.append(voice_features(w.samples))
                clip_ids.append(i)
                variants.append(v)
        if (i + 1) % 200 == 0:
            print(f"  features: {i + 1}/{len(clips)} clips", flush=True)
    print(f"  {len(feats)} windows; {no_speech} clean clips without speech windows", flush=True)
    return {"x": np.stack(feats).astype(np.float32), "clip": np.array(clip_ids), "variant": np.array(variants)}


# -- model ------------------------------------------------------------------------------------
def build_model(width: int, dropout: float):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    def cbr(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm1d(cout),
                nn.ReLU(inplace=True)]

    w = width

    class VoiceNet(nn.Module):
        """1-D CNN over time with MFCCs as channels; mean+max pooled over time."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                *cbr(N_MFCC, w, 5, stride=2), *cbr(w, w, 5), nn.MaxPool1d(2),
                *cbr(w, 2 * w, 3), nn.MaxPool1d(2), *cbr(2 * w, 2 * w, 3),
            )
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, len(VOICE_LABELS)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.body(x)
            return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))

    return VoiceNet()


def spec_augment(x, gen):  # type: ignore[no-untyped-def]
    """Mask a band of up to 5 coefficients and up to 30 frames of time per example (vectorised)."""
    import torch

    n, c, t = x.shape
    f0 = torch.randint(0, c - 6, (n, 1), generator=gen)
    fw = torch.randint(0, 6, (n, 1), generator=gen)
    t0 = torch.randint(0, t - 30, (n, 1), generator=gen)
    tw = torch.randint(0, 30, (n, 1), generator=gen)
    fi, ti = torch.arange(c)[None, :], torch.arange(t)[None, :]
    fmask = (fi >= f0) & (fi < f0 + fw)
    tmask = (ti >= t0) & (ti < t0 + tw)
    return x * ~(fmask[:, :, None] | tmask[:, None, :])


def train(x: np.ndarray, y: np.ndarray, cfg: dict[str, Any], epochs: int, seed: int):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(cfg["width"], cfg["dropout"])
    counts = np.bincount(y, minlength=len(VOICE_LABELS)).astype(np.float32)
    class_w = torch.tensor(counts.sum() / np.maximum(counts, 1) / len(VOICE_LABELS))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3)
    batch = 64
    steps = epochs * max(1, len(x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_w, label_smoothing=0.1)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(len(xt) // batch):
            idx = perm[i * batch : (i + 1) * batch]
            loss = loss_fn(model(spec_augment(xt[idx], gen)), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def onnx_probs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"input": x[i : i + 256]})[0] for i in range(0, len(x), 256)])
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def clip_scores(probs: np.ndarray, clip_of_window: np.ndarray, clip_ids: np.ndarray, labels: np.ndarray,
                classes: list[int]) -> tuple[float, np.ndarray]:
    """Clip accuracy (mean of its windows' probabilities, argmax over ``classes``); a clip without
    windows is wrong. Returns accuracy and predictions (-1 = no speech)."""
    preds = np.full(len(clip_ids), -1)
    for k, c in enumerate(clip_ids):
        m = clip_of_window == c
        if m.any():
            preds[k] = classes[int(probs[m][:, classes].mean(0).argmax())]
    return float((preds == labels).mean()), preds


def export(model, calib: np.ndarray, out_dir: Path, stem: str) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    import torch

    fp32, int8 = out_dir / f"{stem}.onnx", out_dir / f"{stem}_int8.onnx"
    export_onnx(model, torch.zeros(1, N_MFCC, calib.shape[2]), fp32)
    quantize_int8(fp32, int8, calib)
    return fp32, int8


def train_holdout(args: argparse.Namespace, data: dict[str, np.ndarray], labels: np.ndarray,
                  rav_actor: np.ndarray, t0: float) -> int:
    """One model trained without some RAVDESS actors, so a scenario built from them is unseen speech."""
    held = [int(a) for a in args.holdout_actors.split(",")]
    name = args.configs.split(",")[0]
    cfg = CONFIGS[name]
    keep = ~np.isin(rav_actor, held)[data["clip"]]
    model = train(data["x"][keep], labels[data["clip"]][keep], cfg, cfg.get("epochs", args.epochs), args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = export(model, data["x"][keep][:512], args.out, "voice_emotion")
    write_metadata(args.out / "voice_emotion.json", {
        "labels": list(VOICE_LABELS),
        "input": [N_MFCC, int(data["x"].shape[2])],
        "features": "emomusic.voice.mfcc.voice_features over emomusic.voice.vad.speech_windows (2 s windows, hop 1 s)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained_on": f"RAVDESS without actors {held} + EMO-DB, config {name} (held-out model, not shipped)",
    })
    print(f"wrote {fp32}, {int8} without actors {held}; {(time.time() - t0) / 60:.1f} min", flush=True)
    return 0


# -- main -------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speech", type=Path, default=ROOT.parent / "shared/data/speech")
    ap.add_argument("--out", type=Path, default=ROOT / ".cache" / "voice_cnn_baseline")
    ap.add_argument("--copies", type=int, default=2, help="augmented copies per clip")
    ap.add_argument("--epochs", type=int, default=30, help="for configurations that do not set their own")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--configs", default="w48,w64,w64e60,w96e60")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout-actors", default="",
                    help="e.g. 17,18,19,20: skip model selection and train the first of --configs on every clip "
                    "except these RAVDESS actors (an honest voice model for scenario evaluation; write it to "
                    "another --out, not models/)")
    args = ap.parse_args()
    if args.holdout_actors and args.out.resolve() == (ROOT / "models").resolve():
        raise SystemExit("--holdout-actors: give an --out other than models/ (the shipped model sees every actor)")

    import torch

    t0 = time.time()
    clips = load_clips(args.speech)
    labels = np.array([c["label"] for c in clips])
    corpus = np.array([c["corpus"] for c in clips])
    speaker = np.array([c["speaker"] for c in clips])
    print(f"{len(clips)} clips ({(corpus == 'ravdess').sum()} RAVDESS, {(corpus == 'emodb').sum()} EMO-DB)",
          flush=True)
    data = featurize(clips, args.copies, args.seed)
    print(f"features in {time.time() - t0:.0f} s", flush=True)
    win_clip, win_var = data["clip"], data["variant"]
    win_label = labels[win_clip]
    all_classes = list(range(len(VOICE_LABELS)))
    rav_actor = np.array([int(s.split(":")[1]) if s.startswith("ravdess") else 0 for s in speaker])

    if args.holdout_actors:
        return train_holdout(args, data, labels, rav_actor, t0)

    report: dict[str, Any] = {"configs": {}, "epochs": args.epochs, "augmented_copies": args.copies}
    tmp = Path(tempfile.mkdtemp())
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        accs, accs8, all_true, all_pred = [], [], [], []
        for fold in range(args.folds):
            test_actors = [a for a in range(1, 21) if (a - 1) % args.folds == fold]
            test_clip = np.isin(rav_actor, test_actors)
            train_win = ~test_clip[win_clip]
            test_win = test_clip[win_clip] & (win_var == 0)
            model = train(data["x"][train_win], win_label[train_win], cfg, cfg.get("epochs", args.epochs),
                          args.seed + fold)
            fp32, int8 = export(model, data["x"][train_win][:256], tmp, f"{name}_f{fold}")
            test_ids = np.flatnonzero(test_clip)
            acc, preds = clip_scores(onnx_probs(fp32, data["x"][test_win]), win_clip[test_win], test_ids,
                                     labels[test_ids], all_classes)
            acc8, _ = clip_scores(onnx_probs(int8, data["x"][test_win]), win_clip[test_win], test_ids,
                                  labels[test_ids], all_classes)
            accs.append(acc)
            accs8.append(acc8)
            all_true += list(labels[test_ids])
            all_pred += list(preds)
            print(f"{name} fold {fold} actors {test_actors}: fp32 {acc:.3f} int8 {acc8:.3f} "
                  f"[{(time.time() - t0) / 60:.1f} min]", flush=True)
        t, p = np.array(all_true), np.array(all_pred)
        recall = {VOICE_LABELS[c]: round(float((p[t == c] == c).mean()), 3) for c in all_classes}
        confusion = {VOICE_LABELS[c]: {VOICE_LABELS[k] if k >= 0 else "none": int(((t == c) & (p == k)).sum())
                                       for k in [*all_classes, -1]} for c in all_classes}
        report["configs"][name] = {
            **cfg, "fold_acc_fp32": [round(a, 4) for a in accs], "fold_acc_int8": [round(a, 4) for a in accs8],
            "mean_fp32": round(float(np.mean(accs)), 4), "std_fp32": round(float(np.std(accs)), 4),
            "mean_int8": round(float(np.mean(accs8)), 4), "std_int8": round(float(np.std(accs8)), 4),
            "per_class_recall_fp32": recall, "confusion_fp32": confusion,
        }
        print(f"{name}: fp32 {np.mean(accs):.3f} ± {np.std(accs):.3f}, int8 {np.mean(accs8):.3f} ± "
              f"{np.std(accs8):.3f}", flush=True)
    best = max(report["configs"], key=lambda k: report["configs"][k]["mean_fp32"])
    cfg = CONFIGS[best]
    report["selected"] = best

    # Leave-corpus-out: RAVDESS only for training, EMO-DB (unseen speakers and language) for testing.
    emo = corpus == "emodb"
    epochs = cfg.get("epochs", args.epochs)
    report["epochs"] = epochs
    model = train(data["x"][~emo[win_clip]], win_label[~emo[win_clip]], cfg, epochs, args.seed)
    fp32, _ = export(model, data["x"][:256], tmp, "corpus")
    test_win = emo[win_clip] & (win_var == 0)
    emo_ids = np.flatnonzero(emo)
    present = sorted(set(labels[emo_ids].tolist()))
    acc, _ = clip_scores(onnx_probs(fp32, data["x"][test_win]), win_clip[test_win], emo_ids, labels[emo_ids], present)
    report["emodb_unseen_corpus"] = {"accuracy": round(acc, 4), "classes": [VOICE_LABELS[c] for c in present],
                                     "chance": round(1 / len(present), 4)}
    print(f"leave-corpus-out (train RAVDESS, test EMO-DB, {len(present)} classes): {acc:.3f}", flush=True)

    # Final model: every speaker.
    model = train(data["x"], win_label, cfg, epochs, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    fp32, int8 = export(model, data["x"][rng.choice(len(data["x"]), 512, replace=False)], args.out,
                        "voice_emotion")
    write_metadata(args.out / "voice_emotion.json", {
        "labels": list(VOICE_LABELS),
        "input": [N_MFCC, int(data["x"].shape[2])],
        "features": "emomusic.voice.mfcc.voice_features over emomusic.voice.vad.speech_windows (2 s windows, hop 1 s)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained_on": "RAVDESS actors 01-20 + EMO-DB (boredom dropped), clean + augmented copies",
        "cross_validation": report,
        "training_minutes": round((time.time() - t0) / 60, 1),
    })
    torch.save(model.state_dict(), tmp / "final.pt")
    print(f"wrote {fp32} ({fp32.stat().st_size // 1024} KB), {int8} ({int8.stat().st_size // 1024} KB); "
          f"selected {best}; total {(time.time() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
