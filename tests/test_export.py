"""vidrec export --format onnx, and predict --backend onnx: metadata, a dynamic batch, the same
predictions as the PyTorch checkpoint, one-line refusals; parity (max |Δlogit| <= 1e-4) for cnn_rnn,
r3d_18 and lsvit_tiny (slow: the exporter traces each model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers import TINY_CLASSES, tiny_overrides
from tests.test_cli import run

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

torch.set_num_threads(1)
TINY_DATA = {"data.num_frames": 4, "data.image_size": 32, "data.decode_size": 32}
# the three families of the parity test, each as small as its options allow (the same operations as the full size)
PARITY = {
    "cnn_rnn": {"model.backbone": "resnet10t", "model.hidden_size": 16, "model.attention_dim": 16},
    "r3d_18": {},
    "lsvit_tiny": {"model.depth": 2, "model.image_size": 32},
}


def make_checkpoint(root: Path, data_root: Path, name: str, model: dict[str, object]) -> Path:
    """A checkpoint directory (as vidrec train writes it) of a randomly initialised ``name``."""
    from vidrec.config import load_config
    from vidrec.engine.checkpoint import save_checkpoint
    from vidrec.models.registry import create_model

    base = [s for s in tiny_overrides(data_root, root / "run") if not s.startswith("model.")]
    cfg = load_config(overrides=base + [f"model.name={name}"] + [f"{k}={v}" for k, v in {**TINY_DATA, **model}.items()])
    torch.manual_seed(0)
    net = create_model(name, num_classes=len(TINY_CLASSES), **cfg.model_kwargs).eval()
    return save_checkpoint(root / name, model=net, cfg=cfg, classes=list(TINY_CLASSES))


@pytest.fixture(scope="module")
def exported(tiny_dataset, tmp_path_factory):
    """A tiny CNN-RNN checkpoint and its ONNX export, written by the CLI: (checkpoint, onnx file, CLI output)."""
    root = tmp_path_factory.mktemp("export")
    ck = make_checkpoint(root, tiny_dataset, "cnn_rnn", PARITY["cnn_rnn"])
    out = root / "model.onnx"
    import contextlib
    import io

    from vidrec.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            main(["export", "--checkpoint", str(ck), "--format", "onnx", "--out", str(out), "--json"])
        except SystemExit as exc:
            assert not exc.code
    res = json.loads(printed.getvalue())  # nothing but the JSON (the exporter's chatter goes to the debug log)
    assert res["path"] == str(out) and res["opset"] == 18 and res["max_abs_diff"] <= 1e-4
    return ck, out


def test_export_writes_a_self_describing_onnx_file(exported):
    _ck, out = exported
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["vidrec.classes"]) == TINY_CLASSES and meta["vidrec.model"] == "cnn_rnn"
    spec = json.loads(meta["vidrec.input"])
    assert spec["shape"] == ["batch", 3, 4, 32, 32] and spec["layout"] == "BCTHW" and len(spec["mean"]) == 3
    assert yaml.safe_load(meta["vidrec.config"])["model"]["name"] == "cnn_rnn"
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    assert opsets["ai.onnx"] == int(meta["vidrec.opset"]) == 18  # the opset, recorded twice
    (video,) = proto.graph.input
    dims = video.type.tensor_type.shape.dim
    assert (
        dims[0].dim_param and not dims[0].dim_value and [d.dim_value for d in dims[1:]] == [3, 4, 32, 32]
    )  # batch is dynamic


def test_predict_with_the_onnx_backend_matches_pytorch(exported, tiny_dataset, capsys):
    ck, out = exported
    videos = [str(p) for p in sorted((tiny_dataset / "videos").glob("val_*.mp4"))[:2]]
    code, torch_out, _ = run(capsys, "predict", "--checkpoint", str(ck), "--views", "3", "--json", *videos)
    assert code == 0
    for argv in (
        ["--checkpoint", str(out)],
        ["--checkpoint", str(out), "--backend", "onnx"],
    ):  # auto finds the .onnx file
        code, onnx_out, err = run(capsys, "predict", *argv, "--views", "3", "--json", *videos)  # 3 views: a batch of 3
        assert code == 0, err
        for a, b in zip(json.loads(torch_out), json.loads(onnx_out)):
            assert a["class"] == b["class"] and a["path"] == b["path"]
            assert [t["class"] for t in a["topk"]] == [t["class"] for t in b["topk"]]
            assert [t["prob"] for t in a["topk"]] == pytest.approx([t["prob"] for t in b["topk"]], abs=1e-5)


def test_the_web_demo_classifies_with_the_onnx_file(exported, tiny_dataset):
    from vidrec.serve import classify, load_resources

    ck, out = exported
    video = sorted((tiny_dataset / "videos").glob("val_*.mp4"))[0]
    page = classify(load_resources(out, None, device="auto").predictor, video, topk=2)
    ref = classify(load_resources(ck, None, device="cpu").predictor, video, topk=2)
    assert [c for c, _ in page] == [c for c, _ in ref] and [p for _, p in page] == pytest.approx(
        [p for _, p in ref], abs=1e-5
    )


def test_export_and_backend_mistakes_are_one_line(exported, tiny_dataset, tmp_path, capsys):
    ck, out = exported
    video = str(sorted((tiny_dataset / "videos").glob("val_*.mp4"))[0])
    not_onnx = tmp_path / "fake.onnx"
    not_onnx.write_bytes(b"not a model")
    bare = tmp_path / "bare.onnx"  # an ONNX model that vidrec did not write
    proto = onnx.load(str(out))
    del proto.metadata_props[:]
    onnx.save(proto, str(bare))
    cases = [
        (
            ["export", "--checkpoint", str(ck), "--format", "tflite", "--out", str(tmp_path / "m.tflite")],
            "--format tflite: unknown",
        ),
        (
            ["export", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "m.onnx")],
            "no such checkpoint directory",
        ),
        (["export", "--checkpoint", str(ck), "--out", str(tmp_path)], "is a folder"),
        (["predict", "--checkpoint", str(ck), "--backend", "onnx", video], "export it first: vidrec export"),
        (["predict", "--checkpoint", str(out), "--backend", "torch", video], "run it with --backend onnx"),
        (["predict", "--checkpoint", str(out), "--backend", "tpu", video], "--backend tpu: unknown"),
        (["predict", "--checkpoint", str(out), "--device", "cuda", video], "the onnx backend runs on the CPU"),
        (["predict", "--checkpoint", str(not_onnx), video], "not a readable ONNX model"),
        (["predict", "--checkpoint", str(bare), video], "without vidrec's metadata"),
    ]
    for argv, expect in cases:
        code, _, err = run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and expect in lines[0] and "Traceback" not in err, (argv, err)


def test_a_model_the_exporter_cannot_trace_is_one_line(exported, tmp_path, monkeypatch, capsys):
    ck, _ = exported

    def refuse(*args, **kwargs):
        raise RuntimeError(
            "Failed to export the model with torch.export.\nTraceback (most recent call last):\n  File x\nmore"
        )

    monkeypatch.setattr(torch.onnx, "export", refuse)
    code, _, err = run(capsys, "export", "--checkpoint", str(ck), "--out", str(tmp_path / "m.onnx"))
    assert code == 2 and err.strip().splitlines() == [
        f"error: {ck}: model 'cnn_rnn' cannot be exported to ONNX (Failed to export the model with torch.export.); "
        "use the PyTorch checkpoint"
    ]
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_models_with_side_inputs_are_refused_in_one_line(tiny_dataset, tmp_path, capsys):
    """The multi-stream model takes hands and objects besides the video: refused before anything is built."""
    from safetensors.torch import save_file

    from vidrec.config import load_config

    base = [s for s in tiny_overrides(tiny_dataset, tmp_path / "run") if not s.startswith("model.")]
    cfg = load_config(overrides=base + ["model.name=multistream"])
    ck = tmp_path / "ms"
    ck.mkdir()
    (ck / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (ck / "classes.json").write_text(json.dumps(TINY_CLASSES))
    save_file({"unused": torch.zeros(1)}, str(ck / "model.safetensors"))
    code, _, err = run(capsys, "export", "--checkpoint", str(ck), "--out", str(tmp_path / "ms.onnx"))
    assert (
        code == 2
        and len(err.strip().splitlines()) == 1
        and "'multistream' also takes" in err
        and "besides the video" in err
    )
    assert not (tmp_path / "ms.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PARITY))
def test_onnx_parity_with_pytorch(name, tiny_dataset, tmp_path):
    """max |Δlogit| <= 1e-4 between onnxruntime and PyTorch at batch 1 and 3, for each family."""
    from vidrec.engine.export import export_onnx

    ck = make_checkpoint(tmp_path, tiny_dataset, name, PARITY[name])
    res = export_onnx(ck, tmp_path / f"{name}.onnx")
    assert res.max_abs_diff is not None and res.max_abs_diff <= 1e-4, res
    assert res.opset == 18 and res.input_shape[0] == "batch"
