"""FFmpeg and probing: command lines and the subprocess. No ORM here.

- probe(): PyAV opens the file and decodes one frame (milliseconds); garbage
  raises ProbeError.
- encode(): one FFmpeg process for a batch of outputs, progress read from
  `-progress pipe:1`, cooperative stop through a should_stop() callable.
- stop(): "q" on stdin, then SIGTERM, then SIGKILL, KILL_GRACE apart; reaped.
- the job's thumbnail (one 128 px wide WebP frame of the source) is one more
  output of a batch: it costs no decode of its own.

FFmpeg runs under `setpriv --pdeathsig KILL` so it dies with the thread that
started it, and carries VIDEOJOBS_JOB=<job id> in its environment so a sweep
can find leftovers (docs/architecture.md, "FFmpeg processes").
"""

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

import av
import imageio_ffmpeg
from django.conf import settings

logger = logging.getLogger(__name__)

JOB_ENV = "VIDEOJOBS_JOB"
ATTEMPT_ENV = "VIDEOJOBS_ATTEMPT"  # which run of the job started it: recovery kills only the lost run's
PART_ENV = "VIDEOJOBS_PART"  # which claim of which part ("<position>-<claim>"): a lost part's FFmpeg alone
STDERR_TAIL_LINES = 15
PROGRESS_INTERVAL = 1.0  # seconds between on_progress calls, at most once a second
STATS_PERIOD_SECONDS = 0.1
STOP_CHECK_INTERVAL = 0.05  # seconds between should_stop() calls while FFmpeg runs (each must be cheap)


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


@dataclass(frozen=True)
class ProbeResult:
    duration: float  # measured from the stream's packets, not taken from the header
    width: int  # of a decoded frame
    height: int
    has_audio: bool
    format_name: str
    fps: float = 0.0  # video packets per second of the measured duration
    audio_codec: str = ""  # of the first audio stream: "aac", "mp3"...; "" without audio
    audio_profile: str = ""  # "LC", "HE-AAC"...; "" when the decoder names none
    audio_channels: int = 0
    audio_sample_rate: int = 0
    audio_bounded: bool = False  # every audio packet within AAC's limits: the stream may be copied (_AudioPackets)

    @property
    def pixels(self) -> int:
        return self.width * self.height


# The reference encode caps the video rate at 2500 kbit/s with a 4000 kbit buffer; so do the variations.
# Not lower for a source of a lower average rate: a cap bounds the peak, and x264 ultrafast needs several
# times the bits of HEVC or of a slow x264 preset (measured: an 800k HEVC source capped at 1.5x its rate
# lost twice as much SSIM as under the reference's cap).
REFERENCE_MAX_BIT_RATE = 2_500_000
BUFFER_FACTOR = 1.6  # bufsize / maxrate, as in the reference (4000k / 2500k)
# AAC profiles every browser and player decodes; LD, ELD and Main are encoded again.
COPYABLE_AAC_PROFILES = frozenset({"LC", "HE-AAC", "HE-AACv2"})


# --- how many bytes an output may take ---------------------------------------------------
# The most an AAC stream can carry: 6144 bits per channel per frame of 1024 samples, stereo at 48 kHz. A copied
# audio stream is at most that (the probe measured its packets: EncodeSettings.for_source copies nothing
# else); an encoded one is 128 kbit/s.
AAC_MAX_FRAME_BYTES_PER_CHANNEL = 6144 // 8
AUDIO_BOUND_BIT_RATE = 6144 * 2 * 48_000 // 1024
MOOV_BYTES_PER_FRAME = 32  # the index entries of one video or audio frame in the MP4's moov, with room to spare
MOOV_BASE_BYTES = 64 * 1024
AUDIO_FRAMES_PER_SECOND = 100  # AAC frames a second at up to 96 kHz
THUMBNAIL_WIDTH, THUMBNAIL_MAX_HEIGHT = 128, 2048


def output_file_limit(seconds: float) -> int:
    """-fs for one variation of a `seconds`-long source: its video at the rate cap for the whole length
    (-t is the source's duration + 1 s) with a full VBV buffer, and its audio at AAC's ceiling. FFmpeg stops
    writing once the file reaches it, and the batch then fails (a truncated file is never kept)."""
    length = seconds + 1
    video = REFERENCE_MAX_BIT_RATE * length + REFERENCE_MAX_BIT_RATE * BUFFER_FACTOR
    return int((video + AUDIO_BOUND_BIT_RATE * length) / 8)


def output_bytes_bound(seconds: float, max_fps: float) -> int:
    """The most one variation (its MP4 and its thumbnail) can take on disk: what -fs lets FFmpeg write, the
    one packet it may write past it (at most the VBV buffer: video packets are bounded by it, audio ones
    by AAC's limits, which a copied stream was measured to keep), the moov index (FFmpeg writes it after
    the limit is checked), and the thumbnail. A job reserves this for every output, so its files never
    exceed its reservation (jobs.quota)."""
    length = seconds + 1
    packet = int(REFERENCE_MAX_BIT_RATE * BUFFER_FACTOR / 8)
    frames = length * (max_fps + AUDIO_FRAMES_PER_SECOND)
    moov = MOOV_BASE_BYTES + int(frames * MOOV_BYTES_PER_FRAME)
    return output_file_limit(seconds) + packet + moov + THUMBNAIL_BYTES_BOUND


# The most a thumbnail takes: the raw 4:2:0 size of its largest picture (THUMBNAIL_WIDTH x THUMBNAIL_MAX_HEIGHT,
# whatever shape the stream has or switches to). Lossy WebP stays below it, pure noise included.
THUMBNAIL_BYTES_BOUND = THUMBNAIL_WIDTH * THUMBNAIL_MAX_HEIGHT * 3 // 2 + 1024


@dataclass(frozen=True)
class EncodeSettings:
    """What a batch's outputs share: the video rate cap, and whether the source's audio is copied as it is
    (AAC LC or HE-AAC, mono or stereo, up to 48 kHz: what every player takes, and every packet within AAC's
    limits as the probe measured them, so that a copy stays within the output's bound) instead of encoded
    again."""

    max_bit_rate: int = REFERENCE_MAX_BIT_RATE
    copy_audio: bool = False
    # x264 threads per output. A batch already runs one encoder per output side by side, plus the decoder:
    # more threads per encoder only add contention (bench/encode.py measures 1, 2 and auto).
    threads: int = 1

    @classmethod
    def for_source(
        cls,
        audio_codec: str = "",
        audio_profile: str = "",
        audio_channels: int = 0,
        audio_sample_rate: int = 0,
        audio_bounded: bool = False,
    ) -> EncodeSettings:
        copy = (
            audio_bounded
            and audio_codec == "aac"
            and audio_profile in COPYABLE_AAC_PROFILES
            and 1 <= audio_channels <= 2
            and 0 < audio_sample_rate <= 48_000
        )
        return cls(copy_audio=copy)


@dataclass(frozen=True)
class ThumbnailSpec:
    """One more output of a batch: the frame at `at_seconds` (of the source, or of a variation: through its
    filter chain), 128 px wide (narrower for a frame more than 16 times taller than wide: WebP and the pages
    want a bounded height), as WebP. Written under a temporary name and renamed (image2's atomic_writing),
    so a file at `path` is always whole. It never fails the batch: a source shorter than `at_seconds` gives
    no file, and so does a write that fails (the job's folder deleted meanwhile, a full disk); the
    variations go on."""

    path: Path
    at_seconds: float
    width: int = THUMBNAIL_WIDTH
    max_height: int = THUMBNAIL_MAX_HEIGHT

    @property
    def temporary(self) -> Path:
        """Where image2's atomic_writing writes before the rename: left behind by a killed FFmpeg."""
        return self.path.with_name(self.path.name + ".tmp")


@dataclass(frozen=True)
class OutputSpec:
    path: Path
    filter_chain: str
    max_seconds: float | None = None  # -t: no longer than the source, whatever its header says
    max_bytes: int | None = None  # -fs: reaching it fails the batch (a truncated file is never kept)
    thumbnail: ThumbnailSpec | None = None  # the variation's own thumbnail, from the same decode

    def paths(self) -> list[Path]:
        """Every file FFmpeg may write for this output."""
        thumbnail = [self.thumbnail.path, self.thumbnail.temporary] if self.thumbnail else []
        return [self.path, *thumbnail]


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stopped: bool  # True when should_stop() asked for the stop


def ffmpeg_binary() -> str:
    if settings.FFMPEG_BINARY:
        return settings.FFMPEG_BINARY
    return imageio_ffmpeg.get_ffmpeg_exe()


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
    finish an encoder's time slice first (bench/polling.py, p99: 101-226 ms; under SCHED_IDLE, most runs
    49-125 ms). Any process may lower itself to SCHED_IDLE, but a container's seccomp profile can refuse
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
    return 1024**3 + 80 * settings.MAX_PIXELS * (settings.BATCH_SIZE + 1)


def _child_env(job_id: str, attempt: int, part: str = "") -> dict[str, str]:
    # Two malloc arenas: glibc reserves 64 MiB of address space per arena (up to 8 per core), which would
    # count against the memory limit on a many-core machine without ever being used.
    environment = {**os.environ, JOB_ENV: job_id, ATTEMPT_ENV: str(attempt), PART_ENV: part}
    return {**environment, "MALLOC_ARENA_MAX": "2"}


# --- probe -----------------------------------------------------------------------
def probe(
    source: str | os.PathLike | IO[bytes],
    stop_after_seconds: float | None = None,
    max_pixels: int | None = None,
    max_packets: int | None = None,
    cpu_seconds: float | None = None,
) -> ProbeResult:
    """What the stream really holds; ProbeError when it is not a readable video.

    A header can say anything, so the size comes from a decoded frame, and the
    duration and frame rate from walking the video packets (demuxing, not
    decoding: fast). The walk is bounded three ways, each cheaper than the
    file: it stops once the stream runs past `stop_after_seconds` (the caller
    refuses it anyway); it refuses a stream of more than `max_packets` frames
    (more than any allowed duration at any allowed rate can have); and it
    refuses a file whose inspection takes more than `cpu_seconds` of this
    thread's CPU (TooComplex).
    """
    started = time.thread_time()
    try:
        # Only the MP4/MOV demuxer, reading only this file: no format guessed from the bytes (hls,
        # concat, ...), no protocol a crafted file could ask for.
        opened = source if not isinstance(source, Path) else str(source)
        options = {"protocol_whitelist": "file"}
        if max_pixels is not None:  # opening decodes a first frame too (stream analysis): bounded as well
            options["max_pixels"] = str(max_pixels)
        with av.open(opened, format="mov", options=options) as container:
            if not container.streams.video:
                raise ProbeError("it has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                raise ProbeError("its video stream has no decoder")
            declared = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
            if max_pixels is not None and declared > max_pixels:  # refused before a huge frame is decoded
                width, height = stream.codec_context.width, stream.codec_context.height
                return ProbeResult(0.0, width, height, False, container.format.name, 0.0)
            stream.codec_context.thread_count = 1  # its CPU is this thread's: the budget sees all of it
            audio_stream = container.streams.audio[0] if container.streams.audio else None
            if audio_stream is not None and audio_stream.codec_context is None:
                raise ProbeError("its audio track is in a format FFmpeg cannot decode")
            audio = audio_stream.codec_context if audio_stream is not None else None
            format_name = container.format.name
            width = height = packets = 0
            audio_sizes = _AudioPackets()
            first = last = None
            for packet in container.demux(*[s for s in (stream, audio_stream) if s is not None]):
                if cpu_seconds is not None and time.thread_time() - started > cpu_seconds:
                    raise TooComplex("it is too complex to inspect within the upload's CPU budget (PROBE_CPU_SECONDS)")
                if packet.stream is audio_stream:
                    audio_sizes.add(packet)
                    continue
                if not width:  # decoding one frame catches files whose header parses but whose data does not
                    for frame in packet.decode():  # the final, empty packet flushes the decoder
                        width, height = frame.width, frame.height
                if packet.pts is None or packet.time_base is None:
                    continue
                packets += 1
                if max_packets is not None and packets > max_packets:
                    raise TooComplex(f"it has more than {max_packets} frames, more than any allowed video can have")
                start = packet.pts * packet.time_base
                end = start + (packet.duration or 0) * packet.time_base
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
                if stop_after_seconds is not None and last - first > stop_after_seconds:
                    break
    except ProbeError:
        raise
    except (av.FFmpegError, StopIteration, ValueError, OSError, TypeError, ZeroDivisionError, AttributeError) as exc:
        raise ProbeError("it is not an MP4 or MOV video FFmpeg can read") from exc
    if not width:
        raise ProbeError("no video frame could be decoded")
    duration = float(last - first) if first is not None else 0.0
    if duration <= 0:
        raise ProbeError("its duration is zero")
    channels = audio.channels if audio else 0
    return ProbeResult(
        duration=duration,
        width=width,
        height=height,
        has_audio=audio is not None,
        format_name=format_name,
        fps=packets / duration,
        audio_codec=(audio.name or "") if audio else "",
        audio_profile=(audio.profile or "") if audio else "",
        audio_channels=channels,
        audio_sample_rate=audio.sample_rate or 0 if audio else 0,
        audio_bounded=audio_sizes.within_aac_limits(channels, duration),
    )


class _AudioPackets:
    """The audio packets the probe walks past: whether the stream keeps to what AAC can carry (each packet at
    most 6144 bits a channel, the whole at most AUDIO_BOUND_BIT_RATE, at most AUDIO_FRAMES_PER_SECOND), so
    that copying it as it is keeps each output within its bound."""

    def __init__(self):
        self.count = self.total = self.largest = 0

    def add(self, packet) -> None:
        if not packet.size:
            return  # the flush at the end
        self.count += 1
        self.total += packet.size
        self.largest = max(self.largest, packet.size)

    def within_aac_limits(self, channels: int, seconds: float) -> bool:
        if not self.count or not 1 <= channels <= 2:
            return False
        length = seconds + 1
        return (
            self.largest <= AAC_MAX_FRAME_BYTES_PER_CHANNEL * channels
            and self.total * 8 <= AUDIO_BOUND_BIT_RATE * length
            and self.count <= AUDIO_FRAMES_PER_SECOND * length
        )


# --- encode ----------------------------------------------------------------------
def _input(source: Path) -> list[str]:
    """Read the upload as what the probe accepted (the MP4/MOV demuxer), from a local file only:
    no guessing from its bytes, no protocol (http, concat, ...) a crafted file could ask for. Its decoder
    makes no frame over MAX_PIXELS, whatever size the stream switches to after the probe's first frame
    (FFmpeg then goes on without those frames: run() fails the batch, FrameTooLarge)."""
    return ["-max_pixels", str(settings.MAX_PIXELS), "-f", "mov", "-protocol_whitelist", "file", "-i", str(source)]


def encode_command(
    source: Path,
    outputs: Sequence[OutputSpec],
    encoding: EncodeSettings = EncodeSettings(),
    thumbnail: ThumbnailSpec | None = None,
) -> list[str]:
    """One process, one decode, one `-vf` chain and encoder per output, and the thumbnail if asked for."""
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostats", "-loglevel", "error", "-y", *_input(source)]
    # FFmpeg reads its keyboard ("q") and writes its progress once every stats period (0.5 s by default):
    # at 0.1 s a stop starts up to 0.4 s sooner (bench/cancel.py).
    cmd += ["-progress", "pipe:1", "-stats_period", str(STATS_PERIOD_SECONDS)]
    rate = encoding.max_bit_rate
    for output in outputs:
        cmd += ["-map", "0:v:0", "-map", "0:a:0?", "-vf", output.filter_chain]
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p"]
        cmd += ["-threads", str(encoding.threads)]
        cmd += ["-maxrate", str(rate), "-bufsize", str(int(rate * BUFFER_FACTOR))]
        cmd += ["-c:a", "copy"] if encoding.copy_audio else ["-c:a", "aac", "-b:a", "128k"]
        cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart", "-f", "mp4"]
        if output.max_seconds is not None:
            cmd += ["-t", f"{output.max_seconds:.3f}"]
        if output.max_bytes is not None:
            cmd += ["-fs", str(output.max_bytes)]
        cmd += [str(output.path)]
        if output.thumbnail is not None:
            cmd += _thumbnail_output(output.thumbnail, output.filter_chain)
    if thumbnail is not None:
        cmd += _thumbnail_output(thumbnail)
    return cmd


def _thumbnail_output(thumbnail: ThumbnailSpec, filter_chain: str = "") -> list[str]:
    """The output arguments of a thumbnail: frames before its moment are dropped first, and the frame is
    scaled down before the chain (a variation's effects, which work in terms of the frame's size), so the
    chain runs on one small frame: its filters' per-pixel state (perspective's map) stays thumbnail-sized.
    The output ends after that frame."""
    box = f"{thumbnail.width}:{thumbnail.max_height}:force_original_aspect_ratio=decrease:force_divisible_by=2"
    chain = ",".join(filter(None, [f"select='gte(t,{thumbnail.at_seconds:.3f})'", f"scale={box}", filter_chain]))
    # Through the tee muxer beside a null sink, with onfail=ignore: a failed write ends only that slave.
    image = f"[f=image2:update=1:atomic_writing=1:onfail=ignore]{_tee_escape(str(thumbnail.path))}"
    return ["-map", "0:v:0", "-vf", chain, "-frames:v", "1", "-c:v", "libwebp", "-f", "tee", f"{image}|[f=null]-"]


def _tee_escape(path: str) -> str:
    """A file name as one slave of the tee muxer: its separators and quotes escaped."""
    return re.sub(r"([\\'|\[\]])", r"\\\1", path)


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
    encoding: EncodeSettings = EncodeSettings(),
    thumbnail: ThumbnailSpec | None = None,
) -> RunResult:
    """Run one batch. Returns how it ended; raises FFmpegError on a failure not asked for.

    The process is always reaped before this returns or raises, including
    when django-q2's timeout raises SystemExit inside the task.
    """
    command = encode_command(source, outputs, encoding, thumbnail)
    result = run(command, job_id=job_id, attempt=attempt, part=part, on_progress=on_progress, should_stop=should_stop)
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
# for a thread's stack. An allocation it does not check ends in SIGSEGV (or SIGABRT, inside the C library).
OUT_OF_MEMORY_MARKS = (b"Cannot allocate memory", b"Resource temporarily unavailable")
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
