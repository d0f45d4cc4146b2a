"""Prediction and evaluation at scale: the device rule, folders of videos in batches through the one
dataset, a dataset's subset to a benchmark's submission file, evaluation with workers, and the
decoded-clip cache of evaluation epochs (issue 16 items 1, 2 and 7)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_cli import run
from vidrec.utils.device import check_device_name, resolve_device

CLASSES = ["Moving [something] up", "Moving [something] down"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict[str, Path]:
    """The synthetic dataset in its SSv2 and UCF101 layouts, and a tiny random checkpoint for each."""
    from vidrec.config import load_config
    from vidrec.data.build import load_recordset
    from vidrec.data.synthetic import SynthSpec, generate
    from vidrec.engine.checkpoint import save_checkpoint
    from vidrec.models.registry import create_model

    root = tmp_path_factory.mktemp("predict")
    data = root / "data"
    spec = SynthSpec.from_options(
        videos_per_class=1,
        val_per_class=2,
        test_per_class=2,
        size=48,
        num_frames=12,
        classes=CLASSES,
        layouts=["ssv2", "ucf101"],
    )
    generate(data, spec, workers=1, progress=False)
    out = {"data": data}
    for ds in ("ssv2", "ucf101"):
        sets = [
            f"data.dataset={ds}",
            f"data.root={data}",
            "data.num_frames=4",
            "data.image_size=32",
            "data.decode_size=32",
            "data.num_workers=0",
            "model.name=cnn_rnn",
            "model.backbone=resnet10t",
            "model.hidden_size=16",
            "model.attention_dim=16",
            "eval.batch_size=4",
        ]
        cfg = load_config(overrides=sets, environ={})
        torch.manual_seed(0)
        model = create_model(cfg.model.name, num_classes=2, **cfg.model_kwargs)
        out[ds] = save_checkpoint(root / f"ck-{ds}", model=model, cfg=cfg, classes=load_recordset(cfg).classes)
    return out


def test_the_device_rule(monkeypatch):
    """auto: CUDA, else MPS, else CPU; cuda:N checked against the visible GPUs; one line for anything else."""
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("CPU ") == torch.device("cpu")
    with pytest.raises(Exception, match="unknown device"):
        check_device_name("gpu")
    with pytest.raises(Exception, match=r"--device cuda but no CUDA GPU is visible"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(Exception, match=r"train.device=cuda:2 but only 2 CUDA GPUs are visible \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2", option="train.device")


def _frame_folder(video: Path, out: Path) -> Path:
    """A folder of JPEG frames of ``video`` (one video), with a stray subfolder that must not count."""
    from PIL import Image

    from vidrec.video.decode import AutoDecoder

    frames = AutoDecoder().decode(video, list(range(12)))
    out.mkdir(parents=True)
    for i, f in enumerate(frames.numpy()):
        Image.fromarray(f).save(out / f"{i + 1:05d}.jpg")
    (out / "thumbs").mkdir()
    Image.fromarray(frames.numpy()[0]).save(out / "thumbs" / "00001.jpg")
    return out


def test_a_folder_is_predicted_recursively_in_batches(synth, tmp_path, capsys):
    from vidrec.engine.predict import Predictor

    videos = sorted((synth["data"] / "20bn-something-something-v2").glob("*.webm"))[:3]
    root = tmp_path / "inbox"
    shutil.copy(videos[0], root.mkdir() or root / "a.webm")
    (root / "x" / "y").mkdir(parents=True)
    shutil.copy(videos[1], root / "x" / "b.webm")
    shutil.copy(videos[2], root / "x" / "y" / "c.webm")
    _frame_folder(videos[0], root / "x" / "frames_of_a")
    (root / "x" / "broken.mp4").write_bytes(b"\x00" * 64)
    (root / "notes.txt").write_text("not a video")
    code, out, err = run(
        capsys,
        "predict",
        "--checkpoint",
        str(synth["ssv2"]),
        str(root),
        "--batch-size",
        "3",
        "--workers",
        "2",
        "--views",
        "2",
        "--json",
        "--device",
        "cpu",
    )
    assert code == 1, err  # done; one input failed and is listed
    got = {Path(p["path"]).relative_to(root).as_posix(): p for p in json.loads(out)}
    assert sorted(got) == ["a.webm", "x/b.webm", "x/broken.mp4", "x/frames_of_a", "x/y/c.webm"]
    assert got["x/broken.mp4"]["error"] and not got["x/broken.mp4"]["topk"]
    # batches through workers give what one video at a time gives; a folder of JPEGs is that video's frames
    one = Predictor(synth["ssv2"], device="cpu", views=2)
    for rel in ("a.webm", "x/b.webm", "x/y/c.webm", "x/frames_of_a"):
        ref = one.predict_one(root / rel, topk=2).topk
        assert [c for c, _ in ref] == [t["class"] for t in got[rel]["topk"]]
        np.testing.assert_allclose([q for _, q in ref], [t["prob"] for t in got[rel]["topk"]], atol=1e-5)
    probs = {k: [t["prob"] for t in got[k]["topk"]] for k in ("x/frames_of_a", "a.webm")}
    np.testing.assert_allclose(probs["x/frames_of_a"], probs["a.webm"], atol=0.05)  # JPEG round trip of the same frames
    code, out, err = run(capsys, "predict", "--checkpoint", str(synth["ssv2"]), str(root / "x" / "y"), "--workers", "0")
    assert code == 0 and "1 videos in" in out and "videos/s" in out, err


def test_a_subset_becomes_a_benchmark_submission(synth, tmp_path, capsys):
    ann = synth["data"] / "annotations"
    test_ids = [str(v["id"]) for v in json.loads((ann / "something-something-v2-test.json").read_text())]
    sub = tmp_path / "ssv2.csv"
    code, _out, err = run(
        capsys,
        "predict",
        "--checkpoint",
        str(synth["ssv2"]),
        "--subset",
        "test",
        "--csv",
        str(sub),
        "--topk",
        "2",
        "--workers",
        "0",
        "-q",
    )
    assert code == 0, err
    lines = sub.read_text().splitlines()  # SSv2: id;label1;label2, no header, the labels file's names
    assert [ln.split(";")[0] for ln in lines] == test_ids and len(test_ids) == 4
    names = set(json.loads((ann / "something-something-v2-labels.json").read_text()))
    assert all(len(ln.split(";")) == 3 and set(ln.split(";")[1:]) == names for ln in lines)
    run(
        capsys,
        "predict",
        "--checkpoint",
        str(synth["ssv2"]),
        "--subset",
        "test",
        "--csv",
        str(sub),
        "--topk",
        "1",
        "-q",
    )
    assert all(len(ln.split(";")) == 2 for ln in sub.read_text().splitlines())  # top-1 lines
    # UCF101: testlist01 in the seed-001 format id,class
    ucf = tmp_path / "ucf.csv"
    code, _out, err = run(
        capsys, "predict", "--checkpoint", str(synth["ucf101"]), "--subset", "test", "--csv", str(ucf), "-q"
    )
    assert code == 0, err
    rows = list(csv.reader(ucf.open()))
    testlist = (synth["data"] / "ucfTrainTestlist" / "testlist01.txt").read_text().splitlines()
    listed = [Path(ln.split()[0]).stem for ln in testlist]
    assert rows[0] == ["id", "class"] and [r[0] for r in rows[1:]] == listed
    assert {r[1] for r in rows[1:]} <= {"MovingSomethingUp", "MovingSomethingDown"}
    code, _, err = run(capsys, "predict", "--checkpoint", str(synth["ucf101"]), "--subset", "nope")
    assert code == 2 and "no subset 'nope'" in err


def test_eval_with_workers_and_batches_gives_the_same_report(synth):
    from vidrec.engine.run import evaluate_checkpoint

    a = evaluate_checkpoint(synth["ssv2"], views=2, progress=False, device="cpu", workers=0, batch_size=4)
    b = evaluate_checkpoint(synth["ssv2"], views=2, progress=False, device="auto", workers=2, batch_size=1)
    assert a.result.num_clips == b.result.num_clips == 8
    torch.testing.assert_close(a.result.probs, b.result.probs, atol=1e-5, rtol=0)
    assert a.video_ids == b.video_ids


def _clips(loader) -> dict[tuple[int, int], tuple[torch.Tensor, int]]:
    return {
        (int(i), int(v)): (x, int(f))
        for batch in loader
        for i, v, x, f in zip(batch["index"], batch["clip_index"], batch["video"], batch["failed"])
    }


@pytest.mark.parametrize("workers", [0, 2])
def test_cache_decoded_serves_later_evaluation_epochs_from_memory(synth, tmp_path, workers):
    """Evaluation clips are deterministic: with data.cache_decoded the second epoch reads none of the files
    (here they are gone) and gives the same clips; without it they fail. The budget is split over workers."""
    from vidrec.config import load_config
    from vidrec.data.build import build_dataset, build_loader, load_recordset
    from vidrec.engine.checkpoint import read_checkpoint_meta
    from vidrec.models.base import InputSpec

    data = tmp_path / "data"
    shutil.copytree(synth["data"], data)
    cfg = read_checkpoint_meta(synth["ssv2"])[0]
    spec = InputSpec(4, 32, (0.5,) * 3, (0.5,) * 3)
    clip_bytes = 3 * 4 * 32 * 32  # uint8 (C, T, S, S)

    def epochs(budget: str) -> tuple[dict, dict]:
        c = load_config(overrides=[f"data.root={data}", f"data.cache_decoded={budget}"], base=cfg.to_dict(), environ={})
        rs = load_recordset(c)
        ds = build_dataset(c, rs.subset("val"), rs.classes, spec, train=False, views=2, recordset=rs)
        loader = build_loader(c, ds, train=False, batch_size=2, workers=workers)  # persistent workers keep their caches
        first = _clips(loader)
        moved = data.with_name("away")
        (data / "20bn-something-something-v2").rename(moved)
        try:
            second = _clips(loader)
        finally:
            moved.rename(data / "20bn-something-something-v2")
        return first, second

    first, second = epochs("1MB")
    assert len(first) == 8 and not any(f for _, f in first.values())
    assert all(not second[k][1] and torch.equal(second[k][0], first[k][0]) for k in first)  # all from memory, identical
    _, second = epochs("false")
    assert all(f for _, f in second.values())  # no cache: every video read again, and gone
    _, second = epochs(str(max(1, workers) * clip_bytes * 2))  # room for 2 clips per process: the first 2 it read
    assert sum(not f for _, f in second.values()) == 2 * max(1, workers)
