"""Patch semantics: JSON, merge, (roughly) strategic-merge and apply patches, and version checks."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

import jsonpatch
import jsonpointer

from .errors import error
from .kinds import Kind

_JSON_PATCH: Final = "application/json-patch+json"
_MERGE_PATCH: Final = "application/merge-patch+json"
_STRATEGIC_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"


def patched(current: dict[str, Any], patch: Any, *, content_type: str, kind: Kind) -> Any:
    """``current`` with ``patch`` applied as its Content-Type says, or a Status error."""
    if content_type == _JSON_PATCH:
        if not isinstance(patch, list):
            raise error(400, "BadRequest", "a JSON patch must be a list of operations")
        try:
            return jsonpatch.apply_patch(current, patch)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            # kopf expects 422 when its resourceVersion "test" fails, as a real server says.
            raise error(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
    if content_type in (_MERGE_PATCH, _STRATEGIC_PATCH, APPLY_PATCH):
        if content_type == _STRATEGIC_PATCH and kind.custom:
            raise error(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources",
            )
        if not isinstance(patch, dict):
            raise error(400, "BadRequest", "a merge patch must be an object")
        check_resource_version(patch, current)
        return _merge(current, patch, strategic=content_type == _STRATEGIC_PATCH)
    raise error(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")


def check_resource_version(body: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Optimistic concurrency: a write that names a resourceVersion must name the current one."""
    meta = body.get("metadata")
    wanted = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    if wanted and wanted != current["metadata"].get("resourceVersion"):
        raise error(
            409,
            "Conflict",
            "the object has been modified; please apply your changes "
            "to the latest version and try again",
        )


def _merge(target: Any, patch: Any, *, strategic: bool) -> Any:
    """RFC 7386 merge patch; with ``strategic``, a rough strategic merge (see below)."""
    if isinstance(patch, dict):
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if strategic and key.startswith("$"):  # directives such as $setElementOrder
                continue
            if value is None:
                result.pop(key, None)
            else:
                result[key] = _merge(result.get(key), value, strategic=strategic)
        return result
    if strategic and _named_items(patch) and _named_items(target):
        # Lists of named items (containers, env, volumes...) merge by name; others are replaced.
        patches = {item["name"]: item for item in patch}
        merged = []
        for item in target:
            change = patches.pop(item["name"], None)
            if change is None:
                merged.append(copy.deepcopy(item))
            elif change.get("$patch") != "delete":
                merged.append(_merge(item, change, strategic=True))
        merged.extend(
            _merge({}, item, strategic=True)
            for item in patches.values()
            if item.get("$patch") != "delete"
        )
        return merged
    return copy.deepcopy(patch)


def _named_items(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)
