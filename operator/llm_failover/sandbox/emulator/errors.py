"""The Kubernetes Status errors the emulator answers with (kmock renders them)."""

from __future__ import annotations

from typing import Any

import kmock

from .kinds import Kind


def error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    failure: kmock.KubernetesError = kmock.KubernetesError(
        status=code, reason=reason, message=message, details=details or {"causes": []}
    )
    return failure


def unknown_resource() -> kmock.KubernetesError:
    return error(404, "NotFound", "the server could not find the requested resource")


def not_found(kind: Kind, name: str) -> kmock.KubernetesError:
    return error(
        404,
        "NotFound",
        f'{kind.qualified} "{name}" not found',
        name=name,
        group=kind.group,
        kind=kind.plural,
    )
