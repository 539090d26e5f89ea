"""JSON on the pipeline's hot paths (request bodies, stored messages): orjson, a C codec several times
faster than the standard library's, with the standard library for what orjson refuses.

orjson refuses NaN and Infinity, numbers beyond 64 bits and lone surrogates, which Python's `json`
reads. A request body carrying them is read by `json` instead, and a NaN or Infinity in it becomes
NOT_FINITE, so that `dumps` refuses the one message holding it (ValueError) rather than storing null.
"""

import json
import math

import orjson


class _NotFinite:
    def __repr__(self) -> str:
        return "NaN"


NOT_FINITE = _NotFinite()


def _finite(text: str) -> float | _NotFinite:
    number = float(text)
    return number if math.isfinite(number) else NOT_FINITE


def loads(data: bytes | str) -> object:
    """Parse JSON text; raises ValueError (json.JSONDecodeError) when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, parse_constant=lambda _: NOT_FINITE, parse_float=_finite)


def _refuse(value: object) -> object:
    if value is NOT_FINITE:
        raise ValueError("NaN or Infinity")
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON; raises ValueError for NaN or Infinity. A lone surrogate comes out escaped
    (\\udXXX), for the caller to find."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is one: NOT_FINITE, a 65-bit number, a lone surrogate
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_refuse).encode()
