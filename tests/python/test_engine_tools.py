"""Function calling and structured output through Switchyard to a real engine: a
`llama-server` (built by scripts/setup.sh) serving the real SmolLM2-135M GGUF, attached as
`[[agent.endpoints]] kind = "openai"`, driven with the official `openai` client.

The engine constrains its output with a grammar from the JSON schema, so even a 135M model
answers in the requested shape; the native ONNX decoder refuses the same fields.

Tool calls: SmolLM2's own template describes no tools, so llama-server is started with the
repository's `models/smollm2-135m-gguf/chatml-tools.jinja` (Hermes-style `<tool_call>`),
from which it derives the tool-call grammar and parser. With one earlier call in the
conversation (as any agent loop has after its first turn) the 135M model calls the tool
for the new question; the test runs the tool and sends the result back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from conftest import System, start_binary, wait_ready

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "switchyard"
TOOLS_TEMPLATE = Path(__file__).resolve().parents[2] / "models/smollm2-135m-gguf/chatml-tools.jinja"
MODEL = "smollm2-gguf"
WEATHER = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}]


def llama_server() -> str:
    found = sorted(CACHE.glob("engines/llama.cpp-*/llama-server"))
    if found:
        return str(found[-1])
    from shutil import which

    path = which("llama-server")
    if path is None:
        pytest.fail("no llama-server: run `bash scripts/setup.sh` (it builds one into the cache)")
    return path


def gguf() -> Path:
    found = sorted(CACHE.glob("models/**/SmolLM2-135M-Instruct*.gguf"))
    if not found:
        pytest.fail("SmolLM2-135M GGUF missing from the cache: run `bash scripts/setup.sh`")
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def engine_system():
    with tempfile.TemporaryDirectory(prefix="switchyard-engine-") as tmp:
        tmp = Path(tmp)
        port = free_port()
        log = open(tmp / "llama-server.log", "wb")
        server = subprocess.Popen(
            [llama_server(), "-m", str(gguf()), "--alias", MODEL, "--host", "127.0.0.1",
             "--port", str(port), "--jinja", "--chat-template-file", str(TOOLS_TEMPLATE),
             "--parallel", "2", "--ctx-size", "4096",
             "-t", os.environ.get("SWITCHYARD_THREADS", "2")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("llama-server did not start:\n"
                                       + (tmp / "llama-server.log").read_text(errors="replace")[-3000:])
                time.sleep(0.2)
            extra = (f'\n[[agent.endpoints]]\nname = "llama"\nkind = "openai"\n'
                     f'url = "http://127.0.0.1:{port}"\n')
            s: System = start_binary(tmp, extra_config=extra)
            try:
                wait_ready(s)
                client = openai.OpenAI(base_url=f"{s.http_url}/v1", api_key=s.token, max_retries=0)
                deadline = time.monotonic() + 30
                while MODEL not in {m.id for m in client.models.list()}:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{MODEL} never listed; stderr:\n{s.stderr_tail()}")
                    time.sleep(0.2)
                yield client
            finally:
                s.proc.terminate()
                s.proc.wait(timeout=10)
        finally:
            server.terminate()
            server.wait(timeout=10)


def test_a_json_schema_response_parses_and_validates(engine_system):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name", "population"],
        "additionalProperties": False,
    }
    r = engine_system.chat.completions.create(
        model=MODEL, max_tokens=96, temperature=0,
        messages=[{"role": "user", "content": "Give the name and population of Oslo."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city", "schema": schema, "strict": True}},
    )
    value = json.loads(r.choices[0].message.content)
    assert set(value) == {"name", "population"}, value
    assert isinstance(value["name"], str) and isinstance(value["population"], int), value
    assert r.model == MODEL


def test_the_native_decoder_refuses_tools_naming_the_field(engine_system):
    with pytest.raises(openai.BadRequestError) as e:
        engine_system.chat.completions.create(
            model="auto", max_tokens=8, tools=WEATHER,
            messages=[{"role": "user", "content": "hi"}],
        )
    body = e.value.body
    assert body["param"] == "tools", body
    assert "native ONNX decoder" in body["message"], body


WEATHER_NOW = {"London": {"temperature_c": 11}, "Paris": {"temperature_c": 18}}


def get_weather(city: str) -> dict:
    """The tool the client runs (a table: the point is the round trip, not the weather)."""
    return WEATHER_NOW[city]


def earlier_turn() -> list[dict]:
    """A finished tool round trip earlier in the conversation."""
    return [
        {"role": "user", "content": "What is the weather in London?"},
        {"role": "assistant", "content": "", "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "London"})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps(get_weather("London"))},
        {"role": "assistant", "content": "It is 11 °C in London."},
    ]


def test_a_tool_call_round_trip_through_switchyard(engine_system):
    messages = earlier_turn() + [{"role": "user", "content": "What is the weather in Paris?"}]
    r = engine_system.chat.completions.create(
        model=MODEL, max_tokens=64, temperature=0, messages=messages, tools=WEATHER,
        tool_choice="required",
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather", call
    args = json.loads(call.function.arguments)
    assert args == {"city": "Paris"}, args
    assert call.id, call
    # Run the tool and send its result back: the model answers in text now.
    messages += [
        {"role": "assistant", "content": choice.message.content or "",
         "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps(get_weather(**args))},
    ]
    final = engine_system.chat.completions.create(
        model=MODEL, max_tokens=32, temperature=0, messages=messages, tools=WEATHER,
        tool_choice="none",
    )
    answer = final.choices[0]
    assert answer.finish_reason in ("stop", "length"), answer
    assert not answer.message.tool_calls, answer
    assert answer.message.content.strip(), answer


def test_a_streamed_tool_call_arrives_whole(engine_system):
    messages = earlier_turn() + [{"role": "user", "content": "What is the weather in Paris?"}]
    stream = engine_system.chat.completions.create(
        model=MODEL, max_tokens=64, temperature=0, messages=messages, tools=WEATHER,
        tool_choice="required", stream=True,
    )
    name, arguments, finish, ids = "", "", None, set()
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            assert tc.index == 0, tc
            if tc.id:
                ids.add(tc.id)
            if tc.function and tc.function.name:
                name += tc.function.name
            if tc.function and tc.function.arguments:
                arguments += tc.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert name == "get_weather" and json.loads(arguments) == {"city": "Paris"}, (name, arguments)
    assert len(ids) == 1, ids


def ollama_client(engine_system):
    """The official `ollama` client against the same Switchyard (its Ollama API)."""
    import ollama

    host = str(engine_system.base_url).rstrip("/").removesuffix("/v1")
    return ollama.Client(host=host, headers={"Authorization": f"Bearer {engine_system.api_key}"},
                         timeout=120)


def test_ollama_client_tool_call_round_trip(engine_system):
    o = ollama_client(engine_system)
    messages = [
        {"role": "user", "content": "What is the weather in London?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "London"}}}]},
        {"role": "tool", "tool_name": "get_weather", "content": json.dumps(get_weather("London"))},
        {"role": "assistant", "content": "It is 11 °C in London."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    options = {"temperature": 0, "num_predict": 64}
    r = o.chat(model=MODEL, messages=messages, tools=WEATHER, options=options, stream=False)
    calls = r.message.tool_calls
    assert calls, r
    assert calls[0].function.name == "get_weather", calls
    assert dict(calls[0].function.arguments) == {"city": "Paris"}, calls
    messages += [
        r.message,
        {"role": "tool", "tool_name": "get_weather",
         "content": json.dumps(get_weather(**calls[0].function.arguments))},
    ]
    final = o.chat(model=MODEL, messages=messages, options={"temperature": 0, "num_predict": 32},
                   stream=False)
    assert final.message.content.strip(), final
    assert not final.message.tool_calls, final


def test_ollama_client_format_schema_parses_and_validates(engine_system):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name", "population"],
    }
    r = ollama_client(engine_system).chat(
        model=MODEL, format=schema, stream=False, options={"temperature": 0, "num_predict": 96},
        messages=[{"role": "user", "content": "Give the name and population of Oslo."}],
    )
    value = json.loads(r.message.content)
    assert isinstance(value["name"], str) and isinstance(value["population"], int), value
