"""DataLoader workers die with the program, even when it is killed with SIGKILL (fork and forkserver)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from torch.utils.data import DataLoader, Dataset
    from vidrec.config import load_config
    from vidrec.data.build import build_loader
    from vidrec.utils.proc import worker_init_fn

    class Slow(Dataset):  # a worker busy in a long decode when its program dies
        def __len__(self):
            return 64

        def __getitem__(self, i):
            print(f"worker {os.getpid()}", flush=True)
            time.sleep(120)
            return i

    if __name__ == "__main__":
        cfg = load_config(overrides=["data.num_workers=2", "data.batch_size=1"], environ={})
        train = build_loader(cfg, Slow(), train=True)  # the train / eval loader
        embed = DataLoader(Slow(), batch_size=1, num_workers=2, multiprocessing_context="forkserver",
                           worker_init_fn=worker_init_fn())  # as vidrec embed builds its loader
        iterators = [iter(train), iter(embed)]
        time.sleep(300)
    """
)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 4 and time.monotonic() < deadline:
            m = re.match(r"worker (\d+)", proc.stdout.readline())
            if m:
                workers.add(int(m.group(1)))
        assert len(workers) == 4, f"only {len(workers)} workers started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_running(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in workers if _running(p)], "DataLoader workers outlived their killed parent"
    finally:
        for p in workers:
            if _running(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
