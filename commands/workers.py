"""Independent runs side by side: a pool of spawned processes of one torch thread each.

Two single-thread runs side by side finish in about the time one two-thread run takes on 2
CPU cores (PPO runs of the demo: 25 s each against 23 s for one), so `prm demo` gives every
core a process for its tree searches and PPO runs. This module imports nothing heavy: a spawned
worker imports it first (for its initializer), so the environment it sets is in place before
tqdm and torch are imported there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager


@contextmanager
def worker_pool(workers: int, device: str) -> Iterator[ProcessPoolExecutor | None]:
    """A pool for `Pending`, or None (run in this process), shut down on leaving. workers:
    0 = one per CPU core on a CPU, 1 on a GPU (its runs would share one device)."""
    from multiprocessing import get_context

    count = workers or ((os.cpu_count() or 1) if device == "cpu" else 1)
    if count <= 1:
        yield None
        return
    pool = ProcessPoolExecutor(count, mp_context=get_context("spawn"), initializer=_single_thread)
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def _single_thread() -> None:
    # The parent's bar counts the jobs. tqdm reads this on import, as the default of `disable`
    # (a bar given disable= explicitly needs its own switch, e.g. PPOConfig.disable_tqdm).
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)


class Pending:
    """Jobs handed to the pool's processes now, their results collected later (`results`); with no
    pool they run in this process when their results are asked for, in order. Where every job
    seeds its own run, both give the same results."""

    def __init__(self, function, jobs: list[tuple], pool: ProcessPoolExecutor | None):
        self.function, self.jobs = function, jobs
        self.futures = None if pool is None else [pool.submit(function, *job) for job in jobs]

    def results(self, desc: str) -> list:
        """[function(*job) for job in jobs], with a progress bar over the jobs."""
        from tqdm.auto import tqdm

        if self.futures is None:
            return [self.function(*job) for job in tqdm(self.jobs, desc=desc, unit="run")]
        with tqdm(total=len(self.futures), desc=desc, unit="run") as bar:
            for future in as_completed(self.futures):
                future.result()  # a failed job stops the stage now, with its traceback
                bar.update()
        return [future.result() for future in self.futures]

