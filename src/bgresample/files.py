"""Writing files: atomic, never through a symbolic link, never outside a locked run folder.

Every file bgresample writes goes through this module:

- :func:`atomic_write` writes into a new temporary file ``.NAME.PID.tmp`` beside the target,
  created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (an existing file or a planted link is never
  opened), fsyncs it and renames it over the target, so a crash or a full disk never leaves a
  truncated file;
- :func:`open_append` (the log) and :func:`open_lock` (``.lock``) open with ``O_NOFOLLOW`` and
  accept only a regular file;
- a symbolic link at the target, or at a folder between a run folder held by this process
  (:func:`confine`) and the target, is refused with an :class:`UnsafePathError` naming it.

A link that *names* the run folder itself (``--out`` pointing through a link) is the user's
choice and is followed; links inside it are not.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

#: Run folders whose inside this process writes (see :func:`confine`).
_roots: list[str] = []


class WriteError(OSError):
    """A file could not be written (disk full, read-only folder, ...). The file that was at the
    path before, if any, is intact, and no temporary file is left behind."""

    def __init__(self, path: str | os.PathLike, cause: OSError, kept: bool) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.kept = kept

    def __str__(self) -> str:
        state = "the previous file is intact" if self.kept else "nothing was written"
        return f"could not write {self.filename}: {self.strerror}; {state}"


class UnsafePathError(WriteError):
    """A path bgresample was about to write is a symbolic link (or not a regular file):
    writing would follow it, possibly outside the run folder, so nothing is written."""

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        OSError.__init__(self, errno.ELOOP, what, str(path))
        self.kept = True

    def __str__(self) -> str:
        return (
            f"refusing to write {self.filename}: {self.strerror}; bgresample writes only regular "
            "files inside its folders, so that nothing outside them changes; remove it (or "
            "choose another --out)"
        )


def _describe(path: str) -> str | None:
    """Why ``path`` may not be written, or None (absent or a regular file)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return None  # unreadable parent: the write itself reports it
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"it is a symbolic link (to {target})"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    return None


def confine(root: str | os.PathLike) -> None:
    """From now on, refuse writes below ``root`` through a link inside it (see
    :func:`check_path`); :func:`unconfine` ends it."""
    _roots.append(os.path.abspath(root))


def unconfine(root: str | os.PathLike) -> None:
    path = os.path.abspath(root)
    if path in _roots:
        _roots.remove(path)


def check_folder(folder: str | os.PathLike) -> None:
    """Refuse (:class:`UnsafePathError`) to write into ``folder`` when it, or a folder between
    a confined run folder and it, is a symbolic link (the run folder itself may be one)."""
    full = os.path.abspath(folder)
    for root in _roots:
        if full == root or os.path.commonpath([root, full]) != root:
            continue
        here = root
        for part in Path(os.path.relpath(full, root)).parts:
            here = os.path.join(here, part)
            if os.path.islink(here):
                raise UnsafePathError(here, f"it is a symbolic link (to {os.readlink(here)})")


def check_path(path: str | os.PathLike) -> None:
    """Refuse (:class:`UnsafePathError`) to write the file ``path`` when it is a symbolic link
    or not a regular file, or when its folder is refused by :func:`check_folder`."""
    full = os.path.abspath(path)
    why = _describe(full)
    if why is not None:
        raise UnsafePathError(path, why)
    check_folder(os.path.dirname(full))


def _open(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never follows a link at ``path``; a link or a non-regular file is an
    :class:`UnsafePathError`."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC, mode)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK, errno.EEXIST, errno.EISDIR):
            why = _describe(os.fspath(path))
            if why is not None:
                raise UnsafePathError(path, why) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(path, "it is not a regular file")
    return fd


def open_new(path: str | os.PathLike) -> IO[bytes]:
    """A new file at ``path`` for writing; never an existing file or the target of a link."""
    return os.fdopen(_open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb")


def open_append(path: str | os.PathLike) -> IO[str]:
    """``path`` opened for appending UTF-8 text (created if absent), never through a link."""
    check_path(path)
    return os.fdopen(
        _open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a", encoding="utf-8", newline=""
    )


def open_lock(path: str | os.PathLike) -> int:
    """A read-write descriptor of the lock file ``path`` (created if absent), never through a
    link; the caller locks and closes it."""
    check_path(path)
    return _open(path, os.O_RDWR | os.O_CREAT)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(handle)`` on a new temporary file beside ``path``, fsync it and rename it
    over ``path``. On any failure the temporary file is removed; an OSError becomes a
    :class:`WriteError` naming ``path`` (:class:`UnsafePathError` for a link)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    created = False
    try:
        check_path(path)  # before mkdir: it would create folders through a link
        path.parent.mkdir(parents=True, exist_ok=True)
        if _describe(str(tmp)) is None and os.path.lexists(tmp):
            os.unlink(tmp)  # left by an earlier process with this pid that died mid-write
        with open_new(tmp) as handle:
            created = True
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if created:
            _remove_quietly(tmp)
        if isinstance(e, WriteError):
            raise
        raise WriteError(path, e, _exists(path)) from None
    except BaseException:
        if created:
            _remove_quietly(tmp)
        raise


def _exists(path: Path) -> bool:
    """Whether ``path`` exists, for the error message; never raises (unreadable folder)."""
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def _remove_quietly(path: Path) -> None:
    """Remove a temporary file; on a read-only or vanished folder there is nothing to do."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8; unpaired surrogates of undecodable file names kept as
    backslash escapes) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))
