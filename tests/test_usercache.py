"""The per-user cache of compiled networks: only ever a speed-up, never a failure or a stale answer."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import textured

from jcdcodec import Picture, usercache
from jcdcodec import synthesis as synthesis_module
from jcdcodec.decoder import OnnxDecoder
from jcdcodec.synthesis import available_runtimes


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("JCD_CACHE_DIR", str(folder))
    return folder


def test_entries_round_trip_and_damaged_ones_are_dropped(cache):
    key = usercache.make_key("k")
    assert usercache.read(key) is None
    assert usercache.write(key, b"payload")
    assert usercache.read(key) == b"payload"
    entry = cache / (key + usercache.SUFFIX)
    data = bytearray(entry.read_bytes())
    data[-1] ^= 1
    entry.write_bytes(bytes(data))
    assert usercache.read(key) is None
    assert not entry.exists()


def test_keys_depend_on_every_part():
    a = usercache.make_key("x", file="1", config={"threads": 1})
    assert a == usercache.make_key("x", config={"threads": 1}, file="1")
    assert a != usercache.make_key("x", file="1", config={"threads": 2})
    assert a != usercache.make_key("y", file="1", config={"threads": 1})


def test_the_oldest_entries_are_pruned_and_nothing_else(cache):
    keys = [usercache.make_key("e", i=i) for i in range(usercache.MAX_ENTRIES + 2)]
    cache.mkdir()
    theirs = [cache / "notes.jcd-cache", cache / "old.cache", cache / "photo.png"]  # someone else's files
    for p in theirs:
        p.write_bytes(b"keep me")
        os.utime(p, (1, 1))
    for i, key in enumerate(keys[: usercache.MAX_ENTRIES]):
        assert usercache.write(key, b"x")
        os.utime(cache / f"{key}{usercache.SUFFIX}", (1000 + i, 1000 + i))
    assert usercache.read(keys[0]) == b"x"  # reading counts as a use: the first becomes the newest
    usercache.write(keys[-2], b"x")
    usercache.write(keys[-1], b"x")
    kept = {p.name.removesuffix(usercache.SUFFIX) for p in cache.iterdir() if p not in theirs}
    assert len(kept) == usercache.MAX_ENTRIES
    assert {keys[0], keys[-2], keys[-1]} <= kept and not {keys[1], keys[2]} & kept
    assert all(p.read_bytes() == b"keep me" for p in theirs)


def test_off_and_unwritable_caches_are_no_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("JCD_CACHE_DIR", "off")
    assert usercache.cache_dir() is None
    assert not usercache.write("k", b"x") and usercache.read("k") is None
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("JCD_CACHE_DIR", str(blocker / "cache"))
    assert not usercache.write("k", b"x") and usercache.read("k") is None


@pytest.mark.skipif("openvino" not in available_runtimes(), reason="OpenVINO not installed")
def test_openvino_imports_the_compiled_network_and_decodes_the_same(codec, weights_file, cache, monkeypatch):
    monkeypatch.setenv("JCD_ONNX_RUNTIME", "openvino")
    imported = []
    real = synthesis_module._import_compiled
    monkeypatch.setattr(synthesis_module, "_import_compiled", lambda *a: imported.append(real(*a)) or imported[-1])
    enc = codec.encode(Picture.from_array(textured(70, 90, seed=3)), 3)
    first = OnnxDecoder(weights_file, threads=1).decode(enc.data).picture.rgb
    assert imported == [None] and len(list(cache.iterdir())) == 1
    second = OnnxDecoder(weights_file, threads=1).decode(enc.data).picture.rgb
    assert imported[-1] is not None
    assert np.array_equal(first, second)
    other = OnnxDecoder(weights_file, threads=2)  # other settings: another entry, not the first one's network
    assert imported[-1] is None and len(list(cache.iterdir())) == 1  # stored after its first run, not before
    assert np.array_equal(other.decode(enc.data).picture.rgb, first)
    assert len(list(cache.iterdir())) == 2
    for entry in cache.iterdir():  # a damaged entry is dropped and the network compiled again
        entry.write_bytes(entry.read_bytes()[:-10])
    third = OnnxDecoder(weights_file, threads=1).decode(enc.data).picture.rgb
    assert imported[-1] is None and np.array_equal(first, third)
