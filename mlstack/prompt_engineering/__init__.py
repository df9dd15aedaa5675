"""Prompt engineering: a versioned prompt, an answer through the chat provider, and its checks.

- `prompt`: the prompt in MLflow's prompt registry, `ask_in_context`. Registering is idempotent: a
  new version appears only when the template changes, so every answer names the prompt version
  that produced it.
- `checks`: the prompt's rules (answer in the domain's context, in one or two sentences, with two
  links for further reading), checked on every answer, since a model can ignore them; and the
  same rules as MLflow GenAI scorers.
- `ask`: one question or many through the chat provider, each traced with MLflow tracing (a chain
  span holding a chat-model span with the messages, the reply and token usage).
- `questions`: question files in, results out; `report`: the Markdown a person reads in the
  Prefect UI.
"""

EXPERIMENT = "prompt_engineering"  # the MLflow experiment every answer is recorded in
