"""``vidrec data download``: a local HTTP server on 127.0.0.1 serves small archives laid out like
the official ones (RAR 4 files written by tests/rar.py, a zip); downloads resume with HTTP Range,
damaged archives are reported and never half-unpacked, and the result is what the loaders read."""

from __future__ import annotations

import hashlib
import shutil
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from tests.helpers import moving_square
from tests.rar import write_rar4, write_rar5
from vidrec.data import download as dl
from vidrec.data.records import load_records
from vidrec.video.encode import write_video

ASSETS = Path(__file__).parent / "assets" / "rar"
UNPACKERS = [u for u in dl.UNPACKERS if shutil.which(u)]


class _Server(ThreadingHTTPServer):
    files: dict[str, bytes]
    ranges: list[tuple[str, str | None]]  # (file, Range header) of every GET
    drop: dict[str, int]  # file -> send only this many bytes of the next response, then hang up


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        return None

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        data = self.server.files.get(name)
        rng = self.headers.get("Range")
        self.server.ranges.append((name, rng))
        if data is None:
            self.send_error(404)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data) and rng:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        cut = self.server.drop.pop(name, None)
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()


@pytest.fixture()
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files, srv.ranges, srv.drop = {}, [], {}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _url(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def _video(path: Path, seed: int) -> None:
    write_video(path, moving_square(6, 32, 1, np.random.default_rng(seed)), fps=12)


def _catalogue(name: str, files: dict[str, bytes]) -> tuple[dl.Archive, ...]:
    """The real catalogue entry with the MD5 of the test files (where the real one has an MD5)."""
    return tuple(replace(a, md5=hashlib.md5(files[a.name]).hexdigest() if a.md5 else None) for a in dl.DATASETS[name])


@pytest.fixture(scope="module")
def ucf_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """UCF101.rar (RAR 4: UCF-101/<Class>/v_<Class>_gNN_cMM.avi) and the splits zip (ucfTrainTestlist/)."""
    src = tmp_path_factory.mktemp("ucf_src")
    classes = ["ApplyEyeMakeup", "HandstandPushups"]
    for ci, cls in enumerate(classes):
        for g in (1, 2):
            _video(src / "UCF-101" / cls / f"v_{cls}_g{g:02d}_c01.avi", seed=ci * 10 + g)
    lists = src / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(classes)))
    for k in (1, 2, 3):
        train = "".join(f"{c}/v_{c}_g01_c01.avi {i + 1}\r\n" for i, c in enumerate(classes))
        (lists / f"trainlist0{k}.txt").write_text(train)
        (lists / f"testlist0{k}.txt").write_text("".join(f"{c}/v_{c}_g02_c01.avi\r\n" for c in classes))
    rar = write_rar4(
        src / "UCF101.rar",
        src,
        ["UCF-101", *sorted(p.relative_to(src).as_posix() for p in (src / "UCF-101").rglob("*"))],
    )
    with zipfile.ZipFile(src / "splits.zip", "w") as z:
        for p in sorted(lists.iterdir()):
            z.write(p, f"ucfTrainTestlist/{p.name}")
    return {
        "UCF101.rar": rar.read_bytes(),
        "UCF101TrainTestSplits-RecognitionTask.zip": (src / "splits.zip").read_bytes(),
    }


@pytest.fixture(scope="module")
def hmdb_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """hmdb51_org.rar: a RAR of per-class RARs (one RAR 5 with its class folder inside, one RAR 4
    with loose files), and test_train_splits.rar (testTrainMulti_7030_splits/)."""
    src = tmp_path_factory.mktemp("hmdb_src")
    classes = ["brush_hair", "cartwheel"]
    outer = src / "outer"
    outer.mkdir()
    for ci, cls in enumerate(classes):
        d = src / "classes" / cls
        for k in (0, 1):
            _video(d / f"{cls}_clip_u_nm_np1_fr_goo_{k}.avi", seed=100 + ci * 10 + k)
        if ci == 0:
            write_rar5(outer / f"{cls}.rar", src / "classes", [cls, *(f"{cls}/{p.name}" for p in sorted(d.iterdir()))])
        else:
            write_rar4(outer / f"{cls}.rar", d)
    splits = src / "splits" / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for cls in classes:
        for k in (1, 2, 3):
            lines = f"{cls}_clip_u_nm_np1_fr_goo_0.avi 1 \n{cls}_clip_u_nm_np1_fr_goo_1.avi 2 \n"  # 1 train, 2 test
            (splits / f"{cls}_test_split{k}.txt").write_text(lines)
    return {
        "hmdb51_org.rar": write_rar4(src / "hmdb51_org.rar", outer).read_bytes(),
        "test_train_splits.rar": write_rar4(src / "splits.rar", src / "splits").read_bytes(),
    }


def test_ucf101_download_resumes_and_leaves_the_loader_layout(server, ucf_files, tmp_path):
    server.files.update(ucf_files)
    server.drop["UCF101.rar"] = len(ucf_files["UCF101.rar"]) // 3  # the first transfer breaks off
    root = tmp_path / "ucf101"
    archives = _catalogue("ucf101", ucf_files)
    with pytest.raises(dl.DownloadError, match="run the same command again to resume"):
        dl.download_dataset("ucf101", root, mirror=_url(server), archives=archives, retries=0)
    part = root / "UCF101.rar.part"
    assert part.stat().st_size == len(ucf_files["UCF101.rar"]) // 3
    assert not (root / "UCF-101").exists()

    res = dl.download_dataset("ucf101", root, mirror=_url(server), archives=archives, retries=0)
    assert ("UCF101.rar", f"bytes={len(ucf_files['UCF101.rar']) // 3}-") in server.ranges  # resumed, not restarted
    assert res.unpacked == ["UCF-101", "ucfTrainTestlist"]
    assert sorted(p.name for p in root.iterdir()) == ["UCF-101", "ucfTrainTestlist"]  # archives gone, nothing else
    rs = load_records("ucf101", root, split=1)
    assert rs.classes == ["ApplyEyeMakeup", "HandstandPushups"]
    assert [r.video_id for r in rs.subset("test")] == ["v_ApplyEyeMakeup_g02_c01", "v_HandstandPushups_g02_c01"]
    assert all(r.path.is_file() for s in rs.subsets.values() for r in s)

    again = dl.download_dataset("ucf101", root, mirror=_url(server), archives=archives)
    assert again.skipped == ["UCF-101", "ucfTrainTestlist"] and not again.fetched


@pytest.mark.parametrize("unpacker", UNPACKERS)
def test_hmdb51_rar_of_rars_with_an_automatic_retry(server, hmdb_files, tmp_path, unpacker):
    server.files.update(hmdb_files)
    server.drop["hmdb51_org.rar"] = 1000  # broken off once: the retry resumes by itself
    root = tmp_path / "hmdb51"
    res = dl.download_dataset(
        "hmdb51",
        root,
        mirror=_url(server),
        archives=_catalogue("hmdb51", hmdb_files),
        unpacker=unpacker,
        retry_delay=0,
        keep_archives=True,
    )
    assert ("hmdb51_org.rar", "bytes=1000-") in server.ranges
    assert res.fetched == ["hmdb51_org.rar", "test_train_splits.rar"]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["hmdb51_org", "hmdb51_org.rar", "test_train_splits.rar", "testTrainMulti_7030_splits"]
    )
    assert sorted(p.name for p in (root / "hmdb51_org").iterdir()) == ["brush_hair", "cartwheel"]  # inner .rar gone
    rs = load_records("hmdb51", root, split=2)
    assert rs.classes == ["brush_hair", "cartwheel"] and len(rs.subset("train")) == 2 and len(rs.subset("test")) == 2


@pytest.mark.parametrize("unpacker", UNPACKERS)
def test_a_damaged_archive_is_reported_and_not_unpacked(server, ucf_files, tmp_path, unpacker):
    data = bytearray(ucf_files["UCF101.rar"])
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a stored video
    server.files.update({**ucf_files, "UCF101.rar": bytes(data)})
    root = tmp_path / "ucf101"
    archives = tuple(replace(a, md5=None) for a in dl.DATASETS["ucf101"])  # no checksum: the unpack must notice
    with pytest.raises(dl.DownloadError, match=r"UCF101.rar is damaged \(.*(CRC|checksum).*\); nothing was unpacked"):
        dl.download_dataset("ucf101", root, mirror=_url(server), archives=archives, unpacker=unpacker)
    assert sorted(p.name for p in root.iterdir()) == ["UCF101.rar"]  # kept to inspect; no folder, no leftovers

    # with the checksum, the damage is caught before unpacking
    with pytest.raises(dl.DownloadError, match="MD5 .* expected .*--no-checksum"):
        dl.download_dataset("ucf101", root, archives=_catalogue("ucf101", ucf_files), unpacker=unpacker)
    assert sorted(p.name for p in root.iterdir()) == ["UCF101.rar"]


def test_compressed_solid_rar3_from_winrar(tmp_path):
    """A real compressed, solid RAR 3 archive (tests/assets/rar/README.md): unar unpacks it and the
    CRC check passes; bsdtar refuses solid archives, and the error says to install unar."""
    archive = ASSETS / "rar3-solid.rar"
    expected = "".join(f"{i:03d}\n" for i in range(512)).encode()
    if "unar" in UNPACKERS:
        dl._unpack_rar(archive, tmp_path / "unar", dl.find_unpacker("unar"))
        assert (tmp_path / "unar/stest1.txt").read_bytes() == expected == (tmp_path / "unar/stest2.txt").read_bytes()
    if "bsdtar" in UNPACKERS:
        with pytest.raises(dl.DownloadError, match="solid.*install unar"):
            dl._unpack_rar(archive, tmp_path / "bsdtar", dl.find_unpacker("bsdtar"))
    assert UNPACKERS, "no RAR unpacker installed (make test installs unar and libarchive-tools)"


def test_errors_name_the_fix(server, tmp_path, monkeypatch):
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        dl.fetch(f"{_url(server)}/missing.rar", tmp_path / "missing.rar", retries=0)
    with pytest.raises(dl.DownloadError, match="no download for 'kinetics'"):
        dl.download_dataset("kinetics", tmp_path)
    monkeypatch.setattr(dl.shutil, "which", lambda name: None)
    with pytest.raises(dl.DownloadError, match="apt-get install unar.*libarchive-tools"):
        dl.download_dataset("hmdb51", tmp_path / "h", mirror=_url(server))
    (tmp_path / "evil").mkdir()
    (tmp_path / "a.txt").write_text("a")
    write_rar4(tmp_path / "evil.rar", tmp_path / "evil", ["../a.txt"])  # a member named ../a.txt
    with pytest.raises(dl.DownloadError, match="outside the target folder"):
        dl._unpack_rar(tmp_path / "evil.rar", tmp_path / "out", ("unar", "unar"))


def test_cli_download(server, ucf_files, tmp_path, capsys):
    from tests.test_cli import run

    server.files.update(ucf_files)
    code, out, err = run(
        capsys,
        "data",
        "download",
        "ucf101",
        "--to",
        str(tmp_path / "u"),
        "--mirror",
        _url(server),
        "--no-checksum",
        "--quiet",
    )
    assert code == 0, err
    assert "vidrec data show" in out and (tmp_path / "u/UCF-101/ApplyEyeMakeup").is_dir()
    code, out, err = run(
        capsys, "data", "download", "hmdb51", "--to", str(tmp_path / "h"), "--mirror", _url(server), "--quiet"
    )
    assert code == 2 and err.startswith("error: ") and "HTTP 404" in err and "Traceback" not in err
