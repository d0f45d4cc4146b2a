"""Decoder, samplers and transforms on small real videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import marker_frames
from vidrec.errors import VideoError
from vidrec.video.decode import AutoDecoder, FrameFolderDecoder, PyAVDecoder
from vidrec.video.encode import write_video
from vidrec.video.sampling import dense_indices, make_frame_sampler, multi_view_indices, segment_indices
from vidrec.video.transforms import ClipTransform, VideoNormalize, flip_changes_label


@pytest.fixture(scope="module")
def marker_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("markers")
    frames = marker_frames(40)
    return {ext: write_video(d / f"m{ext}", frames, fps=10) for ext in (".mp4", ".avi", ".webm")}


def _level(frame: torch.Tensor) -> float:
    return float(frame.float().mean())


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".webm"])
def test_decoder_returns_requested_indices_in_order(marker_videos, ext):
    path = marker_videos[ext]
    dec = PyAVDecoder()
    info = dec.info(path)
    assert info.num_frames == 40 and info.width == 48 and info.height == 32
    assert info.fps == pytest.approx(10)
    assert info.duration == pytest.approx(4.0, abs=0.15)
    idx = [0, 7, 3, 3, 39]
    out = dec.decode(path, idx)
    assert out.dtype == torch.uint8 and out.shape == (5, 32, 48, 3)
    for frame, i in zip(out, idx):
        assert _level(frame) == pytest.approx(10 + 20 * i % 240, abs=4), f"frame {i}"


@pytest.mark.parametrize("ext", [".mp4", ".webm"])
def test_decoder_seek_matches_sequential(marker_videos, ext):
    path = marker_videos[ext]
    seq = PyAVDecoder(seek=False, skip_nonref=False).decode(path, [2, 30, 38])
    seek = PyAVDecoder().decode(path, [2, 30, 38])
    assert torch.equal(seq, seek)


def test_decoder_decodes_straight_to_size(marker_videos):
    out = PyAVDecoder().decode(marker_videos[".mp4"], [1, 2], size=(16, 24))
    assert out.shape == (2, 16, 24, 3)
    assert _level(out[1]) == pytest.approx(50, abs=4)


def test_decoder_past_end_repeats_last_frame(marker_videos):
    out = PyAVDecoder().decode(marker_videos[".mp4"], [39, 45])
    assert torch.equal(out[0], out[1])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not a video\n" * 50), "not a readable video"),
    ],
)
def test_decoder_bad_files(tmp_path, make, message):
    p = tmp_path / "bad.mp4"
    make(p)
    with pytest.raises(VideoError, match=message) as exc:
        PyAVDecoder().decode(p, [0])
    assert str(p) in str(exc.value)


def test_decoder_truncated_file(tmp_path, marker_videos):
    data = marker_videos[".mp4"].read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError):
        dec = PyAVDecoder()
        dec.info(p)
        dec.decode(p, list(range(0, 40, 5)))


def test_frame_folder_decoder(tmp_path):
    from PIL import Image

    frames = marker_frames(6)
    folder = tmp_path / "vid"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i + 1:06d}.jpg", quality=95)
    dec = AutoDecoder()
    assert dec.info(folder).num_frames == 6
    out = dec.decode(folder, [5, 0], size=(8, 12))
    assert out.shape == (2, 8, 12, 3)
    assert _level(out[0]) == pytest.approx(110, abs=3) and _level(out[1]) == pytest.approx(10, abs=3)
    with pytest.raises(VideoError, match="no .jpg"):
        (tmp_path / "empty").mkdir()
        FrameFolderDecoder().info(tmp_path / "empty")


# ------------------------------------------------------------------------------------- samplers
@pytest.mark.parametrize(
    "n, segs, expected",
    [
        (80, 8, [5, 15, 25, 35, 45, 55, 65, 75]),
        (8, 8, list(range(8))),
        (3, 6, [0, 0, 1, 1, 2, 2]),
        (1, 4, [0, 0, 0, 0]),
        (0, 2, [0, 0]),
    ],
)
def test_segment_indices_eval_centre(n, segs, expected):
    assert segment_indices(n, segs) == expected


def test_segment_indices_train_stay_in_segment_and_are_seeded():
    a = segment_indices(100, 10, rng=np.random.default_rng(1))
    b = segment_indices(100, 10, rng=np.random.default_rng(1))
    c = segment_indices(100, 10, rng=np.random.default_rng(2))
    assert a == b and a != c
    assert all(10 * k <= i < 10 * (k + 1) for k, i in enumerate(a))


@pytest.mark.parametrize(
    "n, clip, stride, expected",
    [(100, 4, 2, [46, 48, 50, 52]), (5, 4, 2, [0, 2, 4, 4]), (7, 4, 2, [0, 2, 4, 6]), (0, 3, 1, [0, 0, 0])],
)
def test_dense_indices_eval(n, clip, stride, expected):
    assert dense_indices(n, clip, stride) == expected


def test_dense_indices_train_bounds():
    rng = np.random.default_rng(0)
    for n in (1, 5, 16, 17, 200):
        for _ in range(20):
            idx = dense_indices(n, 8, 2, rng=rng)
            assert len(idx) == 8 and min(idx) >= 0 and max(idx) <= n - 1
            assert idx == sorted(idx)


def test_multi_view_indices():
    views = multi_view_indices(100, 4, 2, 3)
    assert [v[0] for v in views] == [0, 46, 93] and all(len(v) == 4 for v in views)
    seg = multi_view_indices(40, 4, 1, 2, mode="segments")
    assert seg == [[2, 12, 22, 32], [7, 17, 27, 37]]
    assert multi_view_indices(10, 4, 1, 1) == [dense_indices(10, 4, 1)]


def test_make_frame_sampler_target_fps_keeps_duration():
    s = make_frame_sampler("dense", num_frames=4, stride=2, target_fps=15)
    assert s(300, 30.0, None)[1] - s(300, 30.0, None)[0] == 4  # stride doubled at 30 fps
    assert s(300, 15.0, None)[1] - s(300, 15.0, None)[0] == 2
    with pytest.raises(ValueError, match="unknown sampler"):
        make_frame_sampler("bogus", num_frames=4)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- transforms
def test_transform_shapes_and_normalisation():
    frames = torch.full((4, 40, 60, 3), 255, dtype=torch.uint8)
    t = ClipTransform(train=False, image_size=32)
    out = t(frames)
    assert out.shape == (3, 4, 32, 32) and out.dtype == torch.uint8  # uint8 through the DataLoader
    x = VideoNormalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(out[None])  # per batch, on its device
    assert x.dtype == torch.float32 and torch.allclose(x, torch.ones_like(x))


def test_train_transform_crops_all_frames_alike():
    torch.manual_seed(0)
    frames = torch.randint(0, 255, (1, 48, 48, 3), dtype=torch.uint8).repeat(5, 1, 1, 1)
    out = ClipTransform(train=True, image_size=24, scale=(0.3, 0.5))(frames)
    assert out.shape == (3, 5, 24, 24)
    assert all(torch.equal(out[:, 0], out[:, k]) for k in range(1, 5))


def test_flip_is_off_for_left_right_labels():
    assert flip_changes_label(["Moving something from left to right", "Pushing something"])
    assert not flip_changes_label(["ApplyEyeMakeup", "Archery"])
