"""A verb that builds no model imports no torch: `vidrec config show` starts in well under a second.

Each light verb runs in a fresh interpreter on real (tiny) inputs, and the test reads which heavy
modules ended up in ``sys.modules``. Every verb of the CLI must be listed below as light or heavy,
so a new verb joins this check the day it is added.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_datasets import make_hmdb51, make_kinetics, make_something_else, make_ucf101, tiny_video

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "transformers", "timm", "accelerate", "gradio")

# Verbs that build (or load) a model, train, or serve: they may import torch.
HEAVY_VERBS = {
    "demo",
    "train",
    "eval",
    "predict",
    "embed",
    "moments",
    "models",
    "serve",
    "export",
    "prepare hands",
    "prepare objects",
}
# Verbs that build no model: each runs below and must import none of HEAVY. (`search` loads the
# store's encoder, and torch with it, only once the store and the query have been checked.)
LIGHT_VERBS = {
    "config show",
    "data show",
    "data download",
    "prepare scan",
    "prepare frames",
    "prepare transcode",
    "prepare something-else",
    "synth",
    "search",
}

_RUN = """
import json, os, sys
from vidrec.cli import main
codes = []
for argv in json.loads(os.environ["VIDREC_TEST_ARGV"]):
    try:
        main(argv)
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1))
with open(os.environ["VIDREC_TEST_MODULES"], "w") as f:
    heavy = sorted(m for m in os.environ["VIDREC_TEST_WATCH"].split(",") if m in sys.modules)
    json.dump({"codes": codes, "heavy": heavy}, f)
"""


def run_cli(*commands: list[str], cwd: Path, watch: tuple[str, ...] = HEAVY) -> dict:
    """Run ``vidrec ARGV`` for each command, in turn, in one fresh interpreter.

    Returns the exit codes and which ``watch`` modules got loaded."""
    out = cwd / f"modules-{len(list(cwd.glob('modules-*')))}.json"
    env = {
        **os.environ,
        "VIDREC_TEST_MODULES": str(out),
        "VIDREC_TEST_ARGV": json.dumps(commands),
        "VIDREC_TEST_WATCH": ",".join(watch),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    res = subprocess.run(
        [sys.executable, "-c", _RUN], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert out.is_file(), res.stderr[-2000:]
    result = json.loads(out.read_text())
    result["stdout"], result["stderr"] = res.stdout, res.stderr
    return result


def _command_paths() -> list[str]:
    import typer

    from vidrec.cli import app

    paths: list[str] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            paths.append(" ".join(prefix))
            return
        for name, sub in subs.items():
            walk(sub, prefix + [name])

    walk(typer.main.get_command(app), [])
    return paths


def test_every_verb_is_listed_as_light_or_heavy() -> None:
    verbs = set(_command_paths())
    assert not LIGHT_VERBS & HEAVY_VERBS
    unlisted = verbs - LIGHT_VERBS - HEAVY_VERBS
    assert not unlisted, f"new verb(s) {sorted(unlisted)}: add them to LIGHT_VERBS (and a run below) or HEAVY_VERBS"
    assert not (LIGHT_VERBS | HEAVY_VERBS) - verbs, "a listed verb no longer exists"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("light")
    sse = make_something_else(base / "ssv2")
    for c in range(2):
        for g in range(1, 3):
            tiny_video(base / "folder" / f"class_{c}" / f"clip_g{g:02d}_c01.mp4", seed=c)
    (base / "folder" / "list.txt").write_text("class_0/clip_g01_c01.mp4 0\nclass_1/clip_g01_c01.mp4 1\n")  # MMAction2's
    return {
        "ucf101": make_ucf101(base / "ucf101"),
        "hmdb51": make_hmdb51(base / "hmdb51"),
        "ssv2": sse["root"],
        "something_else": sse["root"],
        "splits": sse["splits"],
        "parts": sse["parts"],
        "folder": base / "folder",
        "kinetics": make_kinetics(base / "kinetics"),
        "list": base / "folder",
    }


# `data show` on every loader (extra settings per dataset)
DATA_SHOW = {
    "ucf101": [],
    "hmdb51": [],
    "ssv2": [],
    "something_else": ["data.splits_dir={splits}", "data.boxes={parts}"],
    "folder": [],
    "kinetics": [],
    "list": ["data.train_list=list.txt"],
}


def _sets(*items: str) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def light_runs(data: dict[str, Path], out: Path) -> dict[str, tuple[list[str], int]]:
    """Every light verb on real inputs: name -> (argv, expected exit status)."""
    runs: dict[str, tuple[list[str], int]] = {"--help": (["--help"], 0)}
    runs.update({f"{p} --help": ([*p.split(), "--help"], 0) for p in sorted(_command_paths())})
    runs["config show"] = (["config", "show", *_sets("data.dataset=ucf101", "data.classes=[a, b]")], 0)
    for name, extra in DATA_SHOW.items():
        sets = [f"data.dataset={name}", f"data.root={data[name]}", *(s.format(**data) for s in extra)]
        runs[f"data show {name}"] = (["data", "show", *_sets(*sets)], 0)
    runs["prepare scan"] = (["prepare", "scan", str(data["folder"]), "--out", str(out / "scan.parquet"), "-q"], 0)
    runs["prepare frames"] = (["prepare", "frames", str(data["folder"]), "--out", str(out / "frames"), "--quiet"], 0)
    runs["prepare transcode"] = (
        [
            "prepare",
            "transcode",
            str(data["folder"]),
            "--out",
            str(out / "transcoded"),
            "-q",
            "--short-side",
            "32",
            "-j",
            "1",
        ],
        0,
    )
    runs["prepare something-else"] = (
        ["prepare", "something-else", str(data["parts"]), "--out", str(out / "b.sqlite"), "-q"],
        0,
    )
    runs["synth"] = (
        [
            "synth",
            "--out",
            str(out / "synth"),
            "--videos-per-class",
            "1",
            "--val-per-class",
            "0",
            "--test-per-class",
            "0",
            "--size",
            "48",
            "--num-frames",
            "12",
            "--layout",
            "folder",
            "--class",
            "Putting [something] into [something]",
            "--workers",
            "1",
            "-q",
        ],
        0,
    )
    # a store that is not there: the verb stops before it would load the store's encoder
    runs["search"] = (["search", str(out / "no-store"), "a person pours water"], 2)
    # a mirror that refuses the connection: the whole fetch path runs (tests/test_download.py serves real archives)
    runs["data download"] = (
        ["data", "download", "ucf101", "--to", str(out / "dl"), "--mirror", "http://127.0.0.1:9", "-q"],
        2,
    )
    return runs


def test_light_verbs_import_nothing_heavy(data: dict[str, Path], tmp_path: Path) -> None:
    runs = light_runs(data, tmp_path)
    assert {" ".join(k.split()[:2]) for k in runs if not k.endswith("--help")} == LIGHT_VERBS  # each light verb runs
    # One interpreter runs them all: a heavy module, once imported, stays in sys.modules.
    res = run_cli(*[argv for argv, _ in runs.values()], cwd=tmp_path)
    assert res["codes"] == [want for _, want in runs.values()], res["stderr"][-3000:]
    if res["heavy"]:  # name the culprits
        culprits = {name: r["heavy"] for name, (argv, _) in runs.items() if (r := run_cli(argv, cwd=tmp_path))["heavy"]}
        pytest.fail(f"verbs that build no model imported {res['heavy']}: {culprits}")
    assert (tmp_path / "scan.parquet").is_file() and (tmp_path / "b.sqlite").is_file()
    assert len(list((tmp_path / "frames").rglob("*.jpg"))) == 4 * 12  # 4 clips of 12 frames
    assert len([p for p in (tmp_path / "transcoded").rglob("*") if p.suffix == ".mp4"]) == 4
    assert list((tmp_path / "synth").rglob("*.mp4"))


def test_the_check_sees_what_a_verb_imports(data: dict[str, Path], tmp_path: Path) -> None:
    """The harness can fail: probing videos imports PyAV, and the run reports it (torch would show the same way)."""
    res = run_cli(
        ["prepare", "scan", str(data["folder"]), "--out", str(tmp_path / "s.jsonl"), "-q"],
        cwd=tmp_path,
        watch=("av", "torch"),
    )
    assert res["codes"] == [0] and res["heavy"] == ["av"]


def test_each_built_in_loader_lives_where_the_table_says() -> None:
    """`data.dataset=NAME` imports only NAME's module: the table must point at the module that registers it."""
    import importlib

    from vidrec.data import records

    for name, module in records._LOADER_MODULES.items():
        importlib.import_module(module)
        assert records._LOADERS[name].__module__ == module, name


def test_config_show_checks_model_options_with_check(capsys: pytest.CaptureFixture[str]) -> None:
    from vidrec.cli import main

    def run(*argv: str) -> int:
        try:
            main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    assert run("config", "show", "--set", "model.hiden_size=3") == 0  # model options are the model's to check
    assert run("config", "show", "--check", "--set", "model.hiden_size=3") == 2
    assert "model.hiden_size: not an option of model 'cnn_rnn'" in capsys.readouterr().err
    assert (
        run("config", "show", "--set", "data.dataset=ucf101", "--set", "data.group_regex=x") == 2
    )  # data options always
    assert "data.group_regex: unknown key for dataset 'ucf101'" in capsys.readouterr().err
    assert run("config", "show", "--set", "data.dataset=nope") == 2
    assert "unknown dataset 'nope'; known: folder, hmdb51" in capsys.readouterr().err


def test_data_show_help_lists_every_dataset_and_its_options(tmp_path: Path) -> None:
    """The options in `vidrec data show --help` (read from the source, nothing imported) are the loaders' own."""
    import inspect

    from vidrec.data.records import get_dataset_loader, list_datasets
    from vidrec.data.show import datasets_help

    res = run_cli(["data", "show", "--help"], cwd=tmp_path)
    assert res["codes"] == [0] and res["heavy"] == []
    text = " ".join(res["stdout"].replace("│", " ").split())
    assert "kinetics: annotations=None, label_map=None, classes=None, frames_root=None, index=None" in text
    lines = {p.split(":")[0]: p.split(": ", 1)[1] for p in datasets_help().split("\n\n")[1:-1]}
    for name in list_datasets():
        if name not in lines:  # registered by a test, not built in
            continue
        params = inspect.signature(get_dataset_loader(name)).parameters
        shown = [opt.split("=")[0] for opt in lines[name].split(", ")] if lines[name] != "no options" else []
        assert shown == [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n not in ("split", "strict")]
