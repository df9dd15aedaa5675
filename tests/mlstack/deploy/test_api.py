"""Which Prefect API a command's flows reach: the user's, else `mlstack up`'s while it runs. (A
temporary server of the command's own, and its death with the command, are in
tests/mlstack/cli/test_running.py, through real `mlstack` processes.)"""

from __future__ import annotations

import subprocess
import sys

from mlstack import processes
from mlstack.settings import get_settings
from tests.mlstack.deploy.test_stack import write


def test_commands_use_the_server_of_up_while_it_runs(tmp_path) -> None:
    """The record of a live `up` server points every command at it (here, a stand-in process)."""
    from tests.kill import command_env

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        write("prefect", child.pid, processes.stamp_of(child.pid))
        env = command_env(get_settings().home)
        script = (
            "import os; from mlstack.deploy.api import ensure_api;"
            " ensure_api(); print(os.environ['PREFECT_API_URL'])"
        )
        shown = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.stdout.strip() == "http://127.0.0.1:1/api", shown.stderr[-2000:]
        # A user's own PREFECT_API_URL still wins.
        env["PREFECT_API_URL"] = "http://elsewhere:4200/api"
        shown = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.stdout.strip() == "http://elsewhere:4200/api"
    finally:
        child.kill()
