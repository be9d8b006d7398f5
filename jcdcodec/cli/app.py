"""The ``jcd`` group and the entry point that turns user errors into one line and an exit code."""

from __future__ import annotations

import os
import sys

# Before numpy loads: the entropy path multiplies small matrices, where BLAS threads only cost. With
# another process busy on one of two cores, OpenBLAS's spinning threads made a Kodak decode's entropy
# path 5x slower (0.31 s instead of 0.065 s). The networks use their own runtimes' threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click  # noqa: E402

from .. import __version__  # noqa: E402
from ..errors import JcdError  # noqa: E402
from .common import err  # noqa: E402

#: The commands of :mod:`.workbench`, for people who make and measure models.
WORKBENCH = frozenset({"noise", "train", "export", "export-synthesis", "retire", "calibrate", "eval", "bench"})


class _Group(click.Group):
    """Imports the workbench commands only when one is named or the commands are listed, so that the
    codec's commands (a decode takes 0.6 s of CPU in all) do not pay for defining them."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in WORKBENCH:
            from . import workbench  # noqa: F401  (registers the commands)
        return super().get_command(ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        from . import workbench  # noqa: F401

        return super().list_commands(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jcd")
def cli() -> None:
    """jcd - compress a noisy photo, decode a clean one.

    \b
      jcd encode noisy.png -q 4 -o out.jcd
      jcd decode out.jcd -o clean.png
      jcd info out.jcd
    """


def _warning_printer(default):
    """JcdWarnings as one line on stderr; any other warning as Python shows it."""
    from ..errors import JcdWarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, JcdWarning):
            err.print(f"jcd: warning: {message}", soft_wrap=True, markup=False)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _quiet_pillow() -> None:
    """Pillow's own remarks on a damaged file ("Tag data larger than file. Skipping tag 322", two lines each with
    a path into site-packages; "More samples per pixel than can be decoded" through logging) stay off the
    terminal: jcd says in one line what it could not read. Python code using jcdcodec keeps them."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
    logging.getLogger("PIL").addHandler(logging.NullHandler())  # a handler: no fallback to stderr


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit code."""
    import warnings

    from ..errors import JcdWarning

    warnings.simplefilter("always", JcdWarning)  # even under PYTHONWARNINGS=ignore: these are for the user
    warnings.showwarning = _warning_printer(warnings.showwarning)
    _quiet_pillow()
    try:
        cli.main(prog_name="jcd", standalone_mode=False)
    except click.exceptions.Abort:  # click's form of Ctrl-C
        err.print("jcd: interrupted")
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:  # `jcd` alone: its help, as `jcd --help` gives it, not an
        click.echo(e.format_message())  # error (click 8.2 made it one)
    except click.UsageError as e:  # bad arguments: one line, one style, exit 2 for all of them
        where = f" (jcd {e.ctx.info_name} --help)" if e.ctx is not None and e.ctx.info_name != "jcd" else ""
        err.print(f"jcd: error: {e.format_message()}{where}", soft_wrap=True, markup=False)
        sys.exit(2)
    except click.ClickException as e:
        err.print(f"jcd: error: {e.format_message()}", soft_wrap=True, markup=False)
        sys.exit(e.exit_code)
    except JcdError as e:
        err.print(f"jcd: error: {e}", soft_wrap=True, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("jcd: interrupted")
        sys.exit(130)
    except Exception as e:
        message = user_message(e)
        if message is not None:
            err.print(f"jcd: error: {message}", soft_wrap=True, markup=False)
            sys.exit(1)
        if os.environ.get("JCD_DEBUG"):  # a bug in jcd: still one line unless asked for more
            raise
        err.print(f"jcd: internal error: {type(e).__name__}: {e} (set JCD_DEBUG=1 for a traceback)",
                  soft_wrap=True, markup=False)  # fmt: skip
        sys.exit(3)


#: Optional packages and the extra of jcd that installs them.
EXTRAS = {"bm3d": "eval", "matplotlib": "eval", "bjontegaard": "eval", "pytest": "dev", "hypothesis": "dev"}
_OUT_OF_MEMORY = ("can't allocate memory", "cannot allocate memory", "failed to map segment", "out of memory",
                  "std::bad_alloc")  # fmt: skip


def user_message(e: BaseException) -> str | None:
    """The one-line message for failures that are the machine's or the installation's, not jcd's; else None.

    Running out of memory or address space shows up from many places (a MemoryError, PyTorch's allocator
    as a RuntimeError, a shared library that cannot be mapped as an ImportError), all meaning the same.
    """
    text = str(e).lower()
    if isinstance(e, MemoryError) or (
        isinstance(e, (RuntimeError, ImportError, OSError)) and any(k in text for k in _OUT_OF_MEMORY)
    ):
        return ("out of memory (or address space, see ulimit -v): try a smaller image, a lower --max-memory, "
                "or a machine with more memory")  # fmt: skip
    if isinstance(e, ModuleNotFoundError) and e.name:
        top = e.name.split(".")[0]
        if top in EXTRAS:
            return f"this needs the optional package {top!r}: pip install 'jcdcodec[{EXTRAS[top]}]'"
        if top in ("torch", "torchvision", "pytorch_msssim"):
            return (f"this needs PyTorch ({top} is not installed; a decode-only install runs `jcd decode` and "
                    "`jcd info` only): pip install jcdcodec")  # fmt: skip
    return None
