"""jcd eval / bench: BD-rate on known values, anchors, a tiny end-to-end evaluation with caching."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import run_jcd, textured
from PIL import Image

from jcdcodec.eval import anchors
from jcdcodec.eval.bdrate import bd_rate, upper_envelope
from jcdcodec.eval.report import best_at


def test_bd_rate_of_a_uniformly_cheaper_curve_is_exact():
    r = [0.1, 0.2, 0.4, 0.8]
    q = [27.0, 29.5, 31.0, 33.5]
    assert bd_rate(r, q, [x * 0.9 for x in r], q) == pytest.approx(-10.0, abs=1e-6)
    assert bd_rate(r, q, [x * 1.25 for x in r], q) == pytest.approx(25.0, abs=1e-6)


def test_bd_rate_of_a_psnr_shift_on_a_log_linear_curve():
    # q = 10 * log10(r) + 40 is linear in log-rate: +1 dB at equal rate is a rate factor 10^(-1/10).
    r = [0.1, 0.2, 0.4, 0.8]
    q = [10 * math.log10(x) + 40 for x in r]
    expected = (10 ** (-0.1) - 1) * 100
    assert bd_rate(r, q, r, [v + 1 for v in q]) == pytest.approx(expected, abs=0.05)


def test_no_overlap_gives_nan():
    assert math.isnan(bd_rate([0.1, 0.2], [20, 21], [0.1, 0.2], [30, 31]))


def test_upper_envelope_drops_dominated_points():
    r, q = upper_envelope([0.1, 0.3, 0.2, 0.5, 0.4], [25, 24, 26, 27, 26.5])
    assert r == [0.1, 0.2, 0.4, 0.5] and q == [25, 26, 26.5, 27]
    assert math.isnan(best_at([0.1, 0.2, 0.4], [25, 26, 27], 0.05))
    assert best_at([0.1, 0.2, 0.4], [25, 26, 27], 1.0) == 27
    assert best_at([0.1, 0.4], [25, 27], 0.2) == pytest.approx(26.0)


def test_the_arithmetic_of_kept_and_new_rows_is_reported_per_method():
    from jcdcodec.eval.report import arithmetic_line
    from jcdcodec.eval.runner import summarize

    row = {"level": 1, "setting": 1, "bpp": 0.1, "psnr": 30.0, "msssim": 0.9}
    rows = [{**row, "method": "jcd:a", "arithmetic": "fp32"}, {**row, "method": "jcd:a", "arithmetic": "bf16"},
            {**row, "method": "jcd:b"}, {**row, "method": "jpeg"}]
    summary = summarize(rows)
    assert [s.get("arithmetic") for s in summary] == ["bf16 / fp32", "not recorded", None]
    line = arithmetic_line(summary + [{**summary[0], "setting": 2, "arithmetic": "fp32"}])
    assert line.endswith(": jcd:a bf16 / fp32; jcd:b not recorded.")
    assert arithmetic_line(summary[2:]) == ""


@pytest.mark.parametrize("codec", anchors.CODECS)
def test_anchor_codecs_decode_and_grow_with_quality(codec):
    img = (textured(64, 64) * 255).astype(np.uint8)
    small, out = anchors.code(img, codec, 10)
    large, _ = anchors.code(img, codec, 90)
    assert out.shape == img.shape and small < large


def test_bm3d_removes_noise():
    rng = np.random.default_rng(0)
    clean = (textured(64, 64, seed=1) * 0 + 0.5)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
    den = anchors.bm3d_denoise(np.round(noisy * 255).astype(np.uint8), 0.1)
    assert np.std(den / 255.0 - clean) < 0.3 * np.std(noisy - clean)


def test_tiny_end_to_end_eval_with_cache(tmp_path, weights_file, monkeypatch):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        Image.fromarray((textured(176, 180, seed=i) * 255).astype(np.uint8)).save(d / f"im{i}.png")
    out = tmp_path / "res"
    args = ["eval", str(d), "--levels", "1,4", "--qualities", "1,6", "--anchors", "jpeg,bm3d+jpeg", "--weights",
            str(weights_file), "-o", str(out), "--report", str(tmp_path / "doc" / "results.md")]
    r = run_jcd(*args)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())["summary"]
    methods = {s["method"] for s in summary}
    assert {"jcd:tiny-test", "jpeg", "bm3d+jpeg", "noisy input", "bm3d (uncompressed)"} <= methods
    jcd = [s for s in summary if s["method"] == "jcd:tiny-test"]
    assert len(jcd) == 4 and all(s["images"] == 2 and s["bpp"] > 0 for s in jcd)
    assert all(0 < s["msssim"] <= 1 for s in jcd)
    text = (tmp_path / "doc" / "results.md").read_text()
    assert "## Noise level 4" in text and "BD-rate" in text
    assert (tmp_path / "doc" / "plots" / "results-L1.png").is_file()
    assert "Xie 2024" in text  # published figures beside ours on the reference protocol
    # Each jcd row says which arithmetic coded it (bf16 only where the hardware has it), and so does the report.
    from jcdcodec.codec import native_bf16

    arith = "bf16" if native_bf16(torch.device("cpu")) else "fp32"
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert {r.get("arithmetic") for r in rows if r["method"] == "jcd:tiny-test"} == {arith}
    assert all(s["arithmetic"] == arith for s in jcd)
    assert "Arithmetic of jcd's rows (" in text and f"jcd:tiny-test {arith}." in text
    rows_csv = (out / "per_image.csv").read_text().splitlines()
    assert len(rows_csv) == 1 + len(json.loads((out / "summary.json").read_text())["rows"])
    # A rerun takes everything from the cache: the codecs must not be called again.
    from click.testing import CliRunner

    from jcdcodec.cli import cli

    def boom(*a, **k):
        raise AssertionError("recomputed a cached result")

    monkeypatch.setattr(anchors, "code", boom)
    monkeypatch.setattr(anchors, "bm3d_denoise", boom)
    monkeypatch.setattr("jcdcodec.codec.Codec.encode", boom)
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0
    # The terminal gets the summary, not just a count: per level, the envelope table and the BD-rates.
    assert "level 4: best PSNR" in res.output and "noisy input (no coding)" in res.output
    assert "BD-rate of jcd:" in res.output


def test_the_report_says_plainly_where_jcd_does_not_pay_off():
    from jcdcodec.eval.report import pays_off

    summary = [{"method": "jcd:m", "level": 1, "setting": q, "bpp": b, "psnr": p, "msssim": 0.9, "images": 1}
               for q, b, p in ((1, 0.1, 26.0), (6, 0.3, 28.5))]  # fmt: skip
    summary.append({"method": "noisy input", "level": 1, "setting": "", "bpp": float("nan"), "psnr": 28.9,
                    "msssim": 0.9, "images": 1})  # fmt: skip
    note = pays_off(summary, 1, "jcd:m")
    assert note and "does not pay off at level 1" in note and "28.50 dB" in note and "28.90 dB" in note
    summary[-1]["psnr"] = 20.0
    assert pays_off(summary, 1, "jcd:m") is None


def test_gap_rows_say_where_jcd_wins_and_loses():
    """A jcd curve crossing AVIF's: behind at the low rate, ahead at the high one, '-' below AVIF's rates."""
    from jcdcodec.eval.report import gap_rows

    pt = lambda m, q, b, p: {"method": m, "level": 0, "setting": q, "bpp": b, "psnr": p, "msssim": 0.9}  # noqa: E731
    summary = [pt("avif", 20, 0.1, 30.0), pt("avif", 40, 0.4, 32.0),
               pt("jcd:m", 1, 0.05, 28.0), pt("jcd:m", 2, 0.1, 29.5), pt("jcd:m", 6, 0.4, 33.0)]  # fmt: skip
    rows = gap_rows(summary, 0, "jcd:m", ["avif"])
    assert rows == [["1", "0.0500", "28.00", "-"], ["2", "0.1000", "29.50", "-0.50"], ["6", "0.4000", "33.00", "+1.00"]]


def test_rows_file_regenerates_a_report_without_coding_again(tmp_path, monkeypatch, weights_file,
                                                                other_weights_file):  # fmt: skip
    """Anchors and jcd rows come back from the rows file in a fresh output folder (a fresh clone); jcd rows of
    weights a later run does not evaluate leave the file."""
    from jcdcodec.codec import Codec
    from jcdcodec.eval.runner import EvalSettings, evaluate
    from jcdcodec.manifest import sha256_file

    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray((textured(40, 48) * 255).astype(np.uint8)).save(d / "a.png")
    rows_file = tmp_path / "rows.jsonl"
    s = EvalSettings(levels=(2,), qualities=(2,), anchors=("jpeg",), weights=(str(weights_file),))
    first = evaluate(d, s, tmp_path / "r1", rows_file=rows_file)
    entries = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert len(entries) == len(first)
    assert {e.get("weights") for e in entries} == {None, sha256_file(weights_file)}

    def boom(*a, **k):
        raise AssertionError("recomputed a row that the rows file holds")

    monkeypatch.setattr(anchors, "code", boom)
    monkeypatch.setattr(Codec, "encode", boom)
    again = evaluate(d, s, tmp_path / "r2", rows_file=rows_file)  # fresh cache folder
    key = lambda r: (r["method"], r["setting"], r["psnr"], repr(r["bytes"]))  # noqa: E731
    assert [key(r) for r in again] == [key(r) for r in first]

    monkeypatch.undo()
    other = EvalSettings(levels=(2,), qualities=(2,), anchors=("jpeg",), weights=(str(other_weights_file),))
    evaluate(d, other, tmp_path / "r3", rows_file=rows_file)
    kept = {e.get("weights") for e in map(json.loads, rows_file.read_text().splitlines())}
    assert kept == {None, sha256_file(other_weights_file)}  # the replaced weights' rows are gone, anchors stay

    shipped = tmp_path / "models"  # rows of a shipped model stay although this run did not evaluate it
    shipped.mkdir()
    (shipped / "manifest.json").write_text(json.dumps({"models": {"m": {"sha256": sha256_file(other_weights_file)}}}))
    monkeypatch.setenv("JCD_MODELS", str(shipped))
    evaluate(d, s, tmp_path / "r4", rows_file=rows_file)
    kept = {e.get("weights") for e in map(json.loads, rows_file.read_text().splitlines())}
    assert kept == {None, sha256_file(weights_file), sha256_file(other_weights_file)}


def test_bench_prints_and_writes_json(tmp_path, weights_file):
    img = tmp_path / "a.png"
    Image.fromarray((textured(64, 96) * 255).astype(np.uint8)).save(img)
    r = run_jcd("bench", str(img), "-q", "2", "--repeats", "2", "--weights", str(weights_file), "--json",
                str(tmp_path / "b.json"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "b.json").read_text())
    assert res[0]["encode_s"] > 0 and res[0]["decode_entropy_s"] > 0 and res[0]["peak_rss_mb"] > 0


@pytest.mark.parametrize("args, said", [
    (("bench", "A", "-q", "9"), "Invalid value for -q: '9': qualities are numbers from 1 to 6"),
    (("bench", "A", "--repeats", "0"), "Invalid value for '--repeats': 0 is not in the range x>=1"),
    (("eval", "D", "--qualities", "7"), "Invalid value for --qualities: '7': qualities are numbers from 1 to 6"),
    (("eval", "D", "--qualities", "nan"), "qualities are numbers from 1 to 6"),
    (("eval", "D", "--levels", "2.5"), "Invalid value for --levels: '2.5': levels are whole numbers from 1 to 4"),
    (("eval", "D", "--levels", "0-2"), "levels are whole numbers from 1 to 4"),
])  # fmt: skip
def test_lists_of_qualities_and_levels_are_checked_before_any_work(tmp_path, weights_file, args, said):
    """A quality of 9 failed once the weights had loaded (eval: after the anchors' minutes), --levels 2.5 was
    measured as level 2, --repeats 0 ran once."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray((textured(40, 48) * 255).astype(np.uint8)).save(d / "a.png")
    args = [{"A": str(d / "a.png"), "D": str(d)}.get(a, a) for a in args]
    r = run_jcd(*args, "--weights", str(weights_file), *(["-o", str(tmp_path / "r")] if args[0] == "eval" else []))
    assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "r").exists()


def test_update_manifest_records_figures(tmp_path, weights_file):
    import shutil

    from jcdcodec.manifest import sha256_file

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(weights_file, models / "tiny.safetensors")
    entry = {"name": "tiny-test", "file": "tiny.safetensors", "sha256": sha256_file(models / "tiny.safetensors")}
    (models / "manifest.json").write_text(json.dumps({"default": "tiny-test", "models": {"tiny-test": entry}}))
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray((textured(40, 48) * 255).astype(np.uint8)).save(d / "a.png")
    r = run_jcd("eval", str(d), "--levels", "3", "--qualities", "2,5", "--anchors", "none", "-o", str(tmp_path / "r"),
                "--update-manifest", env={"JCD_MODELS": str(models)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    fig = json.loads((models / "manifest.json").read_text())["models"]["tiny-test"]["figures"]
    assert fig["images"] == 1 and [p["quality"] for p in fig["by_level"]["3"]] == [2.0, 5.0]
    assert all(p["bpp"] > 0 and p["psnr"] > 0 for p in fig["by_level"]["3"])


def test_published_figures_only_beside_the_reference_protocol():
    from jcdcodec.eval.report import markdown

    summary = [{"method": m, "level": 4, "setting": q, "bpp": b, "psnr": p, "msssim": 0.9, "images": 1}
               for m, q, b, p in (("jcd:x", 1, 0.1, 25.0), ("jcd:x", 6, 0.3, 26.0),
                                  ("jpeg", 10, 0.2, 22.0), ("jpeg", 50, 0.6, 23.0))]  # fmt: skip
    settings = {"seed": 0, "float_input": False, "levels": (4,), "qualities": (1, 6)}
    ref = markdown(summary, {**settings, "gamma": "reference"}, "jcd eval", {})
    srgb = markdown(summary, {**settings, "gamma": "srgb"}, "jcd eval --gamma srgb", {})
    assert "Xie 2024" in ref and "27.10" in ref
    assert "Xie 2024" not in srgb and "not shown for this noise convention" in srgb
    # Tables stay well-formed: every row of the q table has as many cells as its header.
    rows = [ln for ln in srgb.splitlines() if ln.startswith("| q |") or ln.startswith("| 1 |")]
    assert len({r.count("|") for r in rows}) == 1


def test_the_first_weights_stay_first_in_the_summary():
    from jcdcodec.eval.runner import summarize

    rows = [{"method": m, "level": 1, "setting": 1.0, "bpp": 0.1, "psnr": 25.0, "msssim": 0.9}
            for m in ("noisy input", "jcd:zeta", "jcd:alpha", "jcd:zeta")]  # fmt: skip
    jcd = [s["method"] for s in summarize(rows) if s["method"].startswith("jcd:")]
    assert jcd == ["jcd:zeta", "jcd:alpha"]


def test_gap_to_the_paper_is_read_off_our_curve():
    from jcdcodec.eval.report import gap_to_published

    # A curve 1 dB under the paper's level-4 q1 point (27.10 dB @ 0.1111 bpp) and topping out at 26.5 dB.
    summary = [{"method": "jcd:x", "level": 4, "setting": q, "bpp": b, "psnr": p, "msssim": 0.9, "images": 1}
               for q, b, p in ((1, 0.1111, 26.10), (6, 0.3, 26.50))]  # fmt: skip
    rows = {ln.split("|")[2].strip().split(":")[0]: ln for ln in gap_to_published(summary, "jcd:x", [4])
            if ln.startswith("| 4 |")}
    assert "| 26.10 | -1.00 |" in rows["q1"]
    # The paper's q6 spends 0.78 bpp; we cannot, so our best point stands in for it: 26.50 - 28.59.
    assert "| 26.50 | -2.09 |" in rows["q6"]
    # Below our lowest rate we do not extrapolate: our lowest point bounds the gap.
    low = [dict(s, bpp=s["bpp"] + 0.05, level=1) for s in summary]  # 0.161 bpp > the paper's 0.0988
    q1 = next(ln for ln in gap_to_published(low, "jcd:x", [1]) if "q1:" in ln)
    assert "26.10 @ 0.161 bpp (our lowest) | <= -1.95 |" in q1
    # Levels without our curve give no rows.
    assert not [ln for ln in gap_to_published(summary, "jcd:x", [1]) if ln.startswith("| 1 |")]


def test_sigma_estimate_of_known_noise():
    rng = np.random.default_rng(0)
    smooth = np.broadcast_to(np.linspace(0.2, 0.8, 256)[None, :, None], (256, 256, 3))  # no diagonal detail
    for sigma in (0.02, 0.05):
        noisy = np.clip(smooth + rng.normal(0, sigma, smooth.shape), 0, 1)
        est = anchors.estimate_sigma(np.round(noisy * 255).astype(np.uint8))
        assert est == pytest.approx(sigma, rel=0.15)


def test_real_noise_pairs_are_evaluated_as_they_are(tmp_path, weights_file):
    from jcdcodec.eval.metrics import psnr
    from jcdcodec.eval.runner import REAL, EvalSettings, evaluate, find_pairs

    d = tmp_path / "pairs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in ("camA_scene_1", "camB_scene_2"):
        yy, xx = np.mgrid[0:48, 0:64] / 64.0  # smooth: its own diagonal detail is not noise
        clean = np.stack([np.sin(3 * xx + c + len(name)) * np.cos(2 * yy) * 80 + 128 for c in range(3)], axis=2)
        clean = clean.round().astype(np.uint8)
        noisy = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(d / f"{name}_mean.png")
        Image.fromarray(noisy).save(d / f"{name}_real.png")
    Image.fromarray(clean).save(d / "lonely_real.png")  # no reference: not a pair
    assert [n for n, _, _ in find_pairs(d)] == ["camA_scene_1", "camB_scene_2"]
    s = EvalSettings(levels=(REAL,), qualities=(1, 6), anchors=("jpeg", "bm3d+jpeg"), pairs=True,
                     weights=(str(weights_file),), device="cpu")  # fmt: skip
    rows = evaluate(d, s, tmp_path / "out")
    assert {r["level"] for r in rows} == {REAL}
    noisy_rows = [r for r in rows if r["method"] == "noisy input"]
    assert len(noisy_rows) == 2
    a = np.asarray(Image.open(d / "camA_scene_1_real.png"))
    b = np.asarray(Image.open(d / "camA_scene_1_mean.png"))
    assert noisy_rows[0]["psnr"] == pytest.approx(psnr(a, b))
    jpeg = [r for r in rows if r["method"] == "jpeg"]
    assert len(jpeg) == 2 * len(anchors.REAL_SWEEPS["jpeg"]) and max(r["setting"] for r in jpeg) == 98
    bm3d = [r for r in rows if r["method"].startswith("bm3d+")]
    assert bm3d and all(4.0 < r["sigma_est"] < 8.5 for r in bm3d)  # estimated, not an oracle
    assert len([r for r in rows if r["method"].startswith("jcd:")]) == 4
    from jcdcodec.eval.runner import summarize, write_tables

    write_tables(rows, summarize(rows), tmp_path / "out", s)
    assert "sigma_est" in (tmp_path / "out" / "per_image.csv").read_text().splitlines()[0]


def test_weights_sharing_a_name_get_labels_of_their_own():
    from jcdcodec.eval.runner import jcd_labels

    assert jcd_labels([("a", "11" * 32), ("b", "22" * 32)]) == ["jcd:a", "jcd:b"]
    assert jcd_labels([("a", "11" * 32), ("a", "22" * 32)]) == ["jcd:a [11111111]", "jcd:a [22222222]"]
