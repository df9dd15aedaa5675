"""The prompt in MLflow's registry: a new version only when the template changes."""

from __future__ import annotations

import pytest

from mlstack import tracking
from mlstack.errors import InputError
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


def test_a_project_registers_its_own_template_under_its_own_name() -> None:
    tracking.setup(Settings(), EXPERIMENT)
    mine = [
        {"role": "system", "content": "Answer about {{context}}."},
        {"role": "user", "content": "{{question}}"},
    ]

    first = prompt.register_prompt("team_prompt", mine, "ours")

    assert (first.name, first.version, first.template) == ("team_prompt", 1, mine)
    assert prompt.register_prompt("team_prompt", mine).version == 1
    assert prompt.register_prompt().name == prompt.PROMPT_NAME  # the default one is apart


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("{role: user}", "the template must be a non-empty list"),
        ("- {role: user, content: '{{question}}', extra: 1}", "message 1 must have exactly the keys"),
        ("- {role: robot, content: '{{question}}'}", "message 1: role 'robot' is not one of"),
        ("- {role: user, content: ''}", "message 1: content must be non-empty text"),
        ("- {role: user, content: 'Tell me about {{context}}'}", r"no message holds \{\{question\}\}"),
        ("- [unclosed", "not a readable YAML file"),
    ],
)
def test_a_template_file_that_breaks_a_rule_is_refused_naming_it(tmp_path, text: str, rule: str) -> None:
    path = tmp_path / "ask.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=f"ask.yaml: {rule}"):
        prompt.read_template(path)


def test_a_template_file_reads_as_messages(tmp_path) -> None:
    path = tmp_path / "ask.yaml"
    path.write_text("- role: system\n  content: In {{context}}.\n- role: user\n  content: '{{question}}'\n")
    assert prompt.read_template(path) == [
        {"role": "system", "content": "In {{context}}."},
        {"role": "user", "content": "{{question}}"},
    ]
