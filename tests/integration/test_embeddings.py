"""OpenAI's embeddings on the gateway, each request a job, driven by the official client."""

from __future__ import annotations

import asyncio
import json
import math

import openai
import pytest
from chatq.shared.errors import InvalidRequest
from chatq.simulator.embeddings import vector

from chatq import AsyncChatqClient
from tests.support.batches import batch_ended, start_batch
from tests.support.stacks import stack_fixture

# The plain gateway stack of test_gateway, booted once for all.
gateway_stack = stack_fixture(shared="gateway", gateway=True)

TEXTS = [f"document number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(100)]


@pytest.fixture(scope="module")
def client(gateway_stack) -> openai.OpenAI:
    return gateway_stack.openai()


def embedding_calls(stack) -> int:
    return sum(1 for r in stack.sim_requests() if "input" in (r.get("body") or {}))


def inputs_sent(stack) -> list:
    """Every input the provider was asked to embed, in the order of its calls."""
    bodies = [r.get("body") or {} for r in stack.sim_requests()]
    return [item for body in bodies if "input" in body for item in body["input"]]


def test_a_hundred_texts_get_a_hundred_vectors_in_order(client, gateway_stack):
    answer = client.embeddings.create(model="sim-mini", input=TEXTS, encoding_format="float")
    assert [item.index for item in answer.data] == list(range(100))
    assert answer.data[7].embedding == vector(TEXTS[7], "sim-mini", 256)
    assert answer.model == "sim-mini" and answer.usage.prompt_tokens > 0


def test_base64_is_the_same_vectors_and_a_repeat_makes_no_call(client, gateway_stack):
    texts = [f"{text} (again)" for text in TEXTS]
    floats = client.embeddings.create(model="sim-mini", input=texts, encoding_format="float")
    calls = embedding_calls(gateway_stack)
    # The official client asks for base64 by default and decodes it itself.
    decoded = client.embeddings.create(model="sim-mini", input=texts)
    assert embedding_calls(gateway_stack) == calls  # answered from the cache
    for plain, packed in zip(floats.data, decoded.data, strict=True):
        pairs = zip(plain.embedding, packed.embedding, strict=True)
        assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in pairs)


def test_dimensions_and_token_arrays(client):
    answer = client.embeddings.create(
        model="sim-mini", input=[[1, 2, 3], [4, 5]], dimensions=8, encoding_format="float"
    )
    assert [len(item.embedding) for item in answer.data] == [8, 8]


def test_errors_keep_openais_shapes(client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="no-such-model", input="hi")
    assert missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as empty:
        client.embeddings.create(model="sim-mini", input=["fine", ""])
    assert empty.value.body["param"] == "input[1]"


def test_an_embeddings_batch_completes_and_its_lines_share_calls(client, gateway_stack):
    """Identical lines cost one input, and the distinct ones are gathered into few calls."""
    distinct = [f"batch line text {i}" for i in range(40)]
    lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "sim-mini", "input": distinct[i % 40], "dimensions": 16},
        }
        for i in range(200)
    ]
    calls, sent = embedding_calls(gateway_stack), len(inputs_sent(gateway_stack))
    batch = start_batch(gateway_stack.gateway_url, lines, "/v1/embeddings")
    done = batch_ended(gateway_stack.gateway_url, batch["id"], timeout=120)
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 200
    assert sorted(inputs_sent(gateway_stack)[sent:]) == sorted(distinct)
    assert embedding_calls(gateway_stack) - calls < 40
    output = client.files.content(done["output_file_id"]).text.splitlines()
    bodies = {r["custom_id"]: r["response"]["body"] for r in map(json.loads, output)}
    assert bodies["e41"]["data"][0]["embedding"] == bodies["e1"]["data"][0]["embedding"]
    assert bodies["e1"]["data"][0]["embedding"] == vector(distinct[1], "sim-mini", 16)


def test_the_sdks_embed_gives_the_vectors_in_order(gateway_stack):
    texts = ["sdk one", "sdk two", "sdk three"]
    with gateway_stack.client() as client:
        vectors = client.embed(texts, model="sim-mini", dimensions=8)
        assert vectors == [vector(text, "sim-mini", 8) for text in texts]
        assert client.embed([5, 6, 7], model="sim-mini") == [vector([5, 6, 7], "sim-mini", 256)]
        with pytest.raises(InvalidRequest):
            client.embed(["fine", ""], model="sim-mini")

    async def embed_async() -> list[list[float]]:
        client = AsyncChatqClient(gateway_stack.settings)
        try:
            return await client.embed("sdk async", model="sim-mini")
        finally:
            await client.aclose()

    assert asyncio.run(embed_async()) == [vector("sdk async", "sim-mini", 256)]
