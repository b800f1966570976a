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


class Killed(FFmpegError):
    """FFmpeg was ended by a signal nobody here sent (the kernel's OOM killer, an operator's kill -9)."""


# What FFmpeg writes when the input itself is broken: only these make a failure the file's fault.
DECODE_ERROR_MARKS = (
    "Invalid data found when processing input",
    "moov atom not found",
    "Error while decoding",
    "error while decoding",
    "decode_slice_header error",
    "Invalid NAL unit",
    "corrupt decoded frame",
    "Error submitting packet to decoder",
    "Decoding error",
)


def is_decode_error(exc: FFmpegError) -> bool:
    return any(mark in exc.stderr_tail for mark in DECODE_ERROR_MARKS)


class Stalled(FFmpegError):
    """FFmpeg's progress did not move for STALL_SECONDS, though the process was alive; it was stopped."""


class ProbeError(ValueError):
    """The file is not a video FFmpeg can read."""


class TooComplex(ProbeError):
    """Inspecting the file would cost more than any allowed video can: too many frames, or too much CPU."""
