"""vidrec serve: the demo's handlers on a tiny trained checkpoint and a tiny store, the gradio app
(called in-process, and launched on 127.0.0.1 and called over its HTTP API as a browser or an
attacker would) and the CLI. tests/test_serve_browser.py drives the page in Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import tiny_overrides
from tests.test_cli import run
from tests.test_embed import COLORS, colour_video
from tests.test_video_clip import write_tiny_clip
from vidrec.embed import EncoderError, QueryError, Store, extract
from vidrec.embed.search import search
from vidrec.engine.predict import Predictor
from vidrec.errors import VideoError, VidrecError
from vidrec.serve import (
    ServeError,
    classify,
    load_resources,
    render_hit,
    render_prediction,
    render_upload,
    text_search,
    video_search,
)
from vidrec.video.decode import AutoDecoder

torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def gradio_cache(tmp_path_factory):
    """gradio's file cache in this test run's temporary folder: in-process calls (no server, so no
    cleaning on close) leave their files there, not in the shared /tmp/gradio."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio-cache")))
        yield


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
    with pytest.raises(VideoError, match="^gone.mp4: the upload is gone from the server; upload the video again$"):
        classify(resources.predictor, tmp_path / "gone.mp4")
    with pytest.raises(ServeError, match="--checkpoint DIR"):
        classify(None, not_a_video)
    # a file that is not a video: its name (not the server folder), the reason without errno noise, what to do
    with pytest.raises(VideoError) as bad:
        classify(resources.predictor, not_a_video)
    msg = str(bad.value)
    assert msg.startswith("holiday.mp4: not a video vidrec can read (") and "upload a video file (mp4, webm" in msg
    assert "Errno" not in msg and str(tmp_path) not in msg and "remove it from the list" not in msg
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match=r"^empty.webm: not a video vidrec can read \(the file is empty\); upload"):
        classify(resources.predictor, empty)


def test_text_search_rows(resources, library):
    store, videos = library
    rows = text_search(resources.store, "a red square", k=2, moments=2)
    assert [r.rank for r in rows] == [1, 2] and rows[0].score >= rows[1].score
    expect = search(Store(store), "a red square", k=2, moments=2)  # the same as `vidrec search`
    assert [r.path for r in rows] == [h.path for h in expect]
    assert [r.score for r in rows] == pytest.approx([h.score for h in expect], abs=1e-5)
    for r in rows:
        assert 1 <= len(r.moments) <= 2 and all(0 <= a < b for a, b, _ in r.moments)
        row = r.table_row(videos)  # names relative to the store's folder, the full path only in the tooltip
        name = Path(r.path).name
        assert row[:3] == [r.rank, f"{r.score:.4f}", f'<span title="{r.path}">{name}</span>']
        assert row[3] == f"{r.moments[0][0]:.2f}–{r.moments[0][1]:.2f}" and row[4].count("–") == len(r.moments) - 1
    # an explicit encoder (the store's own) gives the same ranking
    again = text_search(resources.store, "  a red square ", k=2, moments=2, encoder=resources.store.encoder())
    assert [r.path for r in again] == [r.path for r in rows]
    assert resources.store_root == videos.resolve()
    none = text_search(resources.store, "blue", k=1, moments=0)[0]
    assert none.moments == [] and none.table_row(videos)[3:] == ["", ""] and "whole video" in none.caption(videos)
    assert "best moment" in rows[0].caption(videos) and "whole" not in rows[0].caption(videos)
    # video → videos: a stored video finds the others, not itself
    similar = video_search(resources.store, videos / "red.mp4", k=2)
    assert len(similar) == 2 and str((videos / "red.mp4").resolve()) not in [r.path for r in similar]


def test_similar_leaves_out_a_copy_of_a_stored_video(resources, library, tmp_path, capsys):
    """An upload is a copy of the file under another path: the page and vidrec search --video both
    recognise the stored video by its bytes and leave it out of its own results."""
    import shutil

    from vidrec.embed.search import stored_copy

    store, videos = library
    copy = shutil.copy(videos / "red.mp4", tmp_path / "upload.mp4")
    red = str((videos / "red.mp4").resolve())
    assert stored_copy(resources.store, copy) == red
    page = video_search(resources.store, copy, k=3)
    assert len(page) == 2 and red not in [r.path for r in page]
    code, out, _ = run(capsys, "search", str(store), "--video", str(copy), "-k", "3", "--json")
    assert code == 0 and [h["path"] for h in __import__("json").loads(out)["results"]] == [r.path for r in page]
    other = colour_video(tmp_path / "new.mp4", COLORS["red"], seed=7)  # not in the store: embedded, all 3 found
    assert stored_copy(resources.store, other) is None and len(video_search(resources.store, other, k=3)) == 3


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
    assert out.suffix == ".mp4" and info.num_frames == AutoDecoder().info(video).num_frames
    assert min(info.width, info.height) == 256
    seen = render_upload(video, tmp_path / "seen.mp4")  # what the page shows of an upload: the same frames, small
    assert AutoDecoder().info(seen).num_frames == AutoDecoder().info(video).num_frames
    row = text_search(resources.store, "a green square", k=1, moments=1)[0]
    hit = render_hit(row, tmp_path / "hit.mp4")
    hit_info = AutoDecoder().info(hit)
    assert 0 < hit_info.num_frames <= AutoDecoder().info(row.path).num_frames and hit_info.height == 256
    # the caption is drawn at the bottom: the top left, where the player puts its label, shows the video itself
    from vidrec.serve.previews import _preview_frames

    start, end = row.moments[0][:2]
    raw = torch.from_numpy(_preview_frames(Path(row.path), max(0.0, start - 1.0), end + 1.0)[0]).float()
    drawn = _frames(hit).float()
    assert drawn.shape == raw.shape
    top, bottom = ((drawn[:, rows, :80] - raw[:, rows, :80]).abs().mean() for rows in (slice(0, 30), slice(-30, None)))
    assert top < 6 < bottom, (top, bottom)
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


def _fn(demo, name):
    return next(f for f in demo.fns.values() if f.name == name).fn


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
    table, best, issued, status = _fn(demo, "on_search")("a red square", 2, 1)
    rows = text_search(resources.store, "a red square", k=2, moments=1)
    assert [r.path for r in issued] == [r.path for r in rows] and [t[0] for t in table] == [1, 2]
    assert best["value"] and best["label"] == rows[0].caption(resources.store_root)
    assert status.startswith("2 videos for")
    # clicking the second row plays the second hit: the row comes from what was issued, by its number
    on_select = _fn(demo, "on_select")
    clip = on_select(issued, gr.SelectData(None, {"index": [1, 0], "value": 2}))["value"]
    colour = _frames(clip).float().mean((0, 1, 2))  # mean RGB: the coloured square tells the videos apart
    first, second = (_frames(render_hit(r, tmp_path / f"{r.rank}.mp4")) for r in rows)
    assert _frames(clip).shape == second.shape
    near, far = ((colour - f.float().mean((0, 1, 2))).abs().max() for f in (second, first))
    assert near < 1.0 < far
    for index in ([2, 0], [-1, 0], ["0", 0], None):  # beyond, before, not a number: refused without naming a file
        with pytest.raises(gr.Error) as refused:
            on_select(issued, gr.SelectData(None, {"index": index, "value": "/etc/passwd"}))
        assert refused.value.message == "that row is not one of the results on this page; search again"
    with pytest.raises(gr.Error, match="empty query"):
        _fn(demo, "on_search")("  ", 2, 1)
    with pytest.raises(Exception, match="holiday.mp4: not a video vidrec can read"):
        demo(str(not_a_video), 2, False, api_name="classify")


def test_app_with_one_tab_only(library):
    pytest.importorskip("gradio")
    from vidrec.serve import build_app

    demo = build_app(None, library[0], device="cpu")
    with pytest.raises(Exception, match="--checkpoint DIR"):
        demo(str(library[1] / "red.mp4"), 1, False, api_name="classify")
    table, _, issued, _ = _fn(demo, "on_search")("blue", 1, 0)
    assert len(table) == len(issued) == 1


# ---------------------------------------------------------------------------------------------- over HTTP
@pytest.fixture()
def served(resources):
    """The app launched on 127.0.0.1 (as vidrec serve launches it, with a 1 MB upload limit), closed after the test."""
    pytest.importorskip("gradio")
    from tests.gradio_http import GradioHTTP, free_port
    from vidrec.serve import build_app, launch_app

    demo = build_app(resources=resources, max_upload_mb=1)
    url, _ = launch_app(demo, port=free_port())
    try:
        yield demo, GradioHTTP(url)
    finally:
        demo.close(verbose=False)


def test_http_clicks_play_only_issued_rows(served, library, tmp_path):
    """The table's select event, called over HTTP with forged rows: a row number picks one of the
    rows the server issued to this session; a path, a time window or a row the client makes up is
    never used, and the refusal names no file."""
    from tests.gradio_http import file_data

    _, page = served
    select = page.fn_index("search-results", "select")
    elsewhere = colour_video(tmp_path / "secret" / "private.mp4", COLORS["white"])  # a real video outside the store
    forged_row = [1, "1.0000", str(elsewhere), "0.00–9.00", ""]
    for target in ("/etc/passwd", str(elsewhere)):
        event = {"index": [0, 2], "value": target, "row_value": [1, "1.0000", target, "0.00–9.00", ""]}
        # the page sends no table to the select event; a client that sends one (and a forged row) gets nothing for it
        for data in ([None], [[forged_row]], [[[1, "1", target, "0", "9"]]]):
            res = page.call(select, data, event_data=event, trigger="search-results")
            assert res["success"] is False, res
            text = json.dumps(res)
            assert "that row is not one of the results on this page" in text
            assert "passwd" not in text.replace(json.dumps(event), "") and "secret" not in text and "/tmp" not in text
    # after a real search, row 0 is the issued #1 hit whatever path the client puts beside the number
    search = page.fn_index("search-button", "click")
    found = page.call(search, ["a red square", 3, 1], trigger="search-button")
    assert found["success"], found
    names = [row[2] for row in found["output"]["data"][0]["data"]]
    event = {"index": [0, 2], "value": str(elsewhere), "row_value": forged_row}
    res = page.call(select, [[forged_row]], event_data=event, trigger="search-results")
    assert res["success"], res
    video = res["output"]["data"][0]
    assert video["label"].startswith("#1 ") and video["label"].split(":")[0][3:] in names[0]
    assert "private" not in json.dumps(video) and page.fetch(video["value"]["url"]).status_code == 200
    res = page.call(select, [None], event_data={"index": [3, 0], "value": None}, trigger="search-results")
    assert res["success"] is False and "not one of the results" in json.dumps(res)  # only 3 rows were issued
    # a file the client did not upload is refused by gradio's upload check before vidrec sees it, with the
    # same words whether it exists or not
    for elem_id, data in (("classify-button", [2, True]), ("similar-button", [2, 1])):
        said = set()
        for target in ("/etc/passwd", str(elsewhere), "/no/such/video.mp4"):
            res = page.call(page.fn_index(elem_id, "click"), [file_data(target), *data], trigger=elem_id)
            assert res["success"] is False and "not uploaded by a user" in res["output"]["error"], res
            said.add(res["output"]["error"].replace(target, "X"))
        assert len(said) == 1, said


def test_uploads_are_limited_and_deleted_on_close(served, resources, tiny_dataset, tmp_path):
    demo, page = served
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (1024 * 1024 + 1))
    refused = page.upload(big)
    assert refused.status_code == 413, refused.text  # over --max-upload-mb
    video = sorted((tiny_dataset / "videos").glob("val_*.mp4"))[0]
    ok = page.upload(video)
    assert ok.status_code == 200, ok.text
    stored = Path(ok.json()[0])
    assert stored.is_file() and stored.read_bytes() == video.read_bytes()
    from tests.gradio_http import file_data

    res = page.call(page.fn_index("classify-button", "click"), [file_data(stored), 2, False], trigger="classify-button")
    assert res["success"], res
    assert res["output"]["data"][0]["label"] == classify(resources.predictor, video, topk=1)[0][0]
    found = page.call(page.fn_index("search-button", "click"), ["a red square", 1, 1], trigger="search-button")
    hit = found["output"]["data"][1]["value"]
    preview = Path(hit["path"])  # the hit's preview, in gradio's cache
    assert found["success"] and preview.is_file() and page.fetch(hit["url"]).status_code == 200
    demo.close(verbose=False)
    assert not stored.exists() and not preview.exists()  # this app's uploads and previews are deleted when it closes


@pytest.mark.slow
def test_cli_serve_stops_on_sigterm_and_deletes_uploads(library, tmp_path):
    """`vidrec serve` as a process: it answers, refuses an upload over --max-upload-mb, and on SIGTERM
    stops and deletes what was uploaded."""
    import os
    import signal
    import subprocess
    import sys

    pytest.importorskip("gradio")
    from tests.gradio_http import GradioHTTP, free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vidrec",
            "serve",
            "--store",
            str(library[0]),
            "--port",
            str(port),
            "--device",
            "cpu",
            "--max-upload-mb",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        while not any("serving Search on" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        page = GradioHTTP(f"http://127.0.0.1:{port}/")
        big = tmp_path / "big.mp4"
        big.write_bytes(b"\0" * (1024 * 1024 + 1))
        assert page.upload(big).status_code == 413
        uploaded = Path(page.upload(library[1] / "red.mp4").json()[0])
        assert uploaded.is_file()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped; uploads and previews deleted" in out and "Traceback" not in out, out
    assert not uploaded.exists()


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_help_and_errors(capsys, tmp_path):
    code, out, _ = run(capsys, "serve", "--help")
    assert code == 0 and "--checkpoint" in out and "--store" in out and "--share" in out and "vidrec[serve]" in out
    assert "--max-upload-mb" in out
    code, _, err = run(capsys, "serve")
    assert code == 2 and "nothing to serve" in err and "Traceback" not in err
    code, _, err = run(capsys, "serve", "--store", str(tmp_path / "nowhere"))
    assert code == 2 and ("no embedding store" in err or "vidrec[serve]" in err)
