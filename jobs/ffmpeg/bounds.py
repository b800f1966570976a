"""How many bytes an output may take: the rate cap and the bounds that jobs.services.quota reserves."""

from __future__ import annotations

# The reference encode caps the video rate at 2500 kbit/s with a 4000 kbit buffer; so do the variations.
# Not lower for a source of a lower average rate: a cap bounds the peak, and x264 ultrafast needs several
# times the bits of HEVC or of a slow x264 preset (bench/README.md, "Measured decisions").
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
    the limit is checked), the thumbnail, and its SSIM stats while its batch runs. A job reserves this for
    every output, so its files never exceed its reservation (jobs.services.quota)."""
    length = seconds + 1
    packet = int(REFERENCE_MAX_BIT_RATE * BUFFER_FACTOR / 8)
    frames = length * (max_fps + AUDIO_FRAMES_PER_SECOND)
    moov = MOOV_BASE_BYTES + int(frames * MOOV_BYTES_PER_FRAME)
    return output_file_limit(seconds) + packet + moov + THUMBNAIL_BYTES_BOUND + ssim_stats_bound(seconds)


# FFmpeg's ssim filter writes a line of at most this many bytes per compared frame ("n:1200 Y:0.987654 ...").
SSIM_LINE_BYTES = 128
SSIM_SAMPLES_PER_SECOND = 2


def ssim_stats_bound(seconds: float) -> int:
    """The most an output's SSIM stats file (a partial, removed after its batch) takes: a line per sample."""
    return SSIM_LINE_BYTES * int(SSIM_SAMPLES_PER_SECOND * (seconds + 1) + 1)


# The most a thumbnail takes: the raw 4:2:0 size of its largest picture (THUMBNAIL_WIDTH x THUMBNAIL_MAX_HEIGHT,
# whatever shape the stream has or switches to). Lossy WebP stays below it, pure noise included.
THUMBNAIL_BYTES_BOUND = THUMBNAIL_WIDTH * THUMBNAIL_MAX_HEIGHT * 3 // 2 + 1024
