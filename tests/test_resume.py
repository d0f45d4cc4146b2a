"""Exact resume without pickle: repeated kills, the log and TensorBoard cut back, epoch checkpoints,
hostile state files refused, and the checkpoint swap surviving a kill at every step."""

from __future__ import annotations

import builtins
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import tiny_overrides
from vidrec.config import load_config
from vidrec.engine.run import train
from vidrec.engine.trainer import StopTraining
from vidrec.errors import CheckpointError, VidrecError

# 12 train videos, batch 4: 3 micro-batches per epoch; accumulation 2: optimiser steps after micro-batches 2
# and 3; a mid-epoch state after micro-batch 2. Dropout makes the result depend on the restored RNG.
RUN = {
    "train.epochs": 2,
    "train.checkpoint_every_steps": 1,
    "train.accum_steps": 2,
    "model.dropout": 0.5,
    "train.log_every": 1,
    "train.keep_checkpoints": "all",
}
TIMING = {"clips_per_s", "train_clips_per_s", "train_seconds"}


def _records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "model.safetensors"))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows: every tag's (step, value) after purges."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = [t for t in acc.Tags()["scalars"] if t not in TIMING]
    return {tag: [(e.step, round(e.value, 5)) for e in acc.Scalars(tag)] for tag in tags}


def _kill_at(epoch: int, step: int):
    def cb(state):
        if state.epoch == epoch and state.step_in_epoch == step:
            raise StopTraining

    return cb


@pytest.fixture(scope="module")
def full_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "full"
    train(load_config(overrides=tiny_overrides(tiny_dataset, out, **RUN)), progress=False)
    return out


def test_repeated_kills_resume_to_the_same_weights_log_and_tensorboard(full_run, tiny_dataset, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="vidrec")  # as the CLI sets it: train.log gets what the console shows
    cut = tmp_path / "cut"
    cfg = load_config(overrides=tiny_overrides(tiny_dataset, cut, **RUN))
    # killed: after the mid-epoch state, after the epoch's last step (before its end state), in epoch 2
    for i, (epoch, step) in enumerate([(0, 2), (0, 3), (1, 1), (1, 3)]):
        with pytest.raises(StopTraining):
            train(cfg, resume=i > 0, progress=False, step_callback=_kill_at(epoch, step))
    train(cfg, resume=True, progress=False)

    assert _same_weights(full_run / "checkpoints/last", cut / "checkpoints/last")
    # every record once, and the resumed epochs' records cover the whole epoch (same loss/accuracy sums)
    assert _records(cut) == _records(full_run)
    assert [r["epoch"] for r in _records(cut) if r["type"] == "epoch"] == [1, 2]
    assert _scalars(cut) == _scalars(full_run)
    for e in (1, 2):  # train.keep_checkpoints=all: a resumable copy of every epoch end
        assert _same_weights(full_run / f"checkpoints/epoch_{e:04d}", cut / f"checkpoints/epoch_{e:04d}")
        assert (cut / f"checkpoints/epoch_{e:04d}/state/optimizer.safetensors").is_file()
    # nothing in state/ is a pickle
    assert {p.suffix for p in (cut / "checkpoints/last/state").iterdir()} == {".json", ".safetensors"}
    log = (cut / "train.log").read_text()
    assert log.count("resuming from") == 4 and "epoch 2:" in log


def test_resume_from_an_epoch_checkpoint(full_run, tmp_path, capsys):
    from tests.test_cli import run

    epoch1 = full_run / "checkpoints/epoch_0001"
    # the run trained past epoch 1: continuing in it would mix two histories
    code, _, err = run(capsys, "train", "--quiet", "--resume-from", str(epoch1))
    assert code == 2 and "trained past epoch_0001" in err and "--out NEW_DIR" in err
    branch = tmp_path / "branch"
    code, _, err = run(
        capsys,
        "train",
        "--quiet",
        "--resume-from",
        str(epoch1),
        "--out",
        str(branch),
        "--set",
        "train.keep_checkpoints=1",
    )
    assert code == 0, err
    assert _same_weights(full_run / "checkpoints/last", branch / "checkpoints/last")
    assert _records(branch) == _records(full_run)  # the log so far came along, then epoch 2 was added
    # keep_checkpoints=1: epoch 1 (linked in from the source run) gave way to epoch 2
    assert sorted(p.name for p in (branch / "checkpoints").glob("epoch_*")) == ["epoch_0002"]
    # the best checkpoint is the same as the uninterrupted run's (carried over if it was epoch 1's)
    assert _same_weights(full_run / "checkpoints/best", branch / "checkpoints/best")
    assert _same_weights(branch / "checkpoints/epoch_0002", branch / "checkpoints/last")


class _Payload:
    """Unpickling this calls open(marker, "w"): the file appears if the pickle is ever executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def _to_accelerate_format(ckpt: Path) -> None:
    """Rewrite a checkpoint's state/ the way vidrec wrote it before (accelerate's save_state pickles)."""
    from vidrec.engine.state import load_state_dict

    d = ckpt / "state"
    opt, sched, rng = (load_state_dict(d, n) for n in ("optimizer", "scheduler", "rng_0"))
    for p in list(d.iterdir()):
        if p.name != "trainer_state.json":
            p.unlink()
    shutil.copy(ckpt / "model.safetensors", d / "model.safetensors")
    torch.save(opt, d / "optimizer.bin")
    torch.save(sched, d / "custom_checkpoint_0.pkl")
    rng = {
        "step": 0,
        "random_state": rng["python"],
        "numpy_random_seed": rng["numpy"],
        "torch_manual_seed": rng["torch"],
    }
    torch.save(rng, d / "random_states_0.pkl")
    state = json.loads((d / "trainer_state.json").read_text())
    del state["format"], state["log_lines"]
    (d / "trainer_state.json").write_text(json.dumps(state))


def test_old_pickled_state_resumes_safely_and_hostile_pickles_are_refused(full_run, tiny_dataset, tmp_path):
    old = tmp_path / "old" / "checkpoints" / "epoch_0001"
    shutil.copytree(full_run / "checkpoints/epoch_0001", old)
    _to_accelerate_format(old)
    cfg = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / "again", **RUN))
    train(cfg, resume_from=old, progress=False)  # read with weights_only=True: still exact
    assert _same_weights(full_run / "checkpoints/last", tmp_path / "again/checkpoints/last")

    marker = tmp_path / "PWNED"
    torch.save({"x": _Payload(marker)}, tmp_path / "probe.pkl")
    torch.load(tmp_path / "probe.pkl", weights_only=False)  # the payload is real: unpickling runs it
    assert marker.exists()
    marker.unlink()
    for name in ("custom_checkpoint_0.pkl", "optimizer.bin", "random_states_0.pkl"):
        bad = tmp_path / f"bad-{name}" / "checkpoints" / "epoch_0001"
        shutil.copytree(old, bad)
        torch.save({"state": {}, "x": _Payload(marker)}, bad / "state" / name)
        cfg = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / f"out-{name}", **RUN))
        with pytest.raises(CheckpointError, match=rf"{name}: refused: .*never unpickles") as exc:
            train(cfg, resume_from=bad, progress=False)
        assert "\n" not in str(exc.value) and not marker.exists()

    # the current format reads only JSON and safetensors: a pickle dropped into state/ is never opened
    planted = tmp_path / "planted" / "checkpoints" / "epoch_0001"
    shutil.copytree(full_run / "checkpoints/epoch_0001", planted)
    for name in ("custom_checkpoint_0.pkl", "optimizer.bin", "scheduler.bin"):
        torch.save({"x": _Payload(marker)}, planted / "state" / name)
    cfg = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / "planted-out", **{**RUN, "train.epochs": 1}))
    train(cfg, resume_from=planted, progress=False)
    assert not marker.exists()


def test_corrupt_state_files_are_one_line_errors(full_run, tiny_dataset, tmp_path):
    cases = {
        "trainer_state.json": ("{not json", "trainer_state.json: unreadable"),
        "optimizer.json": ('{"tensors": true, "state": {"__tensor__": "nope"}}', "refers to tensor 'nope'"),
        "scheduler.json": ('{"tensors": false, "state": 3}', "scheduler.json: does not fit this run's scheduler"),
    }
    for name, (text, message) in cases.items():
        ck = tmp_path / name / "checkpoints" / "last"
        shutil.copytree(full_run / "checkpoints/epoch_0001", ck)
        (ck / "state" / name).write_text(text)
        cfg = load_config(overrides=tiny_overrides(tiny_dataset, tmp_path / name, **RUN))
        with pytest.raises(VidrecError, match=message) as exc:
            train(cfg, resume=True, progress=False)
        assert "\n" not in str(exc.value)


class _Killed(BaseException):
    pass


def test_checkpoint_swap_survives_a_kill_at_every_step(tmp_path, monkeypatch):
    """Kill the second save before each file-system step; the reader always finds one complete checkpoint."""
    from vidrec.engine.checkpoint import save_checkpoint
    from vidrec.engine.state import load_state_dict, save_state_dict
    from vidrec.utils.io import recover_dir

    cfg = load_config(environ={})
    model = torch.nn.Linear(3, 2)

    def save(target: Path, version: int) -> None:
        with torch.no_grad():
            model.weight.fill_(version)

        def state(tmp: Path) -> None:
            (tmp / "state").mkdir()
            save_state_dict(tmp / "state", "optimizer", {"version": version, "t": torch.full((4,), float(version))})
            (tmp / "state" / "trainer_state.json").write_text(json.dumps({"version": version}))

        save_checkpoint(target, model=model, cfg=cfg, classes=["a", "b"], metrics={"version": version}, state=state)

    ops = {
        "os.rename": (os, "rename"),
        "os.replace": (os, "replace"),
        "os.mkdir": (os, "mkdir"),
        "os.unlink": (os, "unlink"),
        "shutil.rmtree": (shutil, "rmtree"),
    }
    real = {name: getattr(mod, attr) for name, (mod, attr) in ops.items()}
    kill_at, seen = -1, []

    def wrap(name):
        def f(*a, **k):
            seen.append(name)
            if len(seen) - 1 == kill_at:
                raise _Killed(name)
            return real[name](*a, **k)

        return f

    base = tmp_path / "base"
    save(base / "last", 1)
    outcomes, k = set(), 0
    while True:
        run = tmp_path / f"k{k}"
        shutil.copytree(base, run)
        seen.clear()
        kill_at = k
        for name, (mod, attr) in ops.items():
            monkeypatch.setattr(mod, attr, wrap(name))
        try:
            save(run / "last", 2)
            finished = True
        except _Killed:
            finished = False
        monkeypatch.undo()
        assert recover_dir(run / "last") is not None, f"no checkpoint after a kill at step {k} ({seen[-1]})"
        ck = run / "last"
        v = json.loads((ck / "metrics.json").read_text())["version"]
        # weights, metrics and state always belong to the same save
        assert json.loads((ck / "state/trainer_state.json").read_text())["version"] == v
        assert load_state_dict(ck / "state", "optimizer")["version"] == v
        assert float(_weights(ck)["weight"][0, 0]) == v
        assert not (run / "last.old").exists()
        outcomes.add(v)
        if finished:
            break
        k += 1
    assert outcomes == {1, 2} and k > 5  # killed at every step until the save went through
