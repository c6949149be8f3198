"""Shared benchmark machinery: fresh-subprocess measurements, interleaving, medians, result files.

Every benchmark measures each case in its own fresh Python process (no warm caches or imports
carried between cases), interleaves the cases of a comparison repetition by repetition (so drift
in machine load hits both sides alike), and reports median and min-max. Results go to
``benchmarks/results/NAME.json`` and ``NAME.md``, and ``benchmarks/README.md`` gets the table
between markers, with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
PROJECT_README = HERE.parent / "README.md"
RESULT_PREFIX = "BENCH_RESULT "
PACKAGES = ("streamclip", "mosaicml-streaming", "numpy", "torch", "faiss-cpu", "sentence-transformers", "zstandard")


def machine() -> dict[str, Any]:
    """Where the numbers came from: they mean little without it."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"cores": os.cpu_count(), "cpu": cpu, "gpus": gpus(), "python": platform.python_version(), "platform": platform.platform(),
            "packages": versions}


def gpus() -> list[str]:
    """The GPUs the embedding rows ran on (``MiniLMEmbedder`` uses CUDA when it is there); none on a CPU machine."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def parse_args(doc: str, quick_help: str, child: Callable[[dict[str, Any]], None]) -> argparse.Namespace | None:
    """The options every benchmark takes; runs ``child`` and returns None when this process is a measurement."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--repeats", type=int, default=None, help="repetitions of every case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return None
    return args


def emit(result: dict[str, Any]) -> None:
    """Called by a child process: hand one measurement back to the parent."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


class Case(NamedTuple):
    """A measurement that runs under another interpreter, such as a peer library's own virtualenv."""

    python: str
    argv: Sequence[str]


def run_child(argv: Sequence[str], *, timeout: float = 1800, env: dict[str, str] | None = None, python: str | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (this one unless ``python``) and return what it ``emit``-ted."""
    proc = subprocess.run([python or sys.executable, *argv], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError(f"benchmark child {' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def interleaved(cases: dict[str, Sequence[str] | Case], repeats: int, *, on_result: Callable[[str, dict], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each case ``repeats`` times, in the order a b c a b c ..., each in a fresh subprocess (argv for this
    interpreter, or a ``Case`` for another)."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
    for rep in range(repeats):
        for name, case in cases.items():
            result = run_child(case.argv, python=case.python) if isinstance(case, Case) else run_child(case)
            out[name].append(result)
            if on_result:
                on_result(name, result)
            print(f"  [{rep + 1}/{repeats}] {name}: {json.dumps(result)[:160]}", file=sys.stderr, flush=True)
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and range of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(s: dict[str, float], unit: str = "", digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f}{unit} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, data: dict[str, Any], table: str, *, command: str, notes: str = "") -> None:
    """Save JSON + markdown and refresh this benchmark's section of benchmarks/README.md."""
    RESULTS.mkdir(exist_ok=True)
    info = machine()
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": info, "command": command, **data}, indent=1) + "\n")
    versions = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    body = (
        f"Command: `{command}`\n\n{table}\n\n"
        f"Machine: {info['cores']} cores, {info['cpu']}{''.join(f', {g}' for g in info['gpus'])}, Python {info['python']}; {versions}.\n"
        + (f"\n{notes}\n" if notes else "")
    )
    (RESULTS / f"{name}.md").write_text(body)
    _refresh_readme(name, body)
    print(table)


def _refresh_readme(name: str, body: str) -> None:
    """Replace this benchmark's block in benchmarks/README.md (appending it the first time) and in the
    project README, which quotes some tables between the same markers."""
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    block = f"{begin}\n{body}{end}"
    for path, append in ((README, True), (PROJECT_README, False)):
        text = path.read_text() if path.exists() else "# Benchmarks\n"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + block + rest.split(end, 1)[1]
        elif append:
            text = text.rstrip() + f"\n\n## {name}\n\n{block}\n"
        else:
            continue
        path.write_text(text)
