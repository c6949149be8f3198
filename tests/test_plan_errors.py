"""The plan core's error contract: every deliberate failure is a StreamclipError that blames the right argument."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import streamclip.errors
import streamclip.plan
import streamclip.planning
from streamclip.errors import ConfigError, StreamclipError
from streamclip.plan import (
    ClusterLayout,
    RunSchedule,
    Uniform,
    counts_at,
    num_segments,
    pass_order,
    plan_segment,
    walk_cluster,
)
from streamclip.plan.locality import max_distinct_in_windows
from streamclip.planning import resolve_budget

CONTRACT = {name for name, obj in vars(streamclip.errors).items()
            if inspect.isclass(obj) and issubclass(obj, StreamclipError)}


def _plan_sources() -> list[Path]:
    package = Path(streamclip.plan.__file__).parent
    return [*sorted(package.glob("*.py")), Path(streamclip.planning.__file__)]


@pytest.mark.parametrize("source", _plan_sources(), ids=lambda p: p.name)
def test_every_raise_in_the_plan_core_is_a_streamclip_error(source):
    """A plain ValueError would slip past ``except StreamclipError`` (and the CLI's one-line message)."""
    offenders = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = call.id if isinstance(call, ast.Name) else ast.unparse(call)
            if name not in CONTRACT:
                offenders.append(f"line {node.lineno}: raise {name}")
    assert not offenders, f"{source.name} raises outside the contract: {offenders}"


@pytest.mark.parametrize("kwargs, blamed", [
    ({"total_samples": 0, "epochs": None, "epoch_size": 0}, "total_samples=0"),  # what `plan --total-samples 0` passes
    ({"total_samples": 0, "epochs": None, "epoch_size": None}, "total_samples=0"),
    ({"total_samples": -5, "epochs": None, "epoch_size": 10}, "total_samples=-5"),
    ({"total_samples": 2.5, "epochs": None, "epoch_size": None}, "total_samples=2.5"),
    ({"total_samples": True, "epochs": None, "epoch_size": None}, "total_samples=True"),
    ({"total_samples": None, "epochs": 0, "epoch_size": 10}, "epochs=0"),
    ({"total_samples": None, "epochs": 0, "epoch_size": 0}, "epochs=0"),
    ({"total_samples": None, "epochs": "2", "epoch_size": None}, "epochs='2'"),
    ({"total_samples": None, "epochs": 2, "epoch_size": 0}, "epoch_size=0"),
    ({"total_samples": 100, "epochs": None, "epoch_size": -1}, "epoch_size=-1"),
])
def test_resolve_budget_blames_the_argument_that_is_wrong(kwargs, blamed):
    with pytest.raises(ConfigError) as info:
        resolve_budget(100, **kwargs)
    message = str(info.value)
    name = blamed.split("=")[0]
    assert message.startswith(f"{name} must be a whole number >= 1") and message.endswith(f"got {blamed}")
    assert f"--{name.replace('_', '-')}" in message  # the CLI option too
    for other in {"total_samples", "epochs", "epoch_size"} - {name}:
        assert other not in message


def test_resolve_budget_names_the_conflict_and_the_fix():
    with pytest.raises(ConfigError, match=r"give total_samples or epochs, not both \(got total_samples=100, epochs=1\)"):
        resolve_budget(100, total_samples=100, epochs=1, epoch_size=None)
    with pytest.raises(ConfigError, match="not a multiple of epoch_size=40.*Use total_samples=80 or 120"):
        resolve_budget(100, total_samples=100, epochs=None, epoch_size=40)


def _layout() -> ClusterLayout:
    return ClusterLayout.from_shards([2, 3, 4], [(0, 1), (1, 3)])


@pytest.mark.parametrize("call, match", [
    (lambda: RunSchedule(np.array([2, 7]), None, 5), "strategy must be a strategy object"),
    (lambda: RunSchedule(np.array(["a"]), Uniform(), 5), "cluster sizes must be integers"),
    (lambda: counts_at(RunSchedule(np.array([2, 7]), Uniform(), 5), 6), r"t must be an integer in \[0, total_samples=5\]"),
    (lambda: num_segments(0, 5), "total_samples must be an integer >= 1"),
    (lambda: plan_segment(_layout(), RunSchedule(np.array([2, 7]), Uniform(), 9), seed=-1, epoch_size=3, epoch=0),
     "seed must be an integer >= 0"),
    (lambda: plan_segment(_layout(), RunSchedule(np.array([2, 7]), Uniform(), 9), seed=0, epoch_size=3, epoch=3),
     "epoch=3 is beyond the run"),
    (lambda: pass_order(3, seed=1.5, cluster_id=0, pass_index=0), "seed must be an integer >= 0"),
    (lambda: walk_cluster(np.array([2]), np.array([0]), seed=0, cluster_id=0, start=3, stop=1), "0 <= start <= stop"),
    (lambda: ClusterLayout.from_shards([2, 0], [(0, 2)]), "no empty shards"),
    (lambda: max_distinct_in_windows(np.zeros((2, 2)), 3), "keys must be 1-D"),
    (lambda: max_distinct_in_windows(np.zeros(3), 0), "window must be >= 1"),
])
def test_bad_arguments_on_public_paths_are_config_errors(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


# --- epoch_size abbreviations, as stock StreamingDataset reads them ------------------------------------


def test_epoch_size_takes_stock_abbreviations():
    assert resolve_budget(10, total_samples=None, epochs=2, epoch_size="100k") == (200_000, 100_000)
    assert resolve_budget(10, total_samples=3_000_000, epochs=None, epoch_size=" 1.5M ") == (3_000_000, 1_500_000)
    assert resolve_budget(10, total_samples=None, epochs=None, epoch_size=2000.0) == (2000, 2000)


@pytest.mark.parametrize("value, match", [
    ("100x", r"or a string such as '5000', '100k'.*got epoch_size='100x'"),
    ("k", "got epoch_size='k'"),
    ("1.5", "got epoch_size='1.5'"),
    ("inf k", "got epoch_size='inf k'"),
    ("0.0001k", r"epoch_size='0.0001k' means 0 samples; an epoch needs at least 1"),
    ("-5k", r"epoch_size='-5k' means -5000 samples"),
    (1.5, "got epoch_size=1.5"),  # stock would truncate it to 1
    (b"100k", "got epoch_size=b'100k'"),
])
def test_epoch_size_refuses_what_is_not_a_whole_count(value, match):
    with pytest.raises(ConfigError, match=match):
        resolve_budget(10, total_samples=None, epochs=None, epoch_size=value)
