"""Many files in, many files out: (input, output) pairs, one Codec, a progress bar, per-file errors."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import JcdError, JcdWarning, ModelUnavailable
from .common import STDIO, _Ctx, err, not_an_input, refuse_terminals, same_file, status, tile_progress


def _expand(inputs: tuple[Path, ...], decoding: bool, recursive: bool = False,
            skip: Path | None = None) -> list[tuple[Path, Path]]:  # fmt: skip
    """Each input file with the name its output takes in an output directory: a file named on the command line
    keeps its own name; a directory stands for the files inside it, by their path below it.

    A directory's files are its .jcd files when decoding; when encoding, its images (by name or by their first
    bytes) and camera raw files, so that a folder holding its photos, their .jcd files and what cameras and phones
    put beside them (videos, sidecars, the raw file of a RAW+JPEG pair) is coded without an error for each of
    those; the skipped files are named in one warning. With ``recursive``, the folders inside it too (not
    hidden ones, not through symbolic links, which may loop, and not ``skip``: the output directory, whose new
    files must not become inputs); without it they are named in a warning, since a tree of photos (a phone's
    DCIM) would otherwise be coded in part without a word. Files named one by one are all tried."""
    out: list[tuple[Path, Path]] = []
    for p in inputs:
        if not p.is_dir():
            out.append((p, Path(p.name)))
            continue
        files, skipped, paired, left_out = [], [], [], _LeftOut([], [], [])
        for entries in _folders(p, recursive, skip, left_out):
            kept, others, raws = _classify(entries, decoding)
            files += kept
            skipped += others
            paired += raws
        for folders, why in ((left_out.below, "inside it ({}): -r/--recursive codes them too"),
                             (left_out.links, "reached through a symbolic link ({}): name them to code them"),
                             (left_out.unreadable, "that cannot be read ({})")):  # fmt: skip
            if folders:
                what = "folders" if len(folders) > 1 else "folder"
                names = ", ".join(str(f.relative_to(p)) + (f": {e}" if e else "") for f, e in folders[:5])
                more = f" and {len(folders) - 5} more" if len(folders) > 5 else ""
                warnings.warn(f"{p}: skipped {len(folders)} {what} {why.format(names + more)}", JcdWarning,
                              stacklevel=2)  # fmt: skip
        if skipped:
            what = "files that are not images" if len(skipped) > 1 else "file that is not an image"
            warnings.warn(f"{p}: skipped {len(skipped)} {what}: {_first_five(skipped, p)}", JcdWarning, stacklevel=2)
        if paired:
            from .. import rawphoto

            what = "camera raw files" if len(paired) > 1 else "camera raw file"
            why = ("a picture of the same name is beside each (RAW+JPEG): that is coded instead" if
                   rawphoto.available() else "developing them needs rawpy: pip install rawpy")  # fmt: skip
            warnings.warn(f"{p}: skipped {len(paired)} {what} ({why}): {_first_five(paired, p)}", JcdWarning,
                          stacklevel=2)  # fmt: skip
        if not files:
            where = "this directory or the folders inside it" if recursive else "this directory"
            raise JcdError(f"{p}: no {'.jcd files' if decoding else 'images'} in {where}")
        out.extend((f, f.relative_to(p)) for f in files)
    return _once(out)


def _once(files: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """``files`` with each file once (the first time it comes), the repeats named in one warning: a file given
    twice (`jcd encode *.png a.png`, a folder and a file inside it, a link and its file) was coded twice, the
    second output under a NAME-1 name."""
    times: dict[object, list] = {}  # the file's identity: [its first path, how many times it came]
    kept = []
    for f, below in files:
        try:
            st = f.stat()
            key: object = (st.st_dev, st.st_ino)
        except OSError:  # missing or unreadable: its own error comes when it is read
            key = str(f)
        if key in times:
            times[key][1] += 1
            continue
        times[key] = [f, 1]
        kept.append((f, below))
    again = [(f, n) for f, n in times.values() if n > 1]
    if again:
        names = ", ".join(f"{f} ({'twice' if n == 2 else f'{n} times'})" for f, n in again[:5])
        more = f" and {len(again) - 5} more" if len(again) > 5 else ""
        warnings.warn(f"given more than once, taken once: {names}{more}", JcdWarning, stacklevel=3)
    return kept


@dataclass(frozen=True)
class _LeftOut:
    """The folders of a directory input that a user would look for and that are not read, each with the reason
    to print beside it ("" for none): ``below`` without -r, ``links`` (symbolic links to folders) and
    ``unreadable`` ones with it."""

    below: list[tuple[Path, str]]
    links: list[tuple[Path, str]]
    unreadable: list[tuple[Path, str]]


def _folders(root: Path, recursive: bool, skip: Path | None, left_out: _LeftOut) -> list[list[Path]]:
    """What ``root`` holds and, with ``recursive``, what the folders below it hold (depth first, in name order),
    a list per folder; hidden folders and ``skip`` are left out without a word, the rest of what is not read into
    ``left_out``. A folder inside that cannot be listed is left out; ``root`` itself is an error."""
    found, todo = [], [root]
    while todo:
        folder = todo.pop(0)
        try:
            entries = sorted(folder.iterdir())
        except OSError as e:
            if folder == root:
                raise JcdError(f"{folder}: cannot list ({e.strerror or e})") from None
            left_out.unreadable.append((folder, e.strerror or str(e)))
            continue
        found.append(entries)
        inside = [d for d in entries if d.is_dir() and not d.name.startswith(".")]
        inside = [d for d in inside if not (skip is not None and same_file(d, skip))]
        if not recursive:
            left_out.below.extend((d, "") for d in inside)
        else:
            todo[:0] = [d for d in inside if not d.is_symlink()]
            left_out.links.extend((d, "") for d in inside if d.is_symlink())
    return found


def _classify(entries: list[Path], decoding: bool) -> tuple[list[Path], list[Path], list[Path]]:
    """A folder's files to code, those that are not images, and the raw files left out (:func:`_paired_raws`)."""
    from ..formats import RAW_SUFFIXES, camera_raw, file_head, image_format

    files = [f for f in entries if f.is_file() and not f.name.startswith(".")]
    files = [f for f in files if (f.suffix.lower() == ".jcd") == decoding]
    if decoding:
        return files, [], []
    suffixes = image_suffixes()  # files named as images or raws are told by name; the rest by their bytes
    heads = {f: file_head(f) for f in files if f.suffix.lower() not in suffixes | RAW_SUFFIXES}
    raws = [f for f in files if f.suffix.lower() in RAW_SUFFIXES or (f in heads and camera_raw(heads[f]))]
    rest = [f for f in files if f not in raws]
    images = [f for f in rest if f.suffix.lower() in suffixes or image_format(heads[f]) is not None]
    paired = _paired_raws(raws, images)
    kept = [f for f in files if f in images or (f in raws and f not in paired)]
    return kept, [f for f in rest if f not in images], paired


def _paired_raws(raws: list[Path], images: list[Path]) -> list[Path]:
    """The raw files of a folder that are not coded: those with a picture of the same name beside them (RAW+JPEG,
    as cameras shoot: the camera developed it already), or all of them where rawpy is not installed."""
    from .. import rawphoto

    if not rawphoto.available():
        return raws
    stems = {f.stem.casefold() for f in images}
    return [f for f in raws if f.stem.casefold() in stems]


def _first_five(files: list[Path], root: Path) -> str:
    """The names of a warning's files (their paths below ``root``): the first five, then how many more."""
    names = [str(f.relative_to(root)) for f in files[:5]]
    return ", ".join(names) + (f" and {len(files) - 5} more" if len(files) > 5 else "")


@dataclass(frozen=True)
class Target:
    """One unit of work: read ``src``, write ``dst``; ``clobber`` says whether an existing ``dst`` may go."""

    src: Path
    dst: Path
    clobber: bool
    instead_of: Path | None = None  # the name jcd derived first, which an existing file already has
    why: str = "exists and was kept"  # why ``instead_of`` was not used
    root: Path | None = None  # the -o directory: the folders between it and ``dst`` are made as needed (-r)

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


def free_name(path: Path, taken: set[str], on_disk: bool = True) -> Path:
    """``path``, or ``stem-1.ext``, ``stem-2.ext``, ... : the first name that no file has and no other target took.

    ``taken`` holds the other targets' names case-folded: IMG.PNG and img.png would both become the same file on
    a case-insensitive disk (macOS, Windows, a FAT or exFAT card a folder is copied to), one replacing the other.
    ``on_disk=False``: the files already there do not count (the names a first run into an empty folder gives,
    which --skip-existing looks for).
    """
    candidate, k = path, 0
    while on_disk and (candidate.exists() or candidate.is_symlink()) or str(candidate).casefold() in taken:
        k += 1
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return candidate


def targets(
    inputs: tuple[Path, ...], output: str | None, suffix: str, no_clobber: bool = False, any_name: bool = False,
    recursive: bool = False, skip_existing: bool = False,
) -> list[Target]:
    """What to write for each input; never a derived name over an existing file, never over the input.

    ``output`` is -o as typed: a file (one input), ``-`` (stdout), or a directory (several inputs, a directory
    input, or a name ending in /), created when missing, where the files of a directory input keep their paths
    below it (``recursive``: the folders inside it are coded too, :func:`_expand`). Without -o each output goes
    beside its input. A name jcd derives itself never replaces a file: it takes the first free ``NAME-k`` and
    says so. A file named with -o is replaced (as cwebp and avifenc do) unless ``no_clobber``.
    ``skip_existing``: derived names are those a first run into an empty folder gives, so that the caller can
    leave out the targets whose output exists (:func:`skip_done`).
    """
    if STDIO in inputs and len(inputs) > 1:
        raise JcdError("'-' (stdin) must be the only input")
    if output is not None and not output.strip():  # Path("") is ".": it was taken for the current directory
        raise JcdError("-o names nothing: give a file, a directory, or - for stdout")
    out_path = None if output is None else Path(output)
    if inputs == (STDIO,):
        if out_path is None:
            raise JcdError("reading stdin: give -o FILE, or -o - for stdout")
        pairs = [Target(STDIO, out_path, not no_clobber)]
    else:
        many = len(inputs) > 1 or any(p.is_dir() for p in inputs)
        trailing_slash = output is not None and output.endswith(("/", os.sep))
        as_dir = out_path is not None and (many or out_path.is_dir() or trailing_slash)
        files = _expand(inputs, suffix != ".jcd", recursive, out_path if as_dir else None)
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
            pairs = [Target(files[0][0], out_path, not no_clobber)]
        else:
            taken: set[str] = set()
            exact: set[Path] = set()
            pairs = []
            for f, below in files:
                wanted = (out_path / below if as_dir else f).with_suffix(suffix)
                dst = free_name(wanted, taken, on_disk=not skip_existing)
                folded = str(wanted).casefold() in taken and wanted not in exact and not wanted.exists()
                why = "differs from another output's name only in case" if folded else "exists and was kept"
                taken.add(str(dst).casefold())
                exact.add(dst)
                root = out_path if as_dir else None
                pairs.append(Target(f, dst, False, None if dst == wanted else wanted, why, root))
    images = image_suffixes()
    for t in pairs:
        if t.dst == STDIO:
            continue
        if t.src != STDIO:
            not_an_input(t.dst, [t.src])
        if suffix == ".jcd" and t.dst.suffix.lower() in images and not any_name:
            raise JcdError(f"{t.dst}: a .jcd stream under an image extension; use a .jcd name (or --any-name)")
        if suffix != ".jcd" and t.dst.suffix.lower() == ".jcd":
            raise JcdError(f"{t.dst}: an image under a .jcd name; use an image extension such as .png")
    return pairs


def skip_done(todo: list[Target]) -> list[Target]:
    """The targets whose output file does not exist yet (--skip-existing), the others named in one note: a batch
    that was stopped goes on where it stopped. An output that exists is complete, as jcd writes each one whole or
    not at all (a file of the same name made by something else is left out too, and named)."""
    there = [t.dst != STDIO and (t.dst.exists() or t.dst.is_symlink()) for t in todo]
    done = [t for t, d in zip(todo, there, strict=True) if d]
    if done and not _Ctx.quiet:
        names = [str(t.dst) for t in done[:5]]
        more = f" and {len(done) - 5} more" if len(done) > 5 else ""
        err.print(f"jcd: {len(done)} of {len(todo)} left out, their outputs exist (--skip-existing): "
                  f"{', '.join(names)}{more}", soft_wrap=True, markup=False)  # fmt: skip
    return [t for t, d in zip(todo, there, strict=True) if not d]


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
           recursive: bool = False, skip_existing: bool = False, **codec_options):  # fmt: skip
    """What encode and decode share: the targets, where messages go, one coder for all of them.

    ``engine``: onnx, torch or auto, see :func:`jcdcodec.encoder.open_encoder` and
    :func:`jcdcodec.decoder.open_decoder`. ``encoding``: a coder that encodes (else one that decodes).
    ``auto`` (encoding only): each image gets the shipped model chosen for its noise (:mod:`jcdcodec.choose`).
    """
    _Ctx.quiet = quiet
    if output not in (None, str(STDIO)) and not Path(output).exists():  # -o DIR/ made for this run: not left
        ctx = click.get_current_context(silent=True)  # behind empty when the run writes nothing into it
        made = [Path(output), *(p for p in Path(output).parents if not p.exists())]
        if ctx is not None:
            ctx.call_on_close(lambda: _remove_if_empty(made))
    todo = targets(inputs, output, suffix, no_clobber, any_name, recursive, skip_existing)
    _Ctx.data_on_stdout = any(t.dst == STDIO for t in todo)
    refuse_terminals(any(t.src == STDIO for t in todo), _Ctx.data_on_stdout)  # before the weights load
    if skip_existing and not (todo := skip_done(todo)):
        return todo, None  # nothing left to do: no weights to load
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


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (innermost first) while each is an empty directory: the -o directory, and the folders
    above it, that a run made and wrote nothing to."""
    for folder in folders:
        try:
            if not folder.is_dir() or folder.is_symlink() or any(folder.iterdir()):
                return
            folder.rmdir()
        except OSError:  # not ours to judge further: leave it
            return


def _named(t: Target, message: str) -> str:
    """Every per-file message names its file (the input, unless it is about the output)."""
    return message if message.startswith((str(t.src), str(t.dst))) else f"{t.src}: {message}"


def _in_its_folder(t: Target, work) -> None:
    """``work(t)``, its output's folder below the -o directory created first when missing (a folder inside a
    directory input, coded with -r), and removed again when the work fails and it is still empty. A missing
    folder in a file's -o is the user's typo: an error, as before."""
    missing: list[Path] = []
    folder = t.dst.parent
    while t.root is not None and folder != t.root and t.root in folder.parents and not folder.is_dir():
        missing.insert(0, folder)
        folder = folder.parent
    made: list[Path] = []
    try:
        for folder in missing:
            try:
                folder.mkdir()
            except FileExistsError:
                if not folder.is_dir():
                    raise JcdError(f"{t.dst}: cannot create its folder ({folder} is a file)") from None
            except OSError as e:
                raise JcdError(f"{t.dst}: cannot create its folder ({e.strerror or e})") from None
            else:
                made.append(folder)
        work(t)
    except BaseException:
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:  # not empty, or gone: leave it
                break
        raise


def _preserved(t: Target) -> None:
    """Give ``t``'s output its input's modification time and permissions (--preserve), as oxipng's and
    jpegoptim's -p do, with its extended attributes where the disk has them (shutil.copystat)."""
    if t.src == STDIO or t.dst == STDIO:
        return
    import shutil

    try:
        shutil.copystat(t.src, t.dst)
    except OSError as e:
        warnings.warn(f"{t.dst}: written, but its input's date and permissions could not be given to it "
                      f"({e.strerror or e})", JcdWarning, stacklevel=2)  # fmt: skip


def _each(todo: list[Target], verb: str, work, preserve: bool = False) -> None:
    """Run ``work(target)`` for every target with a progress bar; one failing file does not stop the rest.
    ``preserve``: each output takes its input's date and permissions (:func:`_preserved`)."""

    def preserving(t: Target) -> None:  # the same work, then the input's date and permissions
        work(t)
        _preserved(t)

    job = preserving if preserve else work
    if len(todo) == 1:
        with tile_progress(f"{verb} {todo[0].src.name}"):
            try:
                _in_its_folder(todo[0], job)
            except JcdError as e:
                raise type(e)(_named(todo[0], str(e))) from None
        todo[0].done()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    failed = done = 0
    cols = [TextColumn(f"[bold]{verb}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*cols, console=err, disable=_Ctx.quiet or not err.is_terminal, transient=True) as bar:
        task = bar.add_task(verb, total=len(todo))
        for t in todo:
            try:
                _in_its_folder(t, job)
            except ModelUnavailable as e:  # the rest would fail alike, one line each: stop here
                err.print(f"jcd: error: {_named(t, str(e))}", soft_wrap=True, markup=False)
                raise _stopped(len(todo), done, failed + 1) from None
            except JcdError as e:
                failed += 1
                err.print(f"jcd: error: {_named(t, str(e))}", soft_wrap=True, markup=False)
            else:
                done += 1
                t.done()
            bar.advance(task)
    if failed:
        raise JcdError(f"{failed} of {len(todo)} files failed")


def _stopped(total: int, done: int, failed: int) -> JcdError:
    """The batch's last line when the weights it needs do not load: how far it got, and how to go on."""
    again = ", then run it again with --skip-existing" if done else ""
    return JcdError(f"stopped: the weights above do not load, {total - done - failed} of {total} files not tried "
                    f"({done} done, {failed} failed); mend or reinstall the weights{again}")  # fmt: skip
