"""Core verbs: demo, synth, train, eval, predict, config show."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from vidrec.cli.app import CONFIG_HELP, SET_HELP, app, config_app
from vidrec.errors import VidrecError
from vidrec.utils.device import DEVICE_HELP

log = logging.getLogger("vidrec")


def _echo(msg: str = "") -> None:
    """Print (rank 0 only under accelerate launch / torchrun: the others would print the same)."""
    if os.environ.get("RANK", "0") in ("0", ""):
        typer.echo(msg)


def _load_cfg(config: Optional[Path], sets: list[str], **base: Any) -> Any:
    from vidrec.config import load_config

    return load_config(config, overrides=sets or [], base=base or None)


# ---------------------------------------------------------------------------------------------- config
@config_app.command("show")
def config_show(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
    check: bool = typer.Option(
        False,
        "--check",
        help="Also check the model.* options against the chosen model (imports the model code: slower).",
    ),
) -> None:
    """Print the fully resolved configuration (defaults → file → VIDREC__* env → --set).

    Sections, types and data.* options are always checked; model.* options with --check (and by
    every verb that builds the model).
    """
    from vidrec.config import load_config

    cfg = load_config(config, overrides=set_ or [], check_model=check)
    _echo(json.dumps(cfg.to_dict(), indent=2) if as_json else cfg.to_yaml().rstrip())


# ---------------------------------------------------------------------------------------------- synth
@app.command()
def synth(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder to write the dataset into (created; refused if it holds other data)."
    ),
    seed: int = typer.Option(0, help="Random seed: the same seed and options write the same videos."),
    videos_per_class: Optional[int] = typer.Option(None, help="Training videos per class (default 40)."),
    val_per_class: Optional[int] = typer.Option(None, help="Validation videos per class (default 10)."),
    test_per_class: Optional[int] = typer.Option(None, help="Unlabelled test videos per class (default 2)."),
    size: Optional[int] = typer.Option(None, help="Frame width = height in pixels, even (default 96)."),
    num_frames: Optional[int] = typer.Option(None, help="Frames per video (default 28, at 12 fps)."),
    ext: Optional[str] = typer.Option(None, help="Container of the SSv2-layout videos: .webm (default) or .mp4."),
    clutter: Optional[float] = typer.Option(
        None, help="Share of videos with a cluttered background, 0..1 (default 0.25)."
    ),
    classes: Optional[list[str]] = typer.Option(
        None, "--class", help="Only these classes (templates or names; repeatable)."
    ),
    layouts: Optional[list[str]] = typer.Option(
        None, "--layout", help="Layouts to write: ssv2, something_else, ucf101, folder (repeatable; default all)."
    ),
    workers: int = typer.Option(2, help="Parallel encoding processes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write the built-in synthetic dataset: real videos whose classes differ only in temporal order.

    Alongside the videos: Something-Something-v2 annotation JSONs, Something-Else per-frame hand
    and object boxes, one caption per video, and the same data in UCF101 and folder layouts.
    Re-running with the same options is a no-op; other options into a non-empty folder are refused.
    """
    from vidrec.data.synthetic import SynthSpec, generate
    from vidrec.utils.io import check_writable

    check_writable(out, what="--out", folder=True)
    given = {
        "videos_per_class": videos_per_class,
        "val_per_class": val_per_class,
        "test_per_class": test_per_class,
        "size": size,
        "num_frames": num_frames,
        "ext": ext,
        "clutter": clutter,
        "classes": classes,
        "layouts": layouts,
    }
    kw: dict[str, Any] = {k: v for k, v in given.items() if v not in (None, [])}
    t0 = time.perf_counter()
    info = generate(out, SynthSpec.from_options(seed=seed, **kw), workers=workers, progress=not quiet)
    _echo(f"synthetic dataset in {out} ({time.perf_counter() - t0:.1f} s): {info}")
    for name, path in sorted(info.paths.items()):
        _echo(f"  {name:14s} {path}")


# ---------------------------------------------------------------------------------------------- train
@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (overrides train.out_dir)."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run in --out exactly where it stopped (with its own config.yaml unless --config is given).",
    ),
    resume_from: Optional[Path] = typer.Option(
        None,
        "--resume-from",
        help="Continue from this checkpoint's state, e.g. RUN/checkpoints/epoch_0007 (train.keep_checkpoints): "
        "in its own run, or in a new --out. Uses the checkpoint's config.yaml unless --config is given.",
    ),
    strict: bool = typer.Option(False, "--strict", help="Stop on the first unreadable video or dataset problem."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a model (any registered one: --set model.name=...) on a dataset from its official files.

    The run directory gets config.yaml, metrics.jsonl, tb/ (TensorBoard), train.log (the console
    log) and checkpoints/ (best, last and, with train.keep_checkpoints=N|all, epoch_NNNN).
    """
    from vidrec.engine.run import train as run_train

    if resume and resume_from is not None:
        raise VidrecError("give either --resume (the run in --out) or --resume-from CHECKPOINT, not both")
    sets = list(set_)
    if out is not None:
        sets.append(f"train.out_dir={out}")
    if strict:
        sets.append("data.strict=true")
    base = None
    if resume and config is None and out is not None and (out / "config.yaml").is_file():
        config = out / "config.yaml"  # continue the run with the configuration it was started with
    if resume_from is not None and config is None:
        from vidrec.engine.checkpoint import read_checkpoint_meta

        base = read_checkpoint_meta(resume_from)[0].to_dict()  # the configuration that checkpoint trained with
    cfg = _load_cfg(config, sets, **(base or {}))
    res = run_train(cfg, resume=resume, resume_from=resume_from, progress=not quiet)
    m = res.fit.best_metrics
    monitor = cfg.train.monitor  # val_top1, or val_t2v_r1 (text→video R@1) in a retrieval run
    _echo(
        f"best {monitor} {m.get(monitor, float('nan')):.3f} (epoch {m.get('epoch')}) "
        f"in {res.fit.train_seconds:.0f} s of training"
    )
    _echo(f"best checkpoint: {res.fit.best_checkpoint}")
    _echo(f"last checkpoint: {res.fit.last_checkpoint} (resume with --resume --out {res.out_dir})")
    _echo(
        f"logs: {res.out_dir / 'metrics.jsonl'}, curves: {res.out_dir / 'training_curves.png'}, "
        f"TensorBoard: tensorboard --logdir {res.out_dir / 'tb'}"
    )


# ---------------------------------------------------------------------------------------------- eval
@app.command("eval")
def eval_(
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-k", help="Checkpoint directory (e.g. RUN/checkpoints/best)."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="Evaluate on another config's data (default: the checkpoint's)."
    ),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    subset: Optional[str] = typer.Option(None, help="Subset to evaluate (default: eval.subset, i.e. val)."),
    views: Optional[int] = typer.Option(None, help="Clips per video, averaged (multi-view testing)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default: RUN/eval-<subset>)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first problem with the evaluated subset (its list or its videos)."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", "-b", min=1, help="Clips per forward pass (default eval.batch_size)."
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=0, help="Decoding processes (default data.num_workers; 0: in this process)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate a checkpoint: top-1, top-5, mean class accuracy, per-class table, confusion matrix PNG.

    Runs on the GPU with --device auto when there is one (CUDA, else MPS), with --workers
    processes decoding batches of --batch-size clips; retrieval checkpoints print R@1/5/10.
    """
    from vidrec.engine.checkpoint import read_checkpoint_meta
    from vidrec.engine.tasks import task_type
    from vidrec.utils.device import check_device_name
    from vidrec.utils.io import check_writable

    check_device_name(device)
    ck_cfg, _, _ = read_checkpoint_meta(checkpoint)
    cfg = None
    set_ = list(set_) + (["data.strict=true"] if strict else [])
    if config is not None or set_:
        from vidrec.config import load_config

        cfg = load_config(config, overrides=set_, base=None if config else ck_cfg.to_dict())
    eval_subset = subset or (cfg or ck_cfg).eval.subset
    out_dir = out or (checkpoint.resolve().parent.parent / f"eval-{eval_subset}")  # default: beside the run
    check_writable(out_dir, what="--out", folder=True)  # before the work, not after it
    report = task_type((cfg or ck_cfg).task).evaluate_checkpoint(
        checkpoint,
        out_dir,
        cfg=cfg,
        subset=subset,
        views=views,
        progress=not quiet,
        device=device,
        batch_size=batch_size,
        workers=workers,
    )
    _echo(json.dumps(report.metrics, indent=2) if as_json else report.text)


# ---------------------------------------------------------------------------------------------- predict
@app.command()
def predict(
    videos: Optional[list[Path]] = typer.Argument(
        None,
        help="Video files, frame folders (a folder of JPEG/PNG frames is one video), "
        "or folders searched recursively for both.",
    ),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-k", help="Checkpoint directory, or an .onnx file written by vidrec export."
    ),
    subset: Optional[str] = typer.Option(
        None,
        "--subset",
        help="Instead of VIDEOS: a subset of the checkpoint's dataset (its config, or --config/--set), e.g. "
        "test: SSv2's test.json ids, UCF101's testlist0N, a folder dataset's list.",
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="With --subset: read the data of this config instead."
    ),
    set_: list[str] = typer.Option([], "--set", "-s", help="With --subset: " + SET_HELP),
    topk: int = typer.Option(
        5, "--topk", min=1, help="Classes to show per video (and labels per SSv2 submission line)."
    ),
    views: Optional[int] = typer.Option(None, help="Clips per video, averaged."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", "-b", min=1, help="Clips per forward pass (default eval.batch_size)."
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=0, help="Decoding processes (default data.num_workers; 0: in this process)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write a submission file (see --csv-format)."),
    csv_format: str = typer.Option(
        "auto",
        "--csv-format",
        help="ids: 'id,class' (seed 001, UCF101/HMDB51); ssv2: 'id;label1;...;labelK' lines (top --topk) "
        "for the Something-Something-v2 test set; topk: id,class,top1,prob1,...; "
        "auto: ssv2 for an SSv2 checkpoint, else ids.",
    ),
    visualize: Optional[Path] = typer.Option(
        None, "--visualize", help="Write the (first) clip with its top-3 classes drawn on it, e.g. out.mp4."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first unreadable video."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="torch (a checkpoint directory), onnx (an exported .onnx file, onnxruntime on the CPU), "
        "or auto: onnx for a .onnx file.",
    ),
) -> None:
    """Predict the top-k classes of videos with a checkpoint directory or an exported .onnx file (nothing else needed).

    Videos are read in DataLoader workers and run in batches (on the GPU with --device auto when
    there is one); videos/s is reported at the end. An unreadable video is listed and the others
    go on (exit status 1).
    """
    from vidrec.engine.predict import Predictor
    from vidrec.report.submission import resolve_format, write_submission
    from vidrec.report.tables import text_table
    from vidrec.utils.device import check_device_name
    from vidrec.utils.io import check_writable
    from vidrec.video.files import expand_inputs

    check_device_name(device)
    if (subset is None) == (not videos):
        raise VidrecError(
            "give VIDEOS (files or folders) or --subset NAME (e.g. --subset test), not both and not neither"
        )
    if subset is None and (config is not None or set_):
        raise VidrecError("--config / --set choose the data of --subset; with VIDEOS the checkpoint needs nothing else")
    for path, what in ((csv_path, "--csv"), (visualize, "--visualize")):
        if path is not None:  # before the work, not after it
            check_writable(path, what=what, folder=False)
    paths = expand_inputs(videos) if videos else []
    predictor = Predictor(checkpoint, device=device, views=views, backend=backend)
    fmt = resolve_format(csv_format, predictor.ck.cfg.data.dataset)
    progress = not (quiet or as_json)
    if subset is not None:
        from vidrec.data.build import load_recordset

        cfg = predictor.ck.cfg
        if config is not None or set_:
            cfg = _load_cfg(config, list(set_), **({} if config else cfg.to_dict()))
        rs = load_recordset(cfg)
        records = rs.subset(subset)
        if not records:
            raise VidrecError(f"--subset {subset}: the subset is empty in {cfg.data.dataset} at {cfg.data.root}")
        run = predictor.predict_records(
            records, recordset=rs, topk=topk, strict=strict, batch_size=batch_size, workers=workers, progress=progress
        )
    else:
        records, rs = predictor.records_for(paths)
        run = predictor.predict_records(
            records, recordset=rs, topk=topk, strict=strict, batch_size=batch_size, workers=workers, progress=progress
        )
    preds = run.predictions
    if as_json:
        _echo(
            json.dumps(
                [
                    {
                        "path": str(p.path),
                        "id": p.id,
                        "class": p.label,
                        "error": p.error,
                        "topk": [{"class": c, "prob": q} for c, q in p.topk],
                    }
                    for p in preds
                ],
                indent=2,
            )
        )
    else:
        for p in preds:
            _echo(f"{p.path}:")
            if p.error:
                _echo(f"  error: {p.error}")
                continue
            _echo(text_table(["rank", "class", "probability"], [[i + 1, c, q] for i, (c, q) in enumerate(p.topk)]))
            _echo()
    if csv_path is not None:
        write_submission(csv_path, preds, fmt=fmt, topk=topk)
        if not as_json:
            _echo(f"wrote {csv_path} ({fmt} format, {len(preds)} videos)")
    if visualize is not None:
        ok = [p for p in preds if not p.error]
        if ok:
            from vidrec.report.visualize import visualize_prediction

            visualize_prediction(ok[0].path, ok[0], visualize, checkpoint=predictor.ck)
            if not as_json:
                _echo(f"wrote {visualize}")
    failed = [p for p in preds if p.error]
    if not as_json:
        _echo(
            f"{len(preds)} videos in {run.seconds:.1f} s ({run.videos_per_s:.2f} videos/s) on {predictor.device}"
            + (f"; {len(failed)} could not be read (listed above)" if failed else "")
        )
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------- demo
@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Where data, runs, report and summary.json go."),
    seed: int = typer.Option(0, help="Seed for the data and the training."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs (default: the demo preset's)."),
    baseline: bool = typer.Option(
        True, "--baseline/--no-baseline", help="Also train the frame-averaging baseline for contrast."
    ),
    baseline_epochs: int = typer.Option(
        6, "--baseline-epochs", help="The baseline's training epochs (at most the CNN-RNN's)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the runs of a previous demo in --out (the data is reused)."
    ),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """The whole loop on a laptop CPU, no dataset and no internet needed: synth → train → eval → predict.

    Writes the synthetic dataset, trains the CNN-RNN (ResNet-18 + BiLSTM + temporal attention),
    trains the frame-averaging baseline (fewer epochs), evaluates both, predicts on one clip, and writes
    OUT/summary.json and a report with plots (vidrec.engine.demo.run_demo).
    """
    from vidrec.engine.demo import run_demo

    res = run_demo(
        out,
        seed=seed,
        epochs=epochs,
        baseline=baseline,
        baseline_epochs=baseline_epochs,
        overwrite=overwrite,
        overrides=set_,
        progress=not quiet,
        say=_echo,
    )
    _echo("\n".join(res.report[2:]))
    _echo()
    _echo(f"summary:      {res.summary_path}")
    _echo(f"report:       {res.report_dir} (README.md, report.md, confusion.png, training_curves.png, per_class.png)")
    _echo(f"checkpoint:   {res.best_checkpoint}")
    _echo(f"predict:      vidrec predict --checkpoint {res.best_checkpoint} VIDEO.mp4")
    _echo(f"total time:   {res.summary['total_seconds']:.0f} s")
    sys.stdout.flush()
