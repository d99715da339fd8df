"""What each admin API operation takes, for the OpenAPI document: the control method's params
model as path and query parameters (GET) or a JSON body (POST), so clients and the schemathesis
fuzz see the real fields, types and limits.

The document only describes: the endpoint still reads the raw query or body and validates it
with the same model after authentication (so 401 and 403 still come before 422). The models'
`$defs` are inlined, since a `#/$defs/...` reference inside the document would point at its root.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.errors import PydanticUserError

log = logging.getLogger(__name__)

_PATH_PARAM = re.compile(r"{(\w+)}")


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


def operation_extra(verb: Literal["GET", "POST"], path: str,
                    model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI operation fields (`parameters`, `requestBody`) for a route running a method
    whose params are `model`; path parts win over the body, as in the endpoint."""
    in_path = _PATH_PARAM.findall(path)
    schema = params_schema(model)
    properties: dict[str, Any] = schema.get("properties", {}) if schema else {}
    required = set(schema.get("required", [])) if schema else set()
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": properties.get(name, {"type": "string"})} for name in in_path]
    rest = {name: field for name, field in properties.items() if name not in in_path}
    if verb == "GET":
        parameters += [{"name": name, "in": "query", "required": name in required,
                        "schema": field} for name, field in rest.items()]
        return {"parameters": parameters}
    extra: dict[str, Any] = {"parameters": parameters}
    if schema is not None and rest:
        body = {k: v for k, v in schema.items() if k not in ("properties", "required")}
        body["properties"] = rest
        needed = sorted(required & rest.keys())
        if needed:
            body["required"] = needed
        extra["requestBody"] = {"required": bool(needed),
                                "content": {"application/json": {"schema": body}}}
    return extra
