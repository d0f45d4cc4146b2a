"""Several processes for real: 2 CPU processes (gloo) through ``accelerate launch`` and ``torchrun``.

One uninterrupted run under ``accelerate launch``; one under ``torchrun`` with the c10d rendezvous,
SIGKILLed mid-epoch (launcher and workers) and resumed under plain ``torchrun``. The assertions share
these launches: world size logged, disjoint shares of every epoch, exactly the validation videos
counted on an uneven count, only rank 0 writing, bit-identical weights after the kill, the
2-process checkpoint evaluated and used for prediction in one process, and clean exits.
Plus the contrastive loss over processes (tests/dist/contrastive.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import moving_square
from vidrec.video.encode import write_video

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TRAIN, VAL = 12, 7  # 12 = 3 batches of 2 on each of 2 processes; 7 validation videos do not split evenly
TIMING = {"clips_per_s", "train_clips_per_s", "train_seconds"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a launcher in its own process group; a hang fails the test (and the group is killed)."""
    full_env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        **(env or {}),
    }
    proc = subprocess.Popen(
        cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:6])} ... hung for {timeout} s\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def accelerate(*args: str) -> list[str]:
    # --multi_gpu is accelerate's torch.distributed launcher; with train.device=cpu it runs gloo on CPUs
    return [
        str(BIN / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        *args,
    ]


def torchrun(*args: str, c10d: bool = False) -> list[str]:
    rdzv = (
        ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{free_port()}", "--nnodes", "1"]
        if c10d
        else ["--master_port", str(free_port())]
    )
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *rdzv, *args]


def write_folder_dataset(root: Path) -> Path:
    """A folder dataset with a list file: TRAIN training and VAL validation videos of 2 classes."""
    rng = np.random.default_rng(0)
    rows = ["path,label,subset"]
    for subset, n in (("train", TRAIN), ("val", VAL)):
        for k in range(n):
            label = k % 2
            p = f"videos/{subset}_{k}.mp4"
            write_video(root / p, moving_square(12, 32, 1 if label == 0 else -1, rng), fps=12)
            rows.append(f"{p},{'left to right' if label == 0 else 'right to left'},{subset}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return root


def train_sets(root: Path) -> list[str]:
    sets = {
        "data.dataset": "folder",
        "data.root": root,
        "data.list_file": "list.csv",
        "data.num_frames": 4,
        "data.image_size": 32,
        "data.decode_size": 32,
        "data.batch_size": 2,
        "data.eval_batch_size": 2,
        "data.num_workers": 0,
        "model.name": "cnn_rnn",
        "model.backbone": "resnet10t",
        "model.hidden_size": 16,
        "model.attention_dim": 16,
        "model.dropout": 0.5,
        "train.epochs": 2,
        "train.lr": 3e-3,
        "train.warmup_epochs": 0,
        "train.device": "cpu",
        "train.early_stop_patience": "null",
        "train.checkpoint_every_steps": 2,
        "train.log_every": 1,
    }
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def records(run: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIMING}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted accelerate run (A) and the killed-then-resumed torchrun run (B)."""
    tmp = tmp_path_factory.mktemp("dist")
    root = write_folder_dataset(tmp / "data")
    seen = tmp / "seen"
    seen.mkdir()
    a = launch(
        accelerate(
            "-m",
            "tests.dist.cli",
            "train",
            "-q",
            "--out",
            str(tmp / "A"),
            *train_sets(root),
            "--set",
            "data.num_workers=1",
        ),
        env={"VIDREC_TEST_RECORD": str(seen)},
    )
    # B: killed in epoch 2 after its third micro-batch (the last state: after the first), then resumed
    killed = launch(
        torchrun("-m", "tests.dist.cli", "train", "-q", "--out", str(tmp / "B"), *train_sets(root), c10d=True),
        env={"VIDREC_TEST_KILL_AT": "1:3"},
    )
    resumed = launch(torchrun("-m", "vidrec", "train", "-q", "--out", str(tmp / "B"), "--resume"))
    return {"root": root, "A": tmp / "A", "B": tmp / "B", "seen": seen, "a": a, "killed": killed, "resumed": resumed}


def test_both_launchers_exit_cleanly_and_only_rank_0_talks(runs):
    for name in ("a", "resumed"):
        r = runs[name]
        assert r.returncode == 0, r.stderr[-3000:]
        assert "Traceback" not in r.stderr and "error" not in r.stderr.lower(), r.stderr[-3000:]
        assert r.stdout.count("best checkpoint:") == 1, r.stdout  # rank 1 prints nothing
    assert runs["killed"].returncode == -signal.SIGKILL
    log = (runs["A"] / "train.log").read_text()
    assert "2 processes (multi_cpu, batch 2 per process, 4 per optimiser step)" in log
    assert log.count("epoch 1: train_loss") == 1  # one writer


def test_every_process_sees_its_own_part_of_each_epoch(runs):
    by_rank = {}
    for rank in (0, 1):
        lines = [json.loads(x) for x in (runs["seen"] / f"rank{rank}.jsonl").read_text().splitlines()]
        by_rank[rank] = {e: [i for x in lines if x["epoch"] == e for i in x["index"]] for e in (0, 1)}
    for epoch in (0, 1):
        r0, r1 = by_rank[0][epoch], by_rank[1][epoch]
        assert len(r0) == len(r1) == TRAIN // 2
        assert not set(r0) & set(r1) and sorted(r0 + r1) == list(range(TRAIN))
    assert by_rank[0][0] != by_rank[0][1]  # shuffled anew each epoch


def test_only_rank_0_writes_and_validation_counts_each_video_once(runs):
    run = runs["A"]
    assert len(list((run / "tb").iterdir())) == 1  # one TensorBoard writer
    recs = records(run)
    epochs = [r for r in recs if r["type"] == "epoch"]
    assert len(epochs) == 2 and len(recs) == 2 + 2 * 3  # one line per micro-batch (log_every 1) and epoch
    for r in epochs:
        assert r["val_videos"] == VAL and r["val_clips"] == VAL  # 8 slots in 4 batches of 2: the pad is dropped
        assert r["val_top1"] * VAL == pytest.approx(round(r["val_top1"] * VAL), abs=1e-4)


def test_killed_and_resumed_two_process_run_is_bit_identical(runs):
    a, b = runs["A"] / "checkpoints" / "last", runs["B"] / "checkpoints" / "last"
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert records(runs["A"]) == records(runs["B"])  # the same log, whichever launcher and despite the kill
    assert "resuming from" in (runs["B"] / "train.log").read_text()


def test_two_process_checkpoint_evaluates_and_predicts_in_one_process(runs):
    from vidrec.engine.predict import Predictor
    from vidrec.engine.run import evaluate_checkpoint

    best = runs["A"] / "checkpoints" / "best"
    reported = json.loads((best / "metrics.json").read_text())
    ev = evaluate_checkpoint(best, progress=False)
    assert int(ev.result.labels.numel()) == VAL and int(ev.result.confusion.sum()) == VAL
    assert ev.result.top1 == pytest.approx(reported["val_top1"], abs=1e-6)
    assert ev.result.loss == pytest.approx(reported["val_loss"], rel=0.05)  # bf16 on some CPUs
    pred = Predictor(best).predict_one(runs["root"] / "videos" / "val_0.mp4", topk=2)
    assert {c for c, _ in pred.topk} == {"left to right", "right to left"}


def test_contrastive_loss_over_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    out = tmp_path / "contrastive.json"
    r = launch(torchrun("-m", "tests.dist.contrastive", str(out)))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["world"] == 2 and res["same_params"]
    assert res["losses"] == pytest.approx([res["reference"]] * 2, rel=1e-5)  # every process: the whole batch's loss
    assert res["max_grad_diff"] <= 1e-5 * max(res["max_grad"], 1.0)


def test_embed_over_two_processes_killed_and_rerun_fills_one_store_like_one_process(tmp_path):
    from tests.test_embed import COLORS, colour_video
    from tests.test_video_clip import write_tiny_clip
    from vidrec.embed import Store, extract

    videos = tmp_path / "videos"
    for k in range(10):
        colour_video(videos / f"part{k % 3}" / f"clip{k}.mp4", list(COLORS.values())[k % 4], seed=k)
    clip = write_tiny_clip(tmp_path / "clip")
    one = extract(videos, tmp_path / "one", model=clip, num_frames=8, merge="2", workers=0, batch_size=1)
    assert one.processed == 10

    store = tmp_path / "store"
    args = [
        "embed",
        str(videos),
        "--out",
        str(store),
        "--model",
        str(clip),
        "--frames",
        "8",
        "--merge",
        "2",
        "--batch-size",
        "1",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    killed = launch(torchrun("-m", "tests.dist.cli", *args), env={"VIDREC_TEST_KILL_AFTER_WRITES": "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert 2 <= Store(store).count() < 10  # rank 0 wrote 2 videos, then every process died
    rerun = launch(accelerate("-m", "vidrec", *args))
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr[-3000:]
    assert "process 0 of 2: embedded" in rerun.stdout and "process 1 of 2: embedded" in rerun.stdout

    def rows(path: Path) -> tuple[dict, dict]:
        st = Store(path)
        v, s = st.videos().to_pylist(), st.segments().to_pylist()
        return (
            ({r["path"]: r for r in v}, {(r["path"], r["segment"]): r for r in s})
            if len(v) == len({r["path"] for r in v}) and len(s) == len({(r["path"], r["segment"]) for r in s})
            else pytest.fail("duplicate rows")
        )

    (rv, rs), (mv, ms) = rows(tmp_path / "one"), rows(store)
    assert rv.keys() == mv.keys() and rs.keys() == ms.keys()  # no video and no segment lost, none twice
    for p in rv:
        np.testing.assert_allclose(mv[p]["vector"], rv[p]["vector"], atol=1e-5)
    for k in rs:
        np.testing.assert_allclose(ms[k]["vector"], rs[k]["vector"], atol=1e-5)
    assert not Store(store).failures()
