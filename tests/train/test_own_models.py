"""A study's own models (Study(models=...)): planned, checked, trained, resumed and frozen like a
library's; bad factories refused at plan time with one line."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from ablate.errors import StudyError
from ablate.run import plan_trials
from ablate.study import load_studies
from ablate.train import TrialPruned, train_trial, use_models
from ablate.train._stages import resolve_stages

from .helpers import comparable, tiny

# A study file with a model class of its own, declaring its stages; {extra} adds lines.
STUDY = '''
import torch
from torch import nn
from ablate import Study

class TinyNet(nn.Module):
    stages = ("stem", "layer1", "head")

    def __init__(self, num_classes, in_chans=3, width=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1, bias=True), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=True), nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

    def forward(self, x):
        return self.head(self.layer1(self.stem(x)))

{extra}

study = Study(
    name="own_model",
    base=dict(dataset="synthetic", num_classes=4, synthetic_samples={samples}, image_size=12, epochs={epochs},
              batch_size=16, device="cpu", model="tiny_net", augment="none",
              pretrained=True, weights_path={weights!r}),
    factors={factors},
    models={models},
)
'''


def write_study(
    folder: Path, *, extra: str = "", factors: str = "dict(freeze=['none', 'stem'])",
    models: str = '{"tiny_net": TinyNet}', epochs: int = 2, samples: int = 64,
) -> Path:
    path = folder / "own_model.py"
    weights = folder / "tiny_net.pt"  # freezing needs weights: the study's own, from a file
    torch.manual_seed(0)
    torch.save(TinyNet(4).state_dict(), weights)
    path.write_text(STUDY.format(extra=textwrap.dedent(extra), factors=factors, models=models,
                                 epochs=epochs, samples=samples, weights=str(weights)))
    return path


def plan_error(path: Path) -> str:
    with pytest.raises(StudyError) as e:
        plan_trials(load_studies(path)[0], smoke=True)
    text = str(e.value)
    assert "\n" not in text
    return text


class TinyNet(nn.Module):
    stages = ("stem", "layer1", "head")

    def __init__(self, num_classes: int, in_chans: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 4, 3, padding=1), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer1(self.stem(x)))


def test_a_study_file_model_plans_and_its_declared_stages_are_freeze_choices(tmp_path: Path) -> None:
    planned = plan_trials(load_studies(write_study(tmp_path))[0], smoke=True)
    assert [s.config.freeze for s in planned.specs] == ["none", "stem"]
    stages = resolve_stages(TinyNet(4))
    assert stages.names == ["stem", "layer1", "head"] and stages.classifier == "head.2"
    text = plan_error(write_study(tmp_path, factors="dict(freeze=['layer2'])"))
    assert "field 'freeze' is 'layer2', not a stage of model 'tiny_net' (its stages: stem, layer1, head)" in text
    text = plan_error(write_study(tmp_path, factors="dict(lr_groups=[[1, 0.5, 0.25]])"))
    assert "field 'lr_groups' has 3 multipliers but model 'tiny_net' has 2 stages" in text


def test_a_factory_function_gets_the_config(tmp_path: Path) -> None:
    extra = '''
    def wide(config, num_classes):
        return TinyNet(num_classes, width=config.extra["width"])
    '''
    path = write_study(tmp_path, extra=extra, factors="dict(width=[4, 8])", models='{"tiny_net": wide}')
    text = plan_error(path)  # `width` is no field of the built-in trainer: refused as usual
    assert "width" in text
    path = write_study(tmp_path, extra=extra, factors="dict(freeze=['none'])", models='{"tiny_net": wide}')
    with pytest.raises(StudyError, match=r"wide\(config, num_classes\) raised KeyError: 'width'"):
        plan_trials(load_studies(path)[0])


@pytest.mark.parametrize(
    ("extra", "models", "expected"),
    [
        ("def broken(num_classes):\n    raise ValueError('no such depth')\n", '{"tiny_net": broken}',
         "field 'model' is 'tiny_net': broken(num_classes) raised ValueError: no such depth"),
        ("def nothing(num_classes):\n    return 3\n", '{"tiny_net": nothing}',
         "field 'model' is 'tiny_net': nothing() returned int, not a torch nn.Module"),
        ("class Pair(TinyNet):\n    def forward(self, x):\n        y = super().forward(x)\n        return y, y\n",
         '{"tiny_net": Pair}', "field 'model' is 'tiny_net': on a 2x3x12x12 batch it returns a tuple; "
         "expected logits of shape (2, 4), (batch, num_classes)"),
        ("class Wide(TinyNet):\n    def __init__(self, num_classes):\n        super().__init__(num_classes + 1)\n",
         '{"tiny_net": Wide}', "on a 2x3x12x12 batch it returns a tensor of shape (2, 5); expected logits of shape (2, 4)"),
        ("def needs(num_classes, depth):\n    return TinyNet(num_classes)\n", '{"tiny_net": needs}',
         "models: 'tiny_net' (needs) needs an argument 'depth'; a model factory takes only config, in_chans, num_classes"),
        ("class Loose(TinyNet):\n    stages = ('stem', 'head')\n", '{"tiny_net": Loose}',
         "model Loose: parameter 'layer1.0.weight' belongs to none of its declared stages (stem, head)"),
        ("class Typo(TinyNet):\n    stages = ('stem', 'layer_1', 'head')\n", '{"tiny_net": Typo}',
         "model Typo: declared stage 'layer_1' is not one of its submodules (its children: stem, layer1, head)"),
        ("", '{"resnet18": TinyNet}', "models: 'resnet18' is already the name of a built-in model (any timm name)"),
        ("", '{"cnn": TinyNet}', "models: 'cnn' is already the name of a built-in model"),
        ("", '{"tiny_net": 3}', "models['tiny_net'] is int 3; give an nn.Module class or a function"),
    ],
    ids=["raises", "non-module", "tuple-output", "wrong-classes", "extra-argument", "loose-params",
         "unknown-stage", "timm-name", "cnn-name", "not-callable"],
)
def test_bad_model_factories_are_refused_at_plan_with_one_line(
    tmp_path: Path, extra: str, models: str, expected: str
) -> None:
    factors = "dict(freeze=['none'])"
    name = models.split('"')[1]
    path = write_study(tmp_path, extra=extra, models=models, factors=factors)
    if name != "tiny_net":
        path.write_text(path.read_text().replace('model="tiny_net"', f'model="{name}"'))
    text = plan_error(path)
    assert expected in text, text
    assert "own_model.py: study 'own_model': " in text or "own_model.py:" in text.split(" ")[0], text


def test_a_worker_without_the_study_file_refuses_a_study_with_own_models(tmp_path: Path, sqlite_url: str) -> None:
    from ablate.run import _dispatch
    from ablate.store import ResultStore

    # Public as ablate.run.load_study_for_worker on later mains; private _load_for_worker before.
    load_for_worker = getattr(_dispatch, "load_study_for_worker", None) or _dispatch._load_for_worker

    study = load_studies(write_study(tmp_path))[0]
    plan_trials(study)
    with ResultStore(sqlite_url) as store:
        store.register_study(study)
        with pytest.raises(StudyError, match=r"uses Python code .*give its study file"):
            load_for_worker(store, None, "own_model", False)
        assert load_for_worker(store, str(tmp_path / "own_model.py"), "own_model", False).models


@pytest.mark.slow
def test_own_model_trains_and_resumes_exactly_and_freezes_its_declared_stage(tmp_path: Path) -> None:
    use_models({"tiny_net": TinyNet})
    write_study(tmp_path)  # and its weights file
    cfg = tiny(model="tiny_net", epochs=4, freeze="stem", augment="none", amp="off", pretrained=True,
               weights_path=str(tmp_path / "tiny_net.pt"))
    whole = train_trial(cfg, checkpoint_dir=tmp_path / "whole")
    assert whole.status == "completed" and whole.epochs_run == 4
    assert (tmp_path / "whole" / "best.pt").exists() and (tmp_path / "whole" / "predictions.npz").exists()
    # The frozen stem has no trainable parameter: TinyNet's stem holds 3*4*9 + 4 of 4 + 1 layers.
    stem = sum(p.numel() for p in TinyNet(4).stem.parameters())
    assert whole.n_params - whole.n_trainable_params == stem

    class Stop:
        def report_epoch(self, m: object) -> None:
            if getattr(m, "epoch", 0) == 2:
                raise TrialPruned()

    with pytest.raises(TrialPruned):
        train_trial(cfg, reporter=Stop(), checkpoint_dir=tmp_path / "parts")
    resumed = train_trial(cfg, checkpoint_dir=tmp_path / "parts")
    assert comparable(resumed.history) == comparable(whole.history)
    assert resumed.val_acc == whole.val_acc and resumed.best_val_acc == whole.best_val_acc


@pytest.mark.slow
def test_own_model_trains_under_autocast(tmp_path: Path) -> None:
    use_models({"tiny_net": TinyNet})
    result = train_trial(tiny(model="tiny_net", epochs=1, amp="bf16"), checkpoint_dir=tmp_path)  # CPU bf16
    assert result.status == "completed" and result.train_loss is not None and result.train_loss > 0


@pytest.mark.slow
def test_own_model_study_killed_mid_trial_resumes_bit_exactly(tmp_path: Path, sqlite_url: str) -> None:
    from tests.run.invariants import check_completed_trials
    from tests.run.processes import ABLATE, clean_env, wait_for_epochs

    from ablate.store import load_epochs

    path = write_study(tmp_path, factors="dict(freeze=['stem'])", epochs=5, samples=1024)
    runs = tmp_path / "runs"

    def cmd(db: str, folder: Path) -> list[str]:
        return [*ABLATE, "run", str(path), "--db", db, "--runs-dir", str(folder)]

    env = clean_env(OMP_NUM_THREADS="1")
    first = subprocess.Popen(cmd(sqlite_url, runs), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_epochs("own_model", sqlite_url, 2)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 143 and "Traceback" not in out + err, out + err
    again = subprocess.run(cmd(sqlite_url, runs), env=env, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0 and "resuming trial 0" in again.stdout, again.stdout + again.stderr
    check_completed_trials("own_model", sqlite_url)
    # An uninterrupted run in another database gives the same epochs, to the bit.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    whole = subprocess.run(cmd(other, tmp_path / "runs2"), env=env, capture_output=True, text=True, timeout=600, check=False)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    columns = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
    assert load_epochs("own_model", db=sqlite_url)[columns].equals(load_epochs("own_model", db=other)[columns])


@pytest.mark.slow
def test_own_model_smoke_run_in_two_worker_processes(tmp_path: Path, sqlite_url: str) -> None:
    from tests.run.processes import ABLATE, clean_env

    from ablate.store import load_trials

    # Each spawned worker loads the study file again, and with it the study's models.
    path = write_study(tmp_path, factors="dict(freeze=['none', 'stem', 'layer1'])")
    cmd = [*ABLATE, "run", str(path), "--smoke", "--workers", "2", "--db", sqlite_url,
           "--runs-dir", str(tmp_path / "runs")]
    done = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = load_trials("own_model_smoke", db=sqlite_url)
    assert list(trials["status"]) == ["completed"] * 3 and set(trials["epochs_run"]) == {1}
