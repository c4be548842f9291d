"""The gRPC `switchyard.v1.Inference` service of a real Switchyard, with client code generated
from proto/ at test time, plus grpc.health.v1 and server reflection."""

from __future__ import annotations

import math

import grpc
import pytest


def test_embed(pb, grpc_channel, grpc_auth, embed_model):
    stub = pb.inference_pb2_grpc.InferenceStub(grpc_channel)
    r = stub.Embed(
        pb.inference_pb2.EmbedRequest(model=embed_model, inputs=["hello world", "good morning"]),
        metadata=grpc_auth,
        timeout=60,
    )
    assert len(r.embeddings) == 2
    for e in r.embeddings:
        assert len(e.values) == 384
        assert math.isclose(math.sqrt(sum(x * x for x in e.values)), 1.0, rel_tol=1e-3)
    assert r.prompt_tokens > 0
    assert r.trace.node and r.trace.device_id and r.trace.backend


def test_generate_streams_chunks(pb, grpc_channel, grpc_auth, chat_model):
    stub = pb.inference_pb2_grpc.InferenceStub(grpc_channel)
    req = pb.inference_pb2.GenerateRequest(
        model=chat_model,
        messages=[pb.agent_pb2.ChatMessage(role="user", content="Count from one to five.")],
        sampling=pb.agent_pb2.SamplingParams(max_tokens=12, temperature=0.0, top_p=1.0),
    )
    chunks = list(stub.Generate(req, metadata=grpc_auth, timeout=120))
    assert len(chunks) >= 2, "a stream, not one message"
    text = "".join(c.text for c in chunks)
    assert text.strip()
    last = chunks[-1]
    assert last.HasField("finish_reason") and last.finish_reason in {"stop", "length"}
    assert 0 < last.completion_tokens <= 12
    assert last.trace.node


def test_run_pipeline(pb, grpc_channel, grpc_auth):
    stub = pb.inference_pb2_grpc.InferenceStub(grpc_channel)
    r = stub.RunPipeline(
        pb.inference_pb2.PipelineRequest(
            prompt="Write a Rust function that adds two numbers.",
            sampling=pb.agent_pb2.SamplingParams(max_tokens=16, temperature=0.0, top_p=1.0),
        ),
        metadata=grpc_auth,
        timeout=120,
    )
    assert r.tier in {"fast", "code", "heavy"}
    assert r.model and r.text.strip()
    assert len(r.trace) >= 2


def test_invalid_argument_and_not_found(pb, grpc_channel, grpc_auth, embed_model):
    stub = pb.inference_pb2_grpc.InferenceStub(grpc_channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.Embed(pb.inference_pb2.EmbedRequest(model=embed_model, inputs=[]), metadata=grpc_auth, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        stub.Embed(pb.inference_pb2.EmbedRequest(model="no-such-model", inputs=["x"]), metadata=grpc_auth, timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_missing_token_is_unauthenticated(pb, grpc_channel, system, embed_model):
    if not system.token:
        pytest.skip("the system under test runs without API tokens")
    stub = pb.inference_pb2_grpc.InferenceStub(grpc_channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.Embed(pb.inference_pb2.EmbedRequest(model=embed_model, inputs=["x"]), timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_check_serving(grpc_channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(grpc_channel)
    r = stub.Check(health_pb2.HealthCheckRequest(service="switchyard.v1.Inference"), timeout=10)
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def _reflection_services(channel) -> list[str]:
    """Service names from server reflection: v1 (what tonic-reflection serves), else v1alpha.
    grpcio-reflection ships only the v1alpha messages; v1 is wire-identical."""
    from grpc_reflection.v1alpha import reflection_pb2

    last = None
    for path in (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ):
        call = channel.stream_stream(
            path,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        try:
            responses = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                last = e
                continue
            raise
        return [s.name for r in responses for s in r.list_services_response.service]
    raise AssertionError(f"no reflection service: {last}")


def test_reflection_lists_inference(grpc_channel):
    services = _reflection_services(grpc_channel)
    assert "switchyard.v1.Inference" in services, services
    assert "grpc.health.v1.Health" in services, services
