"""PyYAML's syntax errors in plain words, at the line the user got wrong.

PyYAML reports where its parser gave up, in its grammar's words
(``expected <block end>, but found '<block mapping start>'``), often one
line after the slip: a key indented 3 spaces among keys indented 4 is
reported at the next, correct line. ``explain`` reads the text around the
error, decides which line breaks the layout and says what is wrong with it.
Pure: text and error in, one message out (None: nothing better to say than
PyYAML).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass

import yaml

__all__ = ["explain"]

# "key:" or "key: value" after optional "- " item markers; the key is a
# plain word run, or quoted.
_KEY = re.compile(r"""(?P<key>"[^"]*"|'[^']*'|[^\s#'"{\[][^#]*?)\s*:(?=\s|$)""")
_ITEM = re.compile(r"(-\s+)+")


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based
    col: int  # where the content starts, after any "- " item markers
    item: bool  # the line starts with "- "
    text: str  # content, without the indentation
    key: str | None  # the mapping key this line starts with, if any
    has_value: bool  # "key: value" (True) or "key:" alone (False)
    colon: int | None  # 0-based column of the key's colon


def _lines(text: str) -> list[_Line]:
    out: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        content = raw.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        col = len(raw) - len(content)
        item = _ITEM.match(content)
        if item:
            col += item.end()
            content = content[item.end() :]
        m = _KEY.match(content)
        key = m.group("key").strip("'\"") if m else None
        rest = content[m.end() :].strip() if m else ""
        has_value = bool(rest) and not rest.startswith("#")
        colon = col + m.end() - 1 if m else None
        out.append(_Line(number, col, bool(item), content.rstrip(), key, has_value, colon))
    return out


def _at(lines: list[_Line], number: int) -> tuple[_Line | None, _Line | None]:
    """The content line ``number`` and the content line before it."""
    for i, line in enumerate(lines):
        if line.number == number:
            return line, lines[i - 1] if i else None
    return None, None


def _unit(lines: list[_Line], suspects: tuple[_Line, ...]) -> int:
    """The file's indentation step, how far a key's children usually go in,
    leaving out the lines under suspicion."""
    steps = Counter(
        b.col - a.col
        for a, b in itertools.pairwise(lines)
        if a.key is not None and not a.has_value and b.col > a.col and b not in suspects
    )
    return steps.most_common(1)[0][0] if steps else 2


def _name(line: _Line) -> str:
    shown = line.key if line.key is not None else line.text
    return repr(shown if len(shown) <= 30 else shown[:27] + "...")


def _spaces(n: int) -> str:
    return "1 space" if n == 1 else f"{n} spaces"


def _where(line: _Line, columns: bool) -> str:
    # After "- " the indentation is no longer a count of spaces: columns.
    return f"starts at column {line.col + 1}" if columns else f"is indented {_spaces(line.col)}"


def _where_short(line: _Line, columns: bool) -> str:
    return f"at column {line.col + 1}" if columns else _spaces(line.col)


def _misaligned(lines: list[_Line], earlier: _Line, later: _Line) -> str:
    """Two neighbouring keys that should line up and do not: which one is
    off? The one whose indentation is not a multiple of the file's step,
    else the one whose column no other line uses, else the later one."""
    unit = _unit(lines, (earlier, later))
    cols = Counter(line.col for line in lines)
    if earlier.col % unit and not later.col % unit:
        culprit, other = earlier, later
    elif later.col % unit and not earlier.col % unit:
        culprit, other = later, earlier
    elif cols[earlier.col] == 1 and cols[later.col] > 1:
        culprit, other = earlier, later
    else:
        culprit, other = later, earlier
    columns = earlier.item or later.item
    return (
        f"line {culprit.number}: indentation does not match: {_name(culprit)} "
        f"{_where(culprit, columns)} but {_name(other)} (line {other.number}) "
        f"{_where_short(other, columns)}; "
        "keys of one mapping must start in the same column"
    )


def _between(lines: list[_Line], line: _Line, before: _Line) -> str:
    """``line`` went back, but not as far as any key above it."""
    above = [before]
    for candidate in reversed([x for x in lines if x.number < before.number]):
        if candidate.col < above[-1].col:
            above.append(candidate)
        if len(above) == 2:
            break
    columns = any(a.item for a in (line, *above))
    near = " or ".join(f"{_name(a)} (line {a.number}, {_where_short(a, columns)})" for a in above)
    return (
        f"line {line.number}: indentation does not match: {_name(line)} "
        f"{_where(line, columns)}, like no key above it; line it up with {near}"
    )


def _indentation(lines: list[_Line], number: int) -> str | None:
    line, before = _at(lines, number)
    if line is None or before is None:
        return None
    if before is lines[0] and before.col > 0 and line.col < before.col:
        return (
            f"line {before.number}: indentation does not match: the first key {_name(before)} "
            f"is indented {_spaces(before.col)}; top-level keys start in the first column"
        )
    if line.col > before.col:
        if before.key is None:
            return (
                f"line {before.number}: {_name(before)} is not a 'key: value' line; "
                "a key needs a colon and a space after it"
            )
        return _misaligned(lines, before, line)
    if line.col < before.col:
        return _between(lines, line, before)
    return None


def explain(text: str, exc: yaml.MarkedYAMLError) -> str | None:
    """``line N: what is wrong``, in words a person who wrote the file
    understands, at the line to change; None when PyYAML's own words are
    the best there is."""
    problem, context = exc.problem or "", exc.context or ""
    mark, ctx_mark = exc.problem_mark, exc.context_mark
    if mark is None:
        return None
    number = mark.line + 1
    lines = _lines(text)
    if problem.startswith("expected <block end>, but found '-'"):
        return (
            f"line {number}: a list item ('- ...') among the keys of a mapping; "
            "put the list under a key of its own ('key:', then the '- ' lines indented)"
        )
    if problem.startswith("expected <block end>") or problem.startswith(
        "expected '<document start>'"
    ):
        return _indentation(lines, number)
    if problem == "mapping values are not allowed here":
        line, before = _at(lines, number)
        if line is None:
            return None
        if line.colon == mark.column and before is not None and line.col >= before.col:
            found = _indentation(lines, number)
            if found is not None:
                return found
            if before.key is None:  # "b:1", then "c: 2": b:1 was never a key
                return (
                    f"line {before.number}: {_name(before)} is not a 'key: value' line; "
                    "a key needs a colon and a space after it"
                )
        return f"line {number}: a value holds ': ' (a colon and a space); put the value in quotes"
    if problem == "could not find expected ':'" and ctx_mark is not None:
        line, _ = _at(lines, ctx_mark.line + 1)
        shown = _name(line) if line is not None else "this line"
        return (
            f"line {ctx_mark.line + 1}: {shown} has no ':'; "
            "write 'key: value' (or '- item' in a list)"
        )
    if context == "while scanning a quoted scalar" and ctx_mark is not None:
        return (
            f"line {ctx_mark.line + 1}: the quote opened at column {ctx_mark.column + 1} "
            "is never closed"
        )
    for kind, opening, closing in (("sequence", "[", "]"), ("mapping", "{", "}")):
        if context == f"while parsing a flow {kind}" and ctx_mark is not None:
            return (
                f"line {ctx_mark.line + 1}: the '{opening}' at column {ctx_mark.column + 1} "
                f"is never closed with '{closing}'"
            )
    token = re.match(r"found character '(.+)' that cannot start any token", problem)
    if token:
        char = token.group(1)
        if char == "\\t":
            return f"line {number}: a tab character; indent with spaces, not tabs"
        return f"line {number}: a value cannot start with '{char}'; put the value in quotes"
    alias = re.match(r"found undefined alias '(.*)'", problem)
    if alias:
        name = alias.group(1)
        return (
            f"line {number}: '*{name}' refers to an anchor '&{name}' that is not defined; "
            "put the value in quotes if the '*' is meant literally"
        )
    return None
