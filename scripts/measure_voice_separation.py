"""How well the daemon's voice adaptation tells voices apart, at several thresholds (voice.adapt.SAME_VOICE).

    python scripts/measure_voice_separation.py                       # the shipped encoder
    python scripts/measure_voice_separation.py --models DIR --same 0.55 0.6 0.65 0.7

Each window of the shared corpora (the embeddings train_voice_head.py caches) streamed through the daemon's
SpeakerAdapter, as the daemon hears them: a RAVDESS actor alone (how many voices one person becomes: each
splits their adaptation and their statements), and houses of 3 speakers drawn from all corpora, their clips
in a seeded shuffled order (voices per speaker, and the share of windows that land in a voice most of
whose windows are someone else's). A rebuilt encoder needs the threshold chosen again on these numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "daemon"))

from train_voice_head import CORPORA, load  # noqa: E402

from emomusic.voice import adapt  # noqa: E402


def stream(d: dict[str, np.ndarray], speakers: list[str], rng: np.random.Generator) -> tuple[list[int], float]:
    """Voices per speaker, and the windows that joined a voice most of whose windows are another's."""
    clips = np.flatnonzero(np.isin(d["speaker"], speakers))
    rng.shuffle(clips)
    adapter = adapt.SpeakerAdapter(np.zeros(d["x"].shape[1]), np.ones(d["x"].shape[1]))
    who, ids = [], []
    for c in clips:
        rows = np.flatnonzero(d["clip_of"] == c)
        ids += adapter.update(d["x"][rows], d["emb"][rows], now=float(len(ids)))
        who += [d["speaker"][c]] * len(rows)
    w, v = np.array(who), np.array(ids)
    wrong = 0
    for voice in set(ids):
        _, counts = np.unique(w[v == voice], return_counts=True)
        wrong += int(counts.sum() - counts.max())
    return [len(set(v[w == s])) for s in speakers], wrong / len(ids)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speech", type=Path, default=ROOT.parent / "shared/data/speech")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--same", type=float, nargs="+", default=[adapt.SAME_VOICE - 0.05, adapt.SAME_VOICE,
                                                              adapt.SAME_VOICE + 0.05])
    ap.add_argument("--houses", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    d = load(args.speech, CORPORA, args.models)
    everyone = sorted(set(d["speaker"].tolist()))
    actors = [s for s in everyone if s.startswith("ravdess")]
    for same in args.same:
        adapt.SAME_VOICE = same
        rng = np.random.default_rng(args.seed)
        alone = [stream(d, [a], rng)[0][0] for a in actors]
        per_speaker, wrong = [], []
        for _ in range(args.houses):
            n, share = stream(d, list(rng.choice(everyone, 3, replace=False)), rng)
            per_speaker += n
            wrong.append(share)
        print(f"same voice at cosine >= {same:.2f}: a RAVDESS actor alone {np.mean(alone):.2f} voices; "
              f"{args.houses} houses of 3: {np.mean(per_speaker):.2f} voices per speaker, "
              f"{100 * np.mean(wrong):.1f} % of windows in another's voice", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
