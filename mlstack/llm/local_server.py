"""Local models behind our own OpenAI-compatible server: started on demand, reused while running.

The supervisor starts the server's own module entry, `python -m models.serving.openai_api`, on
a free loopback port and waits until it answers for the model directory it was asked for. A
running server announces itself with a small file under the data dir: this module writes it
(from inside the server) and reads it (from any process that wants the model), so every
process shares one server per model directory instead of starting its own. The servers this
process started stop when it exits, or is killed (`mlstack.processes`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from mlstack import processes
from mlstack.llm import LLMError
from mlstack.settings import Settings

log = logging.getLogger(__name__)

# The server is started by module name: the building blocks never import model code.
SERVER_MODULE = "models.serving.openai_api"
# Written beside the weights by whoever makes a model directory; {"trained": false} marks the
# untrained stand-in, whose words are random.
MODEL_CARD = "mlstack_lm.json"
UNTRAINED_NOTE = (
    "The local model is an untrained stand-in with random weights: its text is not meaningful."
    " Train one with the pretraining flow, set MLSTACK_LLM_LOCAL_MODEL, or set OPENAI_API_KEY."
)


PRETRAINED_NOTE = (
    "The local model is a small code model pretrained here ({parameters:,} parameters, {tokens:,}"
    " tokens of Python): it continues Python code, but it was never taught to follow instructions"
    " or answer questions, so its replies are code-like text, not answers. Fine-tune it, set"
    " MLSTACK_LLM_LOCAL_MODEL to a chat model, or set OPENAI_API_KEY."
)


FINETUNED_NOTE = (
    "The local model is our small code model ({parameters:,} parameters) fine-tuned on a few dozen"
    " Q&A pairs: it takes turns as a chat model does, but a base that small writes rough answers."
    " Fine-tune a real chat model (mlstack finetune run --base DIR), set MLSTACK_LLM_LOCAL_MODEL,"
    " or set OPENAI_API_KEY."
)


def model_card(model_dir: Path) -> dict:
    card = model_dir / MODEL_CARD
    return json.loads(card.read_text()) if card.is_file() else {}


def is_untrained(model_dir: Path) -> bool:
    return not model_card(model_dir).get("trained", True)


def is_model_dir(path: Path) -> bool:
    """A Hugging Face model directory, or a LoRA adapter directory (served over its base)."""
    return (path / "config.json").is_file() or (path / "adapter_config.json").is_file()


def follows_chat(model_dir: Path) -> bool:
    """False for our untrained stand-in and our pretrained base models; a directory of anyone
    else's (no card of ours) is taken at its word. No model there yet (the stand-in before its
    first use) follows none."""
    if not is_model_dir(model_dir):
        return False
    card = model_card(model_dir)
    return bool(card.get("chat", card.get("trained", True)))


def model_note(model_dir: Path) -> str | None:
    """What a reader of this model's replies should know, or None for a chat model."""
    card = model_card(model_dir)
    if not card.get("trained", True):
        return UNTRAINED_NOTE
    if not follows_chat(model_dir):
        return PRETRAINED_NOTE.format(parameters=card.get("parameters", 0), tokens=card.get("tokens", 0))
    base = card.get("base_card") or {}
    if card.get("kind") == "fine-tuned" and base.get("kind") in ("pretrained", None) and "trained" in base:
        return FINETUNED_NOTE.format(parameters=base.get("parameters", 0))
    return None


def _champion(pointer: Path) -> Path | None:
    if not pointer.is_file():
        return None
    path = Path(json.loads(pointer.read_text())["path"])
    return path.resolve() if is_model_dir(path) else None


def pretrained_champion(settings: Settings) -> Path | None:
    """The pretraining flow's champion, copied locally, or None before one exists."""
    return _champion(settings.pretrained_champion_file)


def finetuned_champion(settings: Settings) -> Path | None:
    """The fine-tuning flow's local champion (an adapter or a merged model), or None."""
    return _champion(settings.finetuned_champion_file)


def local_model_dir(settings: Settings) -> Path:
    """MLSTACK_LLM_LOCAL_MODEL, else the fine-tuning flow's champion (a chat model), else the
    pretraining flow's, else the untrained stand-in's directory (the server creates the
    stand-in on first use)."""
    if settings.llm.local_model is not None:
        path = settings.llm.local_model.expanduser().resolve()
        if not is_model_dir(path):
            raise LLMError(
                f"MLSTACK_LLM_LOCAL_MODEL={path} is not a Hugging Face model directory (no"
                " config.json) nor a LoRA adapter (no adapter_config.json); point it at one, or unset"
                " it to use the local champion or the untrained stand-in"
            )
        return path
    champion = finetuned_champion(settings) or pretrained_champion(settings)
    return champion or settings.untrained_model_dir.resolve()


@dataclass(frozen=True)
class Announcement:
    """The file by which a running server says which model it serves at which URL."""

    path: Path

    @classmethod
    def of(cls, settings: Settings, model_dir: Path) -> Announcement:
        key = hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:12]
        return cls(settings.llm_servers_dir / f"{key}.json")

    @property
    def log_path(self) -> Path:
        return self.path.with_suffix(".log")

    def write(self, url: str, model: str, model_dir: Path) -> None:
        """Server side, once it listens: written whole, so a reader never sees half of it."""
        from mlstack.io import write_json  # server side only: it imports pandas, which `--help` must not

        write_json({"pid": os.getpid(), "url": url, "model": model, "model_dir": str(model_dir)}, self.path)

    def remove(self) -> None:
        """Server side, on shutdown: only this server's own announcement."""
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def url(self) -> str | None:
        """Client side: the announced base URL, if any (it may be stale: ping before use)."""
        try:
            return json.loads(self.path.read_text())["url"]
        except (OSError, ValueError, KeyError):
            return None


_started: dict[Path, tuple[subprocess.Popen, str, str]] = {}
_start_lock = threading.Lock()


def api_key(settings: Settings) -> str | None:
    """The key our own server asks for (MLSTACK_LLM_SERVER_API_KEY), which our clients send."""
    key = settings.llm.server_api_key
    return key.get_secret_value() if key else None


def source_digest(model_dir: Path) -> str:
    """Which directory a server serves, as its model card says it without showing the path."""
    import hashlib

    return hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:16]


def served_model(base_url: str, model_dir: Path, api_key: str | None = None) -> str | None:
    """The id under which the server at base_url serves model_dir, if it is up and does."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{base_url}/models", timeout=2.0, headers=headers)
        response.raise_for_status()
        cards = response.json()["data"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    digest = source_digest(model_dir)
    return next((c["id"] for c in cards if c.get("source_digest") == digest), None)


def local_server(settings: Settings, model_dir: Path) -> tuple[str, str]:
    """(base URL, model id) of a server for model_dir: one already running, or a new one."""
    model_dir = model_dir.resolve()
    with _start_lock:
        started = _started.get(model_dir)
        if started and started[0].poll() is None:
            return started[1], started[2]
        base_url = Announcement.of(settings, model_dir).url()
        if base_url and (served := served_model(base_url, model_dir, api_key(settings))):
            return base_url, served
        return _start_server(settings, model_dir)


def _start_server(settings: Settings, model_dir: Path) -> tuple[str, str]:
    port = processes.free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", SERVER_MODULE, "--model", str(model_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if model_dir == settings.untrained_model_dir.resolve() and not is_model_dir(model_dir):
        log.warning(
            "no local model yet: initialising an untrained stand-in at %s (its text is random)", model_dir
        )
        command.append("--init-untrained")
    log.info("starting the local model server for %s on %s", model_dir, base_url)
    log_path = Announcement.of(settings, model_dir).log_path
    log_path.unlink(missing_ok=True)  # its tail explains a failed start: this start's lines only
    try:
        process = processes.start_service(
            command,
            log_path,
            ready=lambda: served_model(base_url, model_dir, api_key(settings)) is not None,
            timeout_s=settings.llm.server_start_timeout_s,
            what=f"the local model server for {model_dir}",
            env={**os.environ, "MLSTACK_HOME": str(settings.home)},
        )
    except processes.ServiceFailed as exc:
        raise LLMError(str(exc)) from None
    served = served_model(base_url, model_dir, api_key(settings))
    assert served is not None
    _started[model_dir] = (process, base_url, served)
    return base_url, served


def stop_local_servers() -> None:
    """Stop the servers this process started (they also stop when it exits, or dies)."""
    with _start_lock:
        for process, _, _ in _started.values():
            processes.stop(process)
        _started.clear()
