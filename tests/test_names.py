"""The file-name rules: what is refused, how names are shown, and which ZIP folder they get."""

from __future__ import annotations

import pytest

from jobs.names import MAX_NAME_LENGTH, display_name, name_problem, stem_of, zip_file_name, zip_folders


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("../../etc/passwd.mp4", "looks like a path"),
        ("..\\boot.mp4", "looks like a path"),
        ("bad\x07name.mp4", "control characters"),
        ("rtl\u202eevil.mp4", "control characters"),
        ("  ", "it is empty"),
        ("..", "it is empty"),
        ("Summer Ad.mp4", ""),
    ],
)
def test_name_problem(raw, problem):
    found = name_problem(raw)
    assert (problem in found and found) if problem else found == ""


def test_names_whose_zip_folders_would_clash_get_a_number():
    taken: set[str] = set()
    raws = ["a.mp4", "A.mov", "a.mp4", "clip  one.mp4"]
    names = [display_name(raw, taken, position) for position, raw in enumerate(raws)]
    assert names == ["a.mp4", "A (2).mov", "a (3).mp4", "clip one.mp4"]
    assert taken == {"a", "a (2)", "a (3)", "clip one"}


def test_long_names_are_cut_but_keep_their_extension():
    name = display_name("x" * 300 + ".mp4", set(), 0)
    assert len(name) == MAX_NAME_LENGTH and name.endswith("x.mp4")


@pytest.mark.parametrize(
    "name, stem", [("promo.mov", "promo"), ("...mp4", ""), (". .mp4", ""), (".hidden.mp4", "hidden")]
)
def test_stem_never_starts_with_a_dot(name, stem):
    assert stem_of(name) == stem


def test_a_name_is_numbered_when_its_folder_is_another_names_fallback():
    taken: set[str] = set()
    names = [display_name(raw, taken, position) for position, raw in enumerate(["..mp4", "video1.mp4"])]
    assert names == ["..mp4", "video1 (2).mp4"]
    assert zip_folders(names) == ["video1", "video1 (2)"]


def test_zip_folders_are_unique_whatever_names_it_is_given():
    assert zip_folders(["..mp4", "video1.mp4", "VIDEO1.mov", ". .mp4"]) == [
        "video1",
        "video1 (2)",
        "VIDEO1 (3)",
        "video4",
    ]


@pytest.mark.parametrize(
    ("title", "file_name"),
    [
        ("Spring sale", "Spring sale.zip"),
        ('a/b\\c:d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j.zip"),
        ("  ..hidden.  ", "hidden.zip"),
        ("tab\tand\nnewline", "tab and newline.zip"),
        ("...", "videojobs.zip"),
        ("Été 2026 — promo", "Été 2026 — promo.zip"),
        ("x" * 300, "x" * 100 + ".zip"),
    ],
)
def test_zip_file_names_are_safe_on_every_desktop(title, file_name):
    assert zip_file_name(title) == file_name
