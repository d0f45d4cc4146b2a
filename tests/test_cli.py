"""The `vidrec` command, end to end through its entry point."""

from __future__ import annotations

import csv
import json

import pytest

from tests.helpers import tiny_overrides
from vidrec.cli import app, main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def _all_command_paths() -> list[list[str]]:
    root = __import__("typer").main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        paths.append(prefix)
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, prefix + [name])

    walk(root, [])
    return paths


def test_every_verb_has_help(capsys):
    paths = _all_command_paths()
    names = {" ".join(p) for p in paths}
    for verb in ("demo", "synth", "train", "eval", "predict", "config show"):
        assert verb in names
    for p in paths:
        code, out, _ = run(capsys, *p, "--help")
        assert code == 0 and "Usage" in out, p


def test_config_show_and_errors(capsys, monkeypatch):
    monkeypatch.setenv("VIDREC__TRAIN__EPOCHS", "7")
    code, out, _ = run(capsys, "config", "show", "--set", "train.lr=0.5", "--json")
    cfg = json.loads(out)
    assert code == 0 and cfg["train"]["lr"] == 0.5 and cfg["train"]["epochs"] == 7
    code, _, err = run(capsys, "config", "show", "--set", "train.lrr=1")
    assert code == 2 and "train.lrr: unknown key" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def cli_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--quiet"]
    for s in tiny_overrides(tiny_dataset, out, **{"train.epochs": 1}):
        argv += ["--set", s]
    return out, argv


def test_train_eval_predict(capsys, cli_run, tiny_dataset, tmp_path):
    out, argv = cli_run
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert "best checkpoint" in stdout
    best = out / "checkpoints" / "best"

    code, stdout, err = run(capsys, "eval", "--checkpoint", str(best), "--quiet", "--json")
    assert code == 0, err
    metrics = json.loads(stdout)
    assert {"val_top1", "val_top5", "mean_class_acc", "per_class", "confusion", "most_confused"} <= metrics.keys()
    assert sum(map(sum, metrics["confusion"]["matrix"])) == metrics["num_videos"]
    for name in ("confusion.png", "confusion.csv", "report.md", "per_class.md", "training_curves.png"):
        assert (out / "eval-val" / name).stat().st_size > 100, name
    assert (out / "training_curves.png").stat().st_size > 10_000  # vidrec train writes its curves too
    code, stdout, err = run(capsys, "eval", "--checkpoint", str(best), "--quiet", "--out", str(tmp_path / "ev"))
    assert code == 0, err
    assert "most often mistaken for" in stdout and "report.md" in stdout

    videos = sorted((tiny_dataset / "videos").glob("val_*.mp4"))[:2]
    code, stdout, _ = run(capsys, "predict", "--checkpoint", str(best), *map(str, videos))
    assert code == 0 and "probability" in stdout and videos[0].name in stdout
    code, stdout, _ = run(capsys, "predict", "--checkpoint", str(best), str(videos[0]), "--json", "--topk", "1")
    data = json.loads(stdout)
    assert data[0]["id"] == videos[0].stem and len(data[0]["topk"]) == 1
    sub = tmp_path / "sub.csv"
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    code, stdout, err = run(
        capsys,
        "predict",
        "--checkpoint",
        str(best),
        str(videos[0]),
        str(bad),
        "--csv",
        str(sub),
        "--csv-format",
        "topk",
    )
    assert code == 1 and "broken.mp4" in stdout and "videos/s" in stdout
    rows = list(csv.reader(sub.open()))
    assert rows[0][:4] == ["id", "class", "top1", "prob1"] and rows[1][0] == videos[0].stem and rows[2][1] == ""

    # a second train into the same directory is refused, a resume of a finished run is a no-op
    code, _, err = run(capsys, *argv)
    assert code == 2 and "already holds a training run" in err
    code, _, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    # --resume with only --out continues with the run's own config.yaml (not the defaults)
    code, _, err = run(capsys, "train", "--quiet", "--out", str(out), "--resume")
    assert code == 0, err


def test_predict_with_missing_checkpoint(capsys, tmp_path):
    video = tmp_path / "x.mp4"
    video.write_bytes(b"")
    code, _, err = run(capsys, "predict", "--checkpoint", str(tmp_path / "nope"), str(video))
    assert code == 2 and "no such checkpoint directory" in err


def test_every_verb_takes_verbose(capsys, caplog):
    """``-v`` on any verb logs vidrec's DEBUG messages (``-vv`` every library's), for that call only."""
    import logging

    from vidrec.cli import command

    leaves = []

    def walk(cmd, prefix):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, prefix + [name])
        else:
            leaves.append((" ".join(prefix), {o for p in cmd.params for o in p.opts}))

    walk(command(), [])
    assert len(leaves) > 10
    assert all({"--verbose", "-v"} <= opts for _, opts in leaves), [v for v, o in leaves if "-v" not in o]

    def debug() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno == logging.DEBUG and r.name == "vidrec.config"]

    assert run(capsys, "config", "show", "--set", "train.lr=0.1")[0] == 0 and not debug()
    assert run(capsys, "config", "show", "-v", "--set", "train.lr=0.1")[0] == 0
    assert "train.lr=0.1" in debug()[0].getMessage()
    assert logging.getLogger("vidrec").level != logging.DEBUG  # restored after the call
    caplog.clear()
    assert run(capsys, "config", "show", "--verbose", "--set", "train.lr=0.1")[0] == 0 and debug()
