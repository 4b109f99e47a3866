"""`llm-failover probe`: probes the providers of LLMRoute manifests from this machine, no cluster.

It answers "from here, which providers work, which are geo-blocked, and where would this route
go?" before anything is applied. Keys come from `LLMFAILOVER_KEY_<PROVIDER>` environment variables.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

from llm_failover.catalog import Catalog
from llm_failover.credentials import Credential, read_key
from llm_failover.health import ProbeResult, ProviderHealth, Thresholds, observe
from llm_failover.kube import GROUP, KIND, VERSION
from llm_failover.policy import decide
from llm_failover.prober import Endpoint, Prober, Report, utc_now
from llm_failover.spec import RouteSpec, SpecError, parse_route_spec
from llm_failover.state import ProviderState

EXIT_OK, EXIT_NO_PROVIDER, EXIT_BAD_INPUT = 0, 1, 2


class InputError(ValueError):
    """A file, document or field that cannot be probed; the message is the one line users see."""


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    spec: RouteSpec


@dataclass(frozen=True)
class ProviderResult:
    name: str
    state: ProviderState
    http_status: int | None
    latency_milliseconds: int | None
    message: str


@dataclass(frozen=True)
class RouteResult:
    route: Route
    would_route_to: str | None
    providers: tuple[ProviderResult, ...]


def key_variable(provider: str) -> str:
    return "LLMFAILOVER_KEY_" + provider.upper().replace("-", "_")


def load_routes(paths: Sequence[str], *, catalog: Catalog) -> list[Route]:
    routes: list[Route] = []
    for path in paths:
        routes.extend(_routes_in(Path(path), catalog))
    return routes


def _routes_in(path: Path, catalog: Catalog) -> list[Route]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it: {exc}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise InputError(f"{path}: not valid YAML{line}") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be a manifest") from None
    routes = []
    others = []
    for index, doc in enumerate(documents):
        if not isinstance(doc, Mapping):
            raise InputError(f"{path}: document {index + 1} is not a Kubernetes object")
        if doc.get("kind") != KIND:
            others.append(str(doc.get("kind") or "an object without kind"))
            continue
        if doc.get("apiVersion") != f"{GROUP}/{VERSION}":
            raise InputError(
                f"{path}: apiVersion must be {GROUP}/{VERSION}, got {doc.get('apiVersion')!r}"
            )
        meta = doc.get("metadata") or {}
        if not isinstance(meta, Mapping):
            raise InputError(f"{path}: document {index + 1}: metadata: must be an object")
        name = meta.get("name")
        namespace = meta.get("namespace") or "default"
        if not name:
            raise InputError(f"{path}: document {index + 1}: metadata.name: required")
        if not isinstance(name, str) or not isinstance(namespace, str):
            raise InputError(f"{path}: document {index + 1}: metadata: name and namespace are text")
        try:
            spec = parse_route_spec(doc.get("spec"), route_name=name, catalog=catalog)
        except SpecError as exc:
            raise InputError(f"{path}: LLMRoute {name}: {exc}") from None
        routes.append(Route(namespace, name, spec))
    if not routes:
        found = ", ".join(others) or "nothing"
        raise InputError(f"{path}: not an LLMRoute manifest (found {found})")
    return routes


async def probe_routes(
    routes: Sequence[Route], *, environ: Mapping[str, str], client: httpx.AsyncClient
) -> list[RouteResult]:
    """Probe every distinct endpoint once, concurrently; decide each route as the operator would."""
    prober = Prober(client=client)
    wanted: dict[Endpoint, float] = {}
    endpoints: dict[tuple[int, str], Endpoint] = {}
    for index, route in enumerate(routes):
        for provider in route.spec.providers:
            endpoint = Endpoint.for_provider(
                base_url=provider.base_url,
                method=provider.probe_method,
                model=provider.model,
                credential=Credential.of(environ.get(key_variable(provider.name))),
                auth=provider.auth,
                errors=provider.errors,
                chat=provider.chat,
            )
            endpoints[(index, provider.name)] = endpoint
            timeout = route.spec.health_check.timeout_seconds
            wanted[endpoint] = min(wanted.get(endpoint, timeout), timeout)
    reports = dict(
        zip(
            wanted,
            await asyncio.gather(*(prober.probe(e, timeout_seconds=t) for e, t in wanted.items())),
            strict=True,
        )
    )
    return [_route_result(route, index, endpoints, reports) for index, route in enumerate(routes)]


def _route_result(
    route: Route,
    index: int,
    endpoints: Mapping[tuple[int, str], Endpoint],
    reports: Mapping[Endpoint, Report],
) -> RouteResult:
    check = route.spec.health_check
    thresholds = Thresholds(
        check.failure_threshold, check.success_threshold, check.interval_seconds
    )
    health: dict[str, ProviderHealth] = {}
    results = []
    for provider in route.spec.providers:
        endpoint = endpoints[(index, provider.name)]
        report = reports[endpoint]
        c = report.classification
        message = c.message
        if c.state is ProviderState.UNAUTHORIZED and not endpoint.credential.value:
            message = f"{message} (no key given: set {key_variable(provider.name)})".strip()
        health[provider.name], _ = observe(
            ProviderHealth(),
            ProbeResult(c.state, report.time, message, c.http_status, report.latency_milliseconds),
            thresholds,
        )
        results.append(
            ProviderResult(
                provider.name, c.state, c.http_status, report.latency_milliseconds, message
            )
        )
    # A single probe each: the operator's own rules, from a cold start.
    decision = decide(route.spec, health, current=None, spec_changed=False, now=utc_now())
    return RouteResult(route, decision.active, tuple(results))


def as_json(results: Sequence[RouteResult]) -> dict[str, Any]:
    return {
        "routes": [
            {
                "namespace": r.route.namespace,
                "name": r.route.name,
                "wouldRouteTo": r.would_route_to,
                "providers": [
                    {
                        "name": p.name,
                        "state": p.state.value,
                        "httpStatus": p.http_status,
                        "latencyMilliseconds": p.latency_milliseconds,
                        "message": p.message,
                    }
                    for p in r.providers
                ],
            }
            for r in results
        ]
    }


def print_table(results: Sequence[RouteResult], out: TextIO) -> None:
    for number, result in enumerate(results):
        if number:
            print(file=out)
        target = result.would_route_to or "NONE: no provider is usable from here"
        print(
            f"LLMRoute {result.route.namespace}/{result.route.name} would route to: {target}",
            file=out,
        )
        rows = [("PROVIDER", "STATE", "HTTP", "LATENCY", "WHY")]
        for p in result.providers:
            latency = f"{p.latency_milliseconds}ms" if p.latency_milliseconds is not None else "-"
            rows.append(
                (p.name, p.state.value, str(p.http_status or "-"), latency, p.message or "-")
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            print("  " + "  ".join([*cells, row[4]]), file=out)


def check_keys(routes: Sequence[Route], environ: Mapping[str, str]) -> dict[str, str]:
    """The keys from the environment, normalised as the operator normalises a Secret's."""
    keys: dict[str, str] = {}
    for route in routes:
        for provider in route.spec.providers:
            variable = key_variable(provider.name)
            raw = environ.get(variable)
            if not raw:
                continue
            found = read_key(raw.encode("utf-8", errors="surrogateescape"))
            if found.key is None:
                raise InputError(f"{variable} {found.problem}")
            keys[variable] = found.key
    return keys


def main(paths: Sequence[str], *, output: str, out: TextIO, err: TextIO, catalog: Catalog) -> int:
    try:
        routes = load_routes(paths, catalog=catalog)
        keys = check_keys(routes, os.environ)
        client = httpx.AsyncClient(trust_env=True)  # HTTPS_PROXY is honoured
    except InputError as exc:
        print(f"llm-failover probe: {exc}", file=err)
        return EXIT_BAD_INPUT
    except (ValueError, httpx.InvalidURL) as exc:  # e.g. a malformed HTTPS_PROXY
        print(f"llm-failover probe: cannot set up HTTP (check HTTPS_PROXY): {exc}", file=err)
        return EXIT_BAD_INPUT

    async def run() -> list[RouteResult]:
        async with client:
            return await probe_routes(routes, environ=keys, client=client)

    results = asyncio.run(run())
    if output == "json":
        json.dump(as_json(results), out, indent=2, ensure_ascii=False)
        print(file=out)
    else:
        print_table(results, out)
    return EXIT_OK if all(r.would_route_to for r in results) else EXIT_NO_PROVIDER
