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


class ModelUnavailable(WeightsError):
    """A model jcd chose by itself does not load: the default, the one an image's noise picked, or the one a
    stream names (its file missing or damaged). Every further file that needs it would fail the same way, so a
    batch stops at the first, as it does when ``--weights`` names weights that do not load."""


class JcdWarning(UserWarning):
    """Something the user should know but that does not stop the work (e.g. only one frame is coded)."""
