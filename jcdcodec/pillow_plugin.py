"""Pillow plugin: ``Image.open("x.jcd")`` decodes with the default weights; ``im.save("x.jcd", quality=4)``.

Registered when :mod:`jcdcodec` is imported. Opening reads and validates the header only (size and mode
are known at once); the pixels are decoded on first access, by the torch-free decoder when the weights
have its synthesis file (so a program that only reads .jcd files never loads PyTorch); saving loads the
encoder of the shipped model chosen for the image's noise, as ``jcd encode`` does (without PyTorch too when
the model has its analysis file). Other weights: ``jcdcodec.pillow_plugin.use_codec(jcdcodec.open_encoder(...))``.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from . import bitstream
from .errors import BitstreamError
from .inputs import DEFAULT_MAX_PIXELS
from .metadata import pillow_info

_CODEC = None
_DECODER = None
#: The largest picture the plugin opens, as ``jcd decode`` (whose --max-pixels sets it); None: no bound.
MAX_PIXELS: int | None = DEFAULT_MAX_PIXELS


def use_codec(codec) -> None:
    """Make the plugin decode and encode with this codec (:func:`jcdcodec.open_encoder`'s, or a ``Codec``)."""
    global _CODEC, _DECODER
    _CODEC = _DECODER = codec


def _codec():
    global _CODEC
    if _CODEC is None:  # as `jcd encode` without --weights: the shipped model chosen for each image's noise
        from .choose import AutoCodec

        _CODEC = AutoCodec()
    return _CODEC


def _decoder():
    global _DECODER
    if _DECODER is None:
        from .decoder import open_decoder

        _DECODER = open_decoder()
    return _DECODER


def _accept(prefix: bytes) -> bool:
    return prefix[:3] == bitstream.MAGIC


class JcdImageFile(ImageFile.ImageFile):
    format = "JCD"
    format_description = "jcd learned image codec (denoising)"

    def _open(self) -> None:
        from .inputs import read_stream

        # Within the bound jcd's own readers keep (inputs.py): a 20 GB file that starts like a stream was read
        # whole, until memory ran out, by Image.open alone.
        data = read_stream(self.fp, getattr(self.fp, "name", None) or "image", MAX_PIXELS)
        try:
            s = bitstream.unpack(data)
        except BitstreamError as e:
            raise SyntaxError(str(e)) from None
        h = s.header
        base = "L" if h.kind == 0 else "RGB"
        self._mode = base + ("A" if h.has_alpha else "")
        self._size = (h.width, h.height)
        self.info["jcd_quality"] = h.quality
        try:
            self.info.update(pillow_info(s.unpacked_metadata()))  # saving to PNG, JPEG, ... writes them back
        except BitstreamError as e:
            raise SyntaxError(str(e)) from None
        self._jcd_data = data
        self.tile = []

    def load(self):
        if self._im is None and getattr(self, "_jcd_data", None) is not None:
            from .imageio import GRAY, RGB, to_pillow_or_array

            p = _decoder().decode(self._jcd_data).picture
            kind = GRAY if p.kind == GRAY else RGB
            img = to_pillow_or_array(p.rgb, kind, 8, p.alpha)
            self.im = img.convert(self.mode).im
            self._jcd_data = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    """``im.save(f, "JCD", quality=4, metadata="all", icc_profile=..., exif=..., xmp=..., comment=...)``: the
    image's own profile, EXIF, XMP and text are kept unless ``metadata`` says otherwise; the keywords replace
    them, as Pillow's other formats take them (``comment``, as for JPEG: the text's Comment)."""
    from dataclasses import replace

    from .imageio import from_pillow
    from .metadata import parse_keep, text_bytes, text_pairs, within_stream

    info = im.encoderinfo
    quality = float(info.get("quality", 4))
    picture = from_pillow(im)
    given = {k: info[key] for k, key in (("icc", "icc_profile"), ("exif", "exif"), ("xmp", "xmp")) if info.get(key)}
    if given:
        given = {k: v.tobytes() if isinstance(v, Image.Exif) else bytes(v) for k, v in given.items()}
        picture.meta = replace(picture.meta, **given)
    if info.get("comment"):
        comment = info["comment"]
        comment = comment if isinstance(comment, str) else bytes(comment).decode("utf-8", "replace")
        pairs = [(k, v) for k, v in text_pairs(picture.meta.text) if k != "Comment"] + [("Comment", comment)]
        picture.meta = replace(picture.meta, text=text_bytes(pairs))
    kept = picture.meta.kept(parse_keep(str(info.get("metadata", "all"))))
    picture.meta = within_stream(kept, str(filename) or "image")  # as jcd encode: the largest kinds left out
    fp.write(_codec().encode(picture, quality).data)


def register() -> None:
    Image.register_open(JcdImageFile.format, JcdImageFile, _accept)
    Image.register_save(JcdImageFile.format, _save)
    Image.register_extension(JcdImageFile.format, ".jcd")
    Image.register_mime(JcdImageFile.format, "image/x-jcd")
