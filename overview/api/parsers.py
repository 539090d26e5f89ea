"""The REST API's JSON parser: DRF's, with nesting bounded, so that a deeply nested body answers 400 with
a message instead of a RecursionError (Python's JSON parser recurses once a level) or a stored value
that the pipeline's readers would choke on."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from delivery import jsontext

# Configuration holds nested JSON (filters, triggers, JSON Schemas of a tracking plan, which nest about
# two levels for each level of the messages they describe): room for schemas of the deepest message
# the tracking API stores (validation.MAX_DEPTH, 64), far below Python's recursion limit.
MAX_DEPTH = 200
TOO_DEEP = f"JSON parse error - the body nests objects and arrays more than {MAX_DEPTH} levels deep."


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if jsontext.nested_deeper_than(data, MAX_DEPTH):
            raise ParseError(TOO_DEEP)
        return data
