"""The provider catalog: presets (base URL, auth, probe method, error dictionary) read from data."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from llm_failover.chatprobe import DEFAULT_PROBE, ChatProbe, Thinking, TokenField
from llm_failover.state import ProviderState

PRESET_DIR = Path(__file__).with_name("presets")
COMMON_FILE = "_common.toml"

# An error meaning "the provider answered but refused our probe's content": the provider is up.
MODERATED = "Moderated"

HINT_LIMIT = 100
"""Characters a hint may take: it is appended to a status message that holds 200 in all."""

_PRESET_KEYS = frozenset(
    {
        "id", "title", "base_url", "base_url_note", "probe", "auth", "sources", "notes",
        "codes", "phrases", "hints", "chat",
    }
)  # fmt: skip
_COMMON_KEYS = frozenset({"codes", "phrases", "hints"})
_CHAT_KEYS = frozenset({"token_field", "tokens", "thinking", "reasoning_effort"})
_E = TypeVar("_E", bound=StrEnum)


class ProbeMethod(StrEnum):
    MODELS = "Models"  # GET {baseURL}/models: costs no tokens
    CHAT = "Chat"  # a one-token chat completion: for providers without a usable /models


@dataclass(frozen=True)
class AuthScheme:
    """How the API key travels: `Authorization: Bearer <key>` for nearly everyone."""

    header: str = "Authorization"
    prefix: str = "Bearer "

    def headers(self, key: str) -> dict[str, str]:
        return {self.header: f"{self.prefix}{key}"}


@dataclass(frozen=True)
class Meaning:
    """What an error code or phrase means for routing; `moderated` marks a content refusal."""

    state: ProviderState
    moderated: bool = False


@dataclass(frozen=True)
class ErrorDictionary:
    """Error codes (exact or `Prefix*`) and body phrases, each mapped to a provider state.

    Codes and phrases are matched case-insensitively. Numeric codes belong in a preset's own
    dictionary only: Zhipu's 1002 is an auth error where MiniMax's 1002 is a rate limit.
    """

    codes: Mapping[str, Meaning] = field(default_factory=dict)
    prefixes: tuple[tuple[str, Meaning], ...] = ()
    phrases: tuple[tuple[str, Meaning], ...] = ()
    # What a human should check when a probe lands in a state, e.g. that keys are region-bound:
    # the answer itself cannot tell a key from the other region's host from a bad key.
    hints: Mapping[ProviderState, str] = field(default_factory=dict)

    def code(self, code: str) -> Meaning | None:
        key = code.strip().lower()
        if key in self.codes:
            return self.codes[key]
        for prefix, meaning in self.prefixes:
            if key.startswith(prefix):
                return meaning
        return None

    def phrase(self, text: str) -> Meaning | None:
        lowered = text.lower()
        for phrase, meaning in self.phrases:
            if phrase in lowered:
                return meaning
        return None

    def hint(self, state: ProviderState) -> str:
        """The hint for a state, or "" when there is none."""
        return self.hints.get(state, "")

    def over(self, base: ErrorDictionary) -> ErrorDictionary:
        """This dictionary's entries first, then `base`'s."""
        return ErrorDictionary(
            codes={**base.codes, **self.codes},
            prefixes=self.prefixes + base.prefixes,
            phrases=self.phrases + base.phrases,
            hints={**base.hints, **self.hints},
        )

    @classmethod
    def from_data(
        cls,
        codes: Mapping[str, Any],
        phrases: Mapping[str, Any],
        origin: str,
        hints: Mapping[str, Any] | None = None,
    ) -> ErrorDictionary:
        exact: dict[str, Meaning] = {}
        prefixes: list[tuple[str, Meaning]] = []
        for meaning_name, items in codes.items():
            meaning = _meaning(meaning_name, origin)
            for item in _strings(items, f"{origin}: codes.{meaning_name}"):
                key = item.lower()
                if key.endswith("*"):
                    prefixes.append((key[:-1], meaning))
                else:
                    exact[key] = meaning
        found_phrases = [
            (item.lower(), _meaning(meaning_name, origin))
            for meaning_name, items in phrases.items()
            for item in _strings(items, f"{origin}: phrases.{meaning_name}")
        ]
        found_hints = {
            _hint_state(name, origin): _hint(text, f"{origin}: hints.{name}")
            for name, text in (hints or {}).items()
        }
        return cls(
            codes=exact,
            prefixes=tuple(prefixes),
            phrases=tuple(found_phrases),
            hints=found_hints,
        )


Listing = tuple[tuple[str, tuple[str, ...]], ...]
"""Entries as a data file declares them, for documentation: (meaning, items) in file order."""


@dataclass(frozen=True)
class Preset:
    """One catalog entry: what `preset: <id>` fills in for a provider."""

    id: str
    title: str
    # None where each account has its own host (Azure: one per resource): `baseURL` stays required,
    # and `base_url_note` says why.
    base_url: str | None
    probe_method: ProbeMethod
    auth: AuthScheme
    errors: ErrorDictionary
    sources: tuple[str, ...]
    base_url_note: str = ""
    notes: str = ""  # what the research could not find, for the catalog's documentation
    codes: Listing = ()
    phrases: Listing = ()
    chat: ChatProbe = DEFAULT_PROBE  # how `Chat` probes ask its models: the [chat] table


@dataclass(frozen=True)
class Catalog:
    presets: Mapping[str, Preset]
    common: ErrorDictionary
    common_codes: Listing = ()
    common_phrases: Listing = ()

    def get(self, preset_id: str) -> Preset | None:
        return self.presets.get(preset_id)

    def dictionary(self, preset: Preset | None) -> ErrorDictionary:
        """A preset's own codes first, then the codes every provider shares."""
        return self.common if preset is None else preset.errors.over(self.common)


class CatalogError(ValueError):
    """A preset file is malformed: a packaging bug, reported with the file name."""


def _meaning(name: str, origin: str) -> Meaning:
    if name == MODERATED:
        return Meaning(ProviderState.HEALTHY, moderated=True)
    return Meaning(_error_state(name, origin, "meaning", "cannot be the meaning of an error"))


def _hint_state(name: str, origin: str) -> ProviderState:
    return _error_state(name, f"{origin}: hints", "state", "is not a state a hint can explain")


def _error_state(name: str, origin: str, what: str, refused: str) -> ProviderState:
    """A state an error can put a provider in: neither Healthy nor Unknown."""
    try:
        state = ProviderState(name)
    except ValueError:
        raise CatalogError(f"{origin}: unknown {what} {name!r}") from None
    if state in (ProviderState.HEALTHY, ProviderState.UNKNOWN):
        raise CatalogError(f"{origin}: {name!r} {refused}")
    return state


def _hint(text: Any, origin: str) -> str:
    if not isinstance(text, str) or not text.strip() or "\n" in text:
        raise CatalogError(f"{origin}: expected one line of text")
    if len(text) > HINT_LIMIT:
        raise CatalogError(f"{origin}: longer than {HINT_LIMIT} characters")
    return text.strip()


def _strings(items: Any, origin: str) -> Iterable[str]:
    if not isinstance(items, list) or not all(isinstance(i, str | int) for i in items):
        raise CatalogError(f"{origin}: expected a list of strings")
    return [str(i) for i in items]


def _listing(table: Any, origin: str) -> Listing:
    if not isinstance(table, dict):
        raise CatalogError(f"{origin}: expected a table")
    return tuple(
        (str(name), tuple(_strings(items, f"{origin}.{name}"))) for name, items in table.items()
    )


def _chat(table: Any, origin: str) -> ChatProbe:
    """A preset's `[chat]` table: how its models are probed (defaults for the keys it omits)."""
    if not isinstance(table, dict):
        raise CatalogError(f"{origin}: expected a table")
    _only(table, _CHAT_KEYS, origin)
    tokens = table.get("tokens", 1)
    if not isinstance(tokens, int) or isinstance(tokens, bool):
        raise CatalogError(f"{origin}.tokens: expected an integer")
    effort = table.get("reasoning_effort", "")
    if not isinstance(effort, str):
        raise CatalogError(f"{origin}.reasoning_effort: expected a string")
    try:
        return ChatProbe(
            token_field=_choice(
                TokenField, table.get("token_field", "auto"), f"{origin}.token_field"
            ),
            tokens=tokens,
            thinking=_choice(Thinking, table.get("thinking", "default"), f"{origin}.thinking"),
            reasoning_effort=effort,
        )
    except ValueError as exc:
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"{origin}: {exc}") from exc


def _choice(cls: type[_E], value: Any, origin: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        known = ", ".join(repr(e.value) for e in cls)
        raise CatalogError(f"{origin}: {value!r} is not one of {known}") from None


def _only(data: Mapping[str, Any], allowed: frozenset[str], origin: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CatalogError(f"{origin}: unknown key(s) {', '.join(unknown)}")


def _load_preset(path: Path) -> Preset:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    origin = path.name
    _only(data, _PRESET_KEYS, origin)
    try:
        auth = data.get("auth", {})
        base_url = data.get("base_url")
        base_url_note = str(data.get("base_url_note", ""))
        if base_url is None and not base_url_note:
            raise CatalogError(f"{origin}: no base_url, and no base_url_note saying why")
        codes = data.get("codes", {})
        phrases = data.get("phrases", {})
        return Preset(
            id=str(data["id"]),
            title=str(data["title"]),
            base_url=None if base_url is None else str(base_url).rstrip("/"),
            probe_method=ProbeMethod(data.get("probe", "Models")),
            auth=AuthScheme(
                header=str(auth.get("header", "Authorization")),
                prefix=str(auth.get("prefix", "Bearer ")),
            ),
            errors=ErrorDictionary.from_data(codes, phrases, origin, data.get("hints", {})),
            sources=tuple(str(s) for s in data.get("sources", ())),
            base_url_note=base_url_note,
            notes=" ".join(str(data.get("notes", "")).split()),
            codes=_listing(codes, f"{origin}: codes"),
            phrases=_listing(phrases, f"{origin}: phrases"),
            chat=_chat(data.get("chat", {}), f"{origin}: chat"),
        )
    except (KeyError, ValueError) as exc:
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"{origin}: {exc}") from exc


def _load_common(path: Path) -> Catalog:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    _only(data, _COMMON_KEYS, COMMON_FILE)
    codes = data.get("codes", {})
    phrases = data.get("phrases", {})
    listed = _listing(codes, f"{COMMON_FILE}: codes")
    for meaning, items in listed:
        numeric = [item for item in items if item.strip().isdigit()]
        if numeric:
            raise CatalogError(
                f"{COMMON_FILE}: codes.{meaning}: numeric code(s) {', '.join(numeric)} collide "
                "between providers: put them in the provider's own preset"
            )
    return Catalog(
        presets={},
        common=ErrorDictionary.from_data(codes, phrases, COMMON_FILE, data.get("hints", {})),
        common_codes=listed,
        common_phrases=_listing(phrases, f"{COMMON_FILE}: phrases"),
    )


def load_catalog(directory: Path = PRESET_DIR) -> Catalog:
    common = _load_common(directory / COMMON_FILE)
    presets = {}
    for path in sorted(directory.glob("*.toml")):
        if path.name == COMMON_FILE:
            continue
        preset = _load_preset(path)
        if preset.id != path.stem:
            raise CatalogError(f"{path.name}: id {preset.id!r} does not match the file name")
        presets[preset.id] = preset
    return Catalog(
        presets=presets,
        common=common.common,
        common_codes=common.common_codes,
        common_phrases=common.common_phrases,
    )


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with the package, read once per process."""
    return load_catalog()
