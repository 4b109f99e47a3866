"""Per-route series kept as rendered exposition lines: a scrape at 10,000 routes joins bytes.

prometheus_client formats every sample on every scrape: ~110,000 per-route samples at 10,000
routes cost over a second of CPU per scrape. Per-route values change rarely (a state, a switch),
so each series here keeps its text line, re-rendered only when its value changes; `render()`
joins them. The same values are offered to prometheus_client as an ordinary collector
(`collect`), so tests and `generate_latest` read them like any other metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _go_float

Labels = tuple[str, ...]


def _number(value: float) -> str:
    """The number as Prometheus writes it (`+Inf`, `1.0`)."""
    text: str = _go_float(value)  # type: ignore[no-untyped-call]
    return text


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(name: str, names: Sequence[str], values: Sequence[str], value: float) -> bytes:
    labels = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return f"{name}{{{labels}}} {_number(value)}\n".encode()


def _header(name: str, help_text: str, kind: str) -> bytes:
    escaped = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {escaped}\n# TYPE {name} {kind}\n".encode()


class Family:
    """A gauge or counter family: one value and one rendered line per label set."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str], *, counter: bool):
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self.counter = counter
        self.sample = f"{name}_total" if counter else name
        self._values: dict[Labels, float] = {}
        self._lines: dict[Labels, bytes] = {}

    def set(self, labels: Labels, value: float) -> None:
        if self._values.get(labels) == value:
            return
        self._values[labels] = value
        self._lines[labels] = _line(self.sample, self.labelnames, labels, value)

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.set(labels, self._values.get(labels, 0.0) + amount)

    def remove(self, labels: Labels) -> None:
        self._values.pop(labels, None)
        self._lines.pop(labels, None)

    def render(self) -> bytes:
        kind = "counter" if self.counter else "gauge"
        return _header(self.sample, self.help, kind) + b"".join(self._lines.values())

    def collect(self) -> Metric:
        family: GaugeMetricFamily | CounterMetricFamily
        if self.counter:
            family = CounterMetricFamily(self.name, self.help, labels=self.labelnames)
        else:
            family = GaugeMetricFamily(self.name, self.help, labels=self.labelnames)
        for labels, value in list(self._values.items()):
            family.add_metric(labels, value)
        return family


class HistogramFamily:
    """A histogram family: bucket counts, sum and count per label set, rendered on change."""

    def __init__(
        self, name: str, help_text: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self.bounds = (*buckets, math.inf)
        self._state: dict[Labels, tuple[list[int], float]] = {}  # per-bucket counts, sum
        self._lines: dict[Labels, bytes] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts, total = self._state.get(labels, ([0] * len(self.bounds), 0.0))
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                counts[index] += 1
                break
        self._state[labels] = (counts, total + value)
        self._lines[labels] = self._render(labels)

    def remove(self, labels: Labels) -> None:
        self._state.pop(labels, None)
        self._lines.pop(labels, None)

    def render(self) -> bytes:
        return _header(self.name, self.help, "histogram") + b"".join(self._lines.values())

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.help, labels=self.labelnames)
        for labels, (counts, total) in list(self._state.items()):
            family.add_metric(labels, self._cumulative(counts), total)
        return family

    def _cumulative(self, counts: list[int]) -> list[tuple[str, float]]:
        running, buckets = 0, []
        for bound, count in zip(self.bounds, counts, strict=True):
            running += count
            buckets.append((_number(bound), float(running)))
        return buckets

    def _render(self, labels: Labels) -> bytes:
        counts, total = self._state[labels]
        buckets = self._cumulative(counts)
        names = (*self.labelnames, "le")
        lines = [_line(f"{self.name}_bucket", names, (*labels, le), n) for le, n in buckets]
        lines.append(_line(f"{self.name}_count", self.labelnames, labels, buckets[-1][1]))
        lines.append(_line(f"{self.name}_sum", self.labelnames, labels, total))
        return b"".join(lines)


class RouteSeries(Collector):
    """The per-route families, as one prometheus_client collector and as pre-rendered text."""

    def __init__(self, families: Iterable[Family | HistogramFamily]) -> None:
        self.families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.collect()

    def render(self) -> bytes:
        return b"".join(family.render() for family in self.families)
