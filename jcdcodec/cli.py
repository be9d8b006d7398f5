"""The ``jcd`` command: parse, call the API, report. No codec logic lives here."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from . import __version__
from .errors import JcdError

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


def say(message: str) -> None:
    if not _Ctx.quiet:
        (err if _Ctx.data_on_stdout else out).print(message, soft_wrap=True)


STDIO = Path("-")


def _read_input(path: Path) -> bytes:
    """A file's bytes, or stdin's for ``-``."""
    if path == STDIO:
        if sys.stdin.isatty():
            raise JcdError("reading from stdin, but stdin is a terminal: pipe a file in")
        return sys.stdin.buffer.read()
    if not path.exists():
        raise JcdError(f"{path}: no such file")
    if path.is_dir():
        raise JcdError(f"{path}: is a directory")
    try:
        return path.read_bytes()
    except OSError as e:
        raise JcdError(f"{path}: cannot read ({e.strerror})") from None


def _write_output(path: Path, data: bytes) -> None:
    """Atomically to a file, or to stdout for ``-``."""
    from .imageio import atomic_write_bytes

    if path != STDIO:
        atomic_write_bytes(path, data)
        return
    if sys.stdout.isatty():
        raise JcdError("refusing to write binary data to a terminal: redirect stdout or give -o FILE")
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _quality(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number (1..6, fractions allowed)") from None


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
    help="Weights file (.safetensors) or a shipped model's name (see `jcd models`) instead of the default. "
    "Without it, decoding uses whichever shipped model made the stream.",
)
quiet_option = click.option("--quiet", is_flag=True, help="Print nothing but errors.")
max_pixels_option = click.option("--max-pixels", default=64_000_000, show_default=True, help="Refuse larger images.")


def _bytes(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from .tiling import parse_bytes

    try:
        return parse_bytes(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


max_memory_option = click.option(
    "--max-memory",
    default="1.5G",
    show_default=True,
    callback=_bytes,
    help="Memory the networks may use (e.g. 800M, 4G). Larger images run in tiles; the stream is the same kind "
    "either way. A 24 Mpx photo peaks at about 1.9 GB in all with the default.",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="Arithmetic of the analysis/synthesis transforms (auto: bf16 where the hardware has it). The entropy "
    "path is always float64, so this never affects compatibility.",
)


def codec_options(f):
    """The options every coding command shares."""
    for option in (quiet_option, precision_option, max_memory_option, max_pixels_option, device_option,
                   weights_option):  # fmt: skip
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jcd")
def cli() -> None:
    """jcd - compress a noisy photo, decode a clean one.

    \b
      jcd encode noisy.png -q 4 -o out.jcd
      jcd decode out.jcd -o clean.png
      jcd info out.jcd
    """


def _expand(inputs: tuple[Path, ...], decoding: bool) -> tuple[Path, ...]:
    """Directories stand for the files directly inside them (.jcd files when decoding; other files when
    encoding, so a folder holding both its photos and their .jcd files can be encoded again)."""
    out: list[Path] = []
    for p in inputs:
        if not p.is_dir():
            out.append(p)
            continue
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        files = [f for f in files if (f.suffix.lower() == ".jcd") == decoding]
        if not files:
            raise JcdError(f"{p}: no {'.jcd files' if decoding else 'files to encode'} in this directory")
        out.extend(files)
    return tuple(out)


def _targets(inputs: tuple[Path, ...], output: Path | None, suffix: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one input may name its output file; several need an output directory."""
    if STDIO in inputs and len(inputs) > 1:
        raise JcdError("'-' (stdin) must be the only input")
    if inputs == (STDIO,):
        if output is None:
            raise JcdError("reading stdin: give -o FILE, or -o - for stdout")
        return [(STDIO, output)]
    inputs = _expand(inputs, decoding=suffix != ".jcd")
    if len(inputs) == 1 and not (output and output.is_dir()):
        return [(inputs[0], output or inputs[0].with_suffix(suffix))]
    if output is not None and not output.is_dir():
        raise JcdError(f"{output}: with several inputs, -o must be an existing directory")
    return [(p, (output / p.name if output else p).with_suffix(suffix)) for p in inputs]


def _rate_target(ctx: click.Context, size: str | None, bpp: float | None) -> tuple[str, float] | None:
    """("size", bytes) or ("bpp", rate) when the user asked for a rate instead of a quality."""
    from click.core import ParameterSource

    if size is not None and bpp is not None:
        raise click.UsageError("give --size or --bpp, not both")
    if (size is not None or bpp is not None) and ctx.get_parameter_source("quality") != ParameterSource.DEFAULT:
        raise click.UsageError("-q sets the quality; --size and --bpp choose it for you: give one of them")
    if size is not None:
        from .tiling import parse_bytes

        try:
            return "size", float(parse_bytes(size))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--size") from None
    if bpp is not None:
        if not bpp > 0:
            raise click.BadParameter("must be positive", param_hint="--bpp")
        return "bpp", bpp
    return None


def _batch(inputs: tuple[Path, ...], output: Path | None, suffix: str, quiet: bool, **codec_options):
    """What encode and decode share: (input, output) pairs, where messages go, one Codec for all of them."""
    from .codec import Codec

    _Ctx.quiet = quiet
    pairs = _targets(inputs, output, suffix)
    _Ctx.data_on_stdout = any(dst == STDIO for _, dst in pairs)
    with status("loading weights"):
        return pairs, Codec(**codec_options)


def _each(pairs: list[tuple[Path, Path]], verb: str, work) -> None:
    """Run ``work(src, dst)`` for every pair with a progress bar; one failing file does not stop the rest."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if len(pairs) == 1:
        with status(f"{verb} {pairs[0][0].name}"):
            work(*pairs[0])
        return
    failed = 0
    cols = [TextColumn(f"[bold]{verb}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*cols, console=err, disable=_Ctx.quiet or not err.is_terminal, transient=True) as bar:
        task = bar.add_task(verb, total=len(pairs))
        for src, dst in pairs:
            try:
                work(src, dst)
            except JcdError as e:
                failed += 1
                err.print(f"jcd: error: {e}", soft_wrap=True, markup=False)
            bar.advance(task)
    if failed:
        raise JcdError(f"{failed} of {len(pairs)} files failed")


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-q", "--quality", "quality", default="4", show_default=True,
              help="Quality 1 (smallest) .. 6 (best); fractions such as 3.5 interpolate (variable-rate weights).")
@click.option("--size", "size", default=None, help="Instead of -q: the best quality whose file fits in this many "
              "bytes (e.g. 20000, or 20k = 20 KiB).")
@click.option("--bpp", "bpp", type=float, default=None, help="Instead of -q: the best quality at or below this "
              "rate (bits per pixel, whole file).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output .jcd file, or a directory for several inputs [default: beside each input].")
@codec_options
@click.pass_context
def encode(ctx: click.Context, inputs: tuple[Path, ...], quality: str, size: str | None, bpp: float | None,
           output: Path | None, weights: Path | None, device: str, max_pixels: int, max_memory: int, precision: str,
           quiet: bool) -> None:  # fmt: skip
    """Compress (and denoise) images into .jcd files.

    Reads what Pillow reads (PNG, JPEG, TIFF, WebP, BMP, GIF, ...): grey, palette, RGB, CMYK, with or without
    alpha, 8 or 16 bits, float TIFF. Alpha is stored losslessly beside the image. Several inputs (or a
    directory) share one weights load; a file that fails is reported and the rest are still coded.

    \b
      jcd encode noisy.png -q 4 -o out.jcd
      jcd encode photos/ -q 3 -o coded/      every file of a directory
      cat noisy.png | jcd encode - -q 2 -o - > out.jcd
    """
    from .imageio import load_image

    q = _quality(quality)
    target = _rate_target(ctx, size, bpp)
    pairs, codec = _batch(inputs, output, ".jcd", quiet, weights=weights, device=device, max_pixels=max_pixels,
                          precision=precision, max_memory=max_memory)  # fmt: skip

    def work(src: Path, dst: Path) -> None:
        t0 = time.perf_counter()
        picture = load_image(_read_input(src), name=str(src))
        if target is None:
            enc = codec.encode(picture, q)
        else:
            kind, value = target
            limit = int(value) if kind == "size" else int(value * picture.width * picture.height / 8)
            enc = codec.encode_to_size(picture, limit)
        _write_output(dst, enc.data)
        bpp = len(enc.data) * 8 / (picture.width * picture.height)
        say(f"{src} ({picture.width}x{picture.height}) -> {dst}: {len(enc.data)} bytes, {bpp:.4f} bpp, "
            f"q{enc.header.quality:g}, {time.perf_counter() - t0:.2f} s")  # fmt: skip

    _each(pairs, "encoding", work)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output image (PNG, TIFF, BMP, WebP, JPEG by extension), or a directory for several inputs "
              "[default: INPUT.png].")
@click.option("--depth", type=click.Choice(["8", "16"]), default="8", show_default=True,
              help="Bits per sample of the output (16 needs .png).")
@click.option("--format", "out_format", type=click.Choice(["png", "tiff", "bmp", "webp", "jpg", "ppm"]),
              default="png", show_default=True, help="Image format written to stdout (-o -).")
@codec_options
def decode(inputs: tuple[Path, ...], output: Path | None, depth: str, out_format: str, weights: Path | None,
           device: str, max_pixels: int, max_memory: int, precision: str, quiet: bool) -> None:  # fmt: skip
    """Decode .jcd files into clean images.

    \b
      jcd decode out.jcd -o clean.png
      jcd decode coded/ -o clean/            every .jcd file of a directory
      cat out.jcd | jcd decode - -o - > clean.png
    """
    from .imageio import WRITE_FORMATS, encode_image, save_image

    pairs, codec = _batch(inputs, output, ".png", quiet, weights=weights, device=device, max_pixels=max_pixels,
                          precision=precision, max_memory=max_memory)  # fmt: skip

    def work(src: Path, dst: Path) -> None:
        t0 = time.perf_counter()
        dec = codec.decode(_read_input(src))
        p = dec.picture
        if dst == STDIO:
            fmt = WRITE_FORMATS[f".{out_format}"]
            _write_output(dst, encode_image(p.rgb, fmt, p.kind, int(depth), p.alpha))
        else:
            save_image(dst, p.rgb, p.kind, int(depth), p.alpha)
        say(f"{src} -> {dst} ({p.width}x{p.height}, {depth}-bit), {time.perf_counter() - t0:.2f} s")

    _each(pairs, "decoding", work)


@cli.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(input: Path, as_json: bool) -> None:
    """Show what a .jcd file holds (no weights needed)."""
    from .streaminfo import stream_info

    data = _read_input(input)
    i = stream_info(data).to_dict()
    if as_json:
        click.echo(json.dumps(i, indent=2))
        return
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
                  f"header+checksums {i['bytes_header']}"),
        ("bpp", f"{i['bpp']:.4f}"),
        ("checksum", i["checksum"]),
    ]  # fmt: skip
    for k, v in rows:
        out.print(f"[bold]{k:>11}[/bold]  {v}", soft_wrap=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the manifest's entries).")
def models(as_json: bool) -> None:
    """List the shipped models (models/manifest.json) and what each was trained for.

    Pick one with --weights NAME. Streams record their model, so decoding needs no choice.
    """
    from rich.markup import escape

    from .manifest import intended_use, models_dir, read_manifest

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
        out.print(f"  model     N={cfg.get('N')}, qualities {qs[0] if qs else '?'}-{qs[-1] if qs else '?'}"
                  f", {e.get('steps', '?')} training steps", soft_wrap=True)  # fmt: skip
        out.print(f"  made for  {intended_use(e)}", soft_wrap=True)


@cli.command()
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--visual", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the images side by side (the same crop of each, captioned) to this PNG.")
@click.option("--crop", default=None, help="Crop for --visual: X,Y,W,H, or S for a centred SxS square.")
@click.option("--zoom", type=click.IntRange(1, 8), default=1, show_default=True, help="Enlarge the crops.")
@click.option("--labels", default=None, help="Captions for IMAGES, comma-separated [default: file names].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
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
    from .compare import parse_crop, score, side_by_side

    _Ctx.data_on_stdout = as_json
    names = [p.name for p in images] if labels is None else [v.strip() for v in labels.split(",")]
    if len(names) != len(images):
        raise JcdError(f"--labels gives {len(names)} captions for {len(images)} images")
    ref, _ = _picture_or_decoded(reference, weights, device)
    scores, pictures = [], []
    for path, name in zip(images, names, strict=True):
        rgb, bpp = _picture_or_decoded(path, weights, device)
        scores.append(score(ref, rgb, name, bpp))
        pictures.append(rgb)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(s) for s in scores], indent=2))
    else:
        for s in scores:
            rate = f"  {s.bpp:.4f} bpp" if s.bpp is not None else ""
            say(f"{s.label}: PSNR {s.psnr:.2f} dB  MS-SSIM {s.ms_ssim:.4f}{rate}")
    if visual is not None:
        from .imageio import atomic_target

        box = parse_crop(crop, ref.shape[1], ref.shape[0])
        captions = [f"{s.label}\n{s.psnr:.2f} dB" + (f", {s.bpp:.3f} bpp" if s.bpp is not None else "")
                    for s in scores] + [f"{reference.name}\n(reference)"]  # fmt: skip
        figure = side_by_side([*pictures, ref], captions, box, zoom)
        with atomic_target(visual) as tmp:
            figure.save(tmp, format="PNG")
        say(f"wrote {visual} ({figure.width}x{figure.height})")


def _picture_or_decoded(path: Path, weights: Path | None, device: str):
    """(float RGB, bpp or None): an image file as read, a .jcd file as decoded."""
    from .bitstream import looks_like_jcd
    from .imageio import load_image

    data = _read_input(path)
    if not looks_like_jcd(data):
        return load_image(data, name=str(path)).rgb, None
    from .api import codec_for

    p = codec_for(weights, device).decode(data).picture
    return p.rgb, len(data) * 8 / (p.width * p.height)


@cli.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--level", type=click.IntRange(1, 4), required=True, help="Reference noise level 1..4.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output PNG.")
@click.option("--seed", default=0, show_default=True, help="Seed of the noise generator.")
@click.option("--depth", type=click.Choice(["8", "16"]), default="16", show_default=True,
              help="16 keeps the noisy values unrounded (as the reference evaluation feeds them).")
@click.option("--gamma", type=click.Choice(["reference", "srgb"]), default="reference", show_default=True,
              help="reference: the published code's (not quite invertible) gamma pair; srgb: standard curves.")
def noise(input: Path, level: int, output: Path, seed: int, depth: str, gamma: str) -> None:
    """Add the reference read+shot camera noise (test levels 1..4) to a clean image."""
    import torch

    from .imageio import load_image, save_image
    from .noise import add_level_noise

    p = load_image(input)
    x = torch.from_numpy(p.rgb).permute(2, 0, 1)
    noisy = add_level_noise(x, level, seed=seed, gamma=gamma).permute(1, 2, 0).numpy()
    save_image(output, noisy, p.kind if p.kind != 2 else 1, int(depth), p.alpha)



@cli.command(context_settings={"max_content_width": 100})
@click.option("--data", type=click.Path(path_type=Path), default=Path("../shared/data/train"), show_default=True,
              help="Folder of training images (decoded once into memory).")
@click.option("--val", type=click.Path(path_type=Path), default=None,
              help="Validation folder [default: hold out --val-count images of --data].")
@click.option("--val-count", default=4, show_default=True, help="Images used for validation.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/jcd"), show_default=True,
              help="Run folder: last.ckpt, log.jsonl, config.json.")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where its checkpoint stopped.")
@click.option("--init", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from exported weights (fine-tuning, e.g. a new quality from a neighbour).")
@click.option("--preset", type=click.Choice(["jcd", "paper", "baseline", "cheng2020"]), default="jcd",
              show_default=True,
              help="jcd: variable-rate model for q1..6 (all parts on). paper: one quality, N by the paper. "
              "baseline: Cheng et al. 2022 (attention-block denoisers, guidance only). cheng2020: no denoisers.")
@click.option("-N", "--channels", "n", type=int, default=None, help="Channels N [default: 128, paper: 128/192].")
@click.option("--quality", "qualities", default="1-6", show_default=True,
              help="Qualities trained: '1-6' (variable rate, one lambda drawn per batch) or one, e.g. '4'.")
@click.option("--contrastive/--no-contrastive", default=None, help="Contrastive branch (ablation switch).")
@click.option("--selfonn/--no-selfonn", default=None, help="Self-ONN units in d1 (else conv units).")
@click.option("--multiscale/--no-multiscale", default=None, help="Dilated multi-scale front in the denoisers.")
@click.option("--cbam/--no-cbam", default=None, help="CBAM attention in the denoiser trunks.")
@click.option("--guidance/--no-guidance", default=True, show_default=True, help="Clean-feature guidance loss.")
@click.option("--patch", default=256, show_default=True, help="Crop size (128 is ~4x faster on a CPU).")
@click.option("--batch", default=8, show_default=True)
@click.option("--steps", default=100_000, show_default=True, help="Total steps of the run (lr decays at 80%, 95%).")
@click.option("--lr", default=1e-4, show_default=True, help="Learning rate; with --resume, replaces the run's.")
@click.option("--lambda-g", default=3.0, show_default=True, help="Weight of the guidance loss.")
@click.option("--lambda-c", default=1.5, show_default=True, help="Weight of the contrastive loss.")
@click.option("--temperature", default=0.1, show_default=True, help="NT-Xent temperature.")
@click.option("--wide-noise", is_flag=True, help="Train on noise up to test level 4 (paper range stops below 3).")
@click.option("--gamma", "gamma", type=click.Choice(["reference", "srgb"]), default="reference", show_default=True,
              help="Noise convention: 'reference' as the published benchmark (whose gamma pair brightens, so the "
                   "model learns to darken); 'srgb' keeps photos' brightness.")
@click.option("--bf16/--fp32", default=True, show_default=True, help="bf16 autocast (entropy models stay fp32).")
@click.option("--threads", default=0, help="torch threads (1 keeps a background run from starving the machine).")
@click.option("--seed", default=0, show_default=True)
@click.option("--ckpt-every", default=1000, show_default=True)
@click.option("--val-every", default=2000, show_default=True,
              help="Steps between real-bitstream validations (0: never).")
@click.option("--max-images", default=0, help="Use only the first N images (0: all).")
@click.option("--nproc", default=1, show_default=True, help="Launch N processes with torchrun (DDP: gloo/NCCL).")
@quiet_option
def train(data: Path, val: Path | None, val_count: int, out: Path, resume: bool, init: Path | None, preset: str,
          n: int | None, qualities: str, contrastive: bool | None, selfonn: bool | None, multiscale: bool | None,
          cbam: bool | None, guidance: bool, patch: int, batch: int, steps: int, lr: float, lambda_g: float,
          lambda_c: float, temperature: float, wide_noise: bool, gamma: str, bf16: bool, threads: int, seed: int,
          ckpt_every: int, val_every: int, max_images: int, nproc: int, quiet: bool) -> None:  # fmt: skip
    """Train a model: noisy crops in, clean crops as target, three branches.

    Loss = R(y) + R(z) + lambda_d*255^2*MSE + lambda_g*G + lambda_c*L_CL, lambda_d from the six MSE lambdas
    (0.0018 .. 0.0483). Every ablation of the paper is a switch; the baseline and plain Cheng2020 are presets.
    """
    if nproc > 1:
        import subprocess

        args, skip = [], False
        for a in sys.argv[sys.argv.index("train") + 1 :]:
            if skip or a.startswith("--nproc="):
                skip = False
                continue
            if a == "--nproc":
                skip = True
                continue
            args.append(a)
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m", "jcdcodec.train",
               *args]  # fmt: skip
        sys.exit(subprocess.call(cmd))
    from .nn.model import ModelConfig
    from .train.loop import TrainConfig, Trainer

    qs = _parse_qualities(qualities)
    if preset == "paper":
        if len(qs) != 1:
            raise JcdError("--preset paper trains one quality: pass --quality Q")
        base = ModelConfig.paper(qs[0])
    elif preset == "baseline":
        base = ModelConfig.baseline(qualities=qs)
        contrastive = False if contrastive is None else contrastive
    elif preset == "cheng2020":
        base = ModelConfig(qualities=qs, denoise=False)
        contrastive = False if contrastive is None else contrastive
    else:
        base = ModelConfig(qualities=qs)
    overrides = {k: v for k, v in {"N": n, "selfonn": selfonn, "multiscale": multiscale, "cbam": cbam}.items()
                 if v is not None}  # fmt: skip
    mcfg = dataclasses.replace(base, **overrides)
    tcfg = TrainConfig(data=str(data), val=str(val) if val else None, val_count=val_count, out=str(out), patch=patch,
                       batch=batch, steps=steps, lr=lr, lambda_g=lambda_g, lambda_c=lambda_c,
                       guidance=guidance, contrastive=True if contrastive is None else contrastive,
                       temperature=temperature, wide_noise=wide_noise, gamma=gamma, bf16=bf16, threads=threads,
                       seed=seed, ckpt_every=ckpt_every, val_every=val_every, max_images=max_images,
                       init=str(init) if init else None)  # fmt: skip
    ckpt = out / "last.ckpt"
    if resume and not ckpt.is_file():
        raise JcdError(f"--resume: no checkpoint at {ckpt}")
    if not resume and ckpt.is_file():
        raise JcdError(f"{ckpt} exists: pass --resume to continue it or choose another --out")
    from click.core import ParameterSource

    lr_given = click.get_current_context().get_parameter_source("lr") == ParameterSource.COMMANDLINE
    trainer = Trainer(mcfg, tcfg, resume=ckpt if resume else None, new_lr=lr if resume and lr_given else None)
    trainer.run(progress=not quiet and err.is_terminal)


def _parse_qualities(text: str) -> tuple[int, ...]:
    try:
        if "-" in text:
            a, b = (int(v) for v in text.split("-"))
            qs = tuple(range(a, b + 1))
        else:
            qs = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: use e.g. '1-6', '4' or '1,3,6'") from None
    if not qs or any(not 1 <= q <= 6 for q in qs):
        raise click.BadParameter(f"{text!r}: qualities lie in 1..6")
    return qs


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Weights file to write, e.g. models/jcd-n64.safetensors.")
@click.option("--name", default=None, help="Name in the manifest [default: file stem].")
@click.option("--default", "make_default", is_flag=True, help="Make these the default weights.")
@click.option("--data-note", default="", help="What the weights were trained on, for the manifest.")
def export(checkpoint: Path, output: Path, name: str | None, make_default: bool, data_note: str) -> None:
    """Export a training checkpoint to inference weights (fp16 safetensors) and list them in the manifest.

    The manifest entry goes to manifest.json beside the output file.
    """
    from .manifest import read_manifest
    from .train.loop import export_checkpoint

    if not checkpoint.is_file():
        raise JcdError(f"{checkpoint}: no such checkpoint")
    digest, record = export_checkpoint(checkpoint, output, name, data_note)
    manifest = read_manifest(output.parent)
    record["file"] = output.name
    record["sha256"] = digest
    old = manifest.setdefault("models", {}).get(record["name"], {})
    if "figures" in old:
        record["figures_previous"] = old["figures"]
    manifest["models"][record["name"]] = record
    if make_default or not manifest.get("default"):
        manifest["default"] = record["name"]
    from .imageio import atomic_write_bytes

    atomic_write_bytes(output.parent / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    say(f"{checkpoint} -> {output} ({record['steps']} steps, sha256 {digest[:12]})")



def _parse_floats(text: str, what: str) -> tuple[float, ...]:
    try:
        if "-" in text and "," not in text:
            a, b = (int(v) for v in text.split("-"))
            return tuple(float(v) for v in range(a, b + 1))
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of {what} (e.g. '1-6' or '1,2.5,4')") from None


@cli.command(name="eval")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--levels", default="1,2,3,4", show_default=True, help="Noise levels.")
@click.option("--qualities", default="1-6", show_default=True,
              help="jcd qualities, e.g. '1-6' or '1,2.5,6'; 'none' runs only the anchors.")
@click.option("--weights", "weights", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Weights to evaluate (repeatable; the first is compared with the others) [default: shipped].")
@click.option("--anchors", default="jpeg,webp,avif,bm3d+best", show_default=True,
              help="Classical anchors on the same noisy images: jpeg, webp, avif, bm3d+best (BM3D then each "
              "codec), or 'none'.")
@click.option("--float-input", is_flag=True, help="Feed jcd the unrounded noisy image (anchors stay 8-bit).")
@click.option("--gamma", type=click.Choice(["reference", "srgb"]), default="reference", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Noise seed (the same for every image).")
@click.option("--max-images", default=0, help="Use only the first N images (0: all).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder for CSV/JSON, plots and the per-item cache.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a markdown report here (plots go to a 'plots' folder beside it, named after it).")
@click.option("--update-manifest", is_flag=True,
              help="Record the measured figures of the evaluated weights in models/manifest.json.")
@click.option("--anchor-rows", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSONL file of anchor results to reuse and extend (they do not depend on jcd's weights; "
              "BM3D costs minutes per image).")
@device_option
@quiet_option
def eval_(directory: Path, levels: str, qualities: str, weights: tuple[Path, ...], anchors: str, float_input: bool,
          gamma: str, seed: int, max_images: int, output: Path, report: Path | None, update_manifest: bool,
          anchor_rows: Path | None, device: str, quiet: bool) -> None:  # fmt: skip
    """Rate-distortion of jcd and classical anchors on DIRECTORY with the reference noise.

    Real encoder and decoder, real file sizes. Writes per_image.csv, summary.csv, summary.json, an RD plot per
    level and a BD-rate table. Results are cached per image and setting: a rerun only does what is missing.
    """
    from rich.progress import Progress

    from .eval.report import markdown, plot_level
    from .eval.runner import EvalSettings, evaluate, summarize, write_tables

    _Ctx.quiet = quiet
    lv = tuple(int(v) for v in _parse_floats(levels, "levels"))
    if any(v not in (1, 2, 3, 4) for v in lv):
        raise click.BadParameter("levels lie in 1..4", param_hint="--levels")
    anc = () if anchors.strip() == "none" else tuple(a.strip() for a in anchors.split(","))
    known = {"jpeg", "webp", "avif", "bm3d+best", "bm3d+jpeg", "bm3d+webp", "bm3d+avif"}
    if set(anc) - known:
        raise click.BadParameter(f"unknown anchors {sorted(set(anc) - known)}", param_hint="--anchors")
    qs = () if qualities.strip() == "none" else _parse_floats(qualities, "qualities")
    settings = EvalSettings(levels=lv, qualities=qs, anchors=anc,
                            float_input=float_input, gamma=gamma, seed=seed, device=device, max_images=max_images,
                            weights=tuple(str(w) for w in weights) or (None,))  # fmt: skip
    from .train.data import list_images

    n_images = len(list_images(directory))
    total = (min(n_images, max_images) if max_images else n_images) * len(lv)
    with Progress(disable=quiet or not err.is_terminal, console=err) as bar:
        task = bar.add_task("evaluating", total=total)
        rows = evaluate(directory, settings, output, progress=lambda msg: bar.advance(task), anchor_rows=anchor_rows)
    summary = summarize(rows)
    write_tables(rows, summary, output, settings)
    plot_dir = (report.parent / "plots") if report else output
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots = {}
    for level in lv:
        p = plot_dir / (f"{report.stem}-L{level}.png" if report else f"rd_L{level}.png")
        plot_level(summary, level, p, f"Noise level {level} ({directory.name}, gamma {gamma})",
                   published_marks=gamma == "reference")
        plots[level] = str(p.relative_to(report.parent)) if report else p.name
    command = "jcd eval " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["eval"] else "jcd eval"
    text = markdown(summary, dataclasses.asdict(settings), command, plots)
    from .imageio import atomic_write_bytes

    atomic_write_bytes(output / "report.md", text.encode())
    if report:
        atomic_write_bytes(report, text.encode())
    if update_manifest:
        _record_figures(summary, settings, directory, command)
    say(f"{len(rows)} results -> {output}" + (f", report {report}" if report else ""))


def _record_figures(summary: list[dict], settings, directory: Path, command: str) -> None:
    """Write mean bpp / PSNR / MS-SSIM per level and quality into the manifest entries of the evaluated weights."""
    from .imageio import atomic_write_bytes
    from .manifest import models_dir, read_manifest

    manifest = read_manifest()
    changed = False
    for name, entry in manifest.get("models", {}).items():
        rows = [s for s in summary if s["method"] == f"jcd:{name}"]
        if not rows:
            continue
        entry["figures"] = {
            "dataset": directory.name,
            "images": max(s["images"] for s in rows),
            "noise": f"reference read+shot, seed {settings.seed}, gamma {settings.gamma}",
            "input": "float" if settings.float_input else "8-bit noisy",
            "command": command,
            "by_level": {str(lv): [{"quality": s["setting"], "bpp": round(s["bpp"], 5), "psnr": round(s["psnr"], 3),
                                    "msssim": round(s["msssim"], 5)} for s in rows if s["level"] == lv]
                         for lv in settings.levels},
        }  # fmt: skip
        changed = True
    if changed:
        path = models_dir() / "manifest.json"
        atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode())


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-q", "--quality", "qualities", default="4", show_default=True, help="Qualities, e.g. '4' or '1-6'.")
@click.option("--repeats", default=3, show_default=True, help="Timed repeats per image (median reported).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures as JSON.")
@weights_option
@device_option
@quiet_option
def bench(path: Path, qualities: str, repeats: int, json_out: Path | None, weights: Path | None, device: str,
          quiet: bool) -> None:  # fmt: skip
    """Encode/decode speed per image: median seconds split into network and entropy coding, peak memory, bpp."""
    import resource
    import statistics

    from rich.table import Table

    from .codec import Codec
    from .imageio import load_image
    from .train.data import list_images

    _Ctx.quiet = quiet
    files = list_images(path) if path.is_dir() else [path]
    codec = Codec(weights, device=device)
    results = []
    for f in files:
        pic = load_image(f)
        for q in _parse_floats(qualities, "qualities"):
            runs = []
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                enc = codec.encode(pic, q)
                t1 = time.perf_counter()
                dec = codec.decode(enc.data)
                t2 = time.perf_counter()
                runs.append((t1 - t0, t2 - t1, enc.timings, dec.timings))
            med = lambda xs: statistics.median(xs)  # noqa: E731
            results.append({
                "image": f.name, "width": pic.width, "height": pic.height, "quality": q,
                "bpp": len(enc.data) * 8 / (pic.width * pic.height),
                "encode_s": med([r[0] for r in runs]), "decode_s": med([r[1] for r in runs]),
                "encode_network_s": med([r[2].get("network", 0) for r in runs]),
                "encode_entropy_s": med([r[2].get("entropy_coding", 0) + r[2].get("hyper_synthesis", 0) for r in runs]),
                "decode_network_s": med([r[3].get("network", 0) for r in runs]),
                "decode_entropy_s": med([r[3].get("entropy_coding", 0) + r[3].get("hyper_synthesis", 0) for r in runs]),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            })  # fmt: skip
    table = Table(title=f"jcd bench ({codec.weights.name}, {codec.device}, median of {repeats})")
    for col in ("image", "q", "bpp", "encode s", "(net / entropy)", "decode s", "(net / entropy)", "peak RSS MB"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r["image"], f"{r['quality']:g}", f"{r['bpp']:.4f}", f"{r['encode_s']:.3f}",
                      f"{r['encode_network_s']:.3f} / {r['encode_entropy_s']:.3f}", f"{r['decode_s']:.3f}",
                      f"{r['decode_network_s']:.3f} / {r['decode_entropy_s']:.3f}", f"{r['peak_rss_mb']:.0f}")
    if not quiet:
        out.print(table)
    if json_out:
        from .imageio import atomic_write_bytes

        atomic_write_bytes(json_out, json.dumps(results, indent=2).encode())


def _warning_printer(default):
    """JcdWarnings as one line on stderr; any other warning as Python shows it."""
    from .errors import JcdWarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, JcdWarning):
            err.print(f"jcd: warning: {message}", soft_wrap=True, markup=False)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def main() -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit code."""
    import warnings

    from .errors import JcdWarning

    warnings.simplefilter("always", JcdWarning)  # even under PYTHONWARNINGS=ignore: these are for the user
    warnings.showwarning = _warning_printer(warnings.showwarning)
    try:
        cli.main(prog_name="jcd", standalone_mode=False)
    except click.exceptions.Abort:  # click's form of Ctrl-C
        err.print("jcd: interrupted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except JcdError as e:
        err.print(f"jcd: error: {e}", soft_wrap=True, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("jcd: interrupted")
        sys.exit(130)
    except MemoryError:
        err.print("jcd: error: out of memory (try a smaller image or --device cpu)")
        sys.exit(1)
    except Exception as e:  # a bug in jcd: still one line unless asked for more
        if os.environ.get("JCD_DEBUG"):
            raise
        err.print(f"jcd: internal error: {type(e).__name__}: {e} (set JCD_DEBUG=1 for a traceback)",
                  soft_wrap=True, markup=False)  # fmt: skip
        sys.exit(3)
