"""The OpenAI-compatible HTTP API of a real Switchyard, through the official `openai` client."""

from __future__ import annotations

import json
import math
import urllib.request

import openai
import pytest

from conftest import http_json


def cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_list_models_has_placements_and_auto(client, embed_model, chat_model):
    models = {m.id: m for m in client.models.list()}
    assert embed_model in models and chat_model in models and "auto" in models
    for m in models.values():
        assert m.object == "model"
        assert m.owned_by == "switchyard"
        extra = m.model_extra["switchyard"]
        assert extra["stage"] in {"classify", "embed", "generate"}
        assert isinstance(extra["loaded_on"], list)
    assert models[chat_model].model_extra["switchyard"]["tier"] == "fast"


def test_embeddings_single(client, embed_model):
    r = client.embeddings.create(model=embed_model, input="The cat sat on the mat.")
    assert len(r.data) == 1
    vec = r.data[0].embedding
    assert len(vec) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in vec)), 1.0, rel_tol=1e-3)
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens


def test_embeddings_batch_cosine_sanity(client, embed_model):
    texts = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "Corporate tax returns are due at the end of the fiscal quarter.",
    ]
    # float encoding explicitly (the client asks for base64 by default; both are covered).
    r = client.embeddings.create(model=embed_model, input=texts, encoding_format="float")
    assert [d.index for d in r.data] == [0, 1, 2]
    v = [d.embedding for d in r.data]
    related, unrelated = cosine(v[0], v[1]), cosine(v[0], v[2])
    assert related > unrelated + 0.2, (related, unrelated)
    # base64 carries the same numbers.
    b = client.embeddings.create(model=embed_model, input=texts)
    for x, y in zip(v, (d.embedding for d in b.data)):
        assert max(abs(p - q) for p, q in zip(x, y)) < 1e-4


def test_embeddings_token_arrays_are_refused(client, embed_model):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=embed_model, input=[[101, 2023, 102]])
    assert "token-array" in str(e.value)


def test_chat_non_stream(client, chat_model):
    r = client.chat.completions.create(
        model=chat_model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=12,
    )
    assert r.object == "chat.completion"
    assert r.model == chat_model
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in {"stop", "length"}
    assert r.usage.prompt_tokens > 0
    assert 0 < r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_assembles_the_same_text_with_usage(client, chat_model):
    messages = [{"role": "user", "content": "Name three colours."}]
    full = client.chat.completions.create(model=chat_model, messages=messages, temperature=0, max_tokens=16)
    stream = client.chat.completions.create(
        model=chat_model,
        messages=messages,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, finish, usage, roles = [], None, None, []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    assert roles == ["assistant"]
    assert finish in {"stop", "length"}
    text = "".join(parts)
    assert text == full.choices[0].message.content, "greedy decoding streams the same text"
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_chat_auto_resolves_to_a_generator(client, models):
    r = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Say hello."}], temperature=0, max_tokens=8
    )
    assert r.model in models and r.model != "auto"
    assert models[r.model]["switchyard"]["stage"] == "generate"


def test_chat_trace_headers(client, chat_model):
    raw = client.chat.completions.with_raw_response.create(
        model=chat_model, messages=[{"role": "user", "content": "Hi"}], temperature=0, max_tokens=4
    )
    h = raw.headers
    assert h.get("x-switchyard-node")
    assert h.get("x-switchyard-device")
    assert h.get("x-switchyard-backend")
    # The registry's models ask for f32; the agent reports what the runtime computed at.
    assert h.get("x-switchyard-precision") == "f32"
    assert float(h["x-inference-time"]) > 0
    assert float(h["x-queue-time"]) >= 0


def test_completions(client, chat_model):
    r = client.completions.create(model=chat_model, prompt="The capital of France is", temperature=0, max_tokens=8)
    assert r.object == "text_completion"
    assert r.choices[0].text.strip()


def test_invalid_parameters_are_400(client, chat_model):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": "x"}], temperature=3.0
        )
    assert e.value.param == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=chat_model, messages=[])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": "x"}], max_tokens=1_000_000
        )
    assert "max_tokens" in str(e.value)


def test_unknown_model_is_404_in_openai_shape(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="no-such-model", input="x")
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found"
    body = e.value.body
    assert set(body) >= {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])


def test_missing_or_wrong_token_is_401(system):
    if not system.token:
        pytest.skip("the system under test runs without API tokens")
    wrong = openai.OpenAI(base_url=f"{system.http_url}/v1", api_key="wrong-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        wrong.models.list()
    assert e.value.status_code == 401
    status, body, headers = http_json(f"{system.http_url}/v1/models")
    assert status == 401
    assert body["error"]["type"] == "authentication_error"
    assert headers.get("WWW-Authenticate") == "Bearer"
    # /health and /ready stay open.
    assert http_json(f"{system.http_url}/health")[0] == 200
    assert http_json(f"{system.http_url}/ready")[0] == 200


def test_rejections_keep_the_openai_shape(system):
    url = f"{system.http_url}/v1/embeddings"
    req = urllib.request.Request(url, data=b"{not json", method="POST")
    req.add_header("Content-Type", "application/json")
    if system.token:
        req.add_header("Authorization", f"Bearer {system.token}")
    try:
        urllib.request.urlopen(req, timeout=30)
        pytest.fail("bad JSON accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 400
        err = json.loads(e.read())["error"]
        assert err["code"] == "invalid_json"
    big = {"model": "x", "input": "a" * (3 * 1024 * 1024)}
    status, body, _ = http_json(url, token=system.token, body=big)
    assert status == 413, body
    assert "max_body_bytes" in body["error"]["message"]


def test_documents_and_pipeline_with_retrieval(system):
    docs = {
        "documents": [
            "The Switchyard test fixture lighthouse is painted green and stands on Kelp Island.",
            "Sourdough bread needs a starter, flour, water and salt.",
        ]
    }
    status, body, _ = http_json(f"{system.http_url}/v1/documents", token=system.token, body=docs)
    assert status == 200, body
    assert len(body["ids"]) == 2 and len(set(body["ids"])) == 2
    status, body, headers = http_json(
        f"{system.http_url}/v1/pipeline",
        token=system.token,
        body={
            "prompt": "What colour is the lighthouse on Kelp Island?",
            "retrieve": True,
            "top_k": 1,
            "max_tokens": 16,
            "temperature": 0,
        },
        timeout=120,
    )
    assert status == 200, body
    assert body["tier"] in {"fast", "code", "heavy"}
    assert body["text"].strip()
    assert any("lighthouse" in d for d in body["context_documents"]), body["context_documents"]
    stages = [t["stage"] for t in body["trace"]]
    assert "classify" in stages and "embed" in stages and stages[-1] == "generate", stages
    assert headers.get("x-switchyard-node")


def test_pipeline_explain_is_a_dry_run(system):
    status, body, _ = http_json(
        f"{system.http_url}/v1/pipeline",
        token=system.token,
        body={"prompt": "Write a Python function.", "explain": True},
    )
    assert status == 200, body
    assert body["explanation"], body
    assert body["text"] == ""
    for stage in body["explanation"]:
        for c in stage["candidates"]:
            assert c["eligible"] == (c["filtered_reason"] == "")


def test_document_store_routes_with_a_real_cluster(system):
    base = f"{system.http_url}/v1/documents"
    tok = system.token
    docs = {
        "collection": "pytest-notes",
        "documents": [
            {"text": "The greenhouse thermostat is set to 18 degrees at night.", "source": "greenhouse.md"},
            {"text": "def add(a, b):\n    return a + b\n", "source": "calc.py"},
        ],
    }
    status, body, _ = http_json(base, token=tok, body=docs)
    assert status == 200, body
    ids = body["ids"]
    assert [d["status"] for d in body["data"]] == ["added", "added"], body
    # The same documents again: unchanged, same ids, nothing embedded twice.
    status, again, _ = http_json(base, token=tok, body=docs)
    assert again["ids"] == ids and {d["status"] for d in again["data"]} == {"unchanged"}, again

    status, listed, _ = http_json(f"{base}?collection=pytest-notes", token=tok)
    assert status == 200 and [d["id"] for d in listed["data"]] == ids, listed
    assert listed["collections"][0]["embed_model"] == "minilm-l6-v2"
    assert listed["collections"][0]["dimension"] == 384

    status, found, headers = http_json(
        f"{base}/search",
        token=tok,
        body={"query": "What temperature is the greenhouse at night?", "k": 1, "collection": "pytest-notes"},
    )
    assert status == 200, found
    assert found["data"][0]["document_id"] == ids[0], found
    assert found["trace"][0]["retrieved"][0]["document_id"] == ids[0]
    assert headers.get("x-switchyard-node")

    status, one, _ = http_json(f"{base}/{ids[1]}", token=tok)
    assert status == 200 and one["text"].startswith("def add"), one

    req = urllib.request.Request(f"{base}/{ids[1]}", method="DELETE")
    if tok:
        req.add_header("Authorization", f"Bearer {tok}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert json.loads(resp.read())["deleted"] is True
    status, gone, _ = http_json(f"{base}/{ids[1]}", token=tok)
    assert status == 404, gone


def test_bad_documents_are_4xx_with_a_reason(system):
    base = f"{system.http_url}/v1/documents"
    tok = system.token
    status, body, _ = http_json(base, token=tok, body={"documents": ["bin\u0000ary"]})
    assert status == 400 and "binary" in body["error"]["message"], body
    status, body, _ = http_json(base, token=tok, body={"documents": ["   "]})
    assert status == 400 and "empty" in body["error"]["message"], body
    status, body, _ = http_json(
        f"{base}/search", token=tok, body={"query": "x", "collection": "no-such-collection"}
    )
    assert status == 404 and "no-such-collection" in body["error"]["message"], body
    status, body, _ = http_json(f"{base}/999999", token=tok)
    assert status == 404, body
    status, body, _ = http_json(base, token=tok, body={"documents": ["ok"], "collection": "bad name"})
    assert status == 400 and body["error"]["param"] == "collection", body
