"""Audio sources: a live microphone through sounddevice, or a WAV/FLAC file.

Both deliver 16 kHz mono int16 chunks of ``block_ms``. The microphone is opened at the device's
native rate (many USB mics only do 44.1/48 kHz) and resampled with soxr, which streams without
edge clicks between blocks.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emomusic.audio import RATE
from emomusic.messages import AudioChunk
from emomusic.queues import Inbox
from emomusic.sources.base import Source, SourceEnded, StatusCallback, check_still_there

OVERFLOW_REPORT_S = 10.0
# A live stream calls back once per block_ms, not every 30 ms: each call wakes a thread and takes the GIL,
# and the blocks were only gathered into block_ms chunks anyway (the same latency). At 300 ms, 3 calls a
# second instead of 33: about 0.2 instead of 1.2-1.6 % of a core for the daemon's side of the microphone
# (`bench.py --microphone`: PortAudio stood in for by a paced thread, 2-core EPYC, 2026-12-04).
RAW_BUFFER_S = 6.0  # blocks the callback may get ahead of the reader before they count as overflows
POLL_S = 0.5  # while no block comes: how soon a stopped stream (an unplugged mic) is noticed
AUDIO_FILE_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aiff", ".aif")


def describe_kind(spec: str) -> str:
    if spec in ("default", "auto") or spec.isdigit():
        return "device"
    # A path (an existing file whatever its extension, anything with a '/', an audio suffix) is a file:
    # retrying a missing or undecodable file as a device would never end. PortAudio device names
    # ("USB Audio", "hw:1,0", "pulse") have no '/'.
    if Path(spec).is_file() or "/" in spec or Path(spec).suffix.lower() in AUDIO_FILE_SUFFIXES:
        return "file"
    return "device"


class _Chunker:
    """Cuts a stream of samples into fixed blocks."""

    def __init__(self, block: int) -> None:
        self.block = block
        self.buf = np.zeros(0, dtype=np.int16)

    def feed(self, x: np.ndarray) -> list[np.ndarray]:
        self.buf = np.concatenate([self.buf, x]) if self.buf.size else x
        n = self.buf.size // self.block
        out = [self.buf[i * self.block : (i + 1) * self.block] for i in range(n)]
        self.buf = self.buf[n * self.block :]
        return out


class AudioFileSource(Source):
    """Plays a file into the pipeline at real-time pace, or as fast as the consumer takes it.

    The file is decoded block by block (libsndfile, then a streaming resampler), so an hour-long
    multichannel recording costs no more memory than a short clip.
    """

    def __init__(
        self,
        path: str,
        out: Inbox[AudioChunk],
        *,
        block_ms: int = 300,
        loop: bool = True,
        fast: bool = False,
        clock: Callable[[], float] = time.monotonic,
        on_status: StatusCallback | None = None,
    ) -> None:
        super().__init__("microphone", on_status)
        self.path = path
        self.out = out
        self.block = RATE * block_ms // 1000
        self.loop = loop
        self.retry_errors = loop
        self.fast = fast
        self.clock = clock
        self._file: Any = None
        self._resampler: Any = None
        self._chunker = _Chunker(self.block)
        self._ready: list[np.ndarray] = []
        self._eof = False
        self._read_frames = self.block
        self._stream_s = 0.0  # stream seconds delivered so far
        self._t0 = 0.0

    def open(self) -> None:
        import soundfile as sf

        if not Path(self.path).is_file():
            raise FileNotFoundError(f"audio file {self.path} does not exist")
        try:
            f = sf.SoundFile(self.path)
        except Exception as e:  # libsndfile says what it could not read
            raise ValueError(f"audio file {self.path} cannot be decoded: {e}") from None
        if f.frames == 0:
            f.close()
            raise ValueError(f"audio file {self.path} holds no samples")
        self._file = f
        self._read_frames = max(1, int(np.ceil(self.block * f.samplerate / RATE)))
        self._rewind()
        self._t0 = self.clock() - self._stream_s

    def _rewind(self) -> None:
        import soxr

        self._file.seek(0)
        rate = self._file.samplerate
        self._resampler = soxr.ResampleStream(rate, RATE, 1, dtype="float32") if rate != RATE else None
        self._chunker = _Chunker(self.block)
        self._ready, self._eof = [], False

    def _next_block(self) -> np.ndarray | None:
        """The next block of 16 kHz mono int16 (the file's tail padded with silence); None at its end."""
        while not self._ready:
            if self._eof:
                return None
            raw = self._file.read(self._read_frames, dtype="float32", always_2d=True)
            last = raw.shape[0] < self._read_frames
            mono = raw.mean(axis=1) if raw.size else np.zeros(0, np.float32)
            y = self._resampler.resample_chunk(mono, last=last) if self._resampler is not None else mono
            self._ready.extend(self._chunker.feed((np.clip(y, -1.0, 1.0) * 32767).astype(np.int16)))
            if last:
                self._eof = True
                tail = self._chunker.buf
                if tail.size:
                    self._ready.append(np.concatenate([tail, np.zeros(self.block - tail.size, np.int16)]))
        return self._ready.pop(0)

    def read_once(self) -> None:
        block = self._next_block()
        if block is None:
            if not self.loop:
                raise SourceEnded
            check_still_there(self.path, "audio")
            self._rewind()
            return
        if self.fast:
            t = self._stream_s
            self.pace(t)
        else:
            t = self._t0 + self._stream_s
            wait = t + self.block / RATE - self.clock()  # a chunk is ready once it has "been heard"
            if wait > 0 and self.stop_event.wait(wait):
                return
        self._stream_s += self.block / RATE
        self.out.put(AudioChunk(t=t, samples=block), block=self.fast)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class MicrophoneSource(Source):
    """Captures a sounddevice input stream at its native rate; resamples to 16 kHz mono."""

    def __init__(
        self,
        device: str,
        out: Inbox[AudioChunk],
        *,
        block_ms: int = 300,
        stall_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_status: StatusCallback | None = None,
    ) -> None:
        super().__init__("microphone", on_status, stall_s)
        self.device: int | str | None = None if device in ("default", "auto") else (
            int(device) if device.isdigit() else device
        )
        self.out = out
        self.block_ms = block_ms
        self.clock = clock
        self.overflows = 0
        self._overflows_reported = 0
        self._overflow_report_t = -math.inf
        self._raw: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(2, math.ceil(RAW_BUFFER_S * 1000 / block_ms)))
        self._stream: Any = None
        self._resampler: Any = None
        self._chunker = _Chunker(RATE * block_ms // 1000)
        self._rate = RATE

    def open(self) -> None:
        import sounddevice as sd
        import soxr

        info = sd.query_devices(self.device, "input")
        self._rate = int(info["default_samplerate"])
        self._resampler = soxr.ResampleStream(self._rate, RATE, 1, dtype="float32")
        self._chunker = _Chunker(RATE * self.block_ms // 1000)

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            try:
                self._raw.put_nowait(indata[:, 0].copy())
            except queue.Full:
                self.overflows += 1

        self._stream = sd.InputStream(
            device=self.device,
            channels=1,
            samplerate=self._rate,
            dtype="float32",
            blocksize=round(self._rate * self.block_ms / 1000),
            callback=callback,
        )
        self._stream.start()

    def read_once(self) -> None:
        deadline = time.monotonic() + self.stall_s + self.block_ms / 1000  # a block takes block_ms to come
        while True:
            try:
                raw = self._raw.get(timeout=max(0.01, min(POLL_S, deadline - time.monotonic())))
                break
            except queue.Empty:
                if self._stream is not None and not self._stream.active:
                    raise OSError("microphone stream stopped (device unplugged or failed)") from None
                if time.monotonic() >= deadline:
                    raise OSError(f"microphone delivered nothing for {self.stall_s:g} s") from None
        y = self._resampler.resample_chunk(raw)
        now = self.clock()
        pcm = (np.clip(y, -1, 1) * 32767).astype(np.int16)
        for block in self._chunker.feed(pcm):
            self.out.put(AudioChunk(t=now - block.size / RATE, samples=block))
        self._report_overflows(now)

    def _report_overflows(self, now: float) -> None:
        """Lost input blocks are said (at most every 10 s), not hidden: the analysis may be missing speech."""
        lost = self.overflows - self._overflows_reported
        if lost and now - self._overflow_report_t >= OVERFLOW_REPORT_S:
            self._overflows_reported, self._overflow_report_t = self.overflows, now
            detail = f"input overflow: {lost} audio blocks lost ({self.overflows} since start)"
            self.log.warning(detail)
            self._set_status("running", detail)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
