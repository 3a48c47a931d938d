"""Sending a survey link by text message. The gateway is configuration: ``YILIAN_SMS_BACKEND``
names a class with ``send(phone, text)``; the default only logs (with the number masked).
The phone number is handed to the backend and never stored."""

from __future__ import annotations

import logging
import re
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger("yilian.surveys.sms")


class SmsBackend(Protocol):
    def send(self, phone: str, text: str) -> None: ...


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


_LINK_TOKEN = re.compile(r"(/q/[A-Za-z0-9_-]{4})[A-Za-z0-9_-]+")


class LoggingSmsBackend:
    """For development and installations without a gateway: write the message to the log."""

    def send(self, phone: str, text: str) -> None:
        # Not the working link: whoever reads the log could answer in the patient's place.
        logger.info("SMS to %s: %s", mask_phone(phone), _LINK_TOKEN.sub(r"\1…", text))


def get_sms_backend() -> SmsBackend:
    backend: SmsBackend = import_string(settings.YILIAN_SMS_BACKEND)()
    return backend
