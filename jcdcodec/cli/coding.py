"""The codec commands: encode, decode, info, models, compare (thin layers over the Python API)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path

import click
from click.core import ParameterSource

from ..errors import DoesNotFit, JcdError
from .app import cli
from .batch import Target, _batch, _each, _expand, _rate_target
from .common import (
    QUALITY,
    STDIO,
    _Ctx,
    _read_input,
    _write_output,
    codec_options,
    device_option,
    encode_engine_option,
    engine_option,
    err,
    no_clobber_option,
    not_an_input,
    out,
    preserve_option,
    recursive_option,
    say,
    skip_existing_option,
    threads_option,
    weights_option,
)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-q", "--quality", "quality", type=QUALITY, default="4", show_default=True,
              help="Quality 1 (smallest) .. 6 (best); fractions such as 3.5 interpolate (variable-rate weights).")
@click.option("--size", "size", default=None, help="Instead of -q: the best quality whose file fits in this many "
              "bytes (e.g. 20000, or 20k = 20 KiB).")
@click.option("--bpp", "bpp", type=float, default=None, help="Instead of -q: the best quality at or below this "
              "rate (bits per pixel, whole file).")
@click.option("-o", "--output", type=click.Path(), help="Output .jcd file (replaced if it exists), or a directory "
              "for several inputs, created if missing [default: beside each input; never over an existing file].")
@no_clobber_option
@skip_existing_option
@preserve_option
@recursive_option
@click.option("--any-name", is_flag=True, help="Allow -o to name a .jcd stream with an image extension (.png, ...).")
@click.option("--metadata", "keep", default="all", show_default=True, metavar="KINDS",
              help="What of the input's ICC colour profile, EXIF, XMP, CICP (HDR), text (a PNG's text chunks, a "
              "JPEG's comment) and resolution (dpi) to keep: all, none, or e.g. icc,exif (icc keeps CICP and dpi "
              "too). "
              "Kept metadata goes back into the decoded file; a stream with any needs jcd 0.2 or later to decode. "
              "An sRGB profile is not stored (no profile means sRGB).")
@encode_engine_option
@threads_option
@codec_options
@click.pass_context
def encode(ctx: click.Context, inputs: tuple[Path, ...], quality: float, size: str | None, bpp: float | None,
           output: str | None, no_clobber: bool, skip_existing: bool, preserve: bool, recursive: bool,
           any_name: bool, keep: str, engine: str,
           threads: int,
           weights: Path | None,
           device: str, max_pixels: int, max_memory: int, precision: str, quiet: bool) -> None:  # fmt: skip
    """Compress (and denoise) images into .jcd files.

    Reads what Pillow reads (PNG, JPEG, TIFF, WebP, AVIF, BMP, GIF, ...), HEIC and JPEG XL: grey, palette, RGB, CMYK,
    with or without alpha, 8 or 16 bits (10- and 12-bit HEIC as 16), float TIFF. Alpha is stored losslessly
    beside the image; the ICC profile, EXIF, XMP, CICP (HDR), text (PNG text chunks, JPEG comments) and
    resolution ride along (--metadata). Camera raw files (DNG,
    CR2, CR3, NEF, ARW, RAF, ...) are developed first, at 16 bits (LibRaw: the camera's white balance, sRGB, no
    noise reduction). Several inputs (or a directory) share one weights load; a file that fails is reported and
    the rest are still coded. A directory's files that are not images (videos, sidecars) and its raw files with
    a picture of the same name beside them (RAW+JPEG) are skipped and named in one warning each; the folders
    inside it are coded too with -r, into the same folders below -o.
    Without --weights, each image is coded by the default model (`jcd models`), or by a model whose manifest
    entry claims images that noisy (an `auto` rule; none of the shipped models has one).
    An output name jcd makes up (NAME.jcd beside the input or in the -o directory) never replaces a file:
    when it exists, NAME-1.jcd is written instead, and jcd says so.

    \b
      jcd encode noisy.png -q 4 -o out.jcd
      jcd encode photos/ -q 3 -o coded/      every file of a directory
      jcd encode DCIM/ -r -o coded/          and of the folders inside it (coded/100APPLE/...)
      cat noisy.png | jcd encode - -q 2 -o - > out.jcd
    """
    from ..choose import AUTO
    from ..imageio import load_image
    from ..metadata import parse_keep, within_stream

    target = _rate_target(ctx, size, bpp)
    kinds = parse_keep(keep)
    auto = weights is None or (str(weights) == AUTO and not weights.is_file())
    todo, codec = _batch(inputs, output, ".jcd", quiet, no_clobber, any_name, engine=engine, auto=auto,
                         encoding=True, recursive=recursive, skip_existing=skip_existing, weights=weights,
                         device=device, max_pixels=max_pixels, precision=precision, max_memory=max_memory,
                         threads=threads)  # fmt: skip

    def work(t: Target) -> None:
        src, dst = t.src, t.dst
        t0 = time.perf_counter()
        picture = load_image(_read_input(src, max_pixels), name=str(src), max_pixels=max_pixels)
        picture.meta = within_stream(picture.meta.kept(kinds), str(src))  # what the user keeps, if it fits
        if target is None:
            enc = codec.encode(picture, quality)
        else:
            kind, value = target
            pixels = picture.width * picture.height
            try:
                enc = codec.encode_to_size(picture, int(value) if kind == "size" else int(value * pixels / 8))
            except DoesNotFit as e:
                raise e if kind == "size" else e.in_bpp(value, pixels) from None
        _write_output(dst, enc.data, t.clobber)
        _warn_if_metadata_dominates(src, picture.meta, len(enc.data))
        bpp = len(enc.data) * 8 / (picture.width * picture.height)
        chosen = ""
        if auto:  # which model coded it, and why when something was measured to choose it
            why = codec.last.describe()
            chosen = f", {codec.last_codec.ref.name}" + (f" ({why})" if why else "")
        say(f"{src} ({picture.width}x{picture.height}) -> {dst}: {len(enc.data)} bytes, {bpp:.4f} bpp, "
            f"q{enc.header.quality:g}{chosen}, {time.perf_counter() - t0:.2f} s")  # fmt: skip

    _each(todo, "encoding", work, preserve)


#: Metadata above this many bytes (deflated, as the stream holds it) and above half the stream is pointed out.
METADATA_NOTED = 64 << 10


def _warn_if_metadata_dominates(src: Path, meta, size: int) -> None:
    """Say when the kept metadata is most of a stream (Photoshop's XMP grows with every save, megabytes of
    document history): the user chose a codec for small files, and ``--metadata`` is the lever."""
    import warnings

    from ..errors import JcdWarning
    from ..metadata import LABELS, pack

    held = len(pack(meta)) if meta else 0
    if held > METADATA_NOTED and 2 * held > size:
        sizes = meta.sizes()
        big = max(sizes, key=sizes.__getitem__)
        warnings.warn(f"{src}: metadata takes {held} of the stream's {size} bytes, most of it the {LABELS[big]} "
                      f"({sizes[big]} bytes unpacked); --metadata icc keeps the colour and leaves the rest out",
                      JcdWarning, stacklevel=2)  # fmt: skip


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(),
              help="Output image (PNG, TIFF, BMP, WebP, JPEG, AVIF by extension; replaced if it exists), or a "
              "directory for several inputs, created if missing [default: INPUT.png; never over an existing file].")
@no_clobber_option
@skip_existing_option
@preserve_option
@recursive_option
@click.option("--depth", type=click.Choice(["auto", "8", "16"]), default="auto", show_default=True,
              help="Bits per sample of the output (16 needs .png or .tif). auto: the source image's depth when the "
              "output is a PNG or TIFF (a 16-bit source gives a 16-bit PNG), else 8.")
@click.option("--format", "out_format", type=click.Choice(["png", "tiff", "bmp", "webp", "jpg", "avif", "ppm"]),
              default="png", show_default=True,
              help="Image format of the files whose names jcd makes (a directory's, or without -o: NAME.jpg with "
              "jpg) and of stdout (-o -). A file named with -o takes the format its extension says.")
@click.option("--output-quality", type=click.IntRange(1, 100), default=90, show_default=True,  # imageio.OUTPUT_QUALITY
              metavar="1..100", help="Quality of a JPEG, WebP or AVIF output, on the scale of each (from 90 up "
              "JPEG and AVIF keep the colour at full resolution). Every lossy output loses some of what was decoded: "
              "at 90 up to 0.2 dB, at JPEG's usual 75 about 0.5 dB. PNG and TIFF lose nothing.")
@click.option("--metadata", "keep", default="all", show_default=True, metavar="KINDS",
              help="What of the stream's ICC colour profile, EXIF, XMP, CICP, text and resolution (dpi) to write "
              "into the image: all, none, or e.g. icc (keeps the colours, CICP and dpi too; leaves out camera, date, "
              "location and author before sharing).")
@engine_option
@threads_option
@codec_options
@click.pass_context
def decode(ctx: click.Context, inputs: tuple[Path, ...], output: str | None, no_clobber: bool, skip_existing: bool,
           preserve: bool, recursive: bool, depth: str,
           out_format: str,
           output_quality: int, keep: str, engine: str, threads: int, weights: Path | None, device: str,
           max_pixels: int, max_memory: int, precision: str, quiet: bool) -> None:  # fmt: skip
    """Decode .jcd files into clean images.

    Without -o, out.jcd decodes to out.png; when that file exists (often the original photo) it is kept
    and out-1.png is written instead, and jcd says so.

    \b
      jcd decode out.jcd -o clean.png
      jcd decode coded/ -o clean/            every .jcd file of a directory
      jcd decode coded/ -r -o clean/         and of the folders inside it
      jcd decode coded/ -o web/ --format jpg   as JPEGs (--output-quality 1..100)
      cat out.jcd | jcd decode - -o - > clean.png
    """
    from ..imageio import WRITE_FORMATS, check_output, encode_picture, save_picture
    from ..metadata import parse_keep

    kinds = parse_keep(keep)
    suffix = f".{out_format}"
    if ctx.get_parameter_source("out_format") != ParameterSource.DEFAULT and output not in (None, str(STDIO)):
        one_file = len(inputs) == 1 and not inputs[0].is_dir() and not Path(output).is_dir()
        named = WRITE_FORMATS.get(Path(output).suffix.lower())
        if one_file and not output.endswith(("/", os.sep)) and named not in (None, WRITE_FORMATS[suffix]):
            raise click.UsageError(f"-o {output} names a {named} file and --format {out_format} a "
                                   f"{WRITE_FORMATS[suffix]} one: give one of them")  # fmt: skip
    todo, codec = _batch(inputs, output, suffix, quiet, no_clobber, engine=engine, recursive=recursive,
                         skip_existing=skip_existing, weights=weights, device=device, max_pixels=max_pixels,
                         precision=precision, max_memory=max_memory, threads=threads)  # fmt: skip

    def work(t: Target) -> None:
        src, dst = t.src, t.dst
        t0 = time.perf_counter()
        asked = None if depth == "auto" else int(depth)
        if dst != STDIO:
            check_output(dst, asked)  # before the work, not after it
        elif asked == 16 and out_format not in ("png", "tiff"):
            raise JcdError("16-bit output needs --format png or tiff")
        p = codec.decode(_read_input(src, max_pixels)).picture
        p.meta = p.meta.kept(kinds)
        if dst == STDIO:
            data, bits = encode_picture(p, WRITE_FORMATS[f".{out_format}"], asked, name="stdout",
                                        quality=output_quality)  # fmt: skip
            _write_output(dst, data)
        else:
            bits = save_picture(dst, p, asked, clobber=t.clobber, quality=output_quality)
        say(f"{src} -> {dst} ({p.width}x{p.height}, {bits}-bit), {time.perf_counter() - t0:.2f} s")

    _each(todo, "decoding", work, preserve)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: an object for one file; for "
              "several, a list of objects with their \"file\" (and \"error\" for a file that is no stream).")
@recursive_option
def info(inputs: tuple[Path, ...], as_json: bool, recursive: bool) -> None:
    """Show what .jcd files hold (no weights needed).

    \b
      jcd info out.jcd
      jcd info coded/ --json       every .jcd file of a directory
      jcd info coded/ -r           and of the folders inside it
    """
    from rich.markup import escape

    from ..streaminfo import stream_info

    def info_of(path: Path) -> dict:
        data = _read_input(path)  # its errors name the file
        try:
            return stream_info(data).to_dict()
        except JcdError as e:  # say which file, as decode does
            raise type(e)(f"{path}: {e}") from None

    files = [f for f, _ in _expand(inputs, True, recursive)]
    if len(files) == 1:
        i = info_of(files[0])
        if as_json:
            click.echo(json.dumps(i, indent=2))
        else:
            _print_info(i)
        return
    listed, failed = [], 0
    for n, path in enumerate(files):
        try:
            i = {"file": str(path), **info_of(path)}
        except JcdError as e:  # reported, and the other files are still shown
            failed += 1
            listed.append({"file": str(path), "error": str(e).removeprefix(f"{path}: ")})  # "file" names it
            err.print(f"jcd: error: {e}", soft_wrap=True, markup=False)
            continue
        listed.append(i)
        if not as_json:
            out.print(("\n" if n else "") + f"[bold]{escape(str(path))}[/bold]", soft_wrap=True)
            _print_info(i)
    if as_json:
        click.echo(json.dumps(listed, indent=2))
    if failed:
        raise JcdError(f"{failed} of {len(files)} files are not readable streams")


def _print_info(i: dict) -> None:
    from rich.markup import escape

    from ..metadata import LABELS

    name = i["weights_name"] or "unknown weights"
    if i["weights_trained"] is False:
        name += " (RANDOMLY INITIALISED, not trained)"
    shape = lambda s: "x".join("?" if v is None else str(v) for v in s)  # noqa: E731
    rows = [
        ("format", i["format"]),
        ("image", f"{i['width']}x{i['height']} {i['colour']}, {i['bit_depth']}-bit"
                  + (", alpha (lossless)" if i["alpha"] else "")),
        ("quality", f"{i['quality']:g}"),
        ("weights", f"{name} [{i['weights_fingerprint']}]"),
        ("coded size", f"{i['padded_size'][0]}x{i['padded_size'][1]} (padding {i['padding'][0]}x{i['padding'][1]})"),
        ("latents", f"y {shape(i['y_shape'])}, z {shape(i['z_shape'])}"),
        ("bytes", f"{i['bytes_total']} total: y {i['bytes_y']}, z {i['bytes_z']}, alpha {i['bytes_alpha']}, "
                  + (f"metadata {i['bytes_metadata']}, " if i["bytes_metadata"] else "")
                  + f"header+checksums {i['bytes_header']}"),
        ("metadata", ", ".join(f"{LABELS[k]} {i['cicp']}" if k == "cicp" else
                               f"{LABELS[k]} {n} bytes ({', '.join(i['text'])})" if k == "text" else
                               f"{LABELS[k]} {i['dpi'][0]:g} x {i['dpi'][1]:g} dpi" if k == "dpi" else
                               f"{LABELS[k]} {n} bytes" for k, n in i["metadata"].items()) or "none"),
        ("bpp", f"{i['bpp']:.4f}"),
        ("checksum", i["checksum"]),
    ]  # fmt: skip
    for k, v in rows:
        out.print(f"[bold]{k:>11}[/bold]  {escape(str(v))}", soft_wrap=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the manifest's entries).")
def models(as_json: bool) -> None:
    """List the shipped models (models/manifest.json) and what each was trained for.

    Pick one with --weights NAME; without it, `jcd encode` picks for each image by how noisy it looks.
    Streams record their model, so decoding needs no choice.
    """
    from rich.markup import escape

    from ..manifest import intended_use, models_dir, read_manifest

    manifest = read_manifest()
    entries = manifest.get("models", {})
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
        return
    if not entries:
        raise JcdError(f"no shipped models in {models_dir()}")
    for name, e in entries.items():
        mark = " (default)" if name == manifest.get("default") else ""
        cfg = e.get("config", {})
        qs = cfg.get("qualities", [])
        out.print(f"[bold]{name}[/bold]{mark}", soft_wrap=True)
        out.print(escape(f"  file      {e.get('file')} [{str(e.get('sha256', ''))[:8]}]"), soft_wrap=True)
        syn = e.get("synthesis")
        decoder = f"{syn['file']} (no PyTorch needed)" if syn else "PyTorch (no .synthesis.onnx file)"
        out.print(escape(f"  decodes   with {decoder}"), soft_wrap=True)
        out.print(f"  model     N={cfg.get('N')}, qualities {qs[0] if qs else '?'}-{qs[-1] if qs else '?'}"
                  f", {e.get('steps', '?')} training steps", soft_wrap=True)  # fmt: skip
        out.print(f"  made for  {intended_use(e)}", soft_wrap=True)
        bound = (e.get("auto") or {}).get("below_noise")
        if bound:
            out.print(f"  encodes   images whose estimated noise is below {bound:g}/255 when no --weights is "
                      "given (the default codes the rest)", soft_wrap=True)  # fmt: skip
    retired = manifest.get("retired", [])
    if retired:
        out.print(f"\n{len(retired)} earlier versions of these models are no longer shipped; streams they made name "
                  "the commit that holds their weights (`jcd models --json` lists them, docs/models.md)",
                  soft_wrap=True, markup=False)  # fmt: skip


@cli.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--visual", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the images side by side (the same crop of each, captioned) to this PNG.")
@click.option("--crop", default=None, help="Crop for --visual: X,Y,W,H, or S for a centred SxS square.")
@click.option("--zoom", type=click.IntRange(1, 8), default=1, show_default=True, help="Enlarge the crops.")
@click.option("--labels", default=None, help="Captions for IMAGES, comma-separated [default: file names].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (null for a score that is not "
              "defined: the PSNR of an identical picture, the MS-SSIM of one under 161 pixels a side).")
@weights_option
@device_option
def compare(reference: Path, images: tuple[Path, ...], visual: Path | None, crop: str | None, zoom: int,
            labels: str | None, as_json: bool, weights: Path | None, device: str) -> None:  # fmt: skip
    """Score IMAGES against REFERENCE: PSNR and MS-SSIM on 8-bit values.

    Any of them may be a .jcd file: it is decoded, and its bpp is shown.

    \b
      jcd compare clean.png decoded.png noisy.png
      jcd compare clean.png noisy.png out.jcd --visual side.png --crop 256 --zoom 2
    """
    from ..compare import parse_crop, score, side_by_side

    _Ctx.data_on_stdout = as_json
    names = [p.name for p in images] if labels is None else [v.strip() for v in labels.split(",")]
    if len(names) != len(images):
        raise JcdError(f"--labels gives {len(names)} captions for {len(images)} images")
    if visual is not None:  # before any work: what it would overwrite, and what it would be
        not_an_input(visual, [reference, *images], "--visual")
        if visual.suffix.lower() != ".png":
            raise JcdError(f"{visual}: --visual writes a PNG; give it a .png name")
    ref, _ = _picture_or_decoded(reference, weights, device)
    box = parse_crop(crop, ref.shape[1], ref.shape[0]) if visual is not None else None
    scores, pictures = [], []
    for path, name in zip(images, names, strict=True):
        rgb, bpp = _picture_or_decoded(path, weights, device)
        scores.append(score(ref, rgb, name, bpp))
        pictures.append(rgb)
    if as_json:  # JSON has no NaN or infinity (Python would write them, and other readers refuse them): null
        def finite(v: object) -> object:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        rows = [{k: finite(v) for k, v in dataclasses.asdict(s).items()} for s in scores]
        click.echo(json.dumps(rows, indent=2, allow_nan=False))
    else:
        for s in scores:
            rate = f"  {s.bpp:.4f} bpp" if s.bpp is not None else ""
            db = "inf (identical)" if s.psnr == math.inf else f"{s.psnr:.2f} dB"
            ssim = f"{s.ms_ssim:.4f}" if math.isfinite(s.ms_ssim) else "n/a (needs 161 pixels a side)"
            say(f"{s.label}: PSNR {db}  MS-SSIM {ssim}{rate}")
    if visual is not None:
        from ..outputs import atomic_target

        captions = [f"{s.label}\n{s.psnr:.2f} dB" + (f", {s.bpp:.3f} bpp" if s.bpp is not None else "")
                    for s in scores] + [f"{reference.name}\n(reference)"]  # fmt: skip
        figure = side_by_side([*pictures, ref], captions, box, zoom)
        with atomic_target(visual) as tmp:
            figure.save(tmp, format="PNG")
        say(f"wrote {visual} ({figure.width}x{figure.height})")


def _picture_or_decoded(path: Path, weights: Path | None, device: str):
    """(float RGB, bpp or None): an image file as read, a .jcd file as decoded."""
    from ..bitstream import looks_like_jcd
    from ..imageio import load_image

    data = _read_input(path)
    if not looks_like_jcd(data):
        return load_image(data, name=str(path)).rgb, None
    from ..api import decoder_for

    p = decoder_for(weights, device).decode(data).picture
    return p.rgb, len(data) * 8 / (p.width * p.height)


