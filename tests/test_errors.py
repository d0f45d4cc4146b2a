"""Every verb over a catalogue of bad inputs: exit status 2, one line ``error: ...`` naming the
problem, no traceback, nothing written where it should not be.

To add a verb or a bad input, append a :class:`Case` to ``CASES``: ``argv`` builds the command
line from the shared :class:`Env` (a checkpoint, a video, a dataset, hostile files...), ``expect``
is a piece of the error line, ``after`` checks what must not have happened.
``test_every_verb_is_in_the_catalogue`` fails until a new verb has at least one case.
"""

from __future__ import annotations

import builtins
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from tests.helpers import TINY_CLASSES, tiny_overrides
from tests.test_cli import _all_command_paths, run


class _Payload:
    """Unpickling this creates ``marker``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@dataclass
class Env:
    root: Path  # scratch folder
    data: Path  # the tiny dataset (tinyclips)
    ck: Path  # a valid checkpoint directory
    video: Path  # a readable video
    file: Path  # a regular file, in the way of folders
    marker: Path  # created if any hostile pickle is ever executed
    sets: list[str]  # --set options for a tiny training run

    def ck_variant(self, name: str, edit: Callable[[Path], None]) -> str:
        d = self.root / "ck-variants" / name
        if not d.exists():
            shutil.copytree(self.ck, d)
            edit(d)
        return str(d)

    def write(self, rel: str, content: str | bytes) -> str:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(p)


@pytest.fixture(scope="module")
def env(tiny_dataset, tmp_path_factory) -> Env:
    from vidrec.config import load_config
    from vidrec.engine.checkpoint import save_checkpoint
    from vidrec.models.registry import create_model

    root = tmp_path_factory.mktemp("errors")
    overrides = tiny_overrides(tiny_dataset, root / "run")
    cfg = load_config(overrides=overrides, environ={})
    model = create_model(cfg.model.name, num_classes=len(TINY_CLASSES), **cfg.model_kwargs)
    ck = save_checkpoint(root / "ck", model=model, cfg=cfg, classes=TINY_CLASSES)
    file = root / "a-file.txt"
    file.write_text("not a folder")
    sets = [a for s in overrides for a in ("--set", s) if not s.startswith("train.out_dir=")]
    return Env(
        root, tiny_dataset, ck, sorted((tiny_dataset / "videos").glob("val_*.mp4"))[0], file, root / "PWNED", sets
    )


def _hostile_legacy_run(env: Env) -> str:
    """A run whose checkpoints/last/state/ is in the old accelerate format with a hostile optimizer.bin."""
    run_dir = env.root / "hostile-run"
    if not run_dir.exists():
        last = run_dir / "checkpoints" / "last"
        shutil.copytree(env.ck, last)
        (last / "state").mkdir()
        shutil.copy(last / "model.safetensors", last / "state" / "model.safetensors")
        torch.save({"state": {}, "param_groups": _Payload(env.marker)}, last / "state" / "optimizer.bin")
        (last / "state" / "trainer_state.json").write_text(json.dumps({"epoch": 1, "global_step": 3}))
        shutil.copy(last / "config.yaml", run_dir / "config.yaml")
        text = (run_dir / "config.yaml").read_text().replace("_meta:", "_unused:")
        (run_dir / "config.yaml").write_text(text.split("_unused:")[0])
    return str(run_dir)


def _hostile_file(env: Env, name: str) -> str:
    path = env.root / "hostile" / name
    path.parent.mkdir(exist_ok=True)
    torch.save({"state_dict": _Payload(env.marker)}, path)
    return str(path)


def _hostile_clip_dir(env: Env) -> str:
    from tests.test_video_clip import write_tiny_clip

    d = env.root / "hostile-clip"
    if not d.exists():
        write_tiny_clip(d)
        (d / "model.safetensors").unlink()
        torch.save({"x": _Payload(env.marker)}, d / "pytorch_model.bin")
    return str(d)


def _no_marker(env: Env) -> None:
    assert not env.marker.exists(), "a hostile pickle was executed"


def _not_created(rel: str) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        assert not (env.root / rel).exists(), f"{rel} was written"

    return check


def _base_loop(env: Env) -> str:
    env.write("cfg/b.yaml", "_base_: a.yaml\ntrain:\n  lr: 0.1\n")
    return env.write("cfg/a.yaml", "_base_: b.yaml\n")


@dataclass
class Case:
    id: str
    argv: Callable[[Env], list[str]]
    expect: str  # a regular expression the error line must contain
    after: Callable[[Env], None] | None = None


CASES = [
    # config
    Case(
        "config-self-base",
        lambda e: ["config", "show", "--config", e.write("cfg/self.yaml", "_base_: self.yaml\n")],
        "_base_ includes itself",
    ),
    Case("config-base-loop", lambda e: ["config", "show", "--config", _base_loop(e)], "_base_ includes itself"),
    Case(
        "config-not-utf8",
        lambda e: ["config", "show", "--config", e.write("cfg/latin1.yaml", b"train:\n  lr: 0.1 # \xe9\n")],
        "not UTF-8",
    ),
    Case(
        "config-hidden-size-abc",
        lambda e: ["config", "show", "--check", "--set", "model.hidden_size=abc"],
        "model.hidden_size",
    ),
    Case(
        "config-lr-inf",
        lambda e: ["config", "show", "--set", "train.lr=.inf"],
        r"train\.lr: Input should be a finite number",
    ),
    # train
    Case(
        "train-lr-inf",
        lambda e: ["train", *e.sets, "--set", "train.lr=.inf", "--out", str(e.root / "t1")],
        "train.lr",
        _not_created("t1"),
    ),
    Case("train-out-is-a-file", lambda e: ["train", *e.sets, "--out", str(e.file)], "is a file"),
    Case("train-out-under-a-file", lambda e: ["train", *e.sets, "--out", str(e.file / "run")], "is a file"),
    Case(
        "train-mistyped-synthetic-root",
        lambda e: ["train", "--set", f"data.root={e.root / 'no/such/root'}", "--out", str(e.root / "t2")],
        "no/such/root does not exist",
        _not_created("no"),
    ),
    Case(
        "train-device-absent-gpu",
        lambda e: ["train", *e.sets, "--set", "train.device=cuda:7", "--out", str(e.root / "t3")],
        "train.device=cuda:7",
    ),
    Case("train-device-typo", lambda e: ["train", *e.sets, "--set", "train.device=gpu"], "train.device"),
    Case(
        "train-keep-checkpoints",
        lambda e: ["train", *e.sets, "--set", "train.keep_checkpoints=some"],
        "train.keep_checkpoints",
    ),
    Case(
        "train-resume-nothing",
        lambda e: ["train", *e.sets, "--resume", "--out", str(e.root / "empty-run")],
        "no resumable state",
    ),
    Case(
        "train-resume-from-missing",
        lambda e: ["train", "--resume-from", str(e.root / "nope")],
        "no such checkpoint directory",
    ),
    Case(
        "train-resume-from-weights-only",
        lambda e: ["train", "--resume-from", str(e.ck), "--out", str(e.root / "t4")],
        "no resumable state",
    ),
    Case(
        "train-hostile-weights",
        lambda e: [
            "train",
            *e.sets,
            "--set",
            f"model.weights={_hostile_file(e, 'evil.pth')}",
            "--out",
            str(e.root / "t5"),
        ],
        "evil.pth: refused",
        _no_marker,
    ),
    Case(
        "train-resume-hostile-optimizer-bin",
        lambda e: ["train", "--quiet", "--resume", "--out", _hostile_legacy_run(e)],
        "optimizer.bin: refused",
        _no_marker,
    ),
    # eval
    Case(
        "eval-missing-checkpoint",
        lambda e: ["eval", "--checkpoint", str(e.root / "nope")],
        "no such checkpoint directory",
    ),
    Case(
        "eval-out-under-a-file",
        lambda e: ["eval", "--checkpoint", str(e.ck), "--out", str(e.file / "report")],
        "is a file",
    ),
    Case(
        "eval-config-hidden-size-abc",
        lambda e: ["eval", "--checkpoint", e.ck_variant("abc", _hidden_size_abc)],
        "config.yaml: model.hidden_size",
    ),
    Case(
        "eval-device-absent-gpu", lambda e: ["eval", "--checkpoint", str(e.ck), "--device", "cuda:7"], "--device cuda:7"
    ),
    Case("eval-workers-negative", lambda e: ["eval", "--checkpoint", str(e.ck), "--workers", "-1"], "--workers"),
    Case(
        "config-cache-decoded", lambda e: ["config", "show", "--set", "data.cache_decoded=lots"], "data.cache_decoded"
    ),
    # predict
    Case(
        "predict-videos-and-subset",
        lambda e: ["predict", "--checkpoint", str(e.ck), str(e.video), "--subset", "val"],
        "not both",
    ),
    Case("predict-nothing", lambda e: ["predict", "--checkpoint", str(e.ck)], "give VIDEOS"),
    Case(
        "predict-empty-folder",
        lambda e: ["predict", "--checkpoint", str(e.ck), _empty_dir(e)],
        "no videos in this folder",
    ),
    Case(
        "predict-csv-format",
        lambda e: [
            "predict",
            "--checkpoint",
            str(e.ck),
            str(e.video),
            "--csv",
            str(e.root / "s.csv"),
            "--csv-format",
            "kaggle",
        ],
        "--csv-format kaggle",
        _not_created("s.csv"),
    ),
    Case(
        "predict-device-typo",
        lambda e: ["predict", "--checkpoint", str(e.ck), str(e.video), "--device", "gpu"],
        "unknown device",
    ),
    Case(
        "predict-batch-size-zero",
        lambda e: ["predict", "--checkpoint", str(e.ck), str(e.video), "--batch-size", "0"],
        "--batch-size",
    ),
    Case(
        "predict-topk-negative",
        lambda e: ["predict", "--checkpoint", str(e.ck), "--topk", "-1", str(e.video)],
        "--topk",
    ),
    Case(
        "predict-csv-under-a-file",
        lambda e: ["predict", "--checkpoint", str(e.ck), str(e.video), "--csv", str(e.file / "s.csv")],
        "is a file",
    ),
    Case(
        "predict-csv-is-a-folder",
        lambda e: ["predict", "--checkpoint", str(e.ck), str(e.video), "--csv", str(e.root)],
        "is a folder",
    ),
    Case(
        "predict-config-hidden-size-abc",
        lambda e: ["predict", "--checkpoint", e.ck_variant("abc", _hidden_size_abc), str(e.video)],
        "config.yaml: model.hidden_size",
    ),
    Case(
        "predict-classes-not-utf8",
        lambda e: ["predict", "--checkpoint", e.ck_variant("latin1", _classes(b'["\xe9t\xe9", "b"]')), str(e.video)],
        "classes.json: not UTF-8",
    ),
    Case(
        "predict-classes-ints",
        lambda e: ["predict", "--checkpoint", e.ck_variant("ints", _classes(b"[1, 2]")), str(e.video)],
        "list of class names",
    ),
    Case(
        "predict-checkpoint-is-a-file",
        lambda e: ["predict", "--checkpoint", str(e.file), str(e.video)],
        "is a directory",
    ),
    # data
    Case(
        "data-show-jsonl-not-utf8",
        lambda e: [
            "data",
            "show",
            "--set",
            "data.dataset=folder",
            "--set",
            f"data.root={e.data}",
            "--set",
            "data.list_file=" + e.write("lists/latin1.jsonl", b'{"path": "x.mp4", "label": "\xe9"}\n'),
        ],
        "not UTF-8",
    ),
    Case(
        "data-show-jsonl-list-label",
        lambda e: [
            "data",
            "show",
            "--strict",
            "--set",
            "data.dataset=folder",
            "--set",
            f"data.root={e.data}",
            "--set",
            "data.list_file=" + e.write("lists/list-label.jsonl", _jsonl(e, ["up"])),
        ],
        "the label must be a class name",
    ),
    Case(
        "data-show-jsonl-dict-label",
        lambda e: [
            "data",
            "show",
            "--strict",
            "--set",
            "data.dataset=folder",
            "--set",
            f"data.root={e.data}",
            "--set",
            "data.list_file=" + e.write("lists/dict-label.jsonl", _jsonl(e, {"a": 1})),
        ],
        "the label must be a class name",
    ),
    Case("data-show-no-root", lambda e: ["data", "show", "--set", "data.dataset=ucf101"], "data.root"),
    Case(
        "data-download-unknown",
        lambda e: ["data", "download", "kinetics", "--to", str(e.root / "dl")],
        "no download for",
        _not_created("dl"),
    ),
    Case("data-download-to-a-file", lambda e: ["data", "download", "ucf101", "--to", str(e.file)], "is a file"),
    Case(
        "data-download-unpacker",
        lambda e: ["data", "download", "hmdb51", "--to", str(e.root / "dl2"), "--unpacker", "7z"],
        "--unpacker '7z'",
        _not_created("dl2"),
    ),
    # synth, demo
    Case("synth-out-is-a-file", lambda e: ["synth", "--out", str(e.file)], "is a file"),
    Case("synth-out-under-a-file", lambda e: ["synth", "--out", str(e.file / "data")], "is a file"),
    Case("demo-out-under-a-file", lambda e: ["demo", "--out", str(e.file / "demo")], "is a file"),
    # prepare
    Case(
        "prepare-scan-missing-root",
        lambda e: ["prepare", "scan", str(e.root / "nope"), "--out", str(e.root / "s.parquet")],
        "nope",
    ),
    Case(
        "prepare-frames-missing-root",
        lambda e: ["prepare", "frames", str(e.root / "nope"), "--out", str(e.root / "frames")],
        "nope",
    ),
    Case(
        "prepare-transcode-missing-root",
        lambda e: ["prepare", "transcode", str(e.root / "nope"), "--out", str(e.root / "tc")],
        "nope",
    ),
    Case(
        "prepare-transcode-out-inside",
        lambda e: ["prepare", "transcode", str(e.root), "--out", str(e.root / "tc")],
        "inside the source folder",
    ),
    Case(
        "prepare-something-else-missing",
        lambda e: ["prepare", "something-else", str(e.root / "nope"), "--out", str(e.root / "b.sqlite")],
        "nope",
    ),
    Case(
        "prepare-hands-no-root", lambda e: ["prepare", "hands", "--set", "data.dataset=ucf101"], "data.root|MediaPipe"
    ),
    Case("prepare-objects-no-root", lambda e: ["prepare", "objects", "--set", "data.dataset=ucf101"], "data.root"),
    # embed, search, serve, models
    Case(
        "embed-hostile-clip-bin",
        lambda e: [
            "embed",
            str(e.video),
            "--out",
            str(e.root / "store"),
            "--model",
            _hostile_clip_dir(e),
            "--workers",
            "0",
        ],
        "pytorch_model.bin: refused",
        _no_marker,
    ),
    Case("embed-missing-videos", lambda e: ["embed", str(e.root / "nope"), "--out", str(e.root / "store2")], "nope"),
    Case("search-missing-store", lambda e: ["search", str(e.root / "nope"), "a query"], "nope"),
    Case(
        "search-pairs-no-header",
        lambda e: ["search", str(e.root / "nope"), "--pairs", e.write("pairs/p.csv", "a.mp4,a query\n")],
        "must name the columns video,query",
    ),
    Case(
        "search-pairs-and-query",
        lambda e: ["search", str(e.root / "nope"), "a query", "--pairs", e.write("pairs/q.csv", "video,query\n")],
        "names the videos and queries itself",
    ),
    Case(
        "search-window-without-video",
        lambda e: ["search", str(e.root / "nope"), "a query", "--window-seconds", "2"],
        "--window-seconds / --stride-seconds set the moments of one video",
    ),
    Case("moments-no-query", lambda e: ["moments", str(e.video)], "give a VIDEO and a QUERY"),
    Case(
        "moments-missing-video",
        lambda e: ["moments", str(e.root / "nope.mp4"), "a query"],
        "nope.mp4: no such video file",
    ),
    Case(
        "moments-device-typo",
        lambda e: ["moments", str(e.video), "a query", "--device", "gpu"],
        "--device gpu: unknown device",
    ),
    Case(
        "embed-config-unknown-option",
        lambda e: [
            "embed",
            str(e.video),
            "--out",
            str(e.root / "store3"),
            "--config",
            e.write("cfg/embed.yaml", "merg: 2-2\n"),
        ],
        r"merg: unknown option",
        _not_created("store3"),
    ),
    Case(
        "embed-merge-keep-out-of-range",
        lambda e: ["embed", str(e.video), "--out", str(e.root / "store4"), "--merge-keep", "1.5"],
        r"merge.keep",
        _not_created("store4"),
    ),
    Case(
        "embed-summary-is-a-folder",
        lambda e: ["embed", str(e.video), "--out", str(e.root / "store5"), "--summary", str(e.root)],
        "--summary .*is a folder",
        _not_created("store5"),
    ),
    Case("serve-nothing", lambda e: ["serve"], "--checkpoint"),
    Case("models-zero-classes", lambda e: ["models", "--num-classes", "0"], "--num-classes"),
    # export (ONNX), predict --backend onnx
    Case(
        "export-unknown-format",
        lambda e: ["export", "--checkpoint", str(e.ck), "--format", "tflite", "--out", str(e.root / "m.tflite")],
        "--format tflite",
    ),
    Case(
        "export-out-under-a-file",
        lambda e: ["export", "--checkpoint", str(e.ck), "--out", str(e.file / "m.onnx")],
        "is a file",
    ),
    Case(
        "predict-onnx-backend-on-a-directory",
        lambda e: ["predict", "--checkpoint", str(e.ck), "--backend", "onnx", str(e.video)],
        "vidrec export --checkpoint",
    ),
]


def _empty_dir(env: Env) -> str:
    (env.root / "empty-dir").mkdir(exist_ok=True)
    return str(env.root / "empty-dir")


def _hidden_size_abc(d: Path) -> None:
    (d / "config.yaml").write_text((d / "config.yaml").read_text().replace("hidden_size: 16", "hidden_size: abc"))


def _classes(content: bytes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / "classes.json").write_bytes(content)

    return edit


def _jsonl(env: Env, label: object) -> str:
    return json.dumps({"path": str(env.video), "label": label}) + "\n"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_clear_line(case: Case, env: Env, capsys) -> None:
    argv = case.argv(env)
    capsys.readouterr()  # what making the inputs printed
    code, out, err = run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in out + err, err
    assert code == 2, f"exit status {code}; stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(case.expect, lines[0]), lines[0]
    if case.after is not None:
        case.after(env)


def test_every_verb_is_in_the_catalogue(env: Env) -> None:
    paths = [p for p in _all_command_paths() if p]
    groups = {tuple(p[:-1]) for p in paths}
    argvs = [case.argv(env) for case in CASES]
    missing = [" ".join(p) for p in paths if tuple(p) not in groups and not any(a[: len(p)] == p for a in argvs)]
    assert not missing, f"add bad-input cases for: {missing}"


def test_eval_strict_stops_only_on_the_evaluated_subset(env: Env, capsys) -> None:
    """A broken line in the train list does not stop an evaluation of val; one in the val list does."""
    from vidrec.engine.checkpoint import load_checkpoint, save_checkpoint

    root = env.root / "ucf"
    names, train, test = ["Left", "Right"], [], []
    for v in sorted((env.data / "videos").glob("*.mp4")):  # train_0_1.mp4 -> UCF-101/Left/v_Left_g09_c01.avi
        subset, label, k = v.stem.split("_")
        cls = names[int(label)]
        group = 8 + int(k) if subset == "train" else 1 + int(k)  # split 1 tests on groups 1-7
        rel = f"{cls}/v_{cls}_g{group:02d}_c01.avi"  # an mp4 inside: PyAV probes the container, not the name
        (root / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(v, root / "UCF-101" / rel)
        (train if subset == "train" else test).append(rel)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 Left\n2 Right\n")
    (lists / "trainlist01.txt").write_text(
        "".join(f"{t} {names.index(t.split('/')[0]) + 1}\n" for t in train) + "Left/v_Left_g25_c09.avi 1\n"
    )  # names a missing video
    (lists / "testlist01.txt").write_text("".join(f"{t}\n" for t in test))
    ck = load_checkpoint(env.ck)
    ucf_ck = save_checkpoint(env.root / "ucf-ck", model=ck.model, cfg=ck.cfg, classes=names)
    argv = [
        "eval",
        "--checkpoint",
        str(ucf_ck),
        "--strict",
        "--quiet",
        "--json",
        "--set",
        "data.dataset=ucf101",
        "--set",
        f"data.root={root}",
        "--out",
        str(env.root / "ucf-eval"),
    ]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert json.loads(out)["num_videos"] == len(test) == 4
    (lists / "testlist01.txt").write_text("".join(f"{t}\n" for t in test) + "Right/v_Right_g02_c07.avi\n")
    code, out, err = run(capsys, *argv)
    assert code == 2 and "testlist01.txt: line 5" in err and "v_Right_g02_c07.avi" in err, err
