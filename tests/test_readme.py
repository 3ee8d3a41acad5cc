"""The README as a user meets it: its quick start walked as written, its code map, its links."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow_server import serve_mlflow
from sweeps import SERIAL

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SRC = REPO / "src"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
# The installed console scripts, as `source .venv/bin/activate` puts them on PATH.
VENV_BIN = Path(sys.executable).parent

# Tiny budgets appended to the quick start's commands: the same commands, seconds instead of minutes.
SWEEP_TRIALS = 2
TINY_TRAIN = ["trainer.max_epochs=2"]
# hydra.* overrides: the study keeps its README name; two trials run one after the other (workers
# would only add their start-up to a test on 2 cores shared with another test process)
TINY_SWEEP = [f"hydra.sweeper.n_trials={SWEEP_TRIALS}", SERIAL]

# What the sweep's closing summary prints (the output of issue 15's "sweep output" part).
SWEEP_SUMMARY = [
    r"best \S+ \S+ \(trial \d+\)",  # best <metric> <value> (trial N)
    r"trials COMPLETE \d+",  # trials COMPLETE a, PRUNED b, ...
    r"results \S*multirun/\S+",  # results <sweep folder>
    r"report sweepkit-report \S+",  # report sweepkit-report <sweep folder>
]
LOG_PREFIX = re.compile(r"^(?:\[[^\]]*\])+(?: - )?\s*")  # [time][sweepkit][INFO] - , [time][HYDRA]
# A word a printed line promises: letters, `_./-`, maybe one `(` before or `:,)` after. Numbers,
# ids, paths, URIs, `key=value` and the states (COMPLETE, PRUNED) vary from run to run.
WORD = re.compile(r"\(?[A-Za-z][A-Za-z_./-]*[:,)]?")


# -- the README, read as a test reads it ----------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


@dataclass
class Step:
    command: str  # as written, its comment cut
    promised: list[str]  # the lines the README shows it printing


def quick_start() -> list[Step]:
    """The ``console`` block of the quick start: ``$ command  # comment``, then what it prints."""
    block = re.search(r"```console\n(.*?)```", section(README.read_text(), "Quick start"), re.DOTALL)
    assert block, "the quick start has no ```console block"
    steps: list[Step] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append(Step(line[2:].split("  #")[0].strip(), []))
        elif line.strip() and line.strip() != "...":
            steps[-1].promised.append(line)
    return steps


def promised_words(line: str) -> list[str]:
    return [t for t in line.split() if WORD.fullmatch(t) and not t.rstrip(":,)").isupper()]


def printed(output: str, promise: str) -> bool:
    """Whether a printed line starts with the promise's first word and holds the rest in order."""
    first, *rest = promised_words(promise)
    for line in output.splitlines():
        line = LOG_PREFIX.sub("", line)
        if not line.startswith(first):
            continue
        position = len(first)
        for word in rest:
            position = line.find(word, position)
            if position < 0:
                break
            position += len(word)
        else:
            return True
    return False


# -- the quick start, walked in a fresh folder ------------------------------------------------------


@dataclass
class Walked:
    folder: Path
    outputs: dict[str, str]  # command as written -> what it printed
    ui_runs: list[dict]  # the runs `mlflow ui` serves, read through its REST API


def tiny(argv: list[str]) -> list[str]:
    if argv[0] != "sweepkit-train":
        return argv
    return argv + (TINY_SWEEP if "-m" in argv else TINY_TRAIN)


def ui_runs(url: str) -> list[dict]:
    api = f"{url}/api/2.0/mlflow"
    experiment = requests.get(
        f"{api}/experiments/get-by-name", params={"experiment_name": "sweepkit"}, timeout=10
    )
    experiment.raise_for_status()
    found = requests.post(
        f"{api}/runs/search",
        json={"experiment_ids": [experiment.json()["experiment"]["experiment_id"]], "max_results": 100},
        timeout=10,
    )
    found.raise_for_status()
    return found.json().get("runs", [])


@pytest.fixture(scope="module")
def walked(tmp_path_factory) -> Walked:
    """Every quick-start command in order, in an empty folder, the venv's scripts on PATH."""
    folder = tmp_path_factory.mktemp("quick_start")
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(VENV_BIN.parent),
    }
    outputs: dict[str, str] = {}
    runs: list[dict] = []
    for step in quick_start():
        argv = shlex.split(step.command)
        if step.command == "source .venv/bin/activate":
            continue  # env above is what it does
        if argv[:2] == ["mlflow", "ui"]:
            with serve_mlflow(folder, *argv[1:]) as url:  # on a free port; the README's 5000 may be taken
                runs = ui_runs(url)
            continue
        done = subprocess.run(
            tiny(argv), check=False, cwd=folder, env=env, capture_output=True, text=True, timeout=600
        )
        outputs[step.command] = done.stdout + done.stderr
        assert done.returncode == 0, (
            f"{step.command} exited {done.returncode}:\n{outputs[step.command][-3000:]}"
        )
    return Walked(folder, outputs, runs)


def command_steps() -> list[Step]:
    return [
        s
        for s in quick_start()
        if s.command != "source .venv/bin/activate" and not s.command.startswith("mlflow ui")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("step", command_steps(), ids=lambda s: s.command)
def test_quick_start_command_prints_the_lines_the_readme_shows(walked, step):
    # Each quick-start command, run as written (tiny budgets appended) in a fresh folder, prints
    # every line the README shows under it, up to its numbers, ids and paths.
    # The sweep's lines best/params/trials/results/mlflow/report come from the sweep summary (issue 15).
    output = walked.outputs[step.command]
    missing = [line for line in step.promised if not printed(output, line)]
    assert not missing, (
        f"{step.command} did not print:\n" + "\n".join(missing) + f"\n--- it printed:\n{output[-4000:]}"
    )


@pytest.mark.slow
def test_quick_start_sweep_ends_with_its_summary(walked):
    # The sweep's last word says the best value with its metric and trial, the trials by state,
    # where the results are and the report command (depends on the sweep summary of issue 15).
    [sweep] = [c for c in walked.outputs if " -m " in f" {c} "]
    lines = [LOG_PREFIX.sub("", line) for line in walked.outputs[sweep].splitlines()]
    missing = [p for p in SWEEP_SUMMARY if not any(re.match(p, line) for line in lines)]
    assert not missing, f"{sweep} printed no line matching {missing}"


@pytest.mark.slow
def test_quick_start_mlflow_ui_shows_the_training_run_and_the_sweep_with_its_trials(walked):
    # `mlflow ui` started in the quick start's folder, with no flags, serves the training run and the
    # sweep's parent run with one nested run per trial, as the README says.
    assert any(s.command == "mlflow ui" for s in quick_start())
    tags = [{t["key"]: t["value"] for t in run["data"].get("tags", [])} for run in walked.ui_runs]
    [parent] = [t for t in tags if t.get("sweepkit.role") == "sweep"]
    assert parent["mlflow.runName"] == "sweep-lr_batch_optimizer"
    children = [t for t in tags if "mlflow.parentRunId" in t]
    assert len(children) == SWEEP_TRIALS
    alone = [t for t in tags if "mlflow.parentRunId" not in t and t.get("sweepkit.role") != "sweep"]
    assert len(alone) == 1  # the training run


def test_quick_start_words_checked_skip_what_varies():
    # The words a promised line is checked by leave out numbers, ids, paths, key=value and states.
    assert promised_words("trials COMPLETE 22, PRUNED 8") == ["trials"]
    assert promised_words("mlflow sqlite:////x/mlflow.db parent run c76391dd") == ["mlflow", "parent", "run"]
    assert promised_words("best val/acc 0.9815 (epoch 12 of 20, completed)") == [
        "best",
        "val/acc",
        "(epoch",
        "of",
        "completed)",
    ]
    assert printed(
        "[t][sweepkit][INFO] - best val/acc 0.5 (epoch 2 of 2, completed)",
        "best val/acc 0.9815 (epoch 12 of 20, completed)",
    )
    assert not printed("test test/loss 0.1", "test test/loss 0.1003  test/acc 0.9777")


# -- the code map ------------------------------------------------------------------------------------


def mapped_modules() -> list[str]:
    return re.findall(r"^- `([^`]+\.py)`:", section(README.read_text(), "Code map"), re.MULTILINE)


def test_code_map_names_every_module_under_src():
    # Every Python module under src/ has its line in the README's code map, so the map cannot rot.
    modules = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(modules - set(mapped_modules()))
    assert not missing, f"README's code map lacks: {', '.join(missing)}"


def test_code_map_names_only_modules_that_exist_once_each():
    # A line for a module that was moved or removed is stale; a module has one line.
    mapped = mapped_modules()
    assert [m for m in mapped if not (SRC / m).is_file()] == []
    assert len(mapped) == len(set(mapped))


# -- links between the README and docs/ ------------------------------------------------------------


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page (headings inside code blocks are not headings)."""
    found, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            found.add(re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_reach_their_file_and_heading(page):
    # Every relative link of the README and docs/ reaches a file, and its #anchor a heading there.
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_readme_links_every_docs_page():
    # Each reference page is reachable from the README.
    text = README.read_text()
    assert [p.name for p in PAGES[1:] if f"(docs/{p.name}" not in text] == []


# -- docs/training.md "From Python" ------------------------------------------------------------------


@pytest.mark.slow
def test_the_in_process_optuna_loop_of_the_docs_runs_as_written(tmp_path):
    # The loop the docs show (and bench/sweep_cost.py times as the floor) runs, at a tiny budget.
    page = (REPO / "docs" / "training.md").read_text()
    loop = next(
        block
        for block in re.findall(r"```python\n(.*?)```", section(page, "From Python"), re.DOTALL)
        if "optuna" in block
    )
    tiny_loop = loop.replace('"tracking=none",', '"tracking=none", "trainer=debug",').replace(
        "n_trials=30", "n_trials=2"
    )
    assert tiny_loop != loop and "trainer=debug" in tiny_loop
    done = subprocess.run(
        [sys.executable, "-c", tiny_loop], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "optimizer.lr" in done.stdout
    assert not list(tmp_path.iterdir()), "no files: the floor writes nothing"
