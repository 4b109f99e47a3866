"""The OpenAPI v3 documents kubectl reads: for server-side field validation, and for explain.

A real API server lists one document per group version at ``/openapi/v3`` and serves each at
``/openapi/v3/apis/<group>/<version>`` (``/openapi/v3/api/v1`` for the core group). kubectl
reads them for two things:

- apply/create look for the fieldValidation parameter on each resource's PATCH operation; found,
  kubectl sends ?fieldValidation=Strict instead of validating against schemas of its own (which
  it would fetch as v2 protobuf, not served here). Without it, they need --validate=false.
- explain finds the kind of a resource from the ``x-kubernetes-group-version-kind`` of its
  operations, then the schema that carries the same extension in ``components.schemas``.

Schemas are published for the kinds CRDs define, as the API server builds them from a CRD
version's openAPIV3Schema. Built-in kinds have none here, so ``kubectl explain configmap`` fails.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, Final

from .kinds import Kind

_CONVENTIONS: Final = (
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
)
# The API server replaces these three properties of a CRD's schema with its own, whatever the CRD
# says; so explain shows the same text here. (It makes metadata a $ref to ObjectMeta, whose
# schema is not served here: its description is kept, its fields are not.)
_OBJECT_PROPERTIES: Final = {
    "apiVersion": {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an "
        "object. Servers should convert recognized schemas to the latest internal value, and "
        f"may reject unrecognized values. More info: {_CONVENTIONS}#resources",
    },
    "kind": {
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object "
        "represents. Servers may infer this from the endpoint the client submits requests to. "
        f"Cannot be updated. In CamelCase. More info: {_CONVENTIONS}#types-kinds",
    },
    "metadata": {
        "type": "object",
        "description": f"Standard object's metadata. More info: {_CONVENTIONS}#metadata",
    },
}


def discovery(kinds: Iterable[Kind]) -> dict[str, Any]:
    """The document at /openapi/v3: where the document of each served group version is."""
    paths = sorted({_group_version_path(kind) for kind in kinds})
    return {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}"} for gv in paths}}


def document(kinds: Iterable[Kind], group_version_path: str) -> dict[str, Any] | None:
    """The document of one group version (e.g. ``apis/apps/v1``), or None if none is served."""
    served = [kind for kind in kinds if _group_version_path(kind) == group_version_path]
    if not served:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for kind in served:
        gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
        operation = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [
                {
                    "name": "fieldValidation",
                    "in": "query",
                    "schema": {"type": "string", "uniqueItems": True},
                }
            ],
            "responses": {"200": {"description": "OK"}},
        }
        scope = "/namespaces/{namespace}" if kind.namespaced else ""
        paths[f"/{group_version_path}{scope}/{kind.plural}"] = {"post": operation}
        paths[f"/{group_version_path}{scope}/{kind.plural}/{{name}}"] = {
            "patch": operation,
            "put": operation,
        }
        if kind.schema is not None:
            schema = copy.deepcopy(dict(kind.schema))
            schema.setdefault("properties", {}).update(copy.deepcopy(_OBJECT_PROPERTIES))
            schema["x-kubernetes-group-version-kind"] = [gvk]
            schemas[_schema_name(kind)] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.26.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _group_version_path(kind: Kind) -> str:
    return f"apis/{kind.group}/{kind.version}" if kind.group else f"api/{kind.version}"


def _schema_name(kind: Kind) -> str:
    """As the API server names it: the group reversed, e.g. dev.llmfailover.v1alpha1.LLMRoute."""
    return ".".join([*reversed(kind.group.split(".")), kind.version, kind.kind])
