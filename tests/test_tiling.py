"""Tiled transforms: the plan, exactness of tiled synthesis, seams of tiled analysis, --max-memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO, run_jcd, textured
from PIL import Image

from jcdcodec import tiling
from jcdcodec.tiling import HALO, boundary_mask, parse_bytes, plan, tile_side


@pytest.mark.parametrize("h,w,side", [(5, 7, 16), (40, 17, 16), (64, 64, 16), (33, 100, 20), (1, 300, 16)])
def test_plan_covers_every_latent_position_once_with_a_clipped_halo(h, w, side):
    seen = np.zeros((h, w), dtype=int)
    for t in plan(h, w, side):
        i0, i1, j0, j1 = t.core
        a0, a1, b0, b1 = t.outer
        seen[i0:i1, j0:j1] += 1
        assert i1 - i0 <= side and j1 - j0 <= side
        assert (a0, b0) == (max(i0 - HALO, 0), max(j0 - HALO, 0)) and (a1, b1) == (min(i1 + HALO, h), min(j1 + HALO, w))
    assert (seen == 1).all()


def test_tile_side_grows_with_the_budget_and_has_a_floor():
    assert tile_side(1, 64) == tiling.MIN_TILE
    sides = [tile_side(b << 20, 64) for b in (256, 1024, 4096)]
    assert sides == sorted(sides) and sides[0] < sides[-1]


def test_tiled_transforms_report_each_tile_within_reporting_and_not_outside():
    x = np.zeros((1, 3, 16 * 40, 16 * 40), np.float32)
    y = np.zeros((1, 4, 40, 40), np.float32)
    tiles = plan(40, 40, 16)
    told = []
    with tiling.reporting(lambda done, total: told.append((done, total))):
        tiling.analysis(lambda a: np.zeros((1, 4, a.shape[2] // 16, a.shape[3] // 16), np.float32), x, tiles, 4)
        tiling.synthesis(lambda b: np.zeros((1, 3, b.shape[2] * 16, b.shape[3] * 16), np.float32), y, tiles)
    n = len(tiles)
    assert n > 1 and told == [(k, n) for k in range(1, n + 1)] * 2
    tiling.synthesis(lambda b: np.zeros((1, 3, b.shape[2] * 16, b.shape[3] * 16), np.float32), y, tiles)
    assert len(told) == 2 * n  # the callback is gone after the block


def test_parse_bytes():
    assert parse_bytes("1.5G") == 3 << 29 and parse_bytes("800M") == 800 << 20 and parse_bytes("4GiB") == 4 << 30
    assert parse_bytes("123") == 123
    for bad in ("", "lots", "-1G", "0"):
        with pytest.raises(ValueError):
            parse_bytes(bad)


def _tiled(weights_file, side):
    from jcdcodec import Codec

    c = Codec(str(weights_file), device="cpu")
    c.tile_side = side
    return c


def test_tiled_synthesis_equals_untiled(codec, weights_file):
    """g_s is local: with the halo, tiles reproduce the untiled image to float rounding."""
    from jcdcodec import Picture

    enc = codec.encode(Picture.from_array(textured(300, 520)), 4)
    whole = codec.decode(enc.data).picture.rgb
    tiles = _tiled(weights_file, 16).decode(enc.data)
    assert len(plan(*enc.y_hat.shape[-2:], 16)) > 1
    assert np.abs(tiles.picture.rgb - whole).max() < 1e-5
    assert np.array_equal(tiles.y_hat, enc.y_hat)


def test_tiled_encoding_decodes_with_any_tiling(codec, weights_file):
    """The stream does not depend on how the decoder tiles: the latent comes back exactly."""
    from jcdcodec import Picture

    tiled = _tiled(weights_file, 16)
    enc = tiled.encode(Picture.from_array(textured(300, 520, seed=3)), 3)
    assert np.array_equal(codec.decode(enc.data).y_hat, enc.y_hat)


def test_shipped_weights_leave_no_seams():
    """Tiled analysis (CBAM pools per tile) against untiled, with the trained weights on a noisy picture:
    near tile boundaries the tiled result is as close to the clean image as the untiled one."""
    from jcdcodec import Codec, Picture
    from jcdcodec.noise import add_level_noise

    clean = textured(512, 768, seed=5)
    clean = np.clip(clean * 0.5 + 0.5 * np.asarray(Image.open(REPO / "samples" / "kodim23-crop-noisy-l3.png")
                    .convert("RGB").resize((768, 512)), dtype=np.float32) / 255, 0, 1)  # fmt: skip
    noisy = add_level_noise(torch.from_numpy(clean).permute(2, 0, 1), 3, seed=0).permute(1, 2, 0).numpy()
    full = Codec(device="cpu", max_memory=1 << 40)
    tiled = Codec(device="cpu", max_memory=1 << 40)
    tiled.tile_side = 16
    pic = Picture.from_array(noisy)
    a = full.decode(full.encode(pic, 4).data).picture.rgb
    b = tiled.decode(tiled.encode(pic, 4).data).picture.rgb
    mask = boundary_mask(512, 768, 16)
    assert 0.05 < mask.mean() < 0.5

    def psnr(x, y):
        return 10 * np.log10(1 / np.mean((x - y) ** 2))

    seam_a, seam_b = psnr(a[mask], clean[mask]), psnr(b[mask], clean[mask])
    rest_a, rest_b = psnr(a[~mask], clean[~mask]), psnr(b[~mask], clean[~mask])
    assert seam_b > seam_a - 0.2, f"seam bands: tiled {seam_b:.2f} dB vs untiled {seam_a:.2f} dB"
    assert abs(rest_b - rest_a) < 0.2
    assert psnr(a, b) > 32  # tiles change the picture only slightly


def test_max_memory_option(tmp_path, weights_file):
    src = tmp_path / "in.png"
    Image.fromarray((textured(400, 600) * 255).astype(np.uint8)).save(src)
    small = tmp_path / "small.jcd"
    r = run_jcd("encode", str(src), "-o", str(small), "--weights", str(weights_file), "--max-memory", "1M")
    assert r.returncode == 0, r.stderr
    r = run_jcd("decode", str(small), "-o", str(tmp_path / "out.png"), "--weights", str(weights_file),
                "--max-memory", "1M")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_jcd("encode", str(src), "-o", str(tmp_path / "x.jcd"), "--weights", str(weights_file),
                "--max-memory", "lots")  # fmt: skip
    assert r.returncode == 2 and "is not a size" in r.stderr and "Traceback" not in r.stderr
