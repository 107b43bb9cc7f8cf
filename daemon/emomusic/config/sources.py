"""Settings of the sources: camera and microphone."""

from __future__ import annotations

from pydantic import Field, field_validator

from emomusic.config.base import Section


class CameraConfig(Section):
    enabled: bool = True
    source: str = Field(
        "auto",
        description="'auto' (first camera, else the sample video), a device index, /dev/videoN, "
        "an rtsp:// or http:// URL, a video file, or 'picamera2'.",
    )
    loop: bool = Field(True, description="Restart a video file at its end.")
    width: int = Field(640, ge=64, le=4096)
    height: int = Field(480, ge=48, le=4096)
    analysis_fps: float = Field(5.0, gt=0, le=60, description="Frames per second handed to analysis.")
    stall_s: float = Field(5.0, gt=0, description="No frame for this long = the camera is reopened.")
    queue_size: int = Field(4, ge=1, le=1000)


class MicrophoneConfig(Section):
    enabled: bool = True
    source: str = Field(
        "auto", description="'auto' (default input, else the sample audio), a device name/index, or a WAV/FLAC file."
    )
    loop: bool = True
    block_ms: int = Field(300, ge=30, le=5000, description="Audio chunk length; a multiple of 30 ms.")
    queue_size: int = Field(100, ge=1, le=10000)
    stall_s: float = Field(5.0, gt=0)

    @field_validator("block_ms")
    @classmethod
    def _multiple_of_vad_frame(cls, v: int) -> int:
        if v % 30:
            raise ValueError("expected a multiple of 30 (the VAD frame length)")
        return v
