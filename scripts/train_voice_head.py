"""Train the speech-emotion head on the voice encoder, with per-speaker adaptation, and calibrate it.

    pip install -e '.[train]'                 # torch, scikit-learn
    python scripts/build_voice_encoder.py     # models/voice_encoder_int8.onnx (once)
    python scripts/train_voice_head.py        # ../shared/data/speech/{ravdess,emodb,emovo}: the shipped head
    python scripts/train_voice_head.py --corpora ravdess emodb --augment 0 --out /tmp/voice_head.json   # the last one

Every clip takes the daemon's path (16 kHz, WebRTC VAD, 2 s windows, emomusic.voice.encoder); the
embeddings are cached in .cache/. The head is a perceptron with one hidden layer of 128 units (torch, its
first layer rounded to int8 as shipped; ``--hidden 0``: the multinomial logistic regression shipped until
2026-12-05) on embeddings *standardised per speaker* by emomusic.voice.adapt.standardise — the daemon's own
function — at three levels of adaptation, so it works from the first word (population statistics) to a well-known voice:
cold (the population's statistics), after 10 windows, and after all of the speaker's windows. With
``--augment N`` (4 for the shipped head) the training side of every split also holds N speed-perturbed
variations of each of its clips (scripts/voice_augment.py), each variation a voice of its own.

Selection, speaker-independent only: 5-fold cross-validation over the RAVDESS actors (4 held-out
actors per fold, the other corpora always in training). Across corpora and languages, leave one corpus
out: trained on the others, scored on the emotions the held-out corpus shares with them. Each held-out
speaker is scored cold and *streamed*
through the daemon's SpeakerAdapter in a seeded shuffled order, each clip scored before the adapter
learns from it. Also across corpora: RAVDESS -> EMO-DB and EMO-DB -> RAVDESS over their 6 shared
emotions. A temperature is fitted on the out-of-fold logits (calibration) and expected calibration
error reported before and after. Writes models/voice_head.json (head, population statistics,
temperature, the report).

    python scripts/train_voice_head.py --feedback 1 3    # measure "I feel …" feedback, write nothing
    python scripts/train_voice_head.py --holdout-actors 17,18,19,20 --out /tmp/holdout/voice_head.json

With ``--feedback`` the same folds (at the shipped C and temperature) measure what a listener's
corrections give (scripts/feedback_sim.py): per held-out speaker, N clips per emotion as feedback,
the rest scored with the daemon's calibration fitted on them; also each other corpus left out whole.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.audio import read_audio_file  # noqa: E402
from emomusic.labels import VOICE_LABELS, normalize_label  # noqa: E402
from emomusic.runtime import softmax  # noqa: E402
from emomusic.voice.adapt import SpeakerAdapter, standardise  # noqa: E402
from emomusic.voice.encoder import VoiceEncoder  # noqa: E402
from emomusic.voice.head import Head, pack_float16, pack_int8, unpack_int8  # noqa: E402
from emomusic.voice.vad import speech_windows  # noqa: E402

FOLDS = [[1, 6, 11, 16], [2, 7, 12, 17], [3, 8, 13, 18], [4, 9, 14, 19], [5, 10, 15, 20]]
SHARED6 = [VOICE_LABELS.index(x) for x in ("neutral", "happy", "sad", "angry", "fearful", "disgust")]


CORPORA = ("ravdess", "emodb", "emovo")  # English, German, Italian


def labelled_clips(speech: Path, corpora: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str], str]]:
    """(corpus, labels.csv row, emotion) of every clip with an emotion the head knows, in one fixed order:
    ``load`` and ``load_variations`` number the clips alike by it."""
    for corpus in corpora:
        with open(speech / corpus / "labels.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            label = normalize_label(row["emotion"])
            if label is not None:  # EMO-DB boredom has no counterpart
                yield corpus, row, label


def load(speech: Path, corpora: tuple[str, ...] = CORPORA, models: Path = ROOT / "models") -> dict[str, np.ndarray]:
    """Per window: embedding and clip index; per clip: label, speaker, corpus (cached per set of corpora
    and per encoder: a rebuilt encoder embeds afresh)."""
    encoder = hashlib.sha1((models / "voice_encoder_int8.onnx").read_bytes()).hexdigest()[:8]
    cache = ROOT / ".cache" / f"voice_embeddings-{'-'.join(corpora)}-{encoder}.npz"
    if cache.exists():
        return dict(np.load(cache))
    enc = VoiceEncoder(models)
    emb, states, clip_of, labels, speakers, corpus_of = [], [], [], [], [], []
    t0 = time.time()
    for corpus, row, label in labelled_clips(speech, corpora):
        windows = speech_windows(read_audio_file(speech / corpus / row["path"]))
        e, st = enc.encode([w.samples for w in windows])
        emb.append(e)
        states.append(st)
        clip_of += [len(labels)] * len(e)
        labels.append(VOICE_LABELS.index(label))
        speakers.append(f"{corpus}:{row['speaker']}")
        corpus_of.append(corpus)
    out = {"emb": np.concatenate(emb), "x": np.concatenate(states), "clip_of": np.array(clip_of),
           "label": np.array(labels), "speaker": np.array(speakers), "corpus": np.array(corpus_of)}
    print(f"embedded {len(labels)} clips ({len(out['emb'])} windows) in {time.time() - t0:.0f} s", flush=True)
    cache.parent.mkdir(exist_ok=True)
    np.savez(cache, **out)
    return out


def load_variations(speech: Path, corpora: tuple[str, ...], n: int, models: Path = ROOT / "models",
                    seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` random variations of every clip (scripts/voice_augment.py), in ``load``'s clip order: per window
    the head's input (``ax``), the clip it varies (``aclip_of``) and which variation (``avar``, 1..n).
    Training only: ``fit`` adds them for its training clips."""
    from voice_augment import vary

    key = hashlib.sha1((models / "voice_encoder_int8.onnx").read_bytes()
                       + (ROOT / "scripts" / "voice_augment.py").read_bytes()).hexdigest()[:8]
    cache = ROOT / ".cache" / f"voice_variations-{'-'.join(corpora)}-{n}-{seed}-{key}.npz"
    if cache.exists():
        return dict(np.load(cache))
    enc = VoiceEncoder(models)
    xs, clip_of, var = [], [], []
    t0 = time.time()
    clip = -1
    for clip, (corpus, row, _) in enumerate(labelled_clips(speech, corpora)):
        audio = read_audio_file(speech / corpus / row["path"])
        rng = np.random.default_rng([seed, clip])
        for k in range(1, n + 1):
            windows = speech_windows(vary(audio, rng))
            if windows:
                xs.append(enc.encode([w.samples for w in windows])[1])
                clip_of += [clip] * len(windows)
                var += [k] * len(windows)
    out = {"ax": np.concatenate(xs), "aclip_of": np.array(clip_of), "avar": np.array(var)}
    print(f"embedded {n} variations of {clip + 1} clips ({len(out['ax'])} windows) in {time.time() - t0:.0f} s",
          flush=True)
    np.savez(cache, **out)
    return out


def training_set(d: dict[str, np.ndarray], clips: np.ndarray, prior: tuple[np.ndarray, np.ndarray],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``clips`` standardised cold, after 10 windows and after all of their speaker's."""
    mean, var = prior
    xs, ys = [], []
    voices = [(d["x"], d["clip_of"], np.zeros(len(d["x"]), dtype=int))]
    if "ax" in d:  # each variation of a speaker's clips is another voice of that speaker
        voices.append((d["ax"], d["aclip_of"], d["avar"]))
    for x_all, clip_of, variation in voices:
        win_mask = np.isin(clip_of, clips)
        for spk in np.unique(d["speaker"][clips]):
            for k in np.unique(variation[win_mask]):
                rows = np.flatnonzero(win_mask & (d["speaker"][clip_of] == spk) & (variation == k))
                if len(rows) == 0:
                    continue
                x, y = x_all[rows], d["label"][clip_of[rows]]
                some = x[rng.choice(len(x), min(10, len(x)), replace=False)]
                for stats in (None, some, x):
                    if stats is None:
                        xs.append(standardise(x, mean, var))
                    else:
                        xs.append(standardise(x, mean, var, float(len(stats)), stats.mean(0), stats.var(0)))
                    ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


HIDDEN = 128  # the shipped head's hidden units (0: the linear head shipped until 2026-12-05)
EPOCHS, WEIGHT_DECAY, DROPOUT, INPUT_DROPOUT, RATE, BATCH = 8, 0.05, 0.5, 0.2, 1e-3, 256


def fit(d: dict[str, np.ndarray], clips: np.ndarray, c: float | None, seed: int, hidden: int = HIDDEN
        ) -> dict[str, Any]:
    """The head on ``clips``' windows (and their variations): a one-hidden-layer perceptron (``hidden`` units,
    its first layer rounded to int8 as shipped) or, with ``hidden`` 0, a logistic regression at ``c``."""
    win = np.isin(d["clip_of"], clips)
    prior = (d["x"][win].mean(0).astype(np.float64), d["x"][win].var(0).astype(np.float64) + 1e-6)
    x, y = training_set(d, clips, prior, np.random.default_rng(seed))
    head: dict[str, Any] = {"prior_mean": prior[0], "prior_var": prior[1]}
    if hidden:
        head |= fit_mlp(x, y, hidden, seed)
    else:
        from sklearn.linear_model import LogisticRegression

        m = LogisticRegression(C=c, max_iter=3000).fit(x, y)
        w = np.zeros((len(VOICE_LABELS), x.shape[1]))
        b = np.full(len(VOICE_LABELS), -30.0)  # emotions a corpus lacks are never predicted
        w[m.classes_], b[m.classes_] = m.coef_, m.intercept_
        head |= {"w": w, "b": b}
    # each emotion's centre in the head's input space: the anchors of on-device personalisation
    means = np.zeros((len(VOICE_LABELS), x.shape[1]))
    for k in np.unique(y):
        means[k] = x[y == k].mean(0)
    return head | {"class_means": means}


def fit_mlp(x: np.ndarray, y: np.ndarray, hidden: int, seed: int) -> dict[str, np.ndarray]:
    """Dropout on the input and the hidden layer, AdamW, one-cycle rate, label smoothing 0.1: chosen on the
    RAVDESS folds among 128 / 256 / 512 units (models/README.md). Emotions no training corpus has are
    never predicted (their bias -30, as the linear head's)."""
    import torch

    torch.manual_seed(seed)
    k = len(VOICE_LABELS)
    net = torch.nn.Sequential(torch.nn.Dropout(INPUT_DROPOUT), torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(),
                              torch.nn.Dropout(DROPOUT), torch.nn.Linear(hidden, k))
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
    per_epoch = len(xt) // BATCH
    opt = torch.optim.AdamW(net.parameters(), lr=RATE, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, RATE, total_steps=EPOCHS * per_epoch)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(per_epoch):
            idx = order[i * BATCH:(i + 1) * BATCH]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    first, last = net[1], net[4]
    b = last.bias.detach().numpy().astype(np.float64)
    b[np.setdiff1d(np.arange(k), y)] = -30.0
    w1 = first.weight.detach().numpy().astype(np.float64)
    return {"w1": unpack_int8(pack_int8(w1)).astype(np.float64),  # scored as shipped
            "b1": first.bias.detach().numpy().astype(np.float64),
            "w": last.weight.detach().numpy().astype(np.float64), "b": b}


def as_head(head: dict[str, Any], t: float) -> Head:
    """The daemon's Head for a head ``fit`` made (temperature ``t``)."""
    return Head(head["w"], head["b"], t, head["class_means"], head.get("w1"), head.get("b1"))


def logits(head: dict[str, Any], z: np.ndarray) -> np.ndarray:
    if "w1" in head:
        z = np.maximum(z @ head["w1"].T + head["b1"], 0.0)
    return z @ head["w"].T + head["b"]


def score_speaker(d: dict[str, np.ndarray], head: dict[str, Any], clips: np.ndarray, adapt: bool,
                  seed: int) -> list[tuple[int, np.ndarray | None]]:
    """(label, mean window logits or None) per clip; streamed through a SpeakerAdapter if ``adapt``."""
    order = np.random.default_rng(seed).permutation(clips)
    adapter = SpeakerAdapter(head["prior_mean"], head["prior_var"])
    out = []
    for c in order:
        rows = d["clip_of"] == c
        x, who = d["x"][rows], d["emb"][rows]
        if len(x) == 0:
            out.append((int(d["label"][c]), None))
            continue
        z = adapter.transform(x, who)[0] if adapt else standardise(x, head["prior_mean"], head["prior_var"])
        out.append((int(d["label"][c]), logits(head, z).mean(0)))
        if adapt:
            adapter.update(x, who)
    return out


def evaluate(d: dict[str, np.ndarray], head: dict[str, Any], clips: np.ndarray, adapt: bool, seed: int,
             classes: list[int] | None = None) -> list[tuple[int, np.ndarray | None]]:
    out = []
    for spk in np.unique(d["speaker"][clips]):
        out += score_speaker(d, head, clips[d["speaker"][clips] == spk], adapt, seed)
    if classes is not None:  # restrict the answer to the classes both corpora have
        mask = np.full(len(VOICE_LABELS), -1e9)
        mask[classes] = 0
        out = [(y, None if lg is None else lg + mask) for y, lg in out]
    return out


def accuracy(scored: list[tuple[int, np.ndarray | None]]) -> float:
    return float(np.mean([lg is not None and int(np.argmax(lg)) == y for y, lg in scored]))


def recalls(scored: list[tuple[int, np.ndarray | None]]) -> dict[str, float]:
    out = {}
    for k, name in enumerate(VOICE_LABELS):
        hits = [lg is not None and int(np.argmax(lg)) == y for y, lg in scored if y == k]
        if hits:
            out[name] = round(float(np.mean(hits)), 3)
    return out


def ece(scored: list[tuple[int, np.ndarray | None]], t: float = 1.0, bins: int = 15) -> float:
    """Expected calibration error of the top-class probability (clips with speech)."""
    pairs = [(softmax(lg[None] / t)[0], y) for y, lg in scored if lg is not None]
    conf = np.array([p.max() for p, _ in pairs])
    correct = np.array([int(np.argmax(p)) == y for p, y in pairs])
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return float(total)


def fit_temperature(scored: list[tuple[int, np.ndarray | None]]) -> float:
    lg = np.array([x for _, x in scored if x is not None])
    y = np.array([y for y, x in scored if x is not None])
    grid = np.exp(np.linspace(np.log(0.2), np.log(5), 61))
    nll = [-np.mean(np.log(softmax(lg / t)[np.arange(len(y)), y] + 1e-12)) for t in grid]
    return float(grid[int(np.argmin(nll))])


def told_clips(d: dict[str, np.ndarray], head: dict[str, Any], clips: np.ndarray, t: float,
               seed: int) -> dict[str, list[tuple[int, np.ndarray | None, np.ndarray | None]]]:
    """Per held-out speaker, streamed through a SpeakerAdapter as in the daemon: (label, probabilities,
    its windows' standardised inputs) per clip, for the feedback simulation."""
    out: dict[str, list[tuple[int, np.ndarray | None, np.ndarray | None]]] = {}
    for spk in np.unique(d["speaker"][clips]):
        adapter = SpeakerAdapter(head["prior_mean"], head["prior_var"])
        rows = []
        for c in np.random.default_rng(seed).permutation(clips[d["speaker"][clips] == spk]):
            win = d["clip_of"] == c
            x, who = d["x"][win], d["emb"][win]
            if len(x) == 0:
                rows.append((int(d["label"][c]), None, None))
                continue
            z = adapter.transform(x, who)[0]
            rows.append((int(d["label"][c]), softmax(logits(head, z) / t).mean(0), z))
            adapter.update(x, who)
        out[str(spk)] = rows
    return out


def feedback_report(d: dict[str, np.ndarray], ns: list[int], seed: int) -> dict[str, Any]:
    """What the listener's statements give on speakers the head never heard (adapted, as the daemon runs):
    RAVDESS actors by fold (the head on everything else), and each other corpus left out whole (the head on
    the others), at the shipped head's C and temperature."""
    from feedback_sim import one_emotion, simulate

    shipped = json.loads((ROOT / "models" / "voice_head.json").read_text())
    c, t, hidden = shipped["report"]["selected_C"], shipped["temperature"], shipped["report"].get("hidden", 0)
    rav = np.flatnonzero(d["corpus"] == "ravdess")
    actor = np.array([int(s.split(":")[1]) if s.startswith("ravdess") else 0 for s in d["speaker"]])
    sets: dict[str, tuple[list[tuple[np.ndarray, np.ndarray]], list[int] | None]] = {
        "ravdess_unseen_actors_8": ([(np.flatnonzero(~np.isin(actor, held)), rav[np.isin(actor[rav], held)])
                                     for held in FOLDS], None)}
    for corpus in sorted(set(d["corpus"]) - {"ravdess"}):
        train, test = np.flatnonzero(d["corpus"] != corpus), np.flatnonzero(d["corpus"] == corpus)
        classes = sorted(set(d["label"][train].tolist()) & set(d["label"][test].tolist()))
        sets[f"{corpus}_unseen_{len(classes)}"] = ([(train, test[np.isin(d["label"][test], classes)])], classes)
    labels = list(VOICE_LABELS)
    report: dict[str, Any] = {"C": c, "temperature": t}
    for name, (splits, classes) in sets.items():
        rows: list[dict[str, Any]] = [{} for _ in ns]
        alone: list[dict[str, Any]] = []
        groups: list[tuple[Head, dict[str, list[tuple[int, np.ndarray | None, np.ndarray | None]]]]] = []
        for f, (train, test) in enumerate(splits):
            h = fit(d, train, c, seed + f, hidden)
            groups.append((as_head(h, t), told_clips(d, h, test, t, seed)))
        for i, k in enumerate(ns):
            parts = [simulate(g, labels, k, seed, classes, head=head) for head, g in groups]
            scored = sum(p["scored"] for p in parts)
            rows[i] = {"n": k} | {key: round(sum(p[key] * p["scored"] for p in parts) / scored, 4)
                                   for key in ("before", "after", "personal")}
        for emotion in ("sad", "neutral", "angry"):
            parts = [one_emotion(g, labels, VOICE_LABELS.index(emotion), 3, head, seed, classes) for head, g in groups]
            alone.append({"emotion": emotion} | {key: round(float(np.mean([p[key] for p in parts])), 4)
                                                 for key in ("others_before", "others_after", "read_as_it")})
        report[name] = {"statements": rows, "one_emotion_x3": alone}
        print(name, json.dumps(report[name]), flush=True)
    return report


def write_head(path: Path, head: dict[str, Any], t: float, report: dict[str, Any], trained_on: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    hidden = {"hidden": pack_int8(head["w1"]) | {"bias": head["b1"].round(6).tolist()}} if "w1" in head else {}
    means = pack_float16(head["class_means"]) if "w1" in head else head["class_means"].round(4).tolist()
    path.write_text(json.dumps(hidden | {
        "labels": list(VOICE_LABELS),
        "encoder": "voice_encoder_int8.onnx",
        "prior_mean": head["prior_mean"].round(6).tolist(),
        "prior_var": head["prior_var"].round(6).tolist(),
        "weights": head["w"].round(6).tolist(),
        "bias": head["b"].round(6).tolist(),
        "class_means": means,
        "temperature": round(t, 4),
        "trained_on": trained_on,
        "report": report,
    }) + "\n")


def leave_one_corpus_out(d: dict[str, np.ndarray], c: float | None, seed: int, hidden: int) -> dict[str, Any]:
    """Each corpus scored by a head trained on the others only (another language, other actors, other
    rooms), over the emotions both sides have; cold and adapted."""
    out: dict[str, Any] = {}
    for corpus in sorted(set(d["corpus"])):
        train = np.flatnonzero(d["corpus"] != corpus)
        if len(train) == 0:
            continue
        classes = sorted(set(d["label"][train].tolist()) & set(d["label"][d["corpus"] == corpus].tolist()))
        test = np.flatnonzero((d["corpus"] == corpus) & np.isin(d["label"], classes))
        head = fit(d, train, c, seed, hidden)
        row = {"classes": len(classes), "clips": int(len(test)),
               "cold": round(accuracy(evaluate(d, head, test, False, seed, classes)), 4),
               "adapted": round(accuracy(evaluate(d, head, test, True, seed, classes)), 4)}
        out[corpus] = row
        print(f"leave {corpus} out: {row}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speech", type=Path, default=ROOT.parent / "shared/data/speech")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "voice_head.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", type=Path, default=ROOT / "models",
                    help="the folder of the voice encoder to embed with (e.g. one built by build_voice_encoder.py "
                    "--top-step 1 --out DIR, to compare)")
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=CORPORA,
                    help="the corpora to train on (RAVDESS must be one: the selection folds are its actors)")
    ap.add_argument("--hidden", type=int, default=HIDDEN, help="the head's hidden units (0: a linear head)")
    ap.add_argument("--c", type=float, nargs="+", default=[0.001, 0.003, 0.01],
                    help="regularisation grid of a linear head (--hidden 0)")
    ap.add_argument("--feedback", type=int, nargs="+", help="measure listener feedback with N clips per emotion")
    ap.add_argument("--holdout-actors", help="e.g. 17,18,19,20: only a head that never heard these RAVDESS actors "
                    "(the shipped C and temperature), for scenarios built from them (docs/PROOF.md)")
    ap.add_argument("--augment", type=int, default=4, metavar="N",
                    help="train on N speed-perturbed variations of each training clip too (scripts/voice_augment.py; "
                    "0: none); held-out clips are scored as recorded")
    args = ap.parse_args()

    corpora = tuple(c for c in CORPORA if c in args.corpora)
    d = load(args.speech, corpora, args.models)
    if args.augment:
        d |= load_variations(args.speech, corpora, args.augment, args.models, args.seed)
    if args.holdout_actors:
        held = {int(a) for a in args.holdout_actors.split(",")}
        shipped = json.loads((ROOT / "models" / "voice_head.json").read_text())
        keep = np.array([not (s.startswith("ravdess") and int(s.split(":")[1]) in held) for s in d["speaker"]])
        head = fit(d, np.flatnonzero(keep), shipped["report"]["selected_C"], args.seed,
                   shipped["report"].get("hidden", 0))
        write_head(args.out, head, shipped["temperature"], {"held_out_actors": sorted(held)},
                   f"RAVDESS without actors {sorted(held)} and EMO-DB (not shipped: for scenarios of those actors)")
        print(f"wrote {args.out}", flush=True)
        return 0
    if args.feedback:
        print(json.dumps(feedback_report(d, args.feedback, args.seed)))
        return 0
    n = len(d["label"])
    rav = np.flatnonzero(d["corpus"] == "ravdess")
    emo = np.flatnonzero(d["corpus"] == "emodb")
    actor = np.array([int(s.split(":")[1]) if s.startswith("ravdess") else 0 for s in d["speaker"]])
    report: dict[str, Any] = {"clips": n, "windows": int(len(d["x"]))}
    best: dict[str, Any] | None = None
    for c in (args.c if args.hidden == 0 else [None]):
        cold, adapted, folds = [], [], []
        for f, held in enumerate(FOLDS):
            test = rav[np.isin(actor[rav], held)]
            head = fit(d, np.setdiff1d(np.arange(n), test), c, args.seed + f, args.hidden)
            cold += (sc := evaluate(d, head, test, False, args.seed))
            adapted += (sa := evaluate(d, head, test, True, args.seed))
            folds.append((round(accuracy(sc), 3), round(accuracy(sa), 3)))
        row = {"C": c, "cold": round(accuracy(cold), 4), "adapted": round(accuracy(adapted), 4), "folds": folds}
        print(f"C={c}: RAVDESS unseen speakers cold {row['cold']:.3f}, adapted {row['adapted']:.3f}  {folds}",
              flush=True)
        report.setdefault("cv", []).append(row)
        if best is None or row["adapted"] + row["cold"] > best["row"]["adapted"] + best["row"]["cold"]:
            best = {"row": row, "cold": cold, "adapted": adapted}
    assert best is not None
    c = best["row"]["C"]
    t = fit_temperature(best["cold"] + best["adapted"])
    report["selected_C"] = c
    report["hidden"] = args.hidden
    report["temperature"] = round(t, 3)
    report["per_class_recall"] = {"cold": recalls(best["cold"]), "adapted": recalls(best["adapted"])}
    report["ece"] = {"cold_before": round(ece(best["cold"]), 4), "cold_after": round(ece(best["cold"], t), 4),
                     "adapted_before": round(ece(best["adapted"]), 4),
                     "adapted_after": round(ece(best["adapted"], t), 4)}
    shared_rav = rav[np.isin(d["label"][rav], SHARED6)]
    cross = {}
    for name, train, test in (("ravdess_to_emodb", rav, emo), ("emodb_to_ravdess", emo, shared_rav)):
        head = fit(d, train, c, args.seed, args.hidden)
        cross[name] = {"cold": round(accuracy(evaluate(d, head, test, False, args.seed, SHARED6)), 4),
                       "adapted": round(accuracy(evaluate(d, head, test, True, args.seed, SHARED6)), 4)}
        print(f"{name}: cold {cross[name]['cold']:.3f}, adapted {cross[name]['adapted']:.3f}", flush=True)
    report["cross_corpus_6_classes"] = cross
    report["leave_one_corpus_out"] = leave_one_corpus_out(d, c, args.seed, args.hidden)
    print(json.dumps({k: report[k] for k in ("selected_C", "temperature", "ece", "per_class_recall")}), flush=True)

    names = {"ravdess": "RAVDESS actors 01-20 (CC BY-NC-SA 4.0)", "emodb": "EMO-DB without boredom (research use)",
             "emovo": "EMOVO (research use)"}
    write_head(args.out, fit(d, np.arange(n), c, args.seed, args.hidden), t, report,
               ", ".join(names[k] for k in CORPORA if k in set(d["corpus"])))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
