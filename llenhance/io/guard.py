"""The one guarded writer: every file llenhance writes goes through this module.

* :func:`check_outputs` looks at all the files a run will write, before the first one: none may
  be an input (by path, symlink or hard link), two may not land on one name, and none may exist
  already unless the caller passes ``force``.
* :func:`create_temp` makes the temporary file beside the target with ``O_EXCL``;
  :func:`publish` moves it into place with ``os.link`` (no clobber: if another run took the
  name in the meantime, this one fails instead of replacing it) or, with ``overwrite``,
  ``os.replace``.
* :func:`atomic_path` is the two together for writers that take a path; a file system error
  becomes a :class:`UserError` naming the file.
* Temporary files left by a process that is gone (``kill -9``, a power cut) are removed the
  next time a file is written in their folder (:func:`sweep_stale_temps`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from llenhance.errors import UserError, one_line

_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]+(?P<suffix>\.[^.]*)?$")


def temp_name(target: Path) -> str:
    return f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{target.suffix.lower()}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process, or no way to tell: keep its file
        return True
    return True


def sweep_stale_temps(directory: Path) -> list[Path]:
    """Remove this tool's temporary files (``.NAME.tmp-PID-HEX.EXT``) in ``directory`` whose
    writing process no longer runs (``kill -9``, a power cut); done before each file is
    written there (one directory listing)."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            match = _TEMP.match(entry.name)
            if match is None or _alive(int(match["pid"])):
                continue
            if entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def check_target(target: str | Path, *, overwrite: bool = False) -> Path:
    """One output path a writer is about to create: its folder must exist, it must not be a
    folder, and without ``overwrite`` it must not exist. Raises :class:`UserError`."""
    target = Path(target)
    if target.is_dir():
        raise UserError(f"{target}: is a directory")
    parent = target.parent
    if not parent.is_dir():
        if parent.exists():
            raise UserError(f"{target}: output directory is not a directory")
        raise UserError(f"{target}: output directory does not exist")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise UserError(f"{target}: already exists (use --force to overwrite)")
    return target


def create_temp(target: Path) -> tuple[int, Path]:
    """An exclusively created, empty temporary file beside ``target``: (fd, path).

    Mode 0o666 so the final file gets the usual umask-based permissions (``tempfile.mkstemp``
    would create it 0600).
    """
    sweep_stale_temps(target.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.parent / temp_name(target)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {target.parent}")


def publish(tmp: Path, target: Path, *, overwrite: bool = False) -> None:
    """Move the finished ``tmp`` to ``target``. Without ``overwrite`` the name is taken
    exclusively (``os.link`` fails if it exists), so of two runs writing one name only one
    succeeds; the other gets a :class:`UserError` and its temporary file is removed."""
    try:
        if overwrite:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise UserError(f"{target}: already exists (use --force to overwrite)") from None
        except OSError as exc:  # no hard links here (some network or FAT file systems)
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            try:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                raise UserError(f"{target}: already exists (use --force to overwrite)") from None
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_error(target: str | Path, exc: OSError) -> UserError:
    """A file system error while writing ``target``, as one line."""
    if isinstance(exc, PermissionError):
        return UserError(f"{target}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return UserError(f"{target}: is a directory")
    return UserError(f"{target}: cannot write file ({one_line(exc.strerror or exc)})")


@contextlib.contextmanager
def atomic_path(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an exclusively created temporary path beside ``target`` (same suffix); once the
    block succeeds, :func:`publish` it to ``target``.

    Without ``overwrite`` an existing ``target`` is refused before the block runs and again at
    the rename. On any exception the temporary file is removed and ``target`` is left
    untouched; a file system error becomes a :class:`UserError` naming ``target``.
    """
    target = check_target(target, overwrite=overwrite)
    try:
        fd, tmp = create_temp(target)
    except OSError as exc:
        raise write_error(target, exc) from None
    os.close(fd)
    try:
        yield tmp
        _usual_permissions(tmp)
        publish(tmp, target, overwrite=overwrite)
    except OSError as exc:
        raise write_error(target, exc) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _usual_permissions(path: Path) -> None:
    """Give a finished file the umask's permissions: a writer that replaced the temporary file
    (safetensors does) leaves it private to its owner."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_outputs(
    outputs: Sequence[tuple[str | Path, str]],
    inputs: Iterable[str | Path] = (),
    *,
    force: bool = False,
) -> None:
    """Check every file a run will write before it writes the first one.

    ``outputs`` pairs each path with what writes it (shown in messages, e.g. the input it is
    made from). Refused with :class:`UserError`: an output that is an input (same path after
    symlinks, or the same file through a hard link), two outputs on one name, an output that
    is a directory, and, unless ``force``, an output that exists.
    """
    input_keys: set[str] = set()
    input_ids: set[tuple[int, int]] = set()
    for item in inputs:
        path = Path(item)
        input_keys.add(path_key(path))
        ident = _identity(path)
        if ident is not None:
            input_ids.add(ident)
    seen: dict[str, tuple[Path, str]] = {}
    for item, what in outputs:
        path = Path(item)
        key = path_key(path)
        if key in input_keys or (input_ids and _identity(path) in input_ids):
            raise UserError(f"{path}: output of {what} would overwrite an input")
        if key in seen:
            raise UserError(f"{what} and {seen[key][1]} would both be written to {path}")
        seen[key] = (path, what)
        if path.is_dir():
            raise UserError(f"{path}: output of {what} is a directory")
        if not force and (path.exists() or path.is_symlink()):
            raise UserError(f"{path}: already exists (use --force to overwrite)")


def path_key(path: Path) -> str:
    """One spelling per file: absolute, symlinks resolved, case folded where the file system
    ignores case (``os.path.normcase``)."""
    return os.path.normcase(str(path.resolve()))
