"""The supervisor: a local model's server is started once, found by other processes through its
announcement, and a server that cannot start says why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack.llm import LLMError
from mlstack.llm.local_server import Announcement, local_model_dir, local_server
from mlstack.llm.providers import resolve_chat
from mlstack.settings import Settings

ANOTHER_PROCESS = """
import json, sys
from pathlib import Path
import psutil
from mlstack.llm.local_server import local_server
from mlstack.settings import Settings
url, model = local_server(Settings(), Path(sys.argv[1]))
print(json.dumps([url, model, len(psutil.Process().children())]))
"""


def test_the_local_model_must_be_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="not a Hugging Face model directory"):
        local_model_dir(Settings(llm={"local_model": tmp_path}))
    assert local_model_dir(Settings(home=tmp_path)) == (tmp_path / "models" / "untrained-lm").resolve()


def test_an_announcement_is_read_back_and_removed_only_by_its_writer(tmp_path: Path) -> None:
    announcement = Announcement.of(Settings(home=tmp_path), tmp_path / "model")
    assert announcement.url() is None
    announcement.write("http://127.0.0.1:9/v1", "model", tmp_path / "model")
    assert announcement.url() == "http://127.0.0.1:9/v1"
    assert not list(announcement.path.parent.glob("*.tmp"))  # written whole, then renamed
    body = json.loads(announcement.path.read_text())
    announcement.path.write_text(json.dumps({**body, "pid": os.getpid() + 1}))  # another server's now
    announcement.remove()
    assert announcement.path.exists()
    announcement.write("http://127.0.0.1:9/v1", "model", tmp_path / "model")
    announcement.remove()
    assert not announcement.path.exists()


@pytest.mark.slow
def test_the_running_server_is_reused_here_and_by_another_process(
    tiny_server: tuple[str, str], tiny_lm: Path, llm_home: Path, tmp_path: Path
) -> None:
    # This process started it: the provider reuses it.
    provider = resolve_chat(Settings(home=tmp_path, llm={"local_model": tiny_lm}), provider="local")
    assert (provider.endpoint.base_url, provider.model) == tiny_server and provider.meaningful
    # A second process finds it through the announcement the server wrote, and starts nothing.
    found = subprocess.run(
        [sys.executable, "-c", ANOTHER_PROCESS, str(tiny_lm)],
        env={**os.environ, "MLSTACK_HOME": str(llm_home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == [*tiny_server, 0]


@pytest.mark.slow
def test_a_server_that_cannot_start_says_why(tiny_lm: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-lm"
    shutil.copytree(tiny_lm, broken)  # a good tokenizer, then a config no transformers knows
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(LLMError, match="exited with code 1") as caught:
        local_server(Settings(home=tmp_path), broken)
    assert "no-such-architecture" in str(caught.value)


def test_the_local_model_is_the_setting_else_a_champion_else_the_stand_in(
    mlstack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlstack.io import write_json
    from mlstack.llm.local_server import follows_chat, model_note
    from mlstack.settings import get_settings

    settings = get_settings()
    assert local_model_dir(settings) == settings.untrained_model_dir.resolve()
    assert not follows_chat(settings.untrained_model_dir)  # not made yet: no chat either
    champion = settings.pretrained_models_dir / "code_lm-v3"
    champion.mkdir(parents=True)
    (champion / "config.json").write_text("{}")
    card = {"trained": True, "chat": False, "parameters": 1049216, "tokens": 1228800}
    (champion / "mlstack_lm.json").write_text(json.dumps(card))
    write_json({"model": "code_lm", "version": "3", "path": str(champion)}, settings.pretrained_champion_file)
    assert local_model_dir(settings) == champion.resolve()
    assert not follows_chat(champion) and "1,049,216 parameters, 1,228,800 tokens" in model_note(champion)
    # A fine-tuned champion (an adapter) comes first; fine-tuned from our small model, it says so.
    tuned = settings.finetuned_models_dir / "support_lm-v1"
    tuned.mkdir(parents=True)
    (tuned / "adapter_config.json").write_text("{}")
    (tuned / "mlstack_lm.json").write_text(
        json.dumps({"trained": True, "chat": True, "kind": "fine-tuned", "base_card": card})
    )
    write_json({"model": "support_lm", "version": "1", "path": str(tuned)}, settings.finetuned_champion_file)
    assert local_model_dir(settings) == tuned.resolve() and follows_chat(tuned)
    assert "fine-tuned on a few dozen Q&A pairs" in model_note(
        tuned
    ) and "1,049,216 parameters" in model_note(tuned)
    foreign = tmp_path / "tuned-foreign"
    foreign.mkdir()
    (foreign / "adapter_config.json").write_text("{}")
    (foreign / "mlstack_lm.json").write_text(
        json.dumps({"chat": True, "kind": "fine-tuned", "base_card": {}})
    )
    assert model_note(foreign) is None  # someone else's base: taken at its word
    own = tmp_path / "chat-model"
    own.mkdir()
    (own / "config.json").write_text("{}")
    monkeypatch.setenv("MLSTACK_LLM_LOCAL_MODEL", str(own))
    assert local_model_dir(get_settings()) == own.resolve()
    assert follows_chat(own) and model_note(own) is None  # someone else's model: taken at its word


@pytest.mark.slow
def test_with_a_server_key_the_local_provider_starts_finds_and_asks_with_it(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLSTACK_LLM_SERVER_API_KEY set: the server it starts requires it, and the provider's
    discovery and chat client send it, so a question still gets an answer."""
    from mlstack import processes
    from mlstack.llm import local_server as servers

    monkeypatch.setenv("MLSTACK_LLM_SERVER_API_KEY", "sk-local-CANARY")
    copy = tmp_path / "keyed-lm"
    shutil.copytree(tiny_lm, copy)  # a directory no other test's server serves
    settings = Settings(home=tmp_path / "home", llm={"local_model": copy})
    try:
        provider = resolve_chat(settings, provider="local")
        import httpx

        assert httpx.get(f"{provider.endpoint.base_url}/models").status_code == 401
        answer = provider.endpoint.client.chat.completions.create(
            model=provider.model, messages=[{"role": "user", "content": "hi"}], max_tokens=3, temperature=0
        )
        assert answer.choices[0].message.content is not None
    finally:  # only this test's server: the session's tiny server serves other tests
        if started := servers._started.pop(copy.resolve(), None):
            processes.stop(started[0])
