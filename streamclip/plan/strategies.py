"""Sampling strategies as data: a weight and a cap per cluster, or phases of them.

Every strategy reduces to the two vectors of the water-level rule (``schedule.py``): a weight
``w_k`` that splits the draws among clusters that still have room, and a cap ``cap_k`` (in draws
over the whole run) that knocks a cluster out once reached. Keeping strategies as frozen
dataclasses with a canonical ``to_dict()`` lets checkpoints fingerprint them and resume strictly.

    name                 w_k            cap_k
    random               n_k            none
    uniform              1              none
    clusterclip(C)       1              C * n_k
    temperature(t, C)    n_k ** t       C * n_k or none
    weighted(v, C)       v_k            C * n_k or none
    schedule             per phase      C * n_k or none, over the whole run
"""

from __future__ import annotations

import inspect
import math
from dataclasses import KW_ONLY, dataclass
from numbers import Real
from typing import Any, Callable, ClassVar, Mapping, Union

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "STRATEGIES",
    "ClusterClip",
    "Phase",
    "Random",
    "Schedule",
    "SimpleStrategy",
    "Strategy",
    "Temperature",
    "Uniform",
    "Weighted",
    "general_to_specific",
    "specific_to_general",
    "strategy_from_dict",
    "strategy_from_spec",
]


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_clip(clip: object, *, optional: bool) -> float | None:
    """Return ``clip`` as a float, or raise naming the value; ``None`` means uncapped if allowed."""
    if clip is None and optional:
        return None
    if not _is_number(clip) or not math.isfinite(clip) or clip < 1:  # type: ignore[operator]
        hint = " (use clip=None for no cap)" if optional else ""
        raise ValueError(f"clip must be a finite number >= 1 (most repeats of a document per run){hint}, got {clip=}")
    return float(clip)  # type: ignore[arg-type]


def _sizes_array(sizes: NDArray[np.int64]) -> NDArray[np.float64]:
    return np.asarray(sizes, dtype=np.float64)


def _caps(sizes: NDArray[np.int64], clip: float | None) -> NDArray[np.float64]:
    if clip is None:
        return np.full(len(sizes), np.inf)
    return clip * _sizes_array(sizes)


@dataclass(frozen=True, slots=True)
class Random:
    """Size-proportional draws, as if the corpus were shuffled without clusters."""

    name: ClassVar[str] = "random"

    def weights(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        """float64[K]: the relative share of each cluster while none is capped."""
        return _sizes_array(sizes)

    def caps(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        """float64[K]: most draws per cluster over the run (``inf``: uncapped)."""
        return _caps(sizes, None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True, slots=True)
class Uniform:
    """The same share for every cluster, with no cap: small clusters repeat without bound."""

    name: ClassVar[str] = "uniform"

    def weights(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.ones(len(sizes))

    def caps(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        return _caps(sizes, None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True, slots=True)
class ClusterClip:
    """Uniform over clusters, no document more than ``clip`` times (Shao et al. 2024)."""

    clip: float = 2.0
    name: ClassVar[str] = "clusterclip"

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip", _check_clip(self.clip, optional=False))

    def weights(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.ones(len(sizes))

    def caps(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        return _caps(sizes, self.clip)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "clip": self.clip}


@dataclass(frozen=True, slots=True)
class Temperature:
    """Weights ``n_k ** t``: ``t=1`` is size-proportional, ``t=0`` uniform, in between flattens."""

    t: float
    _: KW_ONLY
    clip: float | None = None
    name: ClassVar[str] = "temperature"

    def __post_init__(self) -> None:
        if not _is_number(self.t) or not math.isfinite(self.t):
            raise ValueError(f"t must be a finite number (1 = size-proportional, 0 = uniform), got t={self.t!r}")
        object.__setattr__(self, "t", float(self.t))
        object.__setattr__(self, "clip", _check_clip(self.clip, optional=True))

    def weights(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        # Scaled in log space so that large sizes or exponents do not overflow.
        exponent = self.t * np.log(_sizes_array(sizes))
        return np.exp(exponent - exponent.max())

    def caps(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        return _caps(sizes, self.clip)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "t": self.t, "clip": self.clip}


@dataclass(frozen=True, slots=True, init=False)
class Weighted:
    """Explicit relative weights, one per cluster in cluster-id order: ``Weighted((3, 1, 1), clip=2)``.

    The weights are stored as ``values`` because ``weights(sizes)`` is the method every strategy has.
    """

    values: tuple[float, ...]
    clip: float | None
    name: ClassVar[str] = "weighted"

    def __init__(self, weights: tuple[float, ...], *, clip: float | None = None) -> None:
        try:
            values = tuple(float(v) for v in weights)
        except (TypeError, ValueError):
            raise ValueError(f"weights must be a sequence of positive numbers, got {weights=}") from None
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(
                f"weights must be a non-empty sequence of finite numbers > 0 (one per cluster), got weights={values!r}"
            )
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "clip", _check_clip(clip, optional=True))

    def weights(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        if len(self.values) != len(sizes):
            raise ValueError(
                f"weighted strategy has {len(self.values)} weights but the dataset has {len(sizes)} clusters; "
                "give exactly one weight per cluster"
            )
        return np.asarray(self.values, dtype=np.float64)

    def caps(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        return _caps(sizes, self.clip)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weights": list(self.values), "clip": self.clip}


SimpleStrategy = Union[Random, Uniform, ClusterClip, Temperature, Weighted]
_SIMPLE: dict[str, type] = {cls.name: cls for cls in (Random, Uniform, ClusterClip, Temperature, Weighted)}


@dataclass(frozen=True, slots=True)
class Phase:
    """Use ``strategy``'s weights until fraction ``until`` of the run's draws (in (0, 1])."""

    until: float
    strategy: SimpleStrategy

    def __post_init__(self) -> None:
        if not _is_number(self.until) or not 0 < self.until <= 1:
            raise ValueError(f"Phase.until must be a fraction of the run in (0, 1], got until={self.until!r}")
        object.__setattr__(self, "until", float(self.until))
        if not isinstance(self.strategy, tuple(_SIMPLE.values())):
            raise ValueError(
                f"a phase needs a simple strategy ({', '.join(_SIMPLE)}), got {self.strategy!r}; "
                "schedules do not nest"
            )
        if not math.isinf(self.strategy.caps(np.ones(1, dtype=np.int64))[0]):
            raise ValueError(
                f"a phase's strategy must not cap ({self.strategy!r}): the cap holds over the whole run, "
                "so give it to the schedule instead, e.g. Schedule(phases, clip=2.0) with Uniform() phases"
            )


@dataclass(frozen=True, slots=True)
class Schedule:
    """Phases of weights over the run, with one cap (``clip``) that holds across all phases.

    Inside a phase the draws follow that phase's weights; a cluster capped in an earlier phase
    stays knocked out, because the cap counts draws over the whole run.
    """

    phases: tuple[Phase, ...]
    _: KW_ONLY
    clip: float | None = None
    name: ClassVar[str] = "schedule"

    def __post_init__(self) -> None:
        phases = tuple(self.phases)
        if not phases or not all(isinstance(p, Phase) for p in phases):
            raise ValueError(f"a schedule needs a non-empty sequence of Phase, got phases={self.phases!r}")
        untils = [p.until for p in phases]
        if any(b <= a for a, b in zip(untils, untils[1:])) or untils[-1] != 1.0:
            raise ValueError(f"phase ends must increase strictly and the last must be 1.0, got until={untils}")
        object.__setattr__(self, "phases", phases)
        object.__setattr__(self, "clip", _check_clip(self.clip, optional=True))

    def caps(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        return _caps(sizes, self.clip)

    def to_dict(self) -> dict[str, Any]:
        phases = [{"until": p.until, "strategy": p.strategy.to_dict()} for p in self.phases]
        return {"name": self.name, "phases": phases, "clip": self.clip}


Strategy = Union[SimpleStrategy, Schedule]


def _check_switch(switch: object) -> float:
    if not _is_number(switch) or not 0 < switch < 1:  # type: ignore[operator]
        raise ValueError(f"switch must be a fraction of the run in (0, 1), got {switch=}")
    return float(switch)  # type: ignore[arg-type]


def general_to_specific(switch: float = 0.5, clip: float | None = None) -> Schedule:
    """Size-proportional (like plain shuffling) until ``switch``, then uniform over clusters."""
    switch = _check_switch(switch)
    return Schedule((Phase(switch, Random()), Phase(1.0, Uniform())), clip=clip)


def specific_to_general(switch: float = 0.5, clip: float | None = None) -> Schedule:
    """Uniform over clusters until ``switch``, then size-proportional."""
    switch = _check_switch(switch)
    return Schedule((Phase(switch, Uniform()), Phase(1.0, Random())), clip=clip)


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "random": Random,
    "uniform": Uniform,
    "clusterclip": ClusterClip,
    "temperature": Temperature,
    "weighted": Weighted,
    "general-to-specific": general_to_specific,
    "specific-to-general": specific_to_general,
}
"""CLI names to factories; ``strategy_from_spec`` checks parameter names against each signature."""


def strategy_from_spec(name: str, **params: Any) -> Strategy:
    """Build a strategy from its CLI name and keyword parameters, naming any mistake."""
    factory = STRATEGIES.get(name)
    if factory is None:
        raise ValueError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    accepted = [p for p in inspect.signature(factory).parameters if p not in ("self", "name", "_")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"strategy {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(accepted) or 'no parameters'}"
        )
    try:
        return factory(**params)
    except TypeError as exc:  # a required parameter is missing
        raise ValueError(f"strategy {name!r}: {exc}; it accepts: {', '.join(accepted)}") from None


def strategy_from_dict(data: Mapping[str, Any]) -> Strategy:
    """Inverse of ``to_dict()``: ``strategy_from_dict(s.to_dict()) == s`` for every strategy."""
    if not isinstance(data, Mapping) or "name" not in data:
        raise ValueError(f"a strategy dict needs a 'name' key, got {data!r}")
    params = {k: v for k, v in data.items() if k != "name"}
    name = data["name"]
    if name == Schedule.name:
        unknown = sorted(set(params) - {"phases", "clip"})
        if unknown or "phases" not in params:
            raise ValueError(f"a schedule dict has keys 'phases' and optional 'clip', got {sorted(params)}")
        phases = tuple(Phase(p["until"], strategy_from_dict(p["strategy"])) for p in params["phases"])
        return Schedule(phases, clip=params.get("clip"))
    cls = _SIMPLE.get(name)
    if cls is None:
        raise ValueError(f"unknown strategy {name!r} in dict; known: {', '.join([*_SIMPLE, Schedule.name])}")
    try:
        return cls(**params)
    except TypeError:
        raise ValueError(f"strategy {name!r} cannot be built from keys {sorted(params)}") from None
