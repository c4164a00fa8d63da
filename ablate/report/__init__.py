"""Reports: the ablation table and plots, with honest statistics over seeds.

Data functions (``ablation_table``, ``main_effects``, ...) turn the store's DataFrames into
DataFrames of statistics; drawing functions only draw those; writers produce table.md/.csv/.tex,
index.html and report.md. :func:`build_report` does all of it for a study in a database.
"""

from ablate.report._build import Report, build_report, collect_report, load_report, render_report
from ablate.report._data import (
    AblationTable,
    Comparison,
    ParallelCoordinates,
    ablation_table,
    anova_table,
    bootstrap_ci,
    compare_to_baseline,
    compute_hours,
    cost_table,
    factor_importance,
    holm,
    interaction_means,
    is_full_grid,
    learning_curves,
    main_effects,
    parallel_coordinates,
    pareto_front,
    parse_baseline,
    t_interval,
)
from ablate.report._tables import latex_table, markdown_table, rich_table, write_tables

__all__ = [
    "AblationTable",
    "Comparison",
    "ParallelCoordinates",
    "Report",
    "ablation_table",
    "anova_table",
    "bootstrap_ci",
    "build_report",
    "collect_report",
    "compare_to_baseline",
    "compute_hours",
    "cost_table",
    "factor_importance",
    "holm",
    "interaction_means",
    "is_full_grid",
    "latex_table",
    "learning_curves",
    "load_report",
    "main_effects",
    "markdown_table",
    "parallel_coordinates",
    "pareto_front",
    "parse_baseline",
    "render_report",
    "rich_table",
    "t_interval",
    "write_tables",
]
