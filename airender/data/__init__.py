"""Readers (image folders, the contest lightmap layout), hour parsing, the on-device sequence and samplers."""

from airender.hours import hour_from_contest_key, hour_from_name, wrap_hours
from airender.data.readers import load_sequence
from airender.data.sequence import TODSequence

__all__ = ["TODSequence", "load_sequence", "hour_from_name", "hour_from_contest_key", "wrap_hours"]
