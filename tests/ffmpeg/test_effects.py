from __future__ import annotations

import re

import pytest

from jobs.ffmpeg.effects import (
    BRIGHTNESS,
    CONTRAST,
    PROFILES,
    ROTATION_RAD,
    SATURATION,
    STRENGTHS,
    effects_for,
    effects_for_job,
    rotation_filter,
)


def test_same_seed_source_and_index_give_the_same_parameters():
    assert effects_for(42, 1, 3) == effects_for(42, 1, 3)
    assert effects_for(42, 1, 3) != effects_for(42, 1, 4)
    assert effects_for(42, 1, 3) != effects_for(43, 1, 3)
    assert effects_for(42, 0, 3) != effects_for(42, 1, 3)


def test_parameters_stay_in_the_reference_ranges_and_are_unique_in_a_job():
    chosen = effects_for_job(seed=7, sources=10, variations=20)
    assert len(chosen) == 200
    assert len({e.key() for e in chosen.values()}) == 200
    for e in chosen.values():
        assert ROTATION_RAD[0] <= abs(e.rotation) <= ROTATION_RAD[1]
        assert BRIGHTNESS[0] <= e.brightness <= BRIGHTNESS[1]
        assert CONTRAST[0] <= e.contrast <= CONTRAST[1]
        assert SATURATION[0] <= e.saturation <= SATURATION[1]
    assert {e.rotation > 0 for e in chosen.values()} == {True, False}


def test_a_collision_is_redrawn(monkeypatch):
    import jobs.ffmpeg.effects as effects

    real = effects.effects_for
    # Force the second variation to collide with the first on its first draw.
    monkeypatch.setattr(
        effects,
        "effects_for",
        lambda s, p, i, attempt=0, *rest: real(s, 0, 0) if attempt == 0 else real(s, p, i, attempt),
    )
    chosen = effects.effects_for_job(seed=1, sources=1, variations=2)
    assert chosen[(0, 0)] != chosen[(0, 1)]
    assert chosen[(0, 1)] == real(1, 0, 1, 1)


def test_filter_chain_uses_the_exact_parameters():
    e = effects_for(5, 0, 0)
    chain = e.filter_chain()
    assert chain.startswith(rotation_filter(e.rotation) + ",")
    assert re.search(rf"eq=brightness={e.brightness}:contrast={e.contrast}:saturation={e.saturation}", chain)
    assert e.as_dict() == {
        "rotation": e.rotation,
        "brightness": e.brightness,
        "contrast": e.contrast,
        "saturation": e.saturation,
        **{"zoom": 1.0, "hue": 0.0, "speed": 1.0, "grain": 0.0, "mirror": False},
    }


def test_subtle_is_the_product_as_it_was_draw_for_draw_and_filter_for_filter():
    """The chain and values of the four-effect product before strengths existed (seed 5, first variation)."""
    e = effects_for(5, 0, 0)
    assert (e.zoom, e.hue, e.speed, e.grain, e.mirror) == (1.0, 0.0, 1.0, 0.0, False)
    assert e.filter_chain() == (
        f"{rotation_filter(e.rotation)},eq=brightness={e.brightness}:contrast={e.contrast}:saturation={e.saturation},"
        "crop=trunc(iw/2)*2:trunc(ih/2)*2"
    )
    # The same draws as a generator that knows only the four effects (the code before strengths).
    import random

    rng = random.Random("5:0:0:0")
    sign = rng.choice((-1, 1))
    old = [sign * round(rng.uniform(0.001, 0.01), 5)] + [round(rng.uniform(*r), 5) for r in ((-0.05, 0.05),)]
    old += [round(rng.uniform(0.95, 1.05), 5), round(rng.uniform(0.95, 1.05), 5)]
    assert [e.rotation, e.brightness, e.contrast, e.saturation] == old


@pytest.mark.parametrize("strength", STRENGTHS)
def test_every_strength_draws_within_its_profile_and_stays_unique(strength):
    profile = PROFILES[strength]
    chosen = effects_for_job(seed=11, sources=5, variations=20, strength=strength)
    assert len({e.key() for e in chosen.values()}) == 100
    for e in chosen.values():
        assert profile.rotation[0] <= abs(e.rotation) <= profile.rotation[1]
        for name in ("brightness", "contrast", "saturation", "zoom", "hue", "speed", "grain"):
            low, high = getattr(profile, name)
            assert low <= getattr(e, name) <= high, name
    if strength != "subtle":  # the ranges are used, not only their ends
        assert len({e.speed for e in chosen.values()}) > 50 and len({e.zoom for e in chosen.values()}) > 50


def test_the_strong_chain_zooms_in_the_rotation_and_adds_hue_grain_and_mirror():
    e = effects_for(3, 0, 0, strength="strong", mirror=True)
    chain = e.filter_chain()
    assert chain.startswith(rotation_filter(e.rotation, e.zoom) + ",")
    assert f"hue=h={e.hue}" in chain and f"noise=alls={e.grain:g}:allf=t" in chain and ",hflip," in chain
    assert e.mirror and not effects_for(3, 0, 0, strength="strong").mirror
