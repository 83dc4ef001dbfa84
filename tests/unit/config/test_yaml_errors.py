"""PyYAML's syntax errors in plain words, at the line to change
(vfsftp/config/yaml_errors.py): a table of (YAML text, message)."""

from __future__ import annotations

import pytest
import yaml

from vfsftp.config.yaml_errors import explain

KEYS = "keys of one mapping must start in the same column"

CASES: list[tuple[str, str, str]] = [
    (
        "first key of a mapping short by one, quoted value",
        'users:\n  demo:\n    password: "x"\n  alice:\n   password: "y"\n    home: /\n',
        f"line 5: indentation does not match: 'password' is indented 3 spaces but 'home' "
        f"(line 6) 4 spaces; {KEYS}",
    ),
    (
        "first key of a mapping short by one, plain value",
        "users:\n  demo:\n    password: x\n  alice:\n   password: y\n    home: /\n",
        f"line 5: indentation does not match: 'password' is indented 3 spaces but 'home' "
        f"(line 6) 4 spaces; {KEYS}",
    ),
    (
        "second key too deep",
        "a:\n  b: 1\n    c: 2\n",
        f"line 3: indentation does not match: 'c' is indented 4 spaces but 'b' (line 2) "
        f"2 spaces; {KEYS}",
    ),
    (
        "second key too deep, quoted value",
        'a:\n  b: "1"\n    c: 2\n',
        f"line 3: indentation does not match: 'c' is indented 4 spaces but 'b' (line 2) "
        f"2 spaces; {KEYS}",
    ),
    (
        "key between two levels",
        "users:\n  demo:\n    password: x\n   home: /\n",
        "line 4: indentation does not match: 'home' is indented 3 spaces, like no key above "
        "it; line it up with 'password' (line 3, 4 spaces) or 'demo' (line 2, 2 spaces)",
    ),
    (
        "key of a list item off by one",
        "a:\n  - x: 1\n     y: 2\n",
        f"line 3: indentation does not match: 'y' starts at column 6 but 'x' (line 2) "
        f"at column 5; {KEYS}",
    ),
    (
        "first line indented",
        "  a: 1\nb: 2\n",
        "line 1: indentation does not match: the first key 'a' is indented 2 spaces; "
        "top-level keys start in the first column",
    ),
    (
        "no colon",
        "a:\n  b 1\n  c: 2\n",
        "line 2: 'b 1' is not a 'key: value' line; a key needs a colon and a space after it",
    ),
    (
        "no space after the colon",
        "a:\n  b:1\n  c: 2\n",
        "line 2: 'b:1' is not a 'key: value' line; a key needs a colon and a space after it",
    ),
    (
        "a word alone among keys",
        "a:\n  b: 1\n  c\n  d: 2\n",
        "line 3: 'c' has no ':'; write 'key: value' (or '- item' in a list)",
    ),
    (
        "colon and space in a value",
        "a:\n  b: http://x: y\n",
        "line 2: a value holds ': ' (a colon and a space); put the value in quotes",
    ),
    (
        "unclosed quote",
        'a:\n  b: "1\n  c: 2\n',
        "line 2: the quote opened at column 6 is never closed",
    ),
    ("unclosed list", "a: [1, 2\nb: 3\n", "line 1: the '[' at column 4 is never closed with ']'"),
    (
        "unclosed mapping",
        "a: {x: 1\nb: 3\n",
        "line 1: the '{' at column 4 is never closed with '}'",
    ),
    (
        "a list item among keys",
        "a:\n  b: 1\n  - c\n",
        "line 3: a list item ('- ...') among the "
        "keys of a mapping; put the list under a key of its own ('key:', then the '- ' lines "
        "indented)",
    ),
    ("tab", "a:\n\tb: 1\n", "line 2: a tab character; indent with spaces, not tabs"),
    (
        "reserved character",
        "a: @x\n",
        "line 1: a value cannot start with '@'; put the value in quotes",
    ),
    (
        "undefined alias",
        "a: *x\n",
        "line 1: '*x' refers to an anchor '&x' that is not defined; put the value in quotes "
        "if the '*' is meant literally",
    ),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_explain(text: str, message: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as info:
        yaml.safe_load(text)
    assert explain(text, info.value) == message


def test_nothing_better_to_say() -> None:
    text = "a: 1\n---\nb: 2\n"
    with pytest.raises(yaml.MarkedYAMLError) as info:
        yaml.safe_load(text)
    assert explain(text, info.value) is None  # the caller keeps PyYAML's words
