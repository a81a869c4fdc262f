"""Logging of the long-running services: one line per record, on stderr."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# httpx logs every request URL at INFO, and result URLs carry signatures; boto3 and
# urllib3 log every request.
QUIET_LOGGERS = ("httpx", "httpcore", "botocore", "boto3", "urllib3")


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
