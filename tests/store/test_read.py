"""load_trials / load_epochs against frames built row by row from the raw tables, on both engines.

The loaders read each table with one query and pivot factor values in pandas; the reference
here builds one record per row with ``param_value``, as the loaders did before, so any change
of a value, a column order or a dtype shows up.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from ablate import Study
from ablate.store import ResultStore, load_epochs, load_trials
from ablate.store._columns import EPOCH_METRICS, INT_METRICS, TRIAL_METRICS
from ablate.store._factors import param_value
from ablate.store._read import (
    EPOCH_COLUMNS_AFTER,
    EPOCH_COLUMNS_BEFORE,
    TRIAL_COLUMNS_AFTER,
    TRIAL_COLUMNS_BEFORE,
)


def custom_train(config: Any) -> dict[str, float]:  # a user train function: allows extra factors
    return {"val_acc": 0.5}


def every_kind() -> Study:
    """Factors of every kind the store knows: int, float, bool, text, json, and mixed (a custom
    trainer's extra factor holding a number, a word and a flag)."""
    return Study(
        name="kinds",
        base=dict(dataset="digits", epochs=3),
        factors=dict(
            image_size=[8, 16],
            lr=[0.1, 0.025],
            cnn_batch_norm=[True, False],
            augment=["none", "basic"],
            lr_groups=[[1.0], [1.0, 0.5]],
            width=[2, "wide", True],
            device=["cpu", "auto"],  # a factor named like a trial column: that one is renamed
        ),
        design="ofat",
        train=custom_train,
    )


def fill(store: ResultStore, study: Study, *, epochs_for: int = 3) -> None:
    store.register_study(study)
    store.add_trials(study, study.validate())
    while (
        c := store.claim_next_trial(study.name, worker="w", device="cuda:0", lease_s=60)
    ) is not None:
        if c.number % 4 != 3:  # every 4th trial never recorded an epoch
            for e in range(1, epochs_for + 1):
                metrics = {"epoch": e, "val_acc": c.number / 10 + e / 100, "lr": 0.1 / e}
                if e == 2:
                    metrics["grad_norm"] = float(c.number)  # goes to "extra"
                store.record_epoch(c.trial_id, metrics)
        status = "failed" if c.number == 2 else "completed"
        store.finish_trial(
            c.trial_id, "w", status=status, metrics={"val_acc": c.number / 10, "epochs_run": 3}
        )


def reference_factors(
    store: ResultStore, name: str
) -> tuple[dict[str, str], dict[int, dict[str, Any]]]:
    """Each trial's factor values, one ORM row of trial_params at a time."""
    from sqlalchemy import select

    from ablate.store._models import Trial, TrialParam

    info = store.load_study(name)
    kinds = dict(info.factor_kinds)
    values: dict[int, dict[str, Any]] = {}
    with store.session() as session:
        params = session.execute(
            select(TrialParam)
            .join(Trial, Trial.id == TrialParam.trial_id)
            .where(Trial.study_id == info.study_id)
        ).scalars()
        for p in params:
            if p.name in kinds:
                row = {
                    "value_num": p.value_num,
                    "value_text": p.value_text,
                    "value_bool": p.value_bool,
                    "value_json": p.value_json,
                }
                values.setdefault(p.trial_id, {})[p.name] = param_value(row, kinds[p.name])
    return kinds, values


def typed(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    for f, kind in kinds.items():
        column = frame[f]
        null = column.isna().any()
        if kind == "int":
            frame[f] = column.astype("Int64" if null else "int64")
        elif kind == "float":
            frame[f] = pd.to_numeric(column, errors="coerce").astype("float64")
        elif kind == "bool":
            frame[f] = column.astype("boolean" if null else "bool")
        elif kind == "text":
            frame[f] = column.astype("str")
    return frame


def reference_epochs(store: ResultStore, name: str) -> pd.DataFrame:
    """load_epochs row by row: the ORM rows of the join, one record each."""
    from sqlalchemy import select

    from ablate.store._models import Epoch, Trial

    kinds, factor_values = reference_factors(store, name)
    info = store.load_study(name)
    rename = {
        c: f"trial_{c}" if c in kinds else c for c in (*EPOCH_COLUMNS_BEFORE, *EPOCH_COLUMNS_AFTER)
    }
    trial_cols = [c for c in EPOCH_COLUMNS_BEFORE if c != "trial_id"]
    with store.session() as session:
        rows = session.execute(
            select(
                Epoch.trial_id,
                *(getattr(Trial, c) for c in trial_cols),
                *(getattr(Epoch, c) for c in EPOCH_COLUMNS_AFTER),
            )
            .join(Trial, Trial.id == Epoch.trial_id)
            .where(Trial.study_id == info.study_id)
            .order_by(Trial.number, Epoch.epoch)
        ).all()
    records = []
    for row in rows:
        values = dict(zip(["trial_id", *trial_cols, *EPOCH_COLUMNS_AFTER], row, strict=True))
        record = {rename[c]: values[c] for c in EPOCH_COLUMNS_BEFORE}
        record.update({f: factor_values.get(values["trial_id"], {}).get(f) for f in kinds})
        record.update({rename[c]: values[c] for c in EPOCH_COLUMNS_AFTER})
        records.append(record)
    columns = [
        *(rename[c] for c in EPOCH_COLUMNS_BEFORE),
        *kinds,
        *(rename[c] for c in EPOCH_COLUMNS_AFTER),
    ]
    frame = typed(pd.DataFrame(records, columns=columns), kinds)
    frame = frame.astype(
        {rename[c]: "int64" for c in ("trial_id", "number", "seed", "replicate", "epoch")}
    )
    for m in EPOCH_METRICS:
        frame[rename[m]] = pd.to_numeric(frame[rename[m]], errors="coerce").astype("float64")
    return frame


def reference_trials(store: ResultStore, name: str) -> pd.DataFrame:
    from sqlalchemy import select

    from ablate.store._models import Trial

    kinds, factor_values = reference_factors(store, name)
    info = store.load_study(name)
    rename = {
        c: f"trial_{c}" if c in kinds else c for c in (*TRIAL_COLUMNS_BEFORE, *TRIAL_COLUMNS_AFTER)
    }
    fields = [c for c in (*TRIAL_COLUMNS_BEFORE, *TRIAL_COLUMNS_AFTER) if c != "trial_id"]
    with store.session() as session:
        rows = session.execute(
            select(Trial.id, *(getattr(Trial, c) for c in fields))
            .where(Trial.study_id == info.study_id)
            .order_by(Trial.number)
        ).all()
    records = []
    for row in rows:
        values = dict(zip(["trial_id", *fields], row, strict=True))
        record = {rename[c]: values[c] for c in TRIAL_COLUMNS_BEFORE}
        record.update({f: factor_values.get(values["trial_id"], {}).get(f) for f in kinds})
        record.update({rename[c]: values[c] for c in TRIAL_COLUMNS_AFTER})
        records.append(record)
    columns = [
        *(rename[c] for c in TRIAL_COLUMNS_BEFORE),
        *kinds,
        *(rename[c] for c in TRIAL_COLUMNS_AFTER),
    ]
    frame = typed(pd.DataFrame(records, columns=columns), kinds)
    ints = {rename[c]: "int64" for c in ("trial_id", "number", "seed", "replicate", "attempt")}
    frame = frame.astype({**ints, **{m: "Int64" for m in INT_METRICS}})
    for m in TRIAL_METRICS:
        if m not in INT_METRICS and m != "stop_reason":
            frame[m] = pd.to_numeric(frame[m], errors="coerce").astype("float64")
    for c in ("started_at", "finished_at"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame


def drop_param(store: ResultStore, number: int, factor: str) -> None:
    """Remove one stored factor value (a trial planned before the factor existed, say)."""
    with store.session() as session:
        session.execute(
            text(
                "DELETE FROM trial_params WHERE name = :f AND trial_id = (SELECT id FROM trials WHERE number = :n)"
            ),
            {"f": factor, "n": number},
        )


def test_frames_equal_row_by_row_reference_for_every_factor_kind(store: ResultStore) -> None:
    fill(store, every_kind())
    trials = load_trials("kinds", store)
    epochs = load_epochs("kinds", store)
    pd.testing.assert_frame_equal(trials, reference_trials(store, "kinds"), check_exact=True)
    pd.testing.assert_frame_equal(epochs, reference_epochs(store, "kinds"), check_exact=True)
    assert [
        str(trials[f].dtype) for f in ("image_size", "lr", "cnn_batch_norm", "lr_groups", "width")
    ] == ["int64", "float64", "bool", "object", "object"]
    assert pd.api.types.is_string_dtype(trials["augment"])
    # The OFAT baseline (number 0) varies nothing; the mixed factor keeps each value's own type.
    assert trials.set_index("number").loc[[0, 6, 7], "width"].tolist() == [2, "wide", True]
    assert trials["trial_device"].tolist() == ["cuda:0"] * len(trials)
    assert set(epochs["trial_id"]) == set(trials.loc[trials["number"] % 4 != 3, "trial_id"])
    assert epochs.loc[epochs["epoch"] == 2, "extra"].map(lambda d: set(d)).tolist() == [
        {"grad_norm"}
    ] * (len(epochs) // 3)


def test_missing_factor_values_give_nullable_columns(store: ResultStore) -> None:
    fill(store, every_kind())
    for factor in ("image_size", "cnn_batch_norm", "augment", "lr_groups", "width", "lr"):
        drop_param(store, 1, factor)
    trials = load_trials("kinds", store)
    pd.testing.assert_frame_equal(trials, reference_trials(store, "kinds"), check_exact=True)
    pd.testing.assert_frame_equal(
        load_epochs("kinds", store), reference_epochs(store, "kinds"), check_exact=True
    )
    one = trials.set_index("number").loc[1]
    assert str(trials["image_size"].dtype) == "Int64" and pd.isna(one["image_size"])
    assert str(trials["cnn_batch_norm"].dtype) == "boolean" and pd.isna(one["cnn_batch_norm"])
    assert one["lr_groups"] is None and one["width"] is None and pd.isna(one["lr"])


def test_epochs_of_given_trials(store: ResultStore) -> None:
    fill(store, every_kind())
    other = Study(
        name="other", base=dict(dataset="digits", epochs=3), factors=dict(image_size=[8, 16])
    )
    fill(store, other)
    every = load_epochs("kinds", store)
    foreign = load_trials("other", store)["trial_id"].tolist()
    by_number = dict(zip(every["number"], every["trial_id"], strict=False))
    # Any order, repeats; trial 6 holds width="wide", so the mixed column stays mixed as in every.
    wanted = [by_number[6], by_number[0], by_number[6]]
    # Ids of another study's trials are ignored.
    part = load_epochs("kinds", store, trial_ids=[*wanted, *foreign])
    expected = every[every["trial_id"].isin(wanted)].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected, check_exact=True)
    none = load_epochs("kinds", store, trial_ids=[])
    assert none.empty and list(none.columns) == list(every.columns)


def test_many_trial_ids_are_read_in_chunks_and_stay_ordered(
    store: ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ablate.store._read

    fill(store, every_kind())
    every = load_epochs("kinds", store)
    ids = every["trial_id"].drop_duplicates().tolist()[::-1]  # newest first: reading must not care
    monkeypatch.setattr(ablate.store._read, "IDS_PER_QUERY", 2)
    part = load_epochs("kinds", store, trial_ids=ids)
    assert len(ids) > 2 * 2
    pd.testing.assert_frame_equal(part, every, check_exact=True)
    assert part["number"].is_monotonic_increasing
