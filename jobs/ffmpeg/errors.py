"""What FFmpeg and the probe raise."""

from __future__ import annotations


class FFmpegError(Exception):
    """FFmpeg failed; carries the last lines it wrote to stderr."""

    def __init__(self, message: str, stderr_tail: str = ""):
        super().__init__(message)
        self.stderr_tail = stderr_tail

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message}: {self.stderr_tail}" if self.stderr_tail else message


class FrameTooLarge(FFmpegError):
    """A decoded frame would have been over MAX_PIXELS: the stream changed its size after the probe."""


class OutOfMemory(FFmpegError):
    """FFmpeg could not allocate memory: it reached its address-space limit (encode_memory_limit)."""


class Stalled(FFmpegError):
    """FFmpeg's progress did not move for STALL_SECONDS, though the process was alive; it was stopped."""


class ProbeError(ValueError):
    """The file is not a video FFmpeg can read."""


class TooComplex(ProbeError):
    """Inspecting the file would cost more than any allowed video can: too many frames, or too much CPU."""
