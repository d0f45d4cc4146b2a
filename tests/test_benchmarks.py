"""The benchmark scripts: every accuracy recipe is a valid config, the models table round-trips, and the
GPU benchmark runs its every code path on the CPU (``--device cpu --tiny``)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from vidrec.config import load_config
from vidrec.models.registry import get_model_entry

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    """A script from benchmarks/ as a module (not on sys.path: its names must not shadow packages)."""
    spec = importlib.util.spec_from_file_location(f"vidrec_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


accuracy = _load("accuracy")
models_bench = _load("models")
gpu_bench = _load("gpu")


@pytest.mark.parametrize("name", list(accuracy.FAMILIES))
def test_every_accuracy_recipe_is_a_valid_config_for_its_model(name: str, tmp_path: Path) -> None:
    config, extra = accuracy.FAMILIES[name]
    overrides = accuracy.common_overrides(tmp_path, epochs=8, seed=42, workers=2) + extra
    cfg = load_config(ROOT / "configs" / config, overrides=overrides, environ={})
    entry = get_model_entry(cfg.model.name)
    assert set(cfg.model_kwargs) <= set(entry.options())  # what `vidrec train` would build
    assert (cfg.data.num_frames, cfg.data.image_size, cfg.data.batch_size, cfg.train.epochs) == (8, 64, 16, 8)
    built = {k: cfg.model_kwargs[k] for k in ("num_frames", "image_size") if k in cfg.model_kwargs}
    assert built in ({}, {"num_frames": 8, "image_size": 64}), built  # a model built for a clip size: the budget's
    assert cfg.train.early_stop_patience is None and not cfg.model.pretrained
    if name.startswith("cnn_rnn_"):  # recorded under the registry name: the same builder with that backbone
        assert cfg.model_kwargs["backbone"] == "resnet" + name.rsplit("_r", 1)[1]
    else:
        assert cfg.model.name == name


def test_read_run_takes_the_best_validated_epoch(tmp_path: Path) -> None:
    lines = [
        {"type": "train", "epoch": 1, "step": 5, "train_loss": 2.0},
        {"type": "epoch", "epoch": 1, "val_top1": 0.3, "train_seconds": 10.0, "train_clips_per_s": 20.0},
        {"type": "epoch", "epoch": 2, "val_top1": 0.7, "train_seconds": 22.0, "train_clips_per_s": 18.0},
        {"type": "epoch", "epoch": 3, "val_top1": 0.6, "train_seconds": 33.0, "train_clips_per_s": 19.0},  # cumulative
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = accuracy.read_run(tmp_path)
    assert (r["top1"], r["best_epoch"], r["epochs"], r["train_seconds"]) == (0.7, 2, 3, 33.0)
    assert r["top1_per_epoch"] == [0.3, 0.7, 0.6]
    (tmp_path / "metrics.jsonl").write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(RuntimeError, match="no validated epoch"):
        accuracy.read_run(tmp_path)


def test_accuracy_script_rejects_unknown_models(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        accuracy.main(["--models", "resnet9000"])
    assert "no recipe for ['resnet9000']" in capsys.readouterr().err


def test_models_table_measures_and_rerenders_with_accuracy(tmp_path: Path) -> None:
    rows, doc = tmp_path / "rows.json", tmp_path / "models.md"
    doc.write_text(f"# Models\n\nintro\n\n{models_bench.MARK_START}\nold\n{models_bench.MARK_END}\n\nafter\n")
    argv = [
        "--quick",
        "--models",
        "frame_avg",
        "videomae_small",
        "--repeats",
        "1",
        "--train-steps",
        "1",
        "--json",
        str(rows),
        "--doc",
        str(doc),
    ]
    assert models_bench.main(argv) == 0
    saved = json.loads(rows.read_text())
    assert [r["model"] for r in saved["rows"]] == ["frame_avg", "videomae_small"]
    assert saved["footer"].startswith("Measured ") and "QUICK run" in saved["footer"]
    assert all(r["gflops"] > 0 and r["latency_ms"] > 0 and r["train_clips_s"] > 0 for r in saved["rows"])

    acc = tmp_path / "acc.json"
    acc.write_text(
        json.dumps({"frame_avg": {"top1": 0.6, "best_epoch": 3}, "videomae_small": {"top1": 0.875}})
    )  # details.json
    assert models_bench.main(["--rows", str(rows), "--accuracy", str(acc), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Models\n\nintro") and text.rstrip().endswith("after") and "\nold\n" not in text
    line = next(x for x in text.splitlines() if x.startswith("| videomae_small "))
    assert line.endswith("| 0.875 |")
    assert saved["footer"] in text  # the measurement line is kept, not re-dated


def test_models_table_retimes_only_the_models_named(tmp_path: Path) -> None:
    """--update FILE --models A: A is measured again, every other saved row is kept as it was."""
    rows, doc = tmp_path / "rows.json", tmp_path / "models.md"
    old = [
        models_bench.Row("frame_avg", 11, 4, 32, 1.0, 10.0, 5.0),
        models_bench.Row("r3d_18", 33, 4, 32, 3.0, 30.0, 1.0),
    ]
    rows.write_text(json.dumps({"footer": "Measured long ago.", "rows": [vars(r) for r in old]}))
    assert models_bench.main(["--quick", "--update", str(rows), "--models", "videomae_small", "--repeats", "1",
                              "--train-steps", "1", "--note", "shared machine", "--doc", str(doc)]) == 0  # fmt: skip
    saved = json.loads(rows.read_text())
    assert [r["model"] for r in saved["rows"]] == ["frame_avg", "r3d_18", "videomae_small"]  # baseline first
    assert saved["rows"][1] == vars(old[1])  # untouched
    assert saved["rows"][2]["note"] == "shared machine" and saved["rows"][2]["latency_ms"] > 0
    assert saved["footer"].startswith("Measured long ago. Updated rows: Measured ")
    assert "| videomae_small (shared machine) |" in doc.read_text()


@pytest.mark.slow
def test_gpu_benchmark_runs_every_section_tiny_on_the_cpu(tmp_path: Path) -> None:
    """benchmarks/gpu.py --device cpu --tiny: the plain and fast variants of the three models, training and
    inference, and the real DataLoader section on a synthetic dataset it writes (torch.compile's eager backend:
    the same dynamo path without a C++ toolchain)."""
    out = tmp_path / "gpu.json"
    res = gpu_bench.main(
        [
            "--device",
            "cpu",
            "--tiny",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--warmup",
            "1",
            "--loader-steps",
            "3",
            "--compile-backend",
            "eager",
            "--json",
            str(out),
        ]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(res))
    assert [(r["mode"], r["model"]) for r in res["throughput"]] == [
        (mode, m) for mode in ("train", "inference") for m in ("r3d_18", "cnn_rnn", "multistream")
    ]
    assert all(r["plain_clips_per_s"] > 0 and r["fast_clips_per_s"] > 0 and r["speedup"] > 0 for r in res["throughput"])
    loader = res["loader"]
    assert loader["videos"] == 20 and loader["steps"] == 3 and loader["loader_clips_per_s"] > 0
    assert 0 < loader["busy_fraction"] <= 1.0  # step time over the loop's wall time
    assert res["env"]["tiny"] and res["env"]["cpu"]


def test_gpu_benchmark_says_how_to_run_without_a_gpu(monkeypatch, capsys) -> None:
    monkeypatch.setattr(gpu_bench.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        gpu_bench.main([])
    assert exc.value.code == 2 and "--device cpu --tiny" in capsys.readouterr().err


def test_dataloading_times_vidrec_and_reports_the_floor_without_the_peers(tmp_path: Path) -> None:
    """benchmarks/dataloading.py's timing and --floor run on vidrec alone (the peers are the bench extra's)."""
    import numpy as np

    from tests.helpers import moving_square
    from vidrec.video.encode import write_video

    bench = _load("dataloading")
    rng = np.random.default_rng(0)
    files = []
    for kind in ("ucf101", "h264"):
        files.append(tmp_path / kind / "a.mp4")
        write_video(files[-1], moving_square(16, 48, 1, rng), fps=12)
    facts = bench.file_facts(files)
    assert facts[str(files[0])][0] == 16  # frames, as the reader counts them
    assert bench.time_loader(bench.LOADERS["vidrec"], files, facts, workers=0, epochs=1) > 0
    rows = bench.floor_report(files, ["vidrec"], reps=1)
    assert set(rows) == {"ucf101", "h264", "all"}
    for r in rows.values():
        assert 0 < r["floor_ms"] <= r["ms_per_clip"]["vidrec"]  # decode + convert + transform: part of the clip's cost
    assert rows["all"]["ms_per_clip"]["vidrec"] == pytest.approx(
        sum(rows[k]["ms_per_clip"]["vidrec"] for k in ("ucf101", "h264"))
    )


def test_every_benchmark_names_the_cpu_model_from_one_place() -> None:
    """Benchmarks record the CPU model (speeds differ 2x between machines) through vidrec.utils.device.cpu_model."""
    from vidrec.utils.device import cpu_model

    name = cpu_model()
    assert name and "\n" not in name and name != "model name"
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        text = script.read_text()
        assert "/proc/cpuinfo" not in text and "platform.processor()" not in text, script.name
