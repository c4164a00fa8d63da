"""`ResultStore.find_trial`, what a warm start reads of its source, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from ablate import Study, StudyError
from ablate.store import ResultStore


def test_find_trial_reads_one_trial_with_its_config_token_and_checkpoints(db_url: str) -> None:
    study = Study(name="src", base=dict(dataset="digits", epochs=1), factors=dict(lr=[0.1, 0.01]), seeds=[0])
    with ResultStore(db_url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        claimed = store.claim_next_trial("src", worker="w", lease_s=60)
        assert claimed is not None and claimed.number == 0
        assert store.finish_trial(claimed.trial_id, "w", status="completed", metrics={"val_acc": 0.5},
                                  artifacts={"best_checkpoint": "/r/best.pt", "last_checkpoint": "/r/last.pt"})
        done = store.find_trial("src", 0)
        assert done is not None
        assert (done.trial_id, done.study_name, done.study_version, done.number, done.seed, done.status) == (
            claimed.trial_id, "src", 1, 0, 0, "completed")
        assert done.config["lr"] == 0.1 and done.run_token == claimed.run_token
        assert done.artifacts == {"best_checkpoint": "/r/best.pt", "last_checkpoint": "/r/last.pt"}
        queued = store.find_trial("src", 1)
        assert queued is not None and queued.status == "queued" and queued.artifacts == {}
        assert store.find_trial("src", 2) is None
        with pytest.raises(StudyError, match="no study named 'other'"):
            store.find_trial("other", 0)
