"""Seeded effect parameters per variation, and the FFmpeg filter chain for them.

Pure functions: the same (job seed, source position, variation index, strength) always gives the same
parameters, so any variation can be reproduced, and the parameters of a job are unique within it. A
variation's parameters are drawn once and rendered in every format the job asks for.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields

DECIMALS = 5
STRENGTHS = ("subtle", "medium", "strong")


@dataclass(frozen=True)
class Profile:
    """The ranges of one strength (docs/usage.md, "Strength"). Rotation is a magnitude; its sign is random.
    A range of (x, x) is not drawn: it is always x."""

    rotation: tuple[float, float]
    brightness: tuple[float, float]
    contrast: tuple[float, float]
    saturation: tuple[float, float]
    zoom: tuple[float, float] = (1.0, 1.0)
    hue: tuple[float, float] = (0.0, 0.0)
    speed: tuple[float, float] = (1.0, 1.0)
    grain: tuple[float, float] = (0.0, 0.0)


PROFILES = {
    # subtle is the product as it was before strengths existed: the same ranges, drawn in the same order.
    "subtle": Profile(rotation=(0.001, 0.01), brightness=(-0.05, 0.05), contrast=(0.95, 1.05), saturation=(0.95, 1.05)),
    "medium": Profile(
        rotation=(0.005, 0.02),
        brightness=(-0.06, 0.06),
        contrast=(0.92, 1.08),
        saturation=(0.92, 1.08),
        zoom=(1.01, 1.03),
        hue=(-3.0, 3.0),
        speed=(0.98, 1.02),
        grain=(0.0, 4.0),
    ),
    "strong": Profile(
        rotation=(0.01, 0.035),
        brightness=(-0.08, 0.08),
        contrast=(0.90, 1.10),
        saturation=(0.90, 1.10),
        zoom=(1.03, 1.06),
        hue=(-6.0, 6.0),
        speed=(0.95, 1.05),
        grain=(3.0, 8.0),
    ),
}
# The subtle ranges by their old names.
ROTATION_RAD = PROFILES["subtle"].rotation
BRIGHTNESS = PROFILES["subtle"].brightness
CONTRAST = PROFILES["subtle"].contrast
SATURATION = PROFILES["subtle"].saturation


def slowest_speed(strength: str) -> float:
    """The lowest speed a strength draws: its outputs run at most source / this long."""
    return PROFILES[strength].speed[0]


@dataclass(frozen=True)
class Effects:
    rotation: float
    brightness: float
    contrast: float
    saturation: float
    zoom: float = 1.0
    hue: float = 0.0
    speed: float = 1.0
    grain: float = 0.0
    mirror: bool = False

    @classmethod
    def from_dict(cls, values: dict) -> Effects:
        """The parameters as stored on an output (older outputs have only the first four)."""
        known = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})

    def as_dict(self) -> dict[str, float | bool]:
        return asdict(self)

    def key(self) -> tuple[float, ...]:
        """What makes two variations the same: every drawn value (mirror is the job's, not drawn)."""
        return (
            self.rotation,
            self.brightness,
            self.contrast,
            self.saturation,
            self.zoom,
            self.hue,
            self.speed,
            self.grain,
        )

    def filter_chain(self) -> str:
        """The -vf chain of the frame: rotate (and zoom) in place, adjust colour, add grain, mirror; keep even
        dimensions for yuv420p. Works in terms of the frame's own size, so the same chain fits every format
        and a thumbnail. Timing (speed) is the command's business: jobs.ffmpeg.command."""
        steps = [
            rotation_filter(self.rotation, self.zoom),
            f"eq=brightness={self.brightness}:contrast={self.contrast}:saturation={self.saturation}",
        ]
        if self.hue:
            steps.append(f"hue=h={self.hue}")
        if self.grain:
            steps.append(f"noise=alls={self.grain:g}:allf=t")
        if self.mirror:
            steps.append("hflip")
        steps.append("crop=trunc(iw/2)*2:trunc(ih/2)*2")
        return ",".join(steps)


def rotation_filter(angle: float, zoom: float = 1.0) -> str:
    """Rotation about the centre by `angle` radians (clockwise, as FFmpeg's `rotate`), and a zoom into the
    centre by `zoom`, as one `perspective` filter with bilinear interpolation: the zoom costs nothing more.

    Why not `rotate`: its per-pixel bilinear sampling is most of a variation's CPU. `perspective` computes
    its sampling map once and then only looks it up: much cheaper, and its frames stay close to `rotate`'s
    for the same angle (tests/ffmpeg/test_ffmpeg.py checks SSIM >= 0.98). The map costs 8 bytes a pixel per
    output. The figures: bench/README.md ("Measured decisions").

    Each output corner takes the source point the rotation (and zoom) brings there; W and H are the
    frame's, so one chain fits every size. At the corners, where `rotate` fills black triangles a few
    pixels wide, this repeats the edge pixels.
    """
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    corners = []
    for x, y in (("0", "0"), ("W", "0"), ("0", "H"), ("W", "H")):
        dx, dy = f"({x}-W/2)", f"({y}-H/2)"
        corners.append((f"W/2+({cos:.9f})*{dx}+({sin:.9f})*{dy}", f"H/2-({sin:.9f})*{dx}+({cos:.9f})*{dy}"))
    points = ":".join(f"x{i}={x}:y{i}={y}" for i, (x, y) in enumerate(corners))
    return f"perspective={points}:interpolation=linear:sense=source"


def _draw(rng: random.Random, profile: Profile, mirror: bool) -> Effects:
    def uniform(low: float, high: float) -> float:
        return low if low == high else round(rng.uniform(low, high), DECIMALS)

    # The first five draws are the subtle profile's, in its order: subtle stays the same product.
    sign = rng.choice((-1, 1))
    return Effects(
        rotation=sign * uniform(*profile.rotation),
        brightness=uniform(*profile.brightness),
        contrast=uniform(*profile.contrast),
        saturation=uniform(*profile.saturation),
        zoom=uniform(*profile.zoom),
        hue=uniform(*profile.hue),
        speed=uniform(*profile.speed),
        grain=uniform(*profile.grain),
        mirror=mirror,
    )


def effects_for(
    seed: int, source_position: int, variation_index: int, attempt: int = 0, strength: str = "subtle", mirror=False
) -> Effects:
    """The parameters of one variation, from the job seed, source, index and strength."""
    rng = random.Random(f"{seed}:{source_position}:{variation_index}:{attempt}")
    return _draw(rng, PROFILES[strength], mirror)


def effects_for_job(
    seed: int, sources: int, variations: int, strength: str = "subtle", mirror: bool = False
) -> dict[tuple[int, int], Effects]:
    """Parameters for every (source position, variation index) of a job, unique within it.

    A collision (vanishingly rare at 5 decimals) is redrawn with the next
    attempt number, so the result is still a pure function of its arguments.
    """
    chosen: dict[tuple[int, int], Effects] = {}
    seen: set[tuple[float, ...]] = set()
    for position in range(sources):
        for index in range(variations):
            attempt = 0
            effects = effects_for(seed, position, index, attempt, strength, mirror)
            while effects.key() in seen:
                attempt += 1
                effects = effects_for(seed, position, index, attempt, strength, mirror)
            seen.add(effects.key())
            chosen[(position, index)] = effects
    return chosen
