"""Which Prefect API a command's flow runs talk to, started when there is none."""

from __future__ import annotations


def ensure_api() -> None:
    """Point this process at a Prefect API: the configured one, else the server of `mlstack up`
    (so the run shows in its UI), else a temporary server of its own. Prefect's own ephemeral
    server outlives a SIGKILLed parent (about 200 MB each); ours is started by
    `mlstack.processes`, so it dies with this process however it ends."""
    import os
    import sys
    from pathlib import Path

    import prefect
    from prefect.context import refresh_global_settings_context
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
    )

    from mlstack import processes
    from mlstack.settings import get_settings

    if PREFECT_API_URL.value():
        return
    from mlstack.deploy.stack import running_api_url

    if url := running_api_url(get_settings()):
        os.environ["PREFECT_API_URL"] = url
        refresh_global_settings_context()
        return
    # The command and environment of Prefect's own ephemeral server (SubprocessASGIServer).
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent)]
    command += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
    command += ["--log-level", "error", "--lifespan", "on"]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    for attempt in range(3):  # another process may take the free port before uvicorn binds it
        url = f"http://127.0.0.1:{(port := processes.free_port())}/api"
        try:
            processes.start_service(
                [*command, "--port", str(port)],
                get_settings().home / "prefect" / "temporary-server.log",
                ready=lambda url=url: processes.answers(f"{url}/health"),
                timeout_s=PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(),
                what="the temporary Prefect API server",
                env=env,
            )
            break
        except processes.ServiceFailed:
            if attempt == 2:
                raise
    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()
