"""The local runtime's log sink: every function's log lines and every invocation, as JSON lines on disk.

In AWS each function writes to its CloudWatch log group; locally all handlers share this process, so the
router wraps each invocation in `Logbook.invocation` and a handler on the root logger appends, while an
invocation runs on that thread:
- one `log` line per record (a Powertools logger's record as the JSON it prints, with its keys; any other
  logger's as level, logger and message), stamped with the invocation's function, request id and correlation id;
- one `invocation` line when the handler returns: function, service, start, end, duration_ms, error.

Files: LOCAL_DATA_DIR/logs/platform.jsonl, rolled to platform.1.jsonl past `max_bytes` (so at most twice that
on disk). `python -m local trace <correlation-id>` (local/trace.py) reads them back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from aws_lambda_powertools.logging.constants import LOGGER_ATTRIBUTE_POWERTOOLS_HANDLER

from agentplatform.observability import correlation_from_event
from agentplatform.topology import Function

LOG_FILE = "platform.jsonl"
MAX_BYTES = 32 * 1024 * 1024


class Logbook(logging.Handler):
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        super().__init__(level=logging.INFO)
        self.max_bytes = max_bytes
        self.folder: Path | None = None
        self._file: IO[str] | None = None
        self._write_lock = threading.Lock()
        self._local = threading.local()  # this thread's stack of running invocations (nested when in-process)

    def open(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._file = (folder / LOG_FILE).open("a", encoding="utf-8")
        logging.getLogger().addHandler(self)

    def close(self) -> None:
        logging.getLogger().removeHandler(self)
        with self._write_lock:
            if self._file:
                self._file.close()
            self._file = None
        super().close()

    @contextmanager
    def invocation(self, function: Function, context: Any, event: Any) -> Iterator[None]:
        if self._file is None:
            yield
            return
        frame = {
            "function": function.name,
            "service": function.service,
            "request_id": context.aws_request_id,
            # What lambda_entry will pick (the handler's own lines carry it too): known before the handler runs.
            "correlation_id": correlation_from_event(event, context) or context.aws_request_id,
        }
        stack = self._stack()
        stack.append(frame)
        start, started = time.time(), time.perf_counter()
        error: str | None = None
        try:
            yield
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            stack.pop()
            self._write(
                {
                    "kind": "invocation",
                    **frame,
                    "start": round(start, 6),
                    "end": round(start + time.perf_counter() - started, 6),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "error": error,
                }
            )

    def filter(self, record: logging.LogRecord) -> bool:
        # Powertools adds a filter to the root logger's handlers that drops its services' records (they print
        # through their own handler); here they are the point, so the handler's filters do not apply.
        return True

    def emit(self, record: logging.LogRecord) -> None:
        stack = self._stack()
        if not stack or record.name.startswith("local."):
            return
        try:
            line = {"kind": "log", **self._fields(record), **stack[-1], "time": round(record.created, 6)}
            self._write(line)
        except Exception:  # a log sink never breaks the handler it records
            self.handleError(record)

    def _fields(self, record: logging.LogRecord) -> dict[str, Any]:
        formatter = _powertools_formatter(record.name)
        if formatter is not None:
            fields = json.loads(formatter.format(record))
            if isinstance(fields, dict):
                return fields
        return {"level": record.levelname, "logger": record.name, "message": record.getMessage()}

    def _stack(self) -> list[dict[str, Any]]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _write(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, default=str, separators=(",", ":")) + "\n"
        with self._write_lock:
            if self._file is None or self.folder is None:
                return
            if self._file.tell() + len(text) > self.max_bytes:
                self._file.close()
                (self.folder / LOG_FILE).replace(self.folder / LOG_FILE.replace(".jsonl", ".1.jsonl"))
                self._file = (self.folder / LOG_FILE).open("a", encoding="utf-8")
            self._file.write(text)
            self._file.flush()


def _powertools_formatter(name: str) -> logging.Formatter | None:
    """The formatter of the Powertools handler that prints this logger's records (its own, or its parent's for a
    child logger such as llm_gateway.cache), or None for a plain logger."""
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        handler = getattr(logger, LOGGER_ATTRIBUTE_POWERTOOLS_HANDLER, None)
        if isinstance(handler, logging.Handler):
            return handler.formatter
        logger = logger.parent if logger.propagate else None
    return None
