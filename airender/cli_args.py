"""Command-line flags generated from the config dataclasses (one flag per field, named as the field).

Booleans accept both ``--flag`` and ``--flag True/False`` (the roadmap's ``--residual_mode True``);
the strings "False", "0", "no" and "off" parse as False. Lists accept ``--hours 6 18`` or ``--hours 6,18``.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from airender.config import SECTION_TYPES, ExperimentConfig

_TRUE = {"true", "1", "yes", "on", "y", "t"}
_FALSE = {"false", "0", "no", "off", "n", "f"}


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def _number_list(kind: type):
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.replace(",", " ").split()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} values, got {text!r}") from None
    return parse


class _ExtendFlat(argparse.Action):
    """Collects tokens of nargs='+' list flags where each token may itself be comma separated."""

    def __call__(self, parser, namespace, values, option_string=None):
        flat = [v for chunk in values for v in chunk]
        setattr(namespace, self.dest, flat)


def add_config_arguments(parser: argparse.ArgumentParser, base: ExperimentConfig | None = None,
                         sections: tuple[str, ...] = tuple(SECTION_TYPES)) -> None:
    """Add one flag per field of the chosen config sections, plus --out_dir and --name.

    The help shows each default once: the value in ``base`` (a preset's config) where given, else the
    dataclass default.
    """
    base = base or ExperimentConfig()
    for section in sections:
        cls = SECTION_TYPES[section]
        group = parser.add_argument_group(f"{section} options", cls.__doc__)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            _add_field(group, f, hints[f.name], getattr(getattr(base, section), f.name))
    for name, aliases in (("out_dir", ("--output_dir",)), ("name", ())):
        f = next(x for x in dataclasses.fields(ExperimentConfig) if x.name == name)
        parser.add_argument(f"--{name}", *aliases, dest=name, default=f.default,
                            help=with_default(f.metadata["help"], getattr(base, name)))


def with_default(help_text: str, default: Any) -> str:
    """``help_text`` with its default appended once (not when the text already names its default)."""
    if "(default:" in help_text:
        return help_text
    shown = " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default) if isinstance(default, list) \
        else (f"{default:g}" if isinstance(default, float) else default)
    return f"{help_text} (default: {shown if shown not in ('', []) else 'none'})"


def _add_field(group, f: dataclasses.Field, hint: Any, default: Any) -> None:
    help_text = f.metadata.get("help", "")
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": f.name}
    if hint is bool:
        kwargs.update(nargs="?", const=True, type=parse_bool, metavar="BOOL")
    elif typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        kwargs.update(nargs="+", type=_number_list(item), action=_ExtendFlat, metavar=item.__name__.upper())
    else:
        kwargs.update(type=hint)
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
    group.add_argument(f"--{f.name}", help=with_default(help_text, default), **kwargs)


def explicit_overrides(namespace: argparse.Namespace, sections: tuple[str, ...] = tuple(SECTION_TYPES)) -> dict:
    """{section: {field: value}} for the flags given on the command line (defaults are suppressed)."""
    given = vars(namespace)
    out: dict[str, dict] = {}
    for section in sections:
        for f in dataclasses.fields(SECTION_TYPES[section]):
            if f.name in given:
                out.setdefault(section, {})[f.name] = given[f.name]
    return out


def config_from_args(namespace: argparse.Namespace, base: ExperimentConfig | None = None) -> ExperimentConfig:
    """Apply the flags given on the command line on top of ``base`` (default: the dataclass defaults)."""
    config = base or ExperimentConfig()
    for section, values in explicit_overrides(namespace).items():
        setattr(config, section, dataclasses.replace(getattr(config, section), **values))
    config.out_dir = namespace.out_dir
    config.name = namespace.name
    return config


def add_subcommand(sub, name: str, help_text: str, usage: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose errors print its own one-line usage (not the top level's, nor every flag)."""
    return sub.add_parser(name, help=help_text, usage=usage,
                          description=description or help_text[:1].upper() + help_text[1:] + ".")


# --- the flags several commands share, declared once ------------------------------------------------------
CKPT_HELP = "checkpoint (best.ckpt or last.ckpt), tiled checkpoint or exported .airpack"
DEVICE_CHOICES = "auto (a GPU when there is one), cpu, cuda or cuda:N"


def add_ckpt_argument(p: argparse.ArgumentParser, help: str = CKPT_HELP, repeat: bool = False,
                      required: bool = True) -> None:
    """``--ckpt PATH`` (``repeat``: may be given several times, a list)."""
    if repeat:
        p.add_argument("--ckpt", action="append", required=required, default=None if required else [], help=help)
    else:
        p.add_argument("--ckpt", required=required, default=None if required else "", help=help)


def add_device_argument(p: argparse.ArgumentParser, default: str = "auto", what: str = "") -> None:
    """``--device``: resolved by :func:`airender.device.resolve_device` (one line for a device not here)."""
    p.add_argument("--device", default=default,
                   help=f"{what + ': ' if what else ''}{DEVICE_CHOICES} (default: {default})")


def add_data_dir_argument(p: argparse.ArgumentParser, help: str, required: bool = True) -> None:
    """``--data_dir DIR`` (also spelled ``--data``)."""
    p.add_argument("--data_dir", "--data", dest="data_dir", required=required, default=None if required else "",
                   help=help)


def add_out_dir_argument(p: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    """``--out_dir DIR`` (also spelled ``--out`` and ``--output_dir``)."""
    p.add_argument("--out_dir", "--out", "--output_dir", dest="out_dir", required=required,
                   default=None if required else "", help=help)


def add_lightmap_id_argument(p: argparse.ArgumentParser, help: str) -> None:
    """``--lightmap_id ID`` ("ID" or "LEVEL:ID"; default: the first)."""
    p.add_argument("--lightmap_id", default="", help=help)
