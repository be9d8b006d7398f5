"""Many files in, many files out: (input, output) pairs, one Codec, a progress bar, per-file errors."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import JcdError, JcdWarning
from .common import STDIO, _Ctx, err, status, tile_progress


def _expand(inputs: tuple[Path, ...], decoding: bool) -> tuple[Path, ...]:
    """Directories stand for the files directly inside them: .jcd files when decoding; when encoding, the
    images (by name or by their first bytes) and camera raw files, so that a folder holding its photos, their
    .jcd files and what cameras and phones put beside them (videos, sidecars, the raw file of a RAW+JPEG pair)
    is coded without an error for each of those; the skipped files are named in one warning. Files named one by
    one are all tried."""
    from .. import rawphoto
    from ..formats import RAW_SUFFIXES, camera_raw, file_head, image_format

    out: list[Path] = []
    for p in inputs:
        if not p.is_dir():
            out.append(p)
            continue
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        files = [f for f in files if (f.suffix.lower() == ".jcd") == decoding]
        if not decoding:
            suffixes = image_suffixes()  # files named as images or raws are told by name; the rest by their bytes
            heads = {f: file_head(f) for f in files if f.suffix.lower() not in suffixes | RAW_SUFFIXES}
            raws = [f for f in files if f.suffix.lower() in RAW_SUFFIXES or (f in heads and camera_raw(heads[f]))]
            rest = [f for f in files if f not in raws]
            images = [f for f in rest if f.suffix.lower() in suffixes or image_format(heads[f]) is not None]
            skipped = [f for f in rest if f not in images]
            if skipped:
                what = "files that are not images" if len(skipped) > 1 else "file that is not an image"
                warnings.warn(f"{p}: skipped {len(skipped)} {what}: {_first_five(skipped)}", JcdWarning, stacklevel=2)
            paired = _paired_raws(raws, images)
            if paired:
                what = "camera raw files" if len(paired) > 1 else "camera raw file"
                why = ("a picture of the same name is beside each (RAW+JPEG): that is coded instead" if
                       rawphoto.available() else "developing them needs rawpy: pip install rawpy")  # fmt: skip
                warnings.warn(f"{p}: skipped {len(paired)} {what} ({why}): {_first_five(paired)}", JcdWarning,
                              stacklevel=2)  # fmt: skip
            files = [f for f in files if f in images or (f in raws and f not in paired)]
        if not files:
            raise JcdError(f"{p}: no {'.jcd files' if decoding else 'images'} in this directory")
        out.extend(files)
    return tuple(out)


def _paired_raws(raws: list[Path], images: list[Path]) -> list[Path]:
    """The raw files of a folder that are not coded: those with a picture of the same name beside them (RAW+JPEG,
    as cameras shoot: the camera developed it already), or all of them where rawpy is not installed."""
    from .. import rawphoto

    if not rawphoto.available():
        return raws
    stems = {f.stem.casefold() for f in images}
    return [f for f in raws if f.stem.casefold() in stems]


def _first_five(files: list[Path]) -> str:
    """The names of a warning's files: the first five, then how many more."""
    return ", ".join(f.name for f in files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")


@dataclass(frozen=True)
class Target:
    """One unit of work: read ``src``, write ``dst``; ``clobber`` says whether an existing ``dst`` may go."""

    src: Path
    dst: Path
    clobber: bool
    instead_of: Path | None = None  # the name jcd derived first, which an existing file already has
    why: str = "exists and was kept"  # why ``instead_of`` was not used

    def done(self) -> None:
        """Say when the output went to another name than the usual one (after it is written, not before)."""
        if self.instead_of is not None:
            warnings.warn(f"{self.instead_of} {self.why}: wrote {self.dst} instead", JcdWarning, stacklevel=2)


def image_suffixes() -> frozenset[str]:
    """Extensions that say "image": a .jcd stream is never written under one unless asked (--any-name).

    A function so that importing the CLI (``jcd --help``, ``jcd info``) does not load numpy and Pillow.
    """
    from ..imageio import READ_EXTS, WRITE_FORMATS

    return frozenset(READ_EXTS | set(WRITE_FORMATS) | {".gif", ".pgm", ".pbm", ".pnm", ".jp2", ".avif", ".heic",
                                                       ".tga", ".ico", ".psd", ".jxl"})  # fmt: skip


def free_name(path: Path, taken: set[str]) -> Path:
    """``path``, or ``stem-1.ext``, ``stem-2.ext``, ... : the first name that no file has and no other target took.

    ``taken`` holds the other targets' names case-folded: IMG.PNG and img.png would both become the same file on
    a case-insensitive disk (macOS, Windows, a FAT or exFAT card a folder is copied to), one replacing the other.
    """
    candidate, k = path, 0
    while candidate.exists() or candidate.is_symlink() or str(candidate).casefold() in taken:
        k += 1
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return candidate


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def targets(
    inputs: tuple[Path, ...], output: str | None, suffix: str, no_clobber: bool = False, any_name: bool = False
) -> list[Target]:
    """What to write for each input; never a derived name over an existing file, never over the input.

    ``output`` is -o as typed: a file (one input), ``-`` (stdout), or a directory (several inputs, a directory
    input, or a name ending in /), created when missing. Without -o each output goes beside its input. A name
    jcd derives itself never replaces a file: it takes the first free ``NAME-k`` and says so. A file named
    with -o is replaced (as cwebp and avifenc do) unless ``no_clobber``.
    """
    if STDIO in inputs and len(inputs) > 1:
        raise JcdError("'-' (stdin) must be the only input")
    out_path = None if output is None else Path(output)
    if inputs == (STDIO,):
        if out_path is None:
            raise JcdError("reading stdin: give -o FILE, or -o - for stdout")
        pairs = [Target(STDIO, out_path, not no_clobber)]
    else:
        many = len(inputs) > 1 or any(p.is_dir() for p in inputs)
        files = _expand(inputs, decoding=suffix != ".jcd")
        trailing_slash = output is not None and output.endswith(("/", os.sep))
        as_dir = out_path is not None and (many or out_path.is_dir() or trailing_slash)
        if as_dir and out_path == STDIO:
            raise JcdError("-o - (stdout) takes one input")
        if as_dir:
            if out_path.exists() and not out_path.is_dir():
                raise JcdError(f"{out_path}: with several inputs, -o must be a directory (this is a file)")
            suffix_says_file = out_path.suffix.lower() in {".jcd", *image_suffixes()}
            if not out_path.exists() and suffix_says_file and not trailing_slash:
                raise JcdError(f"{out_path}: several inputs need an output directory, and this names a file "
                               f"(end it with / to make a directory of that name)")  # fmt: skip
            try:
                out_path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise JcdError(f"{out_path}: cannot create the output directory ({e.strerror or e})") from None
        if out_path is not None and not as_dir:
            pairs = [Target(files[0], out_path, not no_clobber)]
        else:
            taken: set[str] = set()
            exact: set[Path] = set()
            pairs = []
            for f in files:
                wanted = (out_path / f.name if as_dir else f).with_suffix(suffix)
                dst = free_name(wanted, taken)
                folded = str(wanted).casefold() in taken and wanted not in exact and not wanted.exists()
                why = "differs from another output's name only in case" if folded else "exists and was kept"
                taken.add(str(dst).casefold())
                exact.add(dst)
                pairs.append(Target(f, dst, False, None if dst == wanted else wanted, why))
    images = image_suffixes()
    for t in pairs:
        if t.dst == STDIO:
            continue
        if t.src != STDIO and (t.dst == t.src or _same_file(t.src, t.dst)):
            raise JcdError(f"{t.dst}: is the input itself; choose another -o")
        if suffix == ".jcd" and t.dst.suffix.lower() in images and not any_name:
            raise JcdError(f"{t.dst}: a .jcd stream under an image extension; use a .jcd name (or --any-name)")
        if suffix != ".jcd" and t.dst.suffix.lower() == ".jcd":
            raise JcdError(f"{t.dst}: an image under a .jcd name; use an image extension such as .png")
    return pairs


def _rate_target(ctx: click.Context, size: str | None, bpp: float | None) -> tuple[str, float] | None:
    """("size", bytes) or ("bpp", rate) when the user asked for a rate instead of a quality."""
    from click.core import ParameterSource

    if size is not None and bpp is not None:
        raise click.UsageError("give --size or --bpp, not both")
    if (size is not None or bpp is not None) and ctx.get_parameter_source("quality") != ParameterSource.DEFAULT:
        raise click.UsageError("-q sets the quality; --size and --bpp choose it for you: give one of them")
    if size is not None:
        from ..tiling import parse_bytes

        try:
            value = float(parse_bytes(size))
        except ValueError:
            raise click.BadParameter(f"{size!r} is not a file size (e.g. 20000, 20k, 1.5M)", param_hint="--size") \
                from None
        if value <= 0:
            raise click.BadParameter(f"{size!r}: the size must be positive", param_hint="--size")
        return "size", value
    if bpp is not None:
        if not bpp > 0:
            raise click.BadParameter("must be positive", param_hint="--bpp")
        return "bpp", bpp
    return None


def _batch(inputs: tuple[Path, ...], output: str | None, suffix: str, quiet: bool, no_clobber: bool = False,
           any_name: bool = False, engine: str = "auto", auto: bool = False, encoding: bool = False,
           **codec_options):  # fmt: skip
    """What encode and decode share: the targets, where messages go, one coder for all of them.

    ``engine``: onnx, torch or auto, see :func:`jcdcodec.encoder.open_encoder` and
    :func:`jcdcodec.decoder.open_decoder`. ``encoding``: a coder that encodes (else one that decodes).
    ``auto`` (encoding only): each image gets the shipped model chosen for its noise (:mod:`jcdcodec.choose`).
    """
    _Ctx.quiet = quiet
    todo = targets(inputs, output, suffix, no_clobber, any_name)
    _Ctx.data_on_stdout = any(t.dst == STDIO for t in todo)
    if auto:
        from ..choose import AutoCodec

        codec_options.pop("weights", None)
        return todo, AutoCodec(engine=engine, **codec_options)  # loads a model when an image first chooses it
    with status("loading weights"):
        if encoding:
            from ..encoder import open_encoder

            return todo, open_encoder(engine=engine, **codec_options)
        from ..decoder import open_decoder

        return todo, open_decoder(engine=engine, **codec_options)


def _named(t: Target, message: str) -> str:
    """Every per-file message names its file (the input, unless it is about the output)."""
    return message if message.startswith((str(t.src), str(t.dst))) else f"{t.src}: {message}"


def _each(todo: list[Target], verb: str, work) -> None:
    """Run ``work(target)`` for every target with a progress bar; one failing file does not stop the rest."""
    if len(todo) == 1:
        with tile_progress(f"{verb} {todo[0].src.name}"):
            try:
                work(todo[0])
            except JcdError as e:
                raise type(e)(_named(todo[0], str(e))) from None
        todo[0].done()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    failed = 0
    cols = [TextColumn(f"[bold]{verb}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*cols, console=err, disable=_Ctx.quiet or not err.is_terminal, transient=True) as bar:
        task = bar.add_task(verb, total=len(todo))
        for t in todo:
            try:
                work(t)
            except JcdError as e:
                failed += 1
                err.print(f"jcd: error: {_named(t, str(e))}", soft_wrap=True, markup=False)
            else:
                t.done()
            bar.advance(task)
    if failed:
        raise JcdError(f"{failed} of {len(todo)} files failed")
