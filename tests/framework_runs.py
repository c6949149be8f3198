"""Run a framework's training script (lightning_run.py, hf_run.py) in a child process and read its step log.

Each run is a process of its own, forked from a zygote (tests/zygote.py) that imported the framework once:
importing Lightning or the Trainer took 6-8 s, most of each run.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
# offline, and ddp on loopback only
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo"}
TIMEOUT = 300
# What each framework's runs import, imported once by its zygote.
PRELOAD = {
    "lightning": ("torch", "pytorch_lightning", "streaming", "streamclip.readers", "streamclip.readers.lightning"),
    "hf": ("torch", "transformers", "streaming", "streamclip.readers", "streamclip.readers.hf"),
}


class _Zygote:
    def __init__(self, modules: tuple[str, ...]) -> None:
        env = {**os.environ, **CHILD_ENV, "PYTHONPATH": str(HERE)}
        self.proc = subprocess.Popen([sys.executable, str(HERE / "zygote.py"), *modules], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.replies.put(line)
        self.replies.put("")  # the zygote ended

    def _reply(self, key: str, timeout: float) -> int:
        line = self.replies.get(timeout=timeout)
        if not line:
            raise RuntimeError(f"the zygote ended (exit {self.proc.wait()})")
        return json.loads(line)[key]

    def run(self, script: Path, args: list[str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            request = {"script": str(script), "argv": args, "stdout": out, "stderr": err}
            self.proc.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
            pid = self._reply("pid", timeout)
            try:
                code = self._reply("returncode", timeout)
            except queue.Empty:
                os.kill(pid, signal.SIGKILL)
                self._reply("returncode", timeout)
                raise subprocess.TimeoutExpired([str(script), *args], timeout) from None
            return subprocess.CompletedProcess([str(script), *args], code, Path(out).read_text(), Path(err).read_text())

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=60)


_zygotes: dict[str, _Zygote] = {}


def _run(script: Path, args: list[str]) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` in a fresh process, forked from the zygote of the script's framework."""
    framework = "lightning" if "lightning" in script.name else "hf"
    if framework not in _zygotes:
        _zygotes[framework] = _Zygote(PRELOAD[framework])
        atexit.register(_zygotes[framework].close)
    return _zygotes[framework].run(script, args)


def train(script: str, dataset: Path, root: Path, log: str, *args: str) -> subprocess.CompletedProcess:
    """``script DATASET ROOT/ckpt ROOT/LOG ARGS...``; killed runs return -9."""
    return _run(HERE / script, [str(dataset), str(root / "ckpt"), str(root / log), *args])


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def full_run(script: str, dataset: Path, root: Path, *, end_epoch: float) -> list[dict]:
    """The uninterrupted run's log: 3 epochs of 8 steps, each step's epoch as the framework counts it."""
    done = train(script, dataset, root, "log.jsonl", "--workers", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    log = read_log(root / "log.jsonl")
    assert [r["step"] for r in log[:-1]] == list(range(24)) and log[-1] == {"end_epoch": end_epoch, "end_step": 24}
    assert [r["epoch"] for r in log[:-1]] == [e for e in range(3) for _ in range(8)]
    return log


def killed_and_resumed(script: str, dataset: Path, root: Path, kills: list[tuple[int, str]],
                       extra: dict[int, tuple[str, ...]] | None = None) -> list[dict]:
    """One run SIGKILLed at every kill point in turn, each time just after a checkpoint, and resumed from that
    checkpoint in a new process on another worker count, then run to the end; the stitched log.

    ``kills`` lists (step, checkpoint name written by that step); ``extra`` adds arguments to the run killed at a step.
    """
    workers, resume = 2, None
    for kill_at, checkpoint in [*kills, (None, None)]:
        args = ["--workers", str(workers), *(extra or {}).get(kill_at, ())]
        args += ([] if resume is None else ["--resume", resume]) + ([] if kill_at is None else ["--kill-at", str(kill_at)])
        done = train(script, dataset, root, "log.jsonl", *args)
        if kill_at is None:
            assert done.returncode == 0, done.stderr[-3000:]
            break
        assert done.returncode == -9, f"expected a kill at step {kill_at}: {done.stderr[-3000:]}"
        assert (root / "ckpt" / checkpoint).exists(), f"{checkpoint} not written by step {kill_at}"
        assert [r["step"] for r in read_log(root / "log.jsonl")] == list(range(kill_at))  # killed before training step kill_at
        workers, resume = 2 - workers, checkpoint
    return read_log(root / "log.jsonl")


def run_example(name: str, dataset: Path, out: Path, *args: str) -> str:
    """``examples/NAME DATASET OUT ARGS`` with no workers; its stdout (it must exit 0)."""
    done = _run(HERE.parent / "examples" / name, [str(dataset), str(out), "--workers", "0", *args])
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
