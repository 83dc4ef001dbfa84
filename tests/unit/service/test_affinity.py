"""``--cpu-affinity``'s pure part (vfsftp.service.affinity): the CPU list
syntax and which CPU each worker gets. Pinning a real server's threads is
tested in tests/integration/test_workers.py."""

from __future__ import annotations

import pytest

from vfsftp.config.errors import ConfigError
from vfsftp.service.affinity import _format, parse_cpu_list, plan_cpus


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0", [0]),
        ("3", [3]),
        ("0,2", [0, 2]),
        ("0-3", [0, 1, 2, 3]),
        ("0,2-3", [0, 2, 3]),
        ("5,1", [5, 1]),  # the order written: worker 0 on CPU 5
        ("1,1,0-1", [1, 0]),  # each CPU once
        (" 0 , 2-3 ", [0, 2, 3]),
        ("2-2", [2]),
    ],
)
def test_parse_cpu_list(text: str, cpus: list[int]) -> None:
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a CPU number"),
        ("x", "'x' is not a CPU number"),
        ("0,", "'' is not a CPU number"),
        ("-1", "'-1' is not a CPU number"),
        ("1-", "'1-' is not a CPU number"),
        ("0x1", "'0x1' is not a CPU number"),
        ("3-1", "'3-1': the range ends before it starts"),
        ("1-2-3", "'1-2-3' is not a CPU number"),
    ],
)
def test_parse_cpu_list_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        parse_cpu_list(text)


@pytest.mark.parametrize(
    ("spec", "workers", "allowed", "cpus"),
    [
        ("auto", 1, {0, 1}, [0]),
        ("auto", 2, {0, 1}, [0, 1]),
        ("AUTO", 2, {1, 0}, [0, 1]),
        ("auto", 3, {0, 1}, [0, 1, 0]),  # more workers than CPUs: round again
        ("auto", 2, {2, 5, 7}, [2, 5]),  # a container's or taskset's set
        ("1", 1, {0, 1}, [1]),
        ("1", 3, {0, 1}, [1, 1, 1]),
        ("1,0", 2, {0, 1}, [1, 0]),
        ("0-1", 4, {0, 1, 2, 3}, [0, 1, 0, 1]),
    ],
)
def test_plan_cpus(spec: str, workers: int, allowed: set[int], cpus: list[int]) -> None:
    assert plan_cpus(spec, workers, allowed) == cpus


@pytest.mark.parametrize(
    ("spec", "allowed", "message"),
    [
        (
            "4",
            {0, 1},
            "--cpu-affinity '4': CPU 4 is not among the CPUs this process may run on (0-1)",
        ),
        (
            "0,3-4",
            {0, 1, 2, 5},
            "--cpu-affinity '0,3-4': CPUs 3-4 are not among the CPUs this process may run "
            "on (0-2,5)",
        ),
        (
            "one",
            {0},
            "--cpu-affinity 'one': 'one' is not a CPU number or a range such as 2-3; "
            "expected 'auto' or a CPU list such as 0,2-3",
        ),
    ],
)
def test_plan_cpus_errors(spec: str, allowed: set[int], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        plan_cpus(spec, 2, allowed)
    assert info.value.problems == [message]


@pytest.mark.parametrize(
    ("cpus", "text"),
    [([0], "0"), ([0, 1], "0-1"), ([0, 1, 2, 5], "0-2,5"), ([1, 3, 5], "1,3,5"), ([], "")],
)
def test_format(cpus: list[int], text: str) -> None:
    assert _format(cpus) == text
