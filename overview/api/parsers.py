"""The REST API's JSON parser: DRF's, with what Python's JSON reader would let through bounded, so that
a body answers 400 with a message instead of a server error: nesting (the reader recurses once a level,
and the pipeline's readers of stored configuration are no deeper), and numbers out of a float's range
(1e400 reads as infinity, which no integer field and no JSON answer can hold)."""

import codecs
import json
import math

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from delivery import jsontext

# Configuration holds nested JSON (filters, triggers, JSON Schemas of a tracking plan, which nest about
# two levels for each level of the messages they describe): room for schemas of the deepest message
# the tracking API stores (validation.MAX_DEPTH, 64), far below Python's recursion limit.
MAX_DEPTH = 200
TOO_DEEP = f"JSON parse error - the body nests objects and arrays more than {MAX_DEPTH} levels deep."


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is out of range")
    return number


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            data = json.load(
                codecs.getreader(encoding)(stream), parse_constant=_no_constant, parse_float=_finite
            )
        except ValueError as error:  # also an integer of over 4,300 digits, or text that is not UTF-8
            raise ParseError(f"JSON parse error - {error}") from None
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if jsontext.nested_deeper_than(data, MAX_DEPTH):
            raise ParseError(TOO_DEEP)
        return data
