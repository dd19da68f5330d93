"""Errors raised for user input. Messages are one line and name the file and the problem."""


class MfifError(Exception):
    """Base class of every error mfif raises on purpose (the CLI prints it as one line)."""


class InputError(MfifError, ValueError):
    """Bad input: unreadable file, wrong shape, wrong dtype, NaN, mismatched sizes, too few frames."""


class OutputError(MfifError, OSError):
    """An output cannot be written (would overwrite an input, directory not writable, ...)."""


class WeightsError(MfifError, ValueError):
    """A weights file has the wrong format or shape for the requested network."""
