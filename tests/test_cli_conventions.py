"""The command line's conventions: version, help, order, errors, the study argument, --json,
--set, and output that reads well (fields, sql, progress lines, a closed pipe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import ablate
from ablate import Study
from ablate.cli import WORKFLOW_ORDER, app
from ablate.run._progress import PlainProgress, format_duration
from ablate.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]

CUSTOM_STUDY = '''
from ablate import Study


def third(config, reporter):
    return {"val_acc": config.extra["a"] / 3, "epochs_run": config.epochs}


study = Study(name="thirds", base=dict(epochs=3), factors=dict(a=[1, 2]), seeds=[0, 1], train=third)
'''


def invoke(*args: str, width: int = 100, env: dict[str, str] | None = None) -> object:
    return CliRunner().invoke(app, list(args), terminal_width=width, env={"COLUMNS": str(width), **(env or {})})


def filled(url: str) -> None:
    study = Study(name="digits_quick", base=dict(dataset="digits"), factors=dict(image_size=[8, 16]), seeds=[0, 1])
    with ResultStore(url) as store:
        store.register_study(study)
        store.add_trials(study, study.validate())
        while (c := store.claim_next_trial("digits_quick", worker="w", lease_s=60)) is not None:
            acc = 1 / 3 + c.params["image_size"] / 1000 + c.seed / 7
            store.record_epoch(c.trial_id, {"epoch": 1, "val_acc": acc})
            store.finish_trial(c.trial_id, "w", status="completed", metrics={"val_acc": acc})


def test_version_and_short_help() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"ablate {ablate.__version__}"
    for args in (["-h"], ["status", "-h"], ["db", "-h"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage: ablate" in result.output, args
    assert "--install-completion" in invoke("-h").output


@pytest.mark.slow
def test_shell_completion_completes_command_names() -> None:
    env = {**os.environ, "_ABLATE_COMPLETE": "complete_bash", "COMP_WORDS": "ablate st", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "ablate"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.split() == ["status"], done.stdout + done.stderr


def test_commands_in_workflow_order_with_whole_summaries_at_40_columns() -> None:
    out = invoke("-h", width=40).output
    commands = out.split("Commands:")[1]
    names = [line.split()[0] for line in commands.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert names == list(WORKFLOW_ORDER)
    assert "..." not in commands
    # every word of a long summary is there, wrapped rather than cut
    assert "claim and run trials until none is left." in " ".join(commands.split())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--bogus"], "No such option: --bogus"),
        (["bogus"], "No such command 'bogus'"),
        (["status"], "which study?"),
        (["status", "a", "--study", "b"], "two studies given"),
        (["plan", "studies/digits_quick.py", "--set", "epochs"], "expected FIELD=VALUE"),
    ],
)
def test_usage_mistakes_are_one_line_with_exit_code_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ablate", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "ABLATE_DB": str(tmp_path / "none.db"), "COLUMNS": "40"}, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "none.db").exists()


def test_db_option_is_worded_once() -> None:
    root = get_command(app)
    helps = {}
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", {name: command})
        for sub_name, sub in subcommands.items():
            for param in sub.params:
                if "--db" in getattr(param, "opts", []) and name != "plan":
                    helps[f"{name} {sub_name}"] = param.help
    assert len(helps) >= 9 and len(set(helps.values())) == 1, helps


def test_study_positional_or_option_and_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    filled(url)
    by_argument = invoke("status", "digits_quick", "--db", url, "--json")
    by_option = invoke("status", "--study", "digits_quick", "--db", url, "--json")
    assert by_argument.exit_code == 0, by_argument.output
    assert json.loads(by_argument.output)["counts"]["completed"] == 4
    assert json.loads(by_option.output)["counts"] == json.loads(by_argument.output)["counts"]
    listed = json.loads(invoke("ls", "--db", url, "--json").output)
    assert listed[0]["name"] == "digits_quick"


def test_plan_json_has_lists_and_db_column(tmp_path: Path) -> None:
    result = invoke("plan", str(ROOT / "studies" / "inat_scratch.py"), "--json")
    plan = json.loads(result.output)
    assert plan["factors"]["cnn_activation"] == {"levels": ["relu", "gelu", "silu", "mish"]}
    url = f"sqlite:///{tmp_path / 'r.db'}"
    filled(url)
    study = tmp_path / "digits_quick.py"
    study.write_text(
        "from ablate import Study\nstudy = Study(name='digits_quick', base=dict(dataset='digits'), "
        "factors=dict(image_size=[8, 16, 32]), seeds=[0, 1])\n"
    )
    result = invoke("plan", str(study), "--db", url)
    assert result.exit_code == 0, result.output
    assert "2 new, 4 already in the database" in result.output
    trials = json.loads(invoke("plan", str(study), "--db", url, "--json").output)["trials"]
    statuses = {(t["params"]["image_size"], t["status"]) for t in trials}
    assert statuses == {(8, "completed"), (16, "completed"), (32, None)}


def test_set_overrides_are_checked_like_the_file() -> None:
    digits = str(ROOT / "studies" / "digits_quick.py")
    ok = invoke("plan", digits, "--set", "epochs=2", "--set", "lr=0.01", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["base"]["epochs"] == 2
    for pair, message in [("epochs=0", "must be >= 1"), ("epoch=2", "did you mean 'epochs'"),
                          ("image_size=8", "is a factor"), ("optimizer=lamb", "allowed: sgd, adamw, adam")]:
        bad = invoke("plan", digits, "--set", pair)
        assert bad.exit_code == 2 and message in bad.output and "--set" in bad.output, (pair, bad.output)


@pytest.mark.slow
def test_run_with_set_starts_a_new_version_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "thirds.py").write_text(CUSTOM_STUDY)
    env = {**os.environ, "ABLATE_DB": str(tmp_path / "r.db"), "ABLATE_RUNS": str(tmp_path / "runs")}

    def run(*extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "ablate", "run", "thirds.py", *extra], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = run()
    assert "study version 1" in first and "no trial is left to run" in first
    assert "[4/4]" in first and "best so far: val_acc=0.6667" in first
    second = run("--set", "epochs=1")
    assert "--set epochs=1 changes the base, so this is version 2" in second
    assert "thirds: 4 completed" in second
    third = run("--set", "epochs=1")
    assert "changes the base" not in third and "0 new, 4 already finished" in third
    with ResultStore(env["ABLATE_DB"]) as store:
        info = store.load_study("thirds")
        assert info.version == 2 and info.definition["base"]["epochs"] == 1
        assert set(store.load_trials("thirds")["epochs_run"]) == {1}


def test_fields_shows_units_and_brackets() -> None:
    out = invoke("fields", width=200).output
    line = next(row for row in out.splitlines() if " image_size " in row)
    assert "px" in line and "int" in line
    assert "[bn]" in out and "list[float]" in out


def test_sql_rounds_for_display_fits_the_terminal_and_keeps_digits_in_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    filled(url)
    query = "SELECT seed, image_size, val_acc, status, 'a note' AS note FROM study_digits_quick ORDER BY 1, 2"
    wide = invoke("sql", query, "--db", url, width=120).output
    assert "0.341333" in wide and "0.3413333333" not in wide and "┃" in wide
    narrow = invoke("sql", query, "--db", url, width=30).output
    assert "-- row 1" in narrow and "   val_acc: 0.341333" in narrow and "┃" not in narrow
    assert "-- row 4" in invoke("sql", query, "--db", url, "--vertical", width=200).output
    rows = json.loads(invoke("sql", query, "--db", url, "--json").output)
    assert rows[0]["val_acc"] == 1 / 3 + 8 / 1000
    exported = json.loads(invoke("export", "digits_quick", "--db", url, "-f", "json", "-o", "-").output)
    assert sorted(r["val_acc"] for r in exported)[0] == 1 / 3 + 8 / 1000  # every digit


def test_plain_progress_reads_as_sentences() -> None:
    lines: list[str] = []

    class Sink:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    progress = PlainProgress(total=3, done=1, stream=Sink())  # type: ignore[arg-type]
    progress.trial_started(4, 0, {"lr": 0.1}, 2, False)
    progress.epoch({"epoch": 1, "val_acc": 0.5})
    progress.trial_finished(4, "completed", "val_acc=0.5 duration_s=1")
    progress.trial_started(5, 1, {"lr": 0.2}, 2, False)
    progress.trial_finished(5, "completed", "val_acc=0.4 duration_s=1")
    text = "".join(lines)
    assert "[2/3] trial 4 completed: val_acc=0.5 duration_s=1 (less than a minute left)" in text
    assert text.count("best so far") == 1 and "best so far: val_acc=0.5 (trial 4: lr=0.1, seed 0)" in text
    assert "[3/3] trial 5 completed" in text and "min left" not in text.split("trial 5 completed")[1]
    assert format_duration(30) == "less than a minute"
    assert format_duration(150) == "about 2 min"
    assert format_duration(3 * 3600 + 300) == "about 3 h 05 min"
    unknown_total = PlainProgress(total=0, stream=Sink())  # type: ignore[arg-type]
    lines.clear()
    unknown_total.trial_started(1, 0, {}, 1, False)
    assert "/0]" not in "".join(lines)


@pytest.mark.slow
def test_report_into_a_closed_pipe_still_writes_its_files(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    filled(url)
    # `true` exits without reading: every line the report prints meets a closed pipe.
    done = subprocess.run(
        f"{sys.executable} -m ablate report digits_quick --db {url} --out {tmp_path / 'out'} | true; "
        "exit ${PIPESTATUS[0]}",
        shell=True, executable="/bin/bash", cwd=tmp_path, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    for name in ("index.html", "table.csv", "report.md"):
        assert (tmp_path / "out" / name).is_file(), name
