"""Small I/O helpers: atomic writes so that an interrupted run never leaves a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_writable(path: str | os.PathLike[str], *, what: str, folder: bool) -> None:
    """Fail before any work when ``path`` cannot be written: a file in the way of a folder, a folder where a
    file goes, no permission. Raises :class:`~vidrec.errors.VidrecError` naming ``what`` (an option)."""
    from vidrec.errors import VidrecError

    path = Path(path).expanduser()
    if path.exists():
        if folder and not path.is_dir():
            raise VidrecError(f"{what} {path}: is a file, so no folder can be written there; choose another path")
        if not folder and path.is_dir():
            raise VidrecError(f"{what} {path}: is a folder; give a file name")
    probe = path if folder and path.exists() else path.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise VidrecError(f"{what} {path}: {probe} is a file, so nothing can be written under it; choose another path")
    if probe.is_dir() and not os.access(probe, os.W_OK | os.X_OK):
        raise VidrecError(f"{what} {path}: {probe} is not writable; choose another path")


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def create_json_exclusive(path: str | os.PathLike[str], obj: Any) -> bool:
    """Write ``obj`` to ``path`` only if no file is there, atomically (a complete file or none, even when
    several processes race to create it: a hard link never replaces). False when ``path`` already existed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, indent=2, default=_json_default) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _siblings(target: Path) -> tuple[Path, Path]:
    return target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")


def recover_dir(target: str | os.PathLike[str]) -> Path | None:
    """Finish a :func:`replace_dir` that a kill interrupted; return ``target`` when a complete one exists.

    ``replace_dir`` moves the old directory aside only once the new one (``NAME.tmp``) is complete, so
    ``NAME.old`` without ``NAME`` means ``NAME.tmp`` is complete (it is renamed into place), or, when it
    is gone too, that ``NAME.old`` is the last complete copy (it is put back). A ``NAME.tmp`` without
    ``NAME.old`` may be half-written and is left for the next writer to replace.
    """
    import shutil

    target = Path(target)
    tmp, old = _siblings(target)
    if not target.exists() and old.exists():
        (tmp if tmp.is_dir() else old).rename(target)
    if target.exists() and old.exists():
        shutil.rmtree(old)
    return target if target.exists() else None


def replace_dir(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Put the finished directory ``tmp`` (named ``NAME.tmp``) in place of ``target`` (``NAME``).

    Two renames: ``NAME`` → ``NAME.old``, then ``NAME.tmp`` → ``NAME``; ``NAME.old`` is removed last.
    A kill between any two steps leaves a complete directory that :func:`recover_dir` puts back in
    place, whichever step it was: readers that resume call it first.
    """
    import shutil

    tmp, target = Path(tmp), Path(target)
    if tmp != _siblings(target)[0]:
        raise ValueError(f"replace_dir: {tmp} must be named {target.name}.tmp beside {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    old = _siblings(target)[1]
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
    tmp.rename(target)
    if old.exists():
        shutil.rmtree(old)
    return target


def fresh_tmp_dir(target: str | os.PathLike[str]) -> Path:
    """An empty ``NAME.tmp`` beside ``target`` to build its replacement in (after finishing any interrupted swap)."""
    import shutil

    target = Path(target)
    recover_dir(target)
    tmp = _siblings(target)[0]
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def link_tree(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy the finished directory ``src`` to ``dst`` atomically, with hard links where the file system allows.

    Safe because vidrec never rewrites a file in place (every write is a new file renamed over the
    old name), so a linked file never changes under the copy.
    """
    import shutil

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    dst = Path(dst)
    tmp = _siblings(dst)[0]
    recover_dir(dst)
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, copy_function=link_or_copy)
    return replace_dir(tmp, dst)


def head_lines(path: str | os.PathLike[str], n: int) -> str:
    """The first ``n`` complete lines of a text file ("" when it is missing)."""
    path = Path(path)
    if not path.is_file() or n <= 0:
        return ""
    out: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if len(out) == n or not line.endswith("\n"):
                break
            out.append(line)
    return "".join(out)


def torch_load_safely(path: str | os.PathLike[str], *, error: type[Exception], allow_numpy: bool = False) -> Any:
    """``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, never code.

    A file that holds anything else (a pickle that would import a function and call it) is refused
    with ``error`` naming the file and what it tried to load. ``allow_numpy`` also admits plain
    numpy arrays (accelerate's RNG files hold one).
    """
    import torch

    path = Path(path)
    try:
        if allow_numpy:
            from accelerate.utils.other import load as accelerate_load  # weights_only=True + numpy's array globals

            return accelerate_load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    except Exception as exc:  # noqa: BLE001 - the unpickler raises many types for a hostile or broken file
        raise error(unpickle_refusal(path, exc)) from None


def unpickle_refusal(path: str | os.PathLike[str], exc: BaseException) -> str:
    """One line for a file that ``torch.load(weights_only=True)`` refused: what it tried to run, and why not."""
    import re

    text = " ".join(str(exc).split())
    called = re.search(r"GLOBAL ([\w.]+)", text)
    if called:
        why = f"it would call {called.group(1)}"
    else:
        m = re.search(r"(Unsupported [^.]*|WeightsUnpickler error: [^.]*)", text)
        why = m.group(1) if m else f"{type(exc).__name__}: {text[:120]}"
    return (
        f"{path}: refused: not a plain file of tensors and numbers ({why}); vidrec never unpickles anything else, "
        "because a pickle can run code. Delete the file if you did not make it."
    )
