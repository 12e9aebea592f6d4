"""argparse types: English messages at the CLI, one line, exit 2."""

from __future__ import annotations

import argparse

import pytest

from lingspace_harness.arguments import comma_list, positive_int, shard, split_fractions
from lingspace_harness.cli import main


def test_types_parse_good_values() -> None:
    assert comma_list(" a, b,,c ") == ["a", "b", "c"]
    assert positive_int("3") == 3
    assert split_fractions("0.4,0.1,0.5") == (0.4, 0.1, 0.5)
    assert shard("2/3") == (2, 3)


@pytest.mark.parametrize(
    "kind, value",
    [
        (positive_int, "abc"),
        (positive_int, "0"),
        (positive_int, "1.5"),
        (split_fractions, "0.5,0.5"),
        (split_fractions, "a,b,c"),
        (split_fractions, "0.5,0.6,-0.1"),
        (shard, "3/3"),
        (shard, "x"),
        (shard, "1/0"),
    ],
)
def test_bad_values_raise_argument_type_errors(kind, value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^expected .*, got '{value}'$"):
        kind(value)


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--limit", "abc", "argument --limit: expected a whole number of at least 1, got 'abc'"),
        ("--batch-size", "0", "argument --batch-size: expected a whole number of at least 1 or 'auto', got '0'"),
        (
            "--split-fractions",
            "1,2",
            "argument --split-fractions: expected three non-negative numbers that "
            "sum to 1, e.g. 0.4,0.1,0.5, got '1,2'",
        ),
        ("--shard", "3/3", "argument --shard: expected I/N with 0 <= I < N"),
    ],
)
def test_cli_type_errors_read_as_english(capsys, tmp_path, option: str, value: str, expected: str) -> None:
    code = main(["run", "--model", "m", "--tasks", "t", "--output", str(tmp_path / "out"), option, value])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert "invalid" not in err and "_int" not in err and "value:" not in err


def test_plain_int_and_float_options_of_any_plugin_fail_in_english(capsys) -> None:
    from lingspace_harness.cli import main

    for option, value, expected in (
        ("--seed", "abc", "expected a whole number, got 'abc'"),
        ("--topk", "lots", "expected a number, got 'lots'"),
    ):
        assert main(["run", "--model", "m", "--tasks", "t", option, value]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and expected in err and "invalid" not in err, err
