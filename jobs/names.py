"""The rules for user-supplied file names: which are refused, how they are shown, and their ZIP folder.

User text appears only in the database and in ZIP entry names, never on disk.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

MAX_NAME_LENGTH = 200


def name_problem(raw: str) -> str:
    """Why a client-sent file name is refused, or '' when it is acceptable."""
    if "/" in raw or "\\" in raw:
        return "it looks like a path; send the bare file name"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in raw):
        return "it contains control characters"
    if raw.strip() in ("", ".", ".."):
        return "it is empty"
    return ""


def stem_of(name: str) -> str:
    """The folder and file stem used in the ZIP: no extension, no leading dots (no "../" entries)."""
    return Path(name).stem.lstrip(". ").strip()


def display_name(raw: str, taken: set[str]) -> str:
    """A tidy name for display, whose ZIP folder (its stem) is unique within the job.

    `taken` holds the lower-cased stems already used; "a.mp4" and "a.mov"
    become "a.mp4" and "a (2).mov", so their ZIP folders differ.
    """
    name = " ".join(raw.split())
    stem, ext = _split(name)
    if len(name) > MAX_NAME_LENGTH:
        stem = stem[: MAX_NAME_LENGTH - len(ext)]
    candidate, number = stem + ext, 2
    while (stem_of(candidate) or candidate).lower() in taken:
        candidate = f"{stem} ({number}){ext}"
        number += 1
    taken.add((stem_of(candidate) or candidate).lower())
    return candidate


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) <= 5:
        return stem, "." + ext
    return name, ""
