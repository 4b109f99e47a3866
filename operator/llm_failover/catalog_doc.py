"""The provider catalog as Markdown: docs/providers.md is this module's output, never hand-edited.

Regenerate it after changing a preset:

    python -m llm_failover.catalog_doc > docs/providers.md
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

from llm_failover.catalog import Catalog, Listing, Preset, ProbeMethod, default_catalog
from llm_failover.chatprobe import DEFAULT_PROBE, REASONING_TOKENS
from llm_failover.classifier import HttpAnswer, classify

REGENERATE = "python -m llm_failover.catalog_doc > docs/providers.md"

_ISSUE = re.compile(r"^([\w.-]+/[\w.-]+)#(\d+)$")
_REPO_PATH = re.compile(r"^([\w.-]+/[\w.-]+) (\S.*)$")
_FALLBACK_STATUSES = (302, 400, 401, 402, 403, 404, 408, 409, 429, 451, 500, 503)

_INTRO = f"""\
# Provider presets

<!-- Generated from operator/llm_failover/presets/*.toml: do not edit by hand.
     Regenerate with `{REGENERATE}`. -->

A provider in an `LLMRoute` may name a `preset` ([spec](reference.md#spec)). The preset fills in
the base URL (unless the provider gives `baseURL`), the header the API key travels in, the probe
method (`Models`: `GET {{baseURL}}/models`, no tokens; `Chat`: a chat completion of a token or a
few, for providers without a usable `/models`, asked as the preset's `[chat]` table says: see
below) and the error dictionary that turns a probe's answer into a state
([states](reference.md#states)).

How an answer is read: error codes found in the body (`error.code`, `error.type`, `base_resp`,
`header.code`, Tencent's `Response.Error.Code`, relays' nested `error.metadata.raw`) are looked up
first, then phrases in the body's messages (plain-text and HTML bodies included), and only then the
HTTP status: Zhipu answers 429 for an empty balance, MiniMax 200 with the error inside `base_resp`,
Qianfan 401 for an unknown model. A preset's own entries come before the shared ones below.
Codes and phrases match case-insensitively; `X*` matches every code starting with `X`. Numeric
codes live only in a provider's own preset, because they collide (Zhipu's 1002 is a bad key,
MiniMax's 1002 a rate limit). `Moderated` is a content refusal: the provider answered, so the probe
counts as `Healthy`, with a message saying the provider is reachable. A hint is appended to the
status message when a probe lands in its state; the region-bound hints matter because a key sent
to the other region's host gets a plain 401 that looks like a bad key.

Base URLs, probe methods and error bodies come from public documentation, issue threads and
gateway source code (one-api, new-api, higress, LobeChat, models.dev); each preset lists its
sources. "n/f" means not found in them: such answers are classified by the shared codes and the
HTTP status until someone captures the real bodies.
"""


def render_markdown(catalog: Catalog) -> str:
    presets = [catalog.presets[key] for key in sorted(catalog.presets)]
    lines = [_INTRO, "## Presets", ""]
    lines += _table(
        ("Preset", "Title", "Base URL", "API key header", "Probe", "Codes → state", "Sources"),
        (
            (
                f"`{p.id}`",
                p.title,
                _base_url(p),
                _auth(p),
                _probe(p.probe_method),
                _dictionary(p.codes, p.phrases),
                "<br>".join(_source(s) for s in p.sources),
            )
            for p in presets
        ),
    )
    lines += ["", "## How `Chat` probes ask", ""]
    lines += _chat_section(presets)
    lines += ["", "## Hints and research gaps", ""]
    for preset in presets:
        notes = [f"hint ({state}): {text}" for state, text in preset.errors.hints.items()]
        if preset.notes:
            notes.append(f"gap: {preset.notes}")
        if notes:
            lines.append(f"- `{preset.id}`: " + "; ".join(_cell(n) for n in notes))
    lines += ["", "## Shared by every preset (`_common.toml`)", ""]
    lines += _table(("State", "Codes", "Phrases"), _shared(catalog))
    lines += [
        "",
        "## HTTP status, when no code or phrase matched",
        "",
        "A 2xx answer is `Healthy` only if its body is what the probe asked for (a model list, a "
        "chat completion); anything else is a `ServerError`. Unexplained 3xx and 4xx answers count "
        "as `ServerError` too: soft, so a threshold of them is needed to eject.",
        "",
    ]
    lines += _table(("Status", "State"), _fallbacks(catalog))
    return "\n".join(lines) + "\n"


_CHAT_INTRO = f"""\
A `Chat` probe posts `{{"model", "messages": [{{"role": "user", "content": "ping"}}],
<token field>: N, "stream": false}}`. A preset's `[chat]` table says how (every key optional):

- `token_field`: `auto` (the default: `max_completion_tokens` for OpenAI reasoning model names,
  `o1`, `o3`, `o4`, `gpt-5` and their variants after any `vendor/` prefix; `max_tokens` for the
  rest), `max_tokens` or `max_completion_tokens`.
- `tokens`: 1 to 4096, default 1. An OpenAI reasoning model name is sent at least
  {REASONING_TOKENS} `max_completion_tokens`.
- `thinking`: `default` (nothing sent), `enable_thinking=false` (`"enable_thinking": false`) or
  `thinking.type=disabled` (`"thinking": {{"type": "disabled"}}`); never sent to a model whose
  name has a `thinking` segment (`qwen3-235b-a22b-thinking-2507`): those refuse it.
- `reasoning_effort`: `none`, `minimal`, `low`, `medium` or `high`; unset by default.

A preset without the table probes with `{DEFAULT_PROBE.describe()}` (token field: tokens). A 4xx
answer (not 401, 402, 403, 404, 407, 408, 429 or 451) that refuses only the probe's own
parameters (a 400 "Unsupported parameter: 'max_tokens'", "max_tokens value 1 is
below minimum", "enable_thinking must be set to false for non-streaming calls", a reasoning model's
"Could not finish the message because max_tokens… was reached") comes after the key and the model
were accepted: it counts as `Healthy`, with a message saying how the probe should ask. Any
code or phrase above that names a real failure (a key, a balance, a model, a region) wins over it.

A provider of a route can say it itself, over its preset's table, in
`spec.providers[].probe.chat` (`tokenField`, `tokens`, `thinking`, `reasoningEffort`: the same
values), e.g. for a model the presets do not know:

```yaml
probe:
  method: Chat
  chat: {{tokenField: max_completion_tokens, tokens: 16}}
```
"""


def _chat_section(presets: list[Preset]) -> list[str]:
    lines = _CHAT_INTRO.splitlines()
    lines += ["", "Presets that probe otherwise than that:", ""]
    lines += _table(
        ("Preset", "Chat probe (token field: tokens, switches)"),
        (
            (f"`{p.id}`", f"`{_cell(p.chat.describe())}`")
            for p in presets
            if p.chat != DEFAULT_PROBE
        ),
    )
    return lines


def _table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _base_url(preset: Preset) -> str:
    if preset.base_url is None:
        return _cell(f"none: `baseURL` required ({preset.base_url_note})")
    return f"`{preset.base_url}`"


def _auth(preset: Preset) -> str:
    return f"`{preset.auth.header}: {preset.auth.prefix}<key>`"


def _probe(method: ProbeMethod) -> str:
    return "`Models`" if method is ProbeMethod.MODELS else "`Chat`"


def _items(items: Iterable[str], quote: bool) -> str:
    return ", ".join(_cell(f"“{i}”" if quote else f"`{i}`") for i in items)


def _dictionary(codes: Listing, phrases: Listing) -> str:
    merged: dict[str, list[str]] = {}
    for meaning, items in codes:
        merged.setdefault(meaning, []).append(_items(items, quote=False))
    for meaning, items in phrases:
        merged.setdefault(meaning, []).append(_items(items, quote=True))
    if not merged:
        return "shared only"
    return "<br>".join(f"{meaning}: {', '.join(parts)}" for meaning, parts in merged.items())


def _shared(catalog: Catalog) -> Iterable[tuple[str, str, str]]:
    codes = dict(catalog.common_codes)
    phrases = dict(catalog.common_phrases)
    for meaning in dict.fromkeys([*codes, *phrases]):
        yield (
            meaning,
            _items(codes.get(meaning, ()), quote=False),
            _items(phrases.get(meaning, ()), quote=True),
        )


def _fallbacks(catalog: Catalog) -> Iterable[tuple[str, str]]:
    for status in _FALLBACK_STATUSES:
        result = classify(HttpAnswer(status, b""), errors=catalog.common, method=ProbeMethod.CHAT)
        yield str(status), f"`{result.state}`"


def _source(source: str) -> str:
    if source.startswith(("https://", "http://")):
        return f"[{_cell(source.split('://', 1)[1])}]({source})"
    issue = _ISSUE.match(source)
    if issue:
        repo, number = issue.groups()
        return f"[{source}](https://github.com/{repo}/issues/{number})"
    repo_path = _REPO_PATH.match(source)
    if repo_path:
        repo, path = repo_path.groups()
        return f"[{repo}](https://github.com/{repo}) `{_cell(path)}`"
    return f"`{_cell(source)}`"


def main() -> None:
    sys.stdout.write(render_markdown(default_catalog()))


if __name__ == "__main__":
    main()
