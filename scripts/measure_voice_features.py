"""Would the voice head gain from more of the encoder than it reads now?

The head shipped until 2026-12-04 read 1,024 values a window: the top LSTM layer's outputs averaged over
time and every layer's final state; this measurement is why the one shipped since also reads the lower two
layers' time averages (1,536; ``build_voice_encoder.py``). Here the same network runs in float (torch, the
weights from the Resemblyzer wheel, as the build script fetches them) and yields those and the top layer's
standard deviation over time; heads are fitted on each set of inputs with
``train_voice_head.py``'s own functions (C 0.003, no speed variations, so compare rows with each other, not
with the card's shipped figures) and scored as that script scores them: RAVDESS's unseen actors in its five
folds and each corpus left out whole, cold / adapted. No file is written.

    pip install -e '.[train]'
    python scripts/measure_voice_features.py ["+ lower means" ...]
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))
sys.path.insert(0, str(ROOT / "scripts"))

import build_voice_encoder  # noqa: E402
import train_voice_head as tvh  # noqa: E402
from model_export import download_wheel  # noqa: E402

from emomusic.audio import read_audio_file  # noqa: E402
from emomusic.labels import VOICE_LABELS  # noqa: E402
from emomusic.voice.encoder import loudest, mel_frames  # noqa: E402
from emomusic.voice.vad import speech_windows  # noqa: E402

_r = np.arange
# columns of ``features``: 0-1023 what the head read before 2026-12-04, 1024-1279 the top layer's sd over
# time, 1280-1535 the first layer's time average, 1536-1791 the second's
SETS = {"before (1,024)": _r(1024), "+ top sd": _r(1280), "+ sd + lower means": _r(1792),
        "+ lower means": np.r_[_r(1024), _r(1280, 1792)], "+ layer-1 mean": np.r_[_r(1024), _r(1280, 1536)],
        "+ layer-2 mean": np.r_[_r(1024), _r(1536, 1792)]}


def main() -> int:
    import torch

    wanted = sys.argv[1:] or list(SETS)
    unknown = [w for w in wanted if w not in SETS]
    if unknown:
        raise SystemExit(f"unknown input sets {unknown}; choose from {list(SETS)}")
    with tempfile.TemporaryDirectory() as tmp, download_wheel(build_voice_encoder.WHEEL, Path(tmp)) as z:
        checkpoint = torch.load(io.BytesIO(z.read("resemblyzer/pretrained.pt")), map_location="cpu")
    model = build_voice_encoder.encoder(checkpoint["model_state"])

    def features(mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs, means, finals = model.run(torch.from_numpy(mel)[None])
        emb = model.embed(finals[-1])
        top = outputs[-1]
        return emb[0].numpy(), torch.cat([top.mean(1), *finals, top.std(1), *means[:-1]], 1)[0].numpy()

    speech = ROOT.parent / "shared/data/speech"
    emb, states, clip_of, labels, speakers, corpus_of = [], [], [], [], [], []
    t0 = time.time()
    with torch.no_grad():
        for corpus, row, label in tvh.labelled_clips(speech, tvh.CORPORA):
            for w in speech_windows(read_audio_file(speech / corpus / row["path"])):
                e, s = features(loudest(mel_frames(w.samples)).astype(np.float32))
                emb.append(e)
                states.append(s)
                clip_of.append(len(labels))
            labels.append(VOICE_LABELS.index(label))
            speakers.append(f"{corpus}:{row['speaker']}")
            corpus_of.append(corpus)
    print(f"embedded {len(labels)} clips ({len(emb)} windows) in {time.time() - t0:.0f} s", flush=True)
    base = {"emb": np.array(emb), "clip_of": np.array(clip_of), "label": np.array(labels),
            "speaker": np.array(speakers), "corpus": np.array(corpus_of)}
    every = np.array(states)
    rav = np.flatnonzero(base["corpus"] == "ravdess")
    actor = np.array([int(s.split(":")[1]) if s.startswith("ravdess") else 0 for s in base["speaker"]])
    for name in wanted:
        d = dict(base, x=np.ascontiguousarray(every[:, SETS[name]], dtype=np.float32))
        cold: list[tuple[int, np.ndarray | None]] = []
        adapted: list[tuple[int, np.ndarray | None]] = []
        for f, held in enumerate(tvh.FOLDS):
            test = rav[np.isin(actor[rav], held)]
            head = tvh.fit(d, np.setdiff1d(np.arange(len(labels)), test), 0.003, f)
            cold += tvh.evaluate(d, head, test, False, 0)
            adapted += tvh.evaluate(d, head, test, True, 0)
        print(f"{name}: unseen RAVDESS actors {tvh.accuracy(cold):.3f} / {tvh.accuracy(adapted):.3f}", flush=True)
        tvh.leave_one_corpus_out(d, 0.003, 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
