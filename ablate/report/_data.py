"""Former home of every data function, kept as re-exports while other branches still import it.

New code imports from the module of its concern: ``_trials`` (which trials count, levels),
``_stats`` (tests, intervals, power), ``_table`` (the ablation table), ``_effects`` (marginal
means, ANOVA, fANOVA) and ``_figure_data`` (curves, parallel coordinates, cost).
"""

from __future__ import annotations

from ablate.report._effects import (
    IMPORTANCE_DEPTH,
    IMPORTANCE_MAX_TRIALS,
    IMPORTANCE_TREES,
    anova_table,
    factor_importance,
    interaction_means,
    is_full_grid,
    main_effects,
)
from ablate.report._figure_data import (
    CURVE_SERIES,
    MAX_PARALLEL_LINES,
    ParallelCoordinates,
    compute_hours,
    cost_table,
    device_kind,
    learning_curves,
    log_scale,
    parallel_coordinates,
    pareto_front,
)
from ablate.report._stats import ALPHA, Comparison, bootstrap_ci, compare_to_baseline, t_interval
from ablate.report._table import (
    AblationTable,
    ablation_table,
    config_labels,
    find_config,
    parse_baseline,
)
from ablate.report._trials import (
    COMPLETED,
    MAX_LEVELS,
    METRIC_COLUMNS,
    TABLE_METRICS,
    check_metric,
    completed_trials,
    excluded_counts,
    format_level,
    formatted_levels,
    hashable_factors,
    level_order,
    metric_direction,
    split_factors,
)

__all__ = [
    "ALPHA", "COMPLETED", "CURVE_SERIES", "IMPORTANCE_DEPTH", "IMPORTANCE_MAX_TRIALS", "IMPORTANCE_TREES",
    "MAX_LEVELS", "MAX_PARALLEL_LINES", "METRIC_COLUMNS", "TABLE_METRICS", "AblationTable", "Comparison",
    "ParallelCoordinates", "ablation_table", "anova_table", "bootstrap_ci", "check_metric", "compare_to_baseline",
    "completed_trials", "compute_hours", "config_labels", "cost_table", "device_kind", "excluded_counts",
    "factor_importance", "find_config", "format_level", "formatted_levels", "hashable_factors",
    "interaction_means", "is_full_grid", "learning_curves", "level_order", "log_scale", "main_effects",
    "metric_direction", "parallel_coordinates", "pareto_front", "parse_baseline", "split_factors", "t_interval",
]  # fmt: skip
