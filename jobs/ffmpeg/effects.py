"""Seeded effect parameters per variation, and the FFmpeg filter chain for them.

Pure functions: the same (job seed, source position, variation index) always
gives the same parameters, so any variation can be reproduced, and the
parameters of a job are unique within it.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

# The product's ranges (docs/architecture/processing.md, "Effects"). Rotation is a magnitude; its sign is random.
ROTATION_RAD = (0.001, 0.01)
BRIGHTNESS = (-0.05, 0.05)
CONTRAST = (0.95, 1.05)
SATURATION = (0.95, 1.05)
DECIMALS = 5


@dataclass(frozen=True)
class Effects:
    rotation: float
    brightness: float
    contrast: float
    saturation: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def key(self) -> tuple[float, ...]:
        return (self.rotation, self.brightness, self.contrast, self.saturation)

    def filter_chain(self) -> str:
        """The -vf chain: rotate in place, adjust colour, keep even dimensions for yuv420p."""
        return (
            f"{rotation_filter(self.rotation)},"
            f"eq=brightness={self.brightness}:contrast={self.contrast}:saturation={self.saturation},"
            "crop=trunc(iw/2)*2:trunc(ih/2)*2"
        )


def rotation_filter(angle: float) -> str:
    """Rotation about the centre by `angle` radians (clockwise, as FFmpeg's `rotate`), as a `perspective`
    filter with bilinear interpolation.

    Why not `rotate`: its per-pixel bilinear sampling is most of a variation's CPU. `perspective` computes
    its sampling map once and then only looks it up: much cheaper, and its frames stay close to `rotate`'s
    for the same angle (tests/ffmpeg/test_ffmpeg.py checks SSIM >= 0.98). The map costs 8 bytes a pixel per
    output. The figures: bench/README.md ("Measured decisions").

    Each output corner takes the source point the rotation brings there; W and H are the frame's, so one
    chain fits every size. At the corners, where `rotate` fills black triangles a few pixels wide, this
    repeats the edge pixels.
    """
    cos, sin = math.cos(angle), math.sin(angle)
    corners = []
    for x, y in (("0", "0"), ("W", "0"), ("0", "H"), ("W", "H")):
        dx, dy = f"({x}-W/2)", f"({y}-H/2)"
        corners.append((f"W/2+({cos:.9f})*{dx}+({sin:.9f})*{dy}", f"H/2-({sin:.9f})*{dx}+({cos:.9f})*{dy}"))
    points = ":".join(f"x{i}={x}:y{i}={y}" for i, (x, y) in enumerate(corners))
    return f"perspective={points}:interpolation=linear:sense=source"


def _draw(rng: random.Random) -> Effects:
    def uniform(low: float, high: float) -> float:
        return round(rng.uniform(low, high), DECIMALS)

    sign = rng.choice((-1, 1))
    return Effects(
        rotation=sign * uniform(*ROTATION_RAD),
        brightness=uniform(*BRIGHTNESS),
        contrast=uniform(*CONTRAST),
        saturation=uniform(*SATURATION),
    )


def effects_for(seed: int, source_position: int, variation_index: int, attempt: int = 0) -> Effects:
    """The parameters of one variation, from the job seed, source and index."""
    return _draw(random.Random(f"{seed}:{source_position}:{variation_index}:{attempt}"))


def effects_for_job(seed: int, sources: int, variations: int) -> dict[tuple[int, int], Effects]:
    """Parameters for every (source position, variation index) of a job, unique within it.

    A collision (vanishingly rare at 5 decimals) is redrawn with the next
    attempt number, so the result is still a pure function of its arguments.
    """
    chosen: dict[tuple[int, int], Effects] = {}
    seen: set[tuple[float, ...]] = set()
    for position in range(sources):
        for index in range(variations):
            attempt = 0
            effects = effects_for(seed, position, index)
            while effects.key() in seen:
                attempt += 1
                effects = effects_for(seed, position, index, attempt)
            seen.add(effects.key())
            chosen[(position, index)] = effects
    return chosen
