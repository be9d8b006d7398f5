"""The training loop: three branches, bf16 on CPU, resumable, optionally distributed.

One step:
  noisy/clean crops -> model (noisy branch, uniform-noise quantisation, fp32 entropy models)
  guidance branch (shared encoder on the clean crop, not detached)
  contrastive branch (projection head on y0 and on g_a0 of an augmented clean view)
  loss (losses.py) -> clip 1.0 -> Adam; the EntropyBottleneck quantiles by their own aux Adam.

Under ``torchrun`` (WORLD_SIZE set) the step runs under DistributedDataParallel (gloo on
CPU, NCCL on CUDA); each rank draws different crops, gradients are averaged, and rank 0
writes logs and checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..codec import native_bf16
from ..errors import JcdError
from ..imageio import list_images
from ..nn.model import JointModel, ModelConfig
from ..noise import GAMMAS
from ..outputs import atomic_target, atomic_write_bytes
from .data import PatchSampler, center_crop, check_noise_model, check_upscale, readable_uint8
from .ema import ParameterEMA
from .losses import ProjectionHead, augment_clean, bpp, guidance_l1, nt_xent
from .threads import NAME as THREADS_FILE
from .threads import ThreadsFile


@dataclass
class TrainConfig:
    """Everything about a run except the architecture (that is ModelConfig)."""

    data: str = "../shared/data/train"
    val: str | None = None  # a folder; default: hold out ``val_count`` images of ``data``
    val_count: int = 4
    out: str = "runs/jcd"
    patch: int = 256
    batch: int = 8
    steps: int = 100_000
    lr: float = 1e-4
    aux_lr: float = 1e-3
    # Steps of linear lr warm-up from the run's first step (a fresh optimiser). A leg started from exported weights
    # at a small lr needs fewer; on a slow CPU 500 steps can be a whole session. --resume --warmup replaces it.
    warmup: int = 500
    decay_at: tuple[float, ...] = (0.8, 0.95)  # lr x0.1 at these fractions of ``steps``
    clip: float = 1.0
    lambda_g: float = 3.0
    lambda_c: float = 1.5
    guidance: bool = True
    # Compute the guidance targets (the shared encoder on the clean crop) without gradient, so the guidance
    # pulls only the noisy branch toward the clean features (teacher-student) instead of pulling both sides
    # together as the reference code does. An open question of the paper's recipe, decided by measurement
    # (docs/training.md).
    detach_guidance: bool = False
    contrastive: bool = True
    temperature: float = 0.1
    wide_noise: bool = False
    # Noise convention (noise.GAMMAS): "reference" reproduces the published benchmark, whose
    # gamma pair brightens images, so the model learns to darken; "srgb" is neutral for photos.
    gamma: str = "reference"
    # Clean crops in (no noise): stage one of the paper's recipe, a plain codec to start the joint model from.
    clean_input: bool = False
    # Noise model of the training crops (train/data.NOISE_MODELS): "readshot" (the benchmark's, in sRGB),
    # "camera" (unprocess, raw sensor noise, develop, sometimes JPEG) or "mix" (half the batches each).
    noise: str = "readshot"
    # Fraction of crops enlarged from a smaller region (train/data.PatchSampler): smooth, camera-like content.
    upscale: float = 0.0
    # Decay of the parameter moving average that validation reports beside the raw weights and export
    # ships (train/ema.py); 0 switches it off.
    ema: float = 0.999
    # With --init from weights without denoisers (stage two of the paper's recipe): the new denoisers' mask
    # gates start at sigmoid(gate_init) (Denoiser.open_gate), and their output scales at zero where the model
    # has them (ModelConfig.denoiser_scale); None leaves the constructor's initialisation.
    gate_init: float | None = None
    # bf16 autocast: None picks it where the hardware computes bf16 natively (CUDA, CPUs with AVX512-BF16 or
    # AMX) and fp32 elsewhere, where bf16 is emulated and slower than fp32 (benchmarks/train_speed.py).
    bf16: bool | None = None
    threads: int = 0  # 0: leave torch's default; -1: auto (threads.py), starting at one
    seed: int = 0
    ckpt_every: int = 1000
    val_every: int = 2000
    log_every: int = 50
    max_images: int = 0  # 0: all
    init: str | None = None  # exported weights to start from
    # The training record of ``init`` (filled in when the run starts), so that exports of a run
    # continued from shipped weights report the whole history, not just this run's steps.
    init_steps: int = 0
    init_seconds: float = 0.0
    init_history: str = ""

    def __post_init__(self) -> None:
        if self.patch < 64 or self.patch % 64:
            raise JcdError(f"patch size must be a multiple of 64 (the model's down-sampling), got {self.patch}")
        if self.ema and not 0.0 < self.ema < 1.0:
            raise JcdError(f"EMA decay must lie in (0, 1) (0 switches it off), got {self.ema}")
        check_noise_model(self.noise)
        check_upscale(self.upscale)
        if self.warmup < 0:
            raise JcdError(f"warm-up must be 0 steps or more, got {self.warmup}")
        if self.gamma not in GAMMAS:
            raise JcdError(f"gamma must be one of {', '.join(GAMMAS)}, got {self.gamma!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class TrainingModule(nn.Module):
    """Model + projection head; forward returns every loss term of one batch.

    ``head`` (default: whether the contrastive branch is on) keeps the projection head of a run that was resumed
    with the branch switched off, so that its optimiser state still lines up; the head then rests."""

    def __init__(self, model: JointModel, tcfg: TrainConfig, head: bool | None = None) -> None:
        super().__init__()
        self.model = model
        self.tcfg = tcfg
        self.head = ProjectionHead(model.config.N) if (tcfg.contrastive if head is None else head) else None

    def forward(self, noisy: Tensor, clean: Tensor, aug: Tensor | None, quality: int) -> dict[str, Tensor]:
        t = self.tcfg
        m = self.model
        out = m(noisy, quality)
        b, _, h, w = noisy.shape
        terms: dict[str, Tensor] = {}
        terms["bpp_y"] = bpp(out["y_lik"], b * h * w)
        terms["bpp_z"] = bpp(out["z_lik"], b * h * w)
        terms["mse"] = torch.mean((out["x_hat"].float() - clean) ** 2)
        loss = terms["bpp_y"] + terms["bpp_z"] + m.lmbda(quality) * 255**2 * terms["mse"]
        if t.guidance and m.d0 is not None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not t.detach_guidance):
                y0_gt, y1_gt = m.analysis_clean(clean)
            terms["guidance"] = guidance_l1([(out["y0"], y0_gt), (out["y1"], y1_gt)])
            loss = loss + t.lambda_g * terms["guidance"]
        if t.contrastive and self.head is not None and aug is not None:
            terms["contrastive"] = nt_xent(self.head(out["y0"]), self.head(m.g_a0(aug)), t.temperature)
            loss = loss + t.lambda_c * terms["contrastive"]
        terms["loss"] = loss
        return terms


def _psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class Trainer:
    #: What a resumed run always takes from the new TrainConfig rather than from its checkpoint: where it writes
    #: and what the machine it resumes on offers (threads; bf16 or fp32, which the hardware decides unless asked).
    RESUME_OVERRIDES = frozenset({"threads", "out", "bf16"})
    #: What it takes from the new TrainConfig only when named in ``also_override`` (what the user asked for): the
    #: run's length and rhythm, its crops and batches, the contrastive switch. Without asking, a resumed run keeps
    #: its own: a default of the command line must not move a run's learning-rate decay (``decay_at`` x ``steps``).
    MAY_OVERRIDE = frozenset({"steps", "ckpt_every", "val_every", "log_every", "patch", "batch", "contrastive",
                              "warmup"})

    def __init__(
        self,
        mcfg: ModelConfig,
        tcfg: TrainConfig,
        resume: Path | None = None,
        new_lr: float | None = None,
        also_override: frozenset[str] = frozenset(),
    ) -> None:
        """``new_lr`` (with ``resume``) replaces the run's base learning rate from the resumed step on;
        ``also_override`` names further fields of ``MAY_OVERRIDE`` to take from ``tcfg`` on resume: ``steps``
        and how often to checkpoint, validate and log; ``patch`` and ``batch`` (a run begun on a CPU continues on
        a GPU), ``warmup`` (shortened when a leg from exported weights began with a fresh optimiser) and
        ``contrastive`` (switched off when measurement says the branch does not pay: the run goes on without
        losing its steps)."""
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if tcfg.threads:
            torch.set_num_threads(max(tcfg.threads, 1))
        self.device = torch.device(f"cuda:{self.rank % torch.cuda.device_count()}") if torch.cuda.is_available() \
            else torch.device("cpu")  # fmt: skip
        ckpt = None
        head = None  # whether the projection head exists: the contrastive switch, or what a resumed run holds
        if resume is not None:
            ckpt = load_checkpoint(resume)
            mcfg = ModelConfig.from_json(ckpt["model_config"])
            saved = ckpt["train_config"]
            saved["decay_at"] = tuple(saved["decay_at"])
            # The run's identity comes from the checkpoint; from tcfg only the machine's settings and what was asked.
            keep = self.RESUME_OVERRIDES | (also_override & self.MAY_OVERRIDE)
            tcfg = dataclasses.replace(TrainConfig(**saved), **{k: getattr(tcfg, k) for k in keep})
            head = any(k.startswith("head.") for k in ckpt["module"])
            if tcfg.contrastive and not head:
                raise JcdError("--contrastive: this run trained without the contrastive branch, and its projection "
                               "head cannot join on resume; start a run with --init instead")
            if new_lr is not None:
                tcfg = dataclasses.replace(tcfg, lr=new_lr)
        self.mcfg, self.tcfg = mcfg, tcfg
        self.out = Path(tcfg.out)
        torch.manual_seed(tcfg.seed)
        model = JointModel(mcfg)
        if tcfg.init and ckpt is None:
            from ..weights import load_model_file

            init_model, meta = load_model_file(Path(tcfg.init))
            tcfg = _with_init_record(tcfg, meta)
            self.tcfg = tcfg
            missing = model.load_state_dict(_learned(init_model.state_dict(), model), strict=False)
            if missing.unexpected_keys:
                raise JcdError(f"--init weights do not fit this config: {missing.unexpected_keys[:3]}")
            if tcfg.gate_init is not None and init_model.d0 is None:
                for d in (model.d0, model.d1):
                    if d is not None:
                        d.open_gate(tcfg.gate_init)
                        if d.scale is not None:
                            d.start_silent()
        self.module = TrainingModule(model, tcfg, head=head).to(self.device)
        # Resolved per process, not stored: a run begun on one machine may resume on another.
        self.bf16 = native_bf16(self.device) if tcfg.bf16 is None else tcfg.bf16
        if self.bf16:  # bf16 convolutions are fastest in channels_last, on CPUs and on GPUs
            self.module.to(memory_format=torch.channels_last)
        aux_names = {n for n, _ in self.module.named_parameters() if n.endswith(".quantiles")}
        main = [p for n, p in self.module.named_parameters() if n not in aux_names]
        aux = [p for n, p in self.module.named_parameters() if n in aux_names]
        self.opt = torch.optim.Adam(main, lr=tcfg.lr)
        self.aux_opt = torch.optim.Adam(aux, lr=tcfg.aux_lr)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.step = 0
        self.skipped = 0  # updates dropped for non-finite gradients
        self.elapsed = 0.0
        self.gen = torch.Generator().manual_seed(tcfg.seed * 1000 + self.rank)
        if ckpt is not None:
            self._load(ckpt)
            if new_lr is not None:
                self.sched.base_lrs = [new_lr]
                for g in self.opt.param_groups:
                    g["initial_lr"] = new_lr
            # The lr of the next step from the schedule as it stands now (a new lr, warm-up or length), not the
            # one saved; for an unchanged schedule the two are the same number.
            for g, base in zip(self.opt.param_groups, self.sched.base_lrs, strict=True):
                g["lr"] = base * self._lr_factor(self.step)
        # Built after the weights are in place: a run from --init (or a checkpoint written before the
        # average existed) starts its average at the weights it starts from.
        self.ema = ParameterEMA(self.module.model, tcfg.ema) if tcfg.ema else None
        if self.ema is not None and ckpt is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        self.ddp: nn.Module = self.module
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # A resting projection head (contrastive switched off on resume) gets no gradient: DDP must not wait.
            resting = {n for n, _ in self.module.named_parameters() if n.startswith("head.") and not tcfg.contrastive}
            nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                self.module, sorted(aux_names | resting)
            )
            self.ddp = DDP(self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.sampler: PatchSampler | None = None
        self.val_images: list[Tensor] = []

    # -- schedule ---------------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        f = min(1.0, (step + 1) / max(1, self.tcfg.warmup))
        for frac in self.tcfg.decay_at:
            if step >= frac * self.tcfg.steps:
                f *= 0.1
        return f

    # -- data -------------------------------------------------------------------------------
    def load_data(self, progress: bool = True) -> None:
        t = self.tcfg
        files = list_images(Path(t.data))
        if t.max_images:
            files = files[: t.max_images]
        if t.val:
            val_files = list_images(Path(t.val))[: t.val_count]
        else:
            if len(files) <= t.val_count:
                raise JcdError(f"{t.data}: need more than {t.val_count} images to hold some out for validation")
            val_files, files = files[: t.val_count], files[t.val_count :]
        images = []
        from rich.progress import track

        it = track(files, description="decoding training images", disable=not progress or self.rank != 0)
        for f in it:
            im = readable_uint8(f, t.patch)
            if im is not None:
                images.append(im)
        self.sampler = PatchSampler(images, t.patch, t.batch, t.wide_noise, t.gamma, t.clean_input, t.noise,
                                    t.upscale)
        self.val_images = [center_crop(im, 256) for im in map(readable_uint8, val_files) if im is not None]
        self.n_train = len(images)

    # -- one step ---------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        assert self.sampler is not None
        t = self.tcfg
        self.module.train()
        qualities = self.mcfg.qualities
        quality = qualities[int(torch.randint(len(qualities), (1,), generator=self.gen))]
        b = self.sampler.sample(self.gen, self.device)
        # Drawn even without the contrastive branch, so that runs differing only in that switch see the same
        # batches at every step (scripts/compare_runs.py pairs them).
        aug = augment_clean(b.clean, self.gen)
        aug = aug if t.contrastive else None
        fmt = torch.channels_last if self.bf16 else torch.contiguous_format
        noisy = b.noisy.contiguous(memory_format=fmt)
        clean = b.clean.contiguous(memory_format=fmt)
        aug = None if aug is None else aug.contiguous(memory_format=fmt)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            terms = self.ddp(noisy, clean, aug, quality)
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        # Every rank sees the same all-reduced gradients, so every rank makes the same choice here.
        norm = nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], t.clip or math.inf)
        skipped = not bool(torch.isfinite(norm))
        if skipped:  # one non-finite batch must not poison the weights: drop its update
            self.opt.zero_grad(set_to_none=True)
            self.skipped += 1
        else:
            self.opt.step()
            if self.ema is not None:
                self.ema.update(self.module.model)
        self.sched.step()
        aux = self.module.model.aux_loss()
        self.aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        if self.distributed:
            for p in self.aux_opt.param_groups[0]["params"]:
                dist.all_reduce(p.grad)
                p.grad /= self.world
        if all(bool(torch.isfinite(p.grad).all()) for p in self.aux_opt.param_groups[0]["params"]):
            self.aux_opt.step()
        self.step += 1
        rec = {k: float(v.detach()) for k, v in terms.items()}
        rec["grad_norm"] = float(norm)
        rec["skipped"] = self.skipped
        rec["aux"] = float(aux.detach())
        rec["quality"] = quality
        rec["bpp"] = rec["bpp_y"] + rec["bpp_z"]
        for name in ("d0", "d1"):
            d = getattr(self.module.model, name)
            for k, v in (getattr(d, "stats", None) or {}).items():
                rec[f"{name}_{k}"] = v
        rec["psnr"] = _psnr(rec["mse"])
        return rec

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        return {
            "model_config": self.mcfg.to_json(),
            "train_config": self.tcfg.to_dict(),
            "module": self.module.state_dict(),
            "opt": self.opt.state_dict(),
            "aux_opt": self.aux_opt.state_dict(),
            "sched": self.sched.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "skipped": self.skipped,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_data": self.gen.get_state(),
        }

    def save_checkpoint(self, path: Path | None = None) -> Path:
        """Atomically (outputs.atomic_target): a kill or a full disk leaves the previous checkpoint whole."""
        path = path or self.out / "last.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.checkpoint_state()
        try:
            with atomic_target(path) as tmp:
                torch.save(state, tmp)
        except RuntimeError as e:  # torch's zip writer reports a full disk this way
            raise JcdError(f"{path}: cannot write the checkpoint ({_first_line(e)})") from None
        return path

    def _load(self, ckpt: dict) -> None:
        state = ckpt["module"]
        # Table buffers may be empty or sized; the trainer never needs them.
        state = _learned(state, self.module)
        self.module.load_state_dict(state, strict=False)
        self.opt.load_state_dict(ckpt["opt"])
        self.aux_opt.load_state_dict(ckpt["aux_opt"])
        self.sched.load_state_dict(ckpt["sched"])
        self.step = int(ckpt["step"])
        self.elapsed = float(ckpt.get("elapsed", 0.0))
        self.skipped = int(ckpt.get("skipped", 0))
        torch.set_rng_state(ckpt["rng_torch"])
        self.gen.set_state(ckpt["rng_data"])

    # -- validation: real bitstreams --------------------------------------------------------------
    def validate(self, levels: tuple[int, ...] | None = None, ema: bool = False) -> dict[str, float]:
        """PSNR/bpp of real bitstreams on the held-out crops at the lowest and highest quality.

        ``levels`` are noise levels (0: the clean crop; default: 0 for a clean-input run, else 1 and 4);
        ``ema`` validates the moving average instead of the raw weights.
        """
        from ..codec import Codec
        from ..imageio import Picture
        from ..noise import add_level_noise
        from ..weights import LoadedWeights

        if levels is None:
            levels = (0,) if self.tcfg.clean_input else (1, 4)
        model = JointModel(self.mcfg)
        state = self.ema.averaged_state() if ema and self.ema is not None else self.module.model.state_dict()
        model.load_state_dict(_learned(state, model), strict=False)
        model.update_tables()
        model.eval()
        codec = Codec(LoadedWeights(model, Path("<training>"), "0" * 64, "training", True), device="cpu")
        qs = sorted({self.mcfg.qualities[0], self.mcfg.qualities[-1]})
        res: dict[str, float] = {}
        for level in levels:
            for q in qs:
                bits = pix = 0
                psnrs = []
                for k, im in enumerate(self.val_images):
                    clean = im.float() / 255.0
                    noisy = add_level_noise(clean, level, seed=k, gamma=self.tcfg.gamma) if level else clean
                    enc = codec.encode(Picture.from_array(noisy.permute(1, 2, 0).numpy()), q)
                    dec = codec.decode(enc.data)
                    out = np.round(dec.picture.rgb * 255) / 255
                    mse = float(np.mean((out - clean.permute(1, 2, 0).numpy()) ** 2))
                    psnrs.append(_psnr(mse))
                    bits += len(enc.data) * 8
                    pix += clean.shape[1] * clean.shape[2]
                res[f"L{level}q{q}_bpp"] = bits / pix
                res[f"L{level}q{q}_psnr"] = float(np.mean(psnrs))
        return res

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, progress: bool = True, heartbeat: float = 0.0) -> None:
        """Train to ``tcfg.steps``. ``heartbeat`` > 0: print a progress line that often (seconds) without a bar.

        Ctrl-C or SIGTERM finishes the step under way, saves the checkpoint and raises KeyboardInterrupt;
        a second one stops at once (the previous checkpoint stays whole).
        """
        if self.sampler is None:
            self.load_data(progress)
        t = self.tcfg
        main = self.rank == 0
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.out / "config.json", json.dumps(
                {"model": json.loads(self.mcfg.to_json()), "train": t.to_dict()}, indent=2).encode())  # fmt: skip
            _truncate_log(self.out / "log.jsonl", self.step)
        log = open(self.out / "log.jsonl", "a") if main else None
        # polled by the main process only
        threads = ThreadsFile(self.out / THREADS_FILE, write=main, auto=t.threads == -1)
        with _StopOnSignal() as stop:
            try:
                self._loop(progress, heartbeat, log, stop, threads)
            finally:
                if log:
                    log.close()
        if stop.requested:
            raise KeyboardInterrupt

    def _loop(self, progress: bool, heartbeat: float, log, stop: _StopOnSignal,  # noqa: ANN001
              threads: ThreadsFile) -> None:  # fmt: skip
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        t = self.tcfg
        main = self.rank == 0
        cols = [TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn()]  # fmt: skip
        avg: dict[str, float] = {}
        last = time.perf_counter()
        t_rate = time.perf_counter()
        s_rate = self.step
        beat = time.perf_counter()
        with Progress(*cols, disable=not progress or not main, transient=False) as bar:
            task = bar.add_task("train", total=t.steps, completed=self.step, rate="", info="")
            while self.step < t.steps and not stop.requested:
                if main and (said := threads.poll()):
                    bar.console.print(f"train: step {self.step + 1}: {said}", markup=False, highlight=False,
                                      soft_wrap=True)  # fmt: skip
                skipped_before = self.skipped
                rec = self.train_step()
                now = time.perf_counter()
                self.elapsed += now - last
                last = now
                for k, v in rec.items():
                    if isinstance(v, float) and math.isfinite(v):
                        avg[k] = 0.98 * avg.get(k, v) + 0.02 * v
                if main and self.step % 10 == 0:
                    sps = (self.step - s_rate) / max(now - t_rate, 1e-9)
                    info = (f"loss {avg['loss']:.3f} bpp {avg['bpp']:.3f} psnr {avg['psnr']:.2f} "
                            + (f"G {avg['guidance']:.3f} " if "guidance" in avg else "")
                            + (f"CL {avg['contrastive']:.3f} " if "contrastive" in avg else "")
                            + (f"gate {avg['d1_gate']:.2f} " if "d1_gate" in avg else "")
                            + f"aux {avg['aux']:.0f}"
                            + (f" skipped {self.skipped}" if self.skipped else ""))  # fmt: skip
                    bar.update(task, completed=self.step, rate=f"{sps:.2f} it/s", info=info)
                    if heartbeat and now - beat >= heartbeat:
                        beat = now
                        print(f"train: step {self.step}/{t.steps}, {1 / max(sps, 1e-9):.2f} s/step, {info}",
                              file=sys.stderr, flush=True)  # fmt: skip
                if log and (self.step % t.log_every == 0 or rec["skipped"] > skipped_before):
                    log.write(json.dumps({"step": self.step, "time": round(self.elapsed, 1),
                                          "lr": self.sched.get_last_lr()[0], "threads": torch.get_num_threads(),
                                          **rec}) + "\n")  # fmt: skip
                    log.flush()
                if main and self.step % t.ckpt_every == 0:
                    self.save_checkpoint()
                if main and t.val_every and self.step % t.val_every == 0:
                    row = {"step": self.step, "time": round(self.elapsed, 1), "val": self.validate()}
                    if self.ema is not None:
                        row["val_ema"] = self.validate(ema=True)
                    if log:
                        log.write(json.dumps(row) + "\n")
                        log.flush()
                    for key in ("val", "val_ema"):
                        if key in row:
                            bar.console.print(f"step {self.step} {key}: "
                                              + " ".join(f"{k}={x:.3f}" for k, x in row[key].items()))
                    last = time.perf_counter()
        if main:
            path = self.save_checkpoint()
            if stop.requested:
                print(f"train: stopped at step {self.step}; checkpoint saved to {path} (continue with --resume)",
                      file=sys.stderr, flush=True)  # fmt: skip


class _StopOnSignal:
    """Turn the first SIGINT/SIGTERM into a request to stop after the current step; the second one interrupts."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop the log lines after ``step`` (a resumed run redoes those steps) and any line a kill cut short."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and int(row.get("step", 0)) <= step:
            kept.append(line)
    atomic_write_bytes(log_path, "".join(k + "\n" for k in kept).encode())


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint, loaded without executing anything it holds; a one-line JcdError when it is not one."""
    import pickle
    import zipfile

    if not Path(path).is_file():
        raise JcdError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        from ..formats import describe

        if (what := describe(Path(path))) and "ZIP" not in what:  # an image passed by mistake: say so
            raise JcdError(f"{path}: not a jcd checkpoint: {what}") from None
        raise JcdError(f"{path}: not a jcd checkpoint (it holds Python objects besides tensors; jcd never loads "
                       "those)") from None  # fmt: skip
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise JcdError(f"{path}: damaged or truncated checkpoint ({_first_line(e)})") from None
    if not isinstance(ckpt, dict) or not {"model_config", "train_config", "module", "step"} <= set(ckpt):
        raise JcdError(f"{path}: not a jcd checkpoint (missing its model, config or step)")
    return ckpt


def _with_init_record(tcfg: TrainConfig, meta: dict[str, str]) -> TrainConfig:
    """Copy the training record of the ``--init`` weights (manifest entry, else file metadata) into the run."""
    from ..manifest import read_manifest, sha256_file

    digest = sha256_file(Path(tcfg.init))
    entry = next((e for e in read_manifest(Path(tcfg.init).parent).get("models", {}).values()
                  if e.get("sha256") == digest), {})  # fmt: skip
    steps = int(entry.get("steps", meta.get("steps", 0)))
    seconds = float(entry.get("train_seconds", meta.get("train_seconds", 0.0)))
    history = str(entry.get("history", meta.get("history", "")))
    return dataclasses.replace(tcfg, init_steps=steps, init_seconds=seconds, init_history=history)


def _learned(state: dict, into: nn.Module) -> dict:
    """Only the learned tensors (parameters of ``into``) of a state dict.

    Buffers are constants or derived: entropy tables (rebuilt at export), masks, and the lower bounds
    of CompressAI's entropy models and GDNs. They always come from the constructor: fp16 weights
    files round the 1e-9 likelihood bound to 0, and training without it reaches log(0) (inf rate).
    """
    names = {n for n, _ in into.named_parameters()}
    return {k: v for k, v in state.items() if k in names}


def _training_rows(log_path: Path, up_to: int | None = None) -> dict[int, dict]:
    """The logged training steps of a run by step (a resumed run re-logs steps: the later line wins), those after
    ``up_to`` left out: a run goes on logging past the checkpoint an export is made from."""
    rows: dict[int, dict] = {}
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
        if isinstance(row, dict) and "step" in row and "val" not in row and (up_to is None or row["step"] <= up_to):
            rows[int(row["step"])] = row
    return rows


def contrastive_until(log_path: Path, up_to: int | None = None) -> int | None:
    """The last logged step that trained the contrastive branch (None if none did or there is no log).

    Why: a run may switch the branch off on resume (``--no-contrastive``); its config then says off, and
    only the log tells how far the shipped weights were trained with it."""
    if not log_path.is_file():
        return None
    return max((step for step, row in _training_rows(log_path, up_to).items() if "contrastive" in row), default=None)


def lr_schedule(log_path: Path, warmup: int, up_to: int | None = None) -> str | None:
    """The learning rates a run actually used, read back from its log.jsonl (None without a log).

    Why: a run's config holds one ``lr``, but resumes may change it (``--lr``) and the scheduler
    decays it, so the config alone misreports the schedule behind shipped weights. Logged steps
    are every ``log_every``, so the switch points are exact to that granularity; a resumed run
    re-logs the steps after its last checkpoint and the later line wins.
    """
    if not log_path.is_file():
        return None
    lrs = {step: float(row["lr"]) for step, row in _training_rows(log_path, up_to).items() if "lr" in row}
    starts: list[tuple[float, int]] = []  # (lr, first logged step with it)
    for step in sorted(s for s in lrs if s > warmup):
        lr = float(f"{lrs[step]:.3g}")
        if not starts or starts[-1][0] != lr:
            starts.append((lr, step))
    if not starts:
        return None
    ends = [step for _, step in starts[1:]] + [max(lrs)]
    text = ", ".join(f"lr {lr:g} to step {end}" for (lr, _), end in zip(starts, ends, strict=True))
    return text + (f" (after a {warmup}-step warm-up)" if min(lrs) <= warmup else "")


def export_checkpoint(
    ckpt_path: Path, out: Path, name: str | None = None, data_note: str = "", ema: bool = True,
    synthesis: bool = True,
) -> tuple[str, dict]:
    """Checkpoint -> inference weights (fp16 safetensors, tables, config); returns (sha256, record).

    With ``ema`` (the default) the parameter moving average is shipped when the run kept one.
    """
    from ..weights import save_weights

    ckpt = load_checkpoint(ckpt_path)
    mcfg = ModelConfig.from_json(ckpt["model_config"])
    model = JointModel(mcfg)
    state = {k[len("model."):]: v for k, v in ckpt["module"].items() if k.startswith("model.")}
    averaged = ema and bool(ckpt.get("ema"))
    if averaged:
        state.update(ckpt["ema"]["shadow"])
    model.load_state_dict(_learned(state, model), strict=False)
    name = name or out.stem
    tc = ckpt["train_config"]
    record = {
        "name": name,
        "trained": True,
        "steps": int(tc.get("init_steps", 0)) + int(ckpt["step"]),
        "train_seconds": round(float(tc.get("init_seconds", 0.0)) + float(ckpt.get("elapsed", 0.0))),
        "skipped_updates": int(ckpt.get("skipped", 0)),  # of this run: steps dropped for non-finite gradients
        "data": data_note or tc.get("data"),
        "patch": tc.get("patch"),
        "batch": tc.get("batch"),
        "ema": float(ckpt["ema"]["decay"]) if averaged else None,  # the parameter average's decay, if shipped
        "train_config": tc,
    }
    if tc.get("init"):
        log, step = ckpt_path.parent / "log.jsonl", int(ckpt["step"])  # the log up to the checkpoint's step
        schedule = lr_schedule(log, int(tc.get("warmup", 0)), step) or f"lr {tc.get('lr')}"
        record["history"] = (tc.get("init_history") or f"{tc.get('init_steps', 0)} steps before") + (
            f"; then {step} steps from those weights at {schedule}"
            + (f" on {tc['gamma']}-gamma noise" if tc.get("gamma", "reference") != "reference" else "")
            + {"camera": ", camera-like noise", "mix": ", half the batches camera-like noise"}.get(tc.get("noise"), "")
            + (f", {tc['upscale']:.0%} of the crops enlarged" if tc.get("upscale") else ""))
        until = None if tc.get("contrastive", True) else contrastive_until(log, step)
        if until is not None:
            record["history"] += f", with the contrastive branch to step {until} and without it after"
    digest = save_weights(model, out, _file_metadata(record), synthesis=synthesis)
    record["config"] = json.loads(mcfg.to_json())
    return digest, record


def _file_metadata(record: dict) -> dict[str, str]:
    """What the weights file carries of its record, so that a run started with --init from it, or an export of
    it on another machine (:func:`export_weights`), keeps the story."""
    meta = {"name": record["name"], "trained": "true" if record["trained"] else "false",
            "steps": str(record["steps"]), "train_seconds": str(record["train_seconds"])}  # fmt: skip
    if "history" in record:
        meta["history"] = record["history"]
    return meta


def export_weights(weights: Path, out: Path, name: str | None = None, data_note: str = "",
                   synthesis: bool = True) -> tuple[str, dict]:
    """Weights exported elsewhere -> inference weights here, with the record a checkpoint export gives.

    Why: a run on a borrowed GPU machine can bring back only its fp16 export (the checkpoint, with the
    optimiser, is several times larger). Steps, seconds and history come from the file's metadata; the
    training configuration from the run's ``config.json`` when it lies beside the file. The parameters are
    kept as they are (already fp16) and the entropy tables are rebuilt here, as every export does.
    """
    from ..weights import load_model_file, save_weights

    model, meta = load_model_file(Path(weights))
    run_config = Path(weights).parent / "config.json"
    tc = {}
    if run_config.is_file():
        try:
            tc = json.loads(run_config.read_text())["train"]
        except (ValueError, KeyError, TypeError):
            raise JcdError(f"{run_config}: not a run configuration (config.json of `jcd train`)") from None
    name = name or out.stem
    record = {
        "name": name,
        "trained": meta.get("trained") == "true",
        "steps": int(meta.get("steps", 0)),
        "train_seconds": round(float(meta.get("train_seconds", 0.0))),
        "data": data_note or tc.get("data"),
        "patch": tc.get("patch"),
        "batch": tc.get("batch"),
        "train_config": tc,
    }
    if "history" in meta:
        record["history"] = meta["history"]
    digest = save_weights(model, out, _file_metadata(record), synthesis=synthesis)
    record["config"] = json.loads(model.config.to_json())
    return digest, record


__all__ = ["TrainConfig", "Trainer", "TrainingModule", "export_checkpoint", "export_weights", "load_checkpoint",
           "lr_schedule"]
