"""A minimal RAR writer for tests: stored (uncompressed) entries in the RAR 4 or RAR 5 format.

No RAR *writer* is free software (``rar`` is proprietary; unrar, unar, 7-Zip and libarchive only
read), so the download tests build their archives with this: real RAR files, laid out by the
published format descriptions (RAR 5.0: https://www.rarlab.com/technote.htm; RAR 4:
``technote.txt`` of RAR 3.x/4.x), with the CRC32 checks the readers verify. Only the "store"
method is written; decompressing RAR's own codecs is the unpacker's job and is exercised with a
compressed archive from libarchive's test suite (tests/assets/rar/, see its README).
"""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path
from typing import Iterable

RAR4_MARK = b"Rar!\x1a\x07\x00"
RAR5_MARK = b"Rar!\x1a\x07\x01\x00"


def _entries(root: Path, names: Iterable[str] | None) -> list[tuple[str, Path]]:
    """(archive name, path) for every file and folder under ``root`` (sorted), or the given names."""
    if names is None:
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    return [(n, root / n) for n in names]


# ------------------------------------------------------------------------------------------ RAR 4
def _dos_time(t: float) -> int:
    y, mo, d, h, mi, s = time.localtime(t)[:6]
    return ((max(y, 1980) - 1980) << 25) | (mo << 21) | (d << 16) | (h << 11) | (mi << 5) | (s // 2)


def _block4(htype: int, flags: int, body: bytes) -> bytes:
    head = struct.pack("<BHH", htype, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def write_rar4(out: Path, root: Path, names: Iterable[str] | None = None) -> Path:
    """Write ``out``: every entry under ``root`` stored, RAR 2.9/4.x format, Windows host."""
    parts = [RAR4_MARK, _block4(0x73, 0x0000, b"\x00" * 6)]
    for name, path in _entries(root, names):
        is_dir = path.is_dir()
        data = b"" if is_dir else path.read_bytes()
        raw = name.replace("/", "\\").encode("utf-8")  # RAR 4 separates folders with a backslash, as WinRAR wrote it
        body = (
            struct.pack(
                "<IIBIIBBHI",
                len(data),
                len(data),
                2,
                zlib.crc32(data),
                _dos_time(path.stat().st_mtime),
                20,
                0x30,
                len(raw),
                0x10 if is_dir else 0x20,  # host OS 2 (Win32, as the official archives): DIRECTORY / ARCHIVE
            )
            + raw
        )
        flags = 0x8000 | (0x00E0 if is_dir else 0)  # LONG_BLOCK (data follows) | directory
        parts += [_block4(0x74, flags, body), data]
    parts.append(_block4(0x7B, 0x4000, b""))
    out.write_bytes(b"".join(parts))
    return out


# ------------------------------------------------------------------------------------------ RAR 5
def _vint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _block5(htype: int, flags: int, body: bytes, data: bytes | None = None) -> bytes:
    """A header block; ``data`` (even empty: file headers always declare a data area) follows it."""
    has_data = data is not None
    fields = _vint(htype) + _vint(flags | (0x2 if has_data else 0)) + (_vint(len(data)) if has_data else b"") + body
    size = _vint(len(fields))
    return struct.pack("<I", zlib.crc32(size + fields)) + size + fields + (data or b"")


def write_rar5(out: Path, root: Path, names: Iterable[str] | None = None) -> Path:
    """Write ``out``: every entry under ``root`` stored, RAR 5.0 format, Unix host."""
    parts = [RAR5_MARK, _block5(1, 0, _vint(0))]
    for name, path in _entries(root, names):
        is_dir = path.is_dir()
        data = b"" if is_dir else path.read_bytes()
        raw = name.encode("utf-8")
        body = (
            _vint(0x1 | 0x2 if is_dir else 0x2 | 0x4)  # directory, mtime present, CRC32 present
            + _vint(len(data))
            + _vint(0o40755 if is_dir else 0o100644)
            + struct.pack("<I", int(path.stat().st_mtime))
            + (b"" if is_dir else struct.pack("<I", zlib.crc32(data)))
            + _vint(0)  # compression: version 0, method 0 (store)
            + _vint(1)  # host OS: Unix
            + _vint(len(raw))
            + raw
        )
        parts.append(_block5(2, 0, body, data))
    parts.append(_block5(5, 0, _vint(0)))
    out.write_bytes(b"".join(parts))
    return out
