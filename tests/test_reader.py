"""The one clip reader on real files and on files made faithfully with PyAV.

Real clips (tests/assets/videos, see its README): an HMDB51 AVI with non-UTF-8 metadata, packed
B-frames and a header one frame too long; a UCF101 AVI with a partial index; a phone video
rotated by its display matrix.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.helpers import TINY_CLASSES, tiny_overrides
from vidrec.video.decode import PyAVDecoder
from vidrec.video.reader import ClipReader
from vidrec.video.sampling import make_frame_sampler

ASSETS = Path(__file__).parent / "assets" / "videos"
HMDB = ASSETS / "Turnk_r_Pippi_Michel_cartwheel_f_cm_np2_le_med_6.avi"
UCF = ASSETS / "v_SoccerJuggling_g23_c01.avi"
PHONE = ASSETS / "video_90.mov"


def _write(
    path: Path,
    n: int,
    w: int,
    h: int,
    fps: float,
    codec: str,
    *,
    options: dict | None = None,
    gop: int | None = None,
    bframes: int | None = None,
    times: list[float] | None = None,
) -> Path:
    """Frame i is flat grey 6*i (mod 256) with a bright bar at column 5*i: every frame differs."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if options:
            s.options = options
        if gop:
            s.codec_context.gop_size = gop
        if bframes is not None:
            s.codec_context.max_b_frames = bframes
        if times is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i in range(n):
            a = np.full((h, w, 3), (6 * i) % 256, np.uint8)
            a[: h // 4, (5 * i) % (w - 8) : (5 * i) % (w - 8) + 8] = 255
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            if times is not None:
                f.pts, f.time_base = round(times[i] * 1000), Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("made")
    return {
        # H.264 with B-frames and a key frame every 24 (seeking and NONREF skipping both at work)
        "h264_bframes.mp4": _write(
            d / "h264_bframes.mp4", 120, 96, 64, 25, "libx264", options={"preset": "veryfast", "g": "24", "bf": "3"}
        ),
        # MPEG-4 Part 2 with B-frames in AVI: decode order differs from display order
        "mpeg4_bframes.avi": _write(d / "mpeg4_bframes.avi", 90, 96, 64, 30, "mpeg4", gop=12, bframes=2),
        # SSv2-like VP9 WebM: one key frame, no frame count in the container
        "vp9.webm": _write(
            d / "vp9.webm", 40, 96, 64, 12, "libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8", "g": "1000"}
        ),
        # variable frame rate, MKV (no frame count): 30 frames at 30 fps, then 10 at 5 fps
        "vfr.mkv": _write(
            d / "vfr.mkv",
            40,
            64,
            48,
            30,
            "libx264",
            options={"preset": "veryfast", "bf": "0"},
            times=[i / 30 for i in range(30)] + [1 + 0.2 * i for i in range(10)],
        ),
    }


# ------------------------------------------------------------------------------------ decoding is exact
@pytest.mark.parametrize("name", ["h264_bframes.mp4", "mpeg4_bframes.avi", "vp9.webm", "vfr.mkv", "hmdb", "ucf"])
def test_fast_decoding_returns_exactly_the_sequential_frames(made, name):
    """Seeking, NONREF skipping and frame identification give the frames a plain decode gives."""
    path = {"hmdb": HMDB, "ucf": UCF}.get(name) or made[name]
    plain = PyAVDecoder(seek=False, skip_nonref=False)
    n = plain.info(path).num_frames
    every = plain.decode(path, list(range(n)))  # (n, H, W, C), frame i at position i
    fast = PyAVDecoder()
    rng = np.random.default_rng(0)
    for _ in range(6):
        idx = sorted(rng.choice(n, size=min(8, n), replace=False).tolist())
        assert torch.equal(fast.decode(path, idx), every[idx]), idx
    assert torch.equal(fast.decode(path, [n - 1, 0]), every[[n - 1, 0]])  # any order, any gap


@pytest.mark.parametrize("name", ["mpeg4_bframes.avi", "ucf"])
def test_pixels_are_pyav_own_conversion_and_scaling(made, name):
    """The shared per-thread scaler gives exactly PyAV's per-frame ``to_ndarray`` / ``reformat`` pixels."""
    path = {"ucf": UCF}.get(name) or made[name]
    with av.open(str(path)) as c:
        frames = [f for _, f in zip(range(5), c.decode(video=0))]
    h, w = frames[0].height // 2, frames[0].width // 2
    own = np.stack([f.to_ndarray(format="rgb24") for f in frames])
    small = np.stack([f.reformat(width=w, height=h, format="rgb24").to_ndarray() for f in frames])
    dec = PyAVDecoder(seek=False, skip_nonref=False)
    assert np.array_equal(dec.decode(path, list(range(5))).numpy(), own)
    assert np.array_equal(dec.decode(path, list(range(5)), size=(h, w)).numpy(), small)


def test_real_hmdb_clip_non_utf8_metadata_and_header_count(caplog):
    dec = PyAVDecoder()
    info = dec.info(HMDB)  # av.open() without metadata_errors="ignore" raises UnicodeDecodeError here
    assert (info.width, info.height, info.header_frames) == (320, 240, 84)
    with caplog.at_level(logging.WARNING, logger="vidrec.video.decode"):
        out = dec.decode(HMDB, [0, 83])  # frame 83 does not exist: decoding runs out and learns the count
        dec.decode(HMDB, [83])
    assert torch.equal(out[1], dec.decode(HMDB, [82])[0])  # past the end: the last real frame
    assert dec.info(HMDB).num_frames == 83  # learned once, cached
    warnings = [r.getMessage() for r in caplog.records if "header announces" in r.getMessage()]
    assert len(warnings) == 1 and str(HMDB) in warnings[0] and "84" in warnings[0] and "83" in warnings[0]


def test_reader_samples_within_the_true_count_of_a_truncated_avi(tmp_path, caplog):
    """A truncated AVI (header: 130 frames; about half decode) is sampled within what decodes."""
    full = _write(tmp_path / "full.avi", 130, 96, 64, 25, "mpeg4", gop=12)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.45)])
    reader = ClipReader(make_frame_sampler("segments", num_frames=8))
    with caplog.at_level(logging.WARNING, logger="vidrec.video.decode"):
        clip = reader.read(cut)
        reader.read(cut, train=True, seed=1)
    true = clip.info.num_frames
    assert clip.info.header_frames == 130 and 30 < true < 80
    assert max(clip.indices) < true and clip.indices == make_frame_sampler("segments", num_frames=8)(true, 25.0, None)
    warnings = [r.getMessage() for r in caplog.records if "header announces" in r.getMessage()]
    assert len(warnings) == 1 and "130" in warnings[0] and str(true) in warnings[0] and str(cut) in warnings[0]


def test_rotated_phone_video_comes_out_upright():
    dec = PyAVDecoder()
    info = dec.info(PHONE)
    assert (info.width, info.height, info.rotation) == (320, 568, 90)
    frames = dec.decode(PHONE, [0, 2], size=(112, 64))  # displayed (height, width)
    assert frames.shape == (2, 112, 64, 3)
    raw = next(av.open(str(PHONE)).decode(video=0)).to_ndarray(format="rgb24")  # coded: 320 tall, 568 wide
    upright = np.rot90(raw, k=-1)  # the display matrix turns it 90 degrees clockwise
    assert torch.equal(dec.decode(PHONE, [0])[0], torch.from_numpy(np.ascontiguousarray(upright)))
    clip = ClipReader(make_frame_sampler("segments", num_frames=2), decode_size=64).read(PHONE)
    assert clip.video.shape[1:3] == (114, 64)  # T×H×W×C, short side 64, taller than wide


def test_scan_records_displayed_size_and_rotation(tmp_path):
    import shutil

    from vidrec.data.scan import scan_videos

    shutil.copy(PHONE, tmp_path / PHONE.name)
    shutil.copy(HMDB, tmp_path / HMDB.name)
    index = scan_videos(tmp_path)
    phone = index.get(PHONE.name)
    assert phone is not None and phone.ok and (phone.width, phone.height, phone.rotation) == (320, 568, 90)
    hmdb = index.get(HMDB.name)
    assert hmdb is not None and hmdb.ok and (hmdb.width, hmdb.height) == (320, 240)  # non-UTF-8 metadata is no error


def test_variable_frame_rate_and_no_frame_count_sample_by_time(made):
    path = made["vfr.mkv"]
    info = PyAVDecoder().info(path)
    assert info.vfr and info.header_frames == 0 and info.num_frames == 40
    assert info.duration == pytest.approx(3.0, abs=0.01)
    clip = ClipReader(make_frame_sampler("segments", num_frames=6)).read(path)
    grid = [(k + 0.5) * 0.5 for k in range(6)]  # six equal segments of 3 s
    assert all(abs(t - g) <= 0.2 for t, g in zip(clip.times, grid)), clip.times  # by frame index: 0.1 s … 2.4 s
    dense = ClipReader(make_frame_sampler("dense", num_frames=4, stride=1, target_fps=5.0)).read(path)
    # target_fps=5 on a grid of 40 frames / 3 s: 3 grid steps (0.225 s) apart, 0.675 s from first to last
    assert dense.times[-1] - dense.times[0] == pytest.approx(0.675, abs=0.2)


def test_views_respect_target_fps():
    s = make_frame_sampler("dense", num_frames=4, stride=2, target_fps=15)
    for view in s.views(300, 30.0, 3):
        assert np.diff(view).tolist() == [4, 4, 4]  # stride doubled at 30 fps in every view
    assert s.views(300, 30.0, 1) == [s(300, 30.0, None)]
    seg = make_frame_sampler("segments", num_frames=4)
    assert seg.views(40, 30.0, 2) == [[2, 12, 22, 32], [7, 17, 27, 37]]


# ------------------------------------------------------------------------------------ one reader, every verb
@pytest.fixture(scope="module")
def checkpoint(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vidrec.config import load_config
    from vidrec.engine.checkpoint import save_checkpoint
    from vidrec.models.registry import create_model

    out = tmp_path_factory.mktemp("ck")
    cfg = load_config(
        overrides=tiny_overrides(tiny_dataset, out / "run", **{"data.decode_size": 40, "data.image_size": 32})
    )
    torch.manual_seed(0)
    return save_checkpoint(
        out / "ck",
        model=create_model(cfg.model.name, num_classes=2, **cfg.model_kwargs),
        cfg=cfg,
        classes=list(TINY_CLASSES),
    )


def test_predict_eval_and_embed_read_what_training_evaluates(checkpoint):
    from vidrec.data.build import build_dataset, load_recordset
    from vidrec.embed.encoders import load_encoder
    from vidrec.embed.extract import _VideoReader
    from vidrec.engine.checkpoint import load_checkpoint
    from vidrec.engine.predict import Predictor
    from vidrec.engine.run import eval_dataset

    ck = load_checkpoint(checkpoint)
    rs = load_recordset(ck.cfg)
    val = rs.subset("val")
    spec = ck.model.input_spec
    training_view = build_dataset(ck.cfg, val, ck.classes, spec, train=False)[0]  # what validation scores
    assert training_view["video"].dtype == torch.uint8 and training_view["video"].shape == (3, 4, 32, 32)

    evaluated = eval_dataset(ck, ck.cfg, val, views=1, recordset=rs)[0]
    video, _, clips = Predictor(ck).load(val[0].path)
    embedded = _VideoReader(
        [val[0].path], reader=load_encoder(checkpoint, device="cpu").clip_reader(), mode="frame", window_seconds=0
    )[0]
    for name, got, idx in (
        ("eval", evaluated["video"], evaluated["frame_indices"].tolist()),
        ("predict", video[0], clips[0].indices),
        ("embed", embedded["frames"][0].permute(3, 0, 1, 2), embedded["plan"].clips[0]),
    ):
        assert idx == training_view["frame_indices"].tolist(), name
        assert torch.equal(got, training_view["video"]), name

    # multi-view: eval's views and predict's views are the same clips
    three = eval_dataset(ck, ck.cfg, val, views=3, recordset=rs)
    video3, _, _ = Predictor(ck, views=3).load(val[0].path)
    for k in range(3):
        assert torch.equal(three[k]["video"], video3[k])


def test_eval_never_scores_a_stand_in(checkpoint, tiny_dataset, tmp_path):
    import shutil

    from vidrec.config import load_config
    from vidrec.engine.run import evaluate_checkpoint

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    (root / "videos" / "val_1_0.mp4").write_bytes(b"not a video")
    cfg = load_config(
        overrides=tiny_overrides(root, tmp_path / "run", **{"data.decode_size": 40, "data.image_size": 32})
    )
    out = evaluate_checkpoint(checkpoint, cfg=cfg, progress=False)
    assert list(out.unreadable) == [str(root / "videos" / "val_1_0.mp4")]
    assert "not a readable video" in out.unreadable[str(root / "videos" / "val_1_0.mp4")]
    r = out.result
    assert r.num_clips == 3 and r.labels.numel() == 3 and "val_1_0" not in out.video_ids  # 4 videos, 1 unreadable
    assert r.support == [2, 1] and r.summary()["num_unreadable"] == 1


def test_predict_shows_the_header_count_warning(checkpoint, tmp_path, caplog):
    from vidrec.engine.predict import Predictor

    full = _write(tmp_path / "full.avi", 130, 64, 48, 25, "mpeg4", gop=12)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.45)])
    with caplog.at_level(logging.WARNING, logger="vidrec.video.decode"):
        pred = Predictor(checkpoint).predict([cut, cut])[0]
    assert pred.error is None and max(pred.frame_indices or [999]) < 80
    warnings = [r.getMessage() for r in caplog.records if "header announces 130 frames" in r.getMessage()]
    assert len(warnings) == 1 and str(cut) in warnings[0]  # once per file, naming both counts
