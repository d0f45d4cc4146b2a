"""`vidrec prepare`: scan index (good and bad files), resumable frame extraction, Something-Else merge."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vidrec.cli  # noqa: F401  (registers the verbs)
from tests.fixtures_datasets import make_hmdb51, make_something_else, se_boxes, snapshot, tiny_video
from vidrec.cli.app import app
from vidrec.data.boxes import merge_box_parts, open_box_store
from vidrec.data.frames import FrameOptions, VideoResult, extract_frames, plan_frames
from vidrec.data.scan import load_index, scan_videos, write_index
from vidrec.errors import ConfigError, DatasetError

runner = CliRunner()


@pytest.fixture()
def mixed(tmp_path: Path) -> Path:
    """Good videos in three containers, plus an empty, a truncated (cut in half) and a non-video file."""
    root = tmp_path / "videos"
    for suffix in (".avi", ".mp4", ".webm"):
        tiny_video(root / "good" / f"clip{suffix}", frames=24)
    (root / "bad").mkdir()
    for suffix in (".avi", ".webm"):  # long enough that half the file keeps the whole header
        full = tiny_video(tmp_path / f"long{suffix}", frames=48, size=(64, 96), seed=5).read_bytes()
        (root / "bad" / f"cut{suffix}").write_bytes(full[: len(full) // 2])
    (root / "bad" / "empty.mp4").write_bytes(b"")
    (root / "bad" / "notes.mp4").write_text("this is not a video")
    (root / "bad" / "readme.txt").write_text("ignored: not a video suffix")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_scan_good_and_bad_files(mixed: Path, tmp_path: Path, workers: int) -> None:
    before = snapshot(mixed)
    index = scan_videos(mixed, workers=workers)
    assert len(index.entries) == 7  # readme.txt is not a video
    good = {k: e for k, e in index.entries.items() if e.ok}
    assert sorted(good) == ["good/clip.avi", "good/clip.mp4", "good/clip.webm"]
    for e in good.values():
        assert (e.num_frames, e.fps, e.width, e.height) == (24, 12.0, 48, 32) and e.duration == pytest.approx(2.0)
        assert e.codec in ("mpeg4", "h264", "vp9")
    errors = {k: e.error for k, e in index.entries.items() if not e.ok}
    assert errors["bad/empty.mp4"] == "empty file (0 bytes)"
    assert "not a readable video" in errors["bad/notes.mp4"]
    assert errors["bad/cut.avi"].startswith("truncated: the header announces 48 frames, the file holds")
    assert errors["bad/cut.webm"].startswith("truncated: the container says 4.00 s (about 48 frames), the file holds")
    assert snapshot(mixed) == before
    for suffix in (".parquet", ".jsonl"):
        path = write_index(index, tmp_path / f"index{suffix}")
        back = load_index(path)
        assert back.entries == index.entries and back.root == mixed.resolve()
        assert back.lookup(mixed / "good" / "clip.avi") == index.entries["good/clip.avi"]


def test_scan_cli_exit_status_and_refusals(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.jsonl"
    res = runner.invoke(app, ["prepare", "scan", str(mixed), "--out", str(out), "--workers", "1", "-q"])
    assert res.exit_code == 1, res.output  # some files are bad
    assert "BAD  bad/empty.mp4: empty file (0 bytes)" in res.stdout and "3 ok, 4 bad" in res.stdout
    assert len(load_index(out).entries) == 7
    res = runner.invoke(app, ["prepare", "scan", str(mixed / "good"), "--out", str(out), "-q"])
    assert res.exit_code == 0 and "3 ok, 0 bad" in res.stdout
    res = runner.invoke(app, ["prepare", "scan", str(mixed), "--out", str(mixed / "idx.parquet")])
    assert isinstance(res.exception, ConfigError) and not (mixed / "idx.parquet").exists()
    (tmp_path / "broken.jsonl").write_text('{"vidrec_scan": 1, "root": "/x"}\n{"path": \n')
    with pytest.raises(DatasetError, match=r"broken.jsonl: line 2: malformed entry"):
        load_index(tmp_path / "broken.jsonl")


def test_frames_resume_after_interruption(tmp_path: Path) -> None:
    root = make_hmdb51(tmp_path / "hmdb")  # 15 videos of 12 frames
    out = tmp_path / "frames"
    before = snapshot(root)
    options = FrameOptions(quality=80, short_side=16)

    class Killed(Exception):
        pass

    done: list[str] = []

    def die_after_six(r: VideoResult) -> None:
        done.append(r.rel)
        if len(done) == 6:
            raise Killed

    with pytest.raises(Killed):
        extract_frames(root, out, options=options, on_result=die_after_six)
    finished = sorted(p for p in out.rglob("*") if p.is_dir() and (p / "000001.jpg").exists())
    assert len(finished) == 6 and not list(out.rglob("*.tmp"))
    # a run killed in the middle of a video leaves a half-written .tmp folder: never counted as done
    victim = out / "hmdb51_org" / "catch" / "April_09_catch_u_nm_np1_ba_goo_4"
    half = victim.with_name(victim.name + ".tmp")
    half.mkdir(parents=True)
    (half / "000001.jpg").write_bytes(b"\xff\xd8 half a jpeg")
    plan = plan_frames(root, out)
    assert (plan.done, len(plan.todo), plan.stale_tmp) == (6, 9, 1)
    mtimes = {p: p.stat().st_mtime_ns for p in finished}
    seen: list[VideoResult] = []
    summary = extract_frames(root, out, workers=2, options=options, on_result=seen.append)
    assert (summary.done, summary.skipped, summary.failed) == (9, 6, [])
    assert sum(r.skipped for r in seen) == 6
    assert {p: p.stat().st_mtime_ns for p in finished} == mtimes  # finished folders were not redone
    assert not half.exists() and len(list(victim.glob("*.jpg"))) == 12
    folders = [p for p in out.rglob("*") if p.is_dir() and any(p.glob("*.jpg"))]
    assert len(folders) == 15 and all(len(list(f.glob("*.jpg"))) == 12 for f in folders)
    from PIL import Image

    with Image.open(victim / "000012.jpg") as im:
        assert min(im.size) == 16
    assert snapshot(root) == before


def test_frames_cli_dry_run_fps_subset_and_failures(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    res = runner.invoke(
        app, ["prepare", "frames", str(mixed / "good"), "--out", str(out), "--dry-run", "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "1 to do" in res.stdout and "estimate from 1 sampled video(s): 24 frames" in res.stdout
    assert "2 video(s) would share a frame folder" in res.stdout  # clip.avi / clip.mp4 / clip.webm
    assert not out.exists()  # a dry run writes nothing
    res = runner.invoke(
        app,
        [
            "prepare",
            "frames",
            str(mixed),
            "--out",
            str(out),
            "--fps",
            "6",
            "--subset",
            "5",
            "--workers",
            "1",
            "--quiet",
        ],
    )
    assert res.exit_code == 1  # the bad files among the first five failed
    assert "FAILED  bad/empty.mp4" in res.stdout and "FAILED  bad/notes.mp4" in res.stdout
    assert "FAILED  bad/cut.avi" in res.stdout and "truncated" in res.stdout
    assert not (out / "bad").exists() or not any((out / "bad").iterdir())  # no folder for a failed video
    assert not list(out.rglob("*.tmp"))
    assert len(list((out / "good" / "clip").glob("*.jpg"))) == 12  # 24 frames at 12 fps -> 6 fps
    with pytest.raises(ConfigError, match="inside the dataset root"):
        extract_frames(mixed, mixed / "frames")
    # clip.avi, clip.mp4 and clip.webm would share good/clip/: the later ones fail with the reason
    summary = extract_frames(mixed / "good", tmp_path / "f2")
    assert summary.done == 1 and len(summary.failed) == 2
    assert all("frame folder is taken by clip.avi" in r.error for r in summary.failed)


def test_prepare_something_else_merge(tmp_path: Path) -> None:
    paths = make_something_else(tmp_path / "ssv2")
    parts = paths["parts"]
    # the same id in two parts: the later part wins and it is counted
    (parts / "bounding_box_smthsmth_part3.json").write_text(json.dumps({"105": se_boxes("105", frames=4)}))
    out = tmp_path / "merged" / "boxes.sqlite"
    res = runner.invoke(app, ["prepare", "something-else", str(parts), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "6 videos" in res.stdout and "1 ids repeated across parts" in res.stdout
    store = open_box_store(out)
    assert store.ids() == {"101", "102", "103", "104", "105", "106"}
    v = store.get("102")
    assert sorted(v["frames"]) == list(range(24)) and v["frames"][3] == []
    assert v["frames"][0][0] == ["hand", 0.0, 2.0, 10.0, 12.0] and v["objects"] == {"0000": "a cup", "0001": "table"}
    assert len(store.get("105")["frames"]) == 4
    assert store.get("nope") is None
    assert [p.name for p in out.parent.iterdir()] == ["boxes.sqlite"]  # no temp file left behind
    (parts / "bounding_box_smthsmth_part4.json").write_text('{"200": [\n {"name": "200/0001.jpg", "labels": [}\n]}')
    with pytest.raises(DatasetError, match=r"part4.json: line 2 column \d+: malformed JSON"):
        merge_box_parts(parts, tmp_path / "again.sqlite")
    assert not (tmp_path / "again.sqlite").exists()
    os.remove(parts / "bounding_box_smthsmth_part4.json")
    bad = {"300": [{"name": "300/0001.jpg", "labels": [{"box2d": {"x1": 1}, "standard_category": "hand"}]}]}
    (parts / "bounding_box_smthsmth_part4.json").write_text(json.dumps(bad))
    summary = merge_box_parts(parts, tmp_path / "again.sqlite")
    assert (
        len(summary.problems) == 1
        and "part4.json: video 300: frame 300/0001.jpg: a label without a valid box2d" in summary.problems[0]
    )
