"""`vidrec prepare transcode`: H.264 at a short side, dense key frames, same paths, resumable."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
from typer.testing import CliRunner

import vidrec.cli  # noqa: F401  (registers the verbs)
from vidrec.cli.app import app
from vidrec.data.transcode import TranscodeOptions, plan_transcode, transcode
from vidrec.video.decode import PyAVDecoder

ASSETS = Path(__file__).parent / "assets" / "videos"
runner = CliRunner()


def _keys(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [i for i, p in enumerate(x for x in c.demux(s) if x.size) if p.is_keyframe]


def test_transcode_tree(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    (src / "a").mkdir(parents=True)
    for name in ("v_SoccerJuggling_g23_c01.avi", "video_90.mov"):
        shutil.copy(ASSETS / name, src / "a" / name)
    (src / "a" / "broken.mp4").write_text("not a video")
    (src / "trainlist01.txt").write_text("a/v_SoccerJuggling_g23_c01.avi 1\n")

    r = runner.invoke(app, ["prepare", "transcode", str(src), "--out", str(src / "inside")])
    assert "inside the source folder" in str(r.exception) and not (src / "inside").exists()  # the CLI prints it, exit 2
    r = runner.invoke(app, ["prepare", "transcode", str(src), "--out", str(out), "--dry-run"])
    assert r.exit_code == 0 and "3 to do" in r.output and not out.exists()

    r = runner.invoke(
        app, ["prepare", "transcode", str(src), "--out", str(out), "--short-side", "96", "--gop", "8", "-q", "-j", "1"]
    )
    assert r.exit_code == 1  # one video failed; the others went through
    assert "FAILED  a/broken.mp4" in r.output and "2 transcoded" in r.output and "saved" in r.output
    ucf = PyAVDecoder().info(out / "a" / "v_SoccerJuggling_g23_c01.avi")
    assert (ucf.codec, ucf.width, ucf.height, ucf.num_frames) == ("h264", 128, 96, 240)
    assert _keys(out / "a" / "v_SoccerJuggling_g23_c01.avi")[:4] == [0, 8, 16, 24]  # every --gop frames
    phone = PyAVDecoder().info(out / "a" / "video_90.mov")
    assert (phone.width, phone.height, phone.rotation) == (96, 170, 0)  # upright pixels, no display matrix
    assert (out / "trainlist01.txt").read_text() == (src / "trainlist01.txt").read_text()

    # a killed run: an unfinished temporary file never counts, and the video is redone
    done = out / "a" / "video_90.mov"
    done.unlink()
    (out / "a" / ".video_90.mov.transcoding").write_bytes(b"half")
    plan = plan_transcode(src, out)
    assert [p.name for p in plan.todo] == ["broken.mp4", "video_90.mov"] and len(plan.stale_tmp) == 1
    summary = transcode(src, out, options=TranscodeOptions(short_side=96, gop=8))
    assert summary.done == 1 and summary.skipped == 1 and len(summary.failed) == 1
    assert done.is_file() and not (out / "a" / ".video_90.mov.transcoding").exists()


def test_transcode_fps(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    shutil.copy(ASSETS / "v_SoccerJuggling_g23_c01.avi", src / "clip.avi")  # 240 frames at 29.97 fps
    transcode(src, out, options=TranscodeOptions(short_side=64, fps=10))
    info = PyAVDecoder().info(out / "clip.avi")
    assert info.fps == 10 and abs(info.num_frames - 80) <= 1
