"""The LLMRoute spec (docs/reference.md#spec) parsed into typed values, every rule checked, named.

The CRD's schema and CEL rules catch most mistakes at `kubectl apply`; this parser checks them all
again (an old API server, `llm-failover probe` on a local file) plus what no schema can know, such
as whether a preset exists. Each error names the field, e.g. `spec.providers[1].preset`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
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
T = TypeVar("T")


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
    """A spec the operator will not act on; `field` is the path users see in the message.

    `parse_route_spec` collects every error it finds: `errors` lists them all (this one first),
    and the message joins them ("; "), at most `MAX_MESSAGE` characters. `field` and `problem`
    are the first one's."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.errors: tuple[SpecError, ...] = (self,)

    @classmethod
    def of(cls, errors: Sequence[SpecError]) -> SpecError:
        """One error standing for several (at least one; `_Found.take` has flattened them)."""
        first = cls(errors[0].field, errors[0].problem)
        first.errors = (first, *errors[1:])
        if len(errors) > 1:
            first.args = (_joined(first.errors),)
        return first


MAX_MESSAGE = 1024
"""Characters of a message listing several errors, at most (a status condition's message, an
Event's): the first errors in full, then how many more there are."""


def _joined(errors: Sequence[SpecError]) -> str:
    lines = [f"{error.field}: {error.problem}" for error in errors]
    shown: list[str] = []
    for index, line in enumerate(lines):
        rest = len(lines) - index
        more = f"; and {rest} more error{'s' if rest > 1 else ''}"
        room = MAX_MESSAGE - (len(more) if rest > 1 else 0)
        if shown and len("; ".join([*shown, line])) > room:
            return "; ".join(shown) + more
        shown.append(line)
    text = "; ".join(shown)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


class _Found:
    """The errors found so far while parsing one spec: `take` runs one check and keeps its
    errors instead of stopping at them."""

    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def add(self, field: str, problem: str) -> None:
        self.errors.append(SpecError(field, problem))

    def take(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        try:
            return check(*args, **kwargs)
        except SpecError as error:
            self.errors.extend(error.errors)
            return None

    def raise_any(self) -> None:
        if self.errors:
            raise SpecError.of(self.errors)


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
    """The typed spec, or a `SpecError` listing every error found, each naming its field; never
    any other exception."""
    found = _Found()
    found.take(
        _string, route_name, "metadata.name", pattern=_DNS_SUBDOMAIN, max_length=MAX_ROUTE_NAME
    )
    spec = found.take(_mapping, raw, "spec")
    if spec is None:
        raise SpecError.of(found.errors)
    found.take(
        _only, spec, "spec", {"providers", "healthCheck", "failback", "paused", "target", "signal"}
    )
    providers_raw = spec.get("providers")
    providers: list[tuple[int, ProviderSpec]] = []
    if not isinstance(providers_raw, list) or not providers_raw:
        found.add("spec.providers", "at least one provider is required")
    elif len(providers_raw) > MAX_PROVIDERS:
        found.add("spec.providers", f"at most {MAX_PROVIDERS} providers, got {len(providers_raw)}")
    else:
        for i, item in enumerate(providers_raw):
            provider = found.take(_provider, item, f"spec.providers[{i}]", catalog)
            if provider is not None:
                providers.append((i, provider))
    seen: set[str] = set()
    for i, provider in providers:
        if provider.name in seen:
            found.add(f"spec.providers[{i}].name", f"duplicate provider name {provider.name!r}")
        seen.add(provider.name)
    health_check = found.take(_health_check, spec.get("healthCheck"), "spec.healthCheck")
    target = found.take(_target, spec.get("target"), "spec.target", route_name)
    failback = found.take(
        _enum, Failback, spec.get("failback", Failback.AUTO.value), "spec.failback"
    )
    paused = found.take(_bool, spec.get("paused", False), "spec.paused")
    signal = found.take(_signal, spec["signal"], "spec.signal") if "signal" in spec else None
    found.raise_any()
    assert health_check is not None
    assert target is not None
    assert failback is not None
    assert paused is not None
    return RouteSpec(
        providers=tuple(provider for _, provider in providers),
        health_check=health_check,
        target=target,
        failback=failback,
        paused=paused,
        signal=signal,
    )


_PROVIDER_FIELDS = {
    "name",
    "preset",
    "baseURL",
    "model",
    "apiKeySecretRef",
    "notBefore",
    "notAfter",
    "probe",
    "signal",
}


def _provider(raw: Any, path: str, catalog: Catalog) -> ProviderSpec:
    item = _mapping(raw, path)
    found = _Found()
    found.take(_only, item, path, _PROVIDER_FIELDS)
    name = found.take(_string, item.get("name"), f"{path}.name", pattern=_DNS_LABEL, max_length=63)
    preset: Preset | None = None
    preset_named = "preset" in item
    if preset_named:
        preset_id = found.take(_string, item["preset"], f"{path}.preset", max_length=63)
        if preset_id is not None:
            preset = catalog.get(preset_id)
            if preset is None:
                known = ", ".join(sorted(catalog.presets))
                found.add(f"{path}.preset", f"unknown preset {preset_id!r} (known: {known})")
    base_url: str | None = None
    if "baseURL" in item:
        base_url = found.take(_base_url, item["baseURL"], f"{path}.baseURL")
    elif preset is not None and preset.base_url is not None:
        base_url = preset.base_url
    elif preset is not None:
        found.add(
            f"{path}.baseURL",
            f'required: preset "{preset.id}" has no base URL ({preset.base_url_note})',
        )
    elif not preset_named:  # a bad preset is its own error: it might have given one
        found.add(f"{path}.baseURL", "required unless a preset gives one")
    model = found.take(_string, item.get("model"), f"{path}.model", pattern=_MODEL, max_length=256)
    probe_method = preset.probe_method if preset is not None else ProbeMethod.MODELS
    chat = preset.chat if preset is not None else DEFAULT_PROBE
    if "probe" in item:
        probe = found.take(_mapping, item["probe"], f"{path}.probe")
        if probe is not None:
            found.take(_only, probe, f"{path}.probe", {"method", "chat"})
            method = found.take(_enum, ProbeMethod, probe.get("method"), f"{path}.probe.method")
            probe_method = method if method is not None else probe_method
            if "chat" in probe:
                chat = found.take(_chat, probe["chat"], f"{path}.probe.chat", chat) or chat
    not_before = found.take(_time, item.get("notBefore"), f"{path}.notBefore")
    not_after = found.take(_time, item.get("notAfter"), f"{path}.notAfter")
    if not_before is not None and not_after is not None and not_before >= not_after:
        found.add(f"{path}.notBefore", "must be earlier than notAfter")
    api_key = (
        found.take(_secret_ref, item["apiKeySecretRef"], f"{path}.apiKeySecretRef")
        if "apiKeySecretRef" in item
        else None
    )
    signal = found.take(_signal, item["signal"], f"{path}.signal") if "signal" in item else None
    found.raise_any()
    assert name is not None
    assert base_url is not None
    assert model is not None
    return ProviderSpec(
        name=name,
        base_url=base_url.rstrip("/"),
        model=model,
        probe_method=probe_method,
        auth=preset.auth if preset is not None else AuthScheme(),
        errors=catalog.dictionary(preset),
        chat=chat,
        preset=preset.id if preset is not None else None,
        api_key=api_key,
        not_before=not_before,
        not_after=not_after,
        signal=signal,
    )


def _chat(raw: Any, path: str, base: ChatProbe) -> ChatProbe:
    """A provider's own way of asking its model, over its preset's (each field optional)."""
    item = _mapping(raw, path)
    found = _Found()
    found.take(_only, item, path, {"tokenField", "tokens", "thinking", "reasoningEffort"})
    chat = base
    if "tokenField" in item:
        field = found.take(_enum, TokenField, item["tokenField"], f"{path}.tokenField")
        chat = chat if field is None else replace(chat, token_field=field)
    if "tokens" in item:
        tokens = found.take(_int, item["tokens"], f"{path}.tokens", 1, MAX_PROBE_TOKENS)
        chat = chat if tokens is None else replace(chat, tokens=tokens)
    if "thinking" in item:
        thinking = found.take(_enum, Thinking, item["thinking"], f"{path}.thinking")
        chat = chat if thinking is None else replace(chat, thinking=thinking)
    if "reasoningEffort" in item:
        effort = item["reasoningEffort"]
        if effort not in REASONING_EFFORTS:
            known = " | ".join(sorted(e for e in REASONING_EFFORTS if e))
            found.add(f"{path}.reasoningEffort", f"must be one of {known}, got {effort!r}")
        else:
            chat = replace(chat, reasoning_effort=effort)
    found.raise_any()
    return chat


def _signal(raw: Any, path: str) -> Signal:
    item = _mapping(raw, path)
    found = _Found()
    found.take(_only, item, path, {"prometheus", "trust"})
    prometheus = None
    if "prometheus" in item:
        prometheus = found.take(_prometheus, item["prometheus"], f"{path}.prometheus")
    trust = found.take(_enum, Trust, item.get("trust", Trust.PROBE.value), f"{path}.trust")
    found.raise_any()
    assert trust is not None
    return Signal(prometheus=prometheus, trust=trust)


def _prometheus(raw: Any, where: str) -> PrometheusSignal:
    query_item = _mapping(raw, where)
    found = _Found()
    found.take(_only, query_item, where, {"query", "threshold"})
    query = found.take(_string, query_item.get("query"), f"{where}.query", max_length=4096)
    for match in _PLACEHOLDER.finditer(query or ""):
        if match.group(1) not in PLACEHOLDERS:
            known = ", ".join(f"${{{p}}}" for p in PLACEHOLDERS)
            found.add(f"{where}.query", f"unknown placeholder {match.group(0)!r} (known: {known})")
    threshold = query_item.get("threshold")
    if (
        not isinstance(threshold, int | float)
        or isinstance(threshold, bool)
        or threshold != threshold  # NaN
        or abs(threshold) == float("inf")
    ):
        found.add(f"{where}.threshold", f"must be a number, got {_kind(threshold)}")
    found.raise_any()
    assert query is not None
    assert isinstance(threshold, int | float)
    return PrometheusSignal(query=query, threshold=float(threshold))


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
    found = _Found()
    found.take(
        _only,
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

    def number(field: str, fallback: int | None, high: int) -> int | None:
        if fallback is None and field not in item:
            return None
        return found.take(_int, item.get(field, fallback), f"{path}.{field}", 1, high)

    interval = number("intervalSeconds", default.interval_seconds, 3600)
    backup = number("backupIntervalSeconds", None, 3600)
    if backup is not None and interval is not None and backup < interval:
        found.add(
            f"{path}.backupIntervalSeconds",
            f"must be at least intervalSeconds ({interval}), got {backup}",
        )
    timeout = number("timeoutSeconds", default.timeout_seconds, 60)
    failures = number("failureThreshold", default.failure_threshold, 10)
    successes = number("successThreshold", default.success_threshold, 10)
    found.raise_any()
    assert interval is not None
    assert timeout is not None
    assert failures is not None
    assert successes is not None
    return HealthCheck(
        backup_interval_seconds=backup,
        interval_seconds=interval,
        timeout_seconds=timeout,
        failure_threshold=failures,
        success_threshold=successes,
    )


def _target(raw: Any, path: str, route_name: str) -> Target:
    item = _mapping(raw, path) if raw is not None else {}
    found = _Found()
    found.take(_only, item, path, {"configMapName", "secretName", "restart"})
    config_map = item.get("configMapName", f"{route_name}-llm")
    restart_raw = item.get("restart", [])
    restart: list[RestartTarget] = []
    if not isinstance(restart_raw, list):
        found.add(f"{path}.restart", "must be a list")
    elif len(restart_raw) > MAX_RESTART_TARGETS:
        found.add(f"{path}.restart", f"at most {MAX_RESTART_TARGETS} workloads")
    else:
        for i, entry_raw in enumerate(restart_raw):
            workload = found.take(_restart_target, entry_raw, f"{path}.restart[{i}]")
            if workload is None:
                continue
            if workload in restart:
                found.add(
                    f"{path}.restart[{i}]", f"{workload.kind}/{workload.name} is listed twice"
                )
            restart.append(workload)
    secret_name = item.get("secretName")
    config_map_name = found.take(
        _string, config_map, f"{path}.configMapName", pattern=_DNS_SUBDOMAIN, max_length=253
    )
    if secret_name is not None:
        secret_name = found.take(
            _string, secret_name, f"{path}.secretName", pattern=_DNS_SUBDOMAIN, max_length=253
        )
    found.raise_any()
    assert config_map_name is not None
    return Target(
        config_map_name=config_map_name,
        secret_name=secret_name,
        restart=tuple(restart),
    )


def _restart_target(raw: Any, path: str) -> RestartTarget:
    entry = _mapping(raw, path)
    found = _Found()
    found.take(_only, entry, path, {"kind", "name"})
    kind = found.take(_enum, WorkloadKind, entry.get("kind"), f"{path}.kind")
    name = found.take(
        _string, entry.get("name"), f"{path}.name", pattern=_DNS_SUBDOMAIN, max_length=253
    )
    found.raise_any()
    assert kind is not None
    assert name is not None
    return RestartTarget(kind=kind, name=name)


def _secret_ref(raw: Any, path: str) -> SecretRef:
    item = _mapping(raw, path)
    found = _Found()
    found.take(_only, item, path, {"name", "key"})
    name = found.take(
        _string, item.get("name"), f"{path}.name", pattern=_DNS_SUBDOMAIN, max_length=253
    )
    key = found.take(_string, item.get("key"), f"{path}.key", pattern=_SECRET_KEY, max_length=253)
    found.raise_any()
    assert name is not None
    assert key is not None
    return SecretRef(name=name, key=key)


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise SpecError(path, f"must be an object, got {_kind(raw)}")
    return raw


def _only(item: Mapping[Any, Any], path: str, allowed: set[str]) -> None:
    unknown = sorted(str(key) for key in item if key not in allowed)  # keys may not be str
    if unknown:
        hint = f"unknown field (allowed: {', '.join(sorted(allowed))})"
        raise SpecError.of([SpecError(f"{path}.{key}", hint) for key in unknown])


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
