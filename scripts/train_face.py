"""Train the facial-expression classifier on FER+ and RAF-DB together, on aligned faces.

    pip install -e '.[train]'          # torch (CPU), onnx
    python scripts/train_face.py       # ../shared/data/faces/{fer2013_ferplus,rafdb_basic_train}_48x48.npz

Every photo goes through the daemon's own preprocessing (emomusic.face.preprocess): BlazeFace finds
its eyes and mouth, ``align_face`` levels and frames it on the template, ``standardise`` normalises
it; the aligned faces are cached in .cache/ (git-ignored). Targets are soft: FER+ crowd-vote
distributions mixed with the FER2013 label, RAF-DB labels with label smoothing. Rare classes (fear,
disgust, contempt) are over-sampled (sampling weight 1/sqrt(class count)); augmentation is strong
(random scale/shift/rotation, flip, blur, noise, brightness/contrast, cutout).

Held out for model selection: FER2013 PublicTest ('valid') and a stratified 10 % of RAF-DB train
(RAF-DB has no subject ids; its photos are of different people). The epoch with the best mean of
FER+ accuracy, FER2013 accuracy, RAF accuracy and RAF macro recall is kept. Writes
models/face_expression.onnx (fp32), face_expression_int8.onnx (static int8, QDQ) and .json.
Runs on the CPU (2 cores: about 45 minutes); a CUDA device, when present, is used.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "scripts"))

from model_export import export_onnx, quantize_int8, write_metadata  # noqa: E402

from emomusic.face.preprocess import FACE_SIZE, align_face, crop_locator, locate_in_crop, standardise  # noqa: E402
from emomusic.labels import FACE_LABELS  # noqa: E402

DATA = ROOT.parent / "shared/data/faces"
# FER2013 label index -> index in FACE_LABELS (neutral, happy, surprised, sad, angry, disgust, fearful, contempt)
FER2013_TO_FACE = {0: 4, 1: 5, 2: 6, 3: 1, 4: 3, 5: 2, 6: 0}
RAF_TO_FACE = {"neutral": 0, "happy": 1, "surprise": 2, "sad": 3, "angry": 4, "disgust": 5, "fear": 6}


def aligned(images: np.ndarray, cache: Path) -> np.ndarray:
    """The photos aligned by the daemon's preprocessing (cached: BlazeFace takes ~2 ms a photo)."""
    if cache.exists():
        return np.load(cache)["faces"]
    detector = crop_locator()
    out = np.empty((len(images), FACE_SIZE, FACE_SIZE), np.uint8)
    found = 0
    for i, img in enumerate(images):
        box, kps = locate_in_crop(detector, img)
        found += bool(kps)
        out[i] = align_face(img, box, kps)
    print(f"aligned {len(images)} photos ({found / len(images):.1%} with keypoints) -> {cache}", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, faces=out)
    return out


def load(fer_path: Path, raf_path: Path, fer2013_weight: float, smoothing: float, seed: int
         ) -> dict[str, dict[str, np.ndarray]]:
    d = np.load(fer_path, allow_pickle=False)
    votes = d["ferplus_votes"].astype(np.float32)
    has_plus = votes[:, 0] != 255
    emo = np.where(has_plus[:, None], votes[:, :8], 0.0)
    total = emo.sum(1, keepdims=True)
    plus = np.divide(emo, total, out=np.zeros_like(emo), where=total > 0)
    fer_idx = np.array([FER2013_TO_FACE[int(i)] for i in d["fer2013_label"]])
    one_hot = np.eye(8, dtype=np.float32)[fer_idx]
    w = np.where(total > 0, fer2013_weight, 1.0)
    fer_y = ((1 - w) * plus + w * one_hot).astype(np.float32)
    maj = np.where(has_plus, votes.argmax(1), -1)
    maj = np.where(maj < 8, maj, -1)
    fer_x = aligned(d["images"], ROOT / ".cache/face_aligned_fer2013.npz")

    r = np.load(raf_path, allow_pickle=False)
    raf_idx = np.array([RAF_TO_FACE[str(s)] for s in r["labels"]])
    raf_y = np.full((len(raf_idx), 8), smoothing / 7, np.float32)
    raf_y[np.arange(len(raf_idx)), raf_idx] = 1 - smoothing
    raf_y[:, 7] = 0.0  # RAF-DB basic has no contempt
    raf_y /= raf_y.sum(1, keepdims=True)
    raf_x = aligned(r["images"], ROOT / ".cache/face_aligned_rafdb.npz")
    rng = np.random.default_rng(seed)
    raf_hold = np.zeros(len(raf_idx), bool)
    for c in np.unique(raf_idx):  # stratified 10 %
        members = np.flatnonzero(raf_idx == c)
        raf_hold[rng.choice(members, max(1, len(members) // 10), replace=False)] = True

    tr = d["split"] == "train"
    return {
        "train": {"x": np.concatenate([fer_x[tr], raf_x[~raf_hold]]),
                  "y": np.concatenate([fer_y[tr], raf_y[~raf_hold]])},
        "fer_valid": {"x": fer_x[~tr], "plus_major": maj[~tr], "fer2013": fer_idx[~tr]},
        "raf_valid": {"x": raf_x[raf_hold], "label": raf_idx[raf_hold]},
    }


def sampling_weights(y: np.ndarray, balance: float) -> np.ndarray:
    """Each face's draw weight: the count of its target's majority class ** -balance (rare classes more often)."""
    major = y.argmax(1)
    return np.bincount(major, minlength=y.shape[1]).astype(np.float64)[major] ** -balance


def data_note(fer2013_weight: float, smoothing: float, balance: float) -> str:
    """The card's account of the training data and its sampling (both training scripts)."""
    return ("FER2013 Training (FER+ votes mixed with FER2013 labels, weight "
            f"{fer2013_weight}) + 90 % of RAF-DB basic train (smoothing {smoothing}); "
            f"class-balanced sampling (count ** -{balance})")


def build_model(width: int = 32):  # type: ignore[no-untyped-def]
    """A small VGG-style CNN: plain 3x3 convs train fast on a CPU (depthwise ones do not)."""
    from torch import nn

    def cbr(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    w = width
    return nn.Sequential(
        *cbr(1, w), nn.MaxPool2d(2),  # 24x24
        *cbr(w, 2 * w), *cbr(2 * w, 2 * w), nn.MaxPool2d(2),  # 12x12
        *cbr(2 * w, 4 * w), *cbr(4 * w, 4 * w), nn.MaxPool2d(2),  # 6x6
        *cbr(4 * w, 8 * w), *cbr(8 * w, 8 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.4), nn.Linear(8 * w, len(FACE_LABELS)),
    )


def augment(x, gen):  # type: ignore[no-untyped-def]
    """Random scale/shift/rotation (a random resized crop), flip, blur, noise, brightness/contrast and
    cutout, on a batch of standardised aligned faces (on their device: ``gen`` must be a generator there)."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def u(*shape: int):  # type: ignore[no-untyped-def]
        return torch.rand(*shape, generator=gen, device=x.device)

    flip = torch.where(u(n) < 0.5, -1.0, 1.0)
    ang = (u(n) - 0.5) * 2 * np.deg2rad(15)
    scale = 1 + (u(n) - 0.5) * 0.3
    tx, ty = (u(2, n) - 0.5) * 2 * 0.1
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    blur = u(n, 1, 1, 1) < 0.2  # a soft camera: 3x3 box blur (chosen per face without asking the device: no sync)
    x = torch.where(blur, F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False), x)
    noisy = (u(n, 1, 1, 1) < 0.3).float()
    x = x + noisy * torch.randn(x.shape, generator=gen, device=x.device) * 0.1
    contrast = 1 + (u(n, 1, 1, 1) - 0.5) * 0.5
    bright = (u(n, 1, 1, 1) - 0.5) * 0.5
    x = x * contrast + bright
    cut = u(n) < 0.5  # cutout: a 16x16 square set to the mean
    cy, cx = (u(2, n) * FACE_SIZE).long()
    ys = torch.arange(FACE_SIZE, device=x.device)[None, :, None]
    xs = ys.transpose(1, 2)
    mask = ((ys - cy[:, None, None]).abs() < 8) & ((xs - cx[:, None, None]).abs() < 8) & cut[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


def recalls(pred: np.ndarray, truth: np.ndarray, classes: int) -> list[float]:
    return [float((pred[truth == c] == c).mean()) if (truth == c).any() else float("nan") for c in range(classes)]


def metrics(fer_probs: np.ndarray, fer: dict[str, np.ndarray], raf_probs: np.ndarray, raf: dict[str, np.ndarray]
            ) -> dict[str, float]:
    m = fer["plus_major"] >= 0
    seven_fer = fer_probs[:, :7].argmax(1)  # FER2013 and RAF-DB have no contempt
    seven_raf = raf_probs[:, :7].argmax(1)
    fer_rec = recalls(seven_fer, fer["fer2013"], 7)
    raf_rec = recalls(seven_raf, raf["label"], 7)
    out = {
        "ferplus_acc": float((fer_probs[m].argmax(1) == fer["plus_major"][m]).mean()),
        "ferplus_macro": float(np.nanmean(recalls(fer_probs[m].argmax(1), fer["plus_major"][m], 8))),
        "fer2013_acc": float((seven_fer == fer["fer2013"]).mean()),
        "fer2013_macro": float(np.nanmean(fer_rec)),
        "raf_acc": float((seven_raf == raf["label"]).mean()),
        "raf_macro": float(np.nanmean(raf_rec)),
    }
    out["score"] = (out["ferplus_acc"] + out["fer2013_acc"] + out["raf_acc"] + out["raf_macro"]) / 4
    return out


def predict(model, x: np.ndarray, device: str = "cpu", batch: int = 512) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch]).to(device)
            logits = model(xb) + model(torch.flip(xb, dims=[3]))  # plain + mirrored view, as the daemon pools
            out.append(torch.softmax(logits / 2, 1).cpu().numpy())
    return np.concatenate(out)


def teacher(path: Path, temperature: float):  # type: ignore[no-untyped-def]
    """A trained model's softened readings of a batch (its plain and mirrored views' logits averaged): the
    targets of distillation, which carry what it learned about faces between the classes."""
    from emomusic.runtime import Model, softmax

    model = Model(path, threads=0)  # 0: onnxruntime's default, every core

    def read(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        logits = model.run(x)[0] + model.run(np.ascontiguousarray(x[:, :, :, ::-1]))[0]
        return softmax(logits / (2 * temperature)).astype(np.float32)

    return read


def teacher_card(path: Path) -> dict[str, object]:
    """What a teacher's own card says of how it was made (kept in the student's card: the lineage)."""
    import json

    card = path.with_name(path.name.replace("_int8", "").replace(".onnx", ".json"))
    if not card.exists():
        return {"file": path.name}
    d = json.loads(card.read_text())
    return {"file": path.name, **{k: d[k] for k in ("parameters", "trained_on", "held_out_fp32") if k in d}}


def save(model, out: Path, x_tr: np.ndarray, seed: int, card: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    """Writes the trained model as the daemon loads it: fp32 ONNX, int8 ONNX (calibrated on 512 training
    faces) and the .json card (``card`` adds how it was trained)."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out / "face_expression.onnx", out / "face_expression_int8.onnx"
    export_onnx(model, torch.zeros(1, 1, FACE_SIZE, FACE_SIZE), fp32)
    rng = np.random.default_rng(seed)
    quantize_int8(fp32, int8, x_tr[rng.choice(len(x_tr), 512, replace=False)])
    n_params = sum(p.numel() for p in model.parameters())
    write_metadata(out / "face_expression.json", {
        "labels": list(FACE_LABELS),
        "input": [1, FACE_SIZE, FACE_SIZE],
        "preprocessing": "emomusic.face.preprocess: locate_in_crop/align_face, then standardise",
        "parameters": n_params,
        "selected_on": "mean of FER+/FER2013 accuracy on FER2013 PublicTest and accuracy/macro recall on "
                       "a stratified 10 % of RAF-DB train",
        **card,
    })
    print(f"wrote {fp32} ({fp32.stat().st_size // 1024} KB), {int8} ({int8.stat().st_size // 1024} KB); "
          f"{n_params} parameters", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fer", type=Path, default=DATA / "fer2013_ferplus_48x48.npz")
    ap.add_argument("--raf", type=Path, default=DATA / "rafdb_basic_train_48x48.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--epoch-size", type=int, default=32768, help="samples drawn (class-balanced) per epoch")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--fer2013-weight", type=float, default=0.3)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--balance", type=float, default=0.5, help="sampling weight = class count ** -balance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mixup", type=float, default=0.0,
                    help="mixup's Beta(a, a); 0: off. Half of each batch is mixed with a shuffled copy of itself")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="keep an exponential moving average of the weights with this decay (e.g. 0.999) and "
                         "select and export it instead of the raw weights; 0: off")
    ap.add_argument("--teacher", type=Path, default=None,
                    help="an fp32 ONNX face model (e.g. the shipped models/face_expression.onnx) whose readings of "
                         "each augmented batch, plain and mirrored averaged, are mixed into the targets")
    ap.add_argument("--distill", type=float, default=0.5, help="the teacher's share of each target (with --teacher)")
    ap.add_argument("--temperature", type=float, default=2.0, help="the teacher's softmax temperature")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="an fp32 ONNX face model (e.g. the shipped one) whose most useful channels, cut to --width, "
                         "are the starting weights instead of random ones (scripts/prune_face.py)")
    ap.add_argument("--requantize", action="store_true",
                    help="no training: quantize the existing fp32 model in --out again (after a change of "
                         "model_export.quantize_int8)")
    args = ap.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    data = load(args.fer, args.raf, args.fer2013_weight, args.smoothing, args.seed)
    tr, fv, rv = data["train"], data["fer_valid"], data["raf_valid"]
    x_tr = standardise(tr["x"])
    x_fv, x_rv = standardise(fv["x"]), standardise(rv["x"])
    print(f"train {len(x_tr)}, held out FER {len(x_fv)} + RAF {len(x_rv)}; ready in {time.time() - t0:.0f} s",
          flush=True)

    if args.requantize:
        fp32, int8 = args.out / "face_expression.onnx", args.out / "face_expression_int8.onnx"
        quantize_int8(fp32, int8, x_tr[np.random.default_rng(args.seed).choice(len(x_tr), 512, replace=False)])
        print(f"wrote {int8} ({int8.stat().st_size // 1024} KB) from {fp32}", flush=True)
        return 0

    weights = torch.from_numpy(sampling_weights(tr["y"], args.balance))
    if args.init_from:
        from prune_face import pruned

        pick = np.random.default_rng(args.seed).choice(len(x_tr), 1024, replace=False)
        model = pruned(args.init_from, build_model(args.width), x_tr[pick]).to(device)
        m = metrics(predict(model, x_fv), fv, predict(model, x_rv), rv)
        print(f"cut from {args.init_from.name} to width {args.width}: FER+ {m['ferplus_acc']:.4f} FER2013 "
              f"{m['fer2013_acc']:.4f} RAF {m['raf_acc']:.4f}/{m['raf_macro']:.4f}", flush=True)
    else:
        model = build_model(args.width).to(device)
    swa = torch.optim.swa_utils
    ema = (swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(args.ema), use_buffers=True)
           if args.ema else None)
    mix = torch.distributions.Beta(args.mixup, args.mixup) if args.mixup else None
    teach = teacher(args.teacher, args.temperature) if args.teacher else None
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    per_epoch = args.epoch_size // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * per_epoch,
                                                pct_start=0.15)
    x_all, y_all = torch.from_numpy(x_tr), torch.from_numpy(tr["y"])
    best, best_state, history = -1.0, None, []
    for epoch in range(args.epochs):
        model.train()
        draw = torch.multinomial(weights, per_epoch * args.batch, replacement=True, generator=gen)
        loss_sum = 0.0
        for i in range(per_epoch):
            idx = draw[i * args.batch : (i + 1) * args.batch]
            xb, yb = augment(x_all[idx], gen).to(device), y_all[idx].to(device)
            if teach is not None:  # the teacher reads the same augmented faces the student sees
                yb = (1 - args.distill) * yb + args.distill * torch.from_numpy(teach(xb.cpu().numpy())).to(device)
            if mix is not None:  # mixup on half the batch: soft targets mix as the faces do
                half = len(xb) // 2
                lam = mix.sample((half,)).to(device)
                perm = torch.randperm(len(xb), generator=gen)[:half].to(device)
                xb = torch.cat([lam[:, None, None, None] * xb[:half] + (1 - lam[:, None, None, None]) * xb[perm],
                                xb[half:]])
                yb = torch.cat([lam[:, None] * yb[:half] + (1 - lam[:, None]) * yb[perm], yb[half:]])
            loss = -(yb * torch.log_softmax(model(xb), 1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += float(loss.detach())
        judged = ema.module if ema is not None else model
        m = metrics(predict(judged, x_fv, device), fv, predict(judged, x_rv, device), rv)
        history.append({"epoch": epoch + 1, "loss": round(loss_sum / per_epoch, 4),
                        **{k: round(v, 4) for k, v in m.items()}})
        print(f"epoch {epoch + 1:2d} loss {loss_sum / per_epoch:.3f} FER+ {m['ferplus_acc']:.4f} "
              f"FER2013 {m['fer2013_acc']:.4f}/{m['fer2013_macro']:.4f} RAF {m['raf_acc']:.4f}/{m['raf_macro']:.4f}"
              f"  [{(time.time() - t0) / 60:.1f} min]", flush=True)
        if m["score"] > best:
            best = m["score"]
            best_state = {k: v.detach().cpu().clone() for k, v in judged.state_dict().items()}
    assert best_state is not None
    model = model.cpu()
    model.load_state_dict(best_state)
    model.eval()

    trained_on = (data_note(args.fer2013_weight, args.smoothing, args.balance)
                  + (f"; mixup Beta({args.mixup}) on half of each batch" if args.mixup else "")
                  + (f"; weights: moving average, decay {args.ema}" if args.ema else "")
                  + (f"; distilled from {args.teacher.name} (share {args.distill}, temperature "
                     f"{args.temperature})" if args.teacher else "")
                  + (f"; started from {args.init_from.name} cut to width {args.width}" if args.init_from else ""))
    card: dict[str, object] = {"trained_on": trained_on, "training_minutes": round((time.time() - t0) / 60, 1),
                               "history": history}
    if args.teacher:
        card["teacher"] = teacher_card(args.teacher)
    save(model, args.out, x_tr, args.seed, card)
    print(f"best score {best:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
