"""The prompt in MLflow's prompt registry: one template, registered once per change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack.errors import InputError
from mlstack.llm import LLMError

PROMPT_NAME = "ask_in_context"
SYSTEM_RULES = (
    "You are an expert in {{context}}. Answer the user's question in the context of {{context}},"
    " in one or two sentences. After the answer, give exactly two links for further reading,"
    " each a full https:// URL on a line of its own."
)
TEMPLATE = [{"role": "system", "content": SYSTEM_RULES}, {"role": "user", "content": "{{question}}"}]


def register_prompt(
    name: str = PROMPT_NAME,
    template: list[dict[str, str]] | None = None,
    message: str = "mlstack: answer in the domain's context, 1-2 sentences, two links",
) -> Any:
    """The registry's version of the template (TEMPLATE by default): the latest version of `name`
    if it matches, else a new version."""
    import mlflow.genai
    from mlflow.exceptions import MlflowException

    template = TEMPLATE if template is None else template
    try:
        latest = mlflow.genai.load_prompt(f"prompts:/{name}@latest")
    except MlflowException:
        latest = None
    if latest is not None and latest.template == template:
        return latest
    return mlflow.genai.register_prompt(
        name, template=template, commit_message=message, tags={"pattern": "prompt_engineering"}
    )


ROLES = ("system", "user", "assistant")


def read_template(path: Path) -> list[dict[str, str]]:
    """A chat template from a YAML file: a list of {role, content} messages, MLflow's {{variable}}
    placeholders in the content, {{question}} among them. Refused naming the file, the message
    and the rule."""
    import yaml

    try:
        messages = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: not a readable YAML file ({exc})") from exc
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{path}: the template must be a non-empty list of {{role, content}} messages")
    for number, message in enumerate(messages, 1):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise InputError(f"{path}: message {number} must have exactly the keys role and content")
        if message["role"] not in ROLES:
            raise InputError(
                f"{path}: message {number}: role {message['role']!r} is not one of {', '.join(ROLES)}"
            )
        if not isinstance(message["content"], str) or not message["content"].strip():
            raise InputError(f"{path}: message {number}: content must be non-empty text")
    if not any("{{question}}" in m["content"] for m in messages):
        raise InputError(f"{path}: no message holds {{{{question}}}}, where the question goes")
    return messages


def load_prompt(version: str | None) -> Any:
    """A registered version ("3") or alias ("production"); None registers and uses the current one."""
    import mlflow.genai
    from mlflow.exceptions import MlflowException

    if version is None:
        return register_prompt()
    uri = f"prompts:/{PROMPT_NAME}/{version}" if version.isdigit() else f"prompts:/{PROMPT_NAME}@{version}"
    try:
        return mlflow.genai.load_prompt(uri)
    except MlflowException as exc:
        raise LLMError(
            f"no prompt {uri} in the MLflow registry ({exc.message}); leave the version out to use the"
            " current template"
        ) from exc


def chat_template(prompt: Any) -> Any:
    """The registered prompt as a LangChain ChatPromptTemplate (MLflow's {{x}} becomes {x})."""
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages(
        [(message["role"], message["content"]) for message in prompt.to_single_brace_format()]
    )
