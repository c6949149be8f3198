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
from typing import AbstractSet, Any, Callable, ClassVar, Iterable, Mapping, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from streamclip.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "check_made_for",
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
    "check_strategy",
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
        raise ConfigError(f"clip must be a finite number >= 1 (most repeats of a document per run){hint}, got {clip=}")
    return float(clip)  # type: ignore[arg-type]


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_weights(weights: object) -> tuple[float, ...]:
    """Weights as a tuple of floats, refusing what only looks like a sequence of numbers.

    A string or a mapping iterates without error (``'1234'`` gives four weights, a dict its keys),
    and a set has no cluster order, so those are refused by type before any value is read.
    """
    what = "weights must be a sequence of finite numbers > 0, one per cluster in cluster-id order (e.g. [3, 1, 1])"
    if isinstance(weights, (str, bytes, Mapping, AbstractSet)) or not isinstance(weights, Iterable):
        raise ConfigError(f"{what}, got {type(weights).__name__} {_short(weights)}")
    values = list(weights)
    if not values:
        raise ConfigError(f"{what}, got an empty sequence")
    for index, value in enumerate(values):
        if not _is_number(value) or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type]
            raise ConfigError(f"{what}; weight {index} is {_short(value)}")
    return tuple(float(v) for v in values)


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
            raise ConfigError(f"t must be a finite number (1 = size-proportional, 0 = uniform), got t={self.t!r}")
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
    ``made_for`` is ``(dataset fingerprint, clustering fingerprint)`` when the weights come from a
    ``weights.json`` (``Weighted.load``): a plan of another dataset refuses them (``check_made_for``).
    """

    values: tuple[float, ...]
    clip: float | None
    made_for: tuple[str | None, str | None] | None
    name: ClassVar[str] = "weighted"

    def __init__(self, weights: Sequence[float], *, clip: float | None = None, made_for: Sequence[str | None] | None = None) -> None:
        object.__setattr__(self, "values", _check_weights(weights))
        object.__setattr__(self, "clip", _check_clip(clip, optional=True))
        if made_for is not None:
            made = tuple(made_for)
            if len(made) != 2 or not all(m is None or isinstance(m, str) for m in made):
                raise ConfigError(f"made_for must be (dataset fingerprint, clustering fingerprint), each a string or None; got {_short(made_for)}")
            made_for = made
        object.__setattr__(self, "made_for", made_for)

    @classmethod
    def load(cls, path: str, *, clip: float | None = None) -> "Weighted":
        """The weights of a ``weights.json`` written by ``streamclip climb`` / ``MixtureResult.save``.

        A weight of 0 (the search zeroes weights below 2e-4, as the CLIMB recipe does) is read as
        1e-12 of the total, because the plan engine needs every weight > 0; at 10^8 samples that is
        under one expected draw (the exact integer counts may still give such a cluster one sample).
        """
        from streamclip.mixture.weights_file import read_weights_file

        doc = read_weights_file(path)
        return cls.from_mixture(doc["weights"], clip=clip, made_for=(doc.get("dataset"), doc.get("clustering")))

    @classmethod
    def from_mixture(cls, weights: Sequence[float], *, clip: float | None = None, made_for: Sequence[str | None] | None = None) -> "Weighted":
        """A searched mixture (weights >= 0, summing to about 1) as a strategy: each 0 becomes ``ZERO_WEIGHT``."""
        values = np.asarray(weights, dtype=np.float64)
        values = np.maximum(values / values.sum(), ZERO_WEIGHT)
        return cls(tuple(values / values.sum()), clip=clip, made_for=made_for)

    def weights(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        if len(self.values) != len(sizes):
            raise ConfigError(
                f"weighted strategy has {len(self.values)} weights but the dataset has {len(sizes)} clusters; "
                "give exactly one weight per cluster"
            )
        return np.asarray(self.values, dtype=np.float64)

    def caps(self, sizes: NDArray[np.int64]) -> NDArray[np.float64]:
        return _caps(sizes, self.clip)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "weights": list(self.values), "clip": self.clip}
        if self.made_for is not None:
            out["made_for"] = list(self.made_for)
        return out


ZERO_WEIGHT = 1e-12
"""What ``Weighted.load`` reads a weight of 0 as (a share of the total): the plan engine needs weights > 0."""


def weighted_parts(strategy: object) -> list[Weighted]:
    """The ``Weighted`` strategies in ``strategy``: itself, or its schedule's phases."""
    if isinstance(strategy, Weighted):
        return [strategy]
    if isinstance(strategy, Schedule):
        return [p.strategy for p in strategy.phases if isinstance(p.strategy, Weighted)]
    return []


def check_made_for(strategy: object, *, dataset: str, clustering: str | None, location: str) -> None:
    """Refuse weights made for another dataset: they would re-weight clusters that are not the ones searched.

    The weights fit when the dataset fingerprint matches, or when the clustering does (the same centroids
    give the same cluster ids: a search on a ``split`` train set applies to the dataset it was split from).
    """
    for part in weighted_parts(strategy):
        if part.made_for is None:
            continue
        made_dataset, made_clustering = part.made_for
        if made_dataset == dataset or (made_clustering is not None and made_clustering == clustering):
            continue
        raise ConfigError(
            f"these weights were made for dataset {made_dataset} (clustering {made_clustering}), not for {location} "
            f"(dataset {dataset}, clustering {clustering}); run streamclip climb on this dataset or one split from it"
        )


SimpleStrategy = Union[Random, Uniform, ClusterClip, Temperature, Weighted]
_SIMPLE: dict[str, type] = {cls.name: cls for cls in (Random, Uniform, ClusterClip, Temperature, Weighted)}


@dataclass(frozen=True, slots=True)
class Phase:
    """Use ``strategy``'s weights until fraction ``until`` of the run's draws (in (0, 1])."""

    until: float
    strategy: SimpleStrategy

    def __post_init__(self) -> None:
        if not _is_number(self.until) or not 0 < self.until <= 1:
            raise ConfigError(f"Phase.until must be a fraction of the run in (0, 1], got until={self.until!r}")
        object.__setattr__(self, "until", float(self.until))
        if not isinstance(self.strategy, tuple(_SIMPLE.values())):
            raise ConfigError(
                f"a phase needs a simple strategy ({', '.join(_SIMPLE)}), got {self.strategy!r}; "
                "schedules do not nest"
            )
        if not math.isinf(self.strategy.caps(np.ones(1, dtype=np.int64))[0]):
            raise ConfigError(
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
            raise ConfigError(f"a schedule needs a non-empty sequence of Phase, got phases={self.phases!r}")
        untils = [p.until for p in phases]
        if any(b <= a for a, b in zip(untils, untils[1:])) or untils[-1] != 1.0:
            raise ConfigError(f"phase ends must increase strictly and the last must be 1.0, got until={untils}")
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
        raise ConfigError(f"switch must be a fraction of the run in (0, 1), got {switch=}")
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


_REQUIRED_HINTS = {
    "weights": "e.g. --weights FILE.json; in Python strategy_params={'weights': [...]}, one weight per cluster",
    "t": "e.g. --t 0.5; 1 is size-proportional, 0 uniform",
}


def _accepted_names() -> str:
    return ", ".join(STRATEGIES)


def check_strategy(strategy: object) -> Strategy:
    """Return ``strategy`` if it is one streamclip can plan, else raise naming the accepted ones."""
    if not isinstance(strategy, (*_SIMPLE.values(), Schedule)):
        classes = ", ".join(cls.__name__ for cls in (*_SIMPLE.values(), Schedule))
        raise ConfigError(
            f"strategy must be a strategy object ({classes}) or, where a name is accepted, one of: "
            f"{_accepted_names()}; got {type(strategy).__name__} {_short(strategy)}"
        )
    return strategy  # type: ignore[return-value]


def _build(name: str, factory: Callable[..., Strategy], params: Mapping[str, Any]) -> Strategy:
    """Call ``factory(**params)`` after checking the keys against its signature, so that a missing or
    unknown parameter is named (with how to give it) instead of surfacing as a TypeError."""
    signature = inspect.signature(factory).parameters
    accepted = [p for p in signature if p not in ("self", "name", "_")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"strategy {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(accepted) or 'no parameters'}"
        )
    missing = [p for p in accepted if signature[p].default is inspect.Parameter.empty and p not in params]
    if missing:
        needs = "; ".join(f"{p}=... ({_REQUIRED_HINTS.get(p, 'required')})" for p in missing)
        raise ConfigError(f"strategy {name} needs {needs}")
    return factory(**params)


def strategy_from_spec(name: str, **params: Any) -> Strategy:
    """Build a strategy from its CLI name and keyword parameters, naming any mistake.

    ``weighted`` also takes ``weights_file`` (a ``weights.json``) instead of ``weights``."""
    if name == "weighted" and "weights_file" in params:
        rest = {k: v for k, v in params.items() if k != "weights_file"}
        if set(rest) - {"clip"}:
            raise ConfigError(f"strategy 'weighted' with weights_file takes only clip besides it, got {', '.join(map(repr, sorted(set(rest) - {'clip'})))}")
        return Weighted.load(params["weights_file"], clip=rest.get("clip"))
    factory = STRATEGIES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ConfigError(f"unknown strategy {_short(name)}; choose one of: {_accepted_names()}")
    return _build(name, factory, params)


def strategy_from_dict(data: Mapping[str, Any]) -> Strategy:
    """Inverse of ``to_dict()``: ``strategy_from_dict(s.to_dict()) == s`` for every strategy."""
    if not isinstance(data, Mapping) or "name" not in data:
        raise ConfigError(f"a strategy dict needs a 'name' key, got {_short(data)}")
    params = {k: v for k, v in data.items() if k != "name"}
    name = data["name"]
    if name == Schedule.name:
        unknown = sorted(set(params) - {"phases", "clip"})
        phases = params.get("phases")
        if unknown or not isinstance(phases, (list, tuple)):
            raise ConfigError(f"a schedule dict has keys 'phases' (a list) and optional 'clip', got {_short(params)}")
        for phase in phases:
            if not isinstance(phase, Mapping) or set(phase) != {"until", "strategy"}:
                raise ConfigError(f"each phase of a schedule dict has exactly the keys 'until' and 'strategy', got {_short(phase)}")
        built = tuple(Phase(p["until"], strategy_from_dict(p["strategy"])) for p in phases)
        return Schedule(built, clip=params.get("clip"))
    cls = _SIMPLE.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigError(f"unknown strategy {_short(name)} in dict; known: {', '.join([*_SIMPLE, Schedule.name])}")
    return _build(name, cls, params)
