"""Placements: the frame size of each format, and the filter chain that puts a source into it.

A format is `source` (the source's own frame) or an aspect ratio with its standard size. A source
too small for the standard size is never scaled up: `crop` takes the largest region of the exact ratio at
1x, `blur` and `pad` make the smallest frame of the exact ratio that holds the whole source at 1x.
Dimensions are even (yuv420p). The figures are in docs/usage.md ("Formats").
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

SOURCE = "source"
STANDARD_SIZES: dict[str, tuple[int, int]] = {
    "9:16": (1080, 1920),
    "1:1": (1080, 1080),
    "4:5": (1080, 1350),
    "16:9": (1920, 1080),
}
FORMATS = (SOURCE, *STANDARD_SIZES)
STANDARD_FRAME_PIXELS = max(width * height for width, height in STANDARD_SIZES.values())  # the largest frame
FITS = ("crop", "blur", "pad")
PAD_COLOUR = "black"
# blur: the background is made at 1/BLUR_SHRINK of the frame, blurred there and scaled back up: a wide
# blur for a small part of the cost of blurring the full frame.
BLUR_SHRINK = 8
BLUR_RADIUS = 6
LINK_TAG = "p"  # what a blur chain's inner links start with ([p_bg]...), unless asked otherwise


def folder_name(format_: str) -> str:
    """'9:16' -> '9x16': the format in file and folder names."""
    return format_.replace(":", "x")


@dataclass(frozen=True)
class Focus:
    """Where a crop centres, as fractions of the source's width and height (0.5, 0.5: the middle)."""

    x: float = 0.5
    y: float = 0.5


CENTRE = Focus()


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _ratio(format_: str) -> Fraction:
    width, height = STANDARD_SIZES[format_]
    return Fraction(width, height)


def _crop_region(width: int, height: int, ratio: Fraction) -> tuple[int, int]:
    """The largest region of `ratio` inside width x height (even)."""
    if Fraction(width, height) > ratio:
        return _even(height * ratio), _even(height)
    return _even(width), _even(width / ratio)


def frame_size(format_: str, fit: str, width: int, height: int) -> tuple[int, int]:
    """The output frame of a width x height source in this format and fit."""
    if format_ == SOURCE:
        return _even(width), _even(height)
    standard_w, standard_h = STANDARD_SIZES[format_]
    ratio = _ratio(format_)
    if fit == "crop":
        region_w, region_h = _crop_region(width, height, ratio)
        return (standard_w, standard_h) if region_w >= standard_w else (region_w, region_h)
    # blur, pad: the smallest frame of the ratio that holds the whole source
    if Fraction(width, height) > ratio:
        holding = (_even(width), _even(width / ratio))
    else:
        holding = (_even(height * ratio), _even(height))
    return (standard_w, standard_h) if holding[0] >= standard_w else holding


def placement_filter(
    format_: str, fit: str, width: int, height: int, focus: Focus = CENTRE, tag: str = LINK_TAG
) -> str:
    """The chain that turns the source's frame into the format's frame; "" for `source`. `tag` names the
    inner links of a `blur` chain, so that several chains can share one filter graph."""
    if format_ == SOURCE:
        return ""
    out_w, out_h = frame_size(format_, fit, width, height)
    if fit == "crop":
        region_w, region_h = _crop_region(width, height, _ratio(format_))
        x = _clamp(focus.x * width - region_w / 2, width - region_w)
        y = _clamp(focus.y * height - region_h / 2, height - region_h)
        steps = [f"crop={region_w}:{region_h}:{x}:{y}"]
        if (region_w, region_h) != (out_w, out_h):
            steps.append(f"scale={out_w}:{out_h}")
        return ",".join(steps) + ",setsar=1"
    fitted = f"scale={out_w}:{out_h}:force_original_aspect_ratio=decrease:force_divisible_by=2"
    if fit == "pad":
        return f"{fitted},pad={out_w}:{out_h}:(ow-iw)/2:(oh-ih)/2:color={PAD_COLOUR},setsar=1"
    # The background: the centre region of the frame's ratio, scaled down (never up: the region is at most the
    # source), blurred there (the radius bounded by the small frame's planes), and scaled back up.
    region_w, region_h = _crop_region(width, height, _ratio(format_))
    small_w, small_h = _even(out_w / BLUR_SHRINK), _even(out_h / BLUR_SHRINK)
    radius = f"max(0\\,min({BLUR_RADIUS}\\,min(w\\,h)/2-1))"
    chroma = f"max(0\\,min({BLUR_RADIUS}\\,min(cw\\,ch)/2-1))"
    background = (
        f"crop={region_w}:{region_h},scale={small_w}:{small_h},"
        f"boxblur=luma_radius={radius}:luma_power=1:chroma_radius={chroma}:chroma_power=1,"
        f"scale={out_w}:{out_h},setsar=1"
    )
    return (
        f"split=2[{tag}_bg][{tag}_fg];[{tag}_bg]{background}[{tag}_back];"
        f"[{tag}_fg]{fitted},setsar=1[{tag}_front];"
        f"[{tag}_back][{tag}_front]overlay=(W-w)/2:(H-h)/2"
    )


def _clamp(value: float, most: int) -> int:
    return int(min(max(value, 0), most))
