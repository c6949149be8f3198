"""Jobs that start together on one machine each get their own shared-memory prefix.

Stock streaming looks for the lowest free ``/dev/shm/00000N_*`` prefix and then creates it, so
datasets constructed in several processes at the same moment can find the same one, and all but
one die with ``FileExistsError: '/00000N_locals'`` (readers/shmprefix.py).
"""

from __future__ import annotations

import fcntl
import gc
import multiprocessing
import os
import tempfile
import threading
from multiprocessing import resource_tracker
from pathlib import Path

from streamclip.readers import ClusterClipDataset, shmprefix
from streamclip.readers.compat import dataset_module, stock_get_shm_prefix

PROCESSES = 8


def _construct(make, path: str, start, hold, results) -> None:
    """Construct a dataset the moment every process is ready, report its prefix, and keep it until all have one."""
    start.wait(timeout=60)
    try:
        dataset = make(local=path, batch_size=4)
    except BaseException as e:  # noqa: BLE001  reported to the test, which names it
        results.put(("error", f"{type(e).__name__}: {e}"))
        hold.abort()
        return
    results.put(("ok", dataset._shm_prefix_int))
    try:
        hold.wait(timeout=60)  # every dataset alive at once: no prefix freed and taken again
    except threading.BrokenBarrierError:
        pass
    del dataset
    gc.collect()  # stock unlinks its shared memory when the dataset is collected; a forked child exits without that


def _start_together(make, path: Path, processes: int = PROCESSES) -> list[tuple[str, object]]:
    context = multiprocessing.get_context("fork")  # spawning would import torch once per process
    # One resource tracker for all: a tracker each child started itself would unlink its leftovers when the
    # child exits, racing the clean-up after the test.
    resource_tracker.ensure_running()
    start, hold, results = context.Barrier(processes), context.Barrier(processes), context.Queue()
    children = [context.Process(target=_construct, args=(make, str(path), start, hold, results)) for _ in range(processes)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    return outcomes


def test_datasets_constructed_at_once_in_many_processes_get_distinct_prefixes(sample_dataset: Path) -> None:
    """Without the lock and the retry (readers/shmprefix.py made a no-op) this failed 3 runs in 3, with one to
    three FileExistsError of 8 processes each time."""
    _distinct_prefixes(sample_dataset)


def test_stock_registration_is_restored_outside_construction(sample_dataset: Path) -> None:
    """The lock is put in stock's namespace only while a ClusterClipDataset is constructed."""
    ClusterClipDataset(local=str(sample_dataset), batch_size=4)
    assert dataset_module.get_shm_prefix is stock_get_shm_prefix


def _distinct_prefixes(sample_dataset: Path) -> None:
    outcomes = _start_together(ClusterClipDataset, sample_dataset)
    errors = [what for status, what in outcomes if status == "error"]
    assert not errors, errors
    prefixes = [what for _, what in outcomes]
    assert len(set(prefixes)) == PROCESSES, prefixes


def test_the_lock_alone_serialises_registration(sample_dataset: Path, monkeypatch) -> None:
    monkeypatch.setattr(shmprefix, "_RETRIES", 0)  # the children are forked: they see it
    _distinct_prefixes(sample_dataset)


def test_a_job_that_cannot_get_the_lock_retries_past_a_taken_prefix(sample_dataset: Path, monkeypatch) -> None:
    """As when the others are stock datasets, which never lock: the wait ends at once and a collision is retried."""
    monkeypatch.setattr(shmprefix, "LOCK_WAIT_S", 0.0)
    fd = os.open(os.path.join(tempfile.gettempdir(), shmprefix.LOCK_NAME), os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held by this process: no child gets it
        _distinct_prefixes(sample_dataset)
    finally:
        os.close(fd)


JOBS, RANKS = 4, 2


def _rank_constructs(path: str, job: int, rank: int, store: str, start, hold, results) -> None:
    """One rank of a gloo job of ``RANKS`` on this machine: construct the moment every rank of every job is ready."""
    import torch.distributed as dist

    # A file store (no port to pick and race for); gloo's own connections on the loopback interface only.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(RANKS), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(RANKS), GLOO_SOCKET_IFNAME="lo")
    try:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=RANKS)
        start.wait(timeout=60)
        dataset = ClusterClipDataset(local=path, batch_size=4)
    except BaseException as e:  # noqa: BLE001  reported to the test, which names it
        results.put((job, "error", f"{type(e).__name__}: {e}"))
        hold.abort()
        start.abort()
        return
    results.put((job, "ok", dataset._shm_prefix_int))
    try:
        hold.wait(timeout=60)
    except threading.BrokenBarrierError:
        pass
    del dataset
    gc.collect()
    dist.destroy_process_group()


def test_jobs_of_several_ranks_started_together_agree_within_and_differ_between(sample_dataset: Path, tmp_path: Path) -> None:
    """Stock has every rank look up the prefix itself, before its leader registers. With that (the group path
    of readers/shmprefix.py turned off) this failed 3 runs in 3, silently: the second ranks of all four jobs
    took prefix 0, attached to the first job's shared memory (same local directory, same prefix: stock's
    comparison passes) and so shared its shard states and barriers ({0: {0, 2}, 1: {0}, 2: {0, 1}, 3: {0, 3}})."""
    context = multiprocessing.get_context("fork")
    resource_tracker.ensure_running()
    processes = JOBS * RANKS
    start, hold, results = context.Barrier(processes), context.Barrier(processes), context.Queue()
    children = [context.Process(target=_rank_constructs, args=(str(sample_dataset), job, rank, str(tmp_path / f"store{job}"), start, hold, results))
                for job in range(JOBS) for rank in range(RANKS)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
    errors = [what for _, status, what in outcomes if status == "error"]
    assert not errors, errors
    by_job: dict[int, set[int]] = {}
    for job, _, prefix in outcomes:
        by_job.setdefault(job, set()).add(prefix)
    assert all(len(prefixes) == 1 for prefixes in by_job.values()), by_job
    assert len({next(iter(p)) for p in by_job.values()}) == JOBS, by_job


def test_a_collected_dataset_frees_its_shared_memory_and_descriptors(sample_dataset: Path) -> None:
    """Stock keeps every SharedMemory alive until exit (atexit); about 1,700 datasets in one process ran out of
    file descriptors. A dataset's names and descriptors go when it is collected (read_path stock and fast alike)."""
    import weakref

    def descriptors() -> set[str]:
        found = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                found.add(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return {target for target in found if target.startswith("/dev/shm/")}

    before = descriptors()
    for read_path in ("fast", "stock"):
        dataset = ClusterClipDataset(local=str(sample_dataset), batch_size=4, read_path=read_path)
        epoch = iter(dataset)
        next(epoch)
        prefix = dataset._shm_prefix_int
        assert any(name.startswith(f"/dev/shm/{prefix:06d}_") for name in descriptors())
        epoch.close()
        collected = weakref.ref(dataset)
        del dataset, epoch
        gc.collect()
        assert collected() is None
        assert descriptors() == before
        assert not list(Path("/dev/shm").glob(f"{prefix:06d}_*"))
