"""User-facing errors.

Everything a user can get wrong (a missing file, a damaged stream, weights that do not
match) raises :class:`JcdError`; the CLI prints its message on one line and exits
non-zero. Anything else escaping is a bug in jcd, not in the input.
"""

from __future__ import annotations


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


class DoesNotFit(JcdError):
    """Even the lowest quality is larger than the size asked for. ``needed`` is its size in bytes and ``note``
    what of it is metadata, so that a caller that asked in other units (``jcd encode --bpp``) can say it in
    those (:meth:`in_bpp`)."""

    def __init__(self, message: str, lowest: float = 1.0, needed: int = 0, note: str = "") -> None:
        super().__init__(message)  # the message first, as every JcdError: the CLI re-raises them with the file named
        self.lowest, self.needed, self.note = lowest, needed, note

    @classmethod
    def at(cls, lowest: float, needed: int, limit: int, note: str = "") -> DoesNotFit:
        return cls(f"even quality {lowest:g} needs {needed} bytes{note}, more than {limit}", lowest, needed, note)

    def in_bpp(self, bpp: float, pixels: int) -> JcdError:
        return JcdError(f"even quality {self.lowest:g} needs {self.needed * 8 / pixels:.4f} bpp{self.note}, "
                        f"more than {bpp:g}")  # fmt: skip


class JcdWarning(UserWarning):
    """Something the user should know but that does not stop the work (e.g. only one frame is coded)."""
