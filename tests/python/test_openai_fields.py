"""Every OpenAI request field is honoured or refused with 400 naming it (official `openai`
client against a real Switchyard)."""

from __future__ import annotations

import os
from pathlib import Path

import openai
import pytest

MSG = [{"role": "user", "content": "Count from one to ten in words."}]


def greedy(client, model, **extra):
    return client.chat.completions.create(
        model=model, messages=MSG, temperature=0, max_tokens=16, **extra
    ).choices[0].message.content


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"store": True}, "store"),
        ({"extra_body": {"colour": "red"}}, "colour"),
    ],
)
def test_a_field_not_acted_on_is_refused_by_name(client, chat_model, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=chat_model, messages=MSG, max_tokens=4, **kwargs)
    assert e.value.status_code == 400
    assert e.value.param == param, e.value.body
    assert param in e.value.message


def test_a_message_name_is_refused(client, chat_model):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": "hi", "name": "bob"}], max_tokens=4
        )
    assert "messages[0].name" in e.value.message


def test_penalties_and_logit_bias_change_the_greedy_answer(client, chat_model):
    plain = greedy(client, chat_model)
    assert greedy(client, chat_model) == plain, "greedy decoding is repeatable"
    assert greedy(client, chat_model, frequency_penalty=2.0) != plain
    assert greedy(client, chat_model, presence_penalty=2.0) != plain
    # Ban the answer's first token: greedy decoding has to start differently.
    from tokenizers import Tokenizer

    models = Path(os.environ.get("SWITCHYARD_MODELS_DIR") or Path.home() / ".cache/switchyard/models")
    tok = Tokenizer.from_file(str(models / "smollm2-135m" / "tokenizer.json"))
    first = tok.encode(plain, add_special_tokens=False).ids[0]
    banned = greedy(client, chat_model, logit_bias={str(first): -100})
    assert banned != plain
    assert not banned.startswith(tok.decode([first])), (banned, tok.decode([first]))


def test_user_and_metadata_are_recorded_in_the_request_log(system, client, chat_model):
    r = client.chat.completions.create(
        model=chat_model, messages=MSG, max_tokens=4, user="alice-7f3", metadata={"team": "search-42"}
    )
    assert r.choices[0].message.content
    if system.stderr_path is None:
        pytest.skip("the system under test was started elsewhere; its log is not readable here")
    log = system.stderr_path.read_text(errors="replace")
    line = next((l for l in log.splitlines() if "request attributed" in l and "alice-7f3" in l), None)
    assert line is not None, log[-2000:]
    assert "search-42" in line
