"""Every user error ends in one line on stderr and a non-zero exit code; outputs are atomic."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_jcd, textured
from PIL import Image

from jcdcodec.cli.app import WORKBENCH


@pytest.fixture(scope="module")
def noisy_png(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "noisy.png"
    Image.fromarray((textured(40, 56) * 255).astype(np.uint8)).save(p)
    return p


@pytest.fixture(scope="module")
def stream(tmp_path_factory, noisy_png, weights_file):
    out = tmp_path_factory.mktemp("s") / "out.jcd"
    r = run_jcd("encode", str(noisy_png), "-q", "4", "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    return out


def one_line_error(r, pattern: str) -> None:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert pattern in lines[0], lines[0]


def test_encode_decode_info(tmp_path, stream, weights_file):
    import os

    out = tmp_path / "clean.png"
    r = run_jcd("decode", str(stream), "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == (0o666 & ~umask), "outputs get the usual permissions"
    assert Image.open(out).size == (56, 40)
    r = run_jcd("info", str(stream), "--json")
    i = json.loads(r.stdout)
    assert i["width"] == 56 and i["quality"] == 4 and i["bytes_total"] == stream.stat().st_size
    r = run_jcd("info", str(stream))
    assert "bpp" in r.stdout and "56x40" in r.stdout


def test_info_of_several_files_shows_each_and_names_the_ones_that_are_no_stream(tmp_path, stream, noisy_png):
    folder = tmp_path / "coded"
    folder.mkdir()
    (folder / "a.jcd").write_bytes(stream.read_bytes())
    (folder / "b.jcd").write_bytes(stream.read_bytes()[:-1])  # cut short
    r = run_jcd("info", str(folder), str(noisy_png))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stdout.count("bpp") == 1 and str(folder / "a.jcd") in r.stdout
    assert [ln.split(": ")[2] for ln in r.stderr.splitlines()] == [str(folder / "b.jcd"), str(noisy_png),
                                                                   "2 of 3 files are not readable streams"]
    r = run_jcd("info", str(folder / "a.jcd"), str(stream), "--json")
    listed = json.loads(r.stdout)
    assert r.returncode == 0 and [i["file"] for i in listed] == [str(folder / "a.jcd"), str(stream)]
    assert listed[0]["bytes_total"] == stream.stat().st_size and "error" not in listed[1]
    r = run_jcd("info", str(folder), "--json")
    listed = json.loads(r.stdout)
    assert r.returncode == 1 and "error" in listed[1] and listed[1]["file"] == str(folder / "b.jcd")
    assert not listed[1]["error"].startswith(str(folder))  # "file" names it
    # A file that cannot be read is named once (it said "nothing.jcd: nothing.jcd: no such file").
    r = run_jcd("info", str(folder / "a.jcd"), str(tmp_path / "nothing.jcd"))
    assert r.returncode == 1 and f"jcd: error: {tmp_path / 'nothing.jcd'}: no such file\n" in r.stderr, r.stderr
    r = run_jcd("info", str(folder / "a.jcd"), str(tmp_path / "nothing.jcd"), "--json")
    assert json.loads(r.stdout)[1]["error"] == "no such file"


def test_encode_threads_limit_the_networks_and_the_stream_still_decodes(tmp_path, noisy_png, weights_file,
                                                                        monkeypatch):
    """`jcd encode --threads 1` (leaving the other cores to other work) sets PyTorch's threads, or the ONNX
    runtime's; its stream decodes in another process like any other."""
    import torch
    from click.testing import CliRunner

    from jcdcodec.cli.app import cli
    from jcdcodec.synthesis import OnnxNetwork, available_runtimes

    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    given = []
    network_init = OnnxNetwork.__init__

    def spy(self, path, weights_sha256, threads=0, *args, **kwargs):
        given.append((self.kind, threads))
        network_init(self, path, weights_sha256, threads, *args, **kwargs)

    monkeypatch.setattr(OnnxNetwork, "__init__", spy)
    out = tmp_path / "t.jcd"
    for engine in ("torch", "onnx") if available_runtimes() else ("torch",):
        res = CliRunner().invoke(cli, ["encode", str(noisy_png), "-q", "2", "-o", str(out), "--threads", "1",
                                       "--weights", str(weights_file), "--quiet", "--engine", engine])  # fmt: skip
        assert res.exit_code == 0, res.output
    assert asked == [1]
    if available_runtimes():
        assert ("analysis", 1) in given and ("synthesis", 1) in given
    r = run_jcd("decode", str(out), "-o", str(tmp_path / "t.png"), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "t.png").size == Image.open(noisy_png).size
    res = CliRunner().invoke(cli, ["encode", str(noisy_png), "-o", str(tmp_path / "u.jcd"), "--threads", "-1",
                                   "--weights", str(weights_file)])  # fmt: skip
    assert res.exit_code != 0 and not (tmp_path / "u.jcd").exists()


def test_version_and_help():
    r = run_jcd("--version")
    assert r.returncode == 0 and "jcd" in r.stdout
    for cmd in ("encode", "decode", "info", "noise", "train", "export"):
        r = run_jcd(cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout


def test_missing_input(tmp_path, weights_file):
    one_line_error(run_jcd("encode", str(tmp_path / "nope.png"), "--weights", str(weights_file)), "no such file")
    one_line_error(run_jcd("decode", str(tmp_path / "nope.jcd"), "--weights", str(weights_file)), "no such file")
    one_line_error(run_jcd("info", str(tmp_path / "nope.jcd")), "no such file")


def test_not_an_image(tmp_path, weights_file):
    p = tmp_path / "x.png"
    p.write_text("hello")
    one_line_error(run_jcd("encode", str(p), "-o", str(tmp_path / "o.jcd"), "--weights", str(weights_file)),
                   "not an image")  # fmt: skip
    assert not (tmp_path / "o.jcd").exists()


def test_not_a_jcd_file(noisy_png, weights_file):
    one_line_error(run_jcd("decode", str(noisy_png), "--weights", str(weights_file)),
                   "not a .jcd file: it is a PNG image (jcd encode compresses images)")  # fmt: skip
    one_line_error(run_jcd("info", str(noisy_png)), "not a .jcd file: it is a PNG image")


def test_truncated_and_corrupted_streams(tmp_path, stream, weights_file):
    data = stream.read_bytes()
    t = tmp_path / "t.jcd"
    t.write_bytes(data[: len(data) // 2])
    one_line_error(run_jcd("decode", str(t), "-o", str(tmp_path / "a.png"), "--weights", str(weights_file)),
                   "truncated")  # fmt: skip
    c = tmp_path / "c.jcd"
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x55
    c.write_bytes(bytes(bad))
    one_line_error(run_jcd("decode", str(c), "-o", str(tmp_path / "b.png"), "--weights", str(weights_file)),
                   "corrupted")  # fmt: skip
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()
    for bad_stream in (t, c):  # info names the file it could not read, as decode does
        one_line_error(run_jcd("info", str(bad_stream)), f"{bad_stream}: corrupted or truncated")


def test_wrong_weights(tmp_path, stream, other_weights_file):
    one_line_error(run_jcd("decode", str(stream), "-o", str(tmp_path / "x.png"), "--weights", str(other_weights_file)),
                   "made with weights")  # fmt: skip


def test_bad_weights_file(tmp_path, noisy_png):
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    one_line_error(run_jcd("encode", str(noisy_png), "-o", str(tmp_path / "o.jcd"), "--weights", str(w)), "weights")


@pytest.mark.parametrize("q", ["0", "7", "abc"])
def test_quality_out_of_range(tmp_path, noisy_png, weights_file, q):
    r = run_jcd("encode", str(noisy_png), "-q", q, "-o", str(tmp_path / "o.jcd"), "--weights", str(weights_file))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert not (tmp_path / "o.jcd").exists()


def test_unwritable_output_keeps_existing_file(tmp_path, noisy_png, stream, weights_file):
    one_line_error(run_jcd("encode", str(noisy_png), "-o", str(tmp_path / "missing" / "o.jcd"), "--weights",
                           str(weights_file)), "does not exist")  # fmt: skip
    # A failing decode must not destroy an existing output.
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"precious")
    c = tmp_path / "c.jcd"
    c.write_bytes(stream.read_bytes()[:-3])
    r = run_jcd("decode", str(c), "-o", str(existing), "--weights", str(weights_file))
    assert r.returncode != 0 and existing.read_bytes() == b"precious"
    # An output it cannot write is refused before decoding (the truncated stream would fail later, in decoding;
    # a large picture takes a minute to decode).
    one_line_error(run_jcd("decode", str(c), "-o", str(tmp_path / "x.xyz"), "--weights", str(weights_file)),
                   "unknown output format")  # fmt: skip
    one_line_error(run_jcd("decode", str(c), "-o", str(tmp_path / "x.bmp"), "--depth", "16", "--weights",
                           str(weights_file)), "16-bit")  # fmt: skip
    one_line_error(run_jcd("decode", str(c), "-o", "-", "--format", "webp", "--depth", "16", "--weights",
                           str(weights_file)), "16-bit output needs --format png or tiff")  # fmt: skip
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_lossy_outputs_take_the_output_quality(tmp_path, stream, weights_file):
    """JPEG, WebP and AVIF at --output-quality (default 90, JPEG at 4:4:4 from 90 up): nearer the decoded picture
    than at 75 and smaller than at 100; -o - with --format avif gives an AVIF; a quality outside 1..100 is one
    line."""
    from PIL import JpegImagePlugin

    from jcdcodec.cli.coding import decode
    from jcdcodec.imageio import OUTPUT_QUALITY

    assert next(p.default for p in decode.params if p.name == "output_quality") == OUTPUT_QUALITY
    w = ("--weights", str(weights_file))
    assert run_jcd("decode", str(stream), "-o", str(tmp_path / "ref.png"), *w).returncode == 0
    ref = np.asarray(Image.open(tmp_path / "ref.png").convert("RGB"), dtype=np.float64)
    for ext in ("jpg", "webp", "avif"):
        sizes, errors = {}, {}
        for q in ("75", None, "100"):
            out = tmp_path / f"{q}.{ext}"
            r = run_jcd("decode", str(stream), "-o", str(out), *w, *(("--output-quality", q) if q else ()))
            assert r.returncode == 0, r.stderr
            sizes[q], im = out.stat().st_size, Image.open(out)
            errors[q] = np.mean((np.asarray(im.convert("RGB"), dtype=np.float64) - ref) ** 2)
            if ext == "jpg":
                assert JpegImagePlugin.get_sampling(im) == (2 if q == "75" else 0), q  # 4:2:0 / 4:4:4
        assert sizes["75"] < sizes[None] < sizes["100"], (ext, sizes)
        assert errors["75"] > errors[None] >= errors["100"], (ext, errors)
    r = subprocess.run([sys.executable, "-m", "jcdcodec", "decode", str(stream), "-o", "-", "--format", "avif", *w],
                       capture_output=True, check=False)  # fmt: skip
    assert r.returncode == 0 and Image.open(io.BytesIO(r.stdout)).format == "AVIF"
    one_line_error(run_jcd("decode", str(stream), "-o", str(tmp_path / "x.jpg"), "--output-quality", "0", *w),
                   "--output-quality")  # fmt: skip
    assert not (tmp_path / "x.jpg").exists()


def test_decode_keeps_a_16_bit_source_16_bit_unless_told(tmp_path, stream, weights_file):
    """--depth auto (the default): a 16-bit source decodes to a 16-bit PNG or TIFF, an 8-bit one to 8 bits, and
    a format without 16 bits gets 8 instead of an error; --depth 8 still narrows."""
    import png

    src = tmp_path / "s16.png"
    rgb = np.round(textured(24, 32) * 65535).astype(np.uint16)
    png.Writer(32, 24, greyscale=False, bitdepth=16).write(open(src, "wb"), rgb.reshape(24, -1))
    s16 = tmp_path / "s16.jcd"
    assert run_jcd("encode", str(src), "-q", "3", "-o", str(s16), "--weights", str(weights_file)).returncode == 0
    cases = ((s16, "a.png", (), 16), (s16, "b.png", ("--depth", "8"), 8), (s16, "c.tif", (), 16),
             (s16, "e.tif", ("--depth", "8"), 8), (s16, "f.webp", (), 8), (stream, "d.png", (), 8))  # fmt: skip
    for jcd_file, name, extra, bits in cases:
        r = run_jcd("decode", str(jcd_file), "-o", str(tmp_path / name), *extra, "--weights", str(weights_file))
        assert r.returncode == 0 and f"{bits}-bit" in r.stdout + r.stderr, r.stderr
        if name.endswith(".png"):
            assert png.Reader(filename=str(tmp_path / name)).read()[3]["bitdepth"] == bits
        else:
            assert Image.open(tmp_path / name).mode == "RGB"
    from jcdcodec.imageio import load_image  # the 16-bit TIFF holds the same samples as the 16-bit PNG

    tif, png16 = load_image(tmp_path / "c.tif"), load_image(tmp_path / "a.png")
    assert tif.depth == 16 and np.array_equal(tif.rgb, png16.rgb)


def test_noise_command_is_deterministic(tmp_path, noisy_png):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    for out, seed in ((a, "0"), (b, "0"), (c, "1")):
        r = run_jcd("noise", str(noisy_png), "--level", "3", "-o", str(out), "--seed", seed)
        assert r.returncode == 0, r.stderr
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    import png

    assert png.Reader(filename=str(a)).asDirect()[3]["bitdepth"] == 16


def test_no_command_writes_over_what_it_reads(tmp_path, weights_file):
    """Every output option is checked against the command's inputs, by path and through links, before any work:
    `jcd noise clean.png -o clean.png` replaced the clean picture by its noisy copy, `jcd compare ref.png x.png
    --visual ref.png` the reference by the figure, `jcd bench x.png --json x.png` the picture by figures."""
    import os

    data = tmp_path / "data"
    data.mkdir()
    img, ref = data / "img.png", data / "ref.png"
    for i, p in enumerate((img, ref)):
        Image.fromarray((textured(24, 32, seed=i) * 255).astype(np.uint8)).save(p)
    os.link(ref, tmp_path / "hard.png")
    (tmp_path / "run.ckpt").write_bytes(b"a training run's state")
    w = ("--weights", str(weights_file))
    cases = [
        (("noise", str(img), "--level", "2", "-o", str(img)), str(img), "-o"),
        (("noise", str(ref), "--level", "2", "-o", str(tmp_path / "hard.png")), str(tmp_path / "hard.png"), "-o"),
        (("compare", str(ref), str(img), "--visual", str(ref), *w), str(ref), "--visual"),
        (("compare", str(ref), str(img), "--visual", str(img), *w), str(img), "--visual"),
        (("bench", str(img), "--json", str(img), "--repeats", "1", *w), str(img), "--json"),
        (("bench", str(data), "--json", str(ref), "--repeats", "1", *w), str(ref), "--json"),
        (("export", str(tmp_path / "run.ckpt"), "-o", str(tmp_path / "run.ckpt")), str(tmp_path / "run.ckpt"), "-o"),
        (("eval", str(data), "--qualities", "none", "--anchors", "none", "-o", str(tmp_path / "res"),
          "--report", str(img)), str(img), "--report"),
    ]  # fmt: skip
    before = {p: p.read_bytes() for p in (img, ref, tmp_path / "run.ckpt")}
    for args, named, option in cases:
        one_line_error(run_jcd(*args), f"{named}: is the input itself; choose another {option}")
    assert {p: p.read_bytes() for p in before} == before
    # --visual is a PNG whatever its name said (a figure.txt held PNG bytes): the name must say so.
    one_line_error(run_jcd("compare", str(ref), str(img), "--visual", str(tmp_path / "v.txt"), *w), "give it a .png")
    assert not (tmp_path / "v.txt").exists()


def test_format_names_the_files_jcd_names(tmp_path, stream, weights_file):
    """--format chose only what went to stdout: `jcd decode coded/ -o clean/ --format jpg` wrote PNGs, and
    `-o a.png --format jpg` a PNG, without a word. Now it names the files jcd names; a file named with -o keeps
    the format of its extension, and one that says another is an error."""
    coded = tmp_path / "coded"
    coded.mkdir()
    for name in ("a.jcd", "b.jcd"):
        (coded / name).write_bytes(stream.read_bytes())
    w = ("--weights", str(weights_file))
    r = run_jcd("decode", str(coded), "-o", str(tmp_path / "clean"), "--format", "jpg", *w)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == ["a.jpg", "b.jpg"]
    assert all(Image.open(p).format == "JPEG" for p in (tmp_path / "clean").iterdir())
    r = run_jcd("decode", str(coded / "a.jcd"), "--format", "tiff", *w)  # no -o: beside it
    assert r.returncode == 0 and Image.open(coded / "a.tiff").format == "TIFF", r.stderr
    r = run_jcd("decode", str(coded / "a.jcd"), "-o", str(tmp_path / "x.png"), "--format", "jpg", *w)
    one_line_error(r, "names a PNG file and --format jpg a JPEG one: give one of them")
    assert not (tmp_path / "x.png").exists()
    r = run_jcd("decode", str(coded / "a.jcd"), "-o", str(tmp_path / "x.jpeg"), "--format", "jpg", *w)
    assert r.returncode == 0 and Image.open(tmp_path / "x.jpeg").format == "JPEG", r.stderr


def test_several_inputs_share_one_run_and_a_bad_one_does_not_stop_the_rest(tmp_path, weights_file):
    imgs = []
    for i in range(2):
        p = tmp_path / f"im{i}.png"
        Image.fromarray((textured(24, 32, seed=i) * 255).astype(np.uint8)).save(p)
        imgs.append(str(p))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    out.mkdir()
    r = run_jcd("encode", *imgs, str(bad), "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 1 and "bad.png" in r.stderr and "1 of 3 files failed" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["im0.jcd", "im1.jcd"]
    r = run_jcd("decode", *map(str, out.glob("*.jcd")), "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    assert (out / "im0.png").is_file() and (out / "im1.png").is_file()
    r = run_jcd("encode", *imgs, "-o", str(tmp_path / "x.jcd"), "--weights", str(weights_file))
    assert r.returncode == 1 and "need an output directory" in r.stderr and not (tmp_path / "x.jcd").exists()


def test_rate_targets(tmp_path, noisy_png, weights_file):
    out = tmp_path / "t.jcd"
    r = run_jcd("encode", str(noisy_png), "--bpp", "2", "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 0, r.stderr
    from PIL import Image

    w, h = Image.open(noisy_png).size
    assert out.stat().st_size * 8 / (w * h) <= 2
    r = run_jcd("encode", str(noisy_png), "--size", "1k", "-o", str(out), "--weights", str(weights_file))
    assert (r.returncode == 0 and out.stat().st_size <= 1024) or "even quality 1 needs" in r.stderr, r.stderr
    r = run_jcd("encode", str(noisy_png), "-q", "3", "--bpp", "1", "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 2 and "give one of them" in r.stderr
    # An empty -o (a shell variable that was not set) is not the current directory.
    r = run_jcd("encode", str(noisy_png), "-o", "", "--weights", str(weights_file), cwd=tmp_path)
    one_line_error(r, "-o names nothing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jcd"]
    # A rate no quality reaches is said in the units it was asked in (it said "needs 755 bytes, more than 0").
    r = run_jcd("encode", str(noisy_png), "--bpp", "0.001", "-o", str(out), "--weights", str(weights_file))
    one_line_error(r, "even quality 1 needs ")
    needed = float(r.stderr.split(" needs ")[1].split(" bpp")[0])
    assert needed > 0.001 and r.stderr.strip().endswith("bpp, more than 0.001"), r.stderr
    r = run_jcd("encode", str(noisy_png), "--size", "lots", "-o", str(out), "--weights", str(weights_file))
    assert r.returncode == 2 and "not a file size" in r.stderr


def test_bench_fits_an_80_column_terminal(noisy_png, weights_file):
    long = noisy_png.parent / ("a-photo-with-a-rather-long-file-name-" + "x" * 20 + ".png")
    long.write_bytes(noisy_png.read_bytes())
    r = run_jcd("bench", str(long), "-q", "1,6", "--repeats", "1", "--weights", str(weights_file),
                env={"COLUMNS": "80"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(v) for v in lines) <= 80, r.stdout
    assert any(long.name in v for v in lines), "the file name is shown whole"
    assert sum(v.strip().startswith(("│ 1 ", "│1 ", "│ 6 ", "│6 ")) for v in lines) == 2


def test_help_and_info_start_without_torch_or_numpy(stream):
    """`jcd --help` and `jcd info` are start-up only: they must not pay for the heavy libraries."""
    import subprocess
    import sys

    code = ("import sys; from jcdcodec.cli import main; sys.argv = ['jcd', 'info', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code, str(stream)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout


def test_the_workbench_commands_load_when_named_and_are_all_listed():
    code = (
        "import sys; from jcdcodec.cli.app import cli, WORKBENCH; import jcdcodec.cli\n"
        "before = set(cli.commands); assert 'jcdcodec.cli.workbench' not in sys.modules\n"
        "import jcdcodec.cli.workbench\n"
        "print(sorted(set(cli.commands) - before) == sorted(WORKBENCH))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-1000:]
    r = run_jcd("--help")
    assert r.returncode == 0 and all(name in r.stdout for name in WORKBENCH)
    assert run_jcd("eval", "--help").returncode == 0


def test_jcd_alone_prints_its_help_not_an_error():
    """`jcd` with nothing after it gave its help prefixed `jcd: error:`, on stderr, exit 2 (click 8.2 made a
    command group's bare call an error); it is the help, as `jcd --help` gives it."""
    bare, asked = run_jcd(), run_jcd("--help")
    assert bare.returncode == 0 and bare.stderr == "" and bare.stdout == asked.stdout
    assert "Commands:" in bare.stdout and "encode" in bare.stdout
