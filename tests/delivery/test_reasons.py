"""Reason codes: one enumeration, every member explained by the catalogue and every catalogue entry a
member, and no producer in the pipeline that records a code by spelling it as a bare string."""

import ast
import re
from pathlib import Path

from delivery.catalogue import CATALOGUE
from delivery.reasons import STATUS_REASONS, Reason
from delivery.steps import Step

PIPELINE = Path(__file__).resolve().parents[2] / "delivery"
# The enumeration itself, and the tools around the pipeline that record nothing.
NOT_PRODUCERS = {"reasons.py", "sandbox.py"}
VALUES = {str(reason) for reason in Reason}


def producer_modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PIPELINE)): ast.parse(path.read_text(), str(path))
        for path in sorted(PIPELINE.rglob("*.py"))
        if path.name not in NOT_PRODUCERS and not {"migrations", "management"} & set(path.parts)
    }


def _mentions_reason(annotation: ast.expr | None) -> bool:
    return annotation is not None and re.search(r"\bReason\b", ast.unparse(annotation)) is not None


def reason_sinks(trees) -> dict[str, tuple[set[int], set[str]]]:
    """Callable name -> (positions, keywords) of its parameters annotated with Reason: dataclass fields
    (positional in field order), functions and methods (self aside), classes by their __init__."""
    sinks: dict[str, tuple[set[int], set[str]]] = {}

    def add(name: str, params: list[tuple[str, ast.expr | None]]) -> None:
        positions, keywords = sinks.setdefault(name, (set(), set()))
        for position, (param, annotation) in enumerate(params):
            if _mentions_reason(annotation):
                positions.add(position)
                keywords.add(param)

    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = [(a.arg, a.annotation) for a in [*node.args.posonlyargs, *node.args.args]]
                if args and args[0][0] in ("self", "cls"):
                    args = args[1:]
                add(node.name, args)
                for keyword in node.args.kwonlyargs:
                    if _mentions_reason(keyword.annotation):
                        sinks.setdefault(node.name, (set(), set()))[1].add(keyword.arg)
            elif isinstance(node, ast.ClassDef):
                fields = [
                    (item.target.id, item.annotation)
                    for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                ]
                init = next(
                    (i for i in node.body if isinstance(i, ast.FunctionDef) and i.name == "__init__"), None
                )
                if init is not None:
                    add(node.name, [(a.arg, a.annotation) for a in init.args.args[1:]])
                else:
                    add(node.name, fields)
    return sinks


def _bare(node: ast.expr | None) -> str | None:
    """The string when the node is a non-empty string literal ("" stands for no reason)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
        return node.value
    return None


def _enum_values(tree: ast.Module) -> set[int]:
    """ids of the literals that define members of another enumeration (ErrorType, Step)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any("Enum" in ast.unparse(base) for base in node.bases):
            ids.update(id(item.value) for item in node.body if isinstance(item, ast.Assign))
    return ids


def _docstrings(tree: ast.Module) -> set[int]:
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def bare_reasons(trees: dict[str, ast.Module], sinks) -> list[str]:
    """Every place a producer spells a reason code as a string: a literal equal to a Reason's value, or
    any literal where a Reason goes (an annotated parameter or field, a function returning one, a
    reason_code attribute)."""
    found = []
    for module, tree in trees.items():
        skipped = _enum_values(tree) | _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in VALUES and id(node) not in skipped:
                found.append(f"{module}:{node.lineno}: {node.value!r} is a Reason: use the member")
            if isinstance(node, ast.Call):
                func = node.func
                name = (
                    func.id
                    if isinstance(func, ast.Name)
                    else func.attr
                    if isinstance(func, ast.Attribute)
                    else ""
                )
                positions, keywords = sinks.get(name, (set(), set()))
                keywords = keywords | {"reason_code", "reason"}
                candidates = [arg for i, arg in enumerate(node.args) if i in positions]
                candidates += [kw.value for kw in node.keywords if kw.arg in keywords]
                found += [
                    f"{module}:{arg.lineno}: {_bare(arg)!r} given as a reason to {name}()"
                    for arg in candidates
                    if _bare(arg)
                ]
            if isinstance(node, ast.FunctionDef) and _mentions_reason(node.returns):
                for returned in ast.walk(node):
                    if not isinstance(returned, ast.Return) or returned.value is None:
                        continue
                    value = returned.value
                    first = value.elts[0] if isinstance(value, ast.Tuple) and value.elts else value
                    if _bare(first):
                        found.append(f"{module}:{returned.lineno}: {node.name}() returns {_bare(first)!r}")
            if isinstance(node, ast.Assign) and _bare(node.value):
                names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in node.targets]
                if {"reason_code", "reason"} & set(names):
                    found.append(f"{module}:{node.lineno}: {node.value.value!r} assigned as a reason")
    return sorted(set(found))


def test_every_reason_is_explained_by_the_catalogue():
    catalogued = {code for _, code in CATALOGUE}

    assert set(Reason) - catalogued == set()


def test_every_catalogue_entry_is_keyed_by_a_reason():
    assert [(step, code) for step, code in CATALOGUE if not isinstance(code, Reason)] == []
    assert {reason.code for reason in CATALOGUE.values()} <= set(Reason)


def test_reason_values_are_the_recorded_codes_unchanged():
    assert Reason.BAD_REQUEST_BODY == "bad_request" and Reason.BAD_REQUEST == "BAD_REQUEST"
    assert Reason.HTTP_429 == "429" and Reason.NO_MATCHING_MAPPING == "NO_MATCHING_MAPPING"
    assert sorted(STATUS_REASONS) == [307, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504]
    assert CATALOGUE[(Step.FAILED_DELIVERY, "429")].code is Reason.HTTP_429


def test_no_producer_records_a_reason_as_a_bare_string():
    trees = producer_modules()

    assert bare_reasons(trees, reason_sinks(trees.values())) == []


def test_the_scan_catches_a_new_code_spelled_as_a_string():
    trees = producer_modules()
    sinks = reason_sinks(trees.values())
    added = ast.parse(
        "decisions.append(Decision(mapping.id, FILTERED, 'A_NEW_CODE', 'why'))\n"
        "error = Error(status=None, error_type=kind, error_message='m', reason_code='ANOTHER_CODE')\n"
        "tally.add(event.received_at, at, Step.FILTERED_AT_SOURCE, 'third_code')\n"
        "rejected = Rejection('fourth_code', 'what', raw)\n"
        "def _first_problem(message) -> tuple[Reason, str] | None:\n"
        "    return 'fifth_code', 'what'\n"
        "failure = TransportFailure('ETIMEDOUT', True, 'slow')\n"
    )

    assert bare_reasons({"new.py": added}, sinks) == [
        "new.py:1: 'A_NEW_CODE' given as a reason to Decision()",
        "new.py:2: 'ANOTHER_CODE' given as a reason to Error()",
        "new.py:3: 'third_code' given as a reason to add()",
        "new.py:4: 'fourth_code' given as a reason to Rejection()",
        "new.py:6: _first_problem() returns 'fifth_code'",
        "new.py:7: 'ETIMEDOUT' given as a reason to TransportFailure()",
        "new.py:7: 'ETIMEDOUT' is a Reason: use the member",
    ]
