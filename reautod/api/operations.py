"""What each admin API operation takes, for the OpenAPI document: the control method's params
model as path and query parameters (GET) or a JSON body (POST), so clients and the schemathesis
fuzz see the real fields, types and limits.

Each operation also carries examples: a request body example (`examples`, shown by Swagger UI
and ReDoc) and `x-codeSamples` (curl and Python with httpx, ReDoc's tabs), made from the same
params model (`example_params`: the required fields with sample values), so they cannot name a
field the method does not take; the schemathesis test sends each example to a real daemon.

The document only describes: the endpoint still reads the raw query or body and validates it
with the same model after authentication (so 401 and 403 still come before 422). The models'
`$defs` are inlined, since a `#/$defs/...` reference inside the document would point at its root.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.errors import PydanticUserError

log = logging.getLogger(__name__)

_PATH_PARAM = re.compile(r"{(\w+)}")
BASE_URL = "http://127.0.0.1:8080/api/v1"
TOKEN_ENV = "REAUTOD_TOKEN"  # the samples read the bearer token (or API key) from it
REFRESH_ENV = "REAUTOD_REFRESH"
# sample values by field name (every route's params use these names), then by JSON type
_SAMPLES: dict[str, Any] = {
    "campaign": "spring", "name": "spring", "call_id": "3c0e8f7a-5d1b-4c3e-9f2a-1b2c3d4e5f60",
    "number": "+12125550100", "csv_text": "phone,first_name\n+12125550100,Ada\n",
    "confirm": True, "limit": 20, "refresh_token": "rt_0123456789abcdef_" + "A" * 43,
}
_BY_TYPE: dict[str, Any] = {"string": "text", "integer": 1, "number": 1, "boolean": True}
# fields an example needs beyond the required ones (a rule the model checks itself)
_EXTRA: dict[str, tuple[str, ...]] = {"campaign.import": ("csv_text",),
                                      "privacy.erase": ("confirm",),
                                      "calls.history": ("limit",), "audit.list": ("limit",)}


def _inline(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if depth > 32:  # a recursive model: leave the rest open rather than loop
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = defs.get(ref.removeprefix("#/$defs/"), {})
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return _inline({**target, **rest}, defs, depth + 1)
        return {k: _inline(v, defs, depth + 1) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs, depth + 1) for v in node]
    return node


def params_schema(model: type[BaseModel]) -> dict[str, Any] | None:
    """The model's JSON schema, self-contained; None when it has none (logged)."""
    try:
        schema = model.model_json_schema()
    except PydanticUserError as err:
        log.warning("admin API: no schema for %s (%s)", model.__name__, err)
        return None
    return dict(_inline(schema, schema.get("$defs", {})))


def example_params(method: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """Sample params for the method: its required fields (and `_EXTRA`'s), with values by
    field name, else the field's default or a value of its type."""
    if schema is None:
        return {}
    properties: dict[str, Any] = schema.get("properties", {})
    wanted = [*schema.get("required", []), *_EXTRA.get(method, ())]
    example: dict[str, Any] = {}
    for name in dict.fromkeys(wanted):
        field = properties.get(name, {})
        if name in _SAMPLES:
            example[name] = _SAMPLES[name]
        elif "default" in field:
            example[name] = field["default"]
        else:
            example[name] = _BY_TYPE.get(str(field.get("type")), "text")
    return example


def code_samples(verb: Literal["GET", "POST"], path: str, params: dict[str, Any], *,
                 bearer: bool = True) -> list[dict[str, str]]:
    """`x-codeSamples` for one operation: curl and Python (httpx), with `params` filled in."""
    in_path = _PATH_PARAM.findall(path)
    url_path = _PATH_PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), path)
    rest = {k: v for k, v in params.items() if k not in in_path}
    query = "&".join(f"{k}={v}" for k, v in rest.items()) if verb == "GET" else ""
    url = f"{BASE_URL}{url_path}{'?' + query if query else ''}"
    curl = ["curl -sS"]
    if bearer:
        curl.append(f'-H "Authorization: Bearer ${TOKEN_ENV}"')
    body = rest if verb == "POST" else None
    if body is not None:
        curl += ["-X POST", "-H 'Content-Type: application/json'"]
        data = json.dumps(body)
        curl.append(f'-d "{{\\"refresh_token\\": \\"${REFRESH_ENV}\\"}}"'
                    if "refresh_token" in body else f"-d {shlex.quote(data)}")
    curl.append(shlex.quote(url))
    headers = (f'headers={{"Authorization": f"Bearer {{os.environ[{TOKEN_ENV!r}]}}"}}'
               if bearer else "")
    client = f"httpx.Client(base_url={BASE_URL!r}" + (f",\n                   {headers})"
                                                       if headers else ")")
    if body is None:
        args = f", params={rest!r}" if rest else ""
        call = f"api.get({url_path!r}{args})"
    elif "refresh_token" in body:
        call = f"api.post({url_path!r}, json={{'refresh_token': os.environ[{REFRESH_ENV!r}]}})"
    else:
        call = f"api.post({url_path!r}, json={body!r})"
    python = (f"import os\n\nimport httpx\n\napi = {client}\nanswer = {call}\n"
              "answer.raise_for_status()  # 401, 403, 422, ...: answer.json()['error']\n"
              "print(answer.json())\n")
    return [{"lang": "Shell", "label": "curl", "source": " \\\n  ".join(curl)},
            {"lang": "Python", "label": "Python (httpx)", "source": python}]


def operation_extra(verb: Literal["GET", "POST"], path: str, model: type[BaseModel],
                    method: str, *, bearer: bool = True) -> dict[str, Any]:
    """The OpenAPI operation fields (`parameters`, `requestBody`, examples) for a route running
    a method whose params are `model`; path parts win over the body, as in the endpoint."""
    in_path = _PATH_PARAM.findall(path)
    schema = params_schema(model)
    example = example_params(method, schema)
    properties: dict[str, Any] = schema.get("properties", {}) if schema else {}
    required = set(schema.get("required", [])) if schema else set()
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": properties.get(name, {"type": "string"}),
         **({"example": example[name]} if name in example else {})} for name in in_path]
    rest = {name: field for name, field in properties.items() if name not in in_path}
    if verb == "GET":
        parameters += [{"name": name, "in": "query", "required": name in required,
                        "schema": field, **({"example": example[name]} if name in example else {})}
                       for name, field in rest.items()]
        return {"parameters": parameters,
                "x-codeSamples": code_samples(verb, path, example, bearer=bearer)}
    extra: dict[str, Any] = {"parameters": parameters,
                             "x-codeSamples": code_samples(verb, path, example, bearer=bearer)}
    if schema is not None and rest:
        body = {k: v for k, v in schema.items() if k not in ("properties", "required")}
        body["properties"] = rest
        needed = sorted(required & rest.keys())
        if needed:
            body["required"] = needed
        sample = {k: v for k, v in example.items() if k not in in_path}
        media: dict[str, Any] = {"schema": body}
        if sample:
            media["examples"] = {"minimal": {"summary": "the required fields", "value": sample}}
        extra["requestBody"] = {"required": bool(needed),
                                "content": {"application/json": media}}
    return extra
