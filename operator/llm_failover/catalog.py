"""The provider catalog: presets (base URL, auth, probe method, error dictionary) read from data."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from llm_failover.state import ProviderState

PRESET_DIR = Path(__file__).with_name("presets")
COMMON_FILE = "_common.toml"

# An error meaning "the provider answered but refused our probe's content": the provider is up.
MODERATED = "Moderated"


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

    def over(self, base: ErrorDictionary) -> ErrorDictionary:
        """This dictionary's entries first, then `base`'s."""
        return ErrorDictionary(
            codes={**base.codes, **self.codes},
            prefixes=self.prefixes + base.prefixes,
            phrases=self.phrases + base.phrases,
        )

    @classmethod
    def from_data(
        cls, codes: Mapping[str, Any], phrases: Mapping[str, Any], origin: str
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
        return cls(codes=exact, prefixes=tuple(prefixes), phrases=tuple(found_phrases))


@dataclass(frozen=True)
class Preset:
    """One catalog entry: what `preset: <id>` fills in for a provider."""

    id: str
    title: str
    base_url: str
    probe_method: ProbeMethod
    auth: AuthScheme
    errors: ErrorDictionary
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    presets: Mapping[str, Preset]
    common: ErrorDictionary

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
    try:
        state = ProviderState(name)
    except ValueError:
        raise CatalogError(f"{origin}: unknown meaning {name!r}") from None
    if state in (ProviderState.HEALTHY, ProviderState.UNKNOWN):
        raise CatalogError(f"{origin}: {name!r} cannot be the meaning of an error")
    return Meaning(state)


def _strings(items: Any, origin: str) -> Iterable[str]:
    if not isinstance(items, list) or not all(isinstance(i, str | int) for i in items):
        raise CatalogError(f"{origin}: expected a list of strings")
    return [str(i) for i in items]


def _load_preset(path: Path) -> Preset:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    origin = path.name
    try:
        auth = data.get("auth", {})
        return Preset(
            id=str(data["id"]),
            title=str(data["title"]),
            base_url=str(data["base_url"]).rstrip("/"),
            probe_method=ProbeMethod(data.get("probe", "Models")),
            auth=AuthScheme(
                header=str(auth.get("header", "Authorization")),
                prefix=str(auth.get("prefix", "Bearer ")),
            ),
            errors=ErrorDictionary.from_data(
                data.get("codes", {}), data.get("phrases", {}), origin
            ),
            sources=tuple(str(s) for s in data.get("sources", ())),
        )
    except (KeyError, ValueError) as exc:
        raise CatalogError(f"{origin}: {exc}") from exc


def load_catalog(directory: Path = PRESET_DIR) -> Catalog:
    common_data = tomllib.loads((directory / COMMON_FILE).read_text(encoding="utf-8"))
    common = ErrorDictionary.from_data(
        common_data.get("codes", {}), common_data.get("phrases", {}), COMMON_FILE
    )
    presets = {}
    for path in sorted(directory.glob("*.toml")):
        if path.name == COMMON_FILE:
            continue
        preset = _load_preset(path)
        if preset.id != path.stem:
            raise CatalogError(f"{path.name}: id {preset.id!r} does not match the file name")
        presets[preset.id] = preset
    return Catalog(presets=presets, common=common)


@cache
def default_catalog() -> Catalog:
    """The catalog shipped with the package, read once per process."""
    return load_catalog()
