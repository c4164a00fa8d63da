"""`ablate.optuna_study` on real runs: a tiny CNN trained for real (a grid of categorical levels)
and a random search over float, int and categorical ranges with failures. Optuna's own tools
read them and give the numbers `load_trials` / `load_epochs` give."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import TrialState

import ablate
from ablate.run import run_study
from ablate.store import load_epochs, load_trials
from ablate.study import load_studies

pytestmark = pytest.mark.slow  # trains a model

STUDIES = Path(__file__).parent / "studies"
STATES = {"completed": "COMPLETE", "failed": "FAIL", "pruned": "PRUNED", "running": "RUNNING", "queued": "WAITING"}


@pytest.fixture
def ran(db_url: str, tmp_path: Path) -> str:
    for name in ("dash_train", "dash_search"):
        run_study(STUDIES / f"{name}.py", db=db_url, runs_dir=tmp_path / "runs")
    return db_url


def _same_values(ours: pd.Series, theirs: pd.Series) -> None:
    assert ours.tolist() == pytest.approx(theirs.tolist(), nan_ok=True)


def _plain(column: pd.Series) -> list[object]:
    return [None if pd.isna(v) else v for v in column]


def test_optuna_reads_what_load_trials_and_load_epochs_read(ran: str) -> None:
    for name, factors in (("dash_train", ["lr", "cnn_filters"]), ("dash_search", ["x", "lr", "width"])):
        study = ablate.optuna_study(name, db=ran)
        trials = load_trials(name, db=ran)
        frame = study.trials_dataframe()
        assert len(frame) == len(trials) == 8
        assert frame["number"].tolist() == trials["number"].tolist()
        assert frame["state"].tolist() == [STATES[s] for s in trials["status"]]
        completed = trials["status"] == "completed"
        _same_values(frame["value_val_acc"][completed.to_numpy()], trials["val_acc"][completed])
        assert frame["value_val_acc"][~completed.to_numpy()].isna().all()
        for factor in factors:
            assert frame[f"params_{factor}"].tolist() == trials[factor].tolist()
        for column in ("seed", "worker", "val_loss", "error"):
            attrs = frame.get(f"user_attrs_{column}", pd.Series([None] * len(frame)))  # no error: no column
            assert _plain(attrs) == pytest.approx(_plain(trials[column]))
        # The curves: every recorded epoch of the study metric, nothing else.
        epochs = load_epochs(name, db=ran)
        curves = {t.number: t.intermediate_values for t in study.trials}
        assert sum(len(c) for c in curves.values()) == len(epochs) > 0
        for _, row in epochs.iterrows():
            assert curves[row["number"]][row["epoch"]] == row["val_acc"]

    search = ablate.optuna_study("dash_search", db=ran)
    failed = [t for t in search.trials if t.state == TrialState.FAIL]
    assert failed and all(t.params["x"] == "c" for t in failed)
    assert all("exploded on x=c" in t.user_attrs["error"] for t in failed)
    assert search.trials[0].distributions == {
        "x": CategoricalDistribution(["a", "b", "c"]),
        "lr": FloatDistribution(1e-3, 1e-1, log=True),
        "width": IntDistribution(1, 8),
    }
    train = ablate.optuna_study("dash_train", db=ran)
    assert train.trials[0].distributions == {
        "lr": CategoricalDistribution([0.05, 0.1]),
        "cnn_filters": CategoricalDistribution([4, 8]),
    }


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_plot_intermediate_values_draws_the_epochs(ran: str) -> None:
    # Optuna's matplotlib backend (plotly is not a dependency of ablate); the same data function
    # feeds the plotly one, checked too where plotly is installed.
    matplotlib.use("Agg")
    study = ablate.optuna_study("dash_train", db=ran)
    epochs = load_epochs("dash_train", db=ran)
    expected = sorted(
        tuple(group.sort_values("epoch")["val_acc"].tolist()) for _, group in epochs.groupby("number")
    )
    ax = optuna.visualization.matplotlib.plot_intermediate_values(study)
    drawn = sorted(tuple(float(y) for y in line.get_ydata()) for line in ax.get_lines())
    assert drawn == expected
    if importlib.util.find_spec("plotly") is not None:
        figure = optuna.visualization.plot_intermediate_values(study)
        assert sorted(tuple(float(y) for y in d.y) for d in figure.data) == expected


def test_param_importances_are_those_of_the_same_trials_in_optuna(ran: str) -> None:
    # The same trials put into an ordinary in-memory Optuna study, with the distributions the
    # study file declares, give the same importances.
    for name in ("dash_train", "dash_search"):
        ours = ablate.optuna_study(name, db=ran)
        [declared] = load_studies(STUDIES / f"{name}.py")
        distributions = {f: space.optuna_distribution(f) for f, space in declared.spaces.items()}
        copy = optuna.create_study(direction="maximize")
        for row in load_trials(name, db=ran).to_dict("records"):
            done = row["status"] == "completed"
            copy.add_trial(
                optuna.trial.create_trial(
                    params={f: row[f] for f in distributions},
                    distributions=distributions,
                    value=row["val_acc"] if done else None,
                    state=TrialState.COMPLETE if done else TrialState.FAIL,
                )
            )
        got = optuna.importance.get_param_importances(ours, evaluator=FanovaImportanceEvaluator(seed=0))
        want = optuna.importance.get_param_importances(copy, evaluator=FanovaImportanceEvaluator(seed=0))
        assert set(got) == set(ours.trials[0].params) and got == pytest.approx(want)
