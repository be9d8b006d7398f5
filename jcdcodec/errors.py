"""User-facing errors.

Everything a user can get wrong (a missing file, a damaged stream, weights that do not
match) raises :class:`JcdError`; the CLI prints its message on one line and exits
non-zero. Anything else escaping is a bug in jcd, not in the input.
"""


class JcdError(Exception):
    """An error caused by the input or the environment, with a message for the user."""


class BitstreamError(JcdError):
    """The .jcd data is not a valid stream (wrong magic, truncated, corrupted)."""


class WeightsError(JcdError):
    """Weights are missing, damaged, or do not match the stream."""


class JcdWarning(UserWarning):
    """Something the user should know but that does not stop the work (e.g. only one frame is coded)."""
