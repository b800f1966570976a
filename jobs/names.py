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


def folder_of(name: str, position: int) -> str:
    """A source's ZIP folder before any numbering: its stem, or `video<N>` when the stem is empty."""
    return stem_of(name) or f"video{position + 1}"


def zip_folders(names: list[str]) -> list[str]:
    """The ZIP folder of each source, in upload order, with " (2)", " (3)"... until no two are the same
    (ignoring case) after every fallback. display_name already numbers names at upload so that this
    rarely has to."""
    taken: set[str] = set()
    folders = []
    for position, name in enumerate(names):
        stem = folder_of(name, position)
        folder, number = stem, 2
        while folder.lower() in taken:
            folder, number = f"{stem} ({number})", number + 1
        taken.add(folder.lower())
        folders.append(folder)
    return folders


def display_name(raw: str, taken: set[str], position: int) -> str:
    """A tidy name for display, whose ZIP folder is unique within the job.

    `taken` holds the lower-cased folders already used, fallbacks included:
    "a.mp4" and "a.mov" become "a.mp4" and "a (2).mov"; "..mp4" (folder
    video1) then "video1.mp4" become "..mp4" and "video1 (2).mp4".
    """
    name = " ".join(raw.split())
    stem, ext = _split(name)
    if len(name) > MAX_NAME_LENGTH:
        stem = stem[: MAX_NAME_LENGTH - len(ext)]
    candidate, number = stem + ext, 2
    while folder_of(candidate, position).lower() in taken:
        candidate = f"{stem} ({number}){ext}"
        number += 1
    taken.add(folder_of(candidate, position).lower())
    return candidate


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if dot and stem and len(ext) <= 5:
        return stem, "." + ext
    return name, ""


FORBIDDEN_IN_FILE_NAMES = set('<>:"/\\|?*')


def zip_file_name(title: str) -> str:
    """The download's file name: the job's title made safe on every desktop system, with ".zip"."""
    cleaned = "".join(
        " "
        if ch.isspace()
        else "_"
        if ch in FORBIDDEN_IN_FILE_NAMES or unicodedata.category(ch) in ("Cc", "Cf")
        else ch
        for ch in title
    )
    stem = " ".join(cleaned.split()).strip(". ")[:100].rstrip(". ")
    return f"{stem or 'videojobs'}.zip"
