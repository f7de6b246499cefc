"""Schemathesis over every operation of the OpenAPI spec, against the real app, index and answerer with the
fakes for the models (FakeEmbedder, ScriptedLLM) injected through create_app: no request may get a 5xx,
and every response's status, content type and body must be the ones the spec documents."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from index.build import build_index
from server.api.app import create_app
from server.settings import Settings

from conftest import FakeEmbedder, ScriptedLLM

KEY = "schema-key"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
REPLY = "Dongfeng is in talks with the Italian government [1]. " * 3


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app over a three-article index built with the fake embedder; a scripted model that always has a reply."""
    from conftest import THREE_ARTICLES

    root = tmp_path_factory.mktemp("schema")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in THREE_ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    embedder = FakeEmbedder()
    build_index(corpus, root / "index", embedder)
    llm = ScriptedLLM()
    llm.replies = type("Endless", (list,), {"pop": lambda self, i=0: REPLY, "__bool__": lambda self: True})()
    app = create_app(Settings(index_dir=root / "index", corpus_dir=corpus, api_keys=[KEY]), embedder=embedder, llm=llm)
    with TestClient(app):  # runs the lifespan: index, answerer and gate on app.state
        yield app


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Authorization": f"Bearer {KEY}"})


def fuzz(api_schema, examples: int, checks=CHECKS, **call) -> list[str]:
    """Run every operation on valid and (where it takes any input) invalid generated requests; the labels run."""
    labels = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        has_inputs = any(len(inputs) for inputs in (operation.path_parameters, operation.query, operation.body))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_inputs else (GenerationMode.POSITIVE,):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                      database=None)
            def run(case):
                case.call_and_validate(checks=checks, **call)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request could be generated"
                # any string is a valid path parameter, so /api/articles/{article_id} has no invalid request to send
    return labels


def test_every_operation_conforms_and_never_fails(api_schema):
    labels = fuzz(api_schema, 60, headers={"Authorization": f"Bearer {KEY}"})
    assert {"POST /api/ask", "GET /api/search", "GET /api/articles/{article_id}", "POST /v1/chat/completions",
            "GET /v1/models", "GET /api/index/status", "POST /api/index/rebuild"} <= set(labels)


def refused_for_want_of_a_key(ctx, response, case) -> None:
    """Without a key, whatever the request, the answer is 401."""
    assert response.status_code == 401, f"{case.operation.label} answered {response.status_code} without a key"


def test_every_operation_without_a_key_is_a_documented_401(api_schema):
    fuzz(api_schema, 5, checks=[*CHECKS, refused_for_want_of_a_key])


def test_the_spec_lists_every_status_the_event_streams_and_refuses_unknown_fields(app):
    spec = app.openapi()
    statuses = {f"{method.upper()} {path}": set(operation["responses"]) for path, item in spec["paths"].items()
                for method, operation in item.items()}
    assert statuses["POST /api/ask"] == {"200", "400", "401", "413", "422", "429", "503"}
    assert statuses["POST /v1/chat/completions"] == {"200", "400", "401", "404", "413", "422", "429", "503"}
    assert statuses["GET /api/search"] == {"200", "401", "413", "422", "503"}
    assert statuses["GET /api/articles/{article_id}"] == {"200", "401", "404", "422", "503"}
    assert statuses["POST /api/index/rebuild"] == {"202", "401", "403", "409"}
    for path in ("/api/ask", "/v1/chat/completions"):
        assert {"application/json", "text/event-stream"} <= set(spec["paths"][path]["post"]["responses"]["200"]["content"])
    schemas = spec["components"]["schemas"]
    for name in ("AskRequest", "FiltersIn", "Turn", "ChatRequest", "ChatMessage", "TextPart", "StreamOptions"):
        assert schemas[name]["additionalProperties"] is False, name
    assert {"temperature", "max_tokens", "top_p", "n", "user", "stream_options", "seed", "stop"} <= set(schemas["ChatRequest"]["properties"])
