"""vidrec embed / search: resumable extraction into LanceDB, exports, text / video search, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_video_clip import write_tiny_clip
from vidrec.embed import EncoderError, EncoderMismatch, QueryError, Store, StoreError, extract
from vidrec.embed.search import search, search_by_video
from vidrec.embed.encoders import load_encoder
from vidrec.video.encode import write_video

torch.set_num_threads(1)

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "white": (240, 240, 240)}


def colour_video(path: Path, rgb: tuple[int, int, int], *, frames: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 40, (frames, 48, 64, 3), dtype=np.uint8)
    for t in range(frames):
        x = 4 + 2 * t
        arr[t, 12:36, x : x + 20] = rgb
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, arr, fps=8)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture()
def videos(tmp_path):
    root = tmp_path / "videos"
    colour_video(root / "red.mp4", COLORS["red"])
    colour_video(root / "a" / "green.avi", COLORS["green"], seed=1)
    colour_video(root / "a" / "b" / "blue.webm", COLORS["blue"], seed=2)
    colour_video(root / "white.mkv", COLORS["white"], frames=5, seed=3)  # shorter than the frames sampled
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    (root / "notes.txt").write_text("not a video")
    return root


def run(videos, store, clip_dir, **kw):
    kw.setdefault("num_frames", 8)
    kw.setdefault("merge", "2")
    return extract(videos, store, model=clip_dir, workers=0, batch_size=2, **kw)


def test_extract_is_resumable_and_records_failures(videos, tmp_path, clip_dir):
    store = tmp_path / "store"
    first = run(videos, store, clip_dir, limit=2)  # an interrupted run: 2 of 5 done
    assert first.found == 5 and first.processed + first.failed == 2
    second = run(videos, store, clip_dir)
    assert second.skipped == first.processed and second.processed + second.failed == 5 - first.processed
    assert Store(store).count() == 4
    third = run(videos, store, clip_dir)  # nothing new: only the broken file is retried
    assert (third.processed, third.skipped, third.failed) == (0, 4, 1)
    assert str((videos / "broken.mp4").resolve()) in third.failures
    assert (
        "not a readable video"
        in json.loads((store / "failures.json").read_text())[str((videos / "broken.mp4").resolve())]["error"]
    )
    assert third.short == 0 and second.short + first.short == 1
    # a changed file is embedded again, the rest is skipped
    colour_video(videos / "red.mp4", COLORS["green"], seed=9)
    os.utime(videos / "red.mp4", ns=(1, 1))
    fourth = run(videos, store, clip_dir)
    assert (fourth.processed, fourth.skipped) == (1, 3)
    st = Store(store)
    assert st.count() == 4
    segs = st.segments()
    assert segs.num_rows == 4 * 4  # 8 frames merged pairwise → 4 segments per video
    # a re-run needs no --model: the store's own encoder is used
    assert extract(videos, store, workers=0).skipped == 4


def test_store_round_trip_and_exports(videos, tmp_path, clip_dir):
    store = tmp_path / "store"
    s = run(videos, store, clip_dir, formats="all")
    st = Store(store)
    tab = st.videos()
    vecs = {p: np.asarray(v, np.float32) for p, v in zip(tab["path"].to_pylist(), tab["vector"].to_pylist())}
    assert len(vecs) == 4 and all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in vecs.values())
    ex = store / "exports"
    green = np.load(ex / "a__green_embedding.npy")
    np.testing.assert_allclose(green, vecs[str((videos / "a" / "green.avi").resolve())], rtol=1e-6)
    item = json.loads((ex / "a__b__blue_embedding.json").read_text())
    assert item["shape"] == [32] and item["dtype"] == "float32" and item["video_path"].endswith("blue.webm")
    cons = json.loads((ex / "embeddings.json").read_text())
    assert (
        cons["metadata"]["successful"] == 4
        and cons["metadata"]["failed"] == 1
        and set(cons["embeddings"]) >= {"red", "white"}
    )
    allv = np.load(ex / "embeddings.npy")
    index = json.loads((ex / "embeddings_index.json").read_text())
    assert allv.shape == (4, 32) and [v["path"] for v in index["videos"]] == tab["path"].to_pylist()
    import pyarrow.parquet as pq

    seg = pq.read_table(ex / "segments.parquet")
    assert seg.num_rows == st.segments().num_rows and set(seg.column_names) >= {
        "start_s",
        "end_s",
        "frame_indices",
        "vector",
    }
    assert str(ex / "embeddings.json") in s.exports
    # the store reopens from disk with what built it
    again = Store(store)
    assert again.encoder_description["merge_frames"] == "2" and again.dim == 32


def test_text_and_video_search(videos, tmp_path, clip_dir):
    store = tmp_path / "store"
    run(videos, store, clip_dir)
    st = Store(store)
    hits = search(st, "a red square", k=3, moments=2)
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        assert 1 <= len(h.moments) <= 2 and h.moments[0].score >= h.moments[-1].score
        for m in h.moments:
            assert 0 <= m.start_s < m.end_s <= h.duration + 1e-3 and m.frame_indices
    batch = search(st, ["a red square", "blue"], k=2)
    assert len(batch) == 2 and all(len(b) == 2 for b in batch)
    # the text embedding computed here equals what the encoder gives: scores are true cosines
    enc = load_encoder(clip_dir, num_frames=8, merge="2")
    q = enc.encode_text(["a red square"])[0].numpy()
    v = {p: np.asarray(x) for p, x in zip(st.videos()["path"].to_pylist(), st.videos()["vector"].to_pylist())}
    assert abs(hits[0].score - float(v[hits[0].path] @ q)) < 1e-4
    # video → video: a stored video is left out and its nearest neighbours are returned
    red = videos / "red.mp4"
    sim = search_by_video(st, red, k=2)
    assert len(sim) == 2 and str(red.resolve()) not in [h.path for h in sim]
    # a copy of a stored video elsewhere (an upload) is that video: left out, the same results
    green = videos / "a" / "green.avi"
    copy = tmp_path / "copy.avi"
    copy.write_bytes(green.read_bytes())
    assert [h.path for h in search_by_video(st, copy, k=2)] == [h.path for h in search_by_video(st, green, k=2)]
    assert str(green.resolve()) not in [h.path for h in search_by_video(st, copy, k=3)]
    # the same scene in another file (not stored) is embedded and finds the stored one first
    again = colour_video(tmp_path / "green-again.mp4", COLORS["green"], seed=1)
    assert search_by_video(st, again, k=1)[0].path == str(green.resolve())
    # an embedding vector as query: exact top-1
    p0 = next(iter(v))
    assert search(st, v[p0], k=1)[0].path == p0


def test_window_segments(videos, tmp_path, clip_dir):
    st_path = tmp_path / "store"
    run(videos, st_path, clip_dir, merge="off", segments="window", window_seconds=0.5)
    seg = Store(st_path).segments()
    red = [r for r in seg.to_pylist() if r["path"].endswith("red.mp4")]
    assert len(red) == 4  # 16 frames at 8 fps, 0.5 s windows
    assert [(r["start_s"], r["end_s"]) for r in red] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)]
    assert all(r["frame_start"] <= min(r["frame_indices"]) and max(r["frame_indices"]) <= r["frame_end"] for r in red)


def test_refuses_to_mix_encoders(videos, tmp_path, clip_dir):
    store = tmp_path / "store"
    run(videos, store, clip_dir, limit=1)
    before = Store(store).count()
    with pytest.raises(EncoderMismatch, match="merge_frames"):
        run(videos, store, clip_dir, merge="off")
    assert Store(store).count() == before  # nothing lost


def test_bad_input_messages(videos, tmp_path, clip_dir, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        run(videos, f, clip_dir)
    with pytest.raises(StoreError, match="no embedding store"):
        Store(tmp_path / "nowhere")
    for uri in ("s3://bucket/store", Path("gs://bucket/store")):  # typer's Path makes "gs://" "gs:/"
        with pytest.raises(StoreError, match="object storage is not supported"):
            Store(uri, create=True)
    assert not Path("s3:").exists() and not Path("gs:").exists()  # no local folder named after the scheme
    store = tmp_path / "store"
    run(videos, store, clip_dir, limit=1)
    with pytest.raises(QueryError, match="empty query"):
        search(Store(store), "   ")
    with pytest.raises(QueryError, match="no such file"):
        search_by_video(Store(store), tmp_path / "missing.mp4")
    monkeypatch.setenv("VIDREC_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(EncoderError, match="pass --model"):
        extract(videos, tmp_path / "other", workers=0)
    with pytest.raises(EncoderError, match="neither a vidrec checkpoint nor a CLIP"):
        load_encoder(tmp_path)


def test_classifier_checkpoint_as_encoder(videos, tmp_path):
    from vidrec.config import load_config
    from vidrec.engine.checkpoint import save_checkpoint
    from vidrec.models.registry import create_model

    cfg = load_config(overrides=["model.name=frame_avg", "model.dropout=0.0"])
    model = create_model("frame_avg", num_classes=3, dropout=0.0)
    ck = save_checkpoint(tmp_path / "ck", model=model, cfg=cfg, classes=["a", "b", "c"])
    store = tmp_path / "store"
    s = extract(videos, store, model=ck, workers=0, num_frames=4)
    assert s.processed == 4
    st = Store(store)
    assert st.encoder_description["kind"] == "checkpoint" and st.dim == model.num_features
    assert len(search_by_video(st, videos / "red.mp4", k=2)) == 2
    with pytest.raises(EncoderError, match="no text tower"):
        search(st, "a red square")


def test_ann_index_on_a_large_table(tmp_path, clip_dir):
    enc = load_encoder(clip_dir, num_frames=4, merge="off")
    st = Store(tmp_path / "store", create=True)
    st.bind_encoder(enc)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [
        {
            "path": f"/v/{i}.mp4",
            "name": str(i),
            "size": 1,
            "mtime_ns": 1,
            "num_frames": 4,
            "fps": 4.0,
            "duration": 1.0,
            "frame_indices": [0, 1, 2, 3],
            "vector": v,
            "embedded_at": "",
        }
        for i, v in enumerate(vecs)
    ]
    st.write(rows, [])
    assert st.ensure_index(threshold=1000) == [] and not st.has_index()  # small: exact search
    assert st.ensure_index(threshold=256) == ["videos"] and st.has_index()
    top = search(st, vecs[7], k=5)
    assert top[0].path == "/v/7.mp4" and abs(top[0].score - 1) < 1e-3


def test_cli_embed_and_search(videos, tmp_path, clip_dir):
    from typer.testing import CliRunner

    from vidrec.cli.app import app

    runner = CliRunner()
    store = tmp_path / "store"
    r = runner.invoke(
        app,
        [
            "embed",
            str(videos),
            "--out",
            str(store),
            "--model",
            str(clip_dir),
            "--frames",
            "8",
            "--merge",
            "2",
            "--workers",
            "0",
            "--format",
            "npy",
        ],
    )
    assert r.exit_code == 1, r.output  # done, but one video failed (listed): as predict and prepare scan
    assert "embedded 4 videos, skipped 0 unchanged, 1 failed" in r.output and "videos/s" in r.output
    r = runner.invoke(app, ["search", str(store), "a red square", "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert out["query"] == "a red square" and len(out["results"]) == 2 and out["results"][0]["moments"]
    qf = tmp_path / "q.json"
    qf.write_text(json.dumps(["red", {"query": "blue", "k": 1}]))
    r = runner.invoke(app, ["search", str(store), "--queries", str(qf)])
    assert r.exit_code == 0 and "query: 'blue'" in r.output and "frames [" in r.output
    r = runner.invoke(app, ["search", str(store), ""])
    assert r.exit_code != 0 and "empty query" in str(r.exception)


def test_shards_fill_one_store(videos, tmp_path, clip_dir):
    store = tmp_path / "store"
    a = run(videos, store, clip_dir, shard=(0, 2))
    b = run(videos, store, clip_dir, shard=(1, 2))
    assert a.found + b.found == 5 and a.processed + b.processed == 4
    assert Store(store).count() == 4 and len(Store(store).failures()) == 1
    assert sorted(p.name for p in store.glob("failures*.json")) in (["failures.rank0.json", "failures.rank1.json"],)
    with pytest.raises(Exception, match="rank"):
        run(videos, store, clip_dir, shard=(2, 2))


# ---------------------------------------------------------------------------------------------- moments, pairs, options
def test_overlapping_windows_cover_the_video():
    from vidrec.video.sampling import window_views

    # 4-frame windows every 2 frames
    clips, spans = window_views(16, 8.0, clip_frames=2, window_seconds=0.5, stride_seconds=0.25)
    assert spans == [(0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.75, 1.25), (1.0, 1.5), (1.25, 1.75), (1.5, 2.0)]
    assert all(round(s0 * 8) <= min(c) and max(c) < round(s1 * 8) for c, (s0, s1) in zip(clips, spans))
    # back to back by default, the last window shorter; a window longer than the video is the whole video
    assert window_views(10, 8.0, clip_frames=2, window_seconds=0.5)[1] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.25)]
    assert window_views(10, 8.0, clip_frames=2, window_seconds=5, stride_seconds=1)[1] == [(0.0, 1.25)]


def test_moments_without_a_store_are_scored_windows(videos, clip_dir):
    """`vidrec moments`: each window is encoded as a clip; a moment's score is the cosine of that clip and the text."""
    from vidrec.embed.search import moments

    enc = load_encoder(clip_dir, num_frames=4, merge="off")
    red = videos / "red.mp4"  # 16 frames at 8 fps
    found = moments(enc, red, "a red square", k=3, window_seconds=0.5, stride_seconds=0.25)
    assert len(found) == 3 and [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    starts = {round(m.start_s, 3) for m in found}
    assert starts <= {0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5}
    assert all(abs(m.end_s - m.start_s - 0.5) < 1e-6 for m in found)
    # the best moment's score, recomputed from its own frames
    best = found[0]
    clip = enc.clip_reader().read_indices(red, [best.frame_indices])[0].video
    clip = clip.permute(1, 2, 3, 0)[None]  # (1, T, S, S, C)
    vec, _, _ = enc.encode(clip)
    text = enc.encode_text(["a red square"])[0]
    assert abs(float(vec[0] @ text) - best.score) < 1e-4
    # all 7 windows, ranked; the default resolution is 2 s windows every second (one here: the video lasts 2 s)
    assert len(moments(enc, red, "a red square", k=10, window_seconds=0.5, stride_seconds=0.25)) == 7
    assert [(m.start_s, m.end_s) for m in moments(enc, red, "red", k=10)] == [(0.0, 2.0)]
    with pytest.raises(QueryError, match="no such video"):
        moments(enc, red.with_name("nope.mp4"), "red")
    with pytest.raises(QueryError, match="--stride-seconds"):
        moments(enc, red, "red", stride_seconds=0)


def test_moments_of_a_stored_video_and_pairs(videos, tmp_path, clip_dir):
    from vidrec.embed.search import moments_in_store, search_pairs

    store = tmp_path / "store"
    run(videos, store, clip_dir, merge="off")  # one segment per sampled frame (8)
    st = Store(store)
    red = videos / "red.mp4"
    text = st.encoder().encode_text(["a red square"])[0].numpy()
    stored = [r for r in st.segments().to_pylist() if r["path"] == str(red.resolve())]
    expect = sorted(stored, key=lambda r: -float(np.asarray(r["vector"]) @ text))[:3]
    got = moments_in_store(st, red, "a red square", k=3)  # the stored segments of that video only
    spans = [(round(m.start_s, 4), round(m.end_s, 4)) for m in got]
    assert spans == [(round(r["start_s"], 4), round(r["end_s"], 4)) for r in expect]
    # at another resolution the video is embedded again, in windows
    fine = moments_in_store(st, red, "a red square", k=10, window_seconds=1.0, stride_seconds=0.5)
    assert sorted((m.start_s, m.end_s) for m in fine) == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    pairs = [
        (str(red), "a red square"),
        (str(tmp_path / "missing.mp4"), "blue"),
        (str(red), " "),
        (str(videos / "a" / "green.avi"), "green"),
    ]
    res = search_pairs(pairs, store=st, k=2)
    assert [r.status for r in res] == ["ok", "error", "error", "ok"]
    assert "no such video" in res[1].error and "empty query" in res[2].error
    assert [(m.start_s, m.end_s) for m in res[0].moments] == [(m.start_s, m.end_s) for m in got[:2]]
    assert all(r.inference_ms > 0 for r in res) and res[0].to_dict()["moments"][0]["score"] == round(got[0].score, 6)


def test_cli_moments_pairs_and_embed_options(videos, tmp_path, clip_dir, capsys):
    from tests.test_cli import run as cli

    store = tmp_path / "store"
    opts = tmp_path / "embed.yaml"
    opts.write_text(
        f"model: {clip_dir}\nframes: 8\nmerge: 2-2\nmerge_keep: 0.6\nfusion: meanP\nsegments: window\n"
        "window_seconds: 1\nstride_seconds: 0.5\n"
    )
    summary = tmp_path / "summary.json"
    code, out, err = cli(
        capsys,
        "embed",
        str(videos),
        "--out",
        str(store),
        "--config",
        str(opts),
        "--fusion",
        "seqTransf",
        "--merge-layers",
        "2-3",
        "--workers",
        "0",
        "--summary",
        str(summary),
    )
    assert code == 1, err  # the broken video
    desc = Store(store).encoder_description
    assert desc["merge_frames"] == "2-2" and desc["merge_keep"] == [0.6, 0.6] and desc["merge_layers"] == [2, 3]
    assert desc["fusion"] == "seqTransf"  # the command line wins over the file
    s = json.loads(summary.read_text())
    assert (s["processed"], s["failed"]) == (4, 1) and s["videos_per_s"] > 0
    assert "broken.mp4" in next(iter(s["failures"]))
    red = [r for r in Store(store).segments().to_pylist() if r["path"].endswith("red.mp4")]
    assert [(r["start_s"], r["end_s"]) for r in red] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]  # overlapping windows
    code, out, err = cli(
        capsys, "search", str(store), "a red square", "--video", str(videos / "red.mp4"), "-k", "2", "--json"
    )
    assert code == 0, err
    assert [m["start_s"] for m in json.loads(out)["moments"]] != [] and len(json.loads(out)["moments"]) == 2
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("video,query\nred.mp4,a red square\na/green.avi,green\nmissing.mp4,x\n")  # relative to the CSV
    (videos / "pairs.csv").write_text(pairs.read_text())
    code, out, err = cli(capsys, "search", str(store), "--pairs", str(videos / "pairs.csv"), "--json")
    assert code == 1, err  # one pair failed: listed, the others answered
    rows = json.loads(out)
    assert [r["status"] for r in rows] == ["ok", "ok", "error"] and rows[0]["moments"] and rows[2]["error"]
    assert all(r["inference_ms"] > 0 for r in rows)
    code, out, err = cli(
        capsys,
        "moments",
        str(videos / "red.mp4"),
        "a red square",
        "--model",
        str(clip_dir),
        "--frames",
        "4",
        "--merge",
        "off",
        "--window-seconds",
        "0.5",
        "--stride-seconds",
        "0.25",
        "-k",
        "3",
    )
    assert code == 0, err
    assert out.count(" s  frames [") == 3 and "moments of" in out
    code, out, err = cli(
        capsys, "moments", "--pairs", str(videos / "pairs.csv"), "--model", str(clip_dir), "--frames", "4"
    )
    assert code == 1 and "3 pairs, 1 failed" in out, out
