from __future__ import annotations

import re

from jobs.ffmpeg.effects import (
    BRIGHTNESS,
    CONTRAST,
    ROTATION_RAD,
    SATURATION,
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
        effects, "effects_for", lambda s, p, i, attempt=0: real(s, 0, 0) if attempt == 0 else real(s, p, i, attempt)
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
    }
