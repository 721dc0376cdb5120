"""deploy/python.sh: which interpreter `make` builds .venv on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "python.sh"


def choose(**env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env})


def test_the_override_is_taken_and_resolved_to_the_real_interpreter():
    chosen = choose(IOTCLOUD_PYTHON=sys.executable)  # .venv/bin/python: a link to its base interpreter
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == os.path.realpath(sys._base_executable)


def test_an_override_that_is_no_python_is_refused_with_its_name():
    chosen = choose(IOTCLOUD_PYTHON="/bin/false")
    assert chosen.returncode != 0
    assert "IOTCLOUD_PYTHON=/bin/false" in chosen.stderr


def test_the_distributions_build_comes_first_where_there_is_one():
    chosen = choose(IOTCLOUD_PYTHON="")
    assert chosen.returncode == 0, chosen.stderr
    if Path("/usr/bin/python3.11").exists():
        assert chosen.stdout.strip() == os.path.realpath("/usr/bin/python3.11")
    else:
        assert Path(chosen.stdout.strip()).is_file()


def test_this_suite_runs_on_the_interpreter_make_chose():
    """`make test` builds .venv on deploy/python.sh's choice, so the suite measures what `make run` runs."""
    chosen = choose().stdout.strip()
    assert os.path.realpath(sys._base_executable) == chosen, f"run `make venv`: .venv is not built on {chosen}"
