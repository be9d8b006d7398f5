"""Pictures in and out: Pillow (and pypng for 16-bit colour PNG) <-> float arrays.

The model sees float RGB in [0, 1]. Everything else a file carries is kept on the side so
the decoder can give it back: colour kind (grey, RGB, palette), bit depth (8 or 16) and
alpha, which jcd stores losslessly beside the image (the codec denoises colour, it has no
business changing transparency). What else Pillow opens is mapped onto that:

- EXIF orientation is applied on load, 16-bit PNGs too (the picture is coded upright; the tag is not kept).
- The ICC profile, EXIF, XMP and CICP ride along (metadata.py) and are written back where the format holds them.
- CMYK is converted to sRGB through its ICC profile when it has one, YCbCr to RGB; 16-bit grey (I;16) and
  32-bit integer grey keep 16 bits.
- Floating-point grey (TIFF mode F) is taken as values in [0, 1] (clipped) and coded as 16-bit grey.
- Animated images (GIF, APNG, WebP, multi-page TIFF) code their first frame, with a JcdWarning.
- HEIF/HEIC (what phones write) is read by pi-heif in a child process (heif.py), a 10- or 12-bit one at 16
  bits; AVIF by Pillow itself; JPEG XL by libjxl in a child process (jxl.py).
- Camera raw files (DNG, CR2, CR3, NEF, ARW, RAF, ...) are developed by LibRaw in a child process
  (rawphoto.py), at 16 bits; never coded as the small preview a TIFF reader finds first.

All writes go through ``outputs`` (atomic, optionally no-clobber).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
from PIL import Image, ImageOps, UnidentifiedImageError

from . import heif, jxl, pngtext
from .errors import JcdError, JcdWarning
from .formats import HEAD, camera_raw, image_format, not_an_image, tiff_tags
from .inputs import DEFAULT_MAX_PIXELS, read_file
from .metadata import (
    MAX_BYTES,
    Metadata,
    dpi_of,
    from_pillow_info,
    motion_photo,
    pillow_save_args,
    png_chunks,
    png_text_before_pixels,
    profile_space,
    text_of,
    warn_dropped,
    without_appended,
)
from .metadata import NONE as NO_METADATA
from .outputs import atomic_write_bytes

GRAY, RGB, PALETTE = 0, 1, 2


@dataclass
class Picture:
    """An image as jcd codes it."""

    rgb: np.ndarray  # float32 (H, W, 3) in [0, 1]
    kind: int = RGB  # GRAY, RGB or PALETTE: what the decoder gives back
    depth: int = 8  # bits per sample of the source: 8 or 16
    alpha: np.ndarray | None = None  # (H, W) uint8 or uint16, None when absent
    meta: Metadata = Metadata()  # what of the source jcd keeps beside the pixels (metadata.py)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @classmethod
    def from_array(cls, arr: np.ndarray) -> Picture:
        """Float RGB (H, W, 3) in [0, 1], e.g. an unrounded noisy image."""
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise JcdError(f"expected an (H, W, 3) array, got shape {arr.shape}")
        return cls(np.clip(arr, 0.0, 1.0), RGB, 8, None)


def _png_header(head: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) of PNG data, None when it is not a PNG."""
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return head[24], head[25]


def _png_keyed(data: bytes) -> bool:
    """Whether PNG data has a tRNS chunk (a transparent key colour for grey or RGB) before its pixels."""
    return _png_chunk(data, b"tRNS") is not None


def _png_cicp(data: bytes) -> bytes:
    """The cICP chunk of PNG data (before its pixels), which Pillow does not read; b"" when there is none."""
    body = _png_chunk(data, b"cICP")
    return body if body is not None and len(body) == 4 else b""


def _png_chunk(data: bytes, wanted: bytes) -> bytes | None:
    """The body of PNG data's first chunk of type ``wanted`` before its pixels, or None."""
    pos = 8
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == wanted:
            return data[pos + 8 : pos + 8 + size]
        pos += 12 + size
    return None


def _load_png16(data: bytes, name: str = "16-bit PNG") -> Picture:
    """16-bit colour or grey+alpha PNG, which Pillow would truncate to 8 bits."""
    w, h, rows, info = png.Reader(bytes=data).asDirect()
    planes = info["planes"]
    arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, planes)
    alpha = arr[:, :, -1].copy() if info["alpha"] else None
    rgb = arr[:, :, :3] if planes >= 3 else np.repeat(arr[:, :, :1], 3, axis=2)
    kind = RGB if planes >= 3 else GRAY
    with Image.open(io.BytesIO(data)) as im:  # the chunks before the pixels: Pillow reads them, pypng does not
        im.info["cicp"] = _png_cicp(data)
        text = png_text_before_pixels(im.info)
        rgb, alpha, im = _upright(im, rgb, alpha, name)
        meta = from_pillow_info(im.info, grey=kind == GRAY, name=name, text=text)
    return Picture(np.ascontiguousarray(rgb, dtype=np.float32) / 65535.0, kind, 16,
                   None if alpha is None else np.ascontiguousarray(alpha), meta)  # fmt: skip


def _load_tiff16(im: Image.Image, data: bytes, name: str) -> Picture | None:
    """A 16-bit colour TIFF at full precision (tiff16.py), or None for a kind only Pillow reads (at 8 bits)."""
    from . import tiff16

    tags = dict(im.tag_v2)  # type: ignore[attr-defined]
    stored = (int(tags.get(256, 0)), int(tags.get(257, 0)))  # im.size is already turned by the orientation
    arr = tiff16.samples(tags, stored, data[:2] == b"MM", data, name)
    if arr is None:
        return None
    rgb, alpha = arr[:, :, :3], (arr[:, :, 3] if arr.shape[2] == 4 and im.mode == "RGBA" else None)
    return _picture16(im, rgb, alpha, name, _tiff_exif(im.getexif()))


def _picture16(im: Image.Image, rgb: np.ndarray, alpha: np.ndarray | None, name: str, exif: bytes = b"",
               grey: bool = False) -> Picture:  # fmt: skip
    """16-bit colour samples (grey: one plane) read beside Pillow, turned upright, with the metadata of ``im``
    (``exif`` in place of its own where given: a TIFF's, made from its tags)."""
    if grey:
        rgb = np.repeat(rgb, 3, axis=2)
    rgb, alpha, im = _upright(im, rgb, alpha, name)
    meta = from_pillow_info({**im.info, "exif": exif} if exif else im.info, grey=grey, name=name)
    return Picture(np.ascontiguousarray(rgb, dtype=np.float32) / 65535.0, GRAY if grey else RGB, 16,
                   None if alpha is None else np.ascontiguousarray(alpha), meta)  # fmt: skip


def _upright(im: Image.Image, rgb: np.ndarray, alpha: np.ndarray | None, name: str = "image"):
    """Samples read beside Pillow (16 bits) turned upright by the file's EXIF orientation, like the 8-bit path;
    Pillow's own (8-bit) transpose then gives the info with the tag taken out of the EXIF and XMP."""
    _drop_unreadable_exif(im, name)
    orientation = im.getexif().get(_ORIENTATION, 1)
    if orientation in _TURNS and orientation != 1:
        rgb, alpha = _TURNS[orientation](rgb), None if alpha is None else _TURNS[orientation](alpha)
        im = ImageOps.exif_transpose(im)
    return rgb, alpha, im


def _drop_unreadable_exif(im: Image.Image, name: str = "image") -> None:
    """Take an EXIF block that Pillow cannot parse out of ``im.info``, with a warning, before anything reads it.

    Why: Pillow raises on a damaged EXIF header or directory wherever it reads one (``getexif``,
    ``exif_transpose``), and the whole photo was refused for it ("cannot read image (not a TIFF file ...)"):
    3 of 200 byte-mutated copies of a HEIC did so. The pixels are the user's; the picture is coded as stored."""
    exif = im.info.get("exif")
    if not isinstance(exif, (bytes, bytearray)) or not exif:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's remarks on what it skips; a raise is what counts here
            tags = Image.Exif()
            tags.load(bytes(exif))
            tags.get(_ORIENTATION)
            tags.tobytes()  # what exif_transpose writes back for a turned photo, its directories read
    except Exception:  # noqa: BLE001  Pillow's EXIF reader raises many kinds (SyntaxError, struct.error, ...)
        del im.info["exif"]
        warnings.warn(f"{name}: its EXIF is damaged and is not kept (nor its orientation: the picture is coded as "
                      "stored)", JcdWarning, stacklevel=3)  # fmt: skip


_ORIENTATION = 0x0112
#: EXIF orientation -> what turns stored pixels (rows, columns, ...) upright, as ``ImageOps.exif_transpose`` does.
_TURNS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _check_size(name: str, width: int, height: int, max_pixels: int | None) -> None:
    if width <= 0 or height <= 0:
        raise JcdError(f"{name}: the image declares an empty size ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise JcdError(f"{name}: image is {width}x{height} = {width * height} pixels, above the limit of "
                       f"{max_pixels} (raise it with --max-pixels)")  # fmt: skip


def load_image(
    source: str | os.PathLike | bytes, name: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Picture:
    """Read an image file (or its bytes, e.g. from stdin) into the form jcd codes; ``name`` for messages.

    ``max_pixels`` is checked against the size the file declares in its header, before any pixel is
    decoded: a small file can declare a huge image (a decompression bomb) and decoding it first would
    exhaust memory.
    """
    if isinstance(source, (bytes, bytearray)):
        name, data = name or "<stdin>", bytes(source)
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise JcdError(f"{path}: no such file")
        if path.is_dir():
            raise JcdError(f"{path}: is a directory, not an image")
        data = read_file(path, max_pixels)  # a 20 GB file given by mistake is refused by its size
    if not data:
        raise JcdError(f"{name}: empty file")
    with pngtext.raised_bound():
        try:
            picture = _read(data, name, max_pixels)
        except _MetadataTooLarge as refused:
            data, left = pngtext.without_oversized(data)
            if not left:
                raise JcdError(str(refused)) from None
            listed = left[0] if len(left) == 1 else ", ".join(left[:-1]) + " and " + left[-1] if len(left) < 4 \
                else f"{left[0]}, {left[1]} and {len(left) - 2} more chunks"  # fmt: skip
            warnings.warn(f"{name}: {listed} {'is' if len(left) == 1 else 'are'} more than the {MAX_BYTES >> 20} "
                          "MiB of metadata a stream holds (a zip bomb, or text past that in all): not kept; coding "
                          "the picture", JcdWarning, stacklevel=2)  # fmt: skip
            picture = _read(data, name, max_pixels)
    return picture


class _MetadataTooLarge(JcdError):
    """Pillow refused a PNG for the size of its metadata chunks: load_image reads it again without them."""


def _read(data: bytes, name: str, max_pixels: int | None) -> Picture:
    """:func:`load_image`'s work on the file's bytes."""
    if raw := camera_raw(data[:HEAD]):
        return _developed(data, name, raw, max_pixels)
    try:
        header = _png_header(data[:26])
        if header is not None and header[0] == 16 and (header[1] in (2, 4, 6) or _png_keyed(data)):  # RGB, grey
            # +alpha, RGBA; grey with a transparent key (tRNS), which pypng makes alpha
            width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            _check_size(name, width, height, max_pixels)
            return _load_png16(data, name)
        if heif.is_heif(data):  # read in a child process: damaged HEIC files crash libheif (heif.py)
            im, frames, deep = heif.read(data, name, max_pixels)
            if frames > 1:
                warnings.warn(f"{name}: {frames} images; coding the primary one only", JcdWarning, stacklevel=2)
            _warn_left_beside(data, name)
            _still_of_motion_photo(data, im, name)
            if deep is not None:  # 10 or 12 bits, as 16
                return _picture16(im, deep[:, :, :3], deep[:, :, 3] if deep.shape[2] == 4 else None, name)
            return from_pillow(im, name)
        if jxl.is_jxl(data):  # read in a child process, its size checked from its header first (jxl.py)
            im, deep = jxl.read(data, name, max_pixels)
            if deep is not None:  # grey and alpha above 8 bits, as 16
                return _picture16(im, deep[:, :, :1], deep[:, :, 1], name, grey=True)
            return from_pillow(im, name)
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JCD":  # the Pillow plugin decodes it: coding the picture again loses more
                warnings.warn(f"{name}: a .jcd stream: coding its decoded picture again (each coding loses some: "
                              "start from the original to code it at another quality)", JcdWarning,
                              stacklevel=2)  # fmt: skip
            if im.format == "TIFF" and (raw := camera_raw(b"", im.tag_v2)):  # type: ignore[attr-defined]  # its tags
                return _developed(data, name, raw, max_pixels)  # not its first image: a small preview
            _check_size(name, im.width, im.height, max_pixels)
            if im.format == "TIFF":
                from .tiff16 import check_tiles

                check_tiles(im.tag_v2, name)  # type: ignore[attr-defined]
            if header is not None:
                im.info["cicp"] = _png_cicp(data)
                if header[0] in (2, 4) and header[1] == 0 and isinstance(im.info.get("transparency"), int):
                    # Pillow widens 2- and 4-bit grey to 8 bits but keeps the key colour's sample as it is (1-bit
                    # grey's it widens too)
                    im.info["transparency"] = im.info["transparency"] * 255 // ((1 << header[0]) - 1)
            elif im.format == "AVIF":  # Pillow drops its nclx box: an HDR AVIF would come out as sRGB
                im.info["cicp"] = heif.primary_nclx(data)
                if (bits := heif.primary_bits(data)) > 8:
                    warnings.warn(f"{name}: {bits}-bit, read at 8 bits (the AVIF reader gives 8)", JcdWarning,
                                  stacklevel=2)  # fmt: skip
                _warn_left_beside(data, name)
                _still_of_motion_photo(data, im, name)
            frames = getattr(im, "n_frames", 1)
            ultra_hdr = False
            if im.format in ("JPEG", "MPO"):
                ultra_hdr = b"hdrgm:" in _still_of_motion_photo(data, im, name)  # Android's HDR photos
            if ultra_hdr:
                warnings.warn(f"{name}: an Ultra HDR JPEG: its gain map (the HDR rendition) is not kept; coding the "
                              "standard picture", JcdWarning, stacklevel=2)  # fmt: skip
            elif frames > 1 and im.format == "MPO":  # a depth map, a stereo view, a gain map of another kind
                warnings.warn(f"{name}: {frames} pictures in a multi-picture JPEG; coding the first only", JcdWarning,
                              stacklevel=2)  # fmt: skip
            elif frames > 1:
                warnings.warn(f"{name}: {frames} frames; coding the first only", JcdWarning, stacklevel=2)
            if _tiff16_colour_bits(im):
                p = _load_tiff16(im, data, name)
                if p is not None:
                    return p
            if im.format == "TIFF":  # libtiff decodes it here, and says what it meets on the terminal
                from .tiff16 import libtiff_quiet

                with libtiff_quiet():
                    im.load()
            return from_pillow(im, name)
    except JcdError:
        raise
    except UnidentifiedImageError:
        if raw := camera_raw(b"", tiff_tags(data)):  # a DNG whose first image is the mosaic, which Pillow cannot
            return _developed(data, name, raw, max_pixels)
        if fmt := image_format(data[:HEAD]):  # its signature, but the reader refused the rest
            raise JcdError(f"{name}: cannot read image (a damaged {fmt} file, or a kind of {fmt} its reader does "
                           "not know)") from None  # fmt: skip
        raise JcdError(f"{name}: not an image jcd can read: {not_an_image(data[:HEAD])}") from None
    except Image.DecompressionBombError as e:  # Pillow's own check, when it comes first
        m = re.search(r"\((\d+) pixels\)", str(e))
        size = f"declares {m.group(1)} pixels" if m else "declares too many pixels"
        raise JcdError(f"{name}: image {size}, above the limit of {max_pixels or Image.MAX_IMAGE_PIXELS}") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001  Pillow's and pypng's decoders raise many kinds on damaged files
        # (OSError, ValueError, SyntaxError, but also TypeError, KeyError, struct.error, EOFError, ...).
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        detail = detail.removeprefix(f"{type(e).__name__}: ")  # pypng's errors name themselves
        if re.fullmatch(r"decoder error -?\d+", detail):  # Pillow's word for a decoder's failure code
            detail = "damaged image data"
        if pngtext.refused_for_metadata(e) and data.startswith(b"\x89PNG"):
            raise _MetadataTooLarge(f"{name}: cannot read image ({detail})") from None
        raise JcdError(f"{name}: cannot read image ({detail})") from None


def _warn_left_beside(data: bytes, name: str) -> None:
    """Say that a HEIC's or AVIF's HDR gain map is left behind (heif.gain_map), as for an Ultra HDR JPEG, and
    its other auxiliary images (a portrait's depth map and mattes: heif.auxiliary_images)."""
    if kind := heif.gain_map(data):
        warnings.warn(f"{name}: an HDR photo: its gain map ({kind}; the HDR rendition) is not kept; coding the "
                      "standard picture", JcdWarning, stacklevel=3)  # fmt: skip
    if kinds := heif.auxiliary_images(data):
        listed = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
        warnings.warn(f"{name}: its {listed} (images beside the picture) {'is' if len(kinds) == 1 else 'are'} "
                      "not kept; coding the picture", JcdWarning, stacklevel=3)  # fmt: skip


def _still_of_motion_photo(data: bytes, im: Image.Image, name: str) -> bytes:
    """Say that a motion photo's video is left behind (a JPEG's appended video, a HEIC's or AVIF's mpvd box:
    Google's and Samsung's phones), and take out of the XMP what points at data behind the picture (the video, an
    Ultra HDR gain map), so that a decoded file claims neither. Returns the XMP as it came (b"" for none)."""
    xmp = im.info.get("xmp", b"")
    if not isinstance(xmp, bytes):
        return b""
    if motion_photo(data, xmp) or heif.motion_video(data):
        warnings.warn(f"{name}: a motion photo: its video is not kept; coding the still picture", JcdWarning,
                      stacklevel=3)  # fmt: skip
    if xmp:
        im.info["xmp"] = without_appended(xmp)
    return xmp


def _developed(data: bytes, name: str, kind: str, max_pixels: int | None) -> Picture:
    """A camera raw file, developed at 16 bits (rawphoto.py), with its camera data (EXIF)."""
    from . import rawphoto

    samples = rawphoto.develop(data, name, kind, max_pixels)
    rgb = samples.astype(np.float32)
    rgb /= np.float32(65535)  # in place: a 24 Mpx photo's floats are 288 MB
    grey = samples.shape[2] == 1  # a monochrome sensor
    exif = rawphoto.camera_data(data)
    meta = from_pillow_info({"exif": exif} if exif else {}, grey=grey, name=name)
    return Picture(np.repeat(rgb, 3, axis=2) if grey else rgb, GRAY if grey else RGB, 16, None, meta)


def from_pillow(im: Image.Image, name: str = "image") -> Picture:
    """A Pillow image (upright by its EXIF orientation) as jcd codes it; ``name`` for warnings."""
    tiff_exif = _tiff_exif(im.getexif()) if im.format == "TIFF" else b""
    if bits := _tiff16_colour_bits(im):
        warnings.warn(f"{name}: a {bits}-bit colour TIFF of a kind jcd reads at 8 bits only (jcd reads unsigned "
                      "16-bit RGB at full precision); saved so, or as a 16-bit PNG, it keeps all its bits",
                      JcdWarning, stacklevel=2)  # fmt: skip
    text = text_of(im)
    _drop_unreadable_exif(im, name)
    im = ImageOps.exif_transpose(im)
    im.load()
    info = im.info if not tiff_exif or "exif" in im.info else {**im.info, "exif": tiff_exif}
    if im.mode == "CMYK":
        im, info = _cmyk_to_srgb(im, name)
    p = _from_pillow(im)
    p.meta = from_pillow_info(info, grey=p.kind == GRAY, name=name, text=text)
    return p


#: A TIFF's own tags that describe the picture rather than its layout: they travel as EXIF (with the EXIF and
#: GPS directories). Orientation is applied to the pixels instead.
_TIFF_DESCRIPTIVE = (270, 271, 272, 305, 306, 315, 33432)  # description, make, model, software, date, artist, (c)
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825


def _tiff16_colour_bits(im: Image.Image) -> int:
    """The bits per sample of a colour TIFF that declares more than 8 (tag 258, which Pillow narrows), else 0."""
    if im.format != "TIFF" or im.mode not in ("RGB", "RGBA"):
        return 0
    try:
        bits = im.tag_v2.get(258, ())  # type: ignore[attr-defined]
        most = max((int(b) for b in (bits if isinstance(bits, tuple) else (bits,))), default=8)
    except Exception:  # noqa: BLE001
        return 0
    return most if most > 8 else 0


def _tiff_exif(src: Image.Exif) -> bytes:
    """The EXIF of a TIFF (camera, date, exposure, GPS), which Pillow leaves among the file's own tags (``src``:
    its first image's, as ``getexif()`` gives them); the orientation is not among them (it turns the pixels).

    Why: raw converters, scanners and cameras' raw files write TIFF, and without this jcd dropped their camera
    data, while the TIFFs jcd writes carry it (metadata.pillow_save_args).
    """
    try:
        subs = [src.get_ifd(ifd) if ifd in src else {} for ifd in (_EXIF_IFD, _GPS_IFD)]
    except Exception:  # noqa: BLE001  damaged tags cost the metadata, not the picture
        return b""
    return exif_of(src, *subs)


def exif_of(ifd0: Mapping, exif: Mapping, gps: Mapping) -> bytes:
    """EXIF made of the descriptive tags of a first directory ``ifd0`` (make, model, date, ...; not its layout
    nor orientation) and the EXIF and GPS directories' tags; b"" for none or damaged ones."""
    try:
        tags = Image.Exif()
        for tag in _TIFF_DESCRIPTIVE:
            if tag in ifd0:
                tags[tag] = ifd0[tag]
        for ifd, sub in ((_EXIF_IFD, exif), (_GPS_IFD, gps)):
            if sub:
                tags[ifd] = dict(sub)
        return tags.tobytes() if len(tags) else b""
    except Exception:  # noqa: BLE001  damaged tags cost the metadata, not the picture
        return b""


def _cmyk_to_srgb(im: Image.Image, name: str) -> tuple[Image.Image, dict]:
    """A CMYK picture in sRGB through its own profile, and its info without that profile.

    Why: CMYK numbers mean what the press and paper of their profile make of them; Pillow's plain conversion
    (R = 255 - C - K, ...) ignores that, and print files came out with other colours. Relative colorimetric
    with black point compensation is what image editors use by default for this. Without a profile (or with
    one littlecms cannot use: a warning says so) the plain conversion is all there is.
    """
    from PIL import ImageCms

    info = {k: v for k, v in im.info.items() if k != "icc_profile"}
    icc = im.info.get("icc_profile")
    if not icc or profile_space(bytes(icc)) != b"CMYK":
        if icc:  # a profile for other numbers than CMYK: from_pillow_info says it is not kept
            info["icc_profile"] = icc
        return im, info
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(bytes(icc)))
        rgb = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB",
                                        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION)  # fmt: skip
    except (ImageCms.PyCMSError, OSError, ValueError) as e:
        detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        warnings.warn(f"{name}: its CMYK profile cannot be used ({detail}); converted to RGB without it, so "
                      "colours may be off", JcdWarning, stacklevel=3)  # fmt: skip
        return im, info
    return rgb, info


def _from_pillow(im: Image.Image) -> Picture:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I"):
        a = np.asarray(im).astype(np.float32)
        depth = 16 if a.max(initial=0) > 255 or mode.startswith("I;16") else 8
        a = a / (65535.0 if depth == 16 else 255.0)
        return Picture(np.repeat(np.clip(a, 0, 1)[:, :, None], 3, axis=2), GRAY, depth, None)
    if mode == "F":
        a = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return Picture(np.repeat(np.clip(a, 0, 1)[:, :, None], 3, axis=2), GRAY, 16, None)
    kind = GRAY if mode in ("1", "L", "LA", "La") else PALETTE if mode in ("P", "PA") else RGB
    key = im.info.get("transparency") if mode in ("1", "L", "RGB") else None
    if isinstance(key, (int, tuple)):  # a grey or RGB PNG's (or a grey GIF's) transparent key colour (tRNS)
        rgb = np.asarray(im.convert("RGB"))
        opaque = rgb != (np.array(key[:3]) if isinstance(key, tuple) else key)
        return Picture(rgb.astype(np.float32) / 255.0, kind, 8, np.where(opaque.any(axis=2), 255, 0).astype(np.uint8))
    has_alpha = mode in ("LA", "La", "RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"))
        rgb, alpha = rgba[:, :, :3], rgba[:, :, 3].copy()
    else:
        rgb, alpha = np.asarray(im.convert("RGB")), None
    return Picture(rgb.astype(np.float32) / 255.0, kind, 8, alpha)


def to_pillow_or_array(rgb: np.ndarray, kind: int, depth: int, alpha: np.ndarray | None) -> Image.Image | np.ndarray:
    """Build what gets written: a Pillow image, or a uint16 (H, W, C) array for 16 bits (written by pypng)."""
    rgb = np.clip(rgb, 0.0, 1.0)
    if kind == GRAY:
        rgb = rgb.mean(axis=2, keepdims=True)
    if depth == 16:
        a = np.round(rgb * 65535.0).astype(np.uint16)
        if alpha is not None:
            al = alpha.astype(np.uint16) * (257 if alpha.dtype == np.uint8 else 1)
            a = np.concatenate([a, al[:, :, None]], axis=2)
        return a
    a = np.round(rgb * 255.0).astype(np.uint8)
    al = None if alpha is None else (alpha if alpha.dtype == np.uint8 else (alpha >> 8).astype(np.uint8))
    if kind == GRAY:
        im = Image.fromarray(a[:, :, 0], mode="L")
        return im if al is None else Image.merge("LA", (im, Image.fromarray(al, mode="L")))
    im = Image.fromarray(a, mode="RGB")
    if al is not None:
        im = Image.merge("RGBA", (*im.split(), Image.fromarray(al, mode="L")))
    if kind == PALETTE:
        if al is None:
            im = im.quantize(256)
        else:
            im = im.quantize(256, method=Image.Quantize.FASTOCTREE)
    return im


READ_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (by extension: data sets, not user input)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise JcdError(f"{folder}: not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in READ_EXTS)
    if not files:
        raise JcdError(f"{folder}: no images found")
    return files


WRITE_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".webp": "WEBP", ".jpg": "JPEG",
                 ".jpeg": "JPEG", ".avif": "AVIF", ".ppm": "PPM", ".pgm": "PPM"}  # fmt: skip

#: Formats written lossily, at ``quality`` (1..100, Pillow's scale for each).
LOSSY_FORMATS = frozenset({"JPEG", "WEBP", "AVIF"})
#: Their quality when none is asked. Pillow's own defaults (JPEG 75 with its colour at half resolution, WebP 80,
#: AVIF 75) took 0.49, 0.37 and 0.16 dB off a decoded Kodak picture (kodim01 with level-2 noise coded at q6: 27.94
#: dB against the clean original as an 8-bit PNG, 27.44 as JPEG); at 90 (JPEG and AVIF at 4:4:4) 0.16, 0.16 and
#: 0.02 dB, in files 1.7, 1.5 and 1.6 times larger (benchmarks/output_quality.py).
OUTPUT_QUALITY = 90


#: zlib level of written PNGs. Pillow's default (6) spent about 0.15 s of a Kodak decode's 0.8 s of CPU on
#: deflate; level 3 about 0.04 s, for a file 2.5 % larger (555,767 -> 569,704 bytes; benchmarks/decode_stages.py).
#: A decoded picture is usually viewed or re-edited, not archived as is; oxipng and the like shrink it further.
PNG_COMPRESS_LEVEL = 3

#: Formats jcd writes at 16 bits per sample (PNG with pypng, TIFF with tiff16).
SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})

#: Formats that cannot hold an alpha channel: writing a picture with alpha to them drops it (with a warning).
NO_ALPHA_FORMATS = frozenset({"JPEG", "PPM"})


def encode_image(
    rgb: np.ndarray,
    fmt: str = "PNG",
    kind: int = RGB,
    depth: int = 8,
    alpha: np.ndarray | None = None,
    name: str = "output",
    meta: Metadata = NO_METADATA,
    quality: int = OUTPUT_QUALITY,
) -> bytes:
    """Float RGB (H, W, 3) as the bytes of an image file in Pillow format ``fmt`` (16 bits: PNG or TIFF), with
    as much of ``meta`` as the format holds (a warning names what it cannot); JPEG, WebP and AVIF at ``quality``
    (1..100; from 90 up JPEG and AVIF keep the colour at full resolution, 4:4:4)."""
    if depth == 16 and fmt not in SIXTEEN_BIT_FORMATS:
        raise JcdError("16-bit output needs PNG or TIFF")
    if alpha is not None and fmt in NO_ALPHA_FORMATS:
        warnings.warn(f"{name}: {fmt} has no alpha channel; the transparency is dropped (write .png to keep it)",
                      JcdWarning, stacklevel=2)  # fmt: skip
        alpha = None
    obj = to_pillow_or_array(rgb, kind, depth, alpha)
    buf = io.BytesIO()
    if isinstance(obj, np.ndarray) and fmt == "TIFF":  # Pillow writes no 16-bit colour TIFF: tiff16 does
        from . import tiff16

        if obj.shape[2] == 2:  # 16-bit grey + alpha, which Pillow cannot read back: as RGBA
            obj = np.concatenate([obj[:, :, :1].repeat(3, axis=2), obj[:, :, 1:]], axis=2)
        warn_dropped(meta, "TIFF", name)
        return tiff16.write(obj, meta.icc, meta.exif, meta.xmp, dpi_of(meta.dpi))
    if isinstance(obj, np.ndarray):
        h, w, c = obj.shape
        writer = png.Writer(w, h, greyscale=c in (1, 2), alpha=c in (2, 4), bitdepth=16,
                            compression=PNG_COMPRESS_LEVEL)
        writer.write(buf, obj.reshape(h, w * c))
        if meta:
            return _with_png_chunks(buf.getvalue(), png_chunks(meta))
    else:
        if fmt in NO_ALPHA_FORMATS and obj.mode not in ("L", "RGB"):
            obj = obj.convert("RGB")
        args = pillow_save_args(meta, fmt, name) if meta else {}
        obj.save(buf, format=fmt, **_format_args(fmt, quality, grey=obj.mode in ("L", "LA")), **args)
    return buf.getvalue()


def _format_args(fmt: str, quality: int, grey: bool) -> dict:
    """Pillow's ``save`` arguments for how ``fmt`` is coded."""
    if fmt == "PNG":
        return {"compress_level": PNG_COMPRESS_LEVEL}
    if fmt not in LOSSY_FORMATS:
        return {}
    if not 1 <= quality <= 100:
        raise JcdError(f"output quality {quality} is not in 1..100")
    args: dict = {"quality": quality}
    if quality >= 90 and fmt == "JPEG":
        args["subsampling"] = "4:4:4"
    elif quality >= 90 and fmt == "AVIF" and not grey:
        args["subsampling"] = "4:4:4"
    return args


def _with_png_chunks(data: bytes, extra: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG with ``extra`` chunks inserted before its first IDAT (where iCCP and eXIf must be)."""
    chunks = list(png.Reader(bytes=data).chunks())
    at = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    buf = io.BytesIO()
    png.write_chunks(buf, chunks[:at] + extra + chunks[at:])
    return buf.getvalue()


def fitting_depth(source_depth: int, fmt: str) -> int:
    """Bits per sample to write when none are asked: the source's where ``fmt`` holds them (16 bits: PNG or
    TIFF), else 8. Why: a 16-bit scan should decode to 16 bits unasked, and a JPEG output should not be refused."""
    return source_depth if fmt in SIXTEEN_BIT_FORMATS else 8


def encode_picture(p: Picture, fmt: str, depth: int | None = None, name: str = "output",
                   quality: int = OUTPUT_QUALITY) -> tuple[bytes, int]:  # fmt: skip
    """``p`` as the bytes of an image file in Pillow format ``fmt``, and the bits per sample written
    (``depth``, or :func:`fitting_depth` when None); ``quality`` as in :func:`encode_image`."""
    bits = depth if depth is not None else fitting_depth(p.depth, fmt)
    return encode_image(p.rgb, fmt, p.kind, bits, p.alpha, name=name, meta=p.meta, quality=quality), bits


def save_picture(path: str | os.PathLike, p: Picture, depth: int | None = None, clobber: bool = True,
                 quality: int = OUTPUT_QUALITY) -> int:  # fmt: skip
    """Write ``p`` atomically in the format the extension names; returns the bits per sample written
    (``depth``, or :func:`fitting_depth` when None); ``quality`` as in :func:`encode_image`."""
    bits = depth if depth is not None else fitting_depth(p.depth, check_output(path))
    save_image(path, p.rgb, p.kind, bits, p.alpha, clobber=clobber, meta=p.meta, quality=quality)
    return bits


def check_output(path: str | os.PathLike, depth: int | None = None) -> str:
    """The Pillow format ``path`` names, or a one-line JcdError when it names none or cannot hold ``depth``
    bits. Why: a decoder checks this before decoding, not after a minute of work on a large picture."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise JcdError(f"{path}: unknown output format (use one of {', '.join(sorted(WRITE_FORMATS))})")
    if depth == 16 and fmt not in SIXTEEN_BIT_FORMATS:
        raise JcdError(f"{path}: 16-bit output needs a .png or .tif file")
    return fmt


def save_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    kind: int = RGB,
    depth: int = 8,
    alpha: np.ndarray | None = None,
    clobber: bool = True,
    meta: Metadata = NO_METADATA,
    quality: int = OUTPUT_QUALITY,
) -> None:
    """Write float RGB (H, W, 3) atomically, in the format the extension names (never over a file unless
    ``clobber``); ``quality`` as in :func:`encode_image`."""
    path = Path(path)
    if np.ndim(rgb) != 3 or np.shape(rgb)[2] != 3:  # grey too is given as (H, W, 3), its kind saying grey
        raise JcdError(f"{path}: expected a float (H, W, 3) array, got shape {np.shape(rgb)}")
    fmt = check_output(path, depth)
    atomic_write_bytes(path, encode_image(rgb, fmt, kind, depth, alpha, name=str(path), meta=meta,
                                          quality=quality), clobber)  # fmt: skip
