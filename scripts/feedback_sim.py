"""A listener who corrects the daemon, simulated on labelled clips (shared by evaluate.py and
train_voice_head.py): per speaker, ``n`` clips of each emotion (seeded choice) are told to the daemon
as "I feel <emotion>" with the model's reading of that clip; the daemon's own calibration
(emomusic.listener.calibration.fit) is fitted on those pairs, and the speaker's *other* clips are
scored with and without it. A clip without speech counts as wrong either way."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from emomusic.listener.calibration import PRIOR, fit  # noqa: E402

Clip = tuple[int, np.ndarray | None]  # (true label index, the model's probabilities or None)


def simulate(speakers: dict[str, list[Clip]], labels: Sequence[str], n: int, seed: int = 0,
             classes: Sequence[int] | None = None, prior: float = PRIOR, fit_scale: bool = False) -> dict[str, Any]:
    """Accuracy on the clips not used as feedback, before and after calibration. ``classes``
    restricts the answer (e.g. to the emotions both corpora have)."""
    rng = np.random.default_rng(seed)
    allowed = np.full(len(labels), -np.inf) if classes is not None else np.zeros(len(labels))
    if classes is not None:
        allowed[list(classes)] = 0.0
    before, after = [], []
    for clips in speakers.values():
        told: list[int] = []
        for k in sorted({y for y, _ in clips}):
            have = [i for i, (y, p) in enumerate(clips) if y == k and p is not None]
            if len(have) > n:
                told += [int(i) for i in rng.choice(have, n, replace=False)]
        cal = fit(labels, np.array([clips[i][1] for i in told]).reshape(len(told), len(labels)),
                  [clips[i][0] for i in told], prior=prior, fit_scale=fit_scale)
        for i, (y, p) in enumerate(clips):
            if i in told:
                continue
            if p is None:
                before.append(False)
                after.append(False)
                continue
            before.append(int(np.argmax(np.log(np.clip(p, 1e-12, 1)) + allowed)) == y)
            after.append(int(np.argmax(np.log(cal.apply_vector(p)) + allowed)) == y)
    return {"n": n, "scored": len(before), "before": round(float(np.mean(before)), 4),
            "after": round(float(np.mean(after)), 4),
            "gain": round(float(np.mean(after)) - float(np.mean(before)), 4)}
