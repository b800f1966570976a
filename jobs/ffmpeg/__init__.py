"""FFmpeg and probing: command lines and the subprocess. No ORM here.

- probe.py: PyAV opens an upload and walks its packets within a CPU, frame and pixel budget; garbage raises
  ProbeError.
- command.py: one FFmpeg process for a batch of outputs (one decode, one filter chain and encoder per output,
  the thumbnails as more outputs).
- process.py: runs it with `-progress pipe:1`, a cooperative stop through a should_stop() callable, and
  stop(): "q" on stdin, then SIGTERM, then SIGKILL, KILL_GRACE apart; reaped.
- bounds.py: how many bytes an output may take (what a job reserves).
- effects.py: the parameters of each variation and their filter chain.

FFmpeg runs under `setpriv --pdeathsig KILL` so it dies with the thread that
started it, and carries VIDEOJOBS_JOB=<job id> in its environment so a sweep
can find leftovers (docs/architecture/processing.md, "FFmpeg processes").
Callers use the names below (`ffmpeg.probe`, `ffmpeg.encode`...).
"""

from jobs.ffmpeg.bounds import THUMBNAIL_BYTES_BOUND, output_bytes_bound, output_file_limit
from jobs.ffmpeg.command import EncodeSettings, OutputSpec, ThumbnailSpec, encode_command, ffmpeg_binary, mean_ssim
from jobs.ffmpeg.errors import (
    FFmpegError,
    FrameTooLarge,
    Killed,
    OutOfMemory,
    ProbeError,
    Stalled,
    TooComplex,
    is_decode_error,
)
from jobs.ffmpeg.probe import ProbeResult, output_seconds, probe
from jobs.ffmpeg.process import (
    ATTEMPT_ENV,
    JOB_ENV,
    PART_ENV,
    encode,
    encode_memory_limit,
    idle_scheduling_prefix,
    run,
)

__all__ = [
    "ATTEMPT_ENV",
    "JOB_ENV",
    "PART_ENV",
    "THUMBNAIL_BYTES_BOUND",
    "EncodeSettings",
    "FFmpegError",
    "FrameTooLarge",
    "Killed",
    "OutOfMemory",
    "OutputSpec",
    "ProbeError",
    "ProbeResult",
    "Stalled",
    "ThumbnailSpec",
    "TooComplex",
    "encode",
    "encode_command",
    "encode_memory_limit",
    "ffmpeg_binary",
    "mean_ssim",
    "idle_scheduling_prefix",
    "is_decode_error",
    "output_bytes_bound",
    "output_file_limit",
    "output_seconds",
    "probe",
    "run",
]
