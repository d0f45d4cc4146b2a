"""Synthetic-dataset accuracy of every trainable model after one equal short budget.

Each model is trained from scratch through ``vidrec train`` (a subprocess, the command a user runs) with
its family's config from ``configs/`` (its learning rate, weight decay, warm-up, dropout) and one common
budget laid over it: the built-in synthetic dataset (10 classes, 400 train / 100 val videos, 5 pairs of
classes that differ only in the direction of time), 8 frames at 64² sampled by TSN segments, batch 16,
``--epochs`` epochs (default 8), no early stopping, seed 42, the trainer's default precision (bf16 on
CPUs that have it, fp32 for models with 3D convolutions). The score is the best validation top-1 over the epochs (the
checkpoint ``best`` keeps). The frame-averaging baseline is trained in the same run and every row gets a
ratio against it.

    .venv/bin/python benchmarks/accuracy.py                          # every model (~80 min on 2 cores)
    .venv/bin/python benchmarks/accuracy.py --models frame_avg r3d_18 --epochs 2
    nice -n 19 .venv/bin/python benchmarks/accuracy.py --models x3d_xs tsm_r18   # accuracy does not depend on speed
    .venv/bin/python benchmarks/models.py --rows runs/models_bench.json --accuracy runs/accuracy/accuracy.json

Results go to ``--out`` (default ``runs/accuracy``): ``accuracy.json`` ({model: top1}, the input of
``benchmarks/models.py --accuracy``), ``details.json`` (per model: top-1 per epoch, train seconds,
clips/s, the exact command) and one run directory per model. A finished model is skipped when the
script is run again (``--force`` retrains it), so an interrupted run continues where it stopped.

Not trained here: the Hugging Face hub models (``hf:<id>``; no hub offline; their architectures are
covered by ``videomae_small`` / ``timesformer_small`` / ``vivit_small``) and the CLIP retrieval models
(``clip_video*``; a different task, see docs/embeddings.md). ``multistream`` reads the same videos
through the Something-Else loader (its boxes) with the SSv2 train/validation lists as the split; its
hand stream needs MediaPipe (the ``[hands]`` extra) and is left out when MediaPipe is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vidrec.utils.device import cpu_model

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "frame_avg"

# model -> (config in configs/, extra overrides). Cheapest first, so a partial run is still useful.
FAMILIES: dict[str, tuple[str, list[str]]] = {
    "frame_avg": ("frame_avg.yaml", []),
    "cnn_rnn": ("cnn_rnn.yaml", []),
    "videomae_small": ("videomae_small.yaml", []),
    "timesformer_small": ("videomae_small.yaml", ["model.name=timesformer_small"]),
    "vivit_small": ("videomae_small.yaml", ["model.name=vivit_small"]),
    "lsvit_tiny": ("lsvit.yaml", []),
    # cnn_rnn_r34 / _r50 are cnn_rnn with that timm backbone (same builder, same defaults).
    "cnn_rnn_r34": ("cnn_rnn.yaml", ["model.backbone=resnet34"]),
    "cnn_rnn_r50": ("cnn_rnn.yaml", ["model.backbone=resnet50"]),
    "r3d_18": ("r3d_18.yaml", []),
    "r2plus1d_18": ("r3d_18.yaml", ["model.name=r2plus1d_18"]),
    "multistream": (
        "multistream_something_else.yaml",
        # The config's 3e-4 and batch 8 x 4 accumulation are for ImageNet-initialised backbones on SSv2;
        # from scratch on the common budget it takes the 3D ResNet recipe's learning rate.
        [
            "model.pretrained=false",
            "model.object_size=64",
            "train.accum_steps=1",
            "train.lr=1e-3",
            "train.warmup_epochs=1",
            "train.label_smoothing=0.05",
            "data.split_set=shuffled",
        ],
    ),
    "r3d_34": ("r3d_18.yaml", ["model.name=r3d_34"]),
    "r3d_50": ("r3d_18.yaml", ["model.name=r3d_50"]),
    "lsvit": ("lsvit.yaml", ["model.name=lsvit", "model.depth=12"]),
    # The models of issue 15, cheapest first. X3D-S and X3D-M are X3D-XS's network: at this budget's 8×64²
    # input they would train exactly as x3d_xs does, so x3d_xs stands for the three.
    "x3d_xs": ("x3d.yaml", []),
    "tsm_r18": ("tsm.yaml", []),
    "mc3_18": ("r3d_18.yaml", ["model.name=mc3_18"]),
    "s3d": ("s3d.yaml", []),
    "slowfast_r50": ("slowfast.yaml", []),
    "swin3d_t": ("swin3d.yaml", []),
    "tsm_r50": ("tsm.yaml", ["model.name=tsm_r50"]),
    "swin3d_s": ("swin3d.yaml", ["model.name=swin3d_s"]),
    "swin3d_b": ("swin3d.yaml", ["model.name=swin3d_b"]),
    # MViT's position tables are built for one clip size: the budget's 8×64² (the config's 16×224² is the weights').
    "mvit_v2_s": ("mvit.yaml", ["model.num_frames=8", "model.image_size=64"]),
    "mvit_v1_b": ("mvit.yaml", ["model.name=mvit_v1_b", "model.num_frames=8", "model.image_size=64"]),
}


def common_overrides(data: Path, epochs: int, seed: int, workers: int) -> list[str]:
    """The budget every model gets, laid over its family config."""
    return [
        f"data.root={data}",
        "data.num_frames=8",
        "data.sampler=segments",
        "data.image_size=64",
        "data.decode_size=72",
        "data.batch_size=16",
        f"data.num_workers={workers}",
        f"train.epochs={epochs}",
        "train.early_stop_patience=null",
        f"train.seed={seed}",
    ]


def ensure_dataset(data: Path) -> None:
    """The default synthetic dataset (as `vidrec demo` makes it) at ``data``: `vidrec synth` generates it when
    missing, finishes a partial one, returns at once for a complete one, and refuses one made with other options."""
    subprocess.run([sys.executable, "-m", "vidrec", "synth", "--out", str(data), "--quiet"], check=True, cwd=ROOT)


def multistream_setup(data: Path, work: Path, workers: int) -> list[str]:
    """Split files and object crops for ``multistream``; returns its extra overrides."""
    ann = data / "annotations"
    split = work / "splits" / "shuffled"
    split.mkdir(parents=True, exist_ok=True)
    # The SSv2 lists as the Something-Else "shuffled" split: the same train/val videos as every other model.
    for src, dst in (
        ("something-something-v2-train.json", "train.json"),
        ("something-something-v2-validation.json", "validation.json"),
    ):
        shutil.copyfile(ann / src, split / dst)
    shutil.copyfile(data / "dataset_splits" / "compositional" / "labels.json", split / "labels.json")
    streams = ["objects", "context"]
    if importlib.util.find_spec("mediapipe") is not None:
        streams.insert(0, "hands")
    extra = [
        f"data.splits_dir={work / 'splits'}",
        f"data.streams_dir={work / 'streams'}",
        f"model.streams=[{','.join(streams)}]",
    ]
    for kind in [s for s in streams if s != "context"]:
        config = ROOT / "configs" / FAMILIES["multistream"][0]
        cmd = [sys.executable, "-m", "vidrec", "prepare", kind, "-c", str(config),
               "--size", "64", "--workers", str(workers), "--quiet", "--set", f"data.root={data}"]  # fmt: skip
        cmd += [a for o in FAMILIES["multistream"][1] + extra for a in ("--set", o)]
        print(f"multistream: vidrec prepare {kind} ...", flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    return extra


def read_run(out: Path) -> dict[str, Any]:
    """Per-epoch validation top-1 and timing from a run's metrics.jsonl."""
    epochs = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"type": "epoch"' in line
    ]
    if not epochs or "val_top1" not in epochs[-1]:
        raise RuntimeError(f"{out}: no validated epoch in metrics.jsonl")
    top1 = [round(float(e["val_top1"]), 4) for e in epochs]
    return {
        "top1": max(top1),
        "best_epoch": top1.index(max(top1)) + 1,
        "top1_per_epoch": top1,
        "epochs": len(epochs),
        "train_seconds": round(float(epochs[-1].get("train_seconds", 0.0)), 1),  # cumulative in metrics.jsonl
        "train_clips_per_s": round(sum(float(e.get("train_clips_per_s", 0.0)) for e in epochs) / len(epochs), 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--models", nargs="*", default=list(FAMILIES), help=f"models to train (default: {' '.join(FAMILIES)})"
    )
    ap.add_argument("--epochs", type=int, default=8, help="epochs per model (default 8)")
    ap.add_argument(
        "--data", type=Path, default=ROOT / "runs" / "synthetic", help="synthetic dataset (generated if missing)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "accuracy", help="results and run directories")
    ap.add_argument("--workers", type=int, default=2, help="data-loading workers (default 2)")
    ap.add_argument("--seed", type=int, default=42, help="train.seed (default 42, the trainer's)")
    ap.add_argument("--force", action="store_true", help="retrain models that already have a result")
    args = ap.parse_args(argv)
    unknown = [m for m in args.models if m not in FAMILIES]
    if unknown:
        ap.error(f"no recipe for {unknown}; choose from {list(FAMILIES)}")
    if args.epochs < 1:
        ap.error("--epochs must be >= 1")

    data, out = args.data.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    details_path = out / "details.json"
    details: dict[str, Any] = json.loads(details_path.read_text()) if details_path.exists() else {}
    ensure_dataset(data)
    budget = common_overrides(data, args.epochs, args.seed, args.workers)
    failed: list[str] = []

    for name in args.models:
        if name in details and details[name].get("epochs") == args.epochs and not args.force:
            if (out / name / "metrics.jsonl").exists():
                details[name].update(read_run(out / name))  # re-read: the run directory is the record
            print(f"{name}: done before ({details[name]['top1']:.3f}); --force retrains it", flush=True)
            continue
        config, extra = FAMILIES[name]
        run_dir = out / name
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an interrupted or outdated run of this script's own
        start = time.perf_counter()
        try:
            if name == "multistream":
                extra = extra + multistream_setup(data, out / "multistream_data", args.workers)
            cmd = [
                sys.executable,
                "-m",
                "vidrec",
                "train",
                "--config",
                str(ROOT / "configs" / config),
                "--out",
                str(run_dir),
                "--quiet",
            ]
            cmd += [a for o in budget + extra for a in ("--set", o)]
            print(f"{name}: training {args.epochs} epochs ...", flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
            result = read_run(run_dir)
        except (subprocess.CalledProcessError, RuntimeError) as e:  # one failure does not stop the others
            failed.append(name)
            print(f"{name}: FAILED ({e}); continuing with the next model", flush=True)
            continue
        result["wall_seconds"] = round(time.perf_counter() - start, 1)
        result["command"] = " ".join(["vidrec", *cmd[3:]])
        details[name] = result
        details_path.write_text(json.dumps(details, indent=2) + "\n")
        (out / "accuracy.json").write_text(json.dumps({m: d["top1"] for m, d in details.items()}, indent=2) + "\n")
        print(
            f"{name}: val top-1 {result['top1']:.3f} (epoch {result['best_epoch']}), {result['wall_seconds']:.0f} s",
            flush=True,
        )

    details_path.write_text(json.dumps(details, indent=2) + "\n")
    base = details.get(BASELINE, {}).get("top1")
    print(f"\n{cpu_model()}, {args.epochs} epochs, 8x64², batch 16; ratio against {BASELINE}")
    print(f"{'model':20s} {'top-1':>6s} {'x base':>7s} {'best ep':>7s} {'train s':>8s}")
    for name, d in sorted(details.items(), key=lambda kv: -kv[1]["top1"]):
        ratio = f"{d['top1'] / base:.2f}" if base else "-"
        print(f"{name:20s} {d['top1']:6.3f} {ratio:>7s} {d['best_epoch']:7d} {d['train_seconds']:8.0f}")
    if failed:
        print(f"failed: {' '.join(failed)} (see the errors above)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
