"""``vidrec`` under a launcher, with what the multi-process tests need to observe it.

Runs the real CLI (``vidrec.cli.main``) after test-only hooks, each set by an environment variable:

- ``VIDREC_TEST_RECORD=DIR``: every training batch's record indices go to ``DIR/rank<R>.jsonl``
  (one line per batch: epoch and indices), so a test can check which process saw which videos;
- ``VIDREC_TEST_KILL_AT=EPOCH:STEP`` (0-based epoch, micro-batches done in it): every process
  SIGKILLs the other workers, its launcher and itself there, as a machine that dies does (no cleanup runs);
- ``VIDREC_TEST_KILL_AFTER_WRITES=N`` (``vidrec embed``): the same after N batches written to the store.

``torchrun --nproc_per_node 2 -m tests.dist.cli train --set ...``
"""

from __future__ import annotations

import json
import os
import signal
import sys


_LAUNCHER = os.getppid()  # torchrun / accelerate launch (its workers run in sessions of their own)


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d))
    return out


def _die() -> None:
    """SIGKILL the launcher (it must not restart or clean up anything), the other workers and this process.

    The launcher dies first: torchrun polls its workers every 0.1 s, and a sibling killed before it
    would be noticed (and reported, exit 1) when this process is descheduled in between. Its
    children are listed before, as they are adopted by init once it is gone.
    """
    siblings = [pid for pid in _children(_LAUNCHER) if pid != os.getpid()]
    if os.getppid() == _LAUNCHER:  # never signal whatever adopted us
        os.kill(_LAUNCHER, signal.SIGKILL)
    for pid in siblings:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # the sibling got here first and is gone
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def _hooks() -> None:
    rank = int(os.environ.get("RANK", "0"))
    record = os.environ.get("VIDREC_TEST_RECORD")
    kill_at = os.environ.get("VIDREC_TEST_KILL_AT")
    kill_writes = os.environ.get("VIDREC_TEST_KILL_AFTER_WRITES")
    if record:
        from vidrec.engine import tasks, trainer

        loss, set_epoch, epoch_now = tasks.ClassificationTask.loss, trainer._set_epoch, [0]

        def recording_set_epoch(loader, epoch):  # type: ignore[no-untyped-def]
            epoch_now[0] = epoch
            set_epoch(loader, epoch)

        def recording_loss(self, model, batch):  # type: ignore[no-untyped-def]
            with open(os.path.join(record, f"rank{rank}.jsonl"), "a") as f:
                f.write(json.dumps({"epoch": epoch_now[0], "index": [int(i) for i in batch["index"]]}) + "\n")
            return loss(self, model, batch)

        trainer._set_epoch = recording_set_epoch
        tasks.ClassificationTask.loss = recording_loss  # type: ignore[method-assign]
    if kill_at:
        from vidrec.engine import trainer

        epoch, step = (int(x) for x in kill_at.split(":"))
        init = trainer.Trainer.__init__

        def init_with_kill(self, *a, **kw):  # type: ignore[no-untyped-def]
            init(self, *a, **kw)

            def cb(st):  # type: ignore[no-untyped-def]
                if st.epoch == epoch and st.step_in_epoch == step:
                    _die()

            self.step_callback = cb

        trainer.Trainer.__init__ = init_with_kill  # type: ignore[method-assign]
    if kill_writes:
        from vidrec.embed import store

        write = store.Store.write
        done = [0]

        def write_then_die(self, videos, segments):  # type: ignore[no-untyped-def]
            write(self, videos, segments)
            done[0] += 1
            if done[0] >= int(kill_writes):
                _die()

        store.Store.write = write_then_die  # type: ignore[method-assign]


if __name__ == "__main__":
    _hooks()
    from vidrec.cli import main

    main(sys.argv[1:])
