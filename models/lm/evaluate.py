"""How good a pretrained code model is, on held-out text it never trained on:

- validation loss and perplexity per token, and bits per byte, which does not depend on the
  tokenizer, so two models with different vocabularies compare fairly on the same text;
- a behavioural check: greedy completions of held-out function headers (the `def` line and its
  docstring), cut where the function's body ends, and the share of them that parse as Python.
"""

from __future__ import annotations

import ast
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any

MAX_HEADERS = 32


@dataclass(frozen=True)
class TextScore:
    loss: float
    perplexity: float
    bits_per_byte: float
    tokens: int


@dataclass
class HeaderScore:
    parse_share: float
    total: int
    examples: list[dict[str, object]] = field(default_factory=list)


def load(model_dir: Any) -> tuple[Any, Any]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def text_score(
    model: Any, tokenizer: Any, texts: list[str], max_tokens: int = 200_000, batch: int = 8
) -> TextScore:
    """Next-token loss over the texts, each ended by EOS, in windows of the model's context."""
    import torch

    seq = min(int(model.config.max_position_embeddings), 1024)
    ids: list[int] = []
    used_bytes = 0
    for text in texts:
        ids += [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id]
        used_bytes += len(text.encode())
        if len(ids) >= max_tokens:
            break
    tokens = torch.tensor(ids)
    windows = [tokens[i : i + seq + 1] for i in range(0, len(ids) - 1, seq)]
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(windows), batch):
            group = windows[start : start + batch]
            width = max(len(w) for w in group)
            padded = torch.stack([torch.nn.functional.pad(w, (0, width - len(w)), value=-100) for w in group])
            inputs = padded[:, :-1].clamp(min=0)
            logits = model(input_ids=inputs).logits
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), padded[:, 1:].flatten(), ignore_index=-100, reduction="sum"
            )
            total += float(loss)
            count += int((padded[:, 1:] != -100).sum())
    mean = total / max(count, 1)
    # A cut at max_tokens leaves part of the last text unscored: scale its bytes to the tokens scored.
    scored_bytes = used_bytes * min(1.0, count / max(len(ids) - 1, 1))
    return TextScore(mean, math.exp(min(mean, 50)), total / math.log(2) / max(scored_bytes, 1), count)


def function_headers(texts: list[str], limit: int = MAX_HEADERS) -> list[str]:
    """Top-level functions' `def` lines and docstrings, from texts the model never trained on."""
    headers = []
    for text in texts:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines()
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.decorator_list or len(node.body) < 2:
                continue
            first = node.body[0]
            has_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
            end = first.end_lineno if has_doc else first.lineno - 1
            headers.append("\n".join(lines[node.lineno - 1 : end]) + "\n")
            if len(headers) >= limit:
                return headers
    return headers


def body_of(completion: str) -> str:
    """The completion up to where the function ends: the first line that is not indented."""
    kept = []
    for line in completion.split("\n"):
        if line.strip() and not line.startswith((" ", "\t")):
            break
        kept.append(line)
    return "\n".join(kept).rstrip() + "\n"


def header_score(model: Any, tokenizer: Any, headers: list[str], max_new_tokens: int = 64) -> HeaderScore:
    import torch

    parsed = 0
    examples: list[dict[str, object]] = []
    with torch.no_grad():
        for header in headers:
            prompt = tokenizer(header, return_tensors="pt", add_special_tokens=False)
            room = int(model.config.max_position_embeddings) - prompt.input_ids.shape[1]
            if room <= 8:
                continue
            out = model.generate(
                **prompt,
                max_new_tokens=min(max_new_tokens, room),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            completion = tokenizer.decode(out[0, prompt.input_ids.shape[1] :], skip_special_tokens=True)
            program = header + body_of(completion)
            try:
                ast.parse(textwrap.dedent(program))
                ok = bool(body_of(completion).strip())
            except SyntaxError:
                ok = False
            parsed += ok
            if len(examples) < 5:
                examples.append({"header": header, "completion": body_of(completion), "parses": ok})
    total = len(headers)
    return HeaderScore(parsed / total if total else 0.0, total, examples)
