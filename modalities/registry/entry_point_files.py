"""Which entry-point groups the installed distributions declare, read straight from their ``entry_points.txt``.

``importlib.metadata.entry_points(group=...)`` builds a Distribution and parses every entry point of every
installed distribution to answer for one group (about 40 million instructions with 170 distributions, a
tenth of a quick start's `validate`), and pydantic does the same again for its own plugin group on the first
validator it builds. Nearly always no distribution declares either group. This module finds the same
``entry_points.txt`` files importlib.metadata would read (the ``*.dist-info`` and ``*.egg-info`` folders of
the folders on ``sys.path``) and looks for the group's section header in them, so the exact (slow) way is
taken only when a group is declared somewhere, or when distributions may be found in a way this read does
not cover (a zip file on ``sys.path``, an import hook with its own ``find_distributions``): then the answer
is None, "ask importlib.metadata".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from importlib.machinery import PathFinder

_INFO_SUFFIXES = (".dist-info", ".egg-info")


def declared_groups(groups: Iterable[str]) -> set[str] | None:
    """The groups among ``groups`` whose section some installed distribution's entry_points.txt has, or None
    when this environment finds distributions in a way this read does not follow."""
    wanted = set(groups)
    texts = _entry_point_texts()
    if texts is None:
        return None
    return {group for group in wanted if any(_declares(text, group) for text in texts)}


def _entry_point_texts() -> list[bytes] | None:
    """The entry_points.txt of every distribution importlib.metadata's path finder sees on sys.path."""
    finders = [f for f in sys.meta_path if getattr(f, "find_distributions", None) is not None]
    if any(finder is not PathFinder for finder in finders):
        return None
    texts = []
    for entry in sys.path:
        if not isinstance(entry, str):
            return None
        folder = entry or "."
        try:
            children = os.listdir(folder)
        except OSError:
            if os.path.exists(folder):
                return None  # a zip file, or a folder importlib.metadata might read another way
            continue
        base_is_egg = os.path.basename(entry).lower().endswith(".egg")
        for child in children:
            low = child.lower()
            if not (low.endswith(_INFO_SUFFIXES) or (base_is_egg and low == "egg-info")):
                continue
            try:
                with open(os.path.join(folder, child, "entry_points.txt"), "rb") as f:
                    texts.append(f.read())
            except OSError:  # no entry points (importlib.metadata reads none either), or a file, not a folder
                continue
    return texts


def _declares(text: bytes, group: str) -> bool:
    """Whether the text has the group's section as importlib.metadata reads sections: a line that, stripped,
    starts with '[' and ends with ']' and is the group once the brackets are stripped. Text that is not UTF-8
    counts as declaring it, so that the exact way reports the error as it would."""
    if group.encode() not in text:
        return False
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return True
    for line in lines:
        line = line.strip()
        if line.startswith("[") and line.endswith("]") and line.strip("[]") == group:
            return True
    return False
