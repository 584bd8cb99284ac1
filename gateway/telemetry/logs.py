"""Log lines as text or as one JSON object a line, each carrying the id of the request it belongs to.

The request id is set by the observer middleware (gateway/http/observe.py) in a context variable, so every
line logged while a request is served names it, with no argument passed around; the same id is in the
`x-request-id` response header and in every error body. A record's structured fields (`extra={"fields": {…}}`,
e.g. the audit trail) become keys of its JSON object; text lines carry them in their message already.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
from typing import Any, Final

from gateway.config_schema import LogFormat

REQUEST_ID: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar("gateway_request_id", default=None)

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, request_id, the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({key: value for key, value in fields.items() if key not in line})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


__all__ = ["REQUEST_ID", "JsonFormatter", "LogFormat", "formatter"]


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
