"""The RD evaluation: noisy images -> every method -> bpp, PSNR, MS-SSIM; cached per item.

Fairness: every method codes the same noisy picture. By default that is the noisy image
rounded to 8 bits, as users have it; ``float_input`` gives jcd the unrounded image (as the
reference evaluation does) while the anchors still get the 8-bit one. Sizes are real file
sizes (jcd: the whole .jcd file), PSNR/MS-SSIM are against the clean 8-bit image.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..bitstream import VERSION as BITSTREAM_VERSION
from ..imageio import Picture
from ..noise import add_level_noise
from ..outputs import atomic_write_bytes
from . import anchors as anc
from .metrics import ms_ssim, psnr, to_uint8


@dataclass
class EvalSettings:
    levels: tuple[int, ...] = (1, 2, 3, 4)
    qualities: tuple[float, ...] = (1, 2, 3, 4, 5, 6)
    anchors: tuple[str, ...] = ("jpeg", "webp", "avif", "bm3d+best")
    float_input: bool = False
    gamma: str = "reference"
    seed: int = 0
    device: str = "auto"
    max_images: int = 0
    weights: tuple[str | None, ...] = (None,)
    extra: dict = field(default_factory=dict)
    # Real noise: the folder holds NAME_real.* (a noisy shot) and NAME_mean.* (its clean reference) pairs; the
    # one "level" is 0, BM3D's sigma is estimated from the noisy image, and the codec sweeps reach higher rates.
    pairs: bool = False


def jcd_labels(weights: list[tuple[str, str]]) -> list[str]:
    """The method label of each evaluated weights (name, sha256): ``jcd:NAME``, with ``[SHA8]`` added where two
    share a name (a model and its recalibrated copy), so that their rows are never pooled."""
    names = [n for n, _ in weights]
    return [f"jcd:{n}" + (f" [{sha[:8]}]" if names.count(n) > 1 else "") for n, sha in weights]


#: The level rows of real noisy/clean pairs carry (they have no synthetic noise level).
REAL = 0


def find_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """(name, noisy, clean) for every ``NAME_real.EXT`` with a ``NAME_mean.EXT`` beside it, sorted by name.

    The naming rule of the PolyU real-noise set: one real shot and the mean of ~500 shots of the scene.
    """
    from ..errors import JcdError
    from ..imageio import list_images

    files = list_images(folder)
    by_key = {f.stem.lower(): f for f in files}
    out = []
    for f in files:
        stem = f.stem.lower()
        if stem.endswith("_real") and stem[: -len("_real")] + "_mean" in by_key:
            name = f.stem[: -len("_real")]
            out.append((name, f, by_key[stem[: -len("_real")] + "_mean"]))
    if not out:
        raise JcdError(f"{folder}: no NAME_real.* / NAME_mean.* pairs found")
    return sorted(out)


def _load_clean(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))  # a writable copy: torch.from_numpy warns on read-only arrays


class _Cache:
    """Per-item results: one JSON file each under ``root``, plus an optional shared JSONL of measured rows.

    Every result is a pure function of its key (image content, noise, method, setting; for jcd also the
    weights' sha256 and the bitstream version), so it can be kept in the repository: ``rows`` holds the
    anchors (BM3D costs minutes per image) and the jcd rows of the weights this run evaluates, and a report
    regenerates in a fresh clone by coding only what changed. When the file is written, jcd rows are kept for
    the weights this run evaluates and the shipped ones; those of a replaced version or a candidate measured
    once leave it.
    """

    def __init__(self, root: Path, rows: Path | None = None, weights: tuple[str, ...] = ()) -> None:
        from ..manifest import read_manifest

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.rows = rows
        shipped = {e.get("sha256") for e in read_manifest().get("models", {}).values() if isinstance(e, dict)}
        self.weights = set(weights) | shipped  # sha256 of the weights whose jcd rows the file keeps
        self.shared: dict[str, dict] = {}  # key -> {"row": ..., "weights": sha256 (jcd rows only)}
        if rows and rows.is_file():
            for line in rows.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.shared[entry.pop("key")] = entry

    @staticmethod
    def _hash(parts: tuple) -> str:
        return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def get(self, *parts: object, weights: str | None = None) -> dict | None:
        h = self._hash(parts)
        if h in self.shared:
            return self.shared[h]["row"]
        p = self.root / f"{h}.json"
        if not p.is_file():
            return None
        row = json.loads(p.read_text())
        self._share(h, row, weights)  # so save_rows() exports what earlier runs cached
        return row

    def put(self, row: dict, *parts: object, weights: str | None = None) -> dict:
        h = self._hash(parts)
        p = self.root / f"{h}.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(row))
        tmp.replace(p)
        self._share(h, row, weights)
        return row

    def _share(self, h: str, row: dict, weights: str | None) -> None:
        self.shared[h] = {"row": row} if weights is None else {"row": row, "weights": weights}

    def save_rows(self) -> None:
        if self.rows is None:
            return
        kept = {k: e for k, e in self.shared.items() if e.get("weights") in (None, *self.weights)}
        lines = [json.dumps({"key": k, **e}, sort_keys=True) for k, e in sorted(kept.items())]
        atomic_write_bytes(self.rows, ("\n".join(lines) + "\n").encode())


def evaluate(
    image_dir: Path,
    settings: EvalSettings,
    out_dir: Path,
    progress: Callable[[str], None] | None = None,
    rows_file: Path | None = None,
) -> list[dict]:
    """Run every (image, level, method, setting); returns per-image rows (cached under out_dir/cache, and in
    ``rows_file`` when given: see :class:`_Cache`)."""
    from ..choose import AUTO, AutoCodec
    from ..codec import Codec
    from ..imageio import list_images

    if settings.pairs:
        cases = find_pairs(image_dir)
        files = [noisy for _, noisy, _ in cases]
        clean_of = {noisy: clean for _, noisy, clean in cases}
    else:
        files = list_images(image_dir)
        clean_of = {}
    if settings.max_images:
        files = files[: settings.max_images]
    sweeps = anc.REAL_SWEEPS if settings.pairs else anc.SWEEPS
    # "auto": what `jcd encode` does without --weights, each image coded by the model chosen for its noise; its
    # rows are that model's (same cache key), labelled jcd:auto.
    codecs = [AutoCodec(device=settings.device, engine="torch") if w == AUTO else Codec(w, device=settings.device)
              for w in settings.weights] if settings.qualities else []  # fmt: skip
    cache = _Cache(out_dir / "cache", rows_file, tuple(c.weights.sha256 for c in codecs if isinstance(c, Codec)))
    labels = jcd_labels([(AUTO, AUTO) if isinstance(c, AutoCodec) else (c.weights.name, c.weights.sha256)
                         for c in codecs])  # fmt: skip
    rows: list[dict] = []
    want_bm3d = any(a.startswith("bm3d") for a in settings.anchors)
    pillow = [a for a in settings.anchors if a in anc.CODECS]
    bm3d_codecs = list(anc.CODECS) if "bm3d+best" in settings.anchors else [
        a.split("+", 1)[1] for a in settings.anchors if a.startswith("bm3d+") and a != "bm3d+best"]  # fmt: skip
    for path in files:
        clean8 = _load_clean(clean_of.get(path, path))
        clean = torch.from_numpy(clean8).permute(2, 0, 1).float() / 255.0
        ident = (path.name, clean8.shape, hashlib.sha1(clean8.tobytes()).hexdigest()[:12])
        for level in (REAL,) if settings.pairs else settings.levels:
            if settings.pairs:
                noisy8 = _load_clean(path)
                if noisy8.shape != clean8.shape:
                    from ..errors import JcdError

                    raise JcdError(f"{path}: {noisy8.shape[1]}x{noisy8.shape[0]}, but its reference is "
                                   f"{clean8.shape[1]}x{clean8.shape[0]}")  # fmt: skip
                noisy = noisy8.astype(np.float32) / 255.0
                ident = (*ident, hashlib.sha1(noisy8.tobytes()).hexdigest()[:12])
                common: tuple = (ident, "real")
            else:
                noisy = add_level_noise(clean, level, seed=settings.seed, gamma=settings.gamma)
                noisy = noisy.permute(1, 2, 0).numpy()
                noisy8 = to_uint8(noisy)
                common = (ident, level, settings.gamma, settings.seed)
            base = {"image": path.name, "level": level, "pixels": clean8.shape[0] * clean8.shape[1]}
            row = cache.get(*common, "noisy")
            if row is None:
                row = cache.put({**base, "method": "noisy input", "setting": "", "bytes": float("nan"),
                                 "psnr": psnr(noisy8, clean8), "msssim": ms_ssim(noisy8, clean8)}, *common, "noisy")
            rows.append(row)
            jcd_input = noisy if settings.float_input else noisy8.astype(np.float32) / 255.0
            picture = Picture.from_array(jcd_input)
            for chooser, label in zip(codecs, labels, strict=True):
                codec = chooser.codec(picture) if isinstance(chooser, AutoCodec) else chooser
                for q in settings.qualities:
                    sha = codec.weights.sha256
                    parts = (*common, "jcd", sha, BITSTREAM_VERSION, q, settings.float_input)
                    row = cache.get(*parts, weights=sha)
                    if row is None:
                        enc = codec.encode(picture, q)
                        out8 = to_uint8(codec.decode(enc.data).picture.rgb)
                        # The arithmetic is recorded, not keyed: bf16 and fp32 code nearly the same files
                        # (docs/speed.md: +0.02 % bytes on three Kodak images); keying would recode every kept row.
                        row = cache.put({**base, "method": label, "setting": q,
                                         "bytes": len(enc.data), "psnr": psnr(out8, clean8),
                                         "msssim": ms_ssim(out8, clean8),
                                         "arithmetic": "bf16" if codec.bf16 else "fp32"},
                                        *parts, weights=sha)  # fmt: skip
                    rows.append({**row, "method": label})  # the cache is by checksum; the label is this run's
            for c in pillow:
                rows.extend(_codec_rows(cache, common, base, noisy8, clean8, c, "", sweeps[c]))
            if want_bm3d and bm3d_codecs:
                memo: list[np.ndarray] = []

                def denoised(ident=ident, level=level, noisy8=noisy8, clean8=clean8, memo=memo) -> np.ndarray:
                    if not memo:  # only when some BM3D result is missing from the cache
                        memo.append(_bm3d_cached(out_dir / "cache", ident, level, settings, noisy8, clean8))
                    return memo[0]

                if settings.pairs:  # what BM3D was told: estimated from the noisy image, no oracle
                    base = {**base, "sigma_est": anc.estimate_sigma(noisy8) * 255}

                row = cache.get(*common, "bm3d")
                if row is None:
                    den = denoised()
                    row = cache.put({**base, "method": "bm3d (uncompressed)", "setting": "", "bytes": float("nan"),
                                     "psnr": psnr(den, clean8), "msssim": ms_ssim(den, clean8)}, *common, "bm3d")
                rows.append(row)
                for c in bm3d_codecs:
                    rows.extend(_codec_rows(cache, common, base, denoised, clean8, c, "bm3d+", sweeps[c]))
            if progress:
                progress(f"{path.name} L{level}")
        cache.save_rows()
    for r in rows:
        r["bpp"] = r["bytes"] * 8 / r["pixels"] if isinstance(r["bytes"], (int, float)) else float("nan")
    return rows


def _codec_rows(cache, common, base, src8, clean8, codec: str, prefix: str, sweep: list[int]) -> list[dict]:
    """One row per quality of the sweep; ``src8`` is the coded image or a callable producing it."""
    rows = []
    for q in sweep:
        parts = (*common, prefix + codec, q)
        row = cache.get(*parts)
        if row is None:
            nbytes, out8 = anc.code(src8() if callable(src8) else src8, codec, q)
            row = cache.put({**base, "method": prefix + codec, "setting": q, "bytes": nbytes,
                             "psnr": psnr(out8, clean8), "msssim": ms_ssim(out8, clean8)}, *parts)  # fmt: skip
        rows.append(row)
    return rows


def _bm3d_cached(root: Path, ident, level: int, settings: EvalSettings, noisy8, clean8) -> np.ndarray:
    from PIL import Image

    tag = "real" if settings.pairs else f"L{level}-{settings.gamma}-s{settings.seed}"
    p = root / f"bm3d-{ident[0]}-{ident[2]}-{tag}.png"
    if p.is_file():
        return np.asarray(Image.open(p).convert("RGB"))
    if settings.pairs:  # real noise has no oracle: estimate it from the noisy image alone
        sigma = anc.estimate_sigma(noisy8)
    else:
        sigma = float(np.std(noisy8.astype(np.float64) - clean8.astype(np.float64))) / 255.0
    den = anc.bm3d_denoise(noisy8, sigma)
    Image.fromarray(den).save(p)
    return den


# -- aggregation ------------------------------------------------------------------------------
def summarize(rows: list[dict]) -> list[dict]:
    """Mean bpp / PSNR / MS-SSIM over images per (method, level, setting)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["level"], r["setting"])].append(r)
    out = []
    # Methods keep the order they were evaluated in, so the first --weights stays first in the report.
    first = {m: i for i, m in reversed(list(enumerate(r["method"] for r in rows)))}
    for (method, level, setting), rs in sorted(groups.items(),
                                               key=lambda kv: (first[kv[0][0]], kv[0][1], str(kv[0][2]))):
        out.append({"method": method, "level": level, "setting": setting, "images": len(rs),
                    "bpp": _mean(r["bpp"] for r in rs), "psnr": _mean(r["psnr"] for r in rs),
                    "msssim": _mean(r["msssim"] for r in rs)})  # fmt: skip
        if method.startswith("jcd:"):  # bf16 / fp32, or "not recorded" for rows kept from before the field
            out[-1]["arithmetic"] = " / ".join(sorted({r.get("arithmetic") or "not recorded" for r in rs}))
    return out


def _mean(values) -> float:
    v = [x for x in values if isinstance(x, (int, float)) and math.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def write_tables(rows: list[dict], summary: list[dict], out_dir: Path, settings: EvalSettings) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in (("per_image.csv", rows), ("summary.csv", summary)):
        with open(out_dir / name, "w", newline="") as f:
            # Every key of every row, in first-seen order (BM3D rows of real noise carry their estimated sigma).
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in data for k in row)))
            w.writeheader()
            w.writerows(data)
    meta = asdict(settings)
    (out_dir / "summary.json").write_text(json.dumps({"settings": meta, "summary": summary, "rows": rows}, indent=1))
