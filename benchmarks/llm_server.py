"""The OpenAI-compatible server against the same generation in process.

Both sides generate a 32-token greedy completion for the same chat with the same model: once
through the server with the official openai client (HTTP on loopback, JSON, the chat template
applied by the server), once by calling the server's generation code in this process.
transformers' own `generate` is timed too, as a second in-process reference. Requests alternate
between the sides, so drift in the machine's speed hits both alike.

It also breaks one served request down by stage, from the server's Server-Timing header: the
prompt (chat template and tokenization), generation, building the response, the server's total
(routing and validation included) and what is left, which is transport and the client.

The last line is JSON; target: server_over_inprocess <= 1.1.

    python benchmarks/llm_server.py --repeats 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, report

MESSAGES = [
    {"role": "system", "content": "You are an expert in Pandas. Answer in one or two sentences."},
    {"role": "user", "content": "How do I drop duplicate rows from a DataFrame?"},
]
TOKENS = 32


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
    args = parser.parse_args()

    import torch

    from mlstack.llm.local_server import local_server, stop_local_servers
    from mlstack.llm.providers import LOCAL_API_KEY, Endpoint
    from mlstack.settings import Settings
    from models.lm.generate import GenerationParams, LocalLM
    from models.lm.init import ensure_untrained

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="mlstack-bench-llm-")))
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
    stop_local_servers()

    medians = {name: statistics.median(values) for name, values in times.items()}
    server, own, hf = (medians[name] for name in sides)
    breakdown = {name: round(statistics.median(s[name] for s in stages), 2) for name in stages[0]}
    breakdown["routing_and_validation"] = round(
        statistics.median(s["total"] - s["prompt"] - s["generate"] - s["respond"] for s in stages), 2
    )
    breakdown["transport_and_client"] = round(
        statistics.median(s["client_total"] - s["total"] for s in stages), 2
    )
    same_text = outputs["server (openai client, HTTP)"] == outputs["in process (same code)"]
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
    }
    report(
        f"{TOKENS}-token greedy completion, {args.repeats} runs a side",
        [(name, f"{medians[name] * 1000:.1f}", f"{medians[name] / own:.2f}") for name in sides],
        ("side", "p50 ms", "x in process"),
        result,
        extra=[
            ("one served request, by stage (p50 ms)", [(k, f"{v:.2f}") for k, v in breakdown.items()]),
        ],
    )


if __name__ == "__main__":
    main()
