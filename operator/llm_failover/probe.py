"""`llm-failover probe`: probes the providers of LLMRoute manifests once from this machine, no
cluster, streaming: routes are read, checked and probed as the input arrives.

Inputs: files, `-` (stdin), directories (their `*.yaml`, `*.yml` and `*.json` files, sorted by
name; with `recursive`, those of every subdirectory too). A document may be one object or a list
(`kind: List`, `LLMRouteList`, as `kubectl get -o yaml` writes): each of its `items` is read,
checked and probed as soon as it is complete, so a 55 MB list never becomes one Python object.
Objects other than LLMRoutes are counted and named in a note on stderr.

Memory is bounded: a reader thread parses the YAML event by event (libyaml when present) into
one object at a time, at most `MAX_OBJECT_CHARS` characters and `MAX_DEPTH` levels each; at most
`WINDOW` routes are in flight between it and the output, which keeps the input's order. Each
distinct endpoint is probed once (the last `REMEMBERED` endpoints' answers are reused).

Every problem of the input is reported on stderr, one line each (every validation error of a
route, each naming its field), and the routes that are fine are still probed. Exit status:
0 when every route (but paused ones) has a usable provider, 1 when some route has none, 2 when
some input was bad, 141 when the output was closed early (`| head`), as for a tool killed by
SIGPIPE.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import json
import os
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

import httpx
import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from llm_failover.catalog import Catalog
from llm_failover.credentials import Credential, read_key
from llm_failover.health import ProbeResult, ProviderHealth, Thresholds, observe
from llm_failover.kube import GROUP, KIND, VERSION
from llm_failover.policy import decide
from llm_failover.prober import Endpoint, Prober, Report, utc_now
from llm_failover.spec import ProviderSpec, RouteSpec, SpecError, parse_route_spec
from llm_failover.state import ProviderState

EXIT_OK, EXIT_NO_PROVIDER, EXIT_BAD_INPUT = 0, 1, 2
EXIT_CLOSED_OUTPUT = 141
"""128 + SIGPIPE: what a shell reports for a tool that a closed pipe stopped."""
MAX_INPUT_BYTES = 256 * 1024 * 1024
"""Bytes of one file (or of stdin) at most."""
MAX_OBJECT_CHARS = 2 * 1024 * 1024
"""Characters of one object (a document, or an item of a list) at most: the API server keeps
objects of up to 1.5 MiB."""
MAX_DEPTH = 64
"""Nesting levels of one object at most (an LLMRoute has eight)."""
MAX_FILES = 10_000
"""Files read from the directories given, at most."""
WINDOW = 64
"""Routes between the reader and the output at most: probing, or waiting for an earlier one."""
REMEMBERED = 10_000
"""Endpoints whose answer is kept for later routes that share them."""
SUFFIXES = (".yaml", ".yml", ".json")
SKIPPED = "Skipped"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LIST_KINDS = ("List", f"{KIND}List")


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    spec: RouteSpec


def key_variable(provider: str) -> str:
    """The environment variable that holds a provider's key: its name upper-cased, `-` as `_`."""
    return "LLMFAILOVER_KEY_" + provider.upper().replace("-", "_")


class InputError(ValueError):
    """Input that cannot be probed; the message is the one line users see."""


class ClosedOutput(Exception):
    """The reader of our output went away (a closed pipe)."""


@dataclass(frozen=True)
class ProviderResult:
    name: str
    host: str
    state: str
    http_status: int | None
    latency_milliseconds: int | None
    message: str


@dataclass(frozen=True)
class RouteResult:
    route: Route
    would_route_to: str | None
    providers: tuple[ProviderResult, ...]

    @property
    def usable(self) -> bool:
        return self.route.spec.paused or self.would_route_to is not None


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """What the reader hands over, in input order: a route, or a line for stderr."""

    route: Route | None = None
    problem: str | None = None
    """Bad input: the run ends with status 2."""
    note: str | None = None
    """Said, but not a problem (objects that are not LLMRoutes)."""


def sources(paths: Sequence[str], *, recursive: bool) -> Iterator[tuple[str, bool]]:
    """(path, found in a directory) for each input, in order; `-` is stdin."""
    files = 0
    for path in paths:
        if path != "-" and os.path.isdir(path):
            found = sorted(_directory(Path(path), recursive))
            if not found:
                deep = " (or below)" if recursive else ""
                raise InputError(f"{path}: a directory without *.yaml, *.yml or *.json files{deep}")
            for file in found:
                files += 1
                if files > MAX_FILES:
                    raise InputError(f"{path}: more than {MAX_FILES} files")
                yield str(file), True
        else:
            yield path, False


def _directory(directory: Path, recursive: bool) -> Iterator[Path]:
    if not recursive:
        for entry in directory.iterdir():
            if entry.suffix in SUFFIXES and entry.is_file():
                yield entry
        return
    for root, dirs, names in os.walk(directory):  # symlinked directories are not followed
        dirs.sort()
        for name in names:
            if name.endswith(SUFFIXES) and os.path.isfile(os.path.join(root, name)):
                yield Path(root, name)


def read_all(
    paths: Sequence[str],
    *,
    recursive: bool,
    catalog: Catalog,
    stdin: IO[bytes],
) -> Iterator[Found]:
    """Every route and problem of the inputs, in order, read as they come."""
    try:
        listed = list(sources(paths, recursive=recursive))
    except InputError as exc:
        yield Found(problem=str(exc))
        return
    except OSError as exc:
        yield Found(problem=f"cannot list a directory: {exc}")
        return
    if sum(1 for path, _ in listed if path == "-") > 1:
        yield Found(problem="-: stdin can be read once only")
        return
    for path, in_directory in listed:
        yield from _read_source(path, in_directory, catalog, stdin)


def _read_source(
    path: str, in_directory: bool, catalog: Catalog, stdin: IO[bytes]
) -> Iterator[Found]:
    label = "stdin" if path == "-" else path
    routes = 0
    problems = 0
    others: Counter[str] = Counter()
    lists: list[str] = []
    try:
        raw: IO[bytes] = stdin if path == "-" else open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        yield Found(problem=f"{label}: no such file")
        return
    except OSError as exc:
        yield Found(problem=f"{label}: cannot read it: {exc.strerror or exc}")
        return
    try:
        for where, obj in _objects(_Text(raw, label), label):
            if isinstance(obj, _ListEnd):
                if obj.kind not in LIST_KINDS:
                    lists.append(f"{where} ({obj.kind or 'no kind'})")
                continue
            found = _check(obj, label, where, catalog, others)
            if found is not None:
                routes += found.route is not None
                problems += found.problem is not None
                yield found
    except InputError as exc:
        problems += 1
        yield Found(problem=str(exc))
    except UnicodeDecodeError as exc:
        problems += 1
        yield Found(problem=f"{label}: cannot read it: not UTF-8 ({exc.reason})")
    except OSError as exc:
        problems += 1
        yield Found(problem=f"{label}: cannot read it: {exc.strerror or exc}")
    finally:
        if path != "-":
            raw.close()
    if lists:
        yield Found(note=f"{label}: items read as LLMRoutes from {', '.join(lists)}")
    ignored = ", ".join(f"{n} {kind}" for kind, n in sorted(others.items()))
    if not routes and not problems and not in_directory:
        yield Found(problem=f"{label}: not an LLMRoute manifest (found {ignored or 'nothing'})")
    elif ignored:
        yield Found(note=f"{label}: ignored {ignored} (not LLMRoutes)")


def _check(
    obj: Any, label: str, where: str, catalog: Catalog, others: Counter[str]
) -> Found | None:
    """A route, a problem, or None (nothing, or another kind: counted in `others`)."""
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        return Found(problem=f"{label}: {where} is not a Kubernetes object")
    kind = obj.get("kind")
    if kind != KIND:
        others[str(kind or "object without kind")] += 1
        return None
    if obj.get("apiVersion") != f"{GROUP}/{VERSION}":
        return Found(
            problem=f"{label}: {where}: apiVersion must be {GROUP}/{VERSION}, "
            f"got {obj.get('apiVersion')!r}"
        )
    meta = obj.get("metadata") or {}
    if not isinstance(meta, Mapping):
        return Found(problem=f"{label}: {where}: metadata: must be an object")
    name = meta.get("name")
    namespace = meta.get("namespace") or "default"
    if not name:
        return Found(problem=f"{label}: {where}: metadata.name: required")
    if not isinstance(name, str) or not isinstance(namespace, str):
        return Found(problem=f"{label}: {where}: metadata: name and namespace are text")
    try:
        spec = parse_route_spec(obj.get("spec"), route_name=name, catalog=catalog)
    except SpecError as exc:
        lines = [f"{label}: {where}: LLMRoute {name}: {e.field}: {e.problem}" for e in exc.errors]
        return Found(problem="\n".join(lines))
    return Found(route=Route(namespace, name, spec))


class _Text:
    """The text of one input as it arrives (a read returns what is there, not a full buffer:
    a route on a pipe is probed before the pipe closes), UTF-8 checked, at most
    `MAX_INPUT_BYTES`."""

    def __init__(self, inner: IO[bytes], label: str) -> None:
        self._inner = inner
        self._label = label
        self._count = 0
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        read1 = getattr(inner, "read1", None)
        self._read: Callable[[int], bytes] = read1 if read1 is not None else inner.read
        self.name = label

    def read(self, size: int = -1) -> str:
        want = size if size > 0 else 64 * 1024
        while True:
            data = self._read(want)
            self._count += len(data)
            if self._count > MAX_INPUT_BYTES:
                raise InputError(f"{self._label}: larger than {MAX_INPUT_BYTES // 2**20} MiB")
            text = self._decoder.decode(data, final=not data)
            if text or not data:  # nothing yet: half a character; go on
                return text


@dataclass(frozen=True)
class _ListEnd:
    kind: str | None


def _objects(text: _Text, label: str) -> Iterator[tuple[str, Any]]:
    """(where, object) for each document, or each item of a document's top-level `items`."""
    loader = _Loader(text)
    try:
        loader.get_event()  # StreamStart
        document = 0
        while not loader.check_event(StreamEndEvent):
            loader.get_event()  # DocumentStart
            document += 1
            where = f"document {document}"
            if loader.check_event(MappingStartEvent):
                yield from _top_mapping(loader, label, where)
            else:
                yield where, _load(loader, label, where)
            loader.get_event()  # DocumentEnd
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise InputError(f"{label}: not valid YAML{line}: {exc.problem}") from None
    except yaml.reader.ReaderError as exc:
        raise InputError(f"{label}: cannot read it: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{label}: not valid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()


def _top_mapping(loader: Any, label: str, where: str) -> Iterator[tuple[str, Any]]:
    """A document's top-level mapping, its `items` streamed one by one."""
    loader.get_event()  # MappingStart
    fields: dict[Any, Any] = {}
    listed = False
    while not loader.check_event(MappingEndEvent):
        key = _load(loader, label, where)
        if key == "items" and loader.check_event(SequenceStartEvent):
            loader.get_event()
            listed = True
            index = 0
            while not loader.check_event(SequenceEndEvent):
                index += 1
                item = f"{where}, item {index}"
                yield item, _load(loader, label, item)
            loader.get_event()
            continue
        try:
            fields[key] = _load(loader, label, where)
        except TypeError:  # an unhashable key
            raise InputError(f"{label}: {where}: a key that is not text") from None
    loader.get_event()  # MappingEnd
    if listed:
        kind = fields.get("kind")
        yield where, _ListEnd(kind if isinstance(kind, str) else None)
    else:
        yield where, fields


_NO_KEY = object()


def _load(loader: Any, label: str, where: str) -> Any:
    """The next node's value, composed from events: at most MAX_OBJECT_CHARS, MAX_DEPTH deep."""
    budget = MAX_OBJECT_CHARS
    anchors: dict[str, Node] = {}
    stack: list[list[Any]] = []  # [collection node, pending mapping key]
    root: Node | None = None
    while True:
        event = loader.get_event()
        budget -= 1
        node: Node
        if isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            done = stack.pop()[0]
            if not stack:
                root = done
                break
            continue
        if isinstance(event, AliasEvent):
            if event.anchor not in anchors:
                raise InputError(f"{label}: {where}: alias *{event.anchor} has no anchor in it")
            node = anchors[event.anchor]
        elif isinstance(event, ScalarEvent):
            budget -= len(event.value)
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(ScalarNode, event.value, event.implicit)
            node = ScalarNode(tag, event.value, None, None, event.style)  # no marks: less memory
        elif isinstance(event, (SequenceStartEvent, MappingStartEvent)):
            kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(kind, None, event.implicit)
            node = kind(tag, [], None, None, event.flow_style)
        else:  # pragma: no cover - the parser gives nothing else inside a document
            raise InputError(f"{label}: {where}: unexpected {type(event).__name__}")
        if budget < 0:
            raise InputError(
                f"{label}: {where}: larger than {MAX_OBJECT_CHARS // 2**20} MiB (the API "
                "server keeps objects of up to 1.5 MiB)"
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None and not isinstance(event, AliasEvent):
            anchors[anchor] = node
        if stack:
            frame = stack[-1]
            parent = frame[0]
            if isinstance(parent, SequenceNode):
                parent.value.append(node)
            elif frame[1] is _NO_KEY:
                frame[1] = node
            else:
                parent.value.append((frame[1], node))
                frame[1] = _NO_KEY
        if isinstance(event, (SequenceStartEvent, MappingStartEvent)):
            stack.append([node, _NO_KEY])
            if len(stack) > MAX_DEPTH:
                raise InputError(f"{label}: {where}: nested deeper than {MAX_DEPTH} levels")
            continue
        if not stack:
            root = node
            break
    try:
        return loader.construct_document(root)
    except RecursionError:  # aliases nesting a structure in itself
        raise InputError(f"{label}: {where}: nested too deeply") from None


# --- probing ---------------------------------------------------------------------------------


@dataclass
class _Keys:
    """Keys from LLMFAILOVER_KEY_<PROVIDER>, each checked once, as the operator checks a
    Secret's; a key that cannot be sent is bad input (its value is never shown)."""

    environ: Mapping[str, str]
    checked: dict[str, str | InputError] = field(default_factory=dict)

    def of(self, provider: str) -> str | None:
        variable = key_variable(provider)
        if variable not in self.checked:
            raw = self.environ.get(variable)
            if not raw:
                return None
            found = read_key(raw.encode("utf-8", errors="surrogateescape"))
            self.checked[variable] = (
                found.key if found.key is not None else InputError(f"{variable} {found.problem}")
            )
        value = self.checked[variable]
        if isinstance(value, InputError):
            raise value
        return value


def skip_reason(route: Route, provider: ProviderSpec, now: datetime) -> str | None:
    """Why the operator would not route to `provider` whatever a probe said; None: probe it."""
    if route.spec.paused:
        return "route paused (spec.paused: true): routing stays where it is"
    if provider.not_before is not None and now < provider.not_before:
        return f"notBefore {_rfc3339(provider.not_before)} not reached"
    if provider.not_after is not None and now >= provider.not_after:
        return f"notAfter {_rfc3339(provider.not_after)} passed"
    return None


def _rfc3339(time: datetime) -> str:
    return time.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Probes:
    """Each distinct endpoint probed once (its answer kept for the last REMEMBERED ones)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._prober = Prober(client=client)
        self._tasks: OrderedDict[Endpoint, asyncio.Task[Report]] = OrderedDict()

    def report(self, endpoint: Endpoint, timeout: float) -> asyncio.Task[Report]:
        task = self._tasks.get(endpoint)
        if task is None:
            task = asyncio.ensure_future(self._prober.probe(endpoint, timeout_seconds=timeout))
            self._tasks[endpoint] = task
            if len(self._tasks) > REMEMBERED:
                self._tasks.popitem(last=False)  # done long ago, or awaited by its route
        else:
            self._tasks.move_to_end(endpoint)
        return task

    def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()


async def probe_route(route: Route, probes: _Probes, keys: _Keys, now: datetime) -> RouteResult:
    """Probe the route's providers (those not skipped); decide as the operator would, cold."""
    check = route.spec.health_check
    planned: list[tuple[ProviderSpec, str | None, Endpoint | None]] = []
    for provider in route.spec.providers:
        reason = skip_reason(route, provider, now)
        endpoint = None
        if reason is None:
            endpoint = Endpoint.for_provider(
                base_url=provider.base_url,
                method=provider.probe_method,
                model=provider.model,
                credential=Credential.of(keys.of(provider.name)),
                auth=provider.auth,
                errors=provider.errors,
                chat=provider.chat,
            )
        planned.append((provider, reason, endpoint))
    tasks = {e: probes.report(e, check.timeout_seconds) for _, _, e in planned if e is not None}
    reports = dict(zip(tasks, await asyncio.gather(*tasks.values()), strict=True))
    thresholds = Thresholds(
        check.failure_threshold, check.success_threshold, check.interval_seconds
    )
    health: dict[str, ProviderHealth] = {}
    results = []
    for provider, reason, endpoint in planned:
        if endpoint is None:
            results.append(
                ProviderResult(provider.name, provider.host, SKIPPED, None, None, reason or "")
            )
            continue
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
                provider.name,
                provider.host,
                c.state.value,
                c.http_status,
                report.latency_milliseconds,
                message,
            )
        )
    active = None
    if not route.spec.paused:
        active = decide(route.spec, health, current=None, spec_changed=False, now=now).active
    return RouteResult(route, active, tuple(results))


# --- output ----------------------------------------------------------------------------------


def route_json(result: RouteResult) -> dict[str, Any]:
    return {
        "namespace": result.route.namespace,
        "name": result.route.name,
        "paused": result.route.spec.paused,
        "wouldRouteTo": result.would_route_to,
        "providers": [
            {
                "name": p.name,
                "host": p.host,
                "state": p.state,
                "httpStatus": p.http_status,
                "latencyMilliseconds": p.latency_milliseconds,
                "message": p.message,
            }
            for p in result.providers
        ],
    }


def route_table(result: RouteResult) -> str:
    where = f"LLMRoute {result.route.namespace}/{result.route.name}"
    if result.route.spec.paused:
        head = f"{where} is paused: not probed, routing stays where it is"
    else:
        target = result.would_route_to or "NONE: no provider is usable from here"
        head = f"{where} would route to: {target}"
    rows = [("PROVIDER", "HOST", "STATE", "HTTP", "LATENCY", "WHY")]
    for p in result.providers:
        latency = f"{p.latency_milliseconds}ms" if p.latency_milliseconds is not None else "-"
        http = str(p.http_status) if p.http_status else "-"
        rows.append((p.name, p.host, p.state, http, latency, p.message or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [head]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  " + "  ".join([*cells, row[5]]))
    return "\n".join(lines) + "\n"


class _Output:
    """Routes written as they are ready, in order; a closed pipe raises `ClosedOutput`."""

    def __init__(self, output: str, out: TextIO) -> None:
        self._json = output == "json"
        self._out = out
        self.routes = 0

    def route(self, result: RouteResult) -> None:
        if self._json:
            body = json.dumps(route_json(result), indent=2, ensure_ascii=False)
            body = "\n".join("    " + line for line in body.splitlines())
            self._write(('{\n  "routes": [\n' if not self.routes else ",\n") + body)
        else:
            self._write(("\n" if self.routes else "") + route_table(result))
        self.routes += 1

    def finish(self, bad_input: bool) -> None:
        if self._json and self.routes:
            self._write("\n  ]\n}\n")
        elif self._json and not bad_input:
            self._write('{\n  "routes": []\n}\n')

    def _write(self, text: str) -> None:
        try:
            self._out.write(text)
            self._out.flush()
        except BrokenPipeError:
            raise ClosedOutput from None


# --- the command -----------------------------------------------------------------------------


@dataclass
class _Reader:
    """`read_all` in a thread of its own, handing each `Found` to the event loop; it waits
    while WINDOW of them are unconsumed (bounded memory), and stops when told to."""

    produce: Callable[[], Iterator[Found]]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Found | None]
    room: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(WINDOW))
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, name="probe-reader", daemon=True).start()

    def _run(self) -> None:
        try:
            for found in self.produce():
                while not self.room.acquire(timeout=0.2):
                    if self.stopped.is_set():
                        return
                if self.stopped.is_set():
                    return
                self.loop.call_soon_threadsafe(self.queue.put_nowait, found)
        except Exception as exc:  # a bug of ours: said as bad input rather than a hang
            problem = Found(problem=f"cannot read the input: {type(exc).__name__}: {exc}")
            self.loop.call_soon_threadsafe(self.queue.put_nowait, problem)
        finally:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, None)

    async def get(self) -> Found | None:
        found = await self.queue.get()
        if found is not None:
            self.room.release()
        return found


async def run(
    paths: Sequence[str],
    *,
    output: str,
    out: TextIO,
    err: TextIO,
    catalog: Catalog,
    client: httpx.AsyncClient,
    recursive: bool = False,
    environ: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
) -> int:
    """Read, probe and print; the exit status (ClosedOutput when stdout closed early)."""
    keys = _Keys(os.environ if environ is None else environ)
    now = utc_now()
    reader = _Reader(
        lambda: read_all(
            paths,
            recursive=recursive,
            catalog=catalog,
            stdin=stdin if stdin is not None else _stdin(),
        ),
        asyncio.get_running_loop(),
        asyncio.Queue(),
    )
    printer = _Output(output, out)
    probes = _Probes(client)
    pending: deque[asyncio.Task[RouteResult | None]] = deque()
    bad = False
    usable = True

    def say(line: str) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            print(f"llm-failover probe: {line}", file=err, flush=True)

    async def one(route: Route) -> RouteResult | None:
        try:
            return await probe_route(route, probes, keys, now)
        except InputError as exc:  # a key that cannot be sent
            nonlocal bad
            bad = True
            say(str(exc))
            return None

    def show(result: RouteResult | None) -> None:
        nonlocal usable
        if result is not None:
            usable = usable and result.usable
            printer.route(result)

    reader.start()
    getter: asyncio.Future[Found | None] | None = None
    read_all_input = False
    try:
        while True:
            # Read on while fewer than WINDOW routes wait; print each as soon as it and every
            # route before it are done (even while the input is still open).
            if getter is None and not read_all_input and len(pending) < WINDOW:
                getter = asyncio.ensure_future(reader.get())
            waiting: set[asyncio.Future[Any]] = set()
            if getter is not None:
                waiting.add(getter)
            if pending:
                waiting.add(pending[0])
            if not waiting:
                break
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            while pending and pending[0].done():
                show(pending.popleft().result())
            if getter is None or not getter.done():
                continue
            found = getter.result()
            getter = None
            if found is None:
                read_all_input = True
                continue
            if found.problem is not None:
                bad = True
                for line in found.problem.splitlines():
                    say(line)
            if found.note is not None:
                say(found.note)
            if found.route is not None:
                pending.append(asyncio.ensure_future(one(found.route)))
        printer.finish(bad)
    finally:
        reader.stopped.set()
        if getter is not None:
            getter.cancel()
        for task in pending:
            task.cancel()
        probes.cancel()
    if bad:
        return EXIT_BAD_INPUT
    return EXIT_OK if usable else EXIT_NO_PROVIDER


def _stdin() -> IO[bytes]:
    import sys

    return sys.stdin.buffer


def main(
    paths: Sequence[str],
    *,
    output: str,
    out: TextIO,
    err: TextIO,
    catalog: Catalog,
    recursive: bool = False,
) -> int:
    try:
        client = httpx.AsyncClient(trust_env=True)  # HTTPS_PROXY, HTTP_PROXY, NO_PROXY
    except (ValueError, httpx.InvalidURL) as exc:  # e.g. a malformed HTTPS_PROXY
        print(f"llm-failover probe: cannot set up HTTP (check HTTPS_PROXY): {exc}", file=err)
        return EXIT_BAD_INPUT

    async def go() -> int:
        async with client:
            return await run(
                paths, output=output, out=out, err=err, catalog=catalog, client=client,
                recursive=recursive,
            )  # fmt: skip

    try:
        return asyncio.run(go())
    except ClosedOutput:
        _silence(out)
        return EXIT_CLOSED_OUTPUT


def _silence(out: TextIO) -> None:
    """After a closed pipe: what is left in stdout's buffer goes nowhere (no error at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
