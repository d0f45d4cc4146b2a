"""The built-in synthetic dataset: determinism, official formats, boxes, temporal-only pairs, refusal."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from vidrec.data.records import load_records
from vidrec.data.synthetic import (
    CLASSES,
    SCENES,
    SynthSpec,
    camel_name,
    generate,
    make_scene,
    render_scene,
    render_video,
    sample_look,
    snake_name,
    template_to_class,
)
from vidrec.data.synthetic.layouts import plan_videos
from vidrec.errors import ConfigError, DatasetError
from vidrec.video.decode import PyAVDecoder

SMALL = dict(seed=3, videos_per_class=2, val_per_class=1, test_per_class=1, size=64, num_frames=16)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synth") / "data"
    info = generate(root, SynthSpec(**SMALL), workers=2, progress=False)
    return root, info


def test_counts_classes_and_official_annotation_files(synth) -> None:
    root, info = synth
    assert info.created and info.counts == {"train": 20, "val": 10, "test": 10}
    ann = root / "annotations"
    labels = json.loads((ann / "something-something-v2-labels.json").read_text())
    assert labels == {template_to_class(c.template): str(i) for i, c in enumerate(CLASSES)}
    train = json.loads((ann / "something-something-v2-train.json").read_text())
    val = json.loads((ann / "something-something-v2-validation.json").read_text())
    test = json.loads((ann / "something-something-v2-test.json").read_text())
    assert len(train) == 20 and len(val) == 10 and len(test) == 10
    assert all(set(e) == {"id"} for e in test)
    for e in train + val:
        assert set(e) == {"id", "label", "template", "placeholders"}
        assert e["template"].count("[something]") == len(e["placeholders"])
        assert e["label"] == e["label"].lower()[:1] + e["label"][1:]
        assert "[" not in e["label"] and e["placeholders"][0] in e["label"]
    ids = [e["id"] for e in train + val + test]
    assert len(set(ids)) == len(ids) and all(i.isdigit() for i in ids)
    assert sorted(p.name for p in (root / "20bn-something-something-v2").iterdir()) == sorted(f"{i}.webm" for i in ids)


def test_loader_reads_it_through_ssv2_with_captions_and_boxes(synth) -> None:
    root, _ = synth
    rs = load_records("synthetic", root)
    assert rs.problems == []
    assert rs.classes == [template_to_class(c.template) for c in CLASSES]
    assert {k: len(v) for k, v in rs.subsets.items()} == {"train": 20, "val": 10, "test": 10}
    per_class = np.bincount([r.label for r in rs.subsets["train"]], minlength=10)
    assert per_class.tolist() == [2] * 10
    rec = rs.subsets["val"][0]
    assert rec.meta["caption"] and Path(rec.meta["boxes_file"]).is_file()
    assert rec.video_id in json.loads(Path(rec.meta["boxes_file"]).read_text())
    assert rec.num_frames == 16 and rec.fps == 12.0
    assert all(r.label == -1 for r in rs.subsets["test"])


def test_videos_decode_with_the_expected_size_and_length(synth) -> None:
    root, _ = synth
    dec = PyAVDecoder()
    for path in sorted((root / "20bn-something-something-v2").iterdir())[:3]:
        info = dec.info(path)
        assert (info.num_frames, info.width, info.height, info.codec) == (16, 64, 64, "vp9")
        assert dec.decode(path, list(range(16))).shape == (16, 64, 64, 3)


def test_same_seed_gives_identical_files_and_frames(synth, tmp_path: Path) -> None:
    root, _ = synth
    other = tmp_path / "again"
    generate(other, SynthSpec(**SMALL), workers=1, progress=False)  # serial: scheduling must not matter
    names = [
        "annotations/something-something-v2-labels.json",
        "annotations/something-something-v2-train.json",
        "annotations/something-something-v2-validation.json",
        "annotations/something-something-v2-test.json",
        "annotations/bounding_box_smthsmth_part1.json",
        "annotations/bounding_box_smthsmth_part2.json",
        "dataset_splits/compositional/train.json",
        "captions.json",
        "ucfTrainTestlist/trainlist01.txt",
    ]
    for name in names:
        assert (root / name).read_bytes() == (other / name).read_bytes(), name
    dec = PyAVDecoder()
    for path in sorted((root / "20bn-something-something-v2").iterdir())[:2]:
        a = dec.decode(path, list(range(16)))
        b = dec.decode(other / "20bn-something-something-v2" / path.name, list(range(16)))
        assert bool((a == b).all())
    # and a different seed gives different videos
    f1, _, _ = render_video(SynthSpec(**SMALL), 0, "train", 0)
    f2, _, _ = render_video(SynthSpec(**{**SMALL, "seed": 4}), 0, "train", 0)
    assert not np.array_equal(f1, f2)


# sha256 of what the generator wrote before it became a package (issue 14): every path, the bytes of every
# annotation file, and every video's rendered frames, boxes and facts. The encoded video bytes are left out:
# the encoders' output depends on the FFmpeg build and thread count, and the webm muxer writes a random UID.
_FILES_SHA256 = "a87e41ef605c2992e1312017ee519f5c1e02209ecb18221f91f06ee88f0bd956"
_FRAMES_SHA256 = "748cf3c2c120623cb545773eb93c299fea236cda80f5c5f5cdd4aeebd4a234da"


def test_same_spec_and_seed_write_what_they_always_wrote(synth) -> None:
    root, _ = synth
    files = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            files.update(str(p.relative_to(root)).encode())
            if p.suffix not in (".webm", ".mp4", ".avi"):
                files.update(p.read_bytes())
    assert files.hexdigest() == _FILES_SHA256
    spec = SynthSpec(**SMALL)
    frames = hashlib.sha256()
    for plan in plan_videos(spec):
        pixels, boxes, facts = render_video(spec, plan.class_full, plan.subset, plan.k)
        frames.update(pixels.tobytes())
        frames.update(json.dumps([sorted(b.items()) for b in boxes]).encode())
        frames.update(json.dumps(facts, sort_keys=True).encode())
    assert frames.hexdigest() == _FRAMES_SHA256


def test_rerun_is_a_noop_and_other_data_is_never_overwritten(synth, tmp_path: Path) -> None:
    root, _ = synth
    again = generate(root, SynthSpec(**SMALL), workers=2, progress=False)
    assert not again.created
    with pytest.raises(DatasetError, match=r"different spec.*seed"):
        generate(root, SynthSpec(**{**SMALL, "seed": 99}), progress=False)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not empty"):
        generate(foreign, SynthSpec(**SMALL), progress=False)
    assert (foreign / "thesis.txt").read_text() == "precious"
    with pytest.raises(ConfigError, match="odd|even"):
        generate(tmp_path / "odd", SynthSpec(size=65), progress=False)
    with pytest.raises(ConfigError, match="unknown class"):
        generate(tmp_path / "cls", SynthSpec(classes=("Juggling [something]",)), progress=False)


def test_boxes_are_where_the_object_is_drawn() -> None:
    spec = SynthSpec(**{**SMALL, "clutter": 0.0})
    for cls in range(len(CLASSES)):
        frames, boxes, facts = render_video(spec, cls, "train", 1)
        rgb = np.asarray(facts["rgb"], dtype=np.int16)
        checked = 0
        for t, fb in enumerate(boxes):
            match = np.abs(frames[t].astype(np.int16) - rgb).max(-1) <= 9
            if 2 not in fb:
                assert match.sum() < 3, (cls, t)  # object hidden or gone: no object pixels anywhere
                continue
            x1, y1, x2, y2 = (int(v) for v in fb[2])
            inside = match[y1:y2, x1:x2]
            assert inside.sum() >= 0.5 * match.sum() and inside.sum() > 0, (cls, t)
            ys, xs = np.nonzero(match)
            # the box is tight around the visible object pixels (noise may hide an edge pixel)
            assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1, (cls, t)
            assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1, (cls, t)
            checked += 1
        assert checked >= 4


def test_boxes_file_matches_rendering_and_official_shape(synth) -> None:
    root, _ = synth
    part1 = json.loads((root / "annotations/bounding_box_smthsmth_part1.json").read_text())
    part2 = json.loads((root / "annotations/bounding_box_smthsmth_part2.json").read_text())
    assert not set(part1) & set(part2) and len(part1) + len(part2) == 40
    boxes = {**part1, **part2}
    spec = SynthSpec(**SMALL)
    plan = next(p for p in plan_videos(spec) if p.class_full == 8)  # putting into a box: hand, object, container
    frames = boxes[plan.video_id]
    assert len(frames) == 16 and frames[0]["name"] == f"{plan.video_id}/0001.jpg"
    _, rendered, facts = render_video(spec, plan.class_full, plan.subset, plan.k)
    for f, rb in zip(frames, rendered):
        assert f["nr_instances"] == len(f["labels"]) and f["gt_placeholders"] == facts["placeholders"]
        by = {lab["gt_annotation"]: lab for lab in f["labels"]}
        assert set(by) <= {"object 0", "object 1", "object hand"}
        assert by["object 1"]["standard_category"] == "0001" and by["object 1"]["category"].endswith(" box")
        if "object hand" in by:
            assert by["object hand"]["category"] == "hand" == by["object hand"]["standard_category"]
            b = by["object hand"]["box2d"]
            assert (b["x1"], b["y1"], b["x2"], b["y2"]) == rb[1]
        if "object 0" in by:
            assert by["object 0"]["standard_category"] == "0000"
    assert "object 0" in {lab["gt_annotation"] for lab in frames[0]["labels"]}  # outside the box at first
    assert "object 0" not in {lab["gt_annotation"] for lab in frames[-1]["labels"]}  # inside (hidden) at the end


def _centre(b):
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) * (b[3] - b[1]))


@pytest.mark.parametrize("cls", range(len(CLASSES)))
def test_each_class_does_what_its_template_says(cls: int) -> None:
    spec = SynthSpec(**{**SMALL, "clutter": 0.0})
    for k in range(2):
        _, boxes, _ = render_video(spec, cls, "train", k)
        seen = [_centre(fb[2]) for fb in boxes if 2 in fb]
        first, last = seen[0], seen[-1]
        name = CLASSES[cls].template
        if name.endswith("left to right"):
            assert last[0] - first[0] > 15
        elif name.endswith("right to left"):
            assert first[0] - last[0] > 15
        elif name.endswith(" up"):
            assert first[1] - last[1] > 15
        elif name.endswith(" down"):
            assert last[1] - first[1] > 15
        elif name.endswith("towards the camera"):
            assert last[2] > 3 * first[2]
        elif name.endswith("away from the camera"):
            assert first[2] > 3 * last[2]
        elif name.startswith("Pushing"):
            assert 2 not in boxes[-1] and 2 in boxes[0]  # fell off: gone at the end
        elif name.startswith("Pretending"):
            assert len(seen) == len(boxes) and abs(last[0] - first[0]) < 3  # never moves
        elif name.startswith("Putting"):
            assert 2 in boxes[0] and 2 not in boxes[-1]
        elif name.startswith("Taking"):
            assert 2 not in boxes[0] and 2 in boxes[-1]


def test_time_reversed_pairs_have_the_same_mean_frame() -> None:
    assert {c.scene for c in CLASSES} == set(SCENES)  # every class's scene kind is drawn, and no kind is unused
    with pytest.raises(ValueError, match="unknown scene kind 'juggle'"):
        make_scene("juggle", np.random.default_rng(0), 16, 64)
    size, n = 64, 16
    for kind in ("move_lr", "move_up", "towards", "put_into"):
        scene = make_scene(kind, np.random.default_rng(11), n, size)
        look = sample_look(np.random.default_rng(12), scene, size, clutter=1.0)
        fwd, _ = render_scene(scene, look, np.random.default_rng(13), size)
        back, _ = render_scene(scene.reversed(), look, np.random.default_rng(13), size)
        fwd, back = fwd.astype(np.float32), back.astype(np.float32)
        assert np.abs(fwd.mean(0) - back.mean(0)).mean() < 1.0  # only the noise differs
        assert np.abs(fwd[::-1] - back).mean() < 4.0  # frame by frame it is the same video backwards
        assert np.abs(fwd - back).mean() > 3 * np.abs(fwd.mean(0) - back.mean(0)).mean()  # but in order it is not


def test_ucf101_and_folder_layouts(synth) -> None:
    root, _ = synth
    lst = root / "ucfTrainTestlist"
    class_ind = (lst / "classInd.txt").read_bytes().decode()
    names = [camel_name(c.template) for c in CLASSES]
    assert class_ind == "".join(f"{i + 1} {n}\r\n" for i, n in enumerate(names))
    line_train = re.compile(r"^([A-Za-z]+)/v_\1_g(\d\d)_c(\d\d)\.avi (\d+)$")
    line_test = re.compile(r"^([A-Za-z]+)/v_\1_g(\d\d)_c(\d\d)\.avi$")
    all_rel = set()
    for split in (1, 2, 3):
        train = (lst / f"trainlist0{split}.txt").read_bytes().decode().split("\r\n")
        test = (lst / f"testlist0{split}.txt").read_bytes().decode().split("\r\n")
        assert train[-1] == "" and test[-1] == ""
        tr_groups, te_groups = set(), set()
        for line in train[:-1]:
            m = line_train.match(line)
            assert m, line
            assert names[int(m.group(4)) - 1] == m.group(1)
            tr_groups.add((m.group(1), m.group(2)))
            all_rel.add(line.split(" ")[0])
        for line in test[:-1]:
            m = line_test.match(line)
            assert m, line
            te_groups.add((m.group(1), m.group(2)))
            all_rel.add(line)
        assert not tr_groups & te_groups  # a group never straddles train and test
        assert len(train) - 1 + len(test) - 1 == 30
    assert len(all_rel) == 30
    for rel in all_rel:
        assert (root / "UCF-101" / rel).is_file()
    val = json.loads((root / "annotations/something-something-v2-validation.json").read_text())
    for e in val:
        cls = next(c for c in CLASSES if c.template == e["template"])
        assert (root / "folder" / snake_name(cls.template) / f"{e['id']}.mp4").is_file()
    assert sum(1 for _ in (root / "folder").rglob("*.mp4")) == 30


def test_compositional_split_and_captions(synth) -> None:
    root, _ = synth
    comp = root / "dataset_splits" / "compositional"
    train = json.loads((comp / "train.json").read_text())
    val = json.loads((comp / "validation.json").read_text())
    assert not {e["id"] for e in train} & {e["id"] for e in val} and len(train) + len(val) == 30
    labels = json.loads((comp / "labels.json").read_text())
    assert labels["Moving something up"] == 2
    # per class, train and validation never share an object shape
    for t in {e["template"] for e in train} & {e["template"] for e in val}:
        s_tr = {e["placeholders"][0].split()[-1] for e in train if e["template"] == t}
        s_va = {e["placeholders"][0].split()[-1] for e in val if e["template"] == t}
        assert not s_tr & s_va
    caps = json.loads((root / "captions.json").read_text())
    assert len(caps["sentences"]) == len(caps["videos"]) == 40
    splits = {v["video_id"]: v["split"] for v in caps["videos"]}
    assert set(splits.values()) == {"train", "validate", "test"}
    train_ids = {e["id"] for e in json.loads((root / "annotations/something-something-v2-train.json").read_text())}
    assert {i for i, s in splits.items() if s == "train"} == train_ids
    for s in caps["sentences"]:
        assert re.search(r"\b(red|green|blue|yellow|orange|purple|cyan|pink)\b", s["caption"]), s
        assert re.search(r"\b(circle|square|triangle|diamond|cross|oval)\b", s["caption"]), s


def test_class_subset_and_mp4(tmp_path: Path) -> None:
    spec = SynthSpec(
        classes=("Moving something up", "Moving [something] down"),
        ext=".mp4",
        layouts=("ssv2",),
        videos_per_class=1,
        val_per_class=1,
        test_per_class=0,
        size=48,
        num_frames=12,
    )
    info = generate(tmp_path / "sub", spec, workers=1, progress=False)
    assert info.classes == ["Moving something up", "Moving something down"]
    rs = load_records("synthetic", tmp_path / "sub")
    assert rs.classes == info.classes and {k: len(v) for k, v in rs.subsets.items()} == {
        "train": 2,
        "val": 2,
        "test": 0,
    }
    assert all(r.path.suffix == ".mp4" for r in rs.subsets["train"])
    assert not (tmp_path / "sub" / "UCF-101").exists()


def test_loader_generates_when_missing_and_checks_options(tmp_path: Path) -> None:
    tiny = dict(
        videos_per_class=1,
        val_per_class=1,
        test_per_class=0,
        size=48,
        num_frames=12,
        layouts=("ssv2",),
        classes=["Moving something up", "Moving something down"],
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no synthetic dataset there"):
        load_records("synthetic", empty, **tiny)  # generating is opt-in: a mistyped root stays untouched
    assert not any(empty.iterdir())
    rs = load_records("synthetic", empty, generate_missing=True, workers=1, **tiny)
    assert len(rs.subsets["train"]) == 2 and (empty / "synth.json").is_file()
    assert load_records("synthetic", empty).classes == rs.classes  # no options: read as it is
    with pytest.raises(DatasetError, match="different spec"):
        load_records("synthetic", empty, **{**tiny, "seed": 5})
    with pytest.raises(ConfigError, match="unknown option"):
        load_records("synthetic", empty, colour="red")


def test_a_config_generates_only_with_data_generate(tmp_path: Path) -> None:
    """`vidrec train` never writes a dataset into a mistyped data.root; data.generate=true asks for it."""
    from vidrec.config import load_config
    from vidrec.data.build import load_recordset

    tiny = [
        "data.videos_per_class=1",
        "data.val_per_class=1",
        "data.test_per_class=0",
        "data.size=48",
        "data.num_frames=12",
        "data.layouts=[ssv2]",
        "data.workers=1",
        "data.classes=[Moving something up, Moving something down]",
    ]
    root = tmp_path / "synth"
    root.mkdir()
    with pytest.raises(DatasetError, match=f"data.root {root}: no synthetic dataset there"):
        load_recordset(load_config(overrides=[f"data.root={root}", *tiny], environ={}))
    assert not any(root.iterdir())
    missing = tmp_path / "new" / "synth"
    rs = load_recordset(load_config(overrides=[f"data.root={missing}", "data.generate=true", *tiny], environ={}))
    assert len(rs.subsets["train"]) == 2 and (missing / "synth.json").is_file()
    with pytest.raises(ConfigError, match="only the synthetic dataset"):
        load_recordset(
            load_config(overrides=["data.dataset=folder", f"data.root={tmp_path}", "data.generate=true"], environ={})
        )
