"""The documentation holds together: every relative link of README.md,
docs/*.md and benchmarks/*.md names a file that exists and, for a Markdown
file, an anchor that one of its headings makes (GitHub's slugs); README.md
stays what a user reads first, under 500 lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "benchmarks").glob("*.md")]
)

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without Markdown markup,
    lower case, without punctuation but for `-` and `_`, spaces as `-`."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)  # _emphasis_, not snake_case
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced and indented code blocks."""
    out: list[tuple[int, str]] = []
    fenced = indented = False
    previous_blank = True
    for number, line in enumerate(text.splitlines(), 1):
        blank = not line.strip()
        if not fenced and line.startswith("    ") and (indented or previous_blank):
            indented = True
        elif not blank:
            indented = False
        if FENCE.match(line) and not indented:
            fenced = not fenced
        elif not (fenced or indented):
            out.append((number, line))
        previous_blank = blank
    return out


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text; repeats get -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(text):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    return result


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link outside code; a link's
    text may run over a line break."""
    lines = prose_lines(text)
    prose = "\n".join(CODE_SPAN.sub("", line) for _, line in lines)
    return [(lines[prose.count("\n", 0, m.start())][0], m.group(1)) for m in LINK.finditer(prose)]


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Quick start", "quick-start"),
        ("Several processes: `--workers N`", "several-processes---workers-n"),
        ("bench_s3.py: S3 mounts vs boto3 direct", "bench_s3py-s3-mounts-vs-boto3-direct"),
        ("Sessions A/B: ab_sessions.py", "sessions-ab-ab_sessionspy"),
        ("mounts.yaml", "mountsyaml"),
        ("What a user sees", "what-a-user-sees"),
        ("**Bold** and [a link](x.md)", "bold-and-a-link"),
        ("2026-11-27, commit 1d38b95: A/B", "2026-11-27-commit-1d38b95-ab"),
    ],
)
def test_slug(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_anchors_number_repeated_headings() -> None:
    text = "# A\n## Running it\n```\n# not a heading\n```\n## Running it\n    # code\n"
    assert anchors(text) == {"a", "running-it", "running-it-1"}


def test_links_skip_code() -> None:
    text = "see [x](a.md#b) and `[y](c.md)`\n\n```\n[z](d.md)\n```\n\n    [w](e.md)\n\n[v\nu](f.md)"
    assert links(text) == [(1, "a.md#b"), (9, "f.md")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for number, target in links(doc.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        where = f"{doc.relative_to(REPO)}:{number}: {target}"
        if not file.exists():
            broken.append(f"{where}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            broken.append(f"{where}: no heading makes #{anchor}")
    assert not broken, "\n".join(broken)


def test_readme_is_short() -> None:
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines < 500, f"README.md has {lines} lines; move reference material to docs/"
