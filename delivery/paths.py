"""Dotted paths into a message ("traits.email", "items.0.sku"), the one way triggers, filters and mapping
fields all read a value: a part names a key of an object, or (as a number) an item of a list."""

MISSING = object()  # what `lookup` returns when the message has no value at the path


def split(path: str) -> tuple[str, ...]:
    """A dotted path as its parts (compile it once when it is looked up for every event)."""
    return tuple(path.split("."))


def lookup(message: object, path: tuple[str, ...] | str) -> object:
    """The value at a path of the message (its parts, or the dotted string), or MISSING."""
    value = message
    for part in split(path) if isinstance(path, str) else path:
        if isinstance(value, dict):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value
