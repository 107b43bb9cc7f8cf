"""Voice activity: WebRTC VAD on 30 ms frames, segments with padding, fixed windows for the model.

The usual py-webrtcvad pattern: a ring of the last ~300 ms of frames; a segment starts when most of
them are voiced and ends when most are not, keeping ~200 ms of padding on each side. Voiced audio
is then cut into windows (2 s, hop 1 s; a shorter segment of at least 0.8 s is zero-padded) as soon
as they are complete, so a long utterance is analysed while it goes on. With ``first_s`` (the daemon's
``voice.first_s``), an utterance's first second also comes as a padded, provisional window, a second
before its first whole one.

Self-hearing guard: while the daemon's own music plays, WebRTC VAD readily calls music "speech".
:class:`PlaybackGuard` tracks the microphone level that playback causes (the running median of frame
energy while playing: speech is the minority of frames, so the median follows the music) and a
frame counts as voiced only if it is ``margin_db`` above that. What this cannot do: separate a voice
that is quieter than the music at the microphone; true echo cancellation belongs to the OS
(PipeWire's echo-cancel module, see README).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from emomusic.audio import PlaybackGuard

RATE = 16000
FRAME = 480  # 30 ms at 16 kHz
FRAME_S = FRAME / RATE


def frames_db(frames: np.ndarray) -> np.ndarray:
    """Each row's energy in dB full scale (int16 frames, one per row): a chunk's frames at once, because
    per frame the numpy calls cost more than the arithmetic (#35)."""
    x = frames.astype(np.float32) / 32768.0
    return 10.0 * np.log10(np.mean(x * x, axis=1).astype(np.float64) + 1e-10)


@dataclass(frozen=True, slots=True)
class SpeechWindow:
    """One window handed to the voice model."""

    t: float  # stream time of its first sample
    end: float  # stream time at which its audio ends (before padding): when it could be analysed
    samples: np.ndarray  # int16, exactly window length (zero-padded if the speech was shorter)
    speech_s: float  # how much of it is real (unpadded) audio
    snr_db: float  # voiced frame level above the noise floor
    over_music_db: float | None  # voiced level above the playback level, while music plays
    provisional: bool = False  # an utterance's first second, read before its first whole window


class SpeechWindower:
    """Feeds 16 kHz int16 audio through VAD and segmentation; returns complete windows."""

    def __init__(self, aggressiveness: int = 2, window_s: float = 2.0, hop_s: float = 1.0, min_s: float = 0.8,
                 ring_ms: int = 300, padding_ms: int = 210, start_ratio: float = 0.8, end_ratio: float = 0.9,
                 max_segment_s: float = 30.0, guard: PlaybackGuard | None = None, first_s: float = 0.0) -> None:
        import webrtcvad

        self.vad = webrtcvad.Vad(aggressiveness)
        self.window = int(window_s * RATE)
        self.hop = int(hop_s * RATE)
        self.min_len = int(min_s * RATE)
        self.first_len = int(first_s * RATE)  # 0: no provisional window
        self._first_sent = False  # this segment's provisional window is out
        self.ring_n = max(1, ring_ms // 30)
        self.pad_n = max(0, padding_ms // 30)
        self.start_ratio, self.end_ratio = start_ratio, end_ratio
        self.max_frames = int(max_segment_s / FRAME_S)
        self.guard = guard or PlaybackGuard()
        self.noise_db = -60.0
        self._buf = np.zeros(0, np.int16)
        self._t = 0.0  # stream time of _buf[0]
        self._ring: deque[tuple[np.ndarray, bool, float]] = deque(maxlen=self.ring_n)
        self._ring_voiced = 0  # voiced frames in the ring, counted as they come and go
        self._history: deque[np.ndarray] = deque(maxlen=self.pad_n)
        self._segment: list[np.ndarray] = []
        self._seg_voiced_db: list[float] = []
        self._seg_t = 0.0
        self._emitted_until = 0  # samples of the segment already covered by emitted windows
        self._first_voiced = self._last_voiced = 0  # frame indexes in the segment
        self._trailing_unvoiced = 0
        self.triggered = False

    # -- per frame ------------------------------------------------------------------------------
    def _is_voiced(self, frame: np.ndarray, db: float) -> bool:
        self.guard.observe(db)
        if db < self.guard.threshold_db():
            return False
        return bool(self.vad.is_speech(frame.tobytes(), RATE))

    def feed(self, samples: np.ndarray, t: float) -> list[SpeechWindow]:
        """Add audio whose first sample is at stream time ``t``; returns windows completed by it."""
        if not self._buf.size:
            self._t = t
        self._buf = np.concatenate([self._buf, samples.astype(np.int16)])
        out: list[SpeechWindow] = []
        n = self._buf.size // FRAME
        frames = self._buf[: n * FRAME].reshape(n, FRAME)
        for i, db in enumerate(frames_db(frames).tolist()):
            out += self._frame(frames[i], db, self._t + i * FRAME_S)
        self._buf = self._buf[n * FRAME :]
        self._t += n * FRAME_S
        return out

    def _to_ring(self, frame: np.ndarray, voiced: bool, db: float) -> None:
        if len(self._ring) == self.ring_n:
            self._ring_voiced -= self._ring[0][1]
        self._ring.append((frame, voiced, db))
        self._ring_voiced += voiced

    def _clear_ring(self) -> None:
        self._ring.clear()
        self._ring_voiced = 0

    def _frame(self, frame: np.ndarray, db: float, t: float) -> list[SpeechWindow]:
        voiced = self._is_voiced(frame, db)
        if not voiced:  # the noise floor follows quiet frames quickly, loud ones slowly
            rate = 0.05 if db < self.noise_db else 0.002
            self.noise_db += rate * (db - self.noise_db)
        if not self.triggered:
            self._to_ring(frame, voiced, db)
            if self._ring_voiced >= self.start_ratio * self.ring_n:
                self.triggered = True
                ring_frames = [f for f, _, _ in self._ring]
                pre = list(self._history)
                self._segment = pre + ring_frames
                self._seg_t = t - (len(self._segment) - 1) * FRAME_S
                self._seg_voiced_db = [d for _, v, d in self._ring if v]
                flags = [v for _, v, _ in self._ring]
                self._first_voiced = len(pre) + flags.index(True)
                self._last_voiced = len(pre) + len(flags) - 1 - flags[::-1].index(True)
                self._emitted_until = 0
                self._first_sent = False
                self._trailing_unvoiced = 0
                self._clear_ring()
            else:
                if len(self._ring) == self.ring_n:
                    self._history.append(self._ring[0][0])
                return []
            return self._windows(final=False)
        self._segment.append(frame)
        self._to_ring(frame, voiced, db)
        if voiced:
            self._seg_voiced_db.append(db)
            self._last_voiced = len(self._segment) - 1
            self._trailing_unvoiced = 0
        else:
            self._trailing_unvoiced += 1
        unvoiced = len(self._ring) - self._ring_voiced
        if unvoiced >= self.end_ratio * self.ring_n or len(self._segment) >= self.max_frames:
            # keep padding_ms after the last voiced frame
            cut = max(0, self._trailing_unvoiced - self.pad_n)
            if cut:
                del self._segment[-cut:]
            out = self._windows(final=True)
            self.triggered = False
            self._clear_ring()
            self._history.clear()
            self._segment = []
            return out
        return self._windows(final=False)

    # -- windows --------------------------------------------------------------------------------
    def _windows(self, final: bool) -> list[SpeechWindow]:
        audio_len = len(self._segment) * FRAME
        out = []
        # full windows, every hop, as soon as they are complete
        while self._emitted_until + self.window <= audio_len:
            out.append(self._make(self._emitted_until, self.window))
            self._emitted_until += self.hop
        if self.first_len and not final and not self._emitted_until and not self._first_sent:
            voiced_len = (self._last_voiced - self._first_voiced + 1) * FRAME
            if voiced_len >= self.first_len:  # a first reading now, padded; the whole window refines it
                self._first_sent = True
                out.append(self._make(0, audio_len, voiced_len, provisional=True))
        if final:
            covered = self._emitted_until - self.hop + self.window if self._emitted_until else 0
            rest = audio_len - covered
            voiced_len = (self._last_voiced - self._first_voiced + 1) * FRAME
            if self._emitted_until == 0 and voiced_len >= self.min_len:
                out.append(self._make(0, audio_len, voiced_len))  # a short utterance: one padded window
            elif self._emitted_until and rest >= self.hop // 2:
                out.append(self._make(audio_len - self.window, self.window))  # the tail, end-aligned
        return out

    def _make(self, start: int, length: int, speech_len: int | None = None, provisional: bool = False
              ) -> SpeechWindow:
        audio = np.concatenate(self._segment)[start : start + length]
        if audio.size < self.window:
            pad = self.window - audio.size
            audio = np.pad(audio, (pad // 2, pad - pad // 2))
        voiced_db = float(np.mean(self._seg_voiced_db)) if self._seg_voiced_db else self.noise_db
        music = self.guard.music_level_db()
        return SpeechWindow(
            t=self._seg_t + start / RATE,
            end=self._seg_t + (start + min(length, len(self._segment) * FRAME - start)) / RATE,
            samples=audio.astype(np.int16),
            speech_s=(length if speech_len is None else speech_len) / RATE,
            snr_db=voiced_db - self.noise_db,
            over_music_db=None if music is None else voiced_db - music,
            provisional=provisional,
        )

    def flush(self) -> list[SpeechWindow]:
        """End of input: close an open segment."""
        if not self.triggered:
            return []
        cut = max(0, self._trailing_unvoiced - self.pad_n)
        if cut:
            del self._segment[-cut:]
        out = self._windows(final=True)
        self.triggered = False
        self._segment = []
        return out


def speech_windows(samples: np.ndarray, **kwargs: object) -> list[SpeechWindow]:
    """All windows of a whole recording: the daemon's path, for training and evaluation."""
    w = SpeechWindower(**kwargs)  # type: ignore[arg-type]
    return w.feed(samples, 0.0) + w.flush()
