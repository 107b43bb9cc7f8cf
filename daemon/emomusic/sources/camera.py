"""Camera source: OpenCV (V4L2/USB index or path, RTSP/HTTP URL, video file) or picamera2.

Frames are thinned to the analysis rate here, before any queue: a camera is asked for a few frames a
second (:func:`capture_fps`), and of those only the frame that is due is decoded. Frames stay in
memory; nothing is written.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emomusic.messages import VideoFrame
from emomusic.queues import Inbox
from emomusic.sources.base import Source, SourceEnded, StatusCallback, check_still_there

CAMERA_RATES = (5, 10, 15, 20, 25, 30)  # frame rates USB (UVC) cameras commonly offer at 640x480


def capture_fps(analysis_fps: float) -> int:
    """The frame rate to ask a camera for: the lowest common one of at least twice the analysis rate, so
    a due frame is at most half an analysis period late. A camera at 30 fps wakes the reading thread 30
    times a second for frames nobody looks at (on a Pi, picamera2 handles each in Python as well)."""
    return next((r for r in CAMERA_RATES if r >= 2 * analysis_fps), CAMERA_RATES[-1])


def describe_kind(spec: str) -> str:
    """'picamera2', 'device', 'stream' or 'file' for a camera source string."""
    if spec == "picamera2":
        return "picamera2"
    if spec.isdigit() or spec.startswith("/dev/video"):
        return "device"
    if "://" in spec:
        return "stream"
    return "file"


class FramePool:
    """Buffers to decode frames into, reused once nothing else holds them.

    A new 640x480 frame is 0.9 MB of fresh pages the kernel must fault in and zero (225 faults, each
    ~2.6 us on a VM without VNNI, measured 2026-12-03; the daemon hands large buffers back to the system
    at once, ``service.memory``), several times a second. A buffer is reused only while the pool holds the
    last reference to it, so no queued frame, analyzer or view of it can ever see it overwritten."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._buffers: list[np.ndarray] = []

    def free(self) -> np.ndarray | None:
        """A buffer no one else holds (the list, the loop variable and getrefcount's own argument
        are the three references the pool makes), or None."""
        for buf in self._buffers:
            if sys.getrefcount(buf) <= 3:
                return buf
        return None

    def keep(self, frame: np.ndarray) -> None:
        """Remember a frame's buffer for reuse (the oldest forgotten beyond ``size``)."""
        if not any(frame is b for b in self._buffers):
            self._buffers.append(frame)
            del self._buffers[: -self.size]


class CameraSource(Source):
    """Reads frames and puts every ``1/analysis_fps`` seconds' frame on ``out``."""

    def __init__(
        self,
        spec: str,
        out: Inbox[VideoFrame],
        *,
        analysis_fps: float = 3.0,
        loop: bool = True,
        width: int = 640,
        height: int = 480,
        fast: bool = False,
        clock: Callable[[], float] = time.monotonic,
        on_status: StatusCallback | None = None,
        stall_s: float = 5.0,
    ) -> None:
        super().__init__("camera", on_status, stall_s)
        self.spec = spec
        self.kind = describe_kind(spec)
        self.retry_errors = loop or self.kind != "file"
        self.out = out
        self.period = 1.0 / analysis_fps
        self.capture_fps = capture_fps(analysis_fps)
        self.loop = loop
        self.size = (width, height)
        self.fast = fast
        self.clock = clock
        self._cap: Any = None
        self._picam: Any = None
        self._index = 0  # frames read since open
        self._emitted = 0
        self._next_t = 0.0
        self._file_fps = 0.0
        self._stream_offset = 0.0  # stream seconds of the loops already played
        self._t0 = 0.0
        self._pool = FramePool()

    # -- Source ---------------------------------------------------------------------------------
    def open(self) -> None:
        import cv2

        self._index = 0
        self._t0 = self.clock() - self._stream_offset  # keeps time monotonic across reopens
        if self.kind == "picamera2":
            from picamera2 import Picamera2  # optional, only on a Pi

            self._picam = Picamera2()
            self._picam.configure(self._picam.create_video_configuration(
                main={"size": self.size, "format": "RGB888"}, controls={"FrameRate": self.capture_fps}))
            self._picam.start()
            return
        if self.kind == "file" and not Path(self.spec).is_file():
            raise FileNotFoundError(f"video file {self.spec} does not exist")
        if self.kind == "device":
            target: int | str = int(self.spec) if self.spec.isdigit() else self.spec
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # always analyse the newest frame
            cap.set(cv2.CAP_PROP_FPS, self.capture_fps)  # a camera that cannot keeps its own rate
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.stall_s * 1000)  # where the backend supports it
        elif self.kind == "stream":
            # A network camera that stops sending must not block a read forever: FFmpeg gives up
            # after stall_s, the read fails and the loop reopens the stream with backoff.
            timeout = int(self.stall_s * 1000)
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout])
        else:
            cap = cv2.VideoCapture(self.spec)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open camera source {self.spec!r}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS) if self.kind == "file" else 0.0
        self._file_fps = fps if fps and np.isfinite(fps) and 0 < fps < 1000 else 25.0
        if self.kind != "file":
            self._next_t = self.clock()

    def _no_frame(self) -> None:
        """A camera that gave nothing fails (and is reopened); a file ends, or starts again when it loops."""
        if self.kind != "file":
            raise OSError(f"camera {self.spec!r} returned no frame")
        if self._index == 0:
            raise OSError(f"video file {self.spec} has no readable frames")
        if not self.loop:
            raise SourceEnded
        self._stream_offset += self._index / self._file_fps  # the next loop (or reopen) goes on from here
        self._index = 0
        check_still_there(self.spec, "video")
        self._cap.set(1, 0)  # CAP_PROP_POS_FRAMES: rewind instead of reopening

    def read_once(self) -> None:
        if self._picam is not None:
            rgb = self._picam.capture_array()
            now = self.clock()
            if not self._due(now):
                return
            self._offer(rgb[:, :, ::-1].copy(), now)
            return
        if self.kind != "file":
            self._read_live()
            return
        if self._thinned_away():
            # Grab without retrieving: the frame is demuxed but not converted to BGR, because
            # thinning would drop it anyway (four of five frames at 15 fps and 3 analysed per second).
            ok, frame = self._cap.grab(), None
            if ok:
                self._index += 1
                return
        else:
            buf = self._pool.free()
            ok, frame = self._cap.read(buf) if buf is not None else self._cap.read()
        if ok and frame is not None:
            self._pool.keep(frame)
        if not ok or frame is None:
            self._no_frame()
            return
        stream_t = self._stream_offset + self._index / self._file_fps
        self._index += 1
        if self.fast:
            t = stream_t
            self.pace(t)
        else:
            # Real-time pace: sleep until this frame's moment in the stream.
            t = self._t0 + stream_t
            wait = t - self.clock()
            if wait > 0 and self.stop_event.wait(wait):
                return
        self._offer(frame, t)

    def _read_live(self) -> None:
        """A camera's or a stream's next frame: grabbed, and decoded only when it is due (a USB camera's
        MJPG frame costs a decode; deciding before the grab, which waits for the frame, decoded frames that
        came a moment too early and were dropped)."""
        if not self._cap.grab():
            self._no_frame()
            return
        self._index += 1
        now = self.clock()
        if not self._due(now):
            return
        buf = self._pool.free()
        ok, frame = self._cap.retrieve(buf) if buf is not None else self._cap.retrieve()
        if not ok or frame is None:
            self._no_frame()
            return
        self._pool.keep(frame)
        self._offer(frame, now)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._picam is not None:
            self._picam.stop()
            self._picam.close()
            self._picam = None

    # -- thinning to the analysis rate ------------------------------------------------------
    def _thinned_away(self) -> bool:
        """Whether a file's next frame will be dropped by :meth:`_offer` (known from its index)."""
        stream_t = self._stream_offset + self._index / self._file_fps
        return not self._due(stream_t if self.fast else self._t0 + stream_t)

    def _due(self, t: float) -> bool:
        """Whether a frame of time ``t`` is the next one to analyse (the first always is)."""
        return not self._emitted or t + 1e-9 >= self._next_t

    def _offer(self, image: np.ndarray, t: float) -> None:
        if not self._due(t):
            return
        if not self._emitted:
            self._next_t = t
        self._next_t += self.period
        if t > self._next_t:  # fell behind (slow camera): do not burst to catch up
            self._next_t = t + self.period
        self._emitted += 1
        self.out.put(VideoFrame(t=t, image=image, index=self._emitted - 1), block=self.fast)
