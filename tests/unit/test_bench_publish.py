"""benchmarks/bench.py --publish: the README's table between its markers and
a new RESULTS.md entry come from one run. Pure: made-up samples, no server."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["bench"]
    return module


def _run(bench: ModuleType) -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    """Three samples of every default row for every server of the main table."""
    z = bench.FULL
    results: dict[str, dict[str, object]] = {}
    for i, target in enumerate(bench.MAIN_COLUMNS):
        row: dict[str, object] = {"_errors": []}
        for m in bench.metrics(z):
            if m.bench in bench.CORE_BENCHMARKS:
                row[m.key] = [100.0 + i, 90.0 + i, 120.0 + i]
        results[target] = row
    info = {
        "date": "2030-01-02 03:04 UTC",
        "cpu": "Test CPU",
        "cores": "2",
        "python": "3.11.7",
        "kernel": "Linux 6.18",
        "vfsftp commit": "abc1234",
        "pinning": bench.Pinning.plan().describe(),
        bench.OTHERS: "median 1%",
    }
    return results, info


@pytest.mark.parametrize(
    ("values", "cell"),
    [
        ([5.0], "5"),
        ([1.0, 3.0, 2.0], "2 (1-3)"),
        ([], "—"),
        (None, "—"),
    ],
)
def test_cell_is_median_and_range(bench: ModuleType, values: object, cell: str) -> None:
    assert bench._cell(values, "{:,.0f}") == cell


def test_spread_and_ratio_of_medians(bench: ModuleType) -> None:
    m = bench.Metric("k", "b", "label", "MB/s", True)
    assert bench._spread([90.0, 100.0, 120.0]) == pytest.approx(0.3)
    assert bench._spread([100.0]) is None
    assert bench._ratio(m, [1.0, 2.0, 100.0], [1.0, 1.0, 1.0]) == "2.00x (vfsftp better)"
    assert bench._ratio(m, [1.0], [1.02]) == "0.98x (≈ same)"


def test_publish_replaces_the_readme_block_and_adds_the_run(
    bench: ModuleType, tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    results_md = tmp_path / "RESULTS.md"
    shutil.copy(REPO / "README.md", readme)
    shutil.copy(REPO / "benchmarks" / "RESULTS.md", results_md)
    before = readme.read_text()
    old_results = results_md.read_text()
    outside = before.split(bench.README_BEGIN)[0], before.split(bench.README_END)[1]

    results, info = _run(bench)
    z = bench.FULL
    table = bench.render(results, z, info, list(bench.CORE_BENCHMARKS), "full", 3)
    bench.publish(table, bench.render_readme(results, z, info, 3), info, readme, results_md)

    after = readme.read_text()
    assert (after.split(bench.README_BEGIN)[0], after.split(bench.README_END)[1]) == outside
    block = after.split(bench.README_BEGIN)[1].split(bench.README_END)[0]
    assert "commit abc1234" in block and "RETR 512 MiB, curl" in block
    assert "| 100 (90-120) | 101 (91-121) |" in block  # vfsftp, pyftpdlib: median (min-max)
    assert len(after.splitlines()) < 500  # tests/unit/test_docs.py's limit, with every row
    new = results_md.read_text()
    entry = "## 2030-01-02 03:04 UTC, commit abc1234: `bench.py --publish`"
    # newest first: after the introduction, before the previous newest run
    at = old_results.index("\n## ") + 1
    assert new.index(entry) == at
    assert new[:at] == old_results[:at] and new.endswith(old_results[at:])

    # publishing again replaces the block, it does not stack a second one
    bench.publish(table, bench.render_readme(results, z, info, 3), info, readme, results_md)
    assert readme.read_text() == after


def test_publish_refuses_a_readme_without_markers(bench: ModuleType, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n")
    with pytest.raises(SystemExit):
        bench.publish("# t\nbody\n", "block\n", {}, readme, results_md)
    assert readme.read_text() == "# no markers\n"
