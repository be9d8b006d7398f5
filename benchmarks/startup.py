"""Whole-process coding, start-up included: ``jcd decode`` and ``jcd encode`` per engine beside Pillow's AVIF.

A user who codes one photo waits for the whole process, not for the decode or encode call. This runs the commands
as a user would (a fresh process each time), interleaved round-robin so that a busy machine slows every
command alike, and prints the median wall time, CPU time (user + system, all threads) and peak RSS per
command. The AVIF is the same picture at a similar file size, decoded by Pillow in the same run. The
onnx engine runs with its default threads (one per core) and with one thread (--threads 1). OpenVINO's
compiled network comes from jcd's user cache (a temporary one here, filled by the warm-up round), as on
every decode but a machine's first; the "no cache" row is that first decode. ``jcd encode`` of the same
picture (a PNG) runs per engine too, beside Pillow writing the AVIF.

    .venv/bin/python benchmarks/startup.py [IMAGE] --runs 7 [--json out.json] [--baseline OLD_CHECKOUT]

``--baseline`` adds ``jcd decode`` of another checkout (e.g. ``git worktree add /tmp/old <commit>``), run with
this environment's packages, for a before/after in the same run.

Without IMAGE: ../shared/data/kodak/kodim01.png, else a synthetic 768x512 picture.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KODAK = REPO.parent / "shared" / "data" / "kodak" / "kodim01.png"


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr.read().decode()[-500:] if p.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def prepare(image: Path | None, work: Path, quality: float) -> dict:
    """The .jcd (default weights) and an AVIF of about the same size; returns paths, both bpp, the runtimes.

    Runs in a child process (``--prepare``), so that this process stays small: a child forked from a
    process that has loaded PyTorch would report that process's memory as its own peak.
    """
    import numpy as np
    from PIL import Image

    import jcdcodec
    from jcdcodec import Picture

    if image is None:
        rng = np.random.default_rng(0)
        pic = Picture.from_array(rng.random((512, 768, 3), dtype=np.float32))
    else:
        pic = jcdcodec.load_image(image)
    data = jcdcodec.Codec(device="cpu").encode(pic, quality).data
    jcd = work / "a.jcd"
    jcd.write_bytes(data)
    rgb = Image.fromarray((pic.rgb * 255 + 0.5).astype("uint8"))
    png = work / "in.png"
    rgb.save(png)
    avif = work / "a.avif"
    best = None
    for q in range(5, 96, 5):  # the AVIF quality whose size is closest to the .jcd file's
        rgb.save(avif, quality=q)
        gap = abs(avif.stat().st_size - len(data))
        if best is None or gap < best[0]:
            best = (gap, q)
    rgb.save(avif, quality=best[1])
    pixels = pic.width * pic.height
    from jcdcodec.synthesis import available_runtimes

    return {"jcd": str(jcd), "avif": str(avif), "png": str(png), "avif_quality": best[1], "bpp": len(data) * 8 / pixels,
            "avif_bpp": avif.stat().st_size * 8 / pixels, "runtimes": available_runtimes()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", nargs="?", type=Path, default=KODAK if KODAK.is_file() else None)
    ap.add_argument("--runs", type=int, default=7, help="runs of each command (median reported)")
    ap.add_argument("-q", "--quality", type=float, default=4)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--baseline", type=Path, default=None, help="another jcd checkout to time beside this one")
    ap.add_argument("--prepare", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.prepare is not None:
        print(json.dumps(prepare(a.image, a.prepare, a.quality)))
        return

    py = sys.executable
    jcd = [py, "-m", "jcdcodec"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cmd = [py, __file__, "--prepare", str(work), "-q", str(a.quality), *([str(a.image)] if a.image else [])]
        prep = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)
        stream, avif, bpp, avif_bpp = Path(prep["jcd"]), Path(prep["avif"]), prep["bpp"], prep["avif_bpp"]
        out = str(work / "out.png")
        env["JCD_CACHE_DIR"] = str(work / "cache")  # filled by the warm-up round, as by a user's first decode
        commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        for runtime in prep["runtimes"]:
            for threads in ("0", "1"):
                label = f"jcd decode -o out.png, onnx ({runtime}{', 1 thread' if threads == '1' else ''})"
                commands[label] = ([*jcd, "decode", str(stream), "-o", out, "--engine", "onnx", "--threads", threads],
                                   {**env, "JCD_ONNX_RUNTIME": runtime})  # fmt: skip
        if "openvino" in prep["runtimes"]:  # a machine's first decode: the network compiled, not imported
            commands["jcd decode -o out.png, openvino, no cache"] = (
                [*jcd, "decode", str(stream), "-o", out, "--engine", "onnx"],
                {**env, "JCD_ONNX_RUNTIME": "openvino", "JCD_CACHE_DIR": "off"})  # fmt: skip
        commands["jcd decode -o out.png, torch engine"] = ([*jcd, "decode", str(stream), "-o", out, "--engine",
                                                             "torch"], env)  # fmt: skip
        commands["jcd decode -o out.png, torch (1 thread)"] = ([*jcd, "decode", str(stream), "-o", out, "--engine",
                                                                 "torch", "--threads", "1"], env)  # fmt: skip
        if a.baseline is not None:
            old = str(a.baseline.resolve())
            code = (f"import sys; sys.path.insert(0, {old!r}); sys.argv = ['jcd', 'decode', {str(stream)!r}, '-o', "
                    f"{out!r}]; from jcdcodec.cli import main; main()")  # fmt: skip
            commands[f"jcd decode -o out.png, {a.baseline.name} (baseline)"] = ([py, "-c", code], env)
        png, coded = prep["png"], str(work / "out.jcd")
        for runtime in prep["runtimes"]:
            commands[f"jcd encode -o out.jcd, onnx ({runtime})"] = (
                [*jcd, "encode", png, "-o", coded, "-q", str(a.quality), "--engine", "onnx"],
                {**env, "JCD_ONNX_RUNTIME": runtime})  # fmt: skip
        commands["jcd encode -o out.jcd, torch engine"] = (
            [*jcd, "encode", png, "-o", coded, "-q", str(a.quality), "--engine", "torch"], env)
        commands["Pillow: PNG -> AVIF"] = (
            [py, "-c", f"from PIL import Image; Image.open({png!r}).save({str(work / 'b.avif')!r}, "
                       f"quality={prep['avif_quality']})"], env)  # fmt: skip
        commands["Pillow: AVIF -> out.png"] = (
            [py, "-c", f"from PIL import Image; Image.open({str(avif)!r}).save({out!r})"], env)
        commands["Pillow plugin: Image.open(.jcd).load()"] = (
            [py, "-c", f"import jcdcodec; from PIL import Image; Image.open({str(stream)!r}).load()"], env)
        commands["Pillow: Image.open(.avif).load()"] = (
            [py, "-c", f"from PIL import Image; Image.open({str(avif)!r}).load()"], env)
        for cmd, e in commands.values():  # warm the page cache once
            run_once(cmd, e)
        samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in commands}
        for _ in range(a.runs):
            for name, (cmd, e) in commands.items():
                samples[name].append(run_once(cmd, e))
    label = a.image.name if a.image else "synthetic 768x512"
    print(f"{label}: .jcd {bpp:.3f} bpp (default weights, q{a.quality:g}), AVIF {avif_bpp:.3f} bpp; "
          f"median of {a.runs} runs, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'command':52s} {'wall s':>7s} {'CPU s':>7s} {'RSS MB':>7s}")
    rows = []
    for name, runs in samples.items():
        wall, cpu, rss = (statistics.median(r[k] for r in runs) for k in range(3))
        rows.append({"command": name, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss})
        print(f"{name:52s} {wall:7.3f} {cpu:7.3f} {rss:7.0f}")
    if a.json:
        a.json.write_text(json.dumps({"image": label, "bpp": bpp, "avif_bpp": avif_bpp, "runs": a.runs,
                                      "rows": rows}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
