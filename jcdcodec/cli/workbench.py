"""The workbench commands: noise, train, export, retire, eval, bench (for people who make and measure models)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import click

from ..errors import JcdError
from ..manifest import read_manifest
from .app import cli
from .common import _Ctx, device_option, err, not_an_input, out, quiet_option, same_file, say, weights_option


@cli.command()
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--level", type=click.IntRange(1, 4), required=True, help="Reference noise level 1..4.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output PNG.")
@click.option("--seed", default=0, show_default=True, help="Seed of the noise generator.")
@click.option("--depth", type=click.Choice(["8", "16"]), default="16", show_default=True,
              help="16 keeps the noisy values unrounded (as the reference evaluation feeds them).")
@click.option("--gamma", type=click.Choice(["reference", "srgb"]), default="reference", show_default=True,
              help="reference: the published code's (not quite invertible) gamma pair; srgb: standard curves.")
@click.option("--camera", is_flag=True, help="Camera-like noise instead (raw sensor noise developed through "
              "demosaicking, colour and tone: spatially correlated); levels 1..4 are about 40, 35, 30, 25 dB.")
def noise(input: Path, level: int, output: Path, seed: int, depth: str, gamma: str, camera: bool) -> None:
    """Add synthetic noise to a clean image: the reference read+shot model (test levels 1..4), or --camera."""
    import numpy as np
    import torch

    from ..imageio import load_image, save_image
    from ..noise import add_level_noise

    not_an_input(output, [input])
    p = load_image(input)
    x = torch.from_numpy(np.require(p.rgb, requirements=["C", "W"])).permute(2, 0, 1)
    if camera:
        from ..noise.camera import add_camera_noise, camera_level_params

        g = torch.Generator().manual_seed(seed)
        noisy = add_camera_noise(x[None], camera_level_params(level), g)[0].permute(1, 2, 0).numpy()
    else:
        noisy = add_level_noise(x, level, seed=seed, gamma=gamma).permute(1, 2, 0).numpy()
    save_image(output, noisy, p.kind if p.kind != 2 else 1, int(depth), p.alpha)



@cli.command(context_settings={"max_content_width": 100})
@click.option("--data", type=click.Path(path_type=Path), default=Path("../shared/data/train"), show_default=True,
              help="Folder of training images (decoded once into memory).")
@click.option("--val", type=click.Path(path_type=Path), default=None,
              help="Validation folder [default: hold out --val-count images of --data].")
@click.option("--val-count", type=click.IntRange(min=0), default=4, show_default=True,
              help="Images used for validation.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/jcd"), show_default=True,
              help="Run folder: last.ckpt, log.jsonl, config.json.")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where its checkpoint stopped.")
@click.option("--init", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from exported weights (fine-tuning, e.g. a new quality from a neighbour).")
@click.option("--preset", type=click.Choice(["jcd", "paper", "baseline", "cheng2020"]), default="jcd",
              show_default=True,
              help="jcd: variable-rate model for q1..6 (all parts on). paper: one quality, N by the paper. "
              "baseline: Cheng et al. 2022 (attention-block denoisers, guidance only). cheng2020: no denoisers.")
@click.option("-N", "--channels", "n", type=int, default=None, help="Channels N [default: 128, paper: 128/192].")
@click.option("--quality", "qualities", default="1-6", show_default=True,
              help="Qualities trained: '1-6' (variable rate, one lambda drawn per batch) or one, e.g. '4'.")
@click.option("--contrastive/--no-contrastive", default=None,
              help="Contrastive branch (ablation switch); --no-contrastive with --resume turns it off from there on.")
@click.option("--selfonn/--no-selfonn", default=None, help="Self-ONN units in d1 (else conv units).")
@click.option("--multiscale/--no-multiscale", default=None, help="Dilated multi-scale front in the denoisers.")
@click.option("--cbam/--no-cbam", default=None, help="CBAM attention in the denoiser trunks.")
@click.option("--denoiser-scale", is_flag=True,
              help="A learned per-channel scale on each denoiser's output; with --gate-init it starts at zero, so "
              "denoisers added to a trained codec start by changing nothing.")
@click.option("--guidance/--no-guidance", default=True, show_default=True, help="Clean-feature guidance loss.")
@click.option("--detach-guidance", is_flag=True,
              help="Guidance targets without gradient: only the noisy branch moves toward the clean features "
              "(the reference code lets the guidance move both).")
@click.option("--patch", type=click.IntRange(min=64), default=256, show_default=True,
              help="Crop size (128 is ~4x faster on a CPU). Given with --resume, replaces the run's.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Crops per step. Given with --resume, replaces the run's.")
@click.option("--steps", type=click.IntRange(min=0), default=100_000, show_default=True,
              help="Total steps of the run (lr decays at 80%, 95%). Given with --resume, replaces the run's.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="Learning rate; with --resume, replaces the run's.")
@click.option("--warmup", type=click.IntRange(min=0), default=500, show_default=True,
              help="Steps of linear lr warm-up from the run's start (0: none). Fewer suit a run from --init at a "
              "small lr. Given with --resume, replaces the run's (steps past it train at the full lr at once).")
@click.option("--lambda-g", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Weight of the guidance loss.")
@click.option("--lambda-c", type=click.FloatRange(min=0), default=1.5, show_default=True,
              help="Weight of the contrastive loss.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="NT-Xent temperature.")
@click.option("--wide-noise", is_flag=True, help="Train on noise up to test level 4 (paper range stops below 3).")
@click.option("--gamma", "gamma", type=click.Choice(["reference", "srgb"]), default="reference", show_default=True,
              help="Noise convention: 'reference' as the published benchmark (whose gamma pair brightens, so the "
                   "model learns to darken); 'srgb' keeps photos' brightness.")
@click.option("--noise", "noise_model", type=click.Choice(["readshot", "camera", "mix"]), default="readshot",
              show_default=True, help="Training noise: read+shot in sRGB (the benchmark's), camera-like (raw "
              "sensor noise developed through demosaicking, colour, tone and sometimes JPEG), or half of each.")
@click.option("--upscale", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Fraction of crops cut 1-4x smaller and enlarged to the patch: smooth content like crops of "
              "camera photos (the training photos are small and dense in texture).")
@click.option("--gate-init", type=float, default=None,
              help="With --init from weights without denoisers: start the new denoisers' mask gates at "
              "sigmoid(GATE_INIT), e.g. 2 (0.88), so they start working.")
@click.option("--clean-input", is_flag=True,
              help="Train on clean crops (no noise): stage one of the paper's recipe, a plain codec to --init from.")
@click.option("--ema", type=click.FloatRange(0, 1, max_open=True), default=0.999, show_default=True,
              help="Decay of the parameter moving average that validation reports and export ships (0: off).")
@click.option("--bf16/--fp32", default=None,
              help="bf16 autocast (entropy models stay fp32). Default: bf16 where the hardware has it (CUDA, CPUs "
              "with AVX512-BF16 or AMX), else fp32, since emulated bf16 is slower than fp32.")
@click.option("--threads", default="0", metavar="N|auto", callback=lambda c, p, v: _thread_count(v),
              help="torch threads (0: torch's default; 1 keeps a background run from starving the machine; auto: at "
              "each step the cores that other work left idle during the last one, starting at one). A running run "
              "takes a new count, or auto, from OUT/threads at its next step (echo 1 > OUT/threads before other "
              "work).")
@click.option("--seed", default=0, show_default=True)
@click.option("--ckpt-every", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Steps between checkpoints. Given with --resume, replaces the run's.")
@click.option("--val-every", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Steps between real-bitstream validations (0: never). Given with --resume, replaces the run's.")
@click.option("--max-images", type=click.IntRange(min=0), default=0, help="Use only the first N images (0: all).")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Launch N processes with torchrun (DDP: gloo/NCCL).")
@quiet_option
def train(data: Path, val: Path | None, val_count: int, out: Path, resume: bool, init: Path | None, preset: str,
          n: int | None, qualities: str, contrastive: bool | None, selfonn: bool | None, multiscale: bool | None,
          cbam: bool | None, denoiser_scale: bool, guidance: bool, detach_guidance: bool, patch: int, batch: int,
          steps: int, lr: float, warmup: int,
          lambda_g: float,
          lambda_c: float, temperature: float, wide_noise: bool, gamma: str, noise_model: str, upscale: float,
          gate_init: float | None,
          clean_input: bool, ema: float,
          bf16: bool | None, threads: int, seed: int,
          ckpt_every: int, val_every: int, max_images: int, nproc: int, quiet: bool) -> None:  # fmt: skip
    """Train a model: noisy crops in, clean crops as target, three branches.

    Loss = R(y) + R(z) + lambda_d*255^2*MSE + lambda_g*G + lambda_c*L_CL, lambda_d from the six MSE lambdas
    (0.0018 .. 0.0483). Every ablation of the paper is a switch; the baseline and plain Cheng2020 are presets.
    """
    for folder in (data, val):  # the run's checkpoints and logs do not go among the pictures it trains on
        if folder is not None and (out == folder or same_file(out, folder)):
            raise JcdError(f"{out}: is the {'data' if folder == data else 'validation'} folder; choose another --out")
    if nproc > 1:
        import subprocess

        args, skip = [], False
        for a in sys.argv[sys.argv.index("train") + 1 :]:
            if skip or a.startswith("--nproc="):
                skip = False
                continue
            if a == "--nproc":
                skip = True
                continue
            args.append(a)
        # torchrun runs each rank as a program of its own (--no-python): `python -m` would put the working
        # folder, where the data and the run lie, first on the import path of the launcher and of every rank.
        cmd = [*_module_command("torch.distributed.run"), f"--nproc_per_node={nproc}", "--no-python",
               *_module_command("jcdcodec.train"), *args]  # fmt: skip
        sys.exit(subprocess.call(cmd))
    from ..nn.model import ModelConfig
    from ..train.loop import TrainConfig, Trainer

    qs = _parse_qualities(qualities)
    if preset == "paper":
        if len(qs) != 1:
            raise JcdError("--preset paper trains one quality: pass --quality Q")
        base = ModelConfig.paper(qs[0])
    elif preset == "baseline":
        base = ModelConfig.baseline(qualities=qs)
        contrastive = False if contrastive is None else contrastive
    elif preset == "cheng2020":
        base = ModelConfig(qualities=qs, denoise=False)
        contrastive = False if contrastive is None else contrastive
    else:
        base = ModelConfig(qualities=qs)
    switches = {"N": n, "selfonn": selfonn, "multiscale": multiscale, "cbam": cbam,
                "denoiser_scale": denoiser_scale or None}  # fmt: skip
    overrides = {k: v for k, v in switches.items() if v is not None}
    mcfg = dataclasses.replace(base, **overrides)
    tcfg = TrainConfig(data=str(data), val=str(val) if val else None, val_count=val_count, out=str(out), patch=patch,
                       batch=batch, steps=steps, lr=lr, warmup=warmup, lambda_g=lambda_g, lambda_c=lambda_c,
                       guidance=guidance, detach_guidance=detach_guidance,
                       contrastive=True if contrastive is None else contrastive,
                       temperature=temperature, wide_noise=wide_noise, gamma=gamma, noise=noise_model,
                       upscale=upscale, gate_init=gate_init,
                       clean_input=clean_input,
                       ema=ema, bf16=bf16, threads=threads,
                       seed=seed, ckpt_every=ckpt_every, val_every=val_every, max_images=max_images,
                       init=str(init) if init else None)  # fmt: skip
    ckpt = out / "last.ckpt"
    if resume and not ckpt.is_file():
        raise JcdError(f"--resume: no checkpoint at {ckpt}")
    if not resume and ckpt.is_file():
        raise JcdError(f"{ckpt} exists: pass --resume to continue it or choose another --out")
    if not resume and out.is_dir() and any((out / f).exists() for f in ("config.json", "log.jsonl")):
        raise JcdError(f"{out} holds a run that stopped before its first checkpoint (config.json, log.jsonl): "
                       "remove the folder or choose another --out")  # fmt: skip
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = {k for k in ("lr", *Trainer.MAY_OVERRIDE) if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    trainer = Trainer(mcfg, tcfg, resume=ckpt if resume else None, new_lr=lr if resume and "lr" in given else None,
                      also_override=frozenset(given - {"lr"}))  # fmt: skip
    trainer.run(progress=not quiet and err.is_terminal, heartbeat=0 if quiet or err.is_terminal else 60)


def _module_command(module: str) -> list[str]:
    """``python -m module`` without the working folder on the import path.

    Why: ``-m`` puts the folder it starts in first, so a ``jcdcodec`` or ``torch`` folder lying beside the data
    would be imported instead of the installed one. (``-P`` does this only from Python 3.11.)
    """
    code = f"import runpy, sys; del sys.path[0]; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return [sys.executable, "-u", "-c", code]


def _thread_count(text: str) -> int:
    """--threads: a count (0: torch's default), or auto as TrainConfig says it (-1)."""
    if text == "auto":
        return -1
    if not text.isdigit() or int(text) > 1024:
        raise click.BadParameter(f"{text!r}: a thread count from 0 to 1024, or auto")
    return int(text)


def _parse_qualities(text: str) -> tuple[int, ...]:
    try:
        if "-" in text:
            a, b = (int(v) for v in text.split("-"))
            qs = tuple(range(a, b + 1))
        else:
            qs = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: use e.g. '1-6', '4' or '1,3,6'") from None
    if not qs or any(not 1 <= q <= 6 for q in qs):
        raise click.BadParameter(f"{text!r}: qualities lie in 1..6")
    return qs


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Weights file to write, e.g. models/jcd-n64.safetensors.")
@click.option("--name", default=None, help="Name in the manifest [default: file stem].")
@click.option("--default", "make_default", is_flag=True, help="Make these the default weights.")
@click.option("--data-note", default="", help="What the weights were trained on, for the manifest.")
@click.option("--raw", is_flag=True, help="Ship the raw weights of the last step instead of their moving average.")
@click.option("--purpose", default=None,
              help="What the weights are for, shown by `jcd models` [default: from the noise they were trained on].")
@click.option("--synthesis/--no-synthesis", default=True, show_default=True,
              help="Also write the ONNX companions for coding without PyTorch: NAME.synthesis.onnx (g_s) and "
              "NAME.analysis.onnx (the analysis; a graph that reads its parameters from the weights file); "
              "needs the onnx package.")
@click.option("--auto-below", type=click.FloatRange(min=0, min_open=True), default=None,
              help="`jcd encode` without --weights picks these weights for images whose estimated noise std is "
              "below this many 8-bit levels (jcdcodec/choose.py) [default: the entry's earlier rule, if any].")
def export(checkpoint: Path, output: Path, name: str | None, make_default: bool, data_note: str, raw: bool,
           purpose: str | None, synthesis: bool, auto_below: float | None) -> None:
    """Export a training checkpoint to inference weights (fp16 safetensors) and list them in the manifest.

    The manifest entry goes to manifest.json beside the output file. CHECKPOINT may also be weights exported
    elsewhere (a .safetensors file, e.g. what a GPU machine sent back): they are listed here with their
    tables rebuilt and a synthesis file, their training configuration read from the config.json beside them.
    """
    from ..train.loop import export_checkpoint, export_weights

    if not checkpoint.is_file():
        raise JcdError(f"{checkpoint}: no such checkpoint")
    weights = checkpoint.suffix == ".safetensors"
    if not weights:  # exported weights may be listed again in place; a checkpoint holds the run's whole state
        not_an_input(output, [checkpoint])
    read_manifest(output.parent)  # the manifest it will be listed in is jcd's and whole, before anything is written
    if weights and raw:
        raise JcdError(f"{checkpoint}: exported weights hold one set of parameters; --raw is for checkpoints")
    if not synthesis:  # an old companion would belong to other weights
        from ..weightsfile import analysis_path_for, synthesis_path_for

        synthesis_path_for(output).unlink(missing_ok=True)
        analysis_path_for(output).unlink(missing_ok=True)
    previous = _bytes_if_file(output)
    if weights:
        digest, record = export_weights(checkpoint, output, name, data_note, synthesis=synthesis)
    else:
        digest, record = export_checkpoint(checkpoint, output, name, data_note, ema=not raw, synthesis=synthesis)
    if purpose:
        record["purpose"] = purpose
    if auto_below is not None:
        record["auto"] = {"below_noise": auto_below}
    _list_in_manifest(output, digest, record, make_default, previous)
    say(f"{checkpoint} -> {output} ({record['steps']} steps, sha256 {digest[:12]})")


@cli.command(name="export-synthesis")
@click.argument("weights", type=click.Path(dir_okay=False, path_type=Path))
def export_synthesis(weights: Path) -> None:
    """Write the ONNX companions of WEIGHTS (a file or a shipped model's name): NAME.synthesis.onnx and
    NAME.analysis.onnx.

    The companions are what `jcd decode` (g_s) and `jcd encode` (the analysis) run without PyTorch
    (--engine onnx). `jcd export` writes them already; this makes them for weights exported before. The
    analysis file is a graph that reads its parameters from the weights file beside it (about 100 KB).
    When the weights are listed in the manifest beside them, the entry records both files and their sha256.
    """
    from ..manifest import sha256_file
    from ..outputs import atomic_write_bytes
    from ..weights import load_weights, write_analysis, write_synthesis

    lw = load_weights(weights)
    target = write_synthesis(lw.model, lw.path, lw.sha256)
    if target is None:
        raise JcdError("export-synthesis needs the onnx package (pip install onnx)")
    analysis = write_analysis(lw.model, lw.path, lw.sha256)
    assert analysis is not None  # onnx imports, as write_synthesis found
    manifest = read_manifest(lw.path.parent)
    for entry in manifest.get("models", {}).values():
        if entry.get("sha256") == lw.sha256 and entry.get("file") == lw.path.name:
            entry["synthesis"] = {"file": target.name, "sha256": sha256_file(target)}
            entry["analysis"] = {"file": analysis.name, "sha256": sha256_file(analysis)}
            atomic_write_bytes(lw.path.parent / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
            break
    say(f"{lw.path} -> {target} ({target.stat().st_size / 1e6:.1f} MB), {analysis} "
        f"({analysis.stat().st_size / 1e3:.0f} KB)")  # fmt: skip


@cli.command()
@click.argument("name")
@click.option("--force", is_flag=True,
              help="Retire weights that no recent commit holds (streams they made can then not be decoded).")
def retire(name: str, force: bool) -> None:
    """Stop shipping model NAME (in models/, or $JCD_MODELS) without a successor.

    The manifest keeps a record of it under `retired` with the git commit that holds its file, so streams
    it made still name where their weights are (`jcd decode` says so in one line); its entry and its files
    go. The default model cannot be retired (make another the default first), nor weights no commit holds
    unless --force. `jcd export` retires a model's previous version by itself when it replaces it.
    """
    from ..retired import retire_model

    record, removed = retire_model(name, force=force)
    where = f"commit {record['commit']}" if record.get("commit") else "no commit"
    files = ", ".join(p.name for p in removed) or "none"
    say(f"{name} retired: its record names {where}; removed {files}")


def _bytes_if_file(path: Path) -> bytes | None:
    """A file's bytes before it is replaced (an earlier version may ship as a delta against the new one)."""
    return path.read_bytes() if path.is_file() else None


def _list_in_manifest(output: Path, digest: str, record: dict, make_default: bool,
                      previous: bytes | None = None) -> None:  # fmt: skip
    """Write ``record`` as the manifest entry of ``output`` (manifest.json beside it); keep old figures aside.

    A listed model replaced by other weights is recorded as an earlier version (``previous``: the file's
    bytes before it was overwritten, for a delta)."""
    from ..manifest import sha256_file
    from ..outputs import atomic_write_bytes
    from ..retired import retire
    from ..weightsfile import analysis_path_for, synthesis_path_for

    manifest = read_manifest(output.parent)
    record["file"] = output.name
    record["sha256"] = digest
    for kind, companion in (("synthesis", synthesis_path_for(output)), ("analysis", analysis_path_for(output))):
        record.pop(kind, None)
        if companion.is_file():
            record[kind] = {"file": companion.name, "sha256": sha256_file(companion)}
    old = manifest.setdefault("models", {}).get(record["name"], {})
    if old.get("sha256") not in (None, digest):
        retire(manifest, old, output.parent, previous, output.read_bytes())
    if "auto" in old and "auto" not in record:  # a new version keeps the noise it is chosen for
        record["auto"] = old["auto"]
    if "figures" in old:
        record["figures_previous"] = old["figures"]
    record.pop("figures", None)  # figures belong to the weights they were measured with
    manifest["models"][record["name"]] = record
    if make_default or not manifest.get("default"):
        manifest["default"] = record["name"]
    atomic_write_bytes(output.parent / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())


@cli.command()
@click.argument("weights", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Calibrated weights to write (may be the input's file: it is replaced atomically).")
@click.option("--name", default=None, help="Name in the manifest [default: the input's name].")
@click.option("--data", type=click.Path(path_type=Path), default=Path("../shared/data/train"), show_default=True,
              help="Training images (the first --val-count are left out, as in training).")
@click.option("--val-count", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=1500, show_default=True,
              help="Calibration steps (batches).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True,
              help="Learning rate of the log-gains.")
@click.option("--gamma", type=click.Choice(["reference", "srgb"]), default=None,
              help="Noise convention [default: the one the weights were trained on].")
@click.option("--wide-noise/--paper-noise", default=None, help="Noise range [default: the weights' own].")
@click.option("--noise", "noise_model", type=click.Choice(["readshot", "camera", "mix"]), default=None,
              help="Training noise [default: the weights' own; weights trained on clean crops calibrate on them].")
@click.option("--patch", type=click.IntRange(min=64), default=128, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, help="torch threads (0: torch's default).")
@click.option("--seed", default=0, show_default=True)
@click.option("--default", "make_default", is_flag=True, help="Make these the default weights.")
@quiet_option
def calibrate(weights: Path, output: Path, name: str | None, data: Path, val_count: int, steps: int, lr: float,
              gamma: str | None, wide_noise: bool | None, noise_model: str | None, patch: int, batch: int,
              threads: int, seed: int, make_default: bool, quiet: bool) -> None:  # fmt: skip
    """Refit only the per-quality gains of trained weights, so each quality sits at its own lambda's optimum.

    Everything else is frozen: the analysis runs without gradients and 2 x 6 x N numbers learn, on the same
    noisy crops and loss (R + lambda*255^2*MSE) as training. The manifest entry keeps the training record and
    adds what calibration changed.
    """
    import copy

    import torch

    from ..imageio import list_images
    from ..train.calibrate import calibrate_gains
    from ..train.data import PatchSampler, readable_uint8
    from ..weights import load_weights, save_weights

    if threads:
        torch.set_num_threads(threads)
    read_manifest(output.parent)  # where the result is listed: checked before minutes of calibration, not after
    lw = load_weights(weights)
    entry = lw.manifest_entry
    if entry is None and Path(weights).is_file():  # a file outside models/: its own folder's manifest, if any
        entry = next((e for e in read_manifest(Path(weights).parent).get("models", {}).values()
                      if e.get("sha256") == lw.sha256), None)  # fmt: skip
    entry = copy.deepcopy(entry or {})
    tc = entry.get("train_config", {})
    gamma = gamma or tc.get("gamma", "reference")
    wide = tc.get("wide_noise", True) if wide_noise is None else wide_noise
    noise_model = noise_model or tc.get("noise", "readshot")
    clean = bool(tc.get("clean_input", False))
    files = list_images(data)[val_count:]
    images = [im for im in (readable_uint8(f, patch) for f in files) if im is not None]
    sampler = PatchSampler(images, patch, batch, wide, gamma, clean, noise_model)

    def report(step: int, j: dict[int, float]) -> None:
        if not quiet and step % 250 == 0:
            err.print(f"calibrate: step {step}/{steps}, J " + " ".join(f"q{q} {v:.3f}" for q, v in j.items()))

    model = lw.model
    result = calibrate_gains(model, sampler, steps, lr=lr, seed=seed, progress=report)
    name = name or lw.name
    meta = {"name": name, "trained": "true", "steps": str(entry.get("steps", 0)),
            "train_seconds": str(entry.get("train_seconds", 0)), "calibrated": str(steps)}  # fmt: skip
    if entry.get("history"):
        meta["history"] = entry["history"]
    previous = _bytes_if_file(output)
    digest = save_weights(model, output, meta)
    record = {**entry, "name": name}
    record["calibration"] = {
        "from_sha256": lw.sha256, "steps": steps, "lr": lr, "gamma": gamma, "wide_noise": wide,
        "noise": "none (clean crops)" if clean else noise_model, "patch": patch,
        "batch": batch, "seconds": round(result.seconds),
        "gain_change": {str(q): round(v, 4) for q, v in result.gain_change.items()},
        "J_last_quarter": {str(q): round(v, 4) for q, v in result.j_end.items()},
    }  # fmt: skip
    record.setdefault("config", json.loads(model.config.to_json()))
    _list_in_manifest(output, digest, record, make_default, previous)
    say(f"{weights} -> {output}: gains x " + ", ".join(f"q{q} {v:.3f}" for q, v in result.gain_change.items())
        + f" ({steps} steps, {result.seconds:.0f} s, sha256 {digest[:12]})")


def _parse_floats(text: str, what: str, hint: str, whole: bool = False) -> tuple[float, ...]:
    """'1-6' or '1,2.5,4' as numbers from 1 to 6 (``whole``: integers from 1 to 4, noise levels), checked before
    any work: a quality of 9 failed after the weights loaded, a level of 2.5 was measured as level 2."""
    try:
        if "-" in text and "," not in text:
            a, b = (int(v) for v in text.split("-"))
            values = tuple(float(v) for v in range(a, b + 1))
        else:
            values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of {what} (e.g. '1-6' or '1,2.5,4')", param_hint=hint) \
            from None
    top = 4 if whole else 6
    if not values or not all(1 <= v <= top and (v == int(v) or not whole) for v in values):  # NaN is not
        raise click.BadParameter(f"{text!r}: {what} are {'whole numbers' if whole else 'numbers'} from 1 to {top}",
                                 param_hint=hint)  # fmt: skip
    return values


@cli.command(name="eval")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--levels", default="1,2,3,4", show_default=True, help="Noise levels.")
@click.option("--qualities", default="1-6", show_default=True,
              help="jcd qualities, e.g. '1-6' or '1,2.5,6'; 'none' runs only the anchors.")
@click.option("--weights", "weights", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Weights to evaluate (repeatable; the first is compared with the others), or 'auto': each "
              "image coded by the model `jcd encode` picks for its noise [default: the shipped default].")
@click.option("--anchors", default="jpeg,webp,avif,bm3d+best", show_default=True,
              help="Classical anchors on the same noisy images: jpeg, webp, avif, bm3d+best (BM3D then each "
              "codec), or 'none'.")
@click.option("--float-input", is_flag=True, help="Feed jcd the unrounded noisy image (anchors stay 8-bit).")
@click.option("--gamma", type=click.Choice(["reference", "srgb"]), default="reference", show_default=True)
@click.option("--pairs", is_flag=True, help="Real noise: DIRECTORY holds NAME_real.* (noisy shots) and NAME_mean.* "
              "(clean references) pairs; no noise is added, BM3D's sigma is estimated, --levels is ignored.")
@click.option("--seed", default=0, show_default=True, help="Noise seed (the same for every image).")
@click.option("--max-images", type=click.IntRange(min=0), default=0, help="Use only the first N images (0: all).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder for CSV/JSON, plots and the per-item cache.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a markdown report here (plots go to a 'plots' folder beside it, named after it).")
@click.option("--update-manifest", is_flag=True,
              help="Record the measured figures of the evaluated weights in models/manifest.json.")
@click.option("--rows", "--anchor-rows", "rows", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSONL file of measured rows to reuse and extend: the anchors (BM3D costs minutes per image) "
              "and jcd's rows of the weights evaluated, keyed by their checksum, so a report regenerates in a "
              "fresh clone by coding only what changed. jcd rows of weights neither evaluated nor shipped are dropped.")
@device_option
@quiet_option
def eval_(directory: Path, levels: str, qualities: str, weights: tuple[Path, ...], anchors: str, float_input: bool,
          gamma: str, pairs: bool, seed: int, max_images: int, output: Path, report: Path | None,
          update_manifest: bool,
          rows: Path | None, device: str, quiet: bool) -> None:  # fmt: skip
    """Rate-distortion of jcd and classical anchors on DIRECTORY with the reference noise.

    Real encoder and decoder, real file sizes. Writes per_image.csv, summary.csv, summary.json, an RD plot per
    level and a BD-rate table. Results are cached per image and setting: a rerun only does what is missing.
    """
    from rich.progress import Progress

    from ..eval.report import markdown, plot_level
    from ..eval.runner import EvalSettings, evaluate, summarize, write_tables

    _Ctx.quiet = quiet
    lv = tuple(int(v) for v in _parse_floats(levels, "levels", "--levels", whole=True))
    anc = () if anchors.strip() == "none" else tuple(a.strip() for a in anchors.split(","))
    known = {"jpeg", "webp", "avif", "bm3d+best", "bm3d+jpeg", "bm3d+webp", "bm3d+avif"}
    if set(anc) - known:
        raise click.BadParameter(f"unknown anchors {sorted(set(anc) - known)}", param_hint="--anchors")
    qs = () if qualities.strip() == "none" else _parse_floats(qualities, "qualities", "--qualities")
    if pairs:
        from ..eval.runner import REAL

        lv = (REAL,)
    settings = EvalSettings(levels=lv, qualities=qs, anchors=anc, pairs=pairs,
                            float_input=float_input, gamma=gamma, seed=seed, device=device, max_images=max_images,
                            weights=tuple(str(w) for w in weights) or (None,))  # fmt: skip
    from ..imageio import list_images

    if pairs:
        from ..eval.runner import find_pairs

        n_images = len(find_pairs(directory))
    else:
        n_images = len(list_images(directory))
    if report is not None:  # the report is written whole at the end: never over what the evaluation reads
        not_an_input(report, [*weights, *(p for p in directory.iterdir() if p.is_file())], "--report")
    total = (min(n_images, max_images) if max_images else n_images) * len(lv)
    with Progress(disable=quiet or not err.is_terminal, console=err) as bar:
        task = bar.add_task("evaluating", total=total)
        measured = evaluate(directory, settings, output, progress=lambda msg: bar.advance(task), rows_file=rows)
    summary = summarize(measured)
    write_tables(measured, summary, output, settings)
    plot_dir = (report.parent / "plots") if report else output
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots = {}
    for level in lv:
        if pairs:  # one plot: named after the report alone
            p = plot_dir / (f"{report.stem}.png" if report else "rd_real.png")
        else:
            p = plot_dir / (f"{report.stem}-L{level}.png" if report else f"rd_L{level}.png")
        title = (f"Real camera noise ({directory.name})" if pairs else
                 f"Noise level {level} ({directory.name}, gamma {gamma})")  # fmt: skip
        plot_level(summary, level, p, title, published_marks=gamma == "reference" and not pairs)
        plots[level] = str(p.relative_to(report.parent)) if report else p.name
    command = "jcd eval " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["eval"] else "jcd eval"
    text = markdown(summary, dataclasses.asdict(settings), command, plots)
    from ..outputs import atomic_write_bytes

    atomic_write_bytes(output / "report.md", text.encode())
    if report:
        atomic_write_bytes(report, text.encode())
    if update_manifest:
        _record_figures(summary, settings, directory, command)
    if not quiet:
        from rich.table import Table

        from ..eval.report import level_name, terminal_summary

        for level in lv:
            header, body, notes = terminal_summary(summary, level)
            table = Table(title=f"{level_name(level)}: best PSNR (dB) at or below each rate", title_justify="left")
            for i, col in enumerate(header):
                table.add_column(col, justify="left" if i == 0 else "right")
            for row in body:
                table.add_row(*row)
            out.print(table)
            for note in notes:
                out.print(f"  {note}", soft_wrap=True)
    say(f"{len(measured)} results -> {output}" + (f", report {report}" if report else ""))


def _record_figures(summary: list[dict], settings, directory: Path, command: str) -> None:
    """Write mean bpp / PSNR / MS-SSIM per level and quality into the manifest entries of the evaluated weights."""
    from ..manifest import models_dir, read_manifest
    from ..outputs import atomic_write_bytes

    manifest = read_manifest()
    changed = False
    for name, entry in manifest.get("models", {}).items():
        rows = [s for s in summary if s["method"] == f"jcd:{name}"]
        if not rows:
            continue
        # Real-noise pairs keep their own figures: they do not replace the benchmark's.
        entry["figures_real" if settings.pairs else "figures"] = {
            "dataset": directory.name,
            "images": max(s["images"] for s in rows),
            "noise": "real camera noise (noisy/clean pairs)" if settings.pairs else
                     f"reference read+shot, seed {settings.seed}, gamma {settings.gamma}",
            "input": "float" if settings.float_input else "8-bit noisy",
            "command": command,
            "by_level": {str(lv): [{"quality": s["setting"], "bpp": round(s["bpp"], 5), "psnr": round(s["psnr"], 3),
                                    "msssim": round(s["msssim"], 5)} for s in rows if s["level"] == lv]
                         for lv in settings.levels},
        }  # fmt: skip
        changed = True
    if changed:
        path = models_dir() / "manifest.json"
        atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode())


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-q", "--quality", "qualities", default="4", show_default=True, help="Qualities, e.g. '4' or '1-6'.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed repeats per image (median reported).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures as JSON.")
@click.option("--engine", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="The networks' engine, as for jcd encode (onnx: ONNX runtime on the CPU; torch: PyTorch).")
@weights_option
@device_option
@quiet_option
def bench(path: Path, qualities: str, repeats: int, json_out: Path | None, engine: str, weights: Path | None,
          device: str, quiet: bool) -> None:  # fmt: skip
    """Encode/decode speed per image: median seconds split into network and entropy coding, peak memory, bpp."""
    import resource
    import statistics

    from rich.table import Table

    from ..encoder import open_encoder
    from ..imageio import list_images, load_image

    _Ctx.quiet = quiet
    qs = _parse_floats(qualities, "qualities", "-q")
    files = list_images(path) if path.is_dir() else [path]
    if json_out is not None:
        not_an_input(json_out, files, "--json")
    codec = open_encoder(weights, device=device, engine=engine)
    results = []
    for f in files:
        pic = load_image(f)
        for q in qs:
            runs = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                enc = codec.encode(pic, q)
                t1 = time.perf_counter()
                dec = codec.decode(enc.data)
                t2 = time.perf_counter()
                runs.append((t1 - t0, t2 - t1, enc.timings, dec.timings))
            med = lambda xs: statistics.median(xs)  # noqa: E731
            results.append({
                "image": f.name, "width": pic.width, "height": pic.height, "quality": q,
                "bpp": len(enc.data) * 8 / (pic.width * pic.height),
                "encode_s": med([r[0] for r in runs]), "decode_s": med([r[1] for r in runs]),
                "encode_network_s": med([r[2].get("network", 0) for r in runs]),
                "encode_entropy_s": med([r[2].get("entropy_coding", 0) + r[2].get("hyper_synthesis", 0) for r in runs]),
                "decode_network_s": med([r[3].get("network", 0) for r in runs]),
                "decode_entropy_s": med([r[3].get("entropy_coding", 0) + r[3].get("hyper_synthesis", 0) for r in runs]),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            })  # fmt: skip
    # One small table per image under its name: fits an 80-column terminal whatever the file names.
    if not quiet:
        where = f"{codec.device}, " if hasattr(codec, "device") else ""
        out.print(f"jcd bench: {codec.ref.name} on {where}engine {codec.engine}, median of {repeats} runs",
                  soft_wrap=True)  # fmt: skip
    for name in dict.fromkeys(r["image"] for r in results):
        rs = [r for r in results if r["image"] == name]
        table = Table(title=f"{name} ({rs[0]['width']}x{rs[0]['height']})", title_justify="left", pad_edge=False)
        for col in ("q", "bpp", "enc s", "net", "entropy", "dec s", "net", "entropy", "RSS MB"):
            table.add_column(col, justify="right", no_wrap=True)
        for r in rs:
            table.add_row(f"{r['quality']:g}", f"{r['bpp']:.4f}", f"{r['encode_s']:.3f}",
                          f"{r['encode_network_s']:.3f}", f"{r['encode_entropy_s']:.3f}", f"{r['decode_s']:.3f}",
                          f"{r['decode_network_s']:.3f}", f"{r['decode_entropy_s']:.3f}", f"{r['peak_rss_mb']:.0f}")
        if not quiet:
            out.print(table)
    if json_out:
        from ..outputs import atomic_write_bytes

        atomic_write_bytes(json_out, json.dumps(results, indent=2).encode())


