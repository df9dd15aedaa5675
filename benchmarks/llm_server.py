"""The OpenAI-compatible server against the same generation in process.

Both sides generate a 32-token greedy completion for the same chat with the same model: once
through the server with the official openai client (HTTP on loopback, JSON, the chat template
applied by the server), once by calling the server's generation code in this process.
transformers' own `generate` is timed too, as a second in-process reference. Requests alternate
between the sides, so drift in the machine's speed hits both alike.

It also breaks one served request down by stage, from the server's Server-Timing header: the
prompt (chat template and tokenization), generation, building the response, the server's total
(routing and validation included) and what is left, which is transport and the client.

Then many clients at once: `--clients` different chats sent together through the server (it
generates them in one batch, a forward pass per token for all), against the same chats sent one
at a time, and against transformers' batched `generate` on the same model and chats (left-padded).
Time to first token is measured with `stream=True`, alone and with the others in flight. Each
chat's greedy text must be the same alone and together (`same_text`, which also covers the
server against in process); the script exits 1 when it is not.

The last line is JSON; targets: server_over_inprocess <= 1.1; with 8 clients,
concurrency_tokens_ratio >= 3 and concurrency_p50_ratio <= 3; same_text true.

    python benchmarks/llm_server.py --repeats 30 --clients 8 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, report, scratch

MESSAGES = [
    {"role": "system", "content": "You are an expert in Pandas. Answer in one or two sentences."},
    {"role": "user", "content": "How do I drop duplicate rows from a DataFrame?"},
]
TOKENS = 32
QUESTIONS = [
    "How do I drop duplicate rows from a DataFrame?",
    "How do I read a CSV file with a date column?",
    "What does groupby followed by agg return?",
    "How do I merge two frames on a key column?",
    "Why is chained assignment a problem?",
    "How do I fill missing values with the column mean?",
    "How do I pivot a long table to a wide one?",
    "How do I select rows by a boolean condition?",
]


def chat(i: int) -> list[dict[str, str]]:
    return [
        MESSAGES[0],
        {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)] + " " * (i // len(QUESTIONS))},
    ]


def server_timing(header: str) -> dict[str, float]:
    """`prompt;dur=0.15, generate;dur=52.1` as {"prompt": 0.15, "generate": 52.1} (ms)."""
    stages = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        stages[name] = float(duration)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="a causal-LM directory (default: a fresh untrained one)")
    parser.add_argument("--repeats", type=int, default=30, help="completions per side; medians are compared")
    parser.add_argument("--clients", type=int, default=8, help="clients at once in the concurrency part")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the concurrency part")
    args = parser.parse_args()

    import torch

    from mlstack.llm.local_server import local_server, stop_local_servers
    from mlstack.llm.providers import LOCAL_API_KEY, Endpoint
    from mlstack.settings import Settings
    from models.lm.generate import GenerationParams, LocalLM
    from models.lm.init import ensure_untrained

    settings = Settings(home=scratch("llm"))
    model_dir = args.model or ensure_untrained(settings.untrained_model_dir)
    console.print(f"model {model_dir}; starting the server ...")
    base_url, model_id = local_server(settings, model_dir)
    client = Endpoint("local", base_url, LOCAL_API_KEY).client
    local = LocalLM(model_dir)
    params = GenerationParams(max_tokens=TOKENS, temperature=0)
    prompt = torch.tensor([local.prompt_ids(MESSAGES)])
    stages: list[dict[str, float]] = []

    def served() -> tuple[str, int]:
        started = time.perf_counter()
        raw = client.chat.completions.with_raw_response.create(
            model=model_id, messages=MESSAGES, max_tokens=TOKENS, temperature=0
        )
        response = raw.parse()
        timing = server_timing(raw.headers["server-timing"])
        timing["client_total"] = (time.perf_counter() - started) * 1000
        stages.append(timing)
        return response.choices[0].message.content or "", response.usage.completion_tokens

    def in_process() -> tuple[str, int]:
        generation = local.complete(MESSAGES, params)
        return "".join(generation.text), generation.completion_tokens

    def hf_generate() -> tuple[str, int]:
        with torch.inference_mode():
            out = local.model.generate(
                prompt,
                max_new_tokens=TOKENS,
                min_new_tokens=TOKENS,
                do_sample=False,
                pad_token_id=local.tokenizer.eos_token_id,
            )
        return "", out.shape[1] - prompt.shape[1]

    sides = {
        "server (openai client, HTTP)": served,
        "in process (same code)": in_process,
        "in process (transformers generate)": hf_generate,
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs = {name: fn() for name, fn in sides.items()}  # warm-up, and the texts to compare
    stages.clear()
    for _ in range(args.repeats):
        for name, fn in sides.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)

    def ask(i: int) -> tuple[str, float]:
        started = time.perf_counter()
        response = client.chat.completions.create(
            model=model_id, messages=chat(i), max_tokens=TOKENS, temperature=0
        )
        return response.choices[0].message.content or "", time.perf_counter() - started

    def first_token(i: int) -> float:
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model=model_id, messages=chat(i), max_tokens=TOKENS, temperature=0, stream=True
        )
        took = None
        for chunk in stream:
            if took is None and chunk.choices and chunk.choices[0].delta.content:
                took = time.perf_counter() - started
        return took if took is not None else time.perf_counter() - started

    n = args.clients
    console.print(f"{n} chats one at a time, then {n} clients at once, {args.rounds} rounds ...")
    alone_texts = {i: ask(i)[0] for i in range(n)}
    alone_lat, together_lat, alone_wall, together_wall, ttft_alone, ttft_together = [], [], [], [], [], []
    same_together = True
    with ThreadPoolExecutor(n) as pool:
        for _ in range(args.rounds):
            started = time.perf_counter()
            answers = [ask(i) for i in range(n)]
            alone_wall.append(time.perf_counter() - started)
            alone_lat += [took for _, took in answers]
            started = time.perf_counter()
            answers = list(pool.map(ask, range(n)))
            together_wall.append(time.perf_counter() - started)
            together_lat += [took for _, took in answers]
            same_together &= all(text == alone_texts[i] for i, (text, _) in enumerate(answers))
            ttft_alone.append(first_token(0))
            ttft_together += list(pool.map(first_token, range(n)))

    batch = [torch.tensor(local.prompt_ids(chat(i))) for i in range(n)]
    width = max(len(ids) for ids in batch)
    pad = local.tokenizer.eos_token_id or 0
    padded = torch.stack([torch.cat([torch.full((width - len(ids),), pad), ids]) for ids in batch])
    mask = torch.stack(
        [torch.cat([torch.zeros(width - len(ids)), torch.ones(len(ids))]) for ids in batch]
    ).long()
    hf_batched = []
    for _ in range(args.rounds + 1):
        started = time.perf_counter()
        with torch.inference_mode():
            local.model.generate(
                padded,
                attention_mask=mask,
                max_new_tokens=TOKENS,
                min_new_tokens=TOKENS,
                do_sample=False,
                pad_token_id=pad,
            )
        hf_batched.append(time.perf_counter() - started)
    stop_local_servers()
    tokens_alone = n * TOKENS / statistics.median(alone_wall)
    tokens_together = n * TOKENS / statistics.median(together_wall)
    tokens_hf_batched = n * TOKENS / statistics.median(hf_batched[1:])  # the first warms up

    medians = {name: statistics.median(values) for name, values in times.items()}
    server, own, hf = (medians[name] for name in sides)
    breakdown = {name: round(statistics.median(s[name] for s in stages), 2) for name in stages[0]}
    breakdown["routing_and_validation"] = round(
        statistics.median(s["total"] - s["prompt"] - s["generate"] - s["respond"] for s in stages), 2
    )
    breakdown["transport_and_client"] = round(
        statistics.median(s["client_total"] - s["total"] for s in stages), 2
    )
    same_text = outputs["server (openai client, HTTP)"] == outputs["in process (same code)"] and same_together
    tokens = outputs["server (openai client, HTTP)"][1]
    result = {
        "bench": "llm_server",
        "server_over_inprocess": round(server / own, 3),
        "server_over_transformers_generate": round(server / hf, 3),
        "server_p50_ms": round(server * 1000, 1),
        "inprocess_p50_ms": round(own * 1000, 1),
        "transformers_generate_p50_ms": round(hf * 1000, 1),
        "served_request_ms": breakdown,
        "completion_tokens": tokens,
        "same_text": same_text,
        "repeats": args.repeats,
        "clients": n,
        "concurrency_tokens_ratio": round(tokens_together / tokens_alone, 2),
        "concurrency_p50_ratio": round(statistics.median(together_lat) / statistics.median(alone_lat), 2),
        "tokens_per_s_1_client": round(tokens_alone, 1),
        "tokens_per_s_n_clients": round(tokens_together, 1),
        "tokens_per_s_hf_batched": round(tokens_hf_batched, 1),
        "served_over_hf_batched": round(tokens_together / tokens_hf_batched, 3),
        "p50_ms_1_client": round(statistics.median(alone_lat) * 1000, 1),
        "p50_ms_n_clients": round(statistics.median(together_lat) * 1000, 1),
        "ttft_ms": round(statistics.median(ttft_alone) * 1000, 1),
        "ttft_ms_n_clients": round(statistics.median(ttft_together) * 1000, 1),
    }
    report(
        f"{TOKENS}-token greedy completion, {args.repeats} runs a side",
        [(name, f"{medians[name] * 1000:.1f}", f"{medians[name] / own:.2f}") for name in sides],
        ("side", "p50 ms", "x in process"),
        result,
        extra=[
            ("one served request, by stage (p50 ms)", [(k, f"{v:.2f}") for k, v in breakdown.items()]),
            (
                f"{n} chats of {TOKENS} tokens: one at a time vs at once",
                [
                    ("tokens/s, one client", f"{tokens_alone:,.0f}"),
                    (f"tokens/s, {n} clients at once", f"{tokens_together:,.0f}"),
                    (f"tokens/s, transformers generate on the {n} (batched)", f"{tokens_hf_batched:,.0f}"),
                    ("p50 ms per request, one client", f"{statistics.median(alone_lat) * 1000:.0f}"),
                    (f"p50 ms per request, {n} clients", f"{statistics.median(together_lat) * 1000:.0f}"),
                    ("first token ms (stream), alone", f"{statistics.median(ttft_alone) * 1000:.0f}"),
                    (
                        f"first token ms (stream), {n} at once",
                        f"{statistics.median(ttft_together) * 1000:.0f}",
                    ),
                    ("same greedy text alone and together", str(same_together)),
                ],
            ),
        ],
    )
    if not same_text:
        sys.exit("the served text differs between alone and together, or from in process")


if __name__ == "__main__":
    main()
