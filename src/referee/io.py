"""Writes that land whole or not at all, and the rule for replacing an output folder.

Every file referee writes goes through `atomic_file` (a temporary sibling, then `os.replace`), and
every output folder (a judge, a fine-tuning checkpoint, an aligned policy) through `atomic_folder`:
the new folder is filled beside the old one and swapped in at the end, so an interrupted run leaves
the old folder as it was.

What may be replaced: a folder that referee wrote (it holds the writer's marker file, such as a
judge's `judge.json`) or an empty folder. Anything else stops with one line naming the folder,
unless the user asked for it (`--overwrite`). A path that is a file, or a symlink, is never touched.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with atomic_folder(root / "judge", marker="judge.json") as tmp:
    ...     _ = (tmp / "judge.json").write_text("{}")
    >>> sorted(p.name for p in (root / "judge").iterdir())
    ['judge.json']
    >>> _ = (root / "notes").mkdir(); _ = (root / "notes" / "todo.txt").write_text("mine")
    >>> check_replaceable(root / "notes", marker="judge.json")
    Traceback (most recent call last):
    ...
    referee.errors.UserError: ... holds files referee did not write (no judge.json): choose another folder, or pass --overwrite to replace it
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from referee.errors import UserError


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{path}: cannot be created: a part of {path.parent} is a file, not a folder") from None


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; when the block ends it becomes `path`.

    On an error the temporary file is removed and `path` keeps what it held."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name to write")
    _make_parent(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> Path:
    """`text` into `path`, UTF-8, whole or not at all."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj, indent: int | None = 1) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False))


def check_replaceable(folder: str | Path, marker: str, overwrite: bool = False, flag: str | None = "--overwrite") -> None:
    """Stop with one line unless `folder` is absent, empty, or holds referee's `marker` file
    (or `overwrite` is set). A file or a symlink at `folder` is never replaceable. `flag` is the
    option that forces it, named in the message (None: the command has none)."""
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UserError(f"{folder}: exists and is not a folder; referee does not replace files (choose another name)")
    if not folder.exists() or overwrite or (folder / marker).is_file() or not any(folder.iterdir()):
        return
    force = f", or pass {flag} to replace it" if flag else " (or empty it yourself)"
    raise UserError(f"{folder}: holds files referee did not write (no {marker}): choose another folder{force}")


@contextmanager
def atomic_folder(folder: str | Path, marker: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `folder` to fill (the writer puts `marker` in it);
    when the block ends it replaces `folder`, which is removed only once the new one is in place.

    `check_replaceable` runs before and again after the block: the folder may have changed while a
    long job was writing."""
    folder = Path(folder)
    check_replaceable(folder, marker, overwrite)
    _make_parent(folder)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        yield tmp
        replace_folder(tmp, folder, marker, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_folder(new: str | Path, folder: str | Path, marker: str, overwrite: bool = False,
                   flag: str | None = "--overwrite") -> None:
    """Put the finished folder `new` (a sibling of `folder`) at `folder`. An existing `folder` must
    pass `check_replaceable`, and is removed only once `new` is in place."""
    new, folder = Path(new), Path(folder)
    check_replaceable(folder, marker, overwrite, flag)
    if not folder.exists():
        os.replace(new, folder)
        return
    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
    os.replace(folder, old)  # onto an empty folder: allowed by rename(2)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)
