"""Fuzzing the parser and the full decoder with structure-aware mutations of valid .jcd files.

Most random changes to a file are caught by its CRC at once; to reach the code behind it, the
mutations here rebuild the container field by field (a packer that validates nothing) and
recompute the file CRC, so forged headers, lengths and payloads get to the parser's checks,
the z and y entropy decoders, the symbol CRC, the alpha plane and the metadata section.

Every input must end in a decoded image or a JcdError, within a time limit (a hang fails the
example) and a memory bound. The bounded run below is part of the test suite; a long run:

    JCD_FUZZ_EXAMPLES=20000 JCD_FUZZ_REPORT=fuzz.json .venv/bin/python -m pytest tests/test_fuzz.py -q

(docs/robustness.md has the figures of such a run). The report counts outcomes per kind of mutation.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import textured

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from jcdcodec import JcdError, Picture, bitstream  # noqa: E402

EXAMPLES = int(os.environ.get("JCD_FUZZ_EXAMPLES", "3000"))
REPORT = os.environ.get("JCD_FUZZ_REPORT")
#: The fuzzed decoder refuses images above this many pixels: it bounds what one input may cost.
FUZZ_MAX_PIXELS = 1 << 20
#: Peak resident memory the whole fuzz run may reach (the decoder, the model, pytest).
MEMORY_BOUND = 3 << 30


@dataclass(frozen=True)
class Fields:
    """A .jcd file as its fields, before any validation: every value may be hostile."""

    version: int
    flags: int
    quality: int
    fingerprint: bytes
    width: int
    height: int
    z: bytes
    alpha: bytes
    y: bytes
    symbol_crc: int
    meta: bytes = b""
    zlen: int | None = None  # None: the true length
    alen: int | None = None
    mlen: int | None = None
    fix_crc: bool = True

    @classmethod
    def of(cls, data: bytes) -> Fields:
        s = bitstream.unpack(data)
        h = s.header
        flags = h.kind | (4 if h.has_alpha else 0) | (8 if h.depth == 16 else 0) | (16 if s.alpha else 0)
        flags |= 32 if s.metadata else 0
        return cls(h.version, flags, round(h.quality * 32), h.fingerprint, h.width, h.height, s.z, s.alpha, s.y,
                   s.symbol_crc, s.metadata)  # fmt: skip

    def pack(self) -> bytes:
        out = bytearray(bitstream.MAGIC + bytes([self.version & 255, self.flags & 255, self.quality & 255]))
        out += self.fingerprint
        out += varint(self.width) + varint(self.height)
        out += varint(len(self.z) if self.zlen is None else self.zlen)
        if self.flags & 16:
            out += varint(len(self.alpha) if self.alen is None else self.alen)
        if self.flags & 32:
            out += varint(len(self.meta) if self.mlen is None else self.mlen)
        out += self.z + self.alpha + self.meta + self.y + struct.pack("<I", self.symbol_crc & 0xFFFFFFFF)
        crc = zlib.crc32(out) if self.fix_crc else 0xDEADBEEF
        return bytes(out + struct.pack("<I", crc))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


EXTREMES = [0, 1, 2, 63, 64, 65, 127, 128, 255, 256, 4095, 65535, 65536, 65537, 1 << 20, (1 << 28) - 1, 1 << 28,
            (1 << 32) - 1, (1 << 35) - 1]  # fmt: skip
sizes = st.one_of(st.sampled_from(EXTREMES), st.integers(0, 1 << 35))
blobs = st.binary(max_size=2048)


@st.composite
def mutated(draw, bases: list[bytes]) -> tuple[str, bytes]:
    """(kind of mutation, bytes) from one of the valid base streams."""
    base = draw(st.sampled_from(bases))
    f = Fields.of(base)
    kind = draw(st.sampled_from(["random", "truncate", "flip", "header", "lengths", "swap", "payload", "alpha",
                                 "metadata", "splice"]))  # fmt: skip
    if kind == "random":
        head = draw(st.sampled_from([b"", b"JCD", b"JCD\x01"]))
        return kind, head + draw(blobs)
    if kind == "truncate":
        return kind, base[: draw(st.integers(0, len(base)))]
    if kind == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        if draw(st.booleans()):  # and make the CRC fit again
            data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
        return kind, bytes(data)
    if kind == "header":
        field = draw(st.sampled_from(["version", "flags", "quality", "fingerprint", "width", "height", "both"]))
        if field in ("version", "flags", "quality"):
            f = replace(f, **{field: draw(st.integers(0, 255))})
        elif field == "fingerprint":
            f = replace(f, fingerprint=draw(st.binary(min_size=4, max_size=4)))
        elif field == "both":
            f = replace(f, width=draw(sizes), height=draw(sizes))
        else:
            f = replace(f, **{field: draw(sizes)})
    elif kind == "lengths":
        f = replace(f, zlen=draw(sizes), alen=draw(st.one_of(st.none(), sizes)), flags=f.flags | draw(
            st.sampled_from([0, 16, 20])))  # fmt: skip
    elif kind == "swap":
        f = replace(f, z=f.y, y=f.z)
    elif kind == "payload":
        which = draw(st.sampled_from(["z", "y", "both"]))
        if which in ("z", "both"):
            f = replace(f, z=draw(st.binary(max_size=len(f.z) * 2 + 8)))
        if which in ("y", "both"):
            f = replace(f, y=draw(st.binary(max_size=len(f.y) * 2 + 8)))
        if draw(st.booleans()):
            f = replace(f, symbol_crc=draw(st.integers(0, 0xFFFFFFFF)))
    elif kind == "alpha":
        f = replace(f, flags=f.flags | 4 | 16, alpha=draw(st.one_of(blobs, st.just(zlib.compress(bytes(
            draw(st.integers(0, 5000))))))))  # fmt: skip
    elif kind == "metadata":  # records of any tag and length, raw or deflated, a bomb, any version and length
        records = b"".join(bytes([draw(st.integers(0, 5))]) + varint(draw(st.one_of(sizes, st.integers(0, 64))))
                           + draw(st.binary(max_size=64)) for _ in range(draw(st.integers(0, 4))))  # fmt: skip
        section = draw(st.sampled_from([records, zlib.compress(records), zlib.compress(bytes(
            draw(st.sampled_from([0, 1 << 20, (16 << 20) + 1])))), draw(blobs)]))  # fmt: skip
        f = replace(f, flags=f.flags | 32, meta=section, version=draw(st.sampled_from([1, 2, 2, 3])),
                    mlen=draw(st.one_of(st.none(), st.none(), sizes)))  # fmt: skip
    elif kind == "splice":
        other = Fields.of(draw(st.sampled_from(bases)))
        f = replace(f, z=other.z, y=other.y, alpha=other.alpha, symbol_crc=other.symbol_crc)
    f = replace(f, fix_crc=draw(st.booleans()) if kind != "splice" else True)
    return kind, f.pack()


@pytest.fixture(scope="module")
def fuzz_codec(weights_file):
    from jcdcodec import Codec

    return Codec(str(weights_file), device="cpu", max_pixels=FUZZ_MAX_PIXELS)


@pytest.fixture(scope="module", params=["torch", "onnx"])
def fuzz_decoder(request, fuzz_codec, weights_file):
    """Both decoding engines: they share the container and entropy path, and differ in g_s."""
    if request.param == "torch":
        return fuzz_codec
    from jcdcodec.decoder import OnnxDecoder
    from jcdcodec.synthesis import available_runtimes

    if not available_runtimes():
        pytest.skip("no ONNX runtime installed")
    return OnnxDecoder(weights_file, max_pixels=FUZZ_MAX_PIXELS)


@pytest.fixture(scope="module")
def bases(fuzz_codec) -> list[bytes]:
    """Valid streams: RGB, odd sizes, grey 16-bit, alpha, fractional quality, metadata."""
    from conftest import rgb_profile

    from jcdcodec.metadata import Metadata

    c = fuzz_codec
    alpha = (np.arange(30 * 41) % 251).astype(np.uint8).reshape(30, 41)
    meta = Metadata(icc=rgb_profile(), xmp=b"<x:xmpmeta/>")
    return [
        c.encode(Picture(textured(24, 33, seed=4), meta=meta), 4).data,
        c.encode(Picture.from_array(textured(64, 96)), 6).data,
        c.encode(Picture.from_array(textured(17, 5, seed=1)), 1).data,
        c.encode(Picture(textured(40, 40, seed=2), kind=0, depth=16), 3.5).data,
        c.encode(Picture(textured(30, 41, seed=3), alpha=alpha), 2).data,
    ]


def _peak_rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _fuzz(strategy, examples: int, attempt, report: str | None) -> tuple[Counter, Counter]:
    """Run ``attempt(data)`` on ``examples`` inputs; count outcomes and messages, fail on anything but a JcdError.

    ``attempt`` returns the name of its success ("decoded", "encoded"); a JcdError is the clean failure, any
    other exception a bug (all are collected, then the first one fails the test). ``report``: a JSON file of
    the counts, for long runs.
    """
    outcomes: Counter = Counter()
    messages: Counter = Counter()
    failures: list[str] = []

    # No per-example deadline: tests do not assert on wall time (a 10 s deadline failed one CI run where two
    # suites and a training run shared two cores: 14.8 s, then 3.3 s on the retry). Memory is what an input
    # could exhaust, and the peak RSS below is checked; a real hang still stops CI.
    @settings(max_examples=examples, deadline=None, derandomize=not REPORT, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def one(case: tuple[str, bytes]) -> None:
        kind, data = case
        try:
            outcome = attempt(data)
        except JcdError as e:
            outcomes[f"{kind}: error"] += 1
            messages[re.sub(r"[0-9a-f]{8}|\d+", "N", str(e))[:70]] += 1
            return
        except Exception as e:  # anything else is a bug: record it, fail at the end with all of them
            failures.append(f"{kind}: {type(e).__name__}: {e} [{data[:40].hex()}...]")
            raise
        outcomes[f"{kind}: {outcome}"] += 1

    try:
        one()
    finally:
        peak = _peak_rss()
        if report:
            with open(report, "w") as fh:
                json.dump({"examples": sum(outcomes.values()), "failures": failures, "peak_rss": peak,
                           "outcomes": dict(sorted(outcomes.items())), "messages": dict(messages.most_common())},
                          fh, indent=1)  # fmt: skip
    assert not failures
    assert peak < MEMORY_BOUND, f"peak RSS {peak / 2**30:.2f} GiB"
    return outcomes, messages


def test_fuzzed_streams_decode_or_fail_cleanly(fuzz_decoder, bases):
    def attempt(data: bytes) -> str:
        try:
            bitstream.unpack(data)
        except JcdError:
            pass
        dec = fuzz_decoder.decode(data)
        assert dec.picture.rgb.shape == (dec.header.height, dec.header.width, 3)
        assert np.isfinite(dec.picture.rgb).all()
        return "decoded"

    outcomes, messages = _fuzz(mutated(bases), EXAMPLES, attempt, REPORT)
    # The mutations reach the decoder proper, not only the CRC check.
    assert any("does not match the encoder" in m for m in messages), messages
    assert sum(v for k, v in outcomes.items() if k.endswith("decoded")) > 0


def test_declared_size_is_refused_before_any_allocation(fuzz_decoder, bases):
    """A header that asks for a huge image costs nothing: the size limit comes before the decoders."""
    f = replace(Fields.of(bases[0]), width=60000, height=60000)
    with pytest.raises(JcdError, match="out of range"):  # the container's own bound (268 Mpx)
        fuzz_decoder.decode(f.pack())
    f = replace(Fields.of(bases[0]), width=4000, height=4000)
    with pytest.raises(JcdError, match="above the limit"):  # the decoder's (--max-pixels)
        fuzz_decoder.decode(f.pack())


# -- image inputs: what `jcd encode` reads ------------------------------------------------------------------

IMAGE_EXAMPLES = int(os.environ.get("JCD_FUZZ_IMAGE_EXAMPLES", str(max(1, EXAMPLES // 3))))


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos + 8 <= len(data):
        n = struct.unpack(">I", data[pos : pos + 4])[0]
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def _png_pack(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def _offsets_of_size(fmt: str, data: bytes) -> list[tuple[int, int, str]]:
    """(offset, byte count, byte order) of the width/height fields a format declares in its header."""
    if fmt == "jpeg":
        sof = data.find(b"\xff\xc0")
        return [(sof + 5, 2, "big"), (sof + 7, 2, "big")] if sof >= 0 else []
    if fmt == "bmp":
        return [(18, 4, "little"), (22, 4, "little")]
    if fmt == "gif":
        return [(6, 2, "little"), (8, 2, "little")]
    if fmt == "webp":  # VP8 (lossy) frame header: 14-bit sizes after the start code
        k = data.find(b"\x9d\x01\x2a")
        return [(k + 3, 2, "little"), (k + 5, 2, "little")] if k >= 0 else []
    return []


@pytest.fixture(scope="module")
def image_bases() -> list[tuple[str, bytes]]:
    """Small valid images in every format jcd reads, 8 and 16 bits, with and without alpha."""
    import io

    import png
    from PIL import Image

    rgb = (textured(24, 32, seed=5) * 255).astype(np.uint8)
    out = []
    for fmt, mode, kw in (("png", "RGB", {}), ("png", "RGBA", {}), ("png", "P", {}), ("png", "L", {}),
                          ("jpeg", "RGB", {"quality": 80}), ("jpeg", "CMYK", {}), ("tiff", "RGB", {}),
                          ("tiff", "F", {}), ("webp", "RGB", {"quality": 80}), ("webp", "RGBA", {"lossless": True}),
                          ("bmp", "RGB", {}), ("gif", "P", {})):  # fmt: skip
        im = Image.fromarray(rgb)
        im = im.convert("RGBA") if mode == "RGBA" else im.convert(mode) if mode != "RGB" else im
        buf = io.BytesIO()
        im.save(buf, format=fmt.upper(), **kw)
        out.append((fmt, buf.getvalue()))
    buf = io.BytesIO()  # 16-bit RGB PNG: read by pypng, not Pillow
    png.Writer(32, 24, greyscale=False, bitdepth=16).write(buf, (rgb.astype(np.uint16) * 257).reshape(24, -1))
    out.append(("png", buf.getvalue()))
    from test_tiff16 import tiff  # 16-bit colour TIFF, read through libtiff by tiff16.py

    out.append(("tiff", tiff((rgb.astype(np.uint16) * 257), deflate=True, predictor=True)))
    out.append(("tiff", tiff((rgb.astype(np.uint16) * 257), planar=True, big=True)))
    out.append(("tiff", tiff((rgb.astype(np.uint16) * 257), tiles=16, compression=5, predictor=True)))
    heif = Path(__file__).parent / "data" / "heif"  # read in a child process: crashes stay there
    out.append(("heic", (heif / "phone.heic").read_bytes()))
    out.append(("heic", (heif / "deep.heic").read_bytes()))  # 10 bits: its samples come back at 16
    from jcdcodec import rawphoto

    if rawphoto.available():  # developed by LibRaw in a child process, like HEIC
        from test_rawphoto import dng

        out.append(("dng", dng()))
    from importlib.util import find_spec

    if find_spec("pillow_jxl"):  # decoded by libjxl in a child process, its size read from its header first
        import pillow_jxl  # noqa: F401  registers JPEG XL with Pillow, to write it

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JXL", quality=80, effort=3)
        out.append(("jxl", buf.getvalue()))
    from PIL import features

    if features.check("avif"):  # read by Pillow in process (400 mutated copies, each alone: no crash)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "AVIF", quality=80)
        out.append(("avif", buf.getvalue()))
    return out


@st.composite
def mutated_image(draw, bases: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    fmt, base = draw(st.sampled_from(bases))
    kind = draw(st.sampled_from(["truncate", "flip", "size", "random", "png-chunk"]))
    if kind == "truncate":
        return f"{fmt} {kind}", base[: draw(st.integers(0, len(base)))]
    if kind == "random":
        return f"{fmt} {kind}", base[: draw(st.integers(0, 16))] + draw(blobs)
    if kind == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
        return f"{fmt} {kind}", bytes(data)
    if fmt == "png":  # rewrite the header or a chunk and make every CRC fit again
        chunks = _png_chunks(base)
        if kind == "size":
            ihdr = bytearray(chunks[0][1])
            ihdr[0:4] = struct.pack(">I", draw(sizes) & 0xFFFFFFFF)
            ihdr[4:8] = struct.pack(">I", draw(sizes) & 0xFFFFFFFF)
            if draw(st.booleans()):
                ihdr[8] = draw(st.sampled_from([1, 2, 4, 8, 16, 0, 3, 255]))
                ihdr[9] = draw(st.sampled_from([0, 2, 3, 4, 6, 1, 7]))
            chunks[0] = (b"IHDR", bytes(ihdr))
        else:
            i = draw(st.integers(0, len(chunks) - 1))
            chunks[i] = (chunks[i][0], draw(st.one_of(blobs, st.just(zlib.compress(bytes(draw(
                st.integers(0, 100_000))))))))  # fmt: skip
        return f"{fmt} {kind}", _png_pack(chunks)
    data = bytearray(base)
    for off, n, order in _offsets_of_size(fmt, base):
        if 0 <= off and off + n <= len(data):
            data[off : off + n] = (draw(sizes) % (1 << (8 * n))).to_bytes(n, order)
    return f"{fmt} size", bytes(data)


def test_fuzzed_images_encode_or_fail_cleanly(fuzz_codec, image_bases):
    """What `jcd encode` does with a file: read it (size checked from the header first), then code it."""
    from jcdcodec.imageio import load_image

    def attempt(data: bytes) -> str:
        picture = load_image(data, name="<fuzz>", max_pixels=FUZZ_MAX_PIXELS)
        enc = fuzz_codec.encode(picture, 3)
        assert bitstream.unpack(enc.data).header.width == picture.width
        return "encoded"

    report = None
    if REPORT:
        report = REPORT.replace(".json", "-images.json") if REPORT.endswith(".json") else REPORT + "-images"
    outcomes, messages = _fuzz(mutated_image(image_bases), IMAGE_EXAMPLES, attempt, report)
    assert sum(v for k, v in outcomes.items() if k.endswith("encoded")) > 0
    assert any("above the limit" in m for m in messages), messages
