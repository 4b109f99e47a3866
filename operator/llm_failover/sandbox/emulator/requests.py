"""Reading API requests: namespace paths kmock misparses, bodies, headers and query parameters."""

from __future__ import annotations

import copy
import re
from typing import Any, Final

import aiohttp.web
import kmock
import yaml

from . import protobuf
from .errors import error
from .kinds import NAMESPACES

# kmock parses /api/v1/namespaces/NAME as "namespace NAME, no resource", so these paths are
# recognised here and turned into requests for the cluster-scoped resource v1/namespaces.
_NAMESPACE_PATH: Final = re.compile(
    r"/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<sub>status))?)?/?"
)


async def namespace_request(raw_request: aiohttp.web.BaseRequest) -> kmock.Request | None:
    """The request for v1/namespaces that a namespace path means, or None for any other path."""
    match = _NAMESPACE_PATH.fullmatch(raw_request.path)
    if match is None:
        return None
    name = match["name"]
    body = await raw_request.read()
    text = body.decode("utf-8", errors="replace")
    method = raw_request.method.upper()
    params = dict(raw_request.query)
    action: kmock.action | None = None
    if method == "GET" and is_true(params.get("watch")):
        action = kmock.action.WATCH
    elif name is None:
        action = {"GET": kmock.action.LIST, "POST": kmock.action.CREATE}.get(method)
    else:
        action = {
            "GET": kmock.action.FETCH,
            "PATCH": kmock.action.UPDATE,
            "DELETE": kmock.action.DELETE,
        }.get(method)
    return kmock.Request(
        method=kmock.method(method),
        url=raw_request.url,
        params=params,
        headers=dict(raw_request.headers),
        cookies=dict(raw_request.cookies),
        body=body,
        text=text,
        data=_parse_text(text),
        action=action,
        resource=NAMESPACES.resource,
        namespace=None,
        name=name,
        subresource=match["sub"],
        raw_request=raw_request,
    )


def _parse_text(text: str) -> Any:
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)  # JSON is YAML; server-side apply sends YAML
    except yaml.YAMLError:
        return None


def body(request: kmock.Request) -> Any:
    """The request's body, parsed (a copy: callers may change it)."""
    if "protobuf" in header(request, "Content-Type"):  # kubectl create namespace/secret/...
        return protobuf.decode(bytes(request.body or b""))
    if isinstance(request.data, dict | list):
        return copy.deepcopy(request.data)
    return _parse_text(request.text)


def body_object(request: kmock.Request) -> dict[str, Any]:
    parsed = body(request)
    if not isinstance(parsed, dict):
        raise error(400, "BadRequest", "the request body must be a JSON object")
    return parsed


def header(request: kmock.Request, name: str) -> str:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def is_true(value: str | None) -> bool:
    return (value or "").lower() in {"true", "1"}


def int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
