"""Trainer, checkpoints, exact resume, evaluation and prediction on a tiny real dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import tiny_overrides
from vidrec.config import load_config
from vidrec.engine.checkpoint import load_checkpoint, save_checkpoint
from vidrec.engine.predict import Predictor
from vidrec.engine.run import evaluate_checkpoint, train
from vidrec.errors import CheckpointError, VidrecError


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    cfg = load_config(overrides=tiny_overrides(tiny_dataset, out, **{"train.epochs": 3}))
    return cfg, train(cfg, progress=False)


def test_training_lowers_loss_and_writes_run(trained):
    cfg, res = trained
    out = Path(cfg.train.out_dir)
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"epoch"' in line]
    epochs = [e for e in epochs if e["type"] == "epoch"]
    assert len(epochs) == 3
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    for name in ("model.safetensors", "config.yaml", "classes.json", "metrics.json"):
        assert (res.fit.best_checkpoint / name).is_file()
    assert (res.fit.last_checkpoint / "state" / "trainer_state.json").is_file()
    assert list((out / "tb").glob("events.*"))
    assert res.fit.best_metrics["val_top1"] >= 0.0


def test_checkpoint_round_trip(trained, tmp_path):
    _cfg, res = trained
    ck = load_checkpoint(res.fit.best_checkpoint)
    assert ck.classes == res.classes and ck.cfg.model.name == "cnn_rnn"
    copy = save_checkpoint(tmp_path / "copy", model=ck.model, cfg=ck.cfg, classes=ck.classes, metrics={"x": 1})
    a, b = load_file(str(res.fit.best_checkpoint / "model.safetensors")), load_file(str(copy / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 3, 4, 32, 32)
    assert torch.allclose(ck.model(x), load_checkpoint(copy).model(x))


def test_checkpoint_errors(trained, tmp_path):
    _cfg, res = trained
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "weights.pth").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path / "weights.pth")
    # a checkpoint from another model: same files, different architecture in config.yaml
    other = tmp_path / "other"
    other.mkdir()
    for f in ("model.safetensors", "classes.json", "metrics.json"):
        (other / f).write_bytes((res.fit.best_checkpoint / f).read_bytes())
    (other / "config.yaml").write_text(
        (res.fit.best_checkpoint / "config.yaml").read_text().replace("hidden_size: 16", "hidden_size: 24")
    )
    with pytest.raises(CheckpointError, match="tensor .* has shape"):
        load_checkpoint(other)
    # truncated weights
    trunc = tmp_path / "trunc"
    trunc.mkdir()
    for f in ("config.yaml", "classes.json"):
        (trunc / f).write_bytes((res.fit.best_checkpoint / f).read_bytes())
    (trunc / "model.safetensors").write_bytes((res.fit.best_checkpoint / "model.safetensors").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable weights"):
        load_checkpoint(trunc)


def test_out_dir_with_another_run_is_refused(trained):
    cfg, _ = trained
    before = (Path(cfg.train.out_dir) / "metrics.jsonl").read_bytes()
    with pytest.raises(VidrecError, match="already holds a training run"):
        train(cfg, progress=False)
    assert (Path(cfg.train.out_dir) / "metrics.jsonl").read_bytes() == before


def test_resume_without_state_is_a_clear_error(tiny_dataset, tmp_path):
    cfg = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / "new"))
    with pytest.raises(VidrecError, match="no resumable state"):
        train(cfg, resume=True, progress=False)


def test_checkpoint_paths_are_absolute_and_a_copy_never_writes_data(trained, tmp_path, monkeypatch):
    cfg, res = trained
    monkeypatch.chdir(tmp_path)
    rel = load_config(
        overrides=["data.root=rel/data", "data.generate=true", "model.weights=w.safetensors"],
        environ={},
        validate=False,
    )
    ck = load_checkpoint(res.fit.best_checkpoint)
    saved = save_checkpoint(tmp_path / "ck", model=ck.model, cfg=rel, classes=ck.classes)
    tree = __import__("yaml").safe_load((saved / "config.yaml").read_text())
    assert tree["data"]["root"] == str(tmp_path / "rel/data")
    assert tree["model"]["weights"] == str(tmp_path / "w.safetensors")
    assert tree["data"]["generate"] is False  # a checkpoint reads its data, it never writes a dataset
    # a copied checkpoint evaluated from another folder reads the data where it was
    copy = tmp_path / "elsewhere" / "ck"
    __import__("shutil").copytree(res.fit.best_checkpoint, copy)
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert evaluate_checkpoint(copy, progress=False).result.labels.numel() == 4
    # an older checkpoint of the synthetic set with a relative root: an error naming it, nothing generated
    text = (copy / "config.yaml").read_text()
    (copy / "config.yaml").write_text(
        text.replace("dataset: tinyclips", "dataset: synthetic")
        .replace(f"root: {cfg.data.root}", "root: runs/demo/data")
        .replace("generate: false", "")
    )
    with pytest.raises(VidrecError, match="runs/demo/data does not exist"):
        evaluate_checkpoint(copy, progress=False)
    assert not any(empty.iterdir())


def test_evaluate_multi_view(trained):
    _, res = trained
    out = evaluate_checkpoint(res.fit.best_checkpoint, views=3, progress=False)
    r = out.result
    assert r.num_clips == 3 * r.labels.numel() == 12
    assert 0.0 <= r.top1 <= 1.0 and r.top5 == 1.0  # two classes: top-5 is trivially right
    assert r.confusion.sum() == 4 and r.probs.shape == (4, 2)
    assert torch.allclose(r.probs.sum(1), torch.ones(4))


def test_predict(trained, tiny_dataset, tmp_path):
    _, res = trained
    pred = Predictor(res.fit.best_checkpoint, views=2)
    videos = sorted((tiny_dataset / "videos").glob("val_*.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    out = pred.predict([videos[0], bad], topk=5)
    assert len(out[0].topk) == 2 and abs(sum(p for _, p in out[0].topk) - 1) < 1e-5
    assert out[0].topk[0][1] >= out[0].topk[1][1]
    assert out[1].error and "bad.mp4" in out[1].error and out[1].topk == []


def test_failing_training_video_is_skipped_and_counted(tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    (root / "videos" / "train_0_1.mp4").write_bytes(b"garbage")
    cfg = load_config(overrides=tiny_overrides(root, tmp_path / "run", **{"train.epochs": 1, "data.max_skips": 0.1}))
    res = train(cfg, progress=False)
    assert res.fit.substituted == 1  # 1 of 12 training videos stood in for: within data.max_skips=0.1
    # the default data.max_skips=0.05 allows none of 12: the run stops with a clear error
    default = load_config(overrides=tiny_overrides(root, tmp_path / "run1", **{"train.epochs": 1}))
    with pytest.raises(VidrecError, match=r"stand-ins.*data.max_skips=0.05"):
        train(default, progress=False)
    strict = load_config(overrides=tiny_overrides(root, tmp_path / "run2", **{"train.epochs": 1, "data.strict": True}))
    with pytest.raises(VidrecError, match="train_0_1.mp4"):
        train(strict, progress=False)


def test_progressive_unfreezing_keeps_backbone_fixed_while_frozen(tiny_dataset, tmp_path):
    from vidrec.engine.run import model_from_config

    def run(epochs: int, name: str) -> torch.nn.Module:
        cfg = load_config(
            overrides=tiny_overrides(
                tiny_dataset, tmp_path / name, **{"train.epochs": epochs, "train.freeze_backbone_epochs": 1}
            )
        )
        train(cfg, progress=False)
        return load_checkpoint(tmp_path / name / "checkpoints/last").model

    cfg = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / "init"))
    torch.manual_seed(cfg.train.seed)  # train() seeds the same way before building the model
    init = dict(model_from_config(cfg, 2).named_parameters())
    after1, after2 = run(1, "one"), run(2, "two")

    def changed(m, prefix):
        return [n for n, p in m.named_parameters() if n.startswith(prefix) and not torch.equal(p, init[n])]

    assert changed(after1, "head"), "the head must train while the backbone is frozen"
    assert not changed(after1, "encoder"), "backbone parameters changed during the frozen epoch"
    assert changed(after2, "encoder"), "the backbone must train after it is unfrozen"


def test_early_stopping(tiny_dataset, tmp_path):
    cfg = load_config(
        overrides=tiny_overrides(
            tiny_dataset,
            tmp_path / "r",
            **{"train.epochs": 6, "train.lr": 1e-9, "train.early_stop_patience": 1, "train.monitor": "val_loss"},
        )
    )
    res = train(cfg, progress=False)
    losses = [h["val_loss"] for h in res.fit.history]
    # patience 1: training stops at the first epoch that does not improve on the best so far, not before
    assert res.fit.stopped_early and len(losses) < 6
    assert losses[-1] >= min(losses[:-1])
    assert all(losses[k] < min(losses[:k]) for k in range(1, len(losses) - 1))


def test_bf16_autocast_on_cpu(tiny_dataset, tmp_path):
    cfg = load_config(
        overrides=tiny_overrides(tiny_dataset, tmp_path / "r", **{"train.epochs": 1, "train.precision": "bf16"})
    )
    res = train(cfg, progress=False)
    assert res.fit.history[0]["train_loss"] == res.fit.history[0]["train_loss"]  # finite, not NaN


def test_auto_precision_keeps_3d_convolutions_in_fp32_on_cpu(monkeypatch):
    """bf16 autocast of Conv3d on the CPU gave NaN losses at random steps (benchmarks/accuracy.py runs)."""
    from vidrec.engine import accelerator  # precision is decided where the accelerator is built
    from vidrec.models.registry import create_model

    monkeypatch.setattr(accelerator, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cfg = load_config(environ={})
    r3d = create_model("r3d_18", num_classes=3)
    frame_cnn = create_model("frame_avg", num_classes=3, backbone="test_resnet")
    assert accelerator.resolve_precision(cfg, r3d) == "no"
    assert accelerator.resolve_precision(cfg, frame_cnn) == "bf16"
    assert accelerator.resolve_precision(cfg) == "bf16"
    forced = load_config(overrides=["train.precision=bf16"], environ={})
    assert accelerator.resolve_precision(forced, r3d) == "bf16"  # an explicit choice is kept


def test_channels_last_weights_for_2d_and_3d_convolutions():
    """train.channels_last: 3D convolutions get channels_last_3d, 2D ones (per-frame CNNs) channels_last;
    same outputs (``model.to(memory_format=channels_last_3d)`` fails on the 2D ones)."""
    from vidrec.models.base import to_channels_last
    from vidrec.models.registry import create_model

    torch.manual_seed(0)
    for name, kw in (("cnn_rnn", {"backbone": "resnet10t", "hidden_size": 8}), ("r3d_18", {})):
        model = create_model(name, num_classes=3, **kw).eval()
        x = torch.rand(1, 3, 4, 32, 32)  # (B, C, T, H, W)
        with torch.no_grad():
            before = model(x)
            to_channels_last(model)
            after = model(x)
        convs = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
        formats = [torch.channels_last if w.dim() == 4 else torch.channels_last_3d for w in convs]
        assert convs and all(w.is_contiguous(memory_format=f) for w, f in zip(convs, formats))
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
