"""The Ollama-compatible API of a real Switchyard, through the official `ollama` client: an
Ollama app changes only the host (and sends the API token when tokens are configured)."""

from __future__ import annotations

import math
import time

import ollama
import pytest

from conftest import http_json


def cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
def oc(system):
    """The official Ollama client pointed at Switchyard's HTTP port."""
    headers = {"Authorization": f"Bearer {system.token}"} if system.token else {}
    return ollama.Client(host=system.http_url, headers=headers, timeout=120)


GREEDY = {"temperature": 0, "num_predict": 12}


def test_list_has_the_models_with_tags_and_auto(oc, chat_model, embed_model):
    models = {m.model: m for m in oc.list().models}
    assert f"{chat_model}:latest" in models and f"{embed_model}:latest" in models
    assert "auto:latest" in models
    chat = models[f"{chat_model}:latest"]
    assert chat.details.format == "onnx"
    assert chat.details.family == "llama"
    assert chat.size > 0


def test_show_reports_capabilities_and_context(oc, chat_model, embed_model):
    s = oc.show(chat_model)
    assert s.capabilities == ["completion"]
    assert s.details.family == "llama"
    assert s.modelinfo["llama.context_length"] == 2048
    e = oc.show(f"{embed_model}:latest")
    assert e.capabilities == ["embedding"]
    assert e.modelinfo["bert.embedding_length"] == 384


def test_chat_not_streamed(oc, chat_model):
    r = oc.chat(
        model=chat_model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        options=GREEDY,
    )
    assert r.done and r.done_reason in {"stop", "length"}
    assert r.message.role == "assistant" and r.message.content.strip()
    assert r.model == chat_model
    assert r.prompt_eval_count > 0 and 0 < r.eval_count <= 12
    assert r.total_duration >= r.eval_duration > 0
    assert r.total_duration >= r.prompt_eval_duration


def test_chat_streamed_assembles_the_same_text(oc, chat_model):
    messages = [{"role": "user", "content": "Name three colours."}]
    full = oc.chat(model=f"{chat_model}:latest", messages=messages, options=GREEDY)
    parts = list(oc.chat(model=f"{chat_model}:latest", messages=messages, options=GREEDY, stream=True))
    assert len(parts) > 2
    *pieces, last = parts
    assert not any(p.done for p in pieces)
    assert last.done and last.done_reason == full.done_reason
    assert last.eval_count == full.eval_count
    text = "".join(p.message.content for p in parts)
    assert text == full.message.content, "greedy decoding streams the same text"


def test_generate_answers_a_prompt(oc, chat_model):
    r = oc.generate(model=chat_model, prompt="What is the capital of France? One word.", options=GREEDY)
    assert r.done
    assert "paris" in r.response.lower(), r.response
    streamed = "".join(p.response for p in oc.generate(
        model=chat_model, prompt="What is the capital of France? One word.", options=GREEDY, stream=True
    ))
    assert streamed == r.response


def test_options_change_the_answer(oc, chat_model):
    base = {"temperature": 0, "num_predict": 16, "repeat_penalty": 1.0}
    msg = [{"role": "user", "content": "Count from one to ten in words."}]
    plain = oc.chat(model=chat_model, messages=msg, options=base).message.content
    words = plain.split()
    assert len(words) >= 3, plain
    # A stop string cuts the same greedy answer just before it.
    stop = words[2]
    cut = plain[: plain.index(stop)]
    stopped = oc.chat(model=chat_model, messages=msg, options={**base, "stop": [stop]})
    assert stopped.message.content == cut, (stopped.message.content, plain)
    assert stopped.done_reason == "stop"
    # A heavy frequency penalty forbids repeating a generated token: the greedy text changes.
    penalised = oc.chat(model=chat_model, messages=msg, options={**base, "frequency_penalty": 2.0}).message.content
    assert penalised != plain
    # num_predict caps the answer.
    short = oc.chat(model=chat_model, messages=msg, options={**base, "num_predict": 3})
    assert short.eval_count == 3 and short.done_reason == "length"


def test_embed_and_legacy_embeddings(oc, embed_model):
    texts = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "Corporate tax returns are due at the end of the fiscal quarter.",
    ]
    r = oc.embed(model=embed_model, input=texts)
    v = r.embeddings
    assert len(v) == 3 and all(len(x) == 384 for x in v)
    assert cosine(v[0], v[1]) > cosine(v[0], v[2]) + 0.2
    assert r.prompt_eval_count > 0
    legacy = oc.embeddings(model=embed_model, prompt=texts[0]).embedding
    assert max(abs(p - q) for p, q in zip(legacy, v[0])) < 1e-4


def test_a_model_that_does_not_exist_is_404(oc):
    with pytest.raises(ollama.ResponseError) as e:
        oc.chat(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404
    assert "no-such-model" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        oc.show("no-such-model")
    assert e.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as e:
        oc.embed(model="no-such-model", input="x")
    assert e.value.status_code == 404


def test_unsupported_fields_are_refused_not_ignored(oc, chat_model):
    msg = [{"role": "user", "content": "x"}]
    for kwargs, field in [
        ({"format": "json"}, "format"),
        ({"options": {"mirostat": 2}}, "options.mirostat"),
        ({"options": {"num_ctx": 8192}}, "options.num_ctx"),
        ({"think": True}, "think"),
    ]:
        with pytest.raises(ollama.ResponseError) as e:
            oc.chat(model=chat_model, messages=msg, **kwargs)
        assert e.value.status_code == 400, kwargs
        assert field in e.value.error, (kwargs, e.value.error)
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model=chat_model, prompt="x", raw=True)
    assert e.value.status_code == 400 and "raw" in e.value.error


def loaded(oc) -> dict:
    return {m.model: m for m in oc.ps().models}


def wait_until(pred, timeout: float = 15.0) -> bool:
    """Polls `pred` (residency reaches /api/ps with the agents' 1 s heartbeats)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_ps_and_keep_alive_zero_unloads(oc, embed_model):
    name = f"{embed_model}:latest"
    oc.embed(model=embed_model, input="warm up")
    assert wait_until(lambda: name in loaded(oc)), loaded(oc)
    m = loaded(oc)[name]
    assert m.size_vram == 0, "runs on the CPU here"
    assert m.expires_at.timestamp() > time.time()
    # keep_alive 0: the residency loop unloads it as soon as it is idle.
    oc.embed(model=embed_model, input="last one", keep_alive=0)
    assert wait_until(lambda: name not in loaded(oc)), "still loaded 15 s after keep_alive 0"
    # It loads again on the next request, and stays with the default keep-alive.
    assert len(oc.embed(model=embed_model, input="again").embeddings[0]) == 384
    assert wait_until(lambda: name in loaded(oc)), loaded(oc)
    time.sleep(3)
    assert name in loaded(oc), "the one-shot keep_alive 0 was spent"


def test_keep_alive_that_cannot_be_honoured_is_refused(oc):
    # The router is pinned ([residency] pinned): it cannot be unloaded.
    with pytest.raises(ollama.ResponseError) as e:
        oc.generate(model="router", keep_alive=0)
    assert e.value.status_code == 400 and "pinned" in e.value.error


def test_version_is_open(system):
    status, body, _ = http_json(f"{system.http_url}/api/version")
    assert status == 200 and body["version"]
