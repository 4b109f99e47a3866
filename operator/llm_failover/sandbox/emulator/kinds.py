"""Which resources the emulator serves: built-in kinds, kinds from CRDs, and their registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import kmock
import yaml

_VERBS: Final = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Kind:
    """What the emulator knows of one served resource (one group/version/plural)."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    list_kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    schema: Mapping[str, Any] | None = None
    custom: bool = False  # served from a CRD: the API server refuses strategic-merge patches

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _builtin(
    api_version: str, plural: str, kind: str, short: str = "", *, scope: str = "ns", sub: str = ""
) -> Kind:
    group, _, version = api_version.rpartition("/")
    return Kind(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        singular=kind.lower(),
        list_kind=f"{kind}List",
        namespaced=scope == "ns",
        short_names=tuple(short.split()),
        categories=("all",) if group == "apps" else (),
        subresources=tuple(sub.split()),
    )


NAMESPACES: Final = _builtin("v1", "namespaces", "Namespace", "ns", scope="cluster", sub="status")
SECRETS: Final = _builtin("v1", "secrets", "Secret")
CRDS: Final = _builtin(
    "apiextensions.k8s.io/v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    "crd crds",
    scope="cluster",
    sub="status",
)
BUILTIN_KINDS: Final = (
    NAMESPACES,
    SECRETS,
    CRDS,
    _builtin("v1", "configmaps", "ConfigMap", "cm"),
    _builtin("v1", "events", "Event", "ev"),
    _builtin("events.k8s.io/v1", "events", "Event", "ev"),
    _builtin("apps/v1", "deployments", "Deployment", "deploy", sub="status"),
    _builtin("apps/v1", "statefulsets", "StatefulSet", "sts", sub="status"),
    _builtin("apps/v1", "daemonsets", "DaemonSet", "ds", sub="status"),
    _builtin("coordination.k8s.io/v1", "leases", "Lease"),
)


def read_crds(path: Path) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in a YAML file (other documents are skipped)."""
    with path.open(encoding="utf-8") as stream:
        docs = list(yaml.safe_load_all(stream))
    crds = [
        doc
        for doc in docs
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    ]
    if not crds:
        raise ValueError(f"{path} holds no CustomResourceDefinition")
    return crds


def kinds_of_crd(crd: Mapping[str, Any]) -> list[Kind]:
    """One kind per served version of a CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    kinds = []
    for version in spec.get("versions") or ():
        if not version.get("served", True):
            continue
        kinds.append(
            Kind(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                singular=names.get("singular") or names["kind"].lower(),
                list_kind=names.get("listKind") or f"{names['kind']}List",
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(
                    key for key in (version.get("subresources") or {}) if key == "status"
                ),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
            )
        )
    return kinds


class Registry:
    """The served kinds, kept in step with kmock's resource table (which its discovery serves)."""

    def __init__(self, resources: kmock.ResourcesArray) -> None:
        self._resources = resources
        self._kinds: dict[tuple[str, str, str], Kind] = {}
        for kind in BUILTIN_KINDS:
            self.add(kind)

    def __iter__(self) -> Iterator[Kind]:
        return iter(list(self._kinds.values()))

    def get(self, resource: kmock.resource | None) -> Kind | None:
        if resource is None:
            return None
        return self._kinds.get(
            (resource.group or "", resource.version or "", resource.plural or "")
        )

    def of_object(self, obj: Mapping[str, Any]) -> Kind:
        for kind in self._kinds.values():
            if kind.api_version == obj.get("apiVersion") and kind.kind == obj.get("kind"):
                return kind
        raise ValueError(f"No resource is registered for {obj.get('apiVersion')}/{obj.get('kind')}")

    def add(self, kind: Kind) -> None:
        self._kinds[(kind.group, kind.version, kind.plural)] = kind
        self._resources[kind.resource] = kmock.ResourceInfo(
            kind=kind.kind,
            namespaced=kind.namespaced,
            singular=kind.singular,
            verbs=set(_VERBS),
            shortnames=set(kind.short_names),
            categories=set(kind.categories),
            subresources=set(kind.subresources),
        )

    def add_crd(self, crd: Mapping[str, Any]) -> None:
        for kind in kinds_of_crd(crd):
            self.add(kind)

    def remove_crd(self, crd: Mapping[str, Any]) -> None:
        for kind in kinds_of_crd(crd):
            self._kinds.pop((kind.group, kind.version, kind.plural), None)
            if kind.resource in self._resources:
                del self._resources[kind.resource]
