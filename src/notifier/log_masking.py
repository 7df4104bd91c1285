"""Personal data out of the logs: phone numbers and email addresses are masked in every log
line, whoever wrote it (our code, aiokafka, uvicorn), keeping just enough to tell them
apart when debugging — a number's last two digits, an address's domain."""

from __future__ import annotations

import logging
import re

# Numbers as we store them (E.164) and as people write them ("+1 (555) 555-0123"). The
# leading "+" is required: offsets, epoch milliseconds and ids are bare digit runs.
_PHONE = re.compile(r"\+\d[\d\s().-]{6,}\d")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-']+@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_personal_data(text: str) -> str:
    text = _EMAIL.sub(lambda found: f"***@{found.group(1)}", text)
    return _PHONE.sub(_masked_phone, text)


def _masked_phone(found: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", found.group(0))
    return f"+***{digits[-2:]}"


class PersonalDataFilter(logging.Filter):
    """Masks the formatted message of every record (and its exception text) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_personal_data(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_personal_data(record.exc_text)
        return True
