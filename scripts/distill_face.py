"""Distil an ensemble of larger face models into the shipped size (#31): minutes on a GPU, hours on a CPU.

    python scripts/distill_face.py pack --out .gpu/faces.npz               # here: the aligned faces, ~31 MB
    python scripts/distill_face.py train --data .gpu/faces.npz --out OUT   # on a GPU machine (or any torch device)
    python scripts/distill_face.py export --state OUT/student_0.pt         # here: the daemon's ONNX, int8 and card

Teachers: ResNet-18-like networks on the full 48x48 face (about ten times the student's parameters),
trained on train_face.py's targets, class-balanced draws and augmentation, each in its own process and all
at once (``teach``; a GPU is shared, the CPU that feeds it is not). Students: train_face.build_model, the
shipped size, all trained in one process on the same batches, which the teachers' ensemble reads once; each
on a mix of the label's cross-entropy and the teachers' averaged readings (the usual temperature-softened
KL, times T^2, so that the student stays about as sure of itself as one trained on labels alone: the
daemon's fusion is tuned to that).

Each stage runs for a set time rather than a set number of epochs (the learning rate warms up, then follows
a cosine over the stage's seconds), so that a run fits a lent machine's minutes; the report gives the steps
each stage took. The packed faces are WebP at quality 90 (mean error 1.5 grey levels, a small fraction of
the augmentation's noise) so that they travel in under 40 MB; ``export`` measures the held-out figures
again on the exact faces.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import train_face as tf  # noqa: E402  (it puts daemon/ on the path too)

from emomusic.face.preprocess import standardise  # noqa: E402

WEBP_QUALITY = 90
SPLITS = ("train", "fer_valid", "raf_valid")


def encode(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces -> one byte array of WebP images and the end offset of each."""
    import cv2

    blobs = [cv2.imencode(".webp", f, [cv2.IMWRITE_WEBP_QUALITY, WEBP_QUALITY])[1].ravel() for f in faces]
    return np.concatenate(blobs), np.cumsum([len(b) for b in blobs])


def decode(blob: np.ndarray, ends: np.ndarray) -> np.ndarray:
    import cv2

    starts = np.concatenate([[0], ends[:-1]])
    return np.stack([cv2.imdecode(blob[s:e], cv2.IMREAD_GRAYSCALE) for s, e in zip(starts, ends, strict=True)])


def pack(args: argparse.Namespace) -> None:
    data = tf.load(args.fer, args.raf, args.fer2013_weight, args.smoothing, args.seed)
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        for key, v in data[split].items():
            if key == "x":
                arrays[f"{split}__x"], arrays[f"{split}__ends"] = encode(v)
            else:
                arrays[f"{split}__{key}"] = v.astype(np.float16 if v.dtype.kind == "f" else np.int8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    print(f"packed {sum(len(data[s]['x']) for s in SPLITS)} faces -> {args.out} "
          f"({args.out.stat().st_size / 2**20:.1f} MiB)", flush=True)


def unpack(path: Path) -> dict[str, dict[str, np.ndarray]]:
    d = np.load(path, allow_pickle=False)
    out: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        part = {k.split("__", 1)[1]: d[k] for k in d.files if k.startswith(split + "__")}
        faces = decode(part.pop("x"), part.pop("ends"))
        out[split] = {k: v.astype(np.float32 if v.dtype == np.float16 else np.int64) for k, v in part.items()}
        out[split]["x"] = faces
    return out


def build_teacher(width: int = 64):  # type: ignore[no-untyped-def]
    """ResNet-18's layout for a 48x48 face: four stages of two residual blocks (48, 24, 12, 6 px)."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(*conv(cin, cout, stride), nn.ReLU(inplace=True), *conv(cout, cout))
            self.skip: nn.Module = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.skip(x))

    layers: list[nn.Module] = [*conv(1, width), nn.ReLU(inplace=True)]
    cin = width
    for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
        layers += [Block(cin, cout, 1 if i == 0 else 2), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(cin, 8)]
    return nn.Sequential(*layers)


def ensemble(models):  # type: ignore[no-untyped-def]
    """The teachers as one model: their logits averaged."""
    import torch

    class Mean(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = torch.nn.ModuleList(models)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([m(x).float() for m in self.members]).mean(0)

    return Mean().eval()


def loss(model, xb, yb, teacher_logits, share: float, temperature: float, *, amp: bool):  # type: ignore[no-untyped-def]
    """(1 - share) label cross-entropy + share * T^2 * cross-entropy against the teacher's softened readings."""
    import torch

    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(xb).float()
    own = -(yb * torch.log_softmax(logits, 1)).sum(1).mean()
    if teacher_logits is None:
        return own
    soft = torch.softmax(teacher_logits / temperature, 1)
    kd = -(soft * torch.log_softmax(logits / temperature, 1)).sum(1).mean() * temperature**2
    return (1 - share) * own + share * kd


def fit(models, x, y, weights, gen, *, seconds: float, lr: float, batch: int, decay: float,  # type: ignore[no-untyped-def]
        teacher=None, specs: list[tuple[float, float]] | None = None) -> list[dict[str, float]]:
    """Trains ``models`` side by side on the same augmented batches for ``seconds`` of wall-clock time. With a
    teacher, model i's loss is (1 - share) label cross-entropy + share * T^2 * cross-entropy against the
    teacher's readings at temperature T, (share, T) = specs[i]: the teacher reads each batch once for all."""
    import torch

    amp = x.device.type == "cuda"
    opts = [torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=decay) for m in models]
    specs = specs or [(0.0, 1.0)] * len(models)
    for m in models:
        m.train()
    t0, steps = time.time(), 0
    loss_sums = torch.zeros(len(models), device=x.device)
    while (frac := (time.time() - t0) / seconds) < 1:
        scale = frac / 0.1 if frac < 0.1 else 0.5 * (1 + math.cos(math.pi * (frac - 0.1) / 0.9))
        for opt in opts:
            for group in opt.param_groups:
                group["lr"] = lr * scale
        idx = torch.multinomial(weights, batch, replacement=True, generator=gen)
        xb, yb = tf.augment(x[idx], gen), y[idx]
        teacher_logits = None
        if teacher is not None:
            with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
                teacher_logits = teacher(xb).float()
        total = torch.stack([loss(m, xb, yb, teacher_logits, *spec, amp=amp) for m, spec in zip(models, specs,
                                                                                               strict=True)])
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        total.sum().backward()  # the models share nothing: one backward pass gives each its own gradients
        for opt in opts:
            opt.step()
        steps += 1
        loss_sums += total.detach()
    for m in models:
        m.eval()
    run = {"steps": steps, "samples": steps * batch, "seconds": round(time.time() - t0, 1)}
    return [{**run, "loss": round(float(v) / max(steps, 1), 4)} for v in loss_sums.cpu()]


def on_cpu(model) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """The weights to save, wherever the model ran."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


class Session:
    """One process's view of a run: the packed faces on its device and the held-out judge."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.t0 = time.time()
        self.dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.backends.cudnn.benchmark = True
        data = unpack(args.data)
        tr, self.fv, self.rv = (data[s] for s in SPLITS)
        self.x = torch.from_numpy(standardise(tr["x"])).to(self.dev)
        self.y = torch.from_numpy(tr["y"]).to(self.dev)
        self.weights = torch.from_numpy(tf.sampling_weights(tr["y"], args.balance)).float().to(self.dev)
        self.x_fv, self.x_rv = standardise(self.fv["x"]), standardise(self.rv["x"])
        self.device_name = torch.cuda.get_device_name() if self.dev.type == "cuda" else "cpu"

    def generator(self, seed: int):  # type: ignore[no-untyped-def]
        import torch

        return torch.Generator(device=self.dev).manual_seed(seed)

    def judge(self, model) -> dict[str, float]:  # type: ignore[no-untyped-def]
        d = str(self.dev)
        m = tf.metrics(tf.predict(model, self.x_fv, d), self.fv, tf.predict(model, self.x_rv, d), self.rv)
        return {k: round(v, 4) for k, v in m.items()}

    def say(self, text: str) -> None:
        print(f"[{(time.time() - self.t0) / 60:.1f} min] {text}", flush=True)


def teach(args: argparse.Namespace) -> None:
    """One teacher -> WORK/teacher_I.pt and its figures in WORK/teacher_I.json (``train`` runs several at once)."""
    import torch

    s = Session(args)
    torch.manual_seed(args.seed + args.index)
    model = build_teacher(args.teacher_width).to(s.dev, memory_format=torch.channels_last)
    [run] = fit([model], s.x, s.y, s.weights, s.generator(args.seed + args.index), seconds=args.teacher_seconds,
                lr=args.teacher_lr, batch=args.batch, decay=0.05)
    entry = {"width": args.teacher_width, **run, **s.judge(model)}
    args.work.mkdir(parents=True, exist_ok=True)
    torch.save(on_cpu(model), args.work / f"teacher_{args.index}.pt")
    (args.work / f"teacher_{args.index}.json").write_text(json.dumps(entry))
    s.say(f"teacher {args.index} {json.dumps(entry)}")


def train(args: argparse.Namespace) -> None:
    """Teachers at once (one process each: the device is shared, the CPUs that feed it are not), then every
    student in this process on the same batches, the teachers' ensemble reading each batch once."""
    import torch

    flags = ["--data", str(args.data), "--work", str(args.work), "--seed", str(args.seed), "--balance",
             str(args.balance), "--teacher-width", str(args.teacher_width), "--teacher-seconds",
             str(args.teacher_seconds), "--teacher-lr", str(args.teacher_lr), "--batch", str(args.batch)]
    procs = [subprocess.Popen([sys.executable, __file__, "teach", "--index", str(i), *flags])
             for i in range(args.teachers)]
    s = Session(args)
    codes = [p.wait() for p in procs]
    entries, teachers = [], []
    for i, code in enumerate(codes):
        path = args.work / f"teacher_{i}.pt"
        if code != 0 or not path.exists():
            s.say(f"teacher {i} failed (exit {code}); going on without it")
            continue
        model = build_teacher(args.teacher_width)
        model.load_state_dict(torch.load(path, map_location="cpu"))
        teachers.append(model.to(s.dev, memory_format=torch.channels_last).eval())
        entries.append(json.loads((args.work / f"teacher_{i}.json").read_text()))
    if not teachers:
        raise SystemExit("distill_face.py: no teacher finished; see the output above")
    teacher = ensemble(teachers)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"device": s.device_name, "torch": torch.__version__, "train_faces": len(s.x),
                                 "args": {k: str(v) for k, v in vars(args).items() if k != "func"},
                                 "teachers": entries, "students": []}
    if len(teachers) > 1:
        report["ensemble"] = s.judge(teacher)
        s.say(f"ensemble {report['ensemble']}")
    specs = [(float(share), float(t)) for share, t in (spec.split(":") for spec in args.students)]
    torch.manual_seed(args.seed + 100)
    students = [tf.build_model(32).to(s.dev, memory_format=torch.channels_last) for _ in specs]
    runs = fit(students, s.x, s.y, s.weights, s.generator(args.seed + 100), seconds=args.student_seconds,
               lr=args.student_lr, batch=args.batch, decay=5e-4, teacher=teacher, specs=specs)
    for j, (student, (share, temperature), run) in enumerate(zip(students, specs, runs, strict=True)):
        path = args.out / f"student_{j}.pt"
        torch.save(on_cpu(student), path)
        entry = {"file": path.name, "share": share, "temperature": temperature, **run, **s.judge(student)}
        report["students"].append(entry)  # type: ignore[attr-defined]
        (args.out / "report.json").write_text(json.dumps(report, indent=1))
        s.say(f"student {json.dumps(entry)}")


def export(args: argparse.Namespace) -> None:
    """A trained student -> models/ as the daemon loads it, with its held-out figures on the exact faces."""
    import torch

    data = tf.load(args.fer, args.raf, args.fer2013_weight, args.smoothing, args.seed)
    x_tr = standardise(data["train"]["x"])
    model = tf.build_model(32)
    model.load_state_dict(torch.load(args.state, map_location="cpu"))
    model.eval()
    fv, rv = data["fer_valid"], data["raf_valid"]
    held_out = tf.metrics(tf.predict(model, standardise(fv["x"])), fv, tf.predict(model, standardise(rv["x"])), rv)
    report = json.loads((args.state.parent / "report.json").read_text())
    student = next(s for s in report["students"] if s["file"] == args.state.name)
    tf.save(model, args.out, x_tr, args.seed, {
        "trained_on": tf.data_note(args.fer2013_weight, args.smoothing, args.balance)
                      + f"; distilled (share {student['share']}, temperature {student['temperature']}) from "
                      f"{len(report['teachers'])} ResNet-18-like teachers: scripts/distill_face.py",
        "training": {"device": report["device"], "teachers": report["teachers"],
                     "ensemble": report.get("ensemble"), "student": student},
        "selected_on": "of the run's students, the best mean of FER+/FER2013 accuracy on FER2013 PublicTest and "
                       "accuracy/macro recall on a stratified 10 % of RAF-DB train",
        "held_out_fp32": {k: round(v, 4) for k, v in held_out.items()},
    })


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(required=True)
    for name, func in (("pack", pack), ("train", train), ("teach", teach), ("export", export)):
        p = sub.add_parser(name)
        p.set_defaults(func=func)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--balance", type=float, default=0.5, help="sampling weight = class count ** -balance")
        if name in ("pack", "export"):
            p.add_argument("--fer", type=Path, default=tf.DATA / "fer2013_ferplus_48x48.npz")
            p.add_argument("--raf", type=Path, default=tf.DATA / "rafdb_basic_train_48x48.npz")
            p.add_argument("--fer2013-weight", type=float, default=0.3)
            p.add_argument("--smoothing", type=float, default=0.1)
    sub.choices["pack"].add_argument("--out", type=Path, default=ROOT / ".gpu/faces.npz")
    for name in ("train", "teach"):
        t = sub.choices[name]
        t.add_argument("--data", type=Path, default=ROOT / ".gpu/faces.npz")
        t.add_argument("--work", type=Path, default=Path("/tmp/distill_face"), help="where the teachers are kept")
        t.add_argument("--teacher-width", type=int, default=64)
        t.add_argument("--teacher-seconds", type=float, default=120)
        t.add_argument("--teacher-lr", type=float, default=2e-3)
        t.add_argument("--batch", type=int, default=256)
    sub.choices["teach"].add_argument("--index", type=int, required=True)
    t = sub.choices["train"]
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--teachers", type=int, default=2)
    t.add_argument("--students", nargs="+", default=["0.7:3", "0.9:3", "0.9:1.5"],
                   help="one student per SHARE:T, the teachers' share of its loss and their temperature")
    t.add_argument("--student-seconds", type=float, default=80)
    t.add_argument("--student-lr", type=float, default=4e-3)
    e = sub.choices["export"]
    e.add_argument("--state", type=Path, required=True)
    e.add_argument("--out", type=Path, default=ROOT / "models")
    args = ap.parse_args()
    fn: Callable[[argparse.Namespace], None] = args.func
    fn(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
