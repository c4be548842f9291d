"""Retrieval on the chat routes (issue 36): the official `openai` and `ollama` clients ask for
the user's documents as context (`extra_body={"retrieval": ...}`, `options={"retrieval": ...}`
or a `MODEL+docs` name) and get the sources back (document, chunk, score) in the
`switchyard` extension object, streamed and not; with no matching document the answer comes
without context and says so. Invalid retrieval fields are 400 with the field named."""

import ollama
import openai
import pytest

from conftest import http_json

COLLECTION = "pytest-rag"
FACT = "The Switchyard lighthouse keeper is named Ottoline and she feeds the gulls at dawn."


@pytest.fixture(scope="module")
def rag_doc(system):
    status, body, _ = http_json(
        f"{system.http_url}/v1/documents",
        token=system.token,
        body={"collection": COLLECTION, "documents": [{"text": FACT, "source": "keeper.md"}]},
    )
    assert status == 200, body
    return body["ids"][0]


def retrieval(top_k=2):
    return {"collection": COLLECTION, "top_k": top_k}


def test_openai_chat_with_retrieval_returns_its_sources(client, chat_model, rag_doc):
    r = client.chat.completions.create(
        model=chat_model,
        messages=[{"role": "user", "content": "Who is the lighthouse keeper?"}],
        max_tokens=8,
        temperature=0,
        extra_body={"retrieval": retrieval()},
    )
    sy = r.model_extra["switchyard"]
    assert [s["document_id"] for s in sy["sources"]] == [rag_doc], sy
    assert sy["sources"][0]["source"] == "keeper.md" and sy["sources"][0]["score"] > 0.2, sy
    assert r.choices[0].message.content


def test_openai_streamed_chat_sends_the_sources_on_its_last_chunk(client, chat_model, rag_doc):
    stream = client.chat.completions.create(
        model=chat_model,
        messages=[{"role": "user", "content": "Who feeds the gulls?"}],
        max_tokens=6,
        temperature=0,
        stream=True,
        extra_body={"retrieval": retrieval(1)},
    )
    chunks = list(stream)
    last = chunks[-1].model_extra.get("switchyard")
    assert last is not None, chunks[-1]
    assert [s["document_id"] for s in last["sources"]] == [rag_doc], last
    assert all(c.model_extra.get("switchyard") is None for c in chunks[:-1])


def test_ollama_chat_with_retrieval_in_options_streamed_and_not(system, rag_doc, chat_model):
    headers = {"Authorization": f"Bearer {system.token}"} if system.token else {}
    oc = ollama.Client(host=system.http_url, headers=headers, timeout=120)
    messages = [{"role": "user", "content": "Who is the lighthouse keeper?"}]
    options = {"temperature": 0, "num_predict": 6, "retrieval": retrieval()}
    r = oc.chat(model=chat_model, messages=messages, options=options)
    sy = r.model_dump().get("switchyard") or getattr(r, "switchyard", None)
    if sy is None:  # the client keeps unknown fields in its raw response only
        status, body, _ = http_json(
            f"{system.http_url}/api/chat", token=system.token,
            body={"model": chat_model, "messages": messages, "options": options, "stream": False},
        )
        assert status == 200, body
        sy = body["switchyard"]
    assert [s["document_id"] for s in sy["sources"]] == [rag_doc], sy
    parts = list(oc.chat(model=chat_model, messages=messages, options=options, stream=True))
    assert parts[-1].done and "".join(p.message.content for p in parts)


def test_a_docs_model_name_asks_for_retrieval_and_no_match_says_so(system, chat_model, rag_doc):
    status, body, _ = http_json(
        f"{system.http_url}/v1/chat/completions", token=system.token,
        body={"model": f"{chat_model}+docs", "max_tokens": 4, "temperature": 0,
              "messages": [{"role": "user", "content": "Hello"}],
              "retrieval": {"collection": "pytest-rag-empty-never-made"}},
    )
    # A named collection that does not exist is the client's mistake.
    assert status == 404 and "pytest-rag-empty-never-made" in body["error"]["message"], body
    # The +docs name alone asks for retrieval (the default collection; other tests of this
    # session may have filled it): the answer lists its sources, possibly none.
    status, body, _ = http_json(
        f"{system.http_url}/v1/chat/completions", token=system.token,
        body={"model": f"{chat_model}+docs", "max_tokens": 4, "temperature": 0,
              "messages": [{"role": "user", "content": "Hello"}]},
    )
    assert status == 200, body
    assert isinstance(body["switchyard"]["sources"], list), body
    # Nothing close enough: answered without context, and said so.
    status, body, _ = http_json(
        f"{system.http_url}/v1/chat/completions", token=system.token,
        body={"model": f"{chat_model}+docs", "max_tokens": 4, "temperature": 0,
              "messages": [{"role": "user", "content": "Hello"}],
              "retrieval": {"collection": COLLECTION, "min_score": 0.99}},
    )
    assert status == 200, body
    sy = body["switchyard"]
    assert sy["sources"] == [] and "without context" in sy["retrieval"], sy


@pytest.mark.parametrize("value, why", [
    ("yes", "must be true, false or an object"),
    ({"k": 3}, "unknown field 'retrieval.k'"),
    ({"top_k": 1000}, "at most 64"),
])
def test_bad_retrieval_fields_are_refused_with_the_field_named(client, chat_model, value, why):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
            extra_body={"retrieval": value},
        )
    assert why in str(e.value), e.value
