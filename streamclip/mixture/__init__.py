"""CLIMB mixture search over cluster weights (numpy only, never torch): ``search(evaluate, K)`` -> ``MixtureResult``.

The result's ``save("weights.json")`` feeds the sampler through ``streamclip.plan.Weighted.load``.
"""

from streamclip.mixture.candidates import Generator
from streamclip.mixture.command import CommandObjective
from streamclip.mixture.merge import ward_groups
from streamclip.mixture.predictor import PredictorSettings, spearman
from streamclip.mixture.search import MixtureResult, search
from streamclip.mixture.weights_file import read_weights_file

__all__ = ["CommandObjective", "Generator", "MixtureResult", "PredictorSettings", "read_weights_file", "search", "spearman", "ward_groups"]
