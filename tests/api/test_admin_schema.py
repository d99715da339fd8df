"""The admin API's OpenAPI schema, fuzzed with schemathesis against a real daemon (subprocess):
every operation, with the values it generates from what the document declares (path and query
parameters and JSON bodies: each route's control-method params model), under an admin token,
answers without a server error (no 5xx but the typed 503 of a part that is not configured here,
Twilio, which names what to set), and every answer fits what the document declares for its status
(the route's result model, or the error body). Each operation's own examples (x-codeSamples in
curl and Python, the parameter and body examples they are made from) are sent first: they fit the
method's params (no 422). Runs when schemathesis is installed (the dev group)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reautod.security.keys import generate_key_text
from tests.api.test_admin_daemon import api_daemon

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (schemathesis brings hypothesis)
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


@dataclass
class LiveApi:
    base: str
    tokens: Iterator[str]

    def auth(self) -> dict[str, str]:
        # several subjects in turn: the per-subject rate limit (429) would hide the handlers
        return {"Authorization": f"Bearer {next(self.tokens)}"}


@pytest.fixture
def live_api(daemon_factory: Any) -> Iterator[LiveApi]:
    d = api_daemon(daemon_factory, REAUTOD_SECRET_ENCRYPTION_KEY=generate_key_text())
    assert d.ctl("campaign", "create", "spring").returncode == 0  # one name that exists

    def token(subject: str) -> str:
        made = d.ctl("--json", "token", "create", "--subject", subject, "--role", "admin",
                     "--ttl-minutes", "60")
        assert made.returncode == 0, made.stderr
        return str(json.loads(made.stdout)["token"])

    port = json.loads(d.ctl("status", "--json").stdout)["http_port"]
    yield LiveApi(f"http://127.0.0.1:{port}",
                  itertools.cycle([token(f"fuzz-{i}") for i in range(8)]))
    d.stop()
    assert d.proc.returncode == 0, d.log()[-3000:]
    assert "Traceback" not in d.log(), d.log()[-5000:]


def server_error(response: httpx.Response) -> bool:
    if response.status_code < 500:
        return False
    if response.status_code != 503:
        return True
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return True  # a 503 without the API's error body is not one of ours
    return not (isinstance(error, dict) and error.get("code") and error.get("message"))


def send(request: dict[str, Any]) -> httpx.Response:
    """A generated request sent with httpx (schemathesis' own transport is tied to the requests
    and urllib3 versions it was built with)."""
    data = request.get("data")
    return httpx.request(
        request["method"], request["url"], headers=request.get("headers"),
        params=request.get("params"), cookies=request.get("cookies"), json=request.get("json"),
        content=data.encode() if isinstance(data, str) else data, timeout=30)


def example_request(path: str, operation: dict[str, Any]) -> tuple[str, dict[str, Any],
                                                                   Any]:
    """The request an operation's examples describe: path, query and JSON body."""
    query: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        if "example" in parameter and parameter["in"] == "path":
            path = path.replace(f"{{{parameter['name']}}}", str(parameter["example"]))
        elif "example" in parameter:
            query[parameter["name"]] = parameter["example"]
    media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    return path, query, media.get("examples", {}).get("minimal", {}).get("value")


def check_examples(document: dict[str, Any], live_api: LiveApi) -> None:
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            if not path.startswith("/api/v1/"):
                continue
            samples = {s["label"]: s["source"] for s in operation["x-codeSamples"]}
            assert set(samples) == {"curl", "Python (httpx)"}, path
            compile(samples["Python (httpx)"], path, "exec")  # a Python sample parses
            url, query, body = example_request(path, operation)
            assert "{" not in url and url in samples["curl"], (path, samples["curl"])
            got = httpx.request(verb.upper(), f"{live_api.base}{url}", params=query, json=body,
                                headers=live_api.auth(), timeout=30)
            assert got.status_code != 422 and not server_error(got), (verb, path, got.text)


# The operations are walked with hypothesis directly (`APIOperation.as_strategy`) rather than
# schemathesis' pytest plugin (`from_fixture`), which does not run under pytest 9.
def test_no_operation_answers_with_a_server_error(live_api: LiveApi) -> None:
    document = httpx.get(f"{live_api.base}/openapi.json", timeout=30).json()
    create = document["paths"]["/api/v1/campaigns"]["post"]["requestBody"]
    assert "name" in create["content"]["application/json"]["schema"]["properties"]
    history = document["paths"]["/api/v1/calls"]["get"]["parameters"]
    assert {"limit"} <= {p["name"] for p in history if p["in"] == "query"}
    answers = document["paths"]["/api/v1/audit"]["get"]["responses"]
    assert answers["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AuditList"}
    assert "ErrorBody" in answers["401"]["content"]["application/json"]["schema"]["$ref"]
    check_examples(document, live_api)
    schema = schemathesis.openapi.from_url(f"{live_api.base}/openapi.json").include(
        path_regex="^/api/v1/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]  # the routes are all there
    answered: dict[str, set[int]] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            response = send(case.as_transport_kwargs(base_url=live_api.base,
                                                     headers=live_api.auth()))
            answered.setdefault(case.operation.label, set()).add(response.status_code)
            assert not server_error(response), (case.method, case.formatted_path, response.text)
            case.validate_response(response, checks=[response_schema_conformance])

        fuzz()
    # the handlers ran (not only the gate): some operations succeeded, some refused their input
    codes = set().union(*answered.values())
    assert 200 in codes and codes & {400, 404, 422}, answered
