"""Writing files so that a reader, a crash or a full disk never leaves a half-written one, and checking
output locations before any work is done, so that hours of work never end in "cannot write"."""
from __future__ import annotations

import os
import re
import secrets
from contextlib import contextmanager
from typing import Iterator

from deepfill.utils.errors import UserError

TEMPORARY_PREFIX = ".tmp-"
_TEMPORARY_NAME = re.compile(re.escape(TEMPORARY_PREFIX) + r"[0-9a-f]{12}(\.[A-Za-z0-9]+)?$")


class WriteError(UserError):
    """A file could not be written (disk full, no permission, read-only disk). Nothing half-written is
    left behind; commands report it in one line."""


def describe(error: OSError) -> str:
    """``OSError`` as a user reads it: what the system said, without Python's "[Errno 28]"."""
    return error.strerror or str(error)


def _temporary_name(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    return os.path.join(directory, TEMPORARY_PREFIX + secrets.token_hex(6) + os.path.splitext(path)[1])


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is flushed to disk and renamed to ``path``,
    on any error it is removed and ``path`` is untouched. A write that fails (disk full, ...) inside the
    block or while flushing becomes ``WriteError``.

    The temporary file is created with mode 0o666 less the umask, like any file the user creates, so that
    collaborators can read checkpoints and results when the umask lets them (``mkstemp`` would make it
    0o600)."""
    try:
        while True:
            temporary = _temporary_name(path)
            try:
                os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                continue
    except OSError as error:
        raise WriteError(f"cannot write {path}: {describe(error)}") from None
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise WriteError(f"cannot write {path}: {describe(error)}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def make_folder(folder: str) -> None:
    """Create ``folder`` (and its parents) if missing; failing is a ``WriteError``."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise WriteError(f"cannot create {folder}: {describe(error)}") from None


def is_temporary(name: str) -> bool:
    """Whether a file name is one of ``atomic_path``'s temporary files."""
    return bool(_TEMPORARY_NAME.match(name))


def remove_stale_temporaries(folder: str) -> list[str]:
    """Delete the temporary files a killed process left in ``folder`` (a killed checkpoint save leaves a
    whole checkpoint's worth). Only call it where no other process is writing. Returns what was removed."""
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        candidate = os.path.join(folder, name)
        if is_temporary(name) and os.path.isfile(candidate):
            try:
                os.remove(candidate)
                removed.append(candidate)
            except OSError:
                pass        # not ours to remove after all (another user's file): leave it
    return removed


def check_writable_folder(folder: str, what: str) -> None:
    """Refuse a folder that could not receive files: a file of that name, a read-only place, or a missing
    parent (a folder that does not exist yet is fine if it can be created)."""
    target = os.path.abspath(folder)
    if os.path.exists(target) and not os.path.isdir(target):
        raise UserError(f"{what} {folder} is a file, not a folder")
    existing = target
    while not os.path.isdir(existing):
        parent = os.path.dirname(existing)
        if parent == existing or (os.path.exists(parent) and not os.path.isdir(parent)):
            raise UserError(f"cannot create {what} {folder}: {parent} is not a folder")
        existing = parent
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {what} {folder}: {existing} is not writable")


def check_writable_file(path: str, what: str = "") -> None:
    """Refuse an output file path whose folder is missing or not writable, or that names a folder."""
    label = f"{what} {path}".strip()
    if os.path.isdir(path):
        raise UserError(f"cannot write {label}: it is a folder")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"cannot write {label}: folder {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {label}: folder {directory} is not writable")
