"""Which paths are input images: files, folders and glob patterns expanded to image files,
recognised by the extensions in :mod:`llenhance.io.formats`."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from llenhance.errors import UserError
from llenhance.io.formats import IMAGE_EXTENSIONS


def is_image_name(p: Path) -> bool:
    """An image by its extension, and not a hidden file (such as a temporary output)."""
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def list_images(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, directories and glob patterns into a list of image files.

    * a file is taken as given (whatever its extension; reading it reports problems);
    * a directory contributes its image files (not recursive, sorted, extension matched
      case-insensitively, hidden files skipped); one without images is a :class:`UserError`;
    * a pattern with ``*``, ``?`` or ``[`` (``**`` recurses) contributes matching image files;
      matching none is a :class:`UserError`;
    * a path that does not exist is a :class:`UserError`.

    Duplicates are dropped, first occurrence kept.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.append(p)

    exts = ", ".join(IMAGE_EXTENSIONS)
    for item in inputs:
        text = os.path.expanduser(os.fspath(item))
        p = Path(text)
        if p.is_dir():
            images = sorted(c for c in p.iterdir() if c.is_file() and is_image_name(c))
            if not images:
                raise UserError(f"{text}: directory contains no image files ({exts})")
            for c in images:
                add(c)
        elif p.is_file():
            add(p)
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            images = [m for m in matches if m.is_file() and is_image_name(m)]
            if not images:
                what = "no image files" if matches else "nothing"
                raise UserError(f"{text}: pattern matches {what}")
            for m in images:
                add(m)
        elif p.exists():
            raise UserError(f"{text}: not a regular file or directory")
        else:
            raise UserError(f"{text}: no such file or directory")
    return found
