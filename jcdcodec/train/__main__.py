"""``python -m jcdcodec.train ...`` (what ``torchrun`` launches): the ``jcd train`` command."""

import sys

from ..cli import main

sys.argv = [sys.argv[0], "train", *sys.argv[1:]]
main()
