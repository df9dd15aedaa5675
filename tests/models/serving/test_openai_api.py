"""The OpenAI-compatible server, driven by the official openai client and LangChain over loopback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from mlstack.llm.embeddings import LOCAL_EMBEDDING_MODEL, local_embedder
from mlstack.llm.local_server import source_digest
from mlstack.settings import Settings
from models.lm.generate import DEFAULT_CHAT_TEMPLATE
from models.lm.tokenizer import IM_END

QUESTION = [{"role": "user", "content": "How do I read a CSV file?"}]


@pytest.fixture(scope="module")
def client(tiny_server: tuple[str, str]) -> OpenAI:
    base_url, _ = tiny_server
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def model_id(tiny_server: tuple[str, str]) -> str:
    return tiny_server[1]


@pytest.fixture(scope="module")
def reference(tiny_lm: Path):
    """The same model in this process, generating with transformers' own `generate`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()

    def greedy(messages: list[dict[str, str]], max_tokens: int) -> tuple[str, int]:
        prompt = tokenizer.apply_chat_template(
            messages, chat_template=DEFAULT_CHAT_TEMPLATE, add_generation_prompt=True, tokenize=False
        )
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        # The default template ends the assistant's turn with <|im_end|>: a stop, as on the server.
        stops = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(IM_END)]
        out = model.generate(
            ids,
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id,
            eos_token_id=stops,
        )
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        return text.split(IM_END)[0], ids.shape[1]

    return greedy


@pytest.mark.slow
def test_models_are_listed_and_retrievable(client: OpenAI, model_id: str, tiny_lm: Path) -> None:
    cards = {m.id: m for m in client.models.list()}
    assert set(cards) == {model_id, LOCAL_EMBEDDING_MODEL}
    assert model_id == "tiny-lm" and cards[model_id].owned_by == "mlstack"
    card = client.models.retrieve(model_id).model_extra
    # A name, not the server's filesystem; the digest lets `local_server` find it to reuse.
    assert card["root"] == tiny_lm.name and str(tiny_lm.parent) not in str(card)
    assert card["source_digest"] == source_digest(tiny_lm)


@pytest.mark.slow
def test_with_a_key_set_every_api_request_must_carry_it(tiny_lm: Path, tmp_path: Path) -> None:
    """The server's key (MLSTACK_LLM_SERVER_API_KEY) on /v1; /metrics stays open to the
    scrapers. The local provider's own client and discovery send it."""
    from fastapi.testclient import TestClient

    from models.serving.openai_api import create_app

    settings = Settings(home=tmp_path / "home", llm={"server_api_key": "sk-server-CANARY"})
    with TestClient(create_app(tiny_lm, settings=settings)) as http:
        refused = http.get("/v1/models")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert http.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        allowed = http.get("/v1/models", headers={"Authorization": "Bearer sk-server-CANARY"})
        assert allowed.status_code == 200 and allowed.json()["data"][0]["id"] == tiny_lm.name
        assert http.get("/metrics").status_code == 200


def test_serving_beyond_loopback_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mlstack.cli import app

    monkeypatch.delenv("MLSTACK_LLM_SERVER_API_KEY", raising=False)
    refused = CliRunner().invoke(app, ["serve-llm", "--host", "0.0.0.0"], terminal_width=200)
    assert refused.exit_code == 2 and "needs a key: set MLSTACK_LLM_SERVER_API_KEY" in refused.output


@pytest.mark.slow
def test_greedy_chat_matches_transformers_generate(client: OpenAI, model_id: str, reference) -> None:
    response = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=12, temperature=0)
    expected, prompt_tokens = reference(QUESTION, 12)
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected
    assert response.object == "chat.completion" and response.id.startswith("chatcmpl-")
    assert response.usage.prompt_tokens == prompt_tokens  # the default (ChatML) template was applied
    assert response.usage.total_tokens == prompt_tokens + response.usage.completion_tokens
    assert choice.finish_reason == "length" and response.usage.completion_tokens == 12


@pytest.mark.slow
def test_seed_makes_sampling_reproducible(client: OpenAI, model_id: str) -> None:
    def sample(seed: int) -> str:
        return (
            client.chat.completions.create(
                model=model_id, messages=QUESTION, max_tokens=10, temperature=1.0, seed=seed
            )
            .choices[0]
            .message.content
        )

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in (1, 2, 3)}) > 1


SAMPLED = {"messages": QUESTION, "max_tokens": 16, "temperature": 1.0, "seed": 11}


def _stop_in(text: str) -> str:
    """A letter or digit from past the start of text, to use as a stop sequence."""
    stop = next((c for c in text[2:] if c.isascii() and c.isalnum()), None)
    assert stop, f"no letter to stop at in {text!r}"
    return stop


@pytest.mark.slow
def test_top_p_and_stop(client: OpenAI, model_id: str, reference) -> None:
    greedy, _ = reference(QUESTION, 12)
    # A nucleus of almost no mass keeps only the most likely token: sampling becomes greedy.
    nucleus = client.chat.completions.create(
        model=model_id, messages=QUESTION, max_tokens=12, temperature=1.5, top_p=1e-6, seed=3
    )
    assert nucleus.choices[0].message.content == greedy
    sampled = client.chat.completions.create(model=model_id, **SAMPLED).choices[0].message.content
    stop = _stop_in(sampled)
    stopped = client.chat.completions.create(model=model_id, stop=[stop, "never-seen"], **SAMPLED)
    assert stopped.choices[0].message.content == sampled[: sampled.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


@pytest.mark.slow
def test_streaming_yields_the_same_text_and_usage(client: OpenAI, model_id: str) -> None:
    whole = client.chat.completions.create(model=model_id, **SAMPLED)
    sampled = whole.choices[0].message.content
    stop = _stop_in(sampled)
    for stops, expected in ((None, sampled), ([stop], sampled[: sampled.index(stop)])):
        chunks = list(
            client.chat.completions.create(
                model=model_id, stop=stops, stream=True, stream_options={"include_usage": True}, **SAMPLED
            )
        )
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        assert deltas[0].role == "assistant"
        assert "".join(d.content or "" for d in deltas) == expected
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finishes[-1] == ("length" if stops is None else "stop") and set(finishes[:-1]) == {None}
        assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


@pytest.mark.slow
def test_embeddings_match_the_packaged_model(client: OpenAI) -> None:
    texts = ["How do I read a CSV file?", "Reading CSV files with pandas"]
    as_floats = client.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input=texts, encoding_format="float")
    as_base64 = client.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input=texts)  # the client's default
    vectors = np.array([d.embedding for d in as_floats.data])
    assert vectors.shape == (2, 384) and [d.index for d in as_floats.data] == [0, 1]
    assert np.allclose(vectors, np.array([d.embedding for d in as_base64.data]), atol=1e-6)
    assert np.allclose(vectors, local_embedder().embed(texts), atol=1e-5)
    assert as_floats.usage.prompt_tokens > 0 and as_floats.usage.total_tokens == as_floats.usage.prompt_tokens


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        # What a local model cannot honour is refused by name, never dropped in silence.
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "call_1"}]}, "messages.0.role"),
        # Each was a plain 500: torch's seed overflowed, the tokenizer met a lone surrogate.
        ({"seed": 10**30}, "seed"),
    ],
)
@pytest.mark.slow
def test_bad_chat_requests_get_openai_errors(
    client: OpenAI, model_id: str, request_body: dict, param: str
) -> None:
    body = {"model": model_id, "messages": QUESTION, **request_body}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**body)
    error = caught.value.body
    assert caught.value.status_code == 400
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert not error["message"].startswith(f"{param}: Value error")


@pytest.mark.slow
def test_a_top_p_below_float32_s_least_still_samples_the_top_token(
    client: OpenAI, model_id: str, reference
) -> None:
    """1e-300 is 0 in float32: no token was kept, and sampling failed with a 500. The top token
    always stays, so the answer is the greedy one."""
    tiny = client.chat.completions.create(
        model=model_id, messages=QUESTION, top_p=1e-300, temperature=1, seed=3, max_tokens=8
    )
    greedy = client.chat.completions.create(model=model_id, messages=QUESTION, temperature=0, max_tokens=8)
    assert tiny.choices[0].message.content == greedy.choices[0].message.content


@pytest.mark.slow
def test_plain_text_response_format_is_honoured(client: OpenAI, model_id: str, reference) -> None:
    """{"type": "text"} is the default format: accepted, and the answer is the greedy text."""
    answer = client.chat.completions.create(
        model=model_id, messages=QUESTION, max_tokens=4, temperature=0, response_format={"type": "text"}
    )
    expected, _ = reference(QUESTION, 4)
    assert answer.choices[0].message.content == expected and answer.usage.completion_tokens == 4


@pytest.mark.slow
def test_unknown_models_routes_and_broken_bodies(client: OpenAI, tiny_server: tuple[str, str]) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert caught.value.body["code"] == "model_not_found" and "tiny-lm" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model=LOCAL_EMBEDDING_MODEL, input="x", dimensions=128)
    assert caught.value.body["param"] == "dimensions"
    base_url = tiny_server[0]
    broken = httpx.post(
        f"{base_url}/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (
        broken.status_code == 400
        and broken.json()["error"]["message"] == "the request body is not valid JSON"
    )
    missing = httpx.get(f"{base_url}/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    # A lone surrogate, as JSON escapes it ("\ud800"; the openai client cannot even send one):
    # it reached the tokenizer and was a 500.
    lone = {"model": tiny_server[1], "messages": [{"role": "user", "content": "hi \ud800 there"}]}
    refused = httpx.post(
        f"{base_url}/chat/completions",
        content=json.dumps(lone).encode(),
        headers={"content-type": "application/json"},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "messages.0.content", refused.text
    assert "lone surrogate at character 3" in refused.json()["error"]["message"]


@pytest.mark.slow
def test_a_prompt_longer_than_the_context_is_refused(client: OpenAI, model_id: str) -> None:
    long = [{"role": "user", "content": "pandas " * 600}]  # the tiny model reads 512 tokens
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model_id, messages=long)
    assert caught.value.body["code"] == "context_length_exceeded"
    # Megabytes are refused by their size, before the tokenizer reads them (10 MB took 14 s).
    huge = [{"role": "user", "content": "pandas " * 1_500_000}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model_id, messages=huge)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert "bytes, at least" in caught.value.body["message"]  # judged by size, not tokenized


@pytest.mark.slow
def test_a_max_tokens_past_the_room_left_is_capped_and_said(client: OpenAI, model_id: str) -> None:
    """2**62 was clamped in silence; now the response says what it may generate, and why."""
    raw = client.chat.completions.with_raw_response.create(
        model=model_id, messages=QUESTION, max_tokens=2**62, temperature=0
    )
    capped = raw.headers["x-mlstack-max-tokens"]
    assert (
        capped.split(";")[0].isdigit() and f"capped from {2**62}" in capped and "reads 512 tokens" in capped
    )
    fitting = client.chat.completions.with_raw_response.create(
        model=model_id, messages=QUESTION, max_tokens=4, temperature=0
    )
    assert "x-mlstack-max-tokens" not in fitting.headers


@pytest.mark.slow
def test_langchain_chat_openai_talks_to_the_server(tiny_server: tuple[str, str], reference) -> None:
    from langchain_openai import ChatOpenAI

    base_url, model_id = tiny_server
    chat = ChatOpenAI(model=model_id, base_url=base_url, api_key="unused", temperature=0, max_tokens=12)
    expected, _ = reference(QUESTION, 12)
    reply = chat.invoke("How do I read a CSV file?")
    assert reply.content == expected and reply.usage_metadata["output_tokens"] == 12
    assert "".join(chunk.content for chunk in chat.stream("How do I read a CSV file?")) == expected


@pytest.mark.slow
def test_each_response_says_where_its_time_went(tiny_server: tuple[str, str]) -> None:
    base_url, model_id = tiny_server
    body = {"model": model_id, "messages": QUESTION, "max_tokens": 4, "temperature": 0}
    response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=60)
    assert response.status_code == 200
    stages = dict(part.strip().split(";dur=") for part in response.headers["server-timing"].split(","))
    assert list(stages) == ["prompt", "generate", "respond", "total"]
    durations = {name: float(ms) for name, ms in stages.items()}
    assert all(ms >= 0 for ms in durations.values())
    assert durations["total"] >= durations["prompt"] + durations["generate"] + durations["respond"]
    models = httpx.get(f"{base_url}/models", timeout=10)
    assert models.headers["server-timing"].startswith("total;dur=")  # every route is timed


@pytest.mark.slow
def test_a_client_that_leaves_mid_stream_frees_the_model(client: OpenAI, model_id: str) -> None:
    stream = client.chat.completions.create(
        model=model_id, messages=QUESTION, max_tokens=400, temperature=1.0, seed=5, stream=True
    )
    first = [next(stream) for _ in range(3)]
    assert first[0].choices[0].delta.role == "assistant"
    stream.close()  # the generation stops at its next token and lets go of the model
    after = client.with_options(timeout=30).chat.completions.create(
        model=model_id, messages=QUESTION, max_tokens=3, temperature=0
    )
    assert after.usage.completion_tokens == 3


@pytest.mark.slow
def test_metrics_count_chat_requests(client: OpenAI, model_id: str, tiny_server: tuple[str, str]) -> None:
    import httpx

    client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    text = httpx.get(tiny_server[0].removesuffix("/v1") + "/metrics").text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith('http_requests_total{handler="/v1/chat/completions"') and 'status="2xx"' in x
    )
    assert float(line.split()[-1]) >= 1
    assert 'http_request_duration_seconds_bucket{handler="/v1/chat/completions"' in text


def _metric(text: str, name: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


@pytest.mark.slow
def test_a_client_that_leaves_before_its_answer_stops_its_generation(tiny_lm: Path, tmp_path: Path) -> None:
    """Ten clients that gave up at 3 s kept the model generating for minutes: a fresh 1-token
    request waited over 120 s. Here the model is busy (its lock held) while a client leaves, so
    the abandoned request would generate all of its tokens once the model is free; it generates
    none, and the next request is all the model does."""
    import asyncio

    from models.serving.openai_api import create_app

    app = create_app(tiny_lm, settings=Settings(home=tmp_path))

    async def leaving_client(body: bytes, leave: asyncio.Event) -> list[dict]:
        """A raw ASGI request whose connection closes when `leave` is set, as uvicorn says it."""
        incoming = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            if incoming:
                return incoming.pop(0)
            await leave.wait()
            return {"type": "http.disconnect"}

        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await app(scope, receive, send)
        return sent

    async def scenario() -> tuple[list[dict], dict, str]:
        async with app.router.lifespan_context(app):
            worker = app.state.worker
            ask = {"model": worker.lm.name, "messages": QUESTION, "max_tokens": 40, "temperature": 0}
            leave = asyncio.Event()
            worker.lm._lock.acquire()  # the model is busy with another answer
            try:
                request = asyncio.create_task(leaving_client(json.dumps(ask).encode(), leave))
                leave.set()
                sent = await request
            finally:
                worker.lm._lock.release()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                after = (await http.post("/v1/chat/completions", json=ask)).json()
                metrics = (await http.get("/metrics")).text
            return sent, after, metrics

    sent, after, metrics = asyncio.run(scenario())
    assert sent[0]["status"] == 499  # what proxies log for a client that closed first
    assert _metric(metrics, "mlstack_llm_abandoned_generations_total") == 1
    # Every token generated was the fresh request's: the abandoned one made none.
    assert _metric(metrics, "mlstack_llm_completion_tokens_total") == after["usage"]["completion_tokens"] > 0


@pytest.mark.slow
def test_clients_that_time_out_over_loopback_free_the_model(
    client: OpenAI, model_id: str, tiny_server: tuple[str, str]
) -> None:
    """The same through uvicorn: queued requests whose clients timed out are dropped, counted,
    and the model answers the next request."""
    from concurrent.futures import ThreadPoolExecutor

    metrics_url = tiny_server[0].removesuffix("/v1") + "/metrics"
    before = _metric(httpx.get(metrics_url).text, "mlstack_llm_abandoned_generations_total")
    impatient = client.with_options(timeout=0.2)

    def gave_up(seed: int) -> bool:
        try:
            impatient.chat.completions.create(
                model=model_id, messages=QUESTION, max_tokens=400, temperature=1.0, seed=seed
            )
        except openai.APITimeoutError:
            return True
        return False  # answered in time: the tiny model is quick, but ten in a queue are not

    with ThreadPoolExecutor(10) as pool:
        left = sum(pool.map(gave_up, range(10)))
    after = client.chat.completions.create(model=model_id, messages=QUESTION, max_tokens=1, temperature=0)
    assert after.usage.completion_tokens == 1 and left >= 1
    abandoned = _metric(httpx.get(metrics_url).text, "mlstack_llm_abandoned_generations_total") - before
    assert 1 <= abandoned <= left
