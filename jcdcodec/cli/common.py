"""What every command shares: where messages go, stdin/stdout, and the common options."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from ..errors import JcdError
from ..inputs import DEFAULT_MAX_PIXELS, read_file, read_stream

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class _Ctx:
    quiet = False
    data_on_stdout = False  # then messages go to stderr, so pipes carry only data


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on a terminal; nothing when piped or --quiet."""
    if _Ctx.quiet or not err.is_terminal:
        yield
    else:
        with err.status(message):
            yield


@contextmanager
def tile_progress(message: str) -> Iterator[None]:
    """A spinner that turns into a bar of tiles while a large picture's transforms run in tiles (a 24 Mpx
    photo spends a minute or more there); nothing when piped or --quiet."""
    if _Ctx.quiet or not err.is_terminal:
        yield
        return
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .. import tiling

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn()]  # fmt: skip
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(escape(message), total=None)

        def told(done: int, total: int) -> None:  # the tiles; after the last, the rest (entropy coding, writing)
            what = f"{message}: tiles" if done < total else f"{message}: finishing"
            bar.update(task, completed=done, total=total, description=escape(what))

        with tiling.reporting(told):
            yield


def say(message: str) -> None:
    if not _Ctx.quiet:
        (err if _Ctx.data_on_stdout else out).print(message, soft_wrap=True)


STDIO = Path("-")


def _read_input(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> bytes:
    """A file's bytes, or stdin's for ``-``, up to what an image of ``max_pixels`` can take (inputs.py)."""
    if path == STDIO:
        refuse_terminals(reads_stdin=True)
        return read_stream(sys.stdin.buffer, str(path), max_pixels)
    if not path.exists():
        raise JcdError(f"{path}: no such file")
    if path.is_dir():
        raise JcdError(f"{path}: is a directory")
    return read_file(path, max_pixels)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (also through symbolic or hard links)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def not_an_input(output: Path, inputs: Iterable[Path], option: str = "-o") -> None:
    """Refuse an output that names one of the command's inputs: writing it would destroy what is being read
    (``jcd noise clean.png -o clean.png`` replaced the clean picture by its noisy copy, ``jcd bench img.png
    --json img.png`` the picture by figures, until 2026-12-08). Checked before any work."""
    for i in inputs:
        if output == i or same_file(output, i):
            raise JcdError(f"{output}: is the input itself; choose another {option}")


def _write_output(path: Path, data: bytes, clobber: bool = True) -> None:
    """Atomically to a file (never over an existing one unless ``clobber``), or all of it to stdout for ``-``."""
    from ..outputs import atomic_write_bytes, write_stdout

    if path != STDIO:
        atomic_write_bytes(path, data, clobber)
        return
    refuse_terminals(writes_stdout=True)
    write_stdout(data)


def refuse_terminals(reads_stdin: bool = False, writes_stdout: bool = False) -> None:
    """A terminal is never waited on as an input file nor filled with a file's bytes. Checked again where the
    data moves, and first before the weights load, so that a mistake costs no coding (cli/batch.py)."""
    if reads_stdin and sys.stdin.isatty():
        raise JcdError("reading from stdin, but stdin is a terminal: pipe a file in")
    if writes_stdout and sys.stdout.isatty():
        raise JcdError("refusing to write binary data to a terminal: redirect stdout or give -o FILE")


class QualityType(click.ParamType):
    """A quality: a finite number from 1 to 6 (fractions interpolate); anything else is a usage error."""

    name = "QUALITY"

    def convert(self, value, param, ctx):  # noqa: ANN001
        if isinstance(value, float):
            return value
        try:
            q = float(value)
        except (TypeError, ValueError):
            q = math.nan
        if not (math.isfinite(q) and 1.0 <= q <= 6.0):
            self.fail(f"{value!r} is not a quality: use a number from 1 to 6 (fractions such as 3.5 allowed)",
                      param, ctx)  # fmt: skip
        return q


QUALITY = QualityType()
no_clobber_option = click.option("-n", "--no-clobber", is_flag=True,
                                 help="Never replace an existing file, not even one named with -o.")
preserve_option = click.option("-p", "--preserve", is_flag=True,
                               help="Give each output its input's modification time and permissions (photo "
                               "libraries sort pictures without a date of their own by it), as oxipng's and "
                               "jpegoptim's -p do.")
skip_existing_option = click.option("--skip-existing", is_flag=True,
                                    help="Leave out the inputs whose output file exists already: a batch that was "
                                    "stopped goes on where it stopped (each output is written whole or not at all). "
                                    "Output names are those of a first run, not NAME-1 for a name taken.")
recursive_option = click.option("-r", "--recursive", is_flag=True,
                                help="A directory input stands for the folders inside it too (not hidden ones, not "
                                "through symbolic links); with -o they keep their places below the output "
                                "directory. Without -r they are skipped, and named in a warning.")


device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="Where the transforms run: auto (CUDA when available), cpu, cuda. Entropy coding always runs on "
    "the CPU so streams decode anywhere.",
)
weights_option = click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Weights file (.safetensors) or a shipped model's name (see `jcd models`). Without it, encoding "
    "uses the default model (or one whose auto rule claims images as noisy as this one; `jcd models` says "
    "which, and none ships with a rule now), and decoding uses whichever shipped model made the stream.",
)
quiet_option = click.option("--quiet", is_flag=True, help="Print nothing but errors.")
max_pixels_option = click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True,
                                 help="Refuse larger images, and input files larger than such an image can be "
                                 "(16 bytes a pixel and 64 MiB).")


def _bytes(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from ..tiling import parse_bytes

    try:
        return parse_bytes(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


max_memory_option = click.option(
    "--max-memory",
    default="1.5G",
    show_default=True,
    callback=_bytes,
    help="Working memory of the networks (e.g. 800M, 4G): larger images run in tiles; the stream is the same "
    "either way. It bounds the networks only: the runtime, the weights and the whole picture come on top "
    "(a 6000x4000 photo with the default model and budget peaked at 1.95 GiB of resident memory encoding, "
    "1.40 GiB decoding; a smaller budget lowered that little).",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="Arithmetic of the analysis/synthesis transforms (auto: bf16 where the hardware has it). The entropy "
    "path is always float64, so this never affects compatibility.",
)


def _engine_option(help: str):
    return click.option("--engine", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
                        help=help)  # fmt: skip


engine_option = _engine_option(
    "Decoder: onnx (g_s in OpenVINO or onnxruntime on the CPU, no PyTorch: starts in a fraction of a second), "
    "torch (PyTorch, CPU or CUDA, --precision applies), auto (onnx unless --device cuda or --precision bf16, or "
    "the weights have no .synthesis.onnx file). Both give the same latent and pixels within float rounding.",
)

encode_engine_option = _engine_option(
    "Encoder: onnx (the analysis in onnxruntime/OpenVINO on the CPU, no PyTorch: starts in a fraction of a "
    "second), torch (PyTorch, CPU or CUDA, --precision applies), auto (onnx unless --device cuda or --precision "
    "bf16, or the weights have no .analysis.onnx file). Float rounding differs, so a few symbols may too; every "
    "stream decodes exactly with either decoder.",
)

threads_option = click.option(
    "--threads",
    type=click.IntRange(0, 1024),
    default=0,
    show_default=True,
    help="CPU threads of the networks (0: the runtime's default, one per core); 1 leaves the other cores to other "
    "work. The stream does not depend on it.",
)


def codec_options(f):
    """The options every coding command shares."""
    for option in (quiet_option, precision_option, max_memory_option, max_pixels_option, device_option,
                   weights_option):  # fmt: skip
        f = option(f)
    return f


