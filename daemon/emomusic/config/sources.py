"""Settings of the sources: camera and microphone."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from emomusic.config.base import Section


class CameraConfig(Section, frozen=True):
    enabled: bool = True
    source: Annotated[
        str,
        Meta(
            description="'auto' (first camera, else the sample video), a device index, /dev/videoN, "
            "an rtsp:// or http:// URL, a video file, or 'picamera2'."
        ),
    ] = "auto"
    loop: Annotated[bool, Meta(description="Restart a video file at its end.")] = True
    width: Annotated[int, Meta(ge=64, le=4096)] = 640
    height: Annotated[int, Meta(ge=48, le=4096)] = 480
    analysis_fps: Annotated[float, Meta(gt=0, le=60, description="Frames per second handed to analysis.")] = 3.0
    stall_s: Annotated[float, Meta(gt=0, description="No frame for this long = the camera is reopened.")] = 5.0
    queue_size: Annotated[int, Meta(ge=1, le=1000)] = 4


class MicrophoneConfig(Section, frozen=True):
    enabled: bool = True
    source: Annotated[
        str, Meta(description="'auto' (default input, else the sample audio), a device name/index, or a WAV/FLAC file.")
    ] = "auto"
    loop: bool = True
    block_ms: Annotated[int, Meta(ge=30, le=5000, description="Audio chunk length; a multiple of 30 ms.")] = 300
    queue_size: Annotated[int, Meta(ge=1, le=10000)] = 100
    stall_s: Annotated[float, Meta(gt=0)] = 5.0

    def __post_init__(self) -> None:
        if self.block_ms % 30:
            raise ValueError("block_ms: expected a multiple of 30 (the VAD frame length)")
