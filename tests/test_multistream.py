"""The multi-stream model: skeleton locality of the GNN, stream on/off, masks, config ablations."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vidrec.config import load_config
from vidrec.errors import ConfigError
from vidrec.models.multistream import (
    HAND_CONNECTIONS,
    NUM_JOINTS,
    HandSkeletonEncoder,
    MultiStream,
    SkeletonBlock,
    SkeletonConv,
    hand_adjacency,
)
from vidrec.models.registry import create_model, check_model_kwargs

torch.set_num_threads(1)

TINY: dict[str, Any] = {
    "context_backbone": "test_resnet",
    "object_backbone": "test_efficientnet",
    "object_size": 32,
    "num_objects": 3,
    "fusion_dim": 32,
    "num_heads": 2,
    "lstm_hidden": 16,
    "hand_dim": 16,
    "gnn_hidden": 16,
    "object_dim": 16,
    "context_dim": 16,
    "dropout": 0.0,
}
B, T, S = 2, 4, 32


def tiny(streams: list[str] | None = None, **kw: Any) -> MultiStream:
    torch.manual_seed(0)
    args = dict(TINY, **kw)
    if streams is not None:
        args["streams"] = streams
    model = create_model("multistream", num_classes=5, **args)
    assert isinstance(model, MultiStream)
    return model.eval()


def inputs(model: MultiStream, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(B, 3, T, S, S, generator=g)  # (B, C, T, H, W)
    side = model.example_side_inputs(B, T, seed=seed)
    return video, side


def neighbours(j: int) -> set[int]:
    return {b for a, b in HAND_CONNECTIONS if a == j} | {a for a, b in HAND_CONNECTIONS if b == j}


# ---------------------------------------------------------------------------------- GNN


def test_skeleton_is_mediapipe_topology() -> None:
    assert len(HAND_CONNECTIONS) == 21
    adj = hand_adjacency()
    assert adj.shape == (NUM_JOINTS, NUM_JOINTS)
    assert torch.equal(adj > 0, (adj > 0).T)  # undirected
    assert (adj.diagonal() == 0).all()
    assert torch.allclose(adj.sum(1), torch.ones(NUM_JOINTS))  # mean over neighbours
    assert neighbours(0) == {1, 5, 17}  # wrist: thumb base, index base, pinky base
    assert neighbours(9) == {5, 10, 13}
    assert neighbours(20) == {19}  # pinky tip


@pytest.mark.parametrize("layer_cls", [SkeletonConv, SkeletonBlock])
def test_one_layer_mixes_only_bone_neighbours(layer_cls: type) -> None:
    torch.manual_seed(0)
    adj = hand_adjacency()
    layer = layer_cls(8, 8, adj) if layer_cls is SkeletonConv else layer_cls(8, adj)
    x = torch.randn(3, NUM_JOINTS, 8)
    base = layer(x)
    for k in range(NUM_JOINTS):  # perturb joint k; see which outputs move
        x2 = x.clone()
        x2[:, k] += torch.randn(3, 8)
        moved = {i for i in range(NUM_JOINTS) if not torch.allclose(layer(x2)[:, i], base[:, i], atol=1e-6)}
        assert moved == neighbours(k) | {k}, f"joint {k}: outputs {sorted(moved)} changed"


def test_two_layers_reach_two_bones() -> None:
    torch.manual_seed(0)
    enc = HandSkeletonEncoder(hidden_dim=8, out_dim=8, num_layers=2)
    x = torch.randn(1, NUM_JOINTS, 3)
    base = enc.joint_features(x)
    x2 = x.clone()
    x2[0, 4] += 1.0  # thumb tip: 1 bone to 3, 2 bones to 2, 3 bones to 1
    moved = {i for i in range(NUM_JOINTS) if not torch.allclose(enc.joint_features(x2)[0, i], base[0, i], atol=1e-6)}
    assert moved == {2, 3, 4}


# ---------------------------------------------------------------------------------- streams


def test_forward_backward_all_streams() -> None:
    model = tiny()
    model.train()
    video, side = inputs(model)
    logits = model(video, **side)
    assert logits.shape == (B, 5) and torch.isfinite(logits).all()
    assert model.forward_features(video, **side).shape == (B, model.num_features)
    logits.sum().backward()
    for part in (model.hand_encoder, model.object_encoder.net, model.context_encoder.net, model.lstm):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, part
    assert set(model.input_spec.side_inputs) == {
        "hand_joints",
        "hand_joints_mask",
        "hand_boxes",
        "hand_mask",
        "object_crops",
        "object_boxes",
        "object_mask",
    }


def _changes(model: MultiStream, key: str) -> bool:
    video, side = inputs(tiny())  # every side input, whether the model reads it or not
    base = model(video, **side)
    if key == "video":
        video = torch.randn_like(video)
    elif side[key].dtype == torch.uint8:
        side[key] = 255 - side[key]
    else:
        side[key] = torch.rand_like(side[key])
    return not torch.allclose(model(video, **side), base, atol=1e-6)


def test_objects_off_ignores_object_inputs() -> None:
    model = tiny(["context", "hands"])
    assert not hasattr(model, "object_encoder")
    assert not any(k.startswith("object") for k in model.input_spec.side_inputs)
    video, side = inputs(tiny())  # full side inputs, object keys included
    base = model(video, **side)
    side["object_crops"] = 255 - side["object_crops"]
    side["object_boxes"] = torch.rand_like(side["object_boxes"])
    assert torch.equal(model(video, **side), base)
    no_objects = {k: v for k, v in side.items() if not k.startswith("object")}
    assert torch.equal(model(video, **no_objects), base)  # not even needed


def test_each_stream_uses_its_inputs_only() -> None:
    on = tiny()
    assert _changes(on, "object_crops") and _changes(on, "hand_joints") and _changes(on, "video")
    assert _changes(on, "object_boxes") and _changes(on, "hand_boxes")
    hands_only = tiny(["hands"])
    assert not _changes(hands_only, "video") and _changes(hands_only, "hand_joints")
    context_only = tiny(["context"])
    assert context_only.input_spec.side_inputs == ()
    video, _ = inputs(context_only)
    assert context_only(video).shape == (B, 5)
    no_boxes = tiny(["objects"], use_boxes=False)
    assert "object_boxes" not in no_boxes.input_spec.side_inputs
    assert not _changes(no_boxes, "object_boxes") and _changes(no_boxes, "object_crops")


def test_masked_hand_and_objects_are_ignored() -> None:
    model = tiny(["context", "hands", "objects"])
    video, side = inputs(model)
    side["hand_joints_mask"][:, :, 1] = 0
    side["hand_mask"][:, :, 1] = 0
    side["object_mask"][:, :, 2] = 0
    base = model(video, **side)
    side["hand_joints"][:, :, 1] += 5.0  # the masked hand
    side["hand_boxes"][:, :, 1] = 0.5
    side["object_crops"][:, :, 2] = 0  # the masked object slot
    assert torch.allclose(model(video, **side), base, atol=1e-6)
    # nothing present at all: the null token keeps attention finite
    for k in ("hand_joints_mask", "hand_mask", "object_mask"):
        side[k] = torch.zeros_like(side[k])
    assert torch.isfinite(model(video, **side)).all()


def test_object_slots_padded_or_cut() -> None:
    model = tiny(["objects"])  # 3 slots
    video, side = inputs(model)
    base = model(video, **side)
    more = dict(side)
    more["object_crops"] = torch.cat([side["object_crops"], side["object_crops"][:, :, :2]], dim=2)  # 5 slots
    more["object_boxes"] = torch.cat([side["object_boxes"], side["object_boxes"][:, :, :2]], dim=2)
    more["object_mask"] = torch.cat([side["object_mask"], torch.ones(B, T, 2)], dim=2)
    assert torch.allclose(model(video, **more), base, atol=1e-6)  # extra slots beyond num_objects are cut


def test_missing_input_is_a_clear_error() -> None:
    model = tiny(["context", "hands"])
    video, side = inputs(model)
    del side["hand_joints"]
    with pytest.raises(ConfigError, match="hand_joints.*vidrec prepare hands"):
        model(video, **side)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"streams": ["context", "fingers"]}, "unknown stream"),
        ({"streams": []}, "at least one stream"),
        ({"context_backbone": "resnet_nope"}, "model.context_backbone"),
        ({"fusion_dim": 30, "num_heads": 4}, "multiple of model.num_heads"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_model("multistream", num_classes=3, **dict(TINY, **kwargs))


def test_ablation_is_a_config_override() -> None:
    cfg = load_config(
        overrides=["model.name=multistream", "model.streams=[context,objects]"], environ={}, validate=False
    )
    check_model_kwargs(cfg.model.name, cfg.model_kwargs)
    model = create_model(cfg.model.name, num_classes=3, **dict(TINY, **cfg.model_kwargs))
    assert model.streams == ("context", "objects") and not hasattr(model, "hand_encoder")
    with pytest.raises(ConfigError, match="model.stream"):
        check_model_kwargs("multistream", {"stream": ["context"]})


def test_standard_size_parameter_count() -> None:
    """The default (ResNet-34 + MobileNetV2 + GNN + fusion + BiLSTM) at SSv2's 174 classes; seed 000 reports 29.9M."""
    model = create_model("multistream", num_classes=174)
    n = sum(p.numel() for p in model.parameters())
    assert 25.0e6 < n < 26.5e6, n


# ---------------------------------------------------------------------------------- stream cache

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from vidrec.data.records import VideoRecord  # noqa: E402
from vidrec.data.streams.cache import StreamOptions, cache_path, read_cache  # noqa: E402
from vidrec.data.streams.hands import HandDetection  # noqa: E402
from vidrec.data.streams.prepare import prepare_streams  # noqa: E402
from vidrec.data.streams.side_input import StreamSideInput  # noqa: E402
from vidrec.errors import DatasetError  # noqa: E402
from vidrec.video.encode import write_video  # noqa: E402

W, H, NF = 64, 48, 6
RED, BLUE = (230, 20, 20), (20, 20, 230)


def _scene(i: int) -> dict[str, tuple[int, int, int, int]]:
    """Per-frame boxes: a red object moving right, a blue one from frame 2 on, a white hand."""
    boxes = {"0000": (4 + 6 * i, 10, 16 + 6 * i, 22), "hand": (30, 26, 46, 42)}
    if i >= 2:
        boxes["0001"] = (44, 4, 60, 16)
    return boxes


def _make_video(root: Path, vid: str) -> VideoRecord:
    frames = np.full((NF, H, W, 3), 90, np.uint8)
    entries = []
    for i in range(NF):
        labels = []
        for cat, (x1, y1, x2, y2) in _scene(i).items():
            colour = {"0000": RED, "0001": BLUE, "hand": (255, 255, 255)}[cat]
            frames[i, y1:y2, x1:x2] = colour
            labels.append(
                {
                    "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
                    "category": "cup" if cat != "hand" else "hand",
                    "standard_category": cat,
                    "gt_annotation": f"object {cat}",
                }
            )
        entries.append(
            {
                "name": f"{vid}/{i + 1:04d}.jpg",
                "labels": labels,
                "gt_placeholders": ["cup"],
                "nr_instances": len(labels),
            }
        )
    path = write_video(root / f"{vid}.mp4", frames, fps=12, crf=0)
    ann = root / "boxes.json"
    data = json.loads(ann.read_text()) if ann.is_file() else {}
    data[vid] = entries
    ann.write_text(json.dumps(data))
    return VideoRecord(path=path, label=0, video_id=vid, fps=12.0, meta={"boxes_file": str(ann)})


class BrightLandmarker:
    """A stand-in for MediaPipe: finds a hand in any mostly white crop, at the crop's centre."""

    def detect(self, image: np.ndarray, *, max_hands: int) -> list[HandDetection]:
        if image.mean() < 150:
            return []
        return [HandDetection(np.tile([[0.5, 0.5, 0.0]], (21, 1)), 0.9, "Right")]

    def close(self) -> None:
        pass


@pytest.fixture()
def videos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[VideoRecord]:
    monkeypatch.setattr("vidrec.data.streams.hands.make_landmarker", lambda **kw: BrightLandmarker())
    from vidrec.data import boxes

    boxes._STORES.clear()  # the box file is rewritten per video: do not keep a stale parse
    recs = [_make_video(tmp_path / "videos", str(v)) for v in (11, 12, 13)]
    boxes._STORES.clear()
    return recs


def test_objects_cache_keeps_placeholder_slots(videos: list[VideoRecord], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    s = prepare_streams(videos, "objects", cache, options=StreamOptions(object_size=16, max_objects=3))
    assert (s.computed, s.skipped, s.failed, s.frames) == (3, 0, [], 3 * NF)
    meta, a = read_cache(cache_path(cache, "11"))  # type: ignore[misc]
    assert a["object_crops"].shape == (NF, 3, 3, 16, 16) and a["object_crops"].dtype == np.uint8
    assert a["object_ids"].tolist() == ["0000", "0001", ""]
    assert a["object_mask"].tolist() == [[1, 0, 0], [1, 0, 0]] + [[1, 1, 0]] * 4
    red = a["object_crops"][:, 0].reshape(NF, 3, -1).mean(-1)  # slot 0 is the red object in every frame
    assert (red[:, 0] > 200).all() and (red[:, 2] < 60).all()
    blue = a["object_crops"][2:, 1].reshape(NF - 2, 3, -1).mean(-1)
    assert (blue[:, 2] > 200).all() and (blue[:, 0] < 60).all()
    np.testing.assert_allclose(a["object_boxes"][3, 0], [22 / W, 10 / H, 34 / W, 22 / H], atol=1e-6)
    assert meta["kinds"]["objects"]["object_size"] == 16
    assert json.loads((cache / "summary_objects.json").read_text())["objects"] == 3 * (NF + NF - 2)


def test_cache_is_resumable(videos: list[VideoRecord], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    opts = StreamOptions(object_size=16, max_objects=2)
    broken = VideoRecord(path=tmp_path / "missing.mp4", label=0, video_id="99", meta=videos[0].meta)
    first = prepare_streams([videos[0], broken, videos[1]], "objects", cache, options=opts)
    assert first.computed == 2 and len(first.failed) == 1 and "99" in first.failed[0]
    assert not cache_path(cache, "99").exists()
    stamp = cache_path(cache, "11").stat().st_mtime_ns
    cache_path(cache, "12").write_bytes(b"PK\x03\x04 truncated")  # an interrupted copy, say
    again = prepare_streams(videos, "objects", cache, options=opts)
    assert (again.skipped, again.computed) == (1, 2)  # 11 kept; 12 unreadable → redone; 13 new
    assert cache_path(cache, "11").stat().st_mtime_ns == stamp
    assert read_cache(cache_path(cache, "12")) is not None
    other = prepare_streams(videos, "objects", cache, options=StreamOptions(object_size=8, max_objects=2))
    assert other.computed == 3  # other options: redone
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_hands_and_objects_share_one_file_and_align(videos: list[VideoRecord], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    opts = StreamOptions(object_size=16, max_objects=2, margin=0.0)
    h = prepare_streams(videos[:1], "hands", cache, options=opts)
    assert (h.hand_boxes, h.hands_found) == (NF, NF)
    prepare_streams(videos[:1], "objects", cache, options=opts)
    meta, a = read_cache(cache_path(cache, "11"))  # type: ignore[misc]
    assert set(meta["kinds"]) == {"hands", "objects"}
    assert (
        a["hand_joints"].shape == (NF, 2, 21, 3)
        and a["hand_joints_mask"][:, 0].all()
        and not a["hand_joints_mask"][:, 1].any()
    )
    np.testing.assert_allclose(a["hand_joints"][0, 0, 0, :2], [38 / W, 34 / H], atol=1e-6)  # the hand box centre
    side = StreamSideInput(cache, kinds=("hands", "objects"), options=opts)
    out = side(videos[0], [0, 3, 3, 5, 40], None)
    assert out["hand_joints"].shape == (5, 2, 21, 3) and out["object_crops"].shape == (5, 2, 3, 16, 16)
    assert out["hand_joints_mask"][:, 0].tolist() == [1, 1, 1, 1, 0]  # frame 40 is not in the video
    assert torch.equal(out["object_crops"][1], torch.from_numpy(a["object_crops"][3]))
    assert (out["object_crops"][4] == 0).all()
    fly = StreamSideInput(tmp_path / "empty", kinds=("hands", "objects"), on_the_fly=True, options=opts)(
        videos[0], [0, 3, 3, 5, 40], None
    )
    for k in out:
        assert torch.equal(fly[k], out[k]), k
    with pytest.raises(DatasetError, match="vidrec prepare objects"):
        StreamSideInput(tmp_path / "empty", kinds=("objects",), options=opts)(videos[1], [0], None)


@pytest.mark.slow  # spawned workers each import torch: ~25 s on 2 busy cores
def test_prepare_with_workers(videos: list[VideoRecord], tmp_path: Path) -> None:
    s = prepare_streams(
        videos, "objects", tmp_path / "cache", options=StreamOptions(object_size=8, max_objects=2), workers=2
    )
    assert s.computed == 3 and not s.failed
    assert all(read_cache(cache_path(tmp_path / "cache", v.video_id)) is not None for v in videos)


# ---------------------------------------------------------------------------------- --visualize


def test_visualize_draws_classes_boxes_and_joints(videos: list[VideoRecord], tmp_path: Path) -> None:
    from vidrec.report.visualize import render_clip, visualize_prediction
    from vidrec.video.decode import PyAVDecoder

    cache = tmp_path / "cache"
    opts = StreamOptions(object_size=8, max_objects=2, margin=0.0)
    prepare_streams(videos[:1], "hands", cache, options=opts)
    prepare_streams(videos[:1], "objects", cache, options=opts)
    _, arrays = read_cache(cache_path(cache, "11"))  # type: ignore[misc]
    frames = PyAVDecoder().decode(videos[0].path, list(range(NF))).numpy()
    plain = render_clip(frames, min_size=48)
    assert plain.shape == frames.shape and np.abs(plain.astype(int) - frames).max() <= 1  # nothing to draw
    topk = [("Moving something from left to right", 0.7), ("Moving something up", 0.2), ("Pushing something", 0.1)]
    drawn = render_clip(frames, topk=topk, streams=arrays, min_size=96)
    assert drawn.shape == (NF, 96, 128, 3)
    base = render_clip(frames, min_size=96)
    changed = np.abs(drawn.astype(int) - base).sum(-1) > 30  # (T, 96, 128)
    assert changed[:, :12, :60].any(1).any(1).all()  # the class lines, top left, on every frame
    hx, hy = 38 * 2, 34 * 2  # the hand box centre, where the fake landmarker put every joint
    assert changed[:, hy - 2 : hy + 3, hx - 2 : hx + 3].any(-1).any(-1).all()
    assert changed[:, 10 * 2, 4 * 2 : 16 * 2].any(-1)[0]  # frame 0: the red object's box top edge

    class Pred:
        topk = (("a", 0.5), ("b", 0.3), ("c", 0.2))

    out = visualize_prediction(videos[0].path, Pred(), tmp_path / "vis.mp4", cache_dir=cache)
    info = PyAVDecoder().info(out)
    assert (info.num_frames, info.width, info.height) == (NF, 342, 256)


def test_stream_dropout_hides_a_stream_per_sample_in_training_only() -> None:
    model = tiny(["context", "objects"], stream_dropout=0.5)
    video, side = inputs(tiny())
    video, side = (
        video.repeat(4, 1, 1, 1, 1),
        {k: v.repeat(4, *([1] * (v.dim() - 1))) for k, v in side.items()},
    )  # B = 8
    other = dict(side, object_crops=255 - side["object_crops"])
    model.train()
    torch.manual_seed(3)
    a = model(video, **side)
    torch.manual_seed(3)
    b = model(video, **other)  # same dropout draws, other crops
    same = torch.isclose(a, b, atol=1e-6).all(1)
    assert same.any() and not same.all()  # samples whose crops were dropped ignore them; the others do not
    model.eval()
    assert torch.equal(model(video, **side), model(video, **side))
    assert not torch.allclose(model(video, **side), model(video, **other))
    with pytest.raises(ConfigError, match="stream_dropout"):
        tiny(stream_dropout=1.0)


# ---------------------------------------------------------------------------------- training


@pytest.mark.slow  # ~60 s on 2 busy cores: two short trainings
def test_multistream_beats_context_only_on_synthetic_boxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Left→right vs right→left (classes that differ only in time), through `vidrec train`'s code path.

    The synthetic set is read with the Something-Else loader (its boxes), on the SSv2 split (each video's
    time-reversed partner in the same subset, so appearance alone cannot separate the classes). The hand
    stream sees the ground-truth hand boxes (MediaPipe's joints are replaced by "no hand found" here, so
    the test needs no extra); object crops and boxes come from `prepare_streams`. Measured when written:
    multistream val top-1 1.00 vs context-only 0.50.
    """
    from vidrec.data.build import load_recordset
    from vidrec.data.synthetic import SynthSpec, generate
    from vidrec.engine.run import train

    monkeypatch.setattr("vidrec.data.streams.hands.make_landmarker", lambda **kw: _NoHands())
    data = tmp_path / "data"
    generate(
        data,
        SynthSpec(
            videos_per_class=40,
            val_per_class=10,
            test_per_class=0,
            size=48,
            num_frames=16,
            classes=("Moving [something] from left to right", "Moving [something] from right to left"),
            layouts=("ssv2", "something_else"),
        ),
        workers=1,
    )
    ann, split = data / "annotations", data / "dataset_splits" / "shuffled"
    split.mkdir(parents=True)
    (split / "train.json").write_text((ann / "something-something-v2-train.json").read_text())
    (split / "validation.json").write_text((ann / "something-something-v2-validation.json").read_text())
    (split / "labels.json").write_text((data / "dataset_splits" / "compositional" / "labels.json").read_text())
    base = [
        f"data.root={data}",
        f"data.streams_dir={data / 'streams'}",
        "data.dataset=something_else",
        "data.split_set=shuffled",
        "data.max_objects=2",
        "data.image_size=32",
        "data.num_frames=8",
        "data.batch_size=8",
        "data.num_workers=0",
        "model.name=multistream",
        "model.context_backbone=test_resnet",
        "model.object_backbone=test_efficientnet",
        "model.object_size=16",
        "model.num_objects=2",
        "model.fusion_dim=32",
        "model.num_heads=2",
        "model.lstm_hidden=32",
        "model.hand_dim=16",
        "model.gnn_hidden=16",
        "model.object_dim=32",
        "model.context_dim=32",
        "model.dropout=0.0",
        "train.epochs=8",
        "train.lr=2e-3",
        "train.warmup_epochs=0",
        "train.early_stop_patience=null",
        "train.label_smoothing=0.0",
    ]
    rs = load_recordset(load_config(overrides=base, environ={}))
    records = [r for recs in rs.subsets.values() for r in recs]
    opts = StreamOptions(object_size=16, max_objects=2)
    for kind in ("objects", "hands"):
        assert not prepare_streams(records, kind, data / "streams", options=opts).failed
    top1 = {}
    for name, extra in (
        ("multistream", ["model.streams=[hands,objects,context]", "model.stream_dropout=0.7"]),
        ("context", ["model.streams=[context]"]),
    ):
        cfg = load_config(overrides=base + extra + [f"train.out_dir={tmp_path / name}"], environ={})
        top1[name] = train(cfg, progress=False).fit.best_metrics["val_top1"]
    print(f"val top-1: multistream {top1['multistream']:.2f}, context only {top1['context']:.2f}")
    assert top1["multistream"] >= 0.8 and top1["multistream"] > top1["context"] + 0.15, top1

    # predict (and --visualize) work for the side-input model on a dataset video: boxes come from its annotations
    from vidrec.engine.predict import Predictor
    from vidrec.errors import VidrecError
    from vidrec.report.visualize import visualize_prediction

    pred = Predictor(tmp_path / "multistream" / "checkpoints" / "best")
    val = rs.subsets["val"][0]
    out = pred.predict_one(val.path, topk=2)
    assert len(out.topk) == 2 and out.topk[0][1] >= out.topk[1][1]
    visualize_prediction(val.path, out, tmp_path / "vis.mp4", checkpoint=pred.ck)
    assert (tmp_path / "vis.mp4").stat().st_size > 1000
    stranger = tmp_path / "stranger.mp4"
    stranger.write_bytes(val.path.read_bytes())
    with pytest.raises(VidrecError, match="not in it"):
        pred.predict_one(stranger)
    # the batched path (vidrec predict: the dataset and DataLoader) gathers the same side inputs
    batched = pred.predict([val.path], topk=2, workers=0)[0]
    assert [c for c, _ in batched.topk] == [c for c, _ in out.topk] and abs(batched.topk[0][1] - out.topk[0][1]) < 1e-5
    with pytest.raises(VidrecError, match="not in it"):
        pred.predict([stranger])


class _NoHands:
    def detect(self, image: np.ndarray, *, max_hands: int) -> list[HandDetection]:
        return []

    def close(self) -> None:
        pass
