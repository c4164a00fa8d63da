"""Optional Weights & Biases logging: one W&B run per trial, grouped by study.

Never required: without the `wandb` package the run stops with one line saying how to install
it; without an API key W&B runs offline and writes its run directory under the runs folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.errors import AblateError

if TYPE_CHECKING:
    from ablate.store import ClaimedTrial


def start_run(project: str, study: str, claimed: ClaimedTrial, runs_dir: Path) -> Any:
    try:
        import wandb
    except ImportError as e:
        raise AblateError("W&B logging needs the wandb package: pip install 'ablate[wandb]'") from e
    has_key = bool(os.environ.get("WANDB_API_KEY")) or Path("~/.netrc").expanduser().exists()
    mode = os.environ.get("WANDB_MODE") or ("online" if has_key else "offline")
    directory = runs_dir / study
    directory.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=project,
        group=study,
        name=f"{study}-{claimed.number}-seed{claimed.seed}",
        job_type="trial",
        config={**claimed.config.to_dict(), "params": dict(claimed.params), "trial_number": claimed.number},
        dir=str(directory),
        mode=mode,  # type: ignore[arg-type]
        reinit="finish_previous",
        # No banner, sync hints or run summary per trial: the run's own display says enough.
        settings=wandb.Settings(silent=True),
    )


def finish_run(run: Any, status: str, metrics: Mapping[str, Any]) -> None:
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            run.summary[key] = value
    run.summary["status"] = status
    run.finish(exit_code=0 if status in ("completed", "pruned") else 1)
