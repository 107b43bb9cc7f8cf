"""A listener who tells the daemon how they feel, simulated on labelled clips (shared by evaluate.py and
train_voice_head.py): per speaker, ``n`` clips of each emotion (seeded choice) are told as "I feel
<emotion>"; the speaker's *other* clips are scored before and after, two ways:

- ``calibration``: the per-listener bias calibration the face still uses (emomusic.listener.calibration),
  fitted on the model's probabilities of the told clips;
- ``personal``: the voice's own few-shot update (emomusic.voice.personal.fit_statements), fitted on the
  told clips' windows, with the speaker's mean input as the voice's centre, added to each window's
  logits as the daemon does.

``one_emotion`` measures the bound: a listener who only ever says one emotion, and what that does to
the clips of every other emotion. A clip without speech counts as wrong either way."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from emomusic.listener.calibration import PRIOR, fit  # noqa: E402
from emomusic.runtime import softmax  # noqa: E402
from emomusic.voice.head import Head  # noqa: E402
from emomusic.voice.personal import Update, fit_statements  # noqa: E402

# (true label index, the model's probabilities or None, the clip's windows' standardised inputs or None)
Clip = tuple[int, np.ndarray | None, np.ndarray | None]


def _mask(n_labels: int, classes: Sequence[int] | None) -> np.ndarray:
    allowed = np.full(n_labels, -np.inf) if classes is not None else np.zeros(n_labels)
    if classes is not None:
        allowed[list(classes)] = 0.0
    return allowed


def _personal(head: Head | None, clips: list[Clip], told: list[int]) -> Update | None:
    if head is None or not told or any(clips[i][2] is None for i in told):
        return None
    centre = np.vstack([z for _, _, z in clips if z is not None]).mean(0)
    return fit_statements(head, [(clips[i][0], clips[i][2]) for i in told], centre)  # type: ignore[misc]


def _personal_logp(head: Head, upd: Update | None, p: np.ndarray, z: np.ndarray | None) -> np.ndarray:
    """The clip's log-probabilities with the voice's update added to each window's logits."""
    if upd is None or z is None:
        return np.log(np.clip(p, 1e-12, 1))
    return np.log(np.clip(softmax(head.logits(z) + upd(z)).mean(0), 1e-12, 1))


def simulate(speakers: dict[str, list[Clip]], labels: Sequence[str], n: int, seed: int = 0,
             classes: Sequence[int] | None = None, prior: float = PRIOR, fit_scale: bool = False,
             head: Head | None = None) -> dict[str, Any]:
    """Accuracy on the clips not told, before and after (calibration; with ``head``, personal too).
    ``classes`` restricts the answer (e.g. to the emotions both corpora have)."""
    rng = np.random.default_rng(seed)
    allowed = _mask(len(labels), classes)
    before, after, personal = [], [], []
    for clips in speakers.values():
        told: list[int] = []
        for k in sorted({y for y, _, _ in clips}):
            have = [i for i, (y, p, _) in enumerate(clips) if y == k and p is not None]
            if len(have) > n:
                told += [int(i) for i in rng.choice(have, n, replace=False)]
        cal = fit(labels, np.array([clips[i][1] for i in told]).reshape(len(told), len(labels)),
                  [clips[i][0] for i in told], prior=prior, fit_scale=fit_scale)
        upd = _personal(head, clips, told)
        for i, (y, p, z) in enumerate(clips):
            if i in told:
                continue
            if p is None:
                before.append(False)
                after.append(False)
                personal.append(False)
                continue
            logp = np.log(np.clip(p, 1e-12, 1))
            before.append(int(np.argmax(logp + allowed)) == y)
            after.append(int(np.argmax(np.log(cal.apply_vector(p)) + allowed)) == y)
            if head is not None:
                personal.append(int(np.argmax(_personal_logp(head, upd, p, z) + allowed)) == y)
    out = {"n": n, "scored": len(before), "before": round(float(np.mean(before)), 4),
           "after": round(float(np.mean(after)), 4),
           "gain": round(float(np.mean(after)) - float(np.mean(before)), 4)}
    if head is not None:
        out["personal"] = round(float(np.mean(personal)), 4)
    return out


def one_emotion(speakers: dict[str, list[Clip]], labels: Sequence[str], emotion: int, n: int, head: Head,
                seed: int = 0, classes: Sequence[int] | None = None) -> dict[str, Any]:
    """Each speaker tells only ``emotion`` (``n`` clips of it): accuracy on their clips of the *other*
    emotions before and after the personal update, and how often those are then read as ``emotion``."""
    rng = np.random.default_rng(seed)
    allowed = _mask(len(labels), classes)
    before, after, drawn = [], [], []
    for clips in speakers.values():
        have = [i for i, (y, p, z) in enumerate(clips) if y == emotion and z is not None]
        told = [int(i) for i in rng.choice(have, min(n, len(have)), replace=False)]
        upd = _personal(head, clips, told)
        for y, p, z in clips:
            if y == emotion or p is None or z is None:
                continue
            new = int(np.argmax(_personal_logp(head, upd, p, z) + allowed))
            before.append(int(np.argmax(np.log(np.clip(p, 1e-12, 1)) + allowed)) == y)
            after.append(new == y)
            drawn.append(new == emotion)
    return {"emotion": labels[emotion], "told": n, "others_before": round(float(np.mean(before)), 4),
            "others_after": round(float(np.mean(after)), 4), "read_as_it": round(float(np.mean(drawn)), 4)}
