"""The prompt in MLflow's prompt registry: one template, registered once per change."""

from __future__ import annotations

from typing import Any

from mlstack.llm import LLMError

PROMPT_NAME = "ask_in_context"
SYSTEM_RULES = (
    "You are an expert in {{context}}. Answer the user's question in the context of {{context}},"
    " in one or two sentences. After the answer, give exactly two links for further reading,"
    " each a full https:// URL on a line of its own."
)
TEMPLATE = [{"role": "system", "content": SYSTEM_RULES}, {"role": "user", "content": "{{question}}"}]


def register_prompt() -> Any:
    """The registry's version of TEMPLATE: the latest if it matches, else a new version."""
    import mlflow.genai
    from mlflow.exceptions import MlflowException

    try:
        latest = mlflow.genai.load_prompt(f"prompts:/{PROMPT_NAME}@latest")
    except MlflowException:
        latest = None
    if latest is not None and latest.template == TEMPLATE:
        return latest
    return mlflow.genai.register_prompt(
        PROMPT_NAME,
        template=TEMPLATE,
        commit_message="mlstack: answer in the domain's context, 1-2 sentences, two links",
        tags={"pattern": "prompt_engineering"},
    )


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
