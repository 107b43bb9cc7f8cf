"""Train the facial-expression classifier on FER2013 images with FER+ vote distributions.

    pip install -e '.[train]'          # torch (CPU), onnx
    python scripts/train_face.py --npz ../shared/data/faces/fer2013_ferplus_48x48.npz

Targets are soft: the FER+ crowd votes over the 8 emotions (unknown / not-a-face dropped), mixed
with the original FER2013 label (``--fer2013-weight``) so both label sets are learned. Trains on
``split == 'train'``, keeps the epoch with the best FER+ accuracy on ``'valid'``, then writes
models/face_expression.onnx (fp32), models/face_expression_int8.onnx (static int8, QDQ) and
models/face_expression.json. Preprocessing is emomusic.face_preprocess.preprocess_faces, the same
function the daemon uses.
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

from emomusic.face.preprocess import FACE_SIZE, preprocess_faces  # noqa: E402
from emomusic.labels import FACE_LABELS  # noqa: E402

# FER2013 label index -> index in FACE_LABELS (neutral, happy, surprised, sad, angry, disgust, fearful, contempt)
FER2013_TO_FACE = {0: 4, 1: 5, 2: 6, 3: 1, 4: 3, 5: 2, 6: 0}


def load(npz: Path, fer2013_weight: float) -> dict[str, dict[str, np.ndarray]]:
    d = np.load(npz, allow_pickle=False)
    votes = d["ferplus_votes"].astype(np.float32)
    has_plus = votes[:, 0] != 255
    emo = np.where(has_plus[:, None], votes[:, :8], 0.0)
    total = emo.sum(1, keepdims=True)
    plus = np.divide(emo, total, out=np.zeros_like(emo), where=total > 0)
    one_hot = np.zeros_like(plus)
    one_hot[np.arange(len(plus)), [FER2013_TO_FACE[int(i)] for i in d["fer2013_label"]]] = 1.0
    w = np.where(total > 0, fer2013_weight, 1.0)
    target = (1 - w) * plus + w * one_hot
    # FER+ majority label (-1 where the majority is unknown / not a face or there are no votes)
    maj = np.where(has_plus, votes.argmax(1), -1)
    maj = np.where(maj < 8, maj, -1)
    out = {}
    for split in ("train", "valid"):
        m = d["split"] == split
        out[split] = {
            "x": preprocess_faces(d["images"][m]),
            "y": target[m].astype(np.float32),
            "plus_major": maj[m],
            "fer2013": np.array([FER2013_TO_FACE[int(i)] for i in d["fer2013_label"][m]]),
        }
    return out


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
        *cbr(4 * w, 8 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.4), nn.Linear(8 * w, len(FACE_LABELS)),
    )


def augment(x, gen):  # type: ignore[no-untyped-def]
    """Flip, small rotation/shift/scale, brightness/contrast, on a batch of standardised faces."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    ang = (torch.rand(n, generator=gen) - 0.5) * 2 * np.deg2rad(12)
    scale = 1 + (torch.rand(n, generator=gen) - 0.5) * 0.2
    tx, ty = ((torch.rand(2, n, generator=gen) - 0.5) * 2 * 0.1)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
    bright = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
    return x * contrast + bright


def metrics(probs: np.ndarray, split: dict[str, np.ndarray]) -> dict[str, float]:
    m = split["plus_major"] >= 0
    plus_acc = float((probs[m].argmax(1) == split["plus_major"][m]).mean())
    seven = probs[:, :7]  # FER2013 has no contempt
    fer_acc = float((seven.argmax(1) == split["fer2013"]).mean())
    return {"ferplus_acc": plus_acc, "fer2013_acc": fer_acc}


def predict(model, x: np.ndarray, batch: int = 512) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch])
            logits = model(xb) + model(torch.flip(xb, dims=[3]))  # flip test-time augmentation
            out.append(torch.softmax(logits / 2, 1).numpy())
    return np.concatenate(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--npz", type=Path, default=ROOT.parent / "shared/data/faces/fer2013_ferplus_48x48.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--fer2013-weight", type=float, default=0.3)
    ap.add_argument("--max-minutes", type=float, default=50.0, help="stop early to stay within this budget")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    data = load(args.npz, args.fer2013_weight)
    tr, va = data["train"], data["valid"]
    print(f"train {len(tr['x'])}, valid {len(va['x'])} images; loaded in {time.time() - t0:.0f} s", flush=True)

    model = build_model(args.width)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(tr["x"]) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    x_all, y_all = torch.from_numpy(tr["x"]), torch.from_numpy(tr["y"])
    best, best_state, history = -1.0, None, []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_all), generator=gen)
        loss_sum = 0.0
        for i in range(len(x_all) // args.batch):
            idx = perm[i * args.batch : (i + 1) * args.batch]
            xb, yb = augment(x_all[idx], gen), y_all[idx]
            loss = -(yb * torch.log_softmax(model(xb), 1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach())
        m = metrics(predict(model, va["x"]), va)
        history.append({"epoch": epoch + 1, "loss": loss_sum / (i + 1), **m})
        print(f"epoch {epoch + 1:2d} loss {loss_sum / (i + 1):.3f} valid FER+ {m['ferplus_acc']:.4f} "
              f"FER2013 {m['fer2013_acc']:.4f}  [{(time.time() - t0) / 60:.1f} min]", flush=True)
        if m["ferplus_acc"] > best:
            best = m["ferplus_acc"]
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if (time.time() - t0) / 60 > args.max_minutes:
            print("time budget reached; stopping", flush=True)
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()

    args.out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = args.out / "face_expression.onnx", args.out / "face_expression_int8.onnx"
    export_onnx(model, torch.zeros(1, 1, FACE_SIZE, FACE_SIZE), fp32)
    rng = np.random.default_rng(args.seed)
    quantize_int8(fp32, int8, tr["x"][rng.choice(len(tr["x"]), 512, replace=False)])
    write_metadata(args.out / "face_expression.json", {
        "labels": list(FACE_LABELS),
        "input": [1, FACE_SIZE, FACE_SIZE],
        "preprocessing": "emomusic.face.preprocess.preprocess_faces",
        "parameters": n_params,
        "trained_on": "FER2013 Training split, FER+ vote distributions mixed with FER2013 labels "
                      f"(weight {args.fer2013_weight})",
        "selected_on": "FER2013 PublicTest (valid) FER+ majority accuracy",
        "training_minutes": round((time.time() - t0) / 60, 1),
        "history": history,
    })
    print(f"wrote {fp32} ({fp32.stat().st_size // 1024} KB), {int8} ({int8.stat().st_size // 1024} KB); "
          f"{n_params} parameters; best valid FER+ {best:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
