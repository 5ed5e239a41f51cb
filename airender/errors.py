"""Errors that the command line turns into one clear line and exit status 2."""


class InputError(Exception):
    """Bad user input: a file or value that cannot be used. The message names the file and the problem."""


class CheckpointError(InputError):
    """A checkpoint that cannot be read or rebuilt."""


class OutputError(InputError):
    """A destination that cannot be written: a parent that is a file, no write permission, a full disk."""
