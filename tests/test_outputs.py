"""Nothing a user owns is lost: derived names never clobber, the input is never the output, stdout is checked,
temporaries do not pile up (issue 17 items 0, 3, 4, 5; issue 18 items 1, 2, 4, 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_jcd, textured
from PIL import Image

from jcdcodec.errors import JcdError
from jcdcodec.outputs import TMP_TAG, atomic_write_bytes, remove_stale_temporaries, temporary_name, write_stdout


@pytest.fixture()
def photo(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray((textured(40, 56, seed=3) * 255).astype(np.uint8)).save(p)
    return p


def jcd(*args, weights):
    return run_jcd(*args, "--weights", str(weights))


def test_decoding_next_to_the_original_never_replaces_it(photo, weights_file):
    original = photo.read_bytes()
    assert jcd("encode", str(photo), "-q", "2", weights=weights_file).returncode == 0
    r = jcd("decode", str(photo.with_suffix(".jcd")), weights=weights_file)
    assert r.returncode == 0, r.stderr
    assert photo.read_bytes() == original
    decoded = photo.with_name("photo-1.png")
    assert decoded.is_file() and "was kept" in r.stderr and str(decoded) in r.stderr
    # Encoding again keeps the first stream too.
    first = photo.with_suffix(".jcd").read_bytes()
    assert jcd("encode", str(photo), "-q", "5", weights=weights_file).returncode == 0
    assert photo.with_suffix(".jcd").read_bytes() == first and photo.with_name("photo-1.jcd").is_file()


def test_a_directory_round_trip_keeps_every_original(tmp_path, weights_file):
    d = tmp_path / "d"
    d.mkdir()
    originals = {}
    for i in range(2):
        p = d / f"p{i}.png"
        Image.fromarray((textured(32, 40, seed=i) * 255).astype(np.uint8)).save(p)
        originals[p] = p.read_bytes()
    assert jcd("encode", str(d), weights=weights_file).returncode == 0
    r = jcd("decode", str(d), weights=weights_file)
    assert r.returncode == 0, r.stderr
    assert all(p.read_bytes() == b for p, b in originals.items())
    assert sorted(p.name for p in d.iterdir()) == ["p0-1.png", "p0.jcd", "p0.png", "p1-1.png", "p1.jcd", "p1.png"]


def test_names_that_differ_only_in_case_get_outputs_that_do_not(tmp_path, weights_file):
    """IMG.png and img.PNG: on a case-insensitive disk (macOS, Windows, a card the folder is copied to) IMG.jcd
    and img.jcd are one file, so the second would replace the first or fail."""
    d = tmp_path / "d"
    d.mkdir()
    for i, name in enumerate(("IMG.png", "img.PNG")):
        Image.fromarray((textured(32, 40, seed=i) * 255).astype(np.uint8)).save(d / name, format="PNG")
    r = jcd("encode", str(d), "-q", "1", "-o", str(tmp_path / "out"), weights=weights_file)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["IMG.jcd", "img-1.jcd"]
    assert f"{tmp_path / 'out' / 'img.jcd'} differs from another output's name only in case" in r.stderr, r.stderr


def test_a_named_output_is_replaced_unless_no_clobber(photo, tmp_path, weights_file):
    dst = tmp_path / "named.jcd"
    dst.write_bytes(b"old")
    assert jcd("encode", str(photo), "-o", str(dst), weights=weights_file).returncode == 0
    assert dst.read_bytes()[:4] != b"old"
    dst.write_bytes(b"old")
    r = jcd("encode", str(photo), "-o", str(dst), "-n", weights=weights_file)
    assert r.returncode == 1 and "exists" in r.stderr and dst.read_bytes() == b"old"


def test_a_stopped_batch_goes_on_where_it_stopped_with_skip_existing(tmp_path, weights_file):
    """Re-running a stopped batch coded everything again, under NAME-1 names beside the finished outputs. With
    --skip-existing only the inputs without an output are coded, under the names a first run gives (p.png and
    p.jpg: p.jcd and p-1.jcd), the finished files untouched and named in one note; a run with nothing left to do
    succeeds."""
    src, out = tmp_path / "in", tmp_path / "out"
    _tree(src, ["a.png", "b.png", "c.png", "p.jpg", "p.png", "sub/d.png"])
    assert jcd("encode", str(src), "-r", "-q", "1", "-o", str(out), weights=weights_file).returncode == 0
    assert _files(out) == ["a.jcd", "b.jcd", "c.jcd", "p-1.jcd", "p.jcd", "sub/d.jcd"]
    before = {name: (out / name).stat().st_mtime_ns for name in _files(out)}
    for name in ("b.jcd", "p-1.jcd", "sub/d.jcd"):  # as if stopped before these
        (out / name).unlink()
    (out / "sub").rmdir()
    r = jcd("encode", str(src), "-r", "-q", "1", "-o", str(out), "--skip-existing", weights=weights_file)
    assert r.returncode == 0, r.stderr
    assert _files(out) == ["a.jcd", "b.jcd", "c.jcd", "p-1.jcd", "p.jcd", "sub/d.jcd"]  # no a-1.jcd, no p-2.jcd
    assert all((out / n).stat().st_mtime_ns == before[n] for n in ("a.jcd", "c.jcd", "p.jcd"))
    assert f"3 of 6 left out, their outputs exist (--skip-existing): {out / 'a.jcd'}, {out / 'c.jcd'}, " \
           f"{out / 'p.jcd'}" in r.stderr, r.stderr  # fmt: skip
    assert [line.split(" (")[0] for line in r.stdout.splitlines()] == [str(src / "b.png"), str(src / "p.png"),
                                                                        str(src / "sub" / "d.png")]  # fmt: skip
    r = jcd("encode", str(src), "-r", "-q", "1", "-o", str(out), "--skip-existing", weights=weights_file)
    assert r.returncode == 0 and r.stdout == "" and "6 of 6 left out" in r.stderr, r.stderr
    # Decoding: an output that exists is left out whoever made it, and said so (here the original photo).
    stream = tmp_path / "a.jcd"
    (out / "a.jcd").rename(stream)
    (tmp_path / "a.png").write_bytes(b"the original")
    r = jcd("decode", str(stream), "--skip-existing", weights=weights_file)
    assert r.returncode == 0 and (tmp_path / "a.png").read_bytes() == b"the original", r.stderr
    assert f"1 of 1 left out, their outputs exist (--skip-existing): {tmp_path / 'a.png'}" in r.stderr
    assert not (tmp_path / "a-1.png").exists()
    assert jcd("decode", str(stream), weights=weights_file).returncode == 0 and (tmp_path / "a-1.png").is_file()


@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_a_device_that_is_not_there_fails_once_not_at_every_file(tmp_path, device):
    """Without --weights each image's model loads when first chosen, and a bad --device failed there: once per
    file, 'N of N files failed' after N copies of the same line. It is one error now, before any file."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is here")
    _tree(tmp_path / "in", ["a.png", "b.png", "c.png"])
    r = run_jcd("encode", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--device", device)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert ("unknown device 'tpu'" if device == "tpu" else "CUDA is not available") in r.stderr


def test_an_output_directory_a_failed_run_made_is_not_left_behind(tmp_path, weights_file):
    """-o coded/new/ is made for the run; a run that writes nothing into it (every file failed, a bad --device)
    left it, and the folders above it, empty."""
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "kept").mkdir()
    for out, extra in ((tmp_path / "kept" / "a" / "b", ()), (tmp_path / "kept" / "c", ("--device", "tpu"))):
        r = jcd("encode", str(tmp_path / "notes.png"), str(tmp_path / "notes.png"), "-o", f"{out}/", *extra,
                weights=weights_file)  # fmt: skip
        assert r.returncode == 1, r.stderr
        assert list((tmp_path / "kept").iterdir()) == []  # the folder that was there stays
    _tree(tmp_path / "in", ["p.png"])
    r = jcd("encode", str(tmp_path / "in" / "p.png"), str(tmp_path / "notes.png"), "-o",
            str(tmp_path / "kept" / "a" / "b") + "/", "-q", "1", weights=weights_file)  # fmt: skip
    assert r.returncode == 1 and _files(tmp_path / "kept") == ["a/b/p.jcd"]  # one written: the folders stay


def test_a_file_given_twice_is_coded_once(tmp_path, weights_file):
    """`jcd encode photos/ photos/a.png` or a file named twice coded it twice, the second stream under a NAME-1
    name (and `jcd decode x.jcd x.jcd` wrote x.png and x-1.png): each file is taken once now, the repeats named."""
    _tree(tmp_path / "in", ["a.png", "b.png"])
    a = tmp_path / "in" / "a.png"
    r = jcd("encode", str(tmp_path / "in"), str(a), str(tmp_path / "in" / "." / "a.png"), "-q", "1", "-o",
            str(tmp_path / "out"), weights=weights_file)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "out") == ["a.jcd", "b.jcd"]
    assert f"jcd: warning: given more than once, taken once: {a} (3 times)" in r.stderr, r.stderr
    (tmp_path / "link.jcd").symlink_to(tmp_path / "out" / "b.jcd")
    r = jcd("decode", str(tmp_path / "out" / "b.jcd"), str(tmp_path / "link.jcd"), "-o", str(tmp_path / "back"),
            weights=weights_file)  # fmt: skip
    assert r.returncode == 0 and _files(tmp_path / "back") == ["b.png"], r.stderr
    assert "given more than once, taken once" in r.stderr


def test_preserve_gives_outputs_their_inputs_date_and_permissions(tmp_path, weights_file):
    """A photo without a date of its own is sorted by its file's date, and a private one is readable by its owner
    only: with -p the .jcd and the decoded picture keep both, as oxipng's and jpegoptim's -p do. Without it an
    output is new (as cwebp's)."""
    _tree(tmp_path / "in", ["a.png", "b.png"])
    when = 1_557_000_000_123_456_789  # 2019-05-04, in nanoseconds
    for i, name in enumerate(("a.png", "b.png")):
        f = tmp_path / "in" / name
        os.utime(f, ns=(when, when + i))
        f.chmod(0o600)
    r = jcd("encode", str(tmp_path / "in"), "-p", "-q", "1", "-o", str(tmp_path / "out"), weights=weights_file)
    assert r.returncode == 0, r.stderr
    r = jcd("decode", str(tmp_path / "out"), "--preserve", "-o", str(tmp_path / "back"), weights=weights_file)
    assert r.returncode == 0, r.stderr
    for i, name in enumerate(("a", "b")):
        for f in (tmp_path / "out" / f"{name}.jcd", tmp_path / "back" / f"{name}.png"):
            assert f.stat().st_mtime_ns == when + i and (f.stat().st_mode & 0o777) == 0o600, f
    r = jcd("encode", str(tmp_path / "in" / "a.png"), "-q", "1", "-o", str(tmp_path / "new.jcd"), weights=weights_file)
    assert r.returncode == 0 and (tmp_path / "new.jcd").stat().st_mtime_ns > when


def _tree(root, names):
    """Pictures at ``names`` below ``root`` (folders made as needed), each its own."""
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((textured(24, 32, seed=i) * 255).astype(np.uint8)).save(root / name)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_tree_of_photos_is_coded_with_r_into_the_same_folders(tmp_path, weights_file):
    """A phone's DCIM holds its photos in folders: without -r only the top folder was coded, without a word.
    Now the folders left out are named, and -r codes them into the same places below -o, and back; hidden
    folders and folders reached through symbolic links (which may loop) are not entered."""
    photos = tmp_path / "DCIM"
    _tree(photos, ["a.png", "100APPLE/b.png", "100APPLE/deeper/c.png", ".thumbnails/t.png"])
    (photos / "notes").mkdir()
    (photos / "notes" / "readme.txt").write_text("not a picture")
    (photos / "loop").symlink_to(photos)
    r = jcd("encode", str(photos), "-q", "1", "-o", str(tmp_path / "top"), weights=weights_file)
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "top") == ["a.jcd"]
    assert f"jcd: warning: {photos}: skipped 3 folders inside it (100APPLE, loop, notes): -r/--recursive codes " \
           "them too" in r.stderr  # fmt: skip
    r = jcd("encode", str(photos), "-r", "-q", "1", "-o", str(tmp_path / "coded"), weights=weights_file)
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "coded") == ["100APPLE/b.jcd", "100APPLE/deeper/c.jcd", "a.jcd"]
    assert f"{photos}: skipped 1 file that is not an image: notes/readme.txt" in r.stderr
    assert f"{photos}: skipped 1 folder reached through a symbolic link (loop): name them to code them" in r.stderr
    r = jcd("decode", str(tmp_path / "coded"), "-r", "-o", str(tmp_path / "clean"), weights=weights_file)
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "clean") == ["100APPLE/b.png", "100APPLE/deeper/c.png", "a.png"]
    with Image.open(tmp_path / "clean" / "100APPLE" / "deeper" / "c.png") as im:
        assert im.size == (32, 24)
    r = run_jcd("info", str(tmp_path / "coded"), "-r", "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(i["file"] for i in json.loads(r.stdout)) == [
        str(tmp_path / "coded" / n) for n in ("100APPLE/b.jcd", "100APPLE/deeper/c.jcd", "a.jcd")]
    # Without -o, beside each input, in its own folder.
    r = jcd("encode", str(photos / "100APPLE"), "-r", "-q", "1", weights=weights_file)
    assert r.returncode == 0 and (photos / "100APPLE" / "deeper" / "c.jcd").is_file(), r.stderr


def test_an_output_directory_inside_the_tree_is_not_read_back(tmp_path, weights_file):
    """-o inside the input tree: its streams (from this run's files or the last one's) are not inputs, and it is
    not named as a folder left out."""
    photos = tmp_path / "photos"
    _tree(photos, ["a.png", "sub/b.png"])
    for _ in range(2):
        r = jcd("encode", str(photos), "-r", "-q", "1", "-o", str(photos / "coded"), weights=weights_file)
        assert r.returncode == 0 and "coded" not in r.stderr.replace(str(photos / "coded"), ""), r.stderr
    assert _files(photos / "coded") == ["a-1.jcd", "a.jcd", "sub/b-1.jcd", "sub/b.jcd"]
    r = jcd("encode", str(photos), "-q", "1", "-o", str(photos / "coded"), weights=weights_file)
    assert "folders inside it" not in r.stderr and "(sub)" in r.stderr, r.stderr


def test_a_folder_inside_that_cannot_be_read_is_named_and_the_rest_coded(tmp_path, monkeypatch):
    """One unreadable folder (another user's, a phone's locked one) does not stop a tree: it is named with the
    reason and the rest is coded. A directory named on the command line that cannot be read is an error. (The
    tests run as root here, where permissions do not refuse: listing is refused by a patch instead.)"""
    from pathlib import Path

    from jcdcodec.cli.batch import _expand
    from jcdcodec.errors import JcdWarning

    photos = tmp_path / "photos"
    _tree(photos, ["a.png", "locked/b.png", "open/c.png"])
    listing = Path.iterdir

    def refusing(self):
        if self.name == "locked":
            raise PermissionError(13, "Permission denied")
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", refusing)
    with pytest.warns(JcdWarning) as said:
        files = _expand((photos,), False, recursive=True)
    assert [str(below) for _, below in files] == ["a.png", "open/c.png"]
    assert [str(w.message) for w in said] == [f"{photos}: skipped 1 folder that cannot be read (locked: Permission "
                                              "denied)"]  # fmt: skip
    with pytest.raises(JcdError, match=r"locked: cannot list \(Permission denied\)$"):
        _expand((photos / "locked",), False, recursive=True)


def test_a_folder_that_cannot_be_made_or_is_not_needed_is_not_left(tmp_path, weights_file):
    """A folder of the output tree is made when its first file is written: where a file has its name, that
    file's input fails (named, the rest coded); where every input of it fails, it is not left behind empty."""
    photos = tmp_path / "photos"
    _tree(photos, ["a.png", "blocked/b.png", "broken/deeper/c.png"])
    (photos / "broken" / "deeper" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")
    (tmp_path / "coded").mkdir()
    (tmp_path / "coded" / "blocked").write_text("a file, not a folder")
    r = jcd("encode", str(photos), "-r", "-q", "1", "-o", str(tmp_path / "coded"), weights=weights_file)
    assert r.returncode == 1
    assert f"jcd: error: {tmp_path / 'coded' / 'blocked' / 'b.jcd'}: cannot create its folder " \
           f"({tmp_path / 'coded' / 'blocked'} is a file)" in r.stderr, r.stderr  # fmt: skip
    assert f"jcd: error: {photos / 'broken' / 'deeper' / 'c.png'}: " in r.stderr and "2 of 3 files failed" in r.stderr
    assert _files(tmp_path / "coded") == ["a.jcd", "blocked"]
    assert not (tmp_path / "coded" / "broken").exists()


@pytest.mark.parametrize("cmd", ["encode", "decode"])
def test_the_input_is_never_its_own_output(photo, tmp_path, weights_file, cmd):
    src = photo
    if cmd == "decode":
        src = tmp_path / "stream.png"  # a stream under a .png name, as in the issue
        assert jcd("encode", str(photo), "-o", str(tmp_path / "s.jcd"), weights=weights_file).returncode == 0
        (tmp_path / "s.jcd").rename(src)
    before = src.read_bytes()
    link = tmp_path / "link"
    link.symlink_to(src.name)
    for target in (src, link):
        args = (cmd, str(src), "-o", str(target)) + (("--any-name",) if cmd == "encode" else ())
        r = jcd(*args, weights=weights_file)
        assert r.returncode == 1 and "is the input itself" in r.stderr, r.stderr
        assert src.read_bytes() == before


def test_streams_and_images_keep_their_extensions(photo, tmp_path, weights_file):
    r = jcd("encode", str(photo), "-o", str(tmp_path / "out.png"), weights=weights_file)
    assert r.returncode == 1 and "image extension" in r.stderr and not (tmp_path / "out.png").exists()
    r = jcd("encode", str(photo), "-o", str(tmp_path / "out.png"), "--any-name", weights=weights_file)
    assert r.returncode == 0 and (tmp_path / "out.png").read_bytes()[:3] == b"JCD"
    r = jcd("decode", str(tmp_path / "out.png"), "-o", str(tmp_path / "img.jcd"), weights=weights_file)
    assert r.returncode == 1 and ".jcd name" in r.stderr and not (tmp_path / "img.jcd").exists()


def test_output_directories_are_created_and_batch_errors_name_their_file(tmp_path, weights_file):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(2):
        Image.fromarray((textured(32, 32, seed=i) * 255).astype(np.uint8)).save(src / f"p{i}.png")
    r = jcd("encode", str(src), "-q", "3", "-o", str(tmp_path / "coded") + "/", weights=weights_file)
    assert r.returncode == 0, r.stderr
    (tmp_path / "coded" / "bad.jcd").write_bytes(b"not a stream at all")
    r = jcd("decode", str(tmp_path / "coded"), "-o", str(tmp_path / "clean" / "deep"), weights=weights_file)
    assert r.returncode == 1
    assert sorted(p.name for p in (tmp_path / "clean" / "deep").iterdir()) == ["p0.png", "p1.png"]
    lines = [v for v in r.stderr.splitlines() if "error" in v]
    assert lines[0].startswith(f"jcd: error: {tmp_path / 'coded' / 'bad.jcd'}: ") and "1 of 3" in lines[1]
    # One input and a name ending in '/' is a directory too.
    r = jcd("encode", str(src / "p0.png"), "-o", str(tmp_path / "single") + "/", weights=weights_file)
    assert r.returncode == 0 and (tmp_path / "single" / "p0.jcd").is_file()


@pytest.mark.parametrize("cmd", ["encode", "decode"])
def test_a_full_disk_behind_stdout_is_an_error(photo, tmp_path, weights_file, cmd):
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is not available on this system")
    src = photo
    if cmd == "decode":
        src = tmp_path / "s.jcd"
        assert jcd("encode", str(photo), "-o", str(src), weights=weights_file).returncode == 0
    with open("/dev/full", "wb") as full:
        r = subprocess.run([sys.executable, "-m", "jcdcodec", cmd, str(src), "-o", "-", "--weights",
                            str(weights_file)], stdout=full, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"))  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("bytes") and "No space left" in r.stderr


@pytest.mark.parametrize("cmd", ["encode", "decode"])
def test_a_terminal_is_neither_written_nor_read_as_data(photo, tmp_path, cmd):
    """A stream or an image is never spilled onto a terminal, and a terminal is never waited on as stdin. The
    stdout refusal comes before anything is loaded: the weights named here do not exist, and their error would
    come first otherwise (it came after the whole coding until 2026-12-08)."""
    pty = pytest.importorskip("pty")
    src = photo if cmd == "encode" else tmp_path / "s.jcd"
    if cmd == "decode":
        src.write_bytes(b"JCD")
    leader, follower = pty.openpty()
    try:
        def run(*args: str) -> subprocess.CompletedProcess:
            io = {"stdout": follower} if "-o" in args and args[-1] == "-" else {"stdin": follower}
            return subprocess.run([sys.executable, "-m", "jcdcodec", cmd, *args], **io, stderr=subprocess.PIPE,
                                  text=True, env=dict(os.environ, PYTHONWARNINGS="ignore", TERM="dumb"),
                                  timeout=120)  # fmt: skip
        missing = str(tmp_path / "no-such-weights.safetensors")
        r = run(str(src), "--weights", missing, "-o", "-")
        assert r.returncode == 1 and "refusing to write binary data to a terminal" in r.stderr, r.stderr
        r = run("-", "--weights", missing, "-o", str(tmp_path / "out.x"))
        assert r.returncode == 1 and "stdin is a terminal" in r.stderr, r.stderr
    finally:
        os.close(leader)
        os.close(follower)
    assert not (tmp_path / "out.x").exists()


def test_short_writes_to_stdout_are_finished_or_reported(monkeypatch, capfd):
    chunks = []

    def short(fd, data):  # a pipe or file that takes at most 3 bytes per call
        chunks.append(bytes(data[:3]))
        return len(chunks[-1])

    monkeypatch.setattr(os, "write", short)
    write_stdout(b"0123456789")
    assert b"".join(chunks) == b"0123456789" and len(chunks) == 4
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    with pytest.raises(JcdError, match="stopped after 0 of 4 bytes"):
        write_stdout(b"abcd")


def test_stale_temporaries_are_recognisable_and_cleaned_by_the_next_write(tmp_path):
    dst = tmp_path / "out.jcd"
    tmp = temporary_name(dst)
    assert tmp.name.startswith(".out.jcd" + TMP_TAG) and tmp.suffix == ".jcd"
    # A writer killed with -9 leaves its temporary behind: simulate one whose process is gone.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".out.jcd{TMP_TAG}{dead.pid}-deadbeef.jcd"
    orphan.write_bytes(b"half")
    live = tmp_path / f".out.jcd{TMP_TAG}{os.getpid()}-cafecafe.jcd"  # a concurrent writer: left alone
    live.write_bytes(b"in progress")
    other = tmp_path / f".other.jcd{TMP_TAG}{dead.pid}-deadbeef.jcd"  # another target's: left alone
    other.write_bytes(b"x")
    atomic_write_bytes(dst, b"complete")
    assert dst.read_bytes() == b"complete" and not orphan.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path / "other.jcd") == [other]


@pytest.mark.parametrize("q", ["nan", "6.0001", "7", "abc", "0.99", "inf"])
def test_every_bad_quality_is_one_usage_line_with_exit_2(photo, tmp_path, weights_file, q):
    r = jcd("encode", str(photo), "-q", q, "-o", str(tmp_path / "x.jcd"), weights=weights_file)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("jcd: error: ") and "1 to 6" in r.stderr
    assert not (tmp_path / "x.jcd").exists()


def test_codec_quality_check_refuses_what_rounding_would_hide(codec):
    with pytest.raises(JcdError, match="out of range"):
        codec.check_quality(6.0001)
    with pytest.raises(JcdError, match="number"):
        codec.check_quality(float("nan"))
    assert codec.check_quality(6.0) == 6.0


def test_usage_errors_share_the_one_line_style(photo, tmp_path, weights_file):
    for args in (("--size", "abc"), ("--size", "20k", "--bpp", "0.1"), ("--bogus",)):
        r = jcd("encode", str(photo), "-o", str(tmp_path / "x.jcd"), *args, weights=weights_file)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith("jcd: error: ")
    r = jcd("encode", str(photo), "--size", "abc", "-o", str(tmp_path / "x.jcd"), weights=weights_file)
    assert "file size" in r.stderr and "20k" in r.stderr


def test_decoding_alpha_to_jpeg_warns_that_it_is_dropped(tmp_path, weights_file):
    rgba = np.dstack([(textured(32, 32) * 255).astype(np.uint8), np.full((32, 32), 128, np.uint8)])
    src = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(src)
    assert jcd("encode", str(src), "-o", str(tmp_path / "a.jcd"), weights=weights_file).returncode == 0
    r = jcd("decode", str(tmp_path / "a.jcd"), "-o", str(tmp_path / "x.jpg"), weights=weights_file)
    assert r.returncode == 0 and "jcd: warning:" in r.stderr and "alpha" in r.stderr
    r = jcd("decode", str(tmp_path / "a.jcd"), "-o", str(tmp_path / "x.png"), weights=weights_file)
    assert r.returncode == 0 and "warning" not in r.stderr and Image.open(tmp_path / "x.png").mode == "RGBA"


def test_a_directory_is_listed_once_for_many_writes(tmp_path, monkeypatch):
    """Writing N files into one directory lists it once, not N times (stale temporaries are still removed)."""
    from pathlib import Path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".f7.png{TMP_TAG}{dead.pid}-deadbeef.png"
    orphan.write_bytes(b"half")
    listed = []
    real = Path.iterdir

    def counting(self):
        listed.append(self)
        return real(self)

    monkeypatch.setattr(Path, "iterdir", counting)
    for k in range(20):
        atomic_write_bytes(tmp_path / f"f{k}.png", b"x")
    assert listed == [tmp_path] and not orphan.exists()


def test_an_input_larger_than_any_allowed_image_is_refused_by_its_size_unread(tmp_path):
    """A 20 GiB file given by mistake (sparse here: no disk used) was read whole until memory ran out; its size
    now refuses it before a byte is read, for jcd encode, jcd decode and the API."""
    import jcdcodec

    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:
        f.truncate(20 << 30)
    message = (f"{huge}: 20.0 GiB, larger than any image of at most 64000000 pixels (1.0 GiB at most): not an "
               "image, or raise --max-pixels")  # fmt: skip
    r = run_jcd("encode", str(huge), "-o", str(tmp_path / "h.jcd"))
    assert r.returncode == 1 and r.stderr.strip() == f"jcd: error: {message}", r.stderr
    r = run_jcd("decode", str(huge), "-o", str(tmp_path / "h.png"))
    assert r.returncode == 1 and r.stderr.strip() == f"jcd: error: {message}", r.stderr
    with pytest.raises(JcdError, match="20.0 GiB, larger than any image"):
        jcdcodec.load_image(huge)
    with pytest.raises(JcdError, match="20.0 GiB, larger than any image"):
        jcdcodec.info(huge)


def test_a_pipe_or_device_is_read_only_up_to_the_bound(tmp_path):
    """A device (/dev/zero) or a pipe has no size to check: it is read up to the bound (64 MiB + 16 bytes a
    pixel) and refused past it, where it was read until memory ran out."""
    r = run_jcd("encode", "/dev/zero", "-o", str(tmp_path / "z.jcd"), "--max-pixels", "4")
    assert r.returncode == 1 and r.stderr.strip() == ("jcd: error: /dev/zero: over 64.0 MiB, larger than any image "
                                                      "of at most 4 pixels (64.0 MiB at most): not an image, or "
                                                      "raise --max-pixels"), r.stderr  # fmt: skip
    assert not (tmp_path / "z.jcd").exists()
    e = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "jcdcodec", "encode", "-", "-o", str(tmp_path / "s.jcd"),
                        "--max-pixels", "4"], input=bytes((64 << 20) + 65), capture_output=True, env=e)  # fmt: skip
    assert r.returncode == 1 and b"jcd: error: -: over 64.0 MiB" in r.stderr, r.stderr


@pytest.mark.parametrize("size", [999, 1000, 1001])
def test_the_bound_holds_to_the_byte_for_files_and_streams(tmp_path, monkeypatch, size):
    import io

    from jcdcodec import inputs

    monkeypatch.setattr(inputs, "SLACK", 1000 - 16 * 2)  # two pixels and this: 1,000 bytes at most
    data = bytes(range(256)) * 4
    (tmp_path / "f").write_bytes(data[:size])
    for read in (lambda: inputs.read_file(tmp_path / "f", 2), lambda: inputs.read_stream(io.BytesIO(data[:size]),
                                                                                          "s", 2)):  # fmt: skip
        if size <= 1000:
            assert read() == data[:size]
        else:
            with pytest.raises(JcdError, match="larger than any image of at most 2 pixels"):
                read()
    assert inputs.read_stream(io.BytesIO(data[:size]), "s", None) == data[:size]  # max_pixels=None (the API): no bound
