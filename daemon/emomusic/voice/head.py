"""The voice emotion head (``models/voice_head.json``): standardised encoder states -> logits.

A perceptron with one hidden layer (128 ReLU units, their weights stored as int8 with a scale per
unit) or, as written before 2026-12-05 (``train_voice_head.py --hidden 0``), a linear layer alone. The
hidden layer lifted unseen RAVDESS actors from 69.9 to 72.2 % adapted and a language never heard
(EMOVO left out) from 43.5 to 45.8 % (models/README.md), for 0.2 M multiply-adds a window beside the
encoder's 174 M.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emomusic.runtime import ModelError

REBUILD_VOICE = "python scripts/train_voice_head.py (see models/README.md)"


@dataclass(frozen=True)
class Head:
    """logits = (relu(z @ hidden_w.T + hidden_b) @ w.T + b) / temperature; without a hidden layer,
    (z @ w.T + b) / temperature."""

    w: np.ndarray  # (labels, hidden units or input)
    b: np.ndarray  # (labels,)
    temperature: float
    class_means: np.ndarray  # (labels, input): each emotion's mean standardised input in training; 0 where none
    hidden_w: np.ndarray | None = None  # (hidden units, input)
    hidden_b: np.ndarray | None = None  # (hidden units,)

    @property
    def dim(self) -> int:
        """The width of the head's input (the encoder's states)."""
        return int(self.class_means.shape[1])

    def logits(self, z: np.ndarray) -> np.ndarray:
        if self.hidden_w is not None and self.hidden_b is not None:
            z = np.maximum(z @ self.hidden_w.T + self.hidden_b, 0.0)
        return (z @ self.w.T + self.b) / self.temperature


def pack_int8(w: np.ndarray) -> dict[str, object]:
    """``w`` (rows, cols) as int8 with one scale per row (the largest magnitude maps to 127)."""
    scale = np.maximum(np.abs(w).max(1), 1e-12) / 127.0
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    return {"shape": list(w.shape), "scale": [float(s) for s in scale.astype(np.float32)],
            "int8": base64.b64encode(q.tobytes()).decode("ascii")}


def unpack_int8(packed: dict[str, object]) -> np.ndarray:
    """``pack_int8``'s output back to float32."""
    rows, cols = (int(n) for n in packed["shape"])  # type: ignore[attr-defined]
    q = np.frombuffer(base64.b64decode(str(packed["int8"])), np.int8)
    if q.size != rows * cols:
        raise ValueError(f"{q.size} int8 weights are not {rows} x {cols}")
    scale = np.array(packed["scale"], np.float32)
    if scale.shape != (rows,):
        raise ValueError(f"{scale.size} scales for {rows} rows")
    return q.reshape(rows, cols).astype(np.float32) * scale[:, None]


def float16_text(x: np.ndarray) -> str:
    """``x`` as little-endian float16, base64: how the head's class centres and the listener's statements
    (voice/personal.py) keep their numbers, a third of their size as text."""
    return base64.b64encode(x.astype("<f2").tobytes()).decode("ascii")


def float16_rows(text: str, cols: int) -> np.ndarray:
    """``float16_text``'s output back to float32 rows of ``cols``; not a whole number of rows is a ValueError."""
    x = np.frombuffer(base64.b64decode(text), "<f2").astype(np.float32)
    if x.size == 0 or x.size % cols:
        raise ValueError(f"{x.size} float16 values are not rows of {cols}")
    return x.reshape(-1, cols)


def pack_float16(x: np.ndarray) -> dict[str, object]:
    """``x`` (rows, cols) as float16 with its shape."""
    return {"shape": list(x.shape), "float16": float16_text(x)}


def unpack_float16(packed: dict[str, object]) -> np.ndarray:
    rows, cols = (int(n) for n in packed["shape"])  # type: ignore[attr-defined]
    x = float16_rows(str(packed["float16"]), cols)
    if x.shape[0] != rows:
        raise ValueError(f"{x.shape[0]} rows of float16 values, not {rows}")
    return x


@dataclass(frozen=True)
class HeadFile:
    """What ``voice_head.json`` holds for the daemon: the head and the population's statistics."""

    head: Head
    prior_mean: np.ndarray
    prior_var: np.ndarray


def load_head(path: Path, labels: tuple[str, ...], dim: int) -> HeadFile:
    """Read ``path``; a missing, corrupt or mismatched file is a ModelError that names it."""
    try:
        d = json.loads(path.read_text())
        w, b = np.array(d["weights"], np.float32), np.array(d["bias"], np.float32)
        hidden_w = hidden_b = None
        if "hidden" in d:
            hidden_w, hidden_b = unpack_int8(d["hidden"]), np.array(d["hidden"]["bias"], np.float32)
        means = d.get("class_means", np.zeros((len(labels), dim)))
        means = unpack_float16(means) if isinstance(means, dict) else np.array(means, np.float32)
        head = Head(w, b, float(d["temperature"]), means, hidden_w, hidden_b)
        prior_mean, prior_var = np.array(d["prior_mean"]), np.array(d["prior_var"])
        inner = w.shape[1] if hidden_w is None else hidden_w.shape[0]
        ok = (tuple(d["labels"]) == labels and means.shape == (len(labels), dim) and w.shape == (len(labels), inner)
              and b.shape == (len(labels),) and prior_mean.shape == prior_var.shape == (dim,)
              and (hidden_w is None or (hidden_w.shape[1] == dim and hidden_b is not None
                                        and hidden_b.shape == (inner,))))
    except FileNotFoundError:
        raise ModelError(f"model file {path} not found; rebuild it with {REBUILD_VOICE}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelError(f"model file {path} cannot be loaded ({e}); rebuild it with {REBUILD_VOICE}") from None
    if not ok:
        raise ModelError(f"model file {path} does not fit this emomusic's labels or encoder; "
                         f"rebuild it with {REBUILD_VOICE}")
    return HeadFile(head, prior_mean, prior_var)
