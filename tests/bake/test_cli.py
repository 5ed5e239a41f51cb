"""``airender bake`` on the command line: its flags, their help and its one-line usage (no Mitsuba needed)."""
from __future__ import annotations

import argparse

import pytest

from airender.bake.bake import BakeSettings
from airender.solar import Site
from airender.cli import build_parser


def bake_parser() -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return action.choices["bake"]


def test_out_dir_and_out_are_the_same_flag():
    parser = build_parser()
    assert parser.parse_args(["bake", "--out_dir", "a"]).out_dir == "a"
    assert parser.parse_args(["bake", "--out", "b"]).out_dir == "b"


def test_defaults_are_the_settings_defaults_and_shown_once():
    args = build_parser().parse_args(["bake", "--out_dir", "x"])
    settings, site = BakeSettings(), Site()
    assert (args.size, args.atlases, args.parts, args.spp, args.seed) == \
        (settings.size, settings.atlases, settings.parts, settings.spp, settings.seed)
    assert (args.latitude, args.longitude, args.timezone, args.date) == \
        (site.latitude, site.longitude, site.timezone, site.day.isoformat())
    for action in bake_parser()._actions:  # noqa: SLF001
        if isinstance(action, argparse._HelpAction) or action.dest in ("out_dir", "overwrite", "quiet"):
            continue
        assert action.help.count("(default:") == 1, action.option_strings


def test_a_bad_value_prints_the_one_line_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["bake", "--out_dir", "x", "--size", "big"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: airender bake --out_dir DIR ") and len(err) == 2
    assert "--size: invalid int value: 'big'" in err[1]
