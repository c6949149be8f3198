"""The plan engine: which clusters and documents each segment of a run draws (pure numpy, no I/O).

    strategy  --RunSchedule-->  D_k(t)  --counts_at-->  integer draws  --walk-->  (shuffle_units, sample_ids)
"""

from streamclip.plan.counts import counts_at, due_offsets
from streamclip.plan.report import PlanPicture, PlanSummary, plan_picture, plot_plan, summarize
from streamclip.plan.schedule import RunSchedule
from streamclip.plan.segment import ClusterLayout, num_segments, plan_segment
from streamclip.plan.strategies import (
    STRATEGIES,
    ClusterClip,
    Phase,
    Random,
    Schedule,
    SimpleStrategy,
    Strategy,
    Temperature,
    Uniform,
    Weighted,
    general_to_specific,
    specific_to_general,
    strategy_from_dict,
    strategy_from_spec,
)
from streamclip.plan.walk import pass_order, walk_cluster, walk_clusters

__all__ = [
    "STRATEGIES",
    "ClusterClip",
    "ClusterLayout",
    "Phase",
    "PlanPicture",
    "PlanSummary",
    "Random",
    "RunSchedule",
    "Schedule",
    "SimpleStrategy",
    "Strategy",
    "Temperature",
    "Uniform",
    "Weighted",
    "counts_at",
    "due_offsets",
    "general_to_specific",
    "num_segments",
    "pass_order",
    "plan_picture",
    "plan_segment",
    "plot_plan",
    "specific_to_general",
    "strategy_from_dict",
    "strategy_from_spec",
    "summarize",
    "walk_cluster",
    "walk_clusters",
]
