"""Reports: the ablation table and plots, with honest statistics over seeds.

The flow: :func:`load_study_data` reads a study from the store (:class:`StudyData`),
:func:`collect_report` computes every number (:class:`Report`; nothing drawn) with the user's
:class:`ReportOptions`, :func:`render_report` draws and writes it; :func:`build_report` does all
three. The numbers come from data functions a test can check without drawing: ``_trials``
(which trials count), ``_stats`` (tests, intervals, power), ``_table`` (the ablation table),
``_effects`` (marginal means, ANOVA, fANOVA), ``_figure_data`` (curves, parallel coordinates,
cost); ``_tables`` and ``_html`` write them, ``_plots`` draws them. ``_compare`` compares
studies on the same data (:func:`load_comparison`, :func:`render_comparison`).
"""

from ablate.report._build import (
    build_report,
    collect_report,
    load_report,
    load_study_data,
    render_report,
)
from ablate.report._compare import (
    StudyComparison,
    check_study_names,
    compare_studies,
    comparison_cells,
    comparison_folder,
    comparison_notes,
    comparison_verdicts,
    load_comparison,
    render_comparison,
)
from ablate.report._effects import (
    anova_table,
    continuous_points,
    estimated_marginal_means,
    factor_importance,
    interaction_means,
    is_full_grid,
    main_effects,
    seeds_crossed,
)
from ablate.report._figure_data import (
    ParallelCoordinates,
    compute_hours,
    cost_table,
    learning_curves,
    parallel_coordinates,
    pareto_front,
)
from ablate.report._model import Report, ReportOptions, StudyData
from ablate.report._stats import (
    Comparison,
    adjust_family,
    bootstrap_ci,
    compare_to_baseline,
    t_interval,
)
from ablate.report._table import AblationTable, ablation_table, parse_baseline
from ablate.report._tables import (
    cells_rich_table,
    latex_table,
    markdown_table,
    rich_table,
    table_cells,
    table_notes,
    write_tables,
)

__all__ = [
    "AblationTable",
    "Comparison",
    "ParallelCoordinates",
    "Report",
    "ReportOptions",
    "StudyComparison",
    "StudyData",
    "ablation_table",
    "adjust_family",
    "anova_table",
    "bootstrap_ci",
    "build_report",
    "cells_rich_table",
    "check_study_names",
    "collect_report",
    "compare_studies",
    "compare_to_baseline",
    "comparison_cells",
    "comparison_folder",
    "comparison_notes",
    "comparison_verdicts",
    "compute_hours",
    "continuous_points",
    "cost_table",
    "estimated_marginal_means",
    "factor_importance",
    "interaction_means",
    "is_full_grid",
    "latex_table",
    "learning_curves",
    "load_comparison",
    "load_report",
    "load_study_data",
    "main_effects",
    "markdown_table",
    "parallel_coordinates",
    "pareto_front",
    "parse_baseline",
    "render_comparison",
    "render_report",
    "rich_table",
    "seeds_crossed",
    "t_interval",
    "table_cells",
    "table_notes",
    "write_tables",
]
