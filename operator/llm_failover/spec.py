"""The LLMRoute spec (contract §2) parsed into typed values, with every rule checked and named.

The CRD's schema and CEL rules catch most mistakes at `kubectl apply`; this parser checks them all
again (an old API server, `llm-failover probe` on a local file) plus what no schema can know, such
as whether a preset exists. Each error names the field, e.g. `spec.providers[1].preset`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import httpx

from llm_failover.catalog import AuthScheme, Catalog, ErrorDictionary, Preset, ProbeMethod
from llm_failover.chatprobe import (
    DEFAULT_PROBE,
    MAX_PROBE_TOKENS,
    REASONING_EFFORTS,
    ChatProbe,
    Thinking,
    TokenField,
)

MAX_PROVIDERS = 16
MAX_RESTART_TARGETS = 32
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# The CRD's baseURL pattern, character for character (tests/test_spec_properties.py holds them
# together): http(s), a host or a bracketed IPv6 address, an optional numeric port, a path;
# no credentials, query, fragment, whitespace or control characters.
URL_PATTERN = (
    r"^https?://(\[[0-9A-Fa-f:.]+\]|[^/?#@\[\]:\s\x00-\x1f\x7f]+)(:[0-9]{1,5})?"
    r"(/[^?#\s\x00-\x1f\x7f]*)?$"
)
_URL = re.compile(URL_PATTERN)
_MODEL = re.compile(r"^\S+$")
# RFC 3339 as Kubernetes writes it: what `format: date-time` surely accepts, and no more.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
MAX_ROUTE_NAME = 63
"""The route's name is a label value (`llmfailover.dev/route`) on what it writes: 63 at most."""
E = TypeVar("E", bound=StrEnum)


class Failback(StrEnum):
    AUTO = "Auto"
    MANUAL = "Manual"


class Trust(StrEnum):
    PROBE = "Probe"  # a firing signal probes at once; a failing probe then ejects at once
    SIGNAL = "Signal"  # a firing signal also ejects a provider whose probes pass (TrafficErrors)


class WorkloadKind(StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"


class SpecError(ValueError):
    """A spec the operator will not act on; `field` is the path users see in the message."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str

    def __str__(self) -> str:
        return f"{self.name}/{self.key}"


PLACEHOLDERS = ("provider", "model", "host", "namespace", "route")
"""What `${...}` in a signal's query stands for: the provider's name, model and baseURL host,
the route's namespace and name."""
_PLACEHOLDER = re.compile(r"\$\{([^}]{0,40})\}")


@dataclass(frozen=True)
class PrometheusSignal:
    query: str
    threshold: float


@dataclass(frozen=True)
class Signal:
    """What the apps' own traffic says of a provider: a Prometheus query above a threshold, or
    a firing Alertmanager alert naming the route."""

    prometheus: PrometheusSignal | None = None
    trust: Trust = Trust.PROBE


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    base_url: str
    model: str
    probe_method: ProbeMethod
    auth: AuthScheme
    errors: ErrorDictionary
    chat: ChatProbe = DEFAULT_PROBE  # how a Chat probe asks its model: its preset's, or the default
    preset: str | None = None
    api_key: SecretRef | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    signal: Signal | None = None
    """Its own traffic signal, evaluated whether it is active or not."""

    @property
    def host(self) -> str:
        """The host of its base URL (what `${host}` stands for in a signal's query)."""
        return httpx.URL(self.base_url).host  # parsed when the spec was: it parses

    def in_window(self, now: datetime) -> bool:
        if self.not_before is not None and now < self.not_before:
            return False
        return self.not_after is None or now < self.not_after


@dataclass(frozen=True)
class HealthCheck:
    interval_seconds: int = 10
    timeout_seconds: int = 5
    failure_threshold: int = 3
    success_threshold: int = 2
    backup_interval_seconds: int | None = None
    """Seconds between probes of providers behind the next in line (None: intervalSeconds)."""


@dataclass(frozen=True)
class RestartTarget:
    kind: WorkloadKind
    name: str


@dataclass(frozen=True)
class Target:
    config_map_name: str
    secret_name: str | None = None
    restart: tuple[RestartTarget, ...] = ()


@dataclass(frozen=True)
class RouteSpec:
    providers: tuple[ProviderSpec, ...]
    health_check: HealthCheck
    target: Target
    failback: Failback = Failback.AUTO
    paused: bool = False
    signal: Signal | None = None
    """The route's traffic signal: evaluated for the active provider (where the traffic goes)."""

    def provider(self, name: str) -> ProviderSpec | None:
        return next((p for p in self.providers if p.name == name), None)


def parse_route_spec(raw: Any, *, route_name: str, catalog: Catalog) -> RouteSpec:
    """The typed spec, or a `SpecError` naming the field; never any other exception."""
    _string(route_name, "metadata.name", pattern=_DNS_SUBDOMAIN, max_length=MAX_ROUTE_NAME)
    spec = _mapping(raw, "spec")
    _only(spec, "spec", {"providers", "healthCheck", "failback", "paused", "target", "signal"})
    providers_raw = spec.get("providers")
    if not isinstance(providers_raw, list) or not providers_raw:
        raise SpecError("spec.providers", "at least one provider is required")
    if len(providers_raw) > MAX_PROVIDERS:
        raise SpecError(
            "spec.providers", f"at most {MAX_PROVIDERS} providers, got {len(providers_raw)}"
        )
    providers = tuple(
        _provider(item, f"spec.providers[{i}]", catalog) for i, item in enumerate(providers_raw)
    )
    seen: set[str] = set()
    for i, provider in enumerate(providers):
        if provider.name in seen:
            raise SpecError(
                f"spec.providers[{i}].name", f"duplicate provider name {provider.name!r}"
            )
        seen.add(provider.name)
    return RouteSpec(
        providers=providers,
        health_check=_health_check(spec.get("healthCheck"), "spec.healthCheck"),
        target=_target(spec.get("target"), "spec.target", route_name),
        failback=_enum(Failback, spec.get("failback", Failback.AUTO.value), "spec.failback"),
        paused=_bool(spec.get("paused", False), "spec.paused"),
        signal=_signal(spec["signal"], "spec.signal") if "signal" in spec else None,
    )


def _provider(raw: Any, path: str, catalog: Catalog) -> ProviderSpec:
    item = _mapping(raw, path)
    _only(
        item,
        path,
        {
            "name",
            "preset",
            "baseURL",
            "model",
            "apiKeySecretRef",
            "notBefore",
            "notAfter",
            "probe",
            "signal",
        },
    )
    name = _string(item.get("name"), f"{path}.name", pattern=_DNS_LABEL, max_length=63)
    preset: Preset | None = None
    if "preset" in item:
        preset_id = _string(item["preset"], f"{path}.preset", max_length=63)
        preset = catalog.get(preset_id)
        if preset is None:
            known = ", ".join(sorted(catalog.presets))
            raise SpecError(f"{path}.preset", f"unknown preset {preset_id!r} (known: {known})")
    if "baseURL" in item:
        base_url = _base_url(item["baseURL"], f"{path}.baseURL")
    elif preset is not None and preset.base_url is not None:
        base_url = preset.base_url
    elif preset is not None:
        raise SpecError(
            f"{path}.baseURL",
            f'required: preset "{preset.id}" has no base URL ({preset.base_url_note})',
        )
    else:
        raise SpecError(f"{path}.baseURL", "required unless a preset gives one")
    model = _string(item.get("model"), f"{path}.model", pattern=_MODEL, max_length=256)
    probe_method = preset.probe_method if preset is not None else ProbeMethod.MODELS
    chat = preset.chat if preset is not None else DEFAULT_PROBE
    if "probe" in item:
        probe = _mapping(item["probe"], f"{path}.probe")
        _only(probe, f"{path}.probe", {"method", "chat"})
        probe_method = _enum(ProbeMethod, probe.get("method"), f"{path}.probe.method")
        if "chat" in probe:
            chat = _chat(probe["chat"], f"{path}.probe.chat", chat)
    not_before = _time(item.get("notBefore"), f"{path}.notBefore")
    not_after = _time(item.get("notAfter"), f"{path}.notAfter")
    if not_before is not None and not_after is not None and not_before >= not_after:
        raise SpecError(f"{path}.notBefore", "must be earlier than notAfter")
    return ProviderSpec(
        name=name,
        base_url=base_url.rstrip("/"),
        model=model,
        probe_method=probe_method,
        auth=preset.auth if preset is not None else AuthScheme(),
        errors=catalog.dictionary(preset),
        chat=chat,
        preset=preset.id if preset is not None else None,
        api_key=_secret_ref(item["apiKeySecretRef"], f"{path}.apiKeySecretRef")
        if "apiKeySecretRef" in item
        else None,
        not_before=not_before,
        not_after=not_after,
        signal=_signal(item["signal"], f"{path}.signal") if "signal" in item else None,
    )


def _chat(raw: Any, path: str, base: ChatProbe) -> ChatProbe:
    """A provider's own way of asking its model, over its preset's (each field optional)."""
    item = _mapping(raw, path)
    _only(item, path, {"tokenField", "tokens", "thinking", "reasoningEffort"})
    chat = base
    if "tokenField" in item:
        chat = replace(
            chat, token_field=_enum(TokenField, item["tokenField"], f"{path}.tokenField")
        )
    if "tokens" in item:
        chat = replace(chat, tokens=_int(item["tokens"], f"{path}.tokens", 1, MAX_PROBE_TOKENS))
    if "thinking" in item:
        chat = replace(chat, thinking=_enum(Thinking, item["thinking"], f"{path}.thinking"))
    if "reasoningEffort" in item:
        effort = item["reasoningEffort"]
        if effort not in REASONING_EFFORTS:
            known = " | ".join(sorted(e for e in REASONING_EFFORTS if e))
            raise SpecError(f"{path}.reasoningEffort", f"must be one of {known}, got {effort!r}")
        chat = replace(chat, reasoning_effort=effort)
    return chat


def _signal(raw: Any, path: str) -> Signal:
    item = _mapping(raw, path)
    _only(item, path, {"prometheus", "trust"})
    prometheus = None
    if "prometheus" in item:
        where = f"{path}.prometheus"
        query_item = _mapping(item["prometheus"], where)
        _only(query_item, where, {"query", "threshold"})
        query = _string(query_item.get("query"), f"{where}.query", max_length=4096)
        for match in _PLACEHOLDER.finditer(query):
            if match.group(1) not in PLACEHOLDERS:
                known = ", ".join(f"${{{p}}}" for p in PLACEHOLDERS)
                raise SpecError(
                    f"{where}.query", f"unknown placeholder {match.group(0)!r} (known: {known})"
                )
        threshold = query_item.get("threshold")
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or threshold != threshold  # NaN
            or abs(threshold) == float("inf")
        ):
            raise SpecError(f"{where}.threshold", f"must be a number, got {_kind(threshold)}")
        prometheus = PrometheusSignal(query=query, threshold=float(threshold))
    trust = _enum(Trust, item.get("trust", Trust.PROBE.value), f"{path}.trust")
    return Signal(prometheus=prometheus, trust=trust)


def _base_url(raw: Any, path: str) -> str:
    """The CRD's pattern, then the rules the HTTP client applies when the probe is sent: a URL
    the schema admits but httpx refuses must be an InvalidSpec, not a probe that raises."""
    value = _string(raw, path, pattern=_URL, max_length=2048)
    try:
        url = httpx.URL(value)
        host = url.host
        port = url.port
        url.raw_host  # noqa: B018 (IDNA-encodes the host: an invalid label raises)
    except Exception as exc:  # httpx raises InvalidURL, idna its own errors, and ValueError
        raise SpecError(path, f"{value!r} is not a usable URL: {exc}") from None
    if not host:
        raise SpecError(path, f"{value!r} has no host")
    if port is not None and not 0 < port < 65536:
        raise SpecError(path, f"{value!r}: port {port} is not between 1 and 65535")
    return value


def _health_check(raw: Any, path: str) -> HealthCheck:
    if raw is None:
        return HealthCheck()
    item = _mapping(raw, path)
    _only(
        item,
        path,
        {
            "intervalSeconds",
            "timeoutSeconds",
            "failureThreshold",
            "successThreshold",
            "backupIntervalSeconds",
        },
    )
    default = HealthCheck()
    interval = _int(
        item.get("intervalSeconds", default.interval_seconds), f"{path}.intervalSeconds", 1, 3600
    )
    backup = None
    if "backupIntervalSeconds" in item:
        backup = _int(item["backupIntervalSeconds"], f"{path}.backupIntervalSeconds", 1, 3600)
        if backup < interval:
            raise SpecError(
                f"{path}.backupIntervalSeconds",
                f"must be at least intervalSeconds ({interval}), got {backup}",
            )
    return HealthCheck(
        backup_interval_seconds=backup,
        interval_seconds=interval,
        timeout_seconds=_int(
            item.get("timeoutSeconds", default.timeout_seconds), f"{path}.timeoutSeconds", 1, 60
        ),
        failure_threshold=_int(
            item.get("failureThreshold", default.failure_threshold),
            f"{path}.failureThreshold",
            1,
            10,
        ),
        success_threshold=_int(
            item.get("successThreshold", default.success_threshold),
            f"{path}.successThreshold",
            1,
            10,
        ),
    )


def _target(raw: Any, path: str, route_name: str) -> Target:
    item = _mapping(raw, path) if raw is not None else {}
    _only(item, path, {"configMapName", "secretName", "restart"})
    config_map = item.get("configMapName", f"{route_name}-llm")
    restart_raw = item.get("restart", [])
    if not isinstance(restart_raw, list):
        raise SpecError(f"{path}.restart", "must be a list")
    if len(restart_raw) > MAX_RESTART_TARGETS:
        raise SpecError(f"{path}.restart", f"at most {MAX_RESTART_TARGETS} workloads")
    restart: list[RestartTarget] = []
    for i, entry_raw in enumerate(restart_raw):
        entry_path = f"{path}.restart[{i}]"
        entry = _mapping(entry_raw, entry_path)
        _only(entry, entry_path, {"kind", "name"})
        workload = RestartTarget(
            kind=_enum(WorkloadKind, entry.get("kind"), f"{entry_path}.kind"),
            name=_string(
                entry.get("name"), f"{entry_path}.name", pattern=_DNS_SUBDOMAIN, max_length=253
            ),
        )
        if workload in restart:
            raise SpecError(entry_path, f"{workload.kind}/{workload.name} is listed twice")
        restart.append(workload)
    secret_name = item.get("secretName")
    return Target(
        config_map_name=_string(
            config_map, f"{path}.configMapName", pattern=_DNS_SUBDOMAIN, max_length=253
        ),
        secret_name=None
        if secret_name is None
        else _string(secret_name, f"{path}.secretName", pattern=_DNS_SUBDOMAIN, max_length=253),
        restart=tuple(restart),
    )


def _secret_ref(raw: Any, path: str) -> SecretRef:
    item = _mapping(raw, path)
    _only(item, path, {"name", "key"})
    return SecretRef(
        name=_string(item.get("name"), f"{path}.name", pattern=_DNS_SUBDOMAIN, max_length=253),
        key=_string(item.get("key"), f"{path}.key", pattern=_SECRET_KEY, max_length=253),
    )


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError(path, f"must be an object, got {_kind(raw)}")
    return raw


def _only(item: Mapping[Any, Any], path: str, allowed: set[str]) -> None:
    unknown = sorted(str(key) for key in item if key not in allowed)  # keys may not be str
    if unknown:
        raise SpecError(
            f"{path}.{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})"
        )


def _string(raw: Any, path: str, *, pattern: re.Pattern[str] | None = None, max_length: int) -> str:
    if raw is None:
        raise SpecError(path, "required")
    if not isinstance(raw, str) or not raw:
        raise SpecError(path, f"must be a non-empty string, got {_kind(raw)}")
    if len(raw) > max_length:
        raise SpecError(path, f"at most {max_length} characters")
    # fullmatch: Python's `$` also matches before a final newline, the API server's does not.
    if pattern is not None and not pattern.fullmatch(raw):
        raise SpecError(
            path, f"{raw!r} is not valid ({_PATTERN_HINTS.get(pattern, pattern.pattern)})"
        )
    return raw


_PATTERN_HINTS = {
    _DNS_LABEL: "lower-case letters, digits and '-', starting and ending with a letter or digit",
    _DNS_SUBDOMAIN: "a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'",
    _SECRET_KEY: "letters, digits, '-', '_' and '.'",
    _URL: "an http:// or https:// URL with a host, an optional port and path, and no "
    "credentials, query, fragment or spaces",
    _MODEL: "no spaces",
}


def _int(raw: Any, path: str, low: int, high: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise SpecError(path, f"must be an integer, got {_kind(raw)}")
    if not low <= raw <= high:
        raise SpecError(path, f"must be between {low} and {high}, got {raw}")
    return raw


def _bool(raw: Any, path: str) -> bool:
    if not isinstance(raw, bool):
        raise SpecError(path, f"must be true or false, got {_kind(raw)}")
    return raw


def _enum(cls: type[E], raw: Any, path: str) -> E:
    try:
        return cls(raw)
    except ValueError:
        allowed = " | ".join(m.value for m in cls)
        raise SpecError(path, f"must be one of {allowed}, got {raw!r}") from None


def _time(raw: Any, path: str) -> datetime | None:
    if raw is None:
        return None
    example = "an RFC 3339 time such as 2024-07-09T00:00:00Z"
    if isinstance(raw, datetime):  # YAML loaders turn unquoted timestamps into datetimes
        value = raw
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise SpecError(path, f"{raw!r} is not {example}") from None
    else:
        raise SpecError(path, f"must be an RFC 3339 time, got {_kind(raw)}")
    if value.tzinfo is None:
        raise SpecError(path, f"{raw!s} has no time zone (end it with Z or +08:00)")
    if isinstance(raw, str) and not _RFC3339.fullmatch(raw):
        raise SpecError(path, f"{raw!r} is not {example}")
    return value


def _kind(raw: Any) -> str:
    return "nothing" if raw is None else type(raw).__name__
