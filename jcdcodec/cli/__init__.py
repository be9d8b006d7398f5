"""The ``jcd`` command: parse, call the API, report. No codec logic lives here.

One module per group of commands, each a thin layer over the Python API:
``coding`` (encode, decode, info, models, compare) for users of the codec, ``workbench``
(noise, train, export, retire, eval, bench) for people who make and measure models. ``app`` holds
the group and the entry point, ``batch`` the many-files logic, ``common`` what all share.
The workbench registers its commands when one of them is asked for (``app.WORKBENCH``).
"""

from . import coding  # noqa: F401  (registers the commands)
from .app import cli, main

__all__ = ["cli", "main"]
