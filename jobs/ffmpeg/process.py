"""Running FFmpeg: under a priority, a memory limit and a death signal, with progress, a cooperative stop,
and the escalation q -> SIGTERM -> SIGKILL."""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings

from jobs.ffmpeg import command
from jobs.ffmpeg.command import EncodeSettings, OutputSpec, ThumbnailSpec
from jobs.ffmpeg.errors import FFmpegError, FrameTooLarge, Killed, OutOfMemory, Stalled
from jobs.ffmpeg.placement import STANDARD_FRAME_PIXELS

logger = logging.getLogger(__name__)

JOB_ENV = "VIDEOJOBS_JOB"
ATTEMPT_ENV = "VIDEOJOBS_ATTEMPT"  # which run of the job started it: recovery kills only the lost run's
PART_ENV = "VIDEOJOBS_PART"  # which claim of which part ("<position>-<claim>"): a lost part's FFmpeg alone
STDERR_TAIL_LINES = 15
PROGRESS_INTERVAL = 1.0  # seconds between on_progress calls, at most once a second
STOP_CHECK_INTERVAL = 0.05  # seconds between should_stop() calls while FFmpeg runs (each must be cheap)


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stopped: bool  # True when should_stop() asked for the stop


def _with_death_signal(cmd: Sequence[str]) -> list[str]:
    """Prefix `setpriv --pdeathsig KILL` where it exists (Linux util-linux), the lowest CPU priority:
    `chrt --idle 0` (ENCODE_IDLE_SCHEDULING, where the policy can be set) and `nice -n ENCODE_NICENESS`,
    and a ceiling on its memory: `prlimit --as` (encode_memory_limit()).
    FFmpeg yields the CPU to the web server, so pages and the API answer quickly while workers encode;
    a file that makes it allocate without end fails its video instead of taking the machine's memory."""
    prefix = list(idle_scheduling_prefix()) if settings.ENCODE_IDLE_SCHEDULING else []
    nice = shutil.which("nice")
    if nice and settings.ENCODE_NICENESS:
        prefix += [nice, "-n", str(settings.ENCODE_NICENESS)]
    prlimit, memory = shutil.which("prlimit"), encode_memory_limit()
    if prlimit and memory:
        prefix += [prlimit, f"--as={memory}", "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        prefix += [setpriv, "--pdeathsig", "KILL", "--"]
    return [*prefix, *cmd]


@functools.cache
def idle_scheduling_prefix() -> tuple[str, ...]:
    """`chrt --idle 0` when this machine lets a process take Linux's SCHED_IDLE policy, else () (logged once).

    Under SCHED_IDLE a process only gets the CPU time no ordinary process wants, and an ordinary process
    that wakes up (a web request) takes the core from it at once; `nice` 19 alone still let the scheduler
    finish an encoder's time slice first (bench/polling.py; the figures: bench/README.md, "Measured
    decisions"). Any process may lower itself to SCHED_IDLE, but a container's seccomp profile can refuse
    the call, and chrt then fails: it is tried once, with an empty Python program, before it prefixes FFmpeg."""
    chrt = shutil.which("chrt")
    if chrt:
        command = (chrt, "--idle", "0")
        tried = subprocess.run([*command, sys.executable, "-c", ""], capture_output=True, text=True)
        if tried.returncode == 0:
            return command
        logger.warning("FFmpeg runs without SCHED_IDLE (only nice): chrt failed: %s", tried.stderr.strip())
    else:
        logger.warning("FFmpeg runs without SCHED_IDLE (only nice): no chrt on this machine")
    return ()


def encode_memory_limit() -> int:
    """The address space one FFmpeg may take (bytes; 0: no limit): ENCODE_MEMORY_BYTES, or by default a
    base of 1 GiB and MAX_PIXELS x 80 bytes for each encoder of a full batch and one more (the decoder, the
    thumbnails). The decoder never makes a frame over MAX_PIXELS (-max_pixels), so this is a second wall,
    against what that one does not foresee. Measured figures: docs/bounds.md ("Latest figures")."""
    if settings.ENCODE_MEMORY_BYTES is not None:
        return settings.ENCODE_MEMORY_BYTES
    frame = max(settings.MAX_PIXELS, STANDARD_FRAME_PIXELS)  # a format's frame may be larger than the source's
    return 1024**3 + 80 * frame * (settings.BATCH_SIZE + 1)


def _child_env(job_id: str, attempt: int, part: str = "") -> dict[str, str]:
    # Two malloc arenas: glibc reserves 64 MiB of address space per arena (up to 8 per core), which would
    # count against the memory limit on a many-core machine without ever being used.
    environment = {**os.environ, JOB_ENV: job_id, ATTEMPT_ENV: str(attempt), PART_ENV: part}
    return {**environment, "MALLOC_ARENA_MAX": "2"}


_OUT_TIME = re.compile(rb"^out_time_(?:us|ms)=(\d+)\s*$")


class _ProgressReader(threading.Thread):
    """Reads `-progress pipe:1` blocks and keeps the latest out_time in seconds."""

    def __init__(self, stream: IO[bytes]):
        super().__init__(daemon=True)
        self.stream = stream
        self.seconds: float | None = None

    def run(self) -> None:
        for line in self.stream:
            match = _OUT_TIME.match(line)
            if match:  # out_time_ms is in microseconds too; N/A does not match
                self.seconds = int(match.group(1)) / 1_000_000


def encode(
    source: Path,
    outputs: Sequence[OutputSpec],
    *,
    job_id: str,
    attempt: int = 0,
    part: str = "",
    on_progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    encoding: EncodeSettings = command.DEFAULT_ENCODING,
    thumbnail: ThumbnailSpec | None = None,
) -> RunResult:
    """Run one batch. Returns how it ended; raises FFmpegError on a failure not asked for.

    The process is always reaped before this returns or raises, including
    when django-q2's timeout raises SystemExit inside the task.
    """
    line = command.encode_command(source, outputs, encoding, thumbnail)
    result = run(line, job_id=job_id, attempt=attempt, part=part, on_progress=on_progress, should_stop=should_stop)
    for output in outputs:
        if not result.stopped and output.max_bytes is not None and _size(output.path) >= output.max_bytes:
            raise FFmpegError(f"output size limit reached: {output.path.name} hit {output.max_bytes} bytes")
    return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def run(
    cmd: Sequence[str],
    *,
    job_id: str,
    attempt: int = 0,
    part: str = "",
    on_progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    grace = settings.KILL_GRACE_SECONDS
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            _with_death_signal(cmd),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_child_env(job_id, attempt, part),
        )
        logger.info("job %s: ffmpeg pid %s started", job_id, proc.pid)
        reader = _ProgressReader(proc.stdout)
        reader.start()
        stage = ""
        try:
            stage = _wait(proc, reader, job_id, on_progress, should_stop)
        finally:
            if proc.poll() is None:  # an exception (or a timeout) is leaving with FFmpeg alive
                stage = stop(proc, job_id, grace)
            proc.wait()
            reader.join(timeout=1)
            for pipe in (proc.stdin, proc.stdout):
                if pipe:
                    pipe.close()
        if stage == STALLED:
            raise Stalled(f"stalled: no progress for {settings.STALL_SECONDS} s")
        if stage:
            return RunResult(proc.returncode, stopped=True)
        if _mentions(stderr, FRAME_TOO_LARGE_MARK):
            raise FrameTooLarge(f"a frame is larger than {settings.MAX_PIXELS} pixels", _tail(stderr))
        if proc.returncode != 0 and _out_of_memory(proc.returncode, stderr):
            raise OutOfMemory(f"out of memory (limit {encode_memory_limit()} bytes)", _tail(stderr))
        if proc.returncode < 0:  # a signal this process did not send: its stop returned above
            raise Killed(f"ffmpeg was killed by signal {-proc.returncode}", _tail(stderr))
        if proc.returncode != 0:
            raise FFmpegError(f"ffmpeg exited with code {proc.returncode}", _tail(stderr))
        if on_progress and reader.seconds is not None:
            on_progress(reader.seconds)
        return RunResult(proc.returncode, stopped=False)


STALLED = "stalled"


def _wait(proc, reader, job_id, on_progress, should_stop) -> str:
    """Wait for FFmpeg, reporting progress and checking for a stop. Returns the stop stage, STALLED or ''.

    Stalled: out_time has not moved for STALL_SECONDS (a hung decoder, a blocked
    file system). The heartbeat keeps going meanwhile, so only this notices.
    """
    last_progress = 0.0
    last_reported: float | None = None
    last_seen, last_move = reader.seconds, time.monotonic()
    while True:
        try:
            proc.wait(timeout=STOP_CHECK_INTERVAL)
            return ""
        except subprocess.TimeoutExpired:
            pass
        if should_stop and should_stop():
            return stop(proc, job_id, settings.KILL_GRACE_SECONDS)
        now = time.monotonic()
        seconds = reader.seconds
        if seconds != last_seen:
            last_seen, last_move = seconds, now
        elif now - last_move >= settings.STALL_SECONDS:
            logger.warning("job %s: ffmpeg pid %s made no progress for %s s", job_id, proc.pid, settings.STALL_SECONDS)
            stop(proc, job_id, settings.KILL_GRACE_SECONDS)
            return STALLED
        if (
            on_progress
            and seconds is not None
            and seconds != last_reported
            and now - last_progress >= PROGRESS_INTERVAL
        ):
            on_progress(seconds)
            last_progress, last_reported = now, seconds


def stop(proc: subprocess.Popen, job_id: str, grace: float) -> str:
    """Stop FFmpeg: "q" on stdin, then SIGTERM, then SIGKILL, `grace` seconds apart.

    Returns the stage that ended it. The process is reaped. A 0 exit after "q"
    still means a truncated output: the caller must discard its files.
    """
    started = time.monotonic()
    logger.info("job %s: stopping ffmpeg pid %s: sending q", job_id, proc.pid)
    try:
        proc.stdin.write(b"q")
        proc.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass
    stages = (("q", None), ("sigterm", proc.terminate), ("sigkill", proc.kill))
    for index, (stage, send) in enumerate(stages):
        if send is not None:
            logger.info("job %s: ffmpeg pid %s still running: sending %s", job_id, proc.pid, stage.upper())
            send()
        try:
            proc.wait(timeout=grace if index < len(stages) - 1 else None)
        except subprocess.TimeoutExpired:
            continue
        logger.info(
            "job %s: ffmpeg pid %s stopped by %s in %.3f s (exit %s)",
            job_id,
            proc.pid,
            stage,
            time.monotonic() - started,
            proc.returncode,
        )
        return stage
    return "sigkill"  # not reached: the last wait has no timeout


FRAME_TOO_LARGE_MARK = b"exceeds specified max pixel count"  # FFmpeg's words when -max_pixels refuses a frame
# What FFmpeg says when an allocation fails under the address-space limit: ENOMEM for its buffers, EAGAIN
# for a thread's stack, x264's "malloc of size N failed" for the encoder's. An allocation it does not check
# ends in SIGSEGV (or SIGABRT, inside the C library).
OUT_OF_MEMORY_MARKS = (b"Cannot allocate memory", b"Resource temporarily unavailable", b"malloc of size")
CRASH_SIGNALS = frozenset({-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS})


def _out_of_memory(returncode: int, stderr: IO[bytes]) -> bool:
    """Did a failed FFmpeg most likely reach its memory limit? Only asked when one is set."""
    if not (shutil.which("prlimit") and encode_memory_limit()):
        return False
    return returncode in CRASH_SIGNALS or any(_mentions(stderr, mark) for mark in OUT_OF_MEMORY_MARKS)


def _mentions(stderr: IO[bytes], words: bytes) -> bool:
    stderr.seek(0)
    return any(words in line for line in stderr)


def _tail(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
    return "\n".join(lines[-STDERR_TAIL_LINES:])
