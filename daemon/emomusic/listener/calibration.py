"""Per-listener calibration of one modality's probabilities, fitted from what the listener said.

A model trained on other people may read this listener's resting face as sad, or their calm voice
as neutral. Every "I feel X" pairs the modality's recent raw output with X. The correction is a
bias per label, optionally with a scale on the log-probabilities (an inverse temperature):
``q ∝ exp(scale · log p + bias)``, fitted by penalised maximum likelihood (Newton's method: a handful
of parameters). The penalty acts like ``prior`` pairs that say "no correction", so the first
statements move it a little and many move it fully: little feedback cannot make things worse by much.
The scale is not fitted by default: on held-out speakers, bias alone gained more from one or three
statements per emotion, and it never lost accuracy on another corpus (models/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PRIOR = 1.0  # pseudo-pairs of "no correction" (chosen by leave-speaker-out evaluation, models/README.md)
EPS = 1e-4  # probabilities are floored here before the log: a model's hard zero is not certainty
SCALE_RANGE = (0.25, 4.0)
MAX_BIAS = 4.0
NEWTON_STEPS = 25


@dataclass
class Calibration:
    """The correction for one modality over its own labels; ``n`` pairs went into it."""

    labels: tuple[str, ...]
    bias: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: float = 1.0
    n: int = 0

    def __post_init__(self) -> None:
        if self.bias.size != len(self.labels):
            self.bias = np.zeros(len(self.labels))

    def apply_vector(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for rows of ``p`` ordered as ``labels``."""
        z = self.scale * np.log(np.clip(p, EPS, 1.0)) + self.bias
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def apply(self, probs: dict[str, float]) -> dict[str, float]:
        """The same on a label -> probability dict; a dict over other labels passes unchanged."""
        if self.n == 0 or set(probs) != set(self.labels):
            return probs
        q = self.apply_vector(np.array([probs[k] for k in self.labels]))
        return {k: float(v) for k, v in zip(self.labels, q, strict=True)}

    def to_json(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "bias": [round(float(b), 4) for b in self.bias],
                "scale": round(self.scale, 4), "n": self.n}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        labels = tuple(str(x) for x in data["labels"])
        bias = np.array([float(b) for b in data["bias"]])
        if bias.size != len(labels):
            raise ValueError("bias and labels differ in length")
        scale = float(np.clip(float(data["scale"]), *SCALE_RANGE))
        return cls(labels, np.clip(bias, -MAX_BIAS, MAX_BIAS), scale, int(data["n"]))


def fit(labels: Sequence[str], probs: np.ndarray, truth: Sequence[int], prior: float = PRIOR,
        fit_scale: bool = False) -> Calibration:
    """The calibration that best explains ``truth`` (label indices) from ``probs`` (n, len(labels)),
    shrunk toward no correction by ``prior`` pseudo-pairs."""
    labels = tuple(labels)
    k = len(labels)
    n = len(truth)
    if n == 0:
        return Calibration(labels)
    z = np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0))
    y = np.zeros((n, k))
    y[np.arange(n), np.asarray(truth)] = 1.0
    theta = np.concatenate([np.zeros(k), [1.0]])  # bias..., scale
    anchor = theta.copy()
    m = k + 1 if fit_scale else k  # parameters fitted
    for _ in range(NEWTON_STEPS):
        b, a = theta[:k], theta[k]
        logits = a * z + b
        logits -= logits.max(axis=1, keepdims=True)
        q = np.exp(logits)
        q /= q.sum(axis=1, keepdims=True)
        r = q - y
        grad = (np.concatenate([r.sum(0), [(r * z).sum()]]) + prior * (theta - anchor))[:m]
        hess = prior * np.eye(m)
        for qi, zi in zip(q, z, strict=True):
            j = np.hstack([np.eye(k), zi[:, None]])[:, :m]  # d logits / d (bias, scale)
            hess += j.T @ (np.diag(qi) - np.outer(qi, qi)) @ j
        step = np.linalg.solve(hess, grad)
        theta[:m] -= step
        if np.abs(step).max() < 1e-6:
            break
    bias = np.clip(theta[:k] - theta[:k].mean(), -MAX_BIAS, MAX_BIAS)
    scale = float(np.clip(theta[k], *SCALE_RANGE))
    return Calibration(labels, bias, scale, n)
