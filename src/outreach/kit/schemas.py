"""Pydantic types holding request fields to what the OpenAPI document says they are.

FastAPI validates a parsed JSON body, and query strings, in pydantic's lax
Python mode: ``false`` passes as the integer 0, ``1`` as ``true``, and a number
(or ``"0.5"`` in a query) as a Unix timestamp for a date-time. The document
promises an integer, a boolean, an RFC 3339 date-time, and the contract fuzzing
(``tests/contract``) sends exactly such mismatches. So:

* integers and booleans in JSON bodies are pydantic's ``StrictInt`` /
  ``StrictBool`` (not in query strings, which are text and parsed from it);
* date-times, in bodies and queries, are :data:`IsoDateTime`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _date_time_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _NUMBER.fullmatch(value):
        raise ValueError("give a date-time with its offset, such as 2026-11-25T09:00:00+05:30")
    return value


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
"""An RFC 3339 date-time with an offset; never a Unix timestamp."""
