"""`llm-failover run --log-format json`: one JSON object per log line, for kopf's records and ours.

Each line holds `time` (ISO 8601, UTC, milliseconds), `level`, `logger`, `message`, and, when
the record has them, kopf's object context (`namespace`, `name`) and `exception` (the traceback
text). The text was redacted when the record was made (`redact.install_log_redaction`), so
a key reaches a JSON line no more than a text one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)  # kopf's per-object loggers set it
        if isinstance(ref, dict):
            for key in ("namespace", "name"):
                if ref.get(key):
                    line[key] = str(ref[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def use_json(logger: logging.Logger | None = None) -> None:
    """Every handler of the root logger (kopf's, after `kopf.configure`) writes JSON lines."""
    formatter = JsonFormatter()
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(formatter)
