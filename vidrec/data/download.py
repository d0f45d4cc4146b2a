"""``vidrec data download ucf101|hmdb51 --to DIR``: the official archives, fetched, checked and
unpacked into exactly the layout the loaders read (docs/datasets.md).

For each archive of a dataset::

    DIR/<name>.part   download (HTTP Range: a rerun, or an automatic retry, resumes where it stopped)
    DIR/<name>        complete: its size is the server's, its MD5 the known one (when known)
    DIR/.<name>.unpack/   unpacked here, every file's CRC32 checked against the archive's own listing;
                          HMDB51's per-class RARs unpacked in turn
    DIR/<folder>/     renamed into place only when all of it is there; the archive is then deleted

so an interrupted or damaged download never leaves a half-unpacked dataset folder, and a folder
that exists is complete (a rerun skips it).

RAR archives are read with ``rarfile`` (the listing: names, sizes, CRC32) and unpacked by an
external tool: ``unar`` (Debian/Ubuntu ``apt-get install unar``, macOS ``brew install unar``),
or ``bsdtar`` (``libarchive-tools``; built into macOS) which cannot unpack solid RAR 3/4 archives.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

from vidrec.errors import VidrecError
from vidrec.utils.io import check_writable

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(VidrecError):
    """A download failed, or an archive is damaged or not the expected one."""


@dataclass(frozen=True)
class Archive:
    """One file a dataset is published as."""

    url: str  # the publisher's URL
    provides: str  # the folder it leaves in DIR; its presence means this archive is done
    into: str = ""  # unpack into this folder (members of UCF101.rar already start with UCF-101/)
    md5: str | None = None  # None: no checksum known
    per_class_rars: bool = False  # HMDB51: a RAR of <class>.rar files, each unpacked into <provides>/<class>/

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# The publishers post no checksums. The UCF101 MD5s are the ones other projects' downloaders
# verify these files against (e.g. torchvision-based data modules); HMDB51 is checked by size
# (the server's Content-Length) and by the CRC32 of every unpacked file.
DATASETS: dict[str, tuple[Archive, ...]] = {
    "ucf101": (
        Archive(
            "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar",
            provides="UCF-101",
            md5="6463accf4bbc20fa6418ab7f159e6149",
        ),
        Archive(
            "https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip",
            provides="ucfTrainTestlist",
            md5="4426308e815a5108ba976f4a2bb47c5e",
        ),
    ),
    "hmdb51": (
        Archive(
            "https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
            provides="hmdb51_org",
            into="hmdb51_org",
            per_class_rars=True,
        ),
        Archive(
            "https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar",
            provides="testTrainMulti_7030_splits",
        ),
    ),
}

UNPACKERS = ("unar", "bsdtar")
INSTALL_HINT = (
    "RAR archives need an unpacker: install unar (Debian/Ubuntu: apt-get install unar; macOS: brew install unar) "
    "or bsdtar (Debian/Ubuntu: apt-get install libarchive-tools; built into macOS)"
)

Progress = Callable[[int, int | None, str], None]  # (bytes done, total or None, what)


def _no_progress(done: int, total: int | None, what: str) -> None:
    return None


@dataclass
class DownloadResult:
    dataset: str
    root: Path
    fetched: list[str]  # archives downloaded in this run
    unpacked: list[str]  # folders created in this run
    skipped: list[str]  # folders that were already there


# ------------------------------------------------------------------------------------------ fetch
def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """``bytes 100-199/1000`` → (100, 1000); ``bytes */1000`` → (-1, 1000)."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    start = -1 if span.strip() == "*" else int(span.split("-")[0])
    return start, (int(total) if total.strip().isdigit() else None)


def fetch(
    url: str,
    dest: Path,
    *,
    retries: int = 3,
    retry_delay: float = 2.0,
    timeout: float = 60.0,
    progress: Progress = _no_progress,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial file with HTTP Range.

    A dropped connection is retried ``retries`` times (resuming each time); after that the error
    says to run again, which resumes too. A server that ignores Range makes the download restart.
    """
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch_once(url, part, timeout=timeout, progress=progress)
            break
        except _Interrupted as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"{url}: the download stopped at {exc.have:,} of {exc.total or '?'} bytes ({exc.reason}); "
                    f"run the same command again to resume ({part} is kept)"
                ) from None
            log.warning(
                "%s: %s at %s bytes; resuming (retry %d of %d)",
                dest.name,
                exc.reason,
                f"{exc.have:,}",
                attempt,
                retries,
            )
            time.sleep(min(retry_delay * 2 ** (attempt - 1), 60.0))
    os.replace(part, dest)
    return dest


class _Interrupted(Exception):
    def __init__(self, have: int, total: int | None, reason: str) -> None:
        self.have, self.total, self.reason = have, total, reason


def _fetch_once(url: str, part: Path, *, timeout: float, progress: Progress) -> None:
    import vidrec

    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"vidrec/{vidrec.__version__} (dataset download)"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        cr = _content_range(exc.headers.get("Content-Range")) if exc.headers else None
        if exc.code == 416 and have and cr and cr[1] == have:  # the partial file is already whole
            return
        if exc.code == 416 and have:  # a .part that does not fit the file on the server: start over
            part.unlink()
            raise _Interrupted(0, None, "the partial file did not match the server's; starting again") from None
        raise DownloadError(
            f"{url}: HTTP {exc.code} {exc.reason}. Check the address (or --mirror); the publisher "
            "may have moved the file, see docs/datasets.md to download it by hand"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if have:
            raise _Interrupted(have, None, f"cannot connect: {reason}") from None
        raise DownloadError(
            f"{url}: cannot connect ({reason}). Check the network or proxy, use --mirror, "
            "or download the file by hand into the target folder and run again"
        ) from None
    with resp:
        cr = _content_range(resp.headers.get("Content-Range"))
        length = resp.headers.get("Content-Length")
        if have and resp.status == 206 and cr and cr[0] == have:
            total = cr[1]
            mode = "ab"
        else:
            if have:
                log.info("%s: the server does not resume downloads; starting again", part.name)
            have, total, mode = 0, (int(length) if length and length.isdigit() else None), "wb"
        if total is not None:
            free = shutil.disk_usage(part.parent).free
            if free < total - have:
                raise DownloadError(
                    f"{part.parent}: {free / 2**30:.1f} GiB free, {(total - have) / 2**30:.1f} GiB "
                    f"still to download for {part.name[:-5]} (and as much again to unpack)"
                )
        done = have
        progress(done, total, part.name[:-5])
        with open(part, mode) as f:
            try:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    done += len(chunk)
                    progress(done, total, part.name[:-5])
            except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:  # reset, timeout
                f.flush()
                raise _Interrupted(done, total, type(exc).__name__) from None
    if total is not None and done != total:
        raise _Interrupted(done, total, "the connection closed early")


def md5sum(path: Path, *, progress: Progress = _no_progress) -> str:
    h = hashlib.md5(usedforsecurity=False)
    total, done = path.stat().st_size, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            progress(done, total, f"md5 {path.name}")
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ unpack
def find_unpacker(name: str = "auto") -> tuple[str, str]:
    """(tool name, executable) for RAR archives: ``unar`` or ``bsdtar``, the first found for ``auto``."""
    names = UNPACKERS if name == "auto" else (name,)
    if name != "auto" and name not in UNPACKERS:
        raise DownloadError(f"--unpacker {name!r}: use one of {', '.join(UNPACKERS)} or auto")
    for n in names:
        exe = shutil.which(n)
        if exe:
            return n, exe
    raise DownloadError(f"no {' or '.join(names)} found. {INSTALL_HINT}")


def _safe_name(name: str, archive: Path) -> str:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DownloadError(f"{archive}: refusing to unpack {name!r}, a path outside the target folder")
    return p.as_posix()


def _damaged(archive: Path, detail: str) -> DownloadError:
    return DownloadError(
        f"{archive} is damaged ({detail}); nothing was unpacked. Delete it and run the same command again to download "
        "it anew"
    )


def _unpack_zip(archive: Path, target: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                _safe_name(info.filename, archive)
            bad = z.testzip()  # reads every member and checks its CRC
            if bad is not None:
                raise _damaged(archive, f"{bad} fails its CRC check")
            z.extractall(target)
    except zipfile.BadZipFile as exc:
        raise _damaged(archive, str(exc)) from None


def _unpack_rar(archive: Path, target: Path, unpacker: tuple[str, str], progress: Progress = _no_progress) -> None:
    """Unpack with the external tool, then check every file against the archive's listing (name,
    size, CRC32): bsdtar does not verify stored files, and no tool should be trusted blindly."""
    import rarfile

    try:
        with rarfile.RarFile(str(archive)) as rf:
            infos = rf.infolist()
            if rf.needs_password():
                raise _damaged(archive, "it is encrypted")
    except rarfile.Error as exc:
        raise _damaged(archive, f"unreadable RAR listing: {exc}") from None
    files = []
    for info in infos:
        name = _safe_name(info.filename, archive)
        if info.is_symlink():
            raise DownloadError(f"{archive}: refusing to unpack the link {info.filename!r}")
        if not info.is_dir():
            files.append((name, info.file_size, info.CRC))
    target.mkdir(parents=True, exist_ok=True)
    tool, exe = unpacker
    if tool == "unar":  # -D: no wrapping folder, -nr: leave nested archives alone, -f: overwrite; a line per file
        cmd = [exe, "-f", "-D", "-nr", "-o", str(target), str(archive)]
    else:  # -v: a line per entry
        cmd = [exe, "-x", "-v", "-f", str(archive), "-C", str(target)]
    what, lines = f"unpack {archive.name}", 0
    said: list[str] = []  # the tool's complaints, for the error message
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            lines += 1
            # unar: "<name> (<size>)... OK." per file; bsdtar -v: "x <name>" per entry; the rest are complaints
            if (tool == "unar" and ("failed" in line.lower() or "error" in line.lower())) or (
                tool == "bsdtar" and not line.startswith("x ") and "Error exit delayed" not in line
            ):
                said.append(line)
            progress(min(lines, len(infos)), len(infos), what)
    if proc.returncode != 0:
        if tool == "bsdtar" and any("solid" in x.lower() for x in said):
            raise DownloadError(
                f"{archive} is a solid RAR archive, which bsdtar cannot unpack: install unar "
                "(apt-get install unar / brew install unar) and run the same command again"
            )
        raise _damaged(archive, f"{tool} failed: {said[0] if said else f'exit status {proc.returncode}'}")
    total, done = sum(size for _, size, _ in files), 0
    for name, size, crc in files:
        path = target / name
        if not path.is_file():
            raise _damaged(archive, f"{name} was not unpacked")
        if path.stat().st_size != size:
            raise _damaged(archive, f"{name} has {path.stat().st_size} bytes, the archive says {size}")
        if crc is not None and _crc32(path) != crc:
            raise _damaged(archive, f"{name} fails its CRC32 check")
        done += size
        progress(done, total, f"check {archive.name}")


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def unpack(
    archive: Path, spec: Archive, root: Path, *, unpacker: tuple[str, str] | None, progress: Progress = _no_progress
) -> Path:
    """Unpack ``archive`` into a hidden folder in ``root``, then rename ``spec.provides`` into place."""
    tmp = root / f".{archive.name}.unpack"
    if tmp.exists():
        shutil.rmtree(tmp)  # left by an interrupted run
    try:
        target = tmp / spec.into if spec.into else tmp
        _unpack_any(archive, target, unpacker, progress)
        if spec.per_class_rars:
            inner = sorted(p for p in target.iterdir() if p.is_file() and p.suffix.lower() == ".rar")
            if not inner:
                raise _damaged(archive, "it holds no per-class .rar archives")
            for k, rar in enumerate(inner):
                _unpack_class_rar(rar, target, unpacker)
                progress(k + 1, len(inner), f"unpack the {len(inner)} class archives")
        produced = tmp / spec.provides
        if not produced.is_dir():
            found = ", ".join(sorted(p.name for p in tmp.iterdir())[:5]) or "nothing"
            raise DownloadError(
                f"{archive}: unpacked, but it holds no {spec.provides}/ folder (it holds {found}); "
                "is it the right file?"
            )
        final = root / spec.provides
        os.replace(produced, final)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _unpack_any(
    archive: Path, target: Path, unpacker: tuple[str, str] | None, progress: Progress = _no_progress
) -> None:
    if archive.suffix.lower() == ".zip":
        _unpack_zip(archive, target)
    elif archive.suffix.lower() == ".rar":
        _unpack_rar(archive, target, unpacker or find_unpacker(), progress)
    else:
        raise DownloadError(f"{archive}: unknown archive type")


def _unpack_class_rar(rar: Path, target: Path, unpacker: tuple[str, str] | None) -> None:
    """HMDB51's ``<class>.rar`` → ``target/<class>/``, whether its members start with ``<class>/`` or not."""
    cls = rar.stem
    scratch = target / f".{cls}.unpack"
    _unpack_any(rar, scratch, unpacker)
    entries = list(scratch.iterdir())
    src = entries[0] if len(entries) == 1 and entries[0].is_dir() and entries[0].name == cls else scratch
    dest = target / cls
    if dest.exists():
        raise _damaged(rar.parent, f"{cls}/ appears twice")
    os.replace(src, dest)
    if scratch.exists():
        shutil.rmtree(scratch)
    rar.unlink()


# ------------------------------------------------------------------------------------------ the verb
def download_dataset(
    dataset: str,
    root: str | Path,
    *,
    mirror: str | None = None,
    checksum: bool = True,
    keep_archives: bool = False,
    unpacker: str = "auto",
    retries: int = 3,
    retry_delay: float = 2.0,
    progress: Progress = _no_progress,
    archives: Sequence[Archive] | None = None,
) -> DownloadResult:
    """Fetch, check and unpack ``dataset`` (``ucf101`` or ``hmdb51``) into ``root``.

    ``mirror``: a base URL that serves the same file names (a lab mirror, a local copy).
    ``archives`` replaces the catalogue entry (tests, other mirrors with other names).
    """
    key = dataset.lower().replace("-", "")
    if archives is None:
        if key not in DATASETS:
            raise DownloadError(
                f"no download for {dataset!r}; vidrec downloads: {', '.join(DATASETS)} "
                "(SSv2 and Something-Else need a sign-in: see docs/datasets.md)"
            )
        archives = DATASETS[key]
    root = Path(root).expanduser()
    check_writable(root, what="--to", folder=True)
    todo = [a for a in archives if not (root / a.provides).is_dir()]
    tool = find_unpacker(unpacker) if any(a.name.lower().endswith(".rar") for a in todo) else None
    root.mkdir(parents=True, exist_ok=True)
    result = DownloadResult(key, root, [], [], [a.provides for a in archives if a not in todo])
    for a in todo:
        url = f"{mirror.rstrip('/')}/{a.name}" if mirror else a.url
        path = root / a.name
        if not path.is_file():
            log.info("downloading %s", url)
            fetch(url, path, retries=retries, retry_delay=retry_delay, progress=progress)
            result.fetched.append(a.name)
        if checksum and a.md5:
            got = md5sum(path, progress=progress)
            if got != a.md5:
                raise DownloadError(
                    f"{path}: MD5 {got}, expected {a.md5}: the file is damaged, or the publisher changed it. Delete it "
                    "to download it again, or pass --no-checksum to unpack it as it is (each file's CRC is still "
                    "checked)"
                )
        unpack(path, a, root, unpacker=tool, progress=progress)
        result.unpacked.append(a.provides)
        if not keep_archives:
            path.unlink()
    return result
