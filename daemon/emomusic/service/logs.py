"""Logging to stderr in a form journald reads well: syslog priority prefixes, no timestamps
(journald adds its own) when running under systemd, plain timestamps in a terminal."""

from __future__ import annotations

import logging
import os
import sys

from emomusic.messages import redact

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class RedactingFormatter(logging.Formatter):
    """Every line, tracebacks included, loses URL credentials, whoever logged it (OpenCV's and
    paho's messages too): the last net under what the stages already redact."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JournalFormatter(RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{record.name}: {super().format(record)}"


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # python-mpd2 logs "Calling MPD connect(…)" at INFO on every (re)connection: only when debugging.
    logging.getLogger("mpd").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
