"""JSON on the pipeline's hot paths (request bodies, stored messages): orjson, a C codec several times
faster than the standard library's, with the standard library for what orjson refuses.

orjson refuses NaN and Infinity, numbers beyond a float's range and lone surrogates, which Python's
`json` reads (an integer beyond 64 bits it reads as the nearest float, as a JavaScript client would
have sent it). A request body carrying them is read by `json` instead: a NaN or Infinity in it becomes
NOT_FINITE, and a number no float or Python int can hold (1e400, an integer of over 4,300 digits)
becomes OUT_OF_RANGE, so that `dumps` refuses the one message holding it (ValueError) rather than
storing null or refusing the whole body.

Nesting: orjson reads at most 1,024 levels and writes at most 254; Python's `json` recurses once a
level and hits the interpreter's recursion limit near 1,000. `dumps` can refuse what nests deeper
than a limit (TooDeep) before either is tried, and `cut` makes any value shallow enough to store.
"""

import json
import math

import orjson


class _Unstorable:
    def __init__(self, shown: str, problem: str) -> None:
        self.shown, self.problem = shown, problem

    def __repr__(self) -> str:
        return self.shown


NOT_FINITE = _Unstorable("NaN", "NaN or Infinity")
OUT_OF_RANGE = _Unstorable("1e400", "a number out of range")


class TooDeep(ValueError):
    """The value nests objects and arrays deeper than the limit asked for."""


def _finite(text: str) -> float | _Unstorable:
    number = float(text)
    return number if math.isfinite(number) else OUT_OF_RANGE


def _integer(text: str) -> int | _Unstorable:
    try:
        return int(text)
    except ValueError:  # over sys.get_int_max_str_digits() digits
        return OUT_OF_RANGE


def loads(data: bytes | str) -> object:
    """Parse JSON text; raises ValueError (json.JSONDecodeError) when it is not JSON, RecursionError
    when it nests too deeply for Python's parser (orjson's limit is 1,024 levels)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data, parse_constant=lambda _: NOT_FINITE, parse_float=_finite, parse_int=_integer)


def _refuse(value: object) -> object:
    if isinstance(value, _Unstorable):
        raise ValueError(value.problem)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: object, max_depth: int | None = None) -> bytes:
    """Compact UTF-8 JSON; raises ValueError for NaN, Infinity or a number out of range, TooDeep when
    objects and arrays nest more than `max_depth` levels. A lone surrogate comes out escaped
    (\\udXXX), for the caller to find."""
    try:
        data = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is one: NOT_FINITE, a 65-bit number, a lone surrogate,
        # or more than 254 levels
        if max_depth is not None and nested_deeper_than(value, max_depth):
            raise TooDeep(max_depth) from None
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_refuse).encode()
    # Counting brackets is cheap; only a value with more of them than the limit is walked.
    if max_depth is None:
        return data
    if data.count(b"{") + data.count(b"[") > max_depth and nested_deeper_than(value, max_depth):
        raise TooDeep(max_depth)
    return data


def nested_deeper_than(value: object, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels in `value` (itself level 1). Walks level
    by level, never recursing, and stops below the limit."""
    level = [value] if type(value) in (dict, list) else []
    for _ in range(limit):
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        if not below:
            return False
        level = below
    return bool(level)


def cut(value: object, depth: int, mark: str) -> object:
    """`value` with what nests deeper than `depth` levels replaced by `mark` (recursing at most `depth`
    calls deep)."""
    if not isinstance(value, dict | list):
        return value
    if depth <= 0:
        return mark
    if isinstance(value, dict):
        return {key: cut(item, depth - 1, mark) for key, item in value.items()}
    return [cut(item, depth - 1, mark) for item in value]
