"""vidrec serve: the demo's handlers on a tiny trained checkpoint and a tiny store, the gradio app
(built and called in-process, never launched; skipped without gradio) and the CLI."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import tiny_overrides
from tests.test_cli import run
from tests.test_embed import COLORS, colour_video
from tests.test_video_clip import write_tiny_clip
from vidrec.embed import EncoderError, QueryError, Store, extract
from vidrec.engine.predict import Predictor
from vidrec.errors import VideoError, VidrecError
from vidrec.serve import ServeError, classify, load_resources, render_hit, render_prediction, text_search, video_search
from vidrec.video.decode import AutoDecoder

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoint(tiny_dataset, tmp_path_factory):
    """A tiny CNN-RNN trained for one epoch on the tiny dataset (as `vidrec train` writes it)."""
    from vidrec.config import load_config
    from vidrec.engine.run import train

    out = tmp_path_factory.mktemp("serve-run") / "r"
    cfg = load_config(overrides=tiny_overrides(tiny_dataset, out, **{"train.epochs": 1}))
    return train(cfg, progress=False).fit.best_checkpoint


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Three coloured-square videos embedded with a tiny CLIP into a store: (store dir, videos dir)."""
    root = tmp_path_factory.mktemp("serve-lib")
    videos = root / "videos"
    for i, name in enumerate(("red", "green", "blue")):
        colour_video(videos / f"{name}.mp4", COLORS[name], seed=i)
    clip = write_tiny_clip(root / "tiny-clip")
    extract(videos, root / "store", model=clip, workers=0, num_frames=8, merge="2")
    return root / "store", videos


@pytest.fixture(scope="module")
def resources(checkpoint, library):
    return load_resources(checkpoint, library[0], device="cpu")


def _frames(path):
    info = AutoDecoder().info(path)
    return AutoDecoder().decode(path, list(range(info.num_frames)))  # (T, H, W, 3)


@pytest.fixture()
def not_a_video(tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return bad


def test_classify_matches_predict(resources, checkpoint, tiny_dataset):
    video = sorted((tiny_dataset / "videos").glob("val_*.mp4"))[0]
    top = classify(resources.predictor, video, topk=2)
    assert [c for c, _ in top] and {c for c, _ in top} == set(resources.classes)
    assert abs(sum(p for _, p in top) - 1.0) < 1e-5 and top[0][1] >= top[1][1]
    assert top == Predictor(checkpoint).predict_one(video, topk=2).topk  # the same numbers as `vidrec predict`
    assert len(classify(resources.predictor, str(video), topk=1)) == 1  # gradio hands over a str path


def test_classify_errors(resources, not_a_video, tmp_path):
    with pytest.raises(ServeError, match="no video uploaded"):
        classify(resources.predictor, None)
    with pytest.raises(ServeError, match="no video uploaded"):
        classify(resources.predictor, "")
    with pytest.raises(VideoError, match="no such file"):
        classify(resources.predictor, tmp_path / "gone.mp4")
    with pytest.raises(VideoError, match="^holiday.mp4: not a readable video"):
        classify(resources.predictor, not_a_video)
    with pytest.raises(ServeError, match="--checkpoint DIR"):
        classify(None, not_a_video)


def test_text_search_rows(resources, library):
    store, videos = library
    rows = text_search(resources.store, "a red square", k=2, moments=2)
    assert [r.rank for r in rows] == [1, 2] and rows[0].score >= rows[1].score
    expect = Store(store).search("a red square", k=2, moments=2)  # the same as `vidrec search`
    assert [r.path for r in rows] == [h.path for h in expect]
    assert [r.score for r in rows] == pytest.approx([h.score for h in expect], abs=1e-5)
    for r in rows:
        assert 1 <= len(r.moments) <= 2 and all(0 <= a < b for a, b, _ in r.moments)
        row = r.table_row()
        assert row[2] == r.path and row[3] == pytest.approx(r.moments[0][0], abs=0.01) and "–" in row[5]
    # an explicit encoder (the store's own) gives the same ranking
    again = text_search(resources.store, "  a red square ", k=2, moments=2, encoder=resources.store.encoder())
    assert [r.path for r in again] == [r.path for r in rows]
    assert len(text_search(resources.store, "blue", k=1, moments=0)[0].moments) == 0
    # video → videos: a stored video finds the others, not itself
    similar = video_search(resources.store, videos / "red.mp4", k=2)
    assert len(similar) == 2 and str((videos / "red.mp4").resolve()) not in [r.path for r in similar]


def test_search_errors(resources, library, tmp_path):
    for empty in ("", "   ", None):
        with pytest.raises(QueryError, match="empty query"):
            text_search(resources.store, empty)
    with pytest.raises(ServeError, match="--store DIR"):
        text_search(None, "a red square")
    with pytest.raises(ServeError, match="--store DIR"):
        video_search(None, library[1] / "red.mp4")
    with pytest.raises(ServeError, match="no video uploaded"):
        video_search(resources.store, None)
    with pytest.raises(QueryError, match="at least one"):
        text_search(resources.store, "red", k=0)


def test_load_resources_errors(tmp_path, library):
    with pytest.raises(ServeError, match="nothing to serve.*--checkpoint DIR.*--store DIR"):
        load_resources(None, None)
    with pytest.raises(VidrecError, match="no such checkpoint directory"):
        load_resources(tmp_path / "nope", None)
    with pytest.raises(VidrecError, match="no embedding store"):
        load_resources(None, tmp_path / "nowhere")
    with pytest.raises(ServeError, match="--device tpu"):
        load_resources(None, library[0], device="tpu")


def test_previews_are_playable_mp4(resources, library, tiny_dataset, tmp_path):
    video = sorted((tiny_dataset / "videos").glob("val_*.mp4"))[0]
    top = classify(resources.predictor, video, topk=2)
    out = render_prediction(video, top, resources.preview_path("clip"))
    info = AutoDecoder().info(out)
    assert out.suffix == ".mp4" and info.num_frames == AutoDecoder().info(video).num_frames and min(info.width, info.height) == 256
    row = text_search(resources.store, "a green square", k=1, moments=1)[0]
    hit = render_hit(row, tmp_path / "hit.mp4")
    hit_info = AutoDecoder().info(hit)
    assert 0 < hit_info.num_frames <= AutoDecoder().info(row.path).num_frames and hit_info.height == 256
    # many previews: old files are removed, the folder stays small
    paths = [resources.preview_path("x") for _ in range(3)]
    assert len(set(paths)) == 3 and all(p.parent == resources.preview_dir for p in paths)


def test_classifier_store_has_no_text_search(resources, library, tmp_path):
    """A store embedded by a classifier checkpoint has no text tower: the message says what works instead."""
    store = tmp_path / "ck-store"
    extract(library[1], store, model=resources.predictor.ck.path, workers=0, num_frames=4)
    res = load_resources(None, store, device="cpu")
    with pytest.raises(EncoderError, match="no text tower"):
        text_search(res.store, "a red square")
    assert len(video_search(res.store, library[1] / "red.mp4", k=1)) == 1


# ---------------------------------------------------------------------------------------------- gradio
def test_build_app_needs_something_to_serve():
    with pytest.raises(ServeError, match="nothing to serve"):
        from vidrec.serve import build_app

        build_app(None, None)


def test_missing_gradio_says_how_to_install(monkeypatch, resources):
    import builtins

    real = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio" or name.startswith("gradio."):
            raise ImportError("No module named 'gradio'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    from vidrec.serve import build_app

    with pytest.raises(VidrecError, match=r"pip install 'vidrec\[serve\]'"):
        build_app(resources=resources)


def test_app_runs_the_handlers_in_process(resources, tiny_dataset, not_a_video, tmp_path):
    gr = pytest.importorskip("gradio")
    from vidrec.serve import build_app

    demo = build_app(resources=resources)
    assert isinstance(demo, gr.Blocks)
    video = sorted((tiny_dataset / "videos").glob("val_*.mp4"))[0]
    label, overlay = demo(str(video), 2, True, api_name="classify")
    expect = classify(resources.predictor, video, topk=2)
    assert label["label"] == expect[0][0]
    assert {c["label"]: c["confidence"] for c in label["confidences"]} == pytest.approx(dict(expect), abs=1e-6)
    assert overlay and str(overlay).endswith(".mp4")
    table, best = demo("a red square", 2, 1, api_name="search")
    rows = text_search(resources.store, "a red square", k=2, moments=1)
    assert [r[2] for r in table["data"]] == [r.path for r in rows] and best and str(best).endswith(".mp4")
    # clicking the second row plays the second hit
    select = next(f for f in demo.fns.values() if f.name == "on_select")
    clip = select.fn(table["data"], gr.SelectData(None, {"index": [1, 0], "value": 2}))
    colour = _frames(clip).float().mean((0, 1, 2))  # mean RGB: the coloured square tells the videos apart
    first, second = (_frames(render_hit(r, tmp_path / f"{r.rank}.mp4")) for r in rows)
    assert _frames(clip).shape == second.shape
    assert (colour - second.float().mean((0, 1, 2))).abs().max() < 1.0 < (colour - first.float().mean((0, 1, 2))).abs().max()
    with pytest.raises(Exception, match="empty query"):
        demo("  ", 2, 1, api_name="search")
    with pytest.raises(Exception, match="holiday.mp4: not a readable video"):
        demo(str(not_a_video), 2, False, api_name="classify")


def test_app_with_one_tab_only(library):
    pytest.importorskip("gradio")
    from vidrec.serve import build_app

    demo = build_app(None, library[0], device="cpu")
    with pytest.raises(Exception, match="--checkpoint DIR"):
        demo(str(library[1] / "red.mp4"), 1, False, api_name="classify")
    table, _ = demo("blue", 1, 0, api_name="search")
    assert len(table["data"]) == 1


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_help_and_errors(capsys, tmp_path):
    code, out, _ = run(capsys, "serve", "--help")
    assert code == 0 and "--checkpoint" in out and "--store" in out and "--share" in out and "vidrec[serve]" in out
    code, _, err = run(capsys, "serve")
    assert code == 2 and "nothing to serve" in err and "Traceback" not in err
    code, _, err = run(capsys, "serve", "--store", str(tmp_path / "nowhere"))
    assert code == 2 and ("no embedding store" in err or "vidrec[serve]" in err)
