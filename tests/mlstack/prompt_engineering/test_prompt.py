"""The prompt in MLflow's registry: a new version only when the template changes."""

from __future__ import annotations

import pytest

from mlstack import tracking
from mlstack.llm import LLMError
from mlstack.prompt_engineering import EXPERIMENT, prompt
from mlstack.settings import Settings


def test_the_prompt_is_versioned_only_when_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    tracking.setup(Settings(), EXPERIMENT)
    first = prompt.register_prompt()
    assert first.version == 1 and first.variables == {"context", "question"}
    assert prompt.register_prompt().version == 1  # same template: same version
    changed = [{**prompt.TEMPLATE[0], "content": prompt.SYSTEM_RULES + " Be kind."}, prompt.TEMPLATE[1]]
    monkeypatch.setattr(prompt, "TEMPLATE", changed)
    assert prompt.register_prompt().version == 2
    assert prompt.load_prompt("1").template != changed
    messages = prompt.chat_template(prompt.load_prompt("2")).format_messages(
        context="SQL", question="A join?"
    )
    assert [m.type for m in messages] == ["system", "human"]
    assert "expert in SQL" in messages[0].content and messages[0].content.endswith("Be kind.")
    with pytest.raises(LLMError, match="no prompt prompts:/ask_in_context/9"):
        prompt.load_prompt("9")
