"""Build an audio-visual test stream with a known emotion timeline.

    python scripts/make_scenario.py --faces FACES.npz --voices LABELS.csv --out DIR \\
        [--segments 6 --segment-s 20 --seed N --speakers 17,18,19,20]

Inputs are the evaluation formats: a faces npz (``images`` + ``labels``; the shared FER2013/FER+ npz
is accepted too, its valid split with FER+ majority labels) and a voice CSV (``path,emotion``).
Each segment has one emotion present in both: the video (MJPG AVI, 640x480, 15 fps) shows a face
image of that emotion at a random position and scale on a plain or noisy background, drifting a
little; the 16 kHz WAV plays clips of the same emotion with pauses between them. Writes
DIR/video.avi, DIR/audio.wav and DIR/truth.csv (start_s,end_s,emotion).

With ``--gaps`` segments after the first are also (seeded, a quarter each) as a room is: the
listener *looks away* (no face for 5-10 s in the middle), is *silent* (no speech in the whole
segment), *two people talk* (every other clip is another emotion, 6 dB quieter: someone else in the
room), or none of these. ``gaps.csv`` says which segment had what.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "daemon"))

from emomusic.audio import read_audio_file, write_wav  # noqa: E402
from emomusic.labels import normalize_label  # noqa: E402

FERPLUS_ORDER = ("neutral", "happy", "surprised", "sad", "angry", "disgust", "fearful", "contempt")
FPS = 15
SIZE = (640, 480)
RATE = 16000


def load_faces(npz: Path) -> tuple[np.ndarray, list[str]]:
    d = np.load(npz, allow_pickle=False)
    if "labels" in d.files:
        labels = [normalize_label(str(x)) for x in d["labels"]]
        return d["images"], [lab or "" for lab in labels]
    m = d["split"] == "valid"
    votes = d["ferplus_votes"][m]
    major = votes.argmax(1)
    ok = (votes[:, 0] != 255) & (major < 8) & (votes.max(1) >= 0.5 * votes.sum(1))  # clear majorities only
    return d["images"][m][ok], [FERPLUS_ORDER[i] for i in major[ok]]


def load_voices(csv_path: Path, speakers: set[str] | None = None) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if speakers is not None and row.get("speaker", "").lstrip("0") not in speakers:
                continue
            label = normalize_label(row["emotion"])
            if label:
                out.setdefault(label, []).append(csv_path.parent / row["path"])
    return out


def write_face(writer: Any, face: np.ndarray, seconds: float, away: tuple[int, int],
               rng: np.random.Generator) -> None:
    """One face image of the segment's emotion, drifting slowly (gone between the ``away`` frames)."""
    import cv2

    w, h = SIZE
    face = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR) if face.ndim == 2 else face
    side = int(rng.uniform(150, 260))
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    x0, y0 = rng.uniform(0, w - side - 40), rng.uniform(0, h - side - 40)
    noisy = rng.random() < 0.5
    base = np.full((h, w, 3), rng.integers(40, 200), np.uint8)
    for i in range(int(seconds * FPS)):
        frame = base.copy()
        if noisy:
            frame = np.clip(frame.astype(np.int16) + rng.integers(-20, 21, frame.shape), 0, 255).astype(np.uint8)
        dx = int(20 * np.sin(i / FPS * 0.7))
        dy = int(10 * np.sin(i / FPS * 1.1))
        x, y = int(x0) + 20 + dx, int(y0) + 20 + dy
        if not away[0] <= i < away[1]:
            frame[y : y + side, x : x + side] = face
        writer.write(frame)


def speech(voices: dict[str, list[Path]], emotion: str, gap: str, seconds: float, rng: np.random.Generator,
           gap_rng: np.random.Generator) -> np.ndarray:
    """Clips of this emotion separated by pauses, filling the segment (none when it is silent; every
    other clip another emotion, quieter, with two voices)."""
    seg = np.zeros(int(seconds * RATE), np.int16)
    pos = int(rng.uniform(0.3, 1.0) * RATE)
    others = [e for e in voices if e != emotion]
    n_clip = 0
    while pos < seg.size and gap != "silent":
        said = emotion if gap != "two_voices" or n_clip % 2 == 0 else str(gap_rng.choice(others))
        clip = read_audio_file(voices[said][int(rng.integers(len(voices[said])))])
        if said != emotion:
            clip = (clip * 0.5).astype(np.int16)
        n_clip += 1
        if pos + clip.size > seg.size:
            break
        seg[pos : pos + clip.size] = clip
        pos += clip.size + int(rng.uniform(0.5, 1.5) * RATE)
    return seg


def main() -> int:
    import cv2

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=Path, required=True)
    ap.add_argument("--voices", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--segments", type=int, default=6)
    ap.add_argument("--segment-s", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speakers", default="",
                    help="only clips of these speakers (the CSV's speaker column), e.g. 17,18,19,20: speakers a "
                    "model under test has not heard")
    ap.add_argument("--gaps", action="store_true", help="look-away, silent and two-voice segments (see above)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    images, face_labels = load_faces(args.faces)
    speakers = {x.strip().lstrip("0") for x in args.speakers.split(",")} if args.speakers else None
    voices = load_voices(args.voices, speakers)
    if not voices:
        raise SystemExit(f"{args.voices}: no clips of speakers {args.speakers}")
    common = sorted({lab for lab in face_labels if lab} & set(voices))
    if not common:
        raise SystemExit("no emotion occurs in both the faces and the voices")
    emotions: list[str] = []
    while len(emotions) < args.segments:
        choice = str(rng.choice(common))
        if not emotions or choice != emotions[-1] or len(common) == 1:
            emotions.append(choice)

    args.out.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(args.out / "video.avi"), cv2.VideoWriter.fourcc(*"MJPG"), FPS, SIZE)
    audio_parts: list[np.ndarray] = []
    truth = []
    gaps = []
    gap_rng = np.random.default_rng([args.seed, 7])  # its own stream: without --gaps, scenarios stay as they were
    for k, emotion in enumerate(emotions):
        start = k * args.segment_s
        truth.append((start, start + args.segment_s, emotion))
        gap = str(gap_rng.choice(["none", "look_away", "silent", "two_voices"])) if args.gaps and k else "none"
        gaps.append((k, gap))
        away = (int(gap_rng.uniform(5, 8) * FPS), int(gap_rng.uniform(10, 15) * FPS)) if gap == "look_away" else (0, 0)
        idx = rng.choice([i for i, lab in enumerate(face_labels) if lab == emotion])
        write_face(writer, images[idx], args.segment_s, away, rng)
        audio_parts.append(speech(voices, emotion, gap, args.segment_s, rng, gap_rng))
    writer.release()
    write_wav(args.out / "audio.wav", np.concatenate(audio_parts))
    with open(args.out / "truth.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["start_s", "end_s", "emotion"])
        wr.writerows([(f"{a:.1f}", f"{b:.1f}", e) for a, b, e in truth])
    if args.gaps:
        with open(args.out / "gaps.csv", "w", newline="") as f:
            csv.writer(f).writerows([("segment", "gap"), *gaps])
    print(f"wrote {args.out}/video.avi, audio.wav, truth.csv: {', '.join(emotions)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
