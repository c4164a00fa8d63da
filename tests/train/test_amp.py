"""Mixed precision: what ``amp`` trains at on each device, refused at plan on ``device="cpu"``,
fp32 with one line when the device turns out to be the CPU, and recorded with the trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ablate.errors import StudyError
from ablate.run import run_study
from ablate.store import load_environments
from ablate.study import load_studies
from ablate.train import check_trial_config, smoke_config, trial_precision
from ablate.train._trainer import _Trial, amp_precision

from .helpers import tiny

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="what a machine without CUDA does")


@pytest.mark.parametrize("amp", ["auto", "off", "fp16", "bf16"])
def test_every_mode_is_fp32_on_the_cpu(amp: str) -> None:
    assert amp_precision(amp, "cpu") == "fp32"


def test_on_cuda_the_mode_is_what_was_asked() -> None:
    assert amp_precision("off", "cuda") == "fp32"
    assert amp_precision("fp16", "cuda") == "fp16" and amp_precision("bf16", "cuda") == "bf16"


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_autocast_with_device_cpu_is_refused_at_plan(amp: str) -> None:
    with pytest.raises(StudyError, match=rf"field 'amp' is '{amp}' but field 'device' is 'cpu'"):
        check_trial_config(tiny(amp=amp, device="cpu"))
    check_trial_config(tiny(amp=amp, device="auto"))
    check_trial_config(tiny(amp="auto", device="cpu"))


@NO_CUDA
@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_the_trainer_runs_fp32_when_the_device_turns_out_to_be_the_cpu(amp: str) -> None:
    config = tiny(amp=amp, device="auto")
    precision, note = trial_precision(config)
    assert precision == "fp32"
    assert note == (
        f"amp={amp!r} trains at fp32 here: the device is the CPU, where autocast is many times slower than fp32"
    )
    trial = _Trial(config, metric="val_acc", maximize=True, checkpoint_dir=None)
    assert trial.amp_dtype is None and not trial.scaler.is_enabled()
    assert trial_precision(tiny(amp="auto", device="auto")) == ("fp32", None)


@pytest.mark.slow
def test_smoke_of_a_cuda_study_with_fp16_records_what_ran_and_says_so_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study_file = tmp_path / "fp16.py"
    study_file.write_text(
        "from ablate import Study\n"
        "study = Study(name='fp16', base=dict(dataset='synthetic', num_classes=3, image_size=12, cnn_blocks=2,\n"
        "    cnn_filters=4, cnn_dense=8, device='cuda', amp='fp16'), factors=dict(lr=[0.01, 0.02]))\n"
    )
    (study,) = load_studies(study_file)
    assert smoke_config(study.validate()[0].config).amp == "fp16"  # the trainer resolves it
    db = f"sqlite:///{tmp_path / 'r.db'}"
    (outcome,) = run_study(study_file, db=db, smoke=True, runs_dir=tmp_path / "runs")
    assert outcome.counts == {"completed": 2}
    expected = "fp16" if torch.cuda.is_available() else "fp32"
    envs = load_environments("fp16_smoke", db=db)
    assert [extra["precision"] for extra in envs["extra"]] == [expected, expected]
    said = [line for line in capsys.readouterr().out.splitlines() if "trains at fp32 here" in line]
    assert len(said) == (0 if torch.cuda.is_available() else 1), said
