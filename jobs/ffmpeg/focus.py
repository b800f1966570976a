"""focus=auto: where a crop should centre on a video, from a few sampled frames.

OpenCV does the seeing: its bundled frontal-face detector (a Haar cascade), and
the picture's detail (Laplacian) and motion (the difference between samples).
Faces win when there are any; otherwise the point is the centre of mass of detail
and motion. PyAV decodes only the key frame at each sample point, on one thread, and
works on it within a 320 px square: the cost is a few decodes, whatever the
video's length or shape (bench/README.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np

from jobs.ffmpeg.placement import CENTRE, Focus

logger = logging.getLogger(__name__)

SAMPLES = 6
WORK_SIZE = 320  # frames are measured within a square of this side
MOTION_WEIGHT = 2.0
_faces = None


def _face_detector():
    global _faces
    if _faces is None:
        _faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    return _faces


def find_focus(path: Path, max_pixels: int) -> Focus:
    """The point (fractions of width and height) a crop of this video should centre on; the centre when
    nothing stands out or the video cannot be read."""
    try:
        frames = _sampled_frames(path, max_pixels)
    except (av.FFmpegError, OSError, ValueError):
        logger.warning("focus: %s could not be sampled; the crop stays centred", path.name, exc_info=True)
        return CENTRE
    if not frames:
        return CENTRE
    height, width = frames[0].shape
    faces = [face for frame in frames for face in _face_detector().detectMultiScale(frame, 1.1, 5, minSize=(20, 20))]
    if faces:
        areas = np.array([w * h for _x, _y, w, h in faces], dtype=float)
        xs = np.array([x + w / 2 for x, _y, w, _h in faces]) / width
        ys = np.array([y + h / 2 for _x, y, _w, h in faces]) / height
        return Focus(float(np.average(xs, weights=areas)), float(np.average(ys, weights=areas)))
    weight = np.zeros((height, width), dtype=np.float32)
    for number, frame in enumerate(frames):
        weight += np.abs(cv2.Laplacian(frame, cv2.CV_32F, ksize=3))
        if number:
            weight += MOTION_WEIGHT * cv2.absdiff(frame, frames[number - 1]).astype(np.float32)
    weight = cv2.GaussianBlur(weight, (0, 0), sigmaX=width / 40) ** 2  # squared: the strongest region leads
    total = float(weight.sum())
    if total <= 0:
        return CENTRE
    ys, xs = np.mgrid[0:height, 0:width]
    return Focus(float((weight * xs).sum() / total / width), float((weight * ys).sum() / total / height))


def _sampled_frames(path: Path, max_pixels: int) -> list[np.ndarray]:
    """Up to SAMPLES key frames spread over the video, grey, turned as FFmpeg shows them, within a
    WORK_SIZE square (same size, so they compare). The decoder makes no frame over `max_pixels`."""
    frames: list[np.ndarray] = []
    options = {"protocol_whitelist": "file", "max_pixels": str(max_pixels)}
    with av.open(str(path), format="mov", options=options) as container:
        stream = container.streams.video[0]
        if stream.codec_context.width * stream.codec_context.height > max_pixels:
            return []
        stream.thread_count = 1
        stream.codec_context.skip_frame = "NONKEY"
        length = float(container.duration / av.time_base) if container.duration else 0.0
        seen: set[int] = set()
        for sample in range(SAMPLES):
            container.seek(int(length * sample / SAMPLES * av.time_base), backward=True)
            frame = next(container.decode(stream), None)
            if frame is None or frame.pts in seen:
                continue
            seen.add(frame.pts)
            if frame.width * frame.height > max_pixels:
                break
            scale = WORK_SIZE / max(frame.width, frame.height)
            width, height = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
            picture = frame.reformat(width=width, height=height, format="gray").to_ndarray()
            picture = np.ascontiguousarray(np.rot90(picture, round((frame.rotation or 0) / 90) % 4))
            if frames and picture.shape != frames[0].shape:
                break  # the stream changed size: what was sampled so far is what counts
            frames.append(picture)
    return frames
