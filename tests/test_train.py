"""Training: loss terms on hand-computed tensors, learning, exact resume, export, DDP."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from conftest import textured
from PIL import Image

from jcdcodec.nn.model import ModelConfig
from jcdcodec.train.loop import TrainConfig, Trainer, export_checkpoint
from jcdcodec.train.losses import augment_clean, bpp, guidance_l1, nt_xent


def test_bpp_of_known_likelihoods():
    lik = torch.full((1, 4, 2, 2), 0.5)  # 16 symbols of 1 bit
    assert float(bpp(lik, 8)) == pytest.approx(2.0)


def test_guidance_is_mean_l1_summed_over_scales():
    a, b = torch.zeros(2, 3), torch.tensor([[1.0, -1.0, 2.0], [0.0, 0.0, 2.0]])
    c, d = torch.ones(4), torch.zeros(4)
    assert float(guidance_l1([(a, b), (c, d)])) == pytest.approx(6 / 6 + 1.0)


def test_nt_xent_against_the_explicit_formula():
    torch.manual_seed(0)
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    tau = 0.5
    z = torch.cat([a, b])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = 6
    total = 0.0
    for k in range(n2):
        pos = (k + 3) % n2
        num = math.exp(float(z[k] @ z[pos]) / tau)
        den = sum(math.exp(float(z[k] @ z[j]) / tau) for j in range(n2) if j != k)
        total += -math.log(num / den)
    assert float(nt_xent(a, b, tau)) == pytest.approx(total / n2, rel=1e-5)
    # identical views score better than unrelated ones
    assert nt_xent(a, a, tau) < nt_xent(a, b, tau)


def test_augmented_view_is_a_different_but_related_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 64, 64)
    v = augment_clean(x, g)
    assert v.shape == (4, 3, 48, 48) and v.min() >= 0 and v.max() <= 1


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for i in range(8):
        Image.fromarray((textured(80, 96, seed=i) * 255).astype(np.uint8)).save(d / f"im{i}.png")
    return d


def tiny_run(image_dir, out, steps, **kw):
    mc = ModelConfig(N=16, **kw.pop("model", {}))
    tc = TrainConfig(data=str(image_dir), out=str(out), patch=64, batch=2, steps=steps, val_count=2, val_every=0,
                     ckpt_every=10_000, lr=kw.pop("lr", 1e-4), warmup=kw.pop("warmup", 1), threads=1, **kw)  # fmt: skip
    return mc, tc


def started(mc, tc, steps: int = 0, **kw) -> Trainer:
    """A Trainer with its data loaded, after ``steps`` training steps."""
    tr = Trainer(mc, tc, **kw)
    tr.load_data(progress=False)
    for _ in range(steps):
        tr.train_step()
    return tr


def test_srgb_training_noise_keeps_brightness_the_reference_gamma_raises():
    from jcdcodec.errors import JcdError
    from jcdcodec.train.data import PatchSampler

    im = torch.from_numpy((textured(160, 160) * 255).round().astype(np.uint8)).permute(2, 0, 1).contiguous()
    shifts = {}
    for gamma in ("reference", "srgb"):
        b = PatchSampler([im], 128, 16, gamma=gamma).sample(torch.Generator().manual_seed(0))
        shifts[gamma] = float((b.noisy - b.clean).mean())
    # Same crops and noise draws; only the convention differs. The reference gamma pair brightens
    # mid-tones by ~0.02 even without noise, sRGB is a true inverse (only clamping shifts the mean).
    assert shifts["reference"] > shifts["srgb"] + 0.01
    assert abs(shifts["srgb"]) < 0.01
    with pytest.raises(JcdError, match="gamma"):
        TrainConfig(gamma="linear")


def test_a_few_steps_reduce_the_loss(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "r", 60, lr=1e-3, model={"qualities": (3,)})
    tr = Trainer(mc, tc)
    tr.load_data(progress=False)
    g = torch.Generator().manual_seed(123)
    fixed = tr.sampler.sample(g)

    def eval_loss():
        tr.module.eval()
        with torch.no_grad():
            torch.manual_seed(0)
            return float(tr.module(fixed.noisy, fixed.clean, None, 3)["loss"])

    before = eval_loss()
    for _ in range(60):
        rec = tr.train_step()
    assert set(rec) >= {"bpp_y", "bpp_z", "mse", "guidance", "contrastive", "loss", "aux"}
    assert eval_loss() < 0.7 * before


@pytest.mark.parametrize("detach", [False, True])
def test_detached_guidance_targets_carry_no_gradient(detach):
    """--detach-guidance: the clean branch is a fixed target (teacher); the reference code's default moves it."""
    from jcdcodec.nn.model import JointModel
    from jcdcodec.train.loop import TrainingModule

    torch.manual_seed(0)
    tc = TrainConfig(detach_guidance=detach, contrastive=False, bf16=False)
    module = TrainingModule(JointModel(ModelConfig(N=16, qualities=(3,))), tc)
    noisy = torch.rand(1, 3, 64, 64)
    clean = noisy.clone().requires_grad_()
    terms = module(noisy, clean, None, 3)
    (grad,) = torch.autograd.grad(terms["guidance"], clean, allow_unused=True)
    moved = grad is not None and float(grad.abs().sum()) > 0
    assert moved is not detach
    # the guidance still trains the noisy branch's denoiser either way
    first = next(module.model.d0.parameters())
    terms = module(noisy, clean, None, 3)
    (g_d0,) = torch.autograd.grad(terms["guidance"], first)
    assert float(g_d0.abs().sum()) > 0


def test_the_contrastive_switch_leaves_the_batches_alone(image_dir, tmp_path):
    """Runs that differ only in --no-contrastive draw the same crops, noise and quality at every step, so
    scripts/compare_runs.py can pair their steps."""
    with_cl = started(*tiny_run(image_dir, tmp_path / "a", 2), 2)
    without = started(*tiny_run(image_dir, tmp_path / "b", 2, contrastive=False), 2)
    assert torch.equal(with_cl.gen.get_state(), without.gen.get_state())


def test_resume_reproduces_the_uninterrupted_run(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "a", 6)
    straight = started(mc, tc, 6)
    mc, tc = tiny_run(image_dir, tmp_path / "b", 6)
    ckpt = started(mc, tc, 3).save_checkpoint()
    resumed = started(mc, tc, resume=ckpt)
    assert resumed.step == 3
    for _ in range(3):
        resumed.train_step()
    a, b = straight.module.state_dict(), resumed.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"


def test_a_resumed_run_can_switch_the_contrastive_branch_off(image_dir, tmp_path):
    """--no-contrastive with --resume: the run goes on without the branch (no contrastive term, the head's
    weights untouched) and its checkpoint resumes again; the branch can come back, but not to a run that never
    had its projection head."""
    from jcdcodec.errors import JcdError

    mc, tc = tiny_run(image_dir, tmp_path / "cl", 6)
    ckpt = started(mc, tc, 1).save_checkpoint()
    off = dataclasses.replace(tc, contrastive=False)
    resumed = started(mc, off, resume=ckpt, also_override=frozenset({"contrastive"}))
    assert resumed.tcfg.contrastive is False and resumed.module.head is not None
    head = {k: v.clone() for k, v in resumed.module.head.state_dict().items()}
    model = {k: v.clone() for k, v in resumed.module.model.state_dict().items()}
    terms = resumed.train_step()
    assert "contrastive" not in terms
    assert all(torch.equal(head[k], v) for k, v in resumed.module.head.state_dict().items())
    assert any(not torch.equal(model[k], v) for k, v in resumed.module.model.state_dict().items())
    again = started(mc, off, resume=resumed.save_checkpoint())
    assert again.tcfg.contrastive is False and again.step == 2
    again.train_step()
    back = started(mc, tc, resume=again.save_checkpoint(), also_override=frozenset({"contrastive"}))
    assert "contrastive" in back.train_step()  # the rested head takes up the branch again
    mc, tc = tiny_run(image_dir, tmp_path / "never", 2, contrastive=False)
    with pytest.raises(JcdError, match="contrastive"):
        Trainer(mc, dataclasses.replace(tc, contrastive=True), resume=started(mc, tc, 1).save_checkpoint(),
                also_override=frozenset({"contrastive"}))


@pytest.mark.parametrize("ema", [0.999, 0.0])
def test_resume_with_a_new_learning_rate(image_dir, tmp_path, ema):
    mc, tc = tiny_run(image_dir, tmp_path / "lr", 4, ema=ema)
    ckpt = started(mc, tc, 1).save_checkpoint()
    resumed = Trainer(mc, tc, resume=ckpt, new_lr=3e-5)
    assert resumed.tcfg.lr == 3e-5 and resumed.opt.param_groups[0]["lr"] == pytest.approx(3e-5)
    resumed.load_data(progress=False)
    resumed.train_step()
    assert resumed.sched.get_last_lr()[0] == pytest.approx(3e-5)


def test_resume_with_a_shorter_warm_up_trains_at_the_full_rate_from_its_next_step(image_dir, tmp_path):
    """A leg begun from exported weights with a fresh optimiser warms up over 500 steps; on a slow CPU that is a
    whole session, so a resume may shorten it. The next step runs at the rate of the new schedule, not the saved one."""
    from jcdcodec.errors import JcdError

    mc, tc = tiny_run(image_dir, tmp_path / "warm", 20, warmup=10)
    ckpt = started(mc, tc, 2).save_checkpoint()
    kept = Trainer(mc, dataclasses.replace(tc, warmup=0), resume=ckpt)  # not asked: the run's own warm-up
    assert kept.tcfg.warmup == 10 and kept.opt.param_groups[0]["lr"] == pytest.approx(1e-4 * 3 / 10)
    short = Trainer(mc, dataclasses.replace(tc, warmup=0), resume=ckpt, also_override=frozenset({"warmup"}))
    assert short.tcfg.warmup == 0 and short.opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    short.load_data(progress=False)
    short.train_step()
    assert short.sched.get_last_lr()[0] == pytest.approx(1e-4)
    assert Trainer(mc, tc, resume=short.save_checkpoint()).tcfg.warmup == 0  # the checkpoint keeps it
    with pytest.raises(JcdError, match="warm-up"):
        dataclasses.replace(tc, warmup=-1)


def test_export_load_encode(image_dir, tmp_path):
    from jcdcodec import Codec, Picture

    mc, tc = tiny_run(image_dir, tmp_path / "e", 2)
    ckpt = started(mc, tc, 2).save_checkpoint()
    out = tmp_path / "m" / "w.safetensors"
    digest, record = export_checkpoint(ckpt, out)
    assert record["steps"] == 2 and len(digest) == 64
    from safetensors.torch import load_file

    tensors = load_file(str(out))
    assert not any(k.startswith("head") for k in tensors), "projection head must not be shipped"
    assert tensors["g_s.0.conv1.weight"].dtype == torch.float16
    codec = Codec(str(out), device="cpu")
    pic = Picture.from_array(textured(40, 40))
    dec = codec.decode(codec.encode(pic, 2).data)
    assert dec.picture.rgb.shape == (40, 40, 3)


def test_cli_export_writes_a_manifest_entry(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "c", 1)
    ckpt = started(mc, tc, 1).save_checkpoint()
    from conftest import run_jcd

    r = run_jcd("export", str(ckpt), "-o", str(tmp_path / "models" / "x.safetensors"), "--name", "x")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert m["default"] == "x" and m["models"]["x"]["steps"] == 1 and len(m["models"]["x"]["sha256"]) == 64
    # g_s for the decoder without PyTorch goes beside it, checksummed in the entry
    from jcdcodec.manifest import sha256_file

    companion = tmp_path / "models" / "x.synthesis.onnx"
    assert m["models"]["x"]["synthesis"] == {"file": companion.name, "sha256": sha256_file(companion)}
    r = run_jcd("export", str(ckpt), "-o", str(tmp_path / "models" / "x.safetensors"), "--name", "x", "--no-synthesis")
    assert r.returncode == 0, r.stderr
    assert not companion.exists()
    assert "synthesis" not in json.loads((tmp_path / "models" / "manifest.json").read_text())["models"]["x"]


def test_weights_trained_elsewhere_are_listed_with_their_record(image_dir, tmp_path):
    """A GPU machine sends back only the fp16 export and its run's config.json: export lists them here."""
    from conftest import run_jcd
    from safetensors.torch import load_file

    mc, tc = tiny_run(image_dir, tmp_path / "g", 2, gamma="srgb")
    tr = started(mc, tc, 2)
    sent = tmp_path / "sent" / "w.safetensors"
    export_checkpoint(tr.save_checkpoint(), sent, synthesis=False)
    (sent.parent / "config.json").write_text(json.dumps({"train": tc.to_dict()}))  # as `jcd train` writes it
    out = tmp_path / "models" / "x.safetensors"
    r = run_jcd("export", str(sent), "-o", str(out), "--name", "x")
    assert r.returncode == 0, r.stderr
    e = json.loads((tmp_path / "models" / "manifest.json").read_text())["models"]["x"]
    assert e["steps"] == 2 and e["train_config"]["gamma"] == "srgb" and e["batch"] == tc.batch
    assert (tmp_path / "models" / "x.synthesis.onnx").is_file() and "synthesis" in e
    a, b = load_file(str(sent)), load_file(str(out))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same weights and tables
    r = run_jcd("models", env={"JCD_MODELS": str(out.parent)})
    assert "photos" in r.stdout, r.stdout  # what they are for, from the training configuration
    r = run_jcd("export", str(sent), "-o", str(out), "--raw")
    assert r.returncode != 0 and "--raw" in r.stderr and "Traceback" not in r.stderr


def test_a_non_finite_batch_is_skipped_and_training_goes_on(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "nan", 4)
    tr = started(mc, tc, 1)  # one step first: MaskedConv2d zeroes its masked taps on its first forward
    before = {k: v.clone() for k, v in tr.module.state_dict().items()}
    good = tr.sampler.sample
    bad = good(torch.Generator().manual_seed(0))
    bad.noisy[0, 0, 0, 0] = float("nan")
    tr.sampler.sample = lambda g, device="cpu": bad
    rec = tr.train_step()
    assert rec["skipped"] == 1 and not math.isfinite(rec["grad_norm"])
    after = tr.module.state_dict()
    # MaskedConv2d re-zeroes its masked taps (which Adam moves) at every forward: compare it under the mask.
    key = "model.context_prediction.weight"
    before[key] = before[key] * tr.module.model.context_prediction.mask
    changed = [k for k in before if "quantiles" not in k and not torch.equal(before[k], after[k])]
    assert not changed, f"a NaN update landed in {changed[:5]}"
    tr.sampler.sample = good
    rec = tr.train_step()
    assert rec["skipped"] == 1 and math.isfinite(rec["loss"])
    assert all(torch.isfinite(v).all() for v in tr.module.state_dict().values() if v.is_floating_point())
    assert not torch.equal(before["model.g_s.0.conv1.weight"], tr.module.state_dict()["model.g_s.0.conv1.weight"])


def test_a_run_from_init_weights_reports_their_steps_too(image_dir, tmp_path):
    from conftest import run_jcd

    mc, tc = tiny_run(image_dir, tmp_path / "first", 2)
    ckpt = started(mc, tc, 2).save_checkpoint()
    weights = tmp_path / "models" / "w.safetensors"
    assert run_jcd("export", str(ckpt), "-o", str(weights), "--name", "w").returncode == 0
    mc, tc = tiny_run(image_dir, tmp_path / "second", 3, init=str(weights))
    tr = started(mc, tc, 3)
    assert tr.tcfg.init_steps == 2
    _, record = export_checkpoint(tr.save_checkpoint(), tmp_path / "w2.safetensors")
    assert record["steps"] == 5 and "then 3 steps from those weights" in record["history"]
    # A file outside any manifest carries its history in its metadata, so a third generation keeps it.
    mc, tc = tiny_run(image_dir, tmp_path / "third", 1, init=str(tmp_path / "w2.safetensors"))
    _, record = export_checkpoint(started(mc, tc, 1).save_checkpoint(), tmp_path / "w3.safetensors")
    assert record["steps"] == 6
    assert "then 3 steps from those weights" in record["history"] and record["history"].endswith(
        "then 1 steps from those weights at lr 0.0001")


def test_constant_buffers_survive_export_and_never_come_from_a_file(image_dir, tmp_path):
    """fp16 would round the 1e-9 likelihood floor to 0 (then a zero likelihood costs infinite bits)."""
    from safetensors.torch import load_file, save_file

    mc, tc = tiny_run(image_dir, tmp_path / "b", 1)
    ckpt = started(mc, tc, 1).save_checkpoint()
    weights = tmp_path / "w.safetensors"
    export_checkpoint(ckpt, weights)
    key = "gaussian_conditional.likelihood_lower_bound.bound"
    tensors = load_file(str(weights))
    assert tensors[key].dtype == torch.float32 and float(tensors[key]) == pytest.approx(1e-9)
    assert tensors["g_s.0.conv1.weight"].dtype == torch.float16
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        meta = f.metadata()
    tensors[key] = torch.zeros_like(tensors[key])  # as older exports stored it
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=meta)
    _, tc = tiny_run(image_dir, tmp_path / "i", 1, init=str(old))
    tr = started(mc, tc)
    assert float(tr.module.model.gaussian_conditional.likelihood_lower_bound.bound) == pytest.approx(1e-9)
    assert float(tr.module.model.entropy_bottleneck.likelihood_lower_bound.bound) == pytest.approx(1e-9)


DDP_SCRIPT = """
import sys, torch, warnings
warnings.filterwarnings("ignore")
import torch.distributed as dist
from jcdcodec.nn.model import ModelConfig
from jcdcodec.train.loop import TrainConfig, Trainer
tc = TrainConfig(data=sys.argv[1], out=sys.argv[2], patch=64, batch=2, steps=3, val_count=2, val_every=0,
                 ckpt_every=100, lr=1e-3, warmup=1, threads=1)
tr = Trainer(ModelConfig(N=16), tc)
tr.load_data(progress=False)
for _ in range(3):
    tr.train_step()
torch.save(tr.module.state_dict(), f"{sys.argv[2]}/rank{tr.rank}.pt")
dist.destroy_process_group()
"""


def test_two_process_ddp_keeps_replicas_identical(image_dir, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
                        str(script), str(image_dir), str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    init = Trainer(ModelConfig(N=16), TrainConfig(data=str(image_dir), out=str(tmp_path / "x"))).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.g_s.0.conv1.weight"], init["model.g_s.0.conv1.weight"]), "no step was taken"


def test_jcd_train_nproc_runs_its_ranks_without_code_from_the_working_folder(image_dir, tmp_path):
    """`jcd train --nproc 2` in a folder that holds a `jcdcodec` and a `torch` of its own: neither is imported
    (by the launcher or by a rank), and the two ranks train the run."""
    marker = tmp_path / "ran"
    for name in ("jcdcodec", "torch"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\n")
    (tmp_path / "jcdcodec" / "train").mkdir()
    (tmp_path / "jcdcodec" / "train" / "__init__.py").write_text("")
    (tmp_path / "jcdcodec" / "train" / "__main__.py").write_text("")
    jcd = Path(sys.executable).with_name("jcd")  # the installed command, as a user types it
    env = dict(os.environ, PET_MASTER_PORT="29518", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    r = subprocess.run([str(jcd), "train", "--nproc", "2", "--data", str(image_dir), "--out", "run", "-N", "16",
                        "--steps", "2", "--patch", "64", "--batch", "2", "--val-count", "2", "--val-every", "0",
                        "--threads", "1", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert not marker.exists(), marker.read_text()
    assert (tmp_path / "run" / "last.ckpt").is_file()


def test_the_exported_history_reports_the_learning_rates_the_run_used(tmp_path):
    from jcdcodec.train.loop import lr_schedule

    rows = [{"step": s, "lr": 1e-4 * min(1.0, (s + 1) / 100)} for s in range(10, 100, 10)]
    rows += [{"step": s, "lr": 1e-4} for s in range(100, 310, 10)]
    rows += [{"step": 300, "val": {}}]
    rows += [{"step": s, "lr": 3e-4} for s in range(260, 400, 10)]  # resumed from step 250 with --lr 3e-4
    rows += [{"step": s, "lr": 3e-5} for s in range(400, 460, 10)]  # the scheduler's decay
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 46')  # cut short by a kill
    assert lr_schedule(log, 100) == "lr 0.0001 to step 260, lr 0.0003 to step 400, lr 3e-05 to step 450 " \
        "(after a 100-step warm-up)"
    assert lr_schedule(tmp_path / "missing.jsonl", 100) is None
    # An export from the step-300 checkpoint of a run that logged on past it: its history ends there.
    assert lr_schedule(log, 100, up_to=300) == "lr 0.0001 to step 260, lr 0.0003 to step 300 (after a 100-step " \
        "warm-up)"


def test_the_exported_history_says_how_far_the_contrastive_branch_trained(image_dir, tmp_path):
    from jcdcodec.train.loop import contrastive_until

    mc, tc = tiny_run(image_dir, tmp_path / "h", 2, contrastive=False)
    ckpt = started(mc, tc, 1).save_checkpoint()
    state = torch.load(ckpt, weights_only=False)  # the test's own file: pretend the run began from weights
    state["train_config"].update(init="init.safetensors", init_steps=100)
    state["step"] = 200  # and that it stopped where the log below ends
    torch.save(state, ckpt)
    rows = [{"step": s, "lr": 1e-4, "contrastive": 0.5} for s in (50, 100, 150)]
    rows += [{"step": 150, "lr": 1e-4}, {"step": 200, "lr": 1e-4}]  # resumed at 100 with --no-contrastive
    rows += [{"step": 200, "val": {"contrastive": 1}}]
    log = ckpt.parent / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert contrastive_until(log) == 100
    _, record = export_checkpoint(ckpt, tmp_path / "w.safetensors", synthesis=False)
    assert record["history"].endswith(", with the contrastive branch to step 100 and without it after")
    log.write_text(json.dumps({"step": 50, "lr": 1e-4}) + "\n")  # never had the branch
    assert contrastive_until(log) is None
    assert "contrastive" not in export_checkpoint(ckpt, tmp_path / "w.safetensors", synthesis=False)[1]["history"]


def test_parameter_ema_follows_the_formula_with_its_warm_up():
    from jcdcodec.train.ema import ParameterEMA

    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = ParameterEMA(lin, 0.9)
    expected = 1.0
    for value in (3.0, 5.0, 7.0, 7.0):
        with torch.no_grad():
            lin.weight.fill_(value)
        d = min(0.9, (1 + ema.updates) / (10 + ema.updates))
        ema.update(lin)
        expected = d * expected + (1 - d) * value
    assert float(ema.shadow["weight"][0, 0]) == pytest.approx(expected)
    assert expected < 7.0  # the average lags the weights
    with pytest.raises(ValueError):
        ParameterEMA(lin, 1.0)


def test_the_moving_average_resumes_exactly_and_is_what_export_ships(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "a", 6, ema=0.9)
    straight = started(mc, tc, 6)
    mc, tc = tiny_run(image_dir, tmp_path / "b", 6, ema=0.9)
    ckpt = started(mc, tc, 3).save_checkpoint()
    resumed = started(mc, tc, resume=ckpt)
    for _ in range(3):
        resumed.train_step()
    a, b = straight.ema.shadow, resumed.ema.shadow
    assert resumed.ema.updates == 6 and all(torch.equal(a[k], b[k]) for k in a)
    ckpt = resumed.save_checkpoint()
    from safetensors.torch import load_file

    key = "g_s.0.conv1.weight"
    _, record = export_checkpoint(ckpt, tmp_path / "ema.safetensors")
    assert record["ema"] == 0.9
    shipped = load_file(str(tmp_path / "ema.safetensors"))[key].float()
    assert torch.allclose(shipped, b[key], atol=1e-3)
    raw = resumed.module.model.state_dict()[key]
    assert not torch.allclose(b[key], raw, atol=1e-6), "after 6 steps the average must differ from the weights"
    _, record = export_checkpoint(ckpt, tmp_path / "raw.safetensors", ema=False)
    assert record["ema"] is None
    assert torch.allclose(load_file(str(tmp_path / "raw.safetensors"))[key].float(), raw, atol=1e-3)


def test_a_run_without_the_average_keeps_none(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "n", 1, ema=0.0)
    tr = started(mc, tc, 1)
    assert tr.ema is None
    _, record = export_checkpoint(tr.save_checkpoint(), tmp_path / "n.safetensors")
    assert record["ema"] is None


def test_clean_input_runs_feed_the_clean_crop_and_validate_without_noise(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "c", 1, clean_input=True, model={"denoise": False})
    tr = started(mc, tc)
    b = tr.sampler.sample(torch.Generator().manual_seed(0))
    assert torch.equal(b.noisy, b.clean)
    tr.train_step()
    v = tr.validate()
    assert set(v) == {"L0q1_bpp", "L0q1_psnr", "L0q6_bpp", "L0q6_psnr"}


def _train_cli(image_dir, out, *extra):
    return [sys.executable, "-m", "jcdcodec", "train", "--data", str(image_dir), "--out", str(out), "-N", "16",
            "--patch", "64", "--batch", "2", "--val-count", "2", "--val-every", "0", "--ckpt-every", "100000",
            "--threads", "1", "--steps", "100000", *extra]  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_that_resumes(image_dir, tmp_path, sig):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    p = subprocess.Popen(_train_cli(image_dir, out), stderr=subprocess.PIPE, text=True, env=env)
    log = out / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.is_file() and log.read_text().strip()):
        time.sleep(0.5)
    assert log.is_file(), "training never logged a step"
    p.send_signal(sig)
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert "checkpoint saved" in stderr and "Traceback" not in stderr
    from jcdcodec.train.loop import load_checkpoint

    step = load_checkpoint(out / "last.ckpt")["step"]
    assert step >= 50
    tr = Trainer(ModelConfig(N=16), TrainConfig(data=str(image_dir), out=str(out)), resume=out / "last.ckpt")
    assert tr.step == step


def test_a_running_run_takes_its_thread_count_from_its_threads_file(image_dir, tmp_path, capsys):
    """OUT/threads holds the count the run started with; a number written there applies from the next step (the
    log says which), anything else is said once and changes nothing."""
    before = torch.get_num_threads()
    mc, tc = tiny_run(image_dir, tmp_path / "t", 6, log_every=1)
    tr = started(mc, tc)
    step, writes = tr.train_step, {2: "2\n", 4: "two"}

    def stepping():
        if tr.step in writes:
            (tmp_path / "t" / "threads").write_text(writes[tr.step])
        return step()

    tr.train_step = stepping
    try:
        tr.run(progress=False)
        threads = [json.loads(line).get("threads") for line in (tmp_path / "t" / "log.jsonl").read_text().splitlines()]
        assert threads == [1, 1, 1, 2, 2, 2]  # written during step 3
        said = capsys.readouterr().out
        assert "train: step 4: 2 threads" in said and said.count("not a thread count") == 1
        assert (tmp_path / "t" / "threads").read_text() == "two"
        tr.train_step = step
        tr = Trainer(mc, dataclasses.replace(tc, steps=7), resume=tr.save_checkpoint())
        tr.run(progress=False)  # a resumed run starts at its --threads and says so in the file
        assert (tmp_path / "t" / "threads").read_text() == "1\n" and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_threads_follow_what_other_work_leaves_idle(tmp_path):
    """Under auto, each poll takes the cores that the machine's other processes left during the last step; the
    load itself is measured from /proc/stat less this process's own time."""
    from jcdcodec.train.threads import CpuLoad, ThreadsFile, threads_for

    assert [threads_for(2, x) for x in (0.0, 0.4, 0.6, 1.0, 1.7, 3.0)] == [2, 2, 1, 1, 1, 1]
    assert [threads_for(8, x) for x in (0.0, 2.2, 2.6, 7.9)] == [8, 6, 5, 1]

    class Load(CpuLoad):  # the load a test says, in turn
        def __init__(self, values):
            super().__init__()
            self.values = iter(values)

        def others(self):
            self.last = (0.0, 0.0, 0.0)  # a sample was taken
            return next(self.values)

    before = torch.get_num_threads()
    path = tmp_path / "threads"
    try:
        torch.set_num_threads(1)
        f = ThreadsFile(path, write=True, load=Load([None, 0.1, 0.2, 1.3, 0.9, 0.0]))
        f.cores = 2
        assert path.read_text() == "1\n" and f.poll() is None
        path.write_text("auto\n")
        assert "follow the machine's idle cores" in f.poll()  # the first sample: nothing measured yet
        assert f.poll().startswith("2 threads, other work taking 0.1 of 2 cores") and torch.get_num_threads() == 2
        assert f.poll() is None  # 0.2: still two
        assert f.poll().startswith("1 thread, other work taking 1.3") and torch.get_num_threads() == 1
        assert f.poll() is None  # 0.9: still one
        path.write_text("2")  # a number ends auto
        assert f.poll() == f"2 threads ({path})" and torch.get_num_threads() == 2 and f.poll() is None
        no_stat = ThreadsFile(path, write=False, load=CpuLoad(tmp_path / "no-such-stat"))
        path.write_text("auto")
        assert "auto needs /proc/stat" in no_stat.poll() and not no_stat.auto
    finally:
        torch.set_num_threads(before)
    auto = ThreadsFile(path, write=True, auto=True)  # a run started with --threads auto
    assert path.read_text() == "auto\n" and auto.text == "auto" and auto.auto == (auto.load.last is not None)
    from jcdcodec.cli.workbench import _thread_count

    assert (_thread_count("auto"), _thread_count("0"), _thread_count("3")) == (-1, 0, 3)
    with pytest.raises(click.BadParameter, match="or auto"):
        _thread_count("two")
    load = CpuLoad()
    t = time.monotonic()
    if load.others() is None and load.last is None:
        pytest.skip("no /proc/stat here")
    assert load.others() is None  # within a second of the first sample: too short to measure
    while time.monotonic() - t < 1.2:  # this process's own work (a whole core) is not counted as other work
        sum(range(10_000))
    assert load.others() < len(os.sched_getaffinity(0)) - 0.5


def test_progress_lines_without_a_terminal(image_dir, tmp_path, capsys):
    mc, tc = tiny_run(image_dir, tmp_path / "hb", 30)
    tr = started(mc, tc)
    tr.run(progress=False, heartbeat=1e-6)
    lines = [v for v in capsys.readouterr().err.splitlines() if v.startswith("train: step")]
    assert len(lines) == 3 and "s/step" in lines[0] and "loss" in lines[0]


def test_resume_drops_the_log_lines_it_will_redo(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "log", 4)
    tc = dataclasses.replace(tc, log_every=1, ckpt_every=2)
    tr = started(mc, tc)
    tr.run(progress=False)  # checkpoints at 2 and 4, logs 1..4
    log = tmp_path / "log" / "log.jsonl"
    ckpt = tmp_path / "log" / "last.ckpt"
    # As if killed after step 4's log line but with the checkpoint of step 2, mid-line.
    from jcdcodec.train.loop import load_checkpoint

    state = load_checkpoint(ckpt)
    state["step"] = 2
    torch.save(state, ckpt)
    log.write_text(log.read_text() + '{"step": 5, "lo')
    tc = dataclasses.replace(tc, steps=5)
    resumed = started(mc, tc, resume=ckpt, also_override=frozenset({"steps"}))
    resumed.run(progress=False)
    steps = [json.loads(v)["step"] for v in log.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_a_run_folder_without_a_checkpoint_is_not_taken_over(image_dir, tmp_path):
    from conftest import run_jcd

    out = tmp_path / "half"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "log.jsonl").write_text('{"step": 50}\n')
    r = run_jcd("train", "--data", str(image_dir), "--out", str(out), "--steps", "1", "-N", "16", "--patch", "64")
    assert r.returncode == 1 and "before its first checkpoint" in r.stderr
    assert (out / "config.json").read_text() == "{}"


def test_an_unreadable_training_image_is_skipped_with_a_warning(image_dir, tmp_path):
    import shutil

    from jcdcodec.errors import JcdWarning

    d = tmp_path / "imgs"
    shutil.copytree(image_dir, d)
    (d / "zz-garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    mc, tc = tiny_run(d, tmp_path / "g", 1)
    with pytest.warns(JcdWarning, match="zz-garbage.png: skipped"):
        tr = started(mc, tc, 1)
    assert tr.n_train == 6  # 9 files, 2 held out, the garbage skipped


@pytest.mark.parametrize("bad", [
    ("--batch", "0"), ("--lr", "-1"), ("--lr", "0"), ("--ema", "1"), ("--temperature", "0"), ("--patch", "0"),
    ("--ckpt-every", "0"), ("--steps", "-5"), ("--lambda-g", "-1"), ("--nproc", "0"), ("--val-count", "-1"),
])  # fmt: skip
def test_settings_that_cannot_train_are_refused_by_name(image_dir, tmp_path, bad):
    """Each ended in an internal error from deep inside (--batch 0: "stack expects a non-empty TensorList", --lr -1:
    torch's "Invalid learning rate") or trained nonsense; now the option is named before anything loads."""
    from conftest import run_jcd

    r = run_jcd("train", "--data", str(image_dir), "--out", str(tmp_path / "r"), "--steps", "1", *bad)
    assert r.returncode == 2 and f"Invalid value for '{bad[0]}'" in r.stderr, r.stderr
    assert not (tmp_path / "r").exists()


def test_the_run_folder_is_not_the_data_folder(image_dir, tmp_path):
    from conftest import run_jcd

    for out in (image_dir, image_dir / "." / ""):
        r = run_jcd("train", "--data", str(image_dir), "--out", str(out), "--steps", "1")
        assert r.returncode == 1 and "is the data folder; choose another --out" in r.stderr, r.stderr
    r = run_jcd("train", "--data", str(tmp_path), "--val", str(image_dir), "--out", str(image_dir), "--steps", "1")
    assert r.returncode == 1 and "is the validation folder" in r.stderr, r.stderr
    assert sorted(p.suffix for p in image_dir.iterdir()) == [".png"] * 8


def test_damaged_or_foreign_checkpoints_are_one_line_errors(image_dir, tmp_path):
    from conftest import run_jcd

    mc, tc = tiny_run(image_dir, tmp_path / "d", 1)
    ckpt = started(mc, tc, 1).save_checkpoint()
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    for args in (("train", "--data", str(image_dir), "--out", str(ckpt.parent), "--resume"),
                 ("export", str(ckpt), "-o", str(tmp_path / "w.safetensors"))):  # fmt: skip
        r = run_jcd(*args)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "damaged or truncated checkpoint" in r.stderr
    evil = tmp_path / "evil.ckpt"  # a checkpoint-shaped pickle that also holds a callable: never loaded
    torch.save({"model_config": "{}", "train_config": {}, "module": {}, "step": 1, "f": os.getcwd}, evil)
    r = run_jcd("export", str(evil), "-o", str(tmp_path / "w.safetensors"))
    assert r.returncode == 1 and "not a jcd checkpoint" in r.stderr and "weights_only" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # An image passed by mistake is named as one (it said "it holds Python objects besides tensors").
    photo = next(image_dir.glob("*.png"))
    r = run_jcd("export", str(photo), "-o", str(tmp_path / "w.safetensors"))
    assert r.returncode == 1 and r.stderr.strip() == f"jcd: error: {photo}: not a jcd checkpoint: it is a PNG image"


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(image_dir, tmp_path, monkeypatch):
    from jcdcodec.errors import JcdError

    mc, tc = tiny_run(image_dir, tmp_path / "full", 1)
    tr = started(mc, tc, 1)
    ckpt = tr.save_checkpoint()
    before = ckpt.read_bytes()

    def full(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed")  # fmt: skip

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(JcdError, match="cannot write the checkpoint"):
        tr.save_checkpoint()
    assert ckpt.read_bytes() == before and [p.name for p in ckpt.parent.iterdir() if "ckpt" in p.name] == ["last.ckpt"]


def test_failures_of_the_machine_or_installation_have_a_message():
    from jcdcodec.cli.app import user_message

    oom = user_message(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
    assert oom and oom.startswith("out of memory")
    assert user_message(ImportError("libtorch_cuda.so: failed to map segment from shared object")).startswith("out of")
    assert user_message(MemoryError()).startswith("out of memory")
    missing = ModuleNotFoundError("No module named 'bm3d'", name="bm3d")
    assert user_message(missing) == "this needs the optional package 'bm3d': pip install 'jcdcodec[eval]'"
    assert user_message(ValueError("a bug")) is None


def test_batches_are_made_on_the_training_device_and_reproducible(image_dir):
    from jcdcodec.train.data import PatchSampler, load_uint8

    ims = [load_uint8(p) for p in sorted(image_dir.iterdir())]
    s = PatchSampler(ims, 64, 3, wide_noise=True)
    a = s.sample(torch.Generator().manual_seed(5), "cpu")
    b = s.sample(torch.Generator().manual_seed(5), torch.device("cpu"))
    assert torch.equal(a.noisy, b.noisy) and torch.equal(a.clean, b.clean)
    assert a.noisy.shape == (3, 3, 64, 64) and not torch.equal(a.noisy, a.clean)
    c = s.sample(torch.Generator().manual_seed(6), "cpu")
    assert not torch.equal(a.noisy, c.noisy)


def test_enlarged_crops_are_smoother_and_reproducible(image_dir):
    from jcdcodec.errors import JcdError
    from jcdcodec.train.data import PatchSampler, enlarge, load_uint8

    ims = [load_uint8(p) for p in sorted(image_dir.iterdir())]

    def roughness(x: torch.Tensor) -> float:  # mean absolute difference of horizontal neighbours
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    plain, grown = PatchSampler(ims, 64, 8), PatchSampler(ims, 64, 8, upscale=1.0)
    a = [plain.sample(torch.Generator().manual_seed(k)).clean for k in range(4)]
    b = [grown.sample(torch.Generator().manual_seed(k)).clean for k in range(4)]
    assert all(x.shape == (8, 3, 64, 64) for x in b)
    assert sum(map(roughness, b)) < 0.8 * sum(map(roughness, a))
    again = grown.sample(torch.Generator().manual_seed(0))
    twice = grown.sample(torch.Generator().manual_seed(0))
    assert torch.equal(again.clean, b[0]) and torch.equal(again.noisy, twice.noisy)
    # the noise comes after the enlargement: pixel-sized (uncorrelated between neighbours), not enlarged with it
    r = again.noisy - again.clean
    r = r - r.mean(dim=(2, 3), keepdim=True)  # the reference gamma pair shifts the mean
    assert float((r[..., 1:] * r[..., :-1]).mean() / (r * r).mean()) < 0.1
    flat = torch.full((3, 16, 16), 77, dtype=torch.uint8)
    assert torch.equal(enlarge(flat, 64), torch.full((3, 64, 64), 77, dtype=torch.uint8))
    with pytest.raises(JcdError, match="upscale"):
        PatchSampler(ims, 64, 8, upscale=1.5)


def test_resume_may_grow_crops_and_batches_when_asked(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "grow", 2)
    ckpt = started(mc, tc, 1).save_checkpoint()
    bigger = dataclasses.replace(tc, patch=128, batch=4)
    assert Trainer(mc, bigger, resume=ckpt).tcfg.patch == 64  # the run's own unless asked
    grown = Trainer(mc, bigger, resume=ckpt, also_override=frozenset({"patch", "batch"}))
    assert (grown.tcfg.patch, grown.tcfg.batch) == (128, 4)


def test_jcd_train_resume_keeps_the_runs_length_and_rhythm_unless_given(image_dir, tmp_path, monkeypatch):
    """The command line's defaults (--steps 100000, --ckpt-every 1000, --val-every 2000) are not a request: a run
    started with --steps 6 and resumed without --steps still ends at 6 (its lr decay stays at 80 % of 6)."""
    from click.testing import CliRunner

    from jcdcodec.cli import cli

    mc, tc = tiny_run(image_dir, tmp_path / "keep", 6)
    started(mc, tc, 1).save_checkpoint()
    seen = []
    monkeypatch.setattr(Trainer, "run", lambda self, **kw: seen.append(self.tcfg))
    base = ["train", "--resume", "--out", str(tmp_path / "keep"), "--data", str(image_dir), "--quiet"]
    for extra in ([], ["--steps", "9", "--val-every", "5", "--warmup", "0"]):
        res = CliRunner().invoke(cli, [*base, *extra], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    kept, given = seen
    assert (kept.steps, kept.ckpt_every, kept.val_every, kept.warmup) == (6, 10_000, 0, 1)
    assert (given.steps, given.ckpt_every, given.val_every, given.warmup) == (9, 10_000, 5, 0)
    res = CliRunner().invoke(cli, [*base, "--warmup", "-1"])
    assert res.exit_code == 2 and "-1" in res.output


def test_the_gpu_profile_of_the_training_script(tmp_path):
    from conftest import REPO

    env = dict(os.environ, DRY_RUN="1", GPU="1")
    r = subprocess.run(["bash", str(REPO / "scripts" / "train.sh"), "base128"], capture_output=True, text=True,
                       env=env, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.split()
    for flag, value in (("--patch", "256"), ("--batch", "16"), ("--threads", "4")):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--clean-input" in cmd or "--resume" in cmd
    env.pop("GPU")
    r = subprocess.run(["bash", str(REPO / "scripts" / "train.sh"), "main"], capture_output=True, text=True,
                       env=env, cwd=REPO)  # fmt: skip
    cmd = r.stdout.split()
    assert cmd[cmd.index("--patch") + 1] == "128" and cmd[cmd.index("--batch") + 1] == "8"
    for which, extra, size in (("main", {"PATCH": "256", "BATCH": "4"}, ("256", "4")), ("joint128", {}, ("256", "4")),
                               ("joint128", {"PATCH": "128", "BATCH": "8"}, ("128", "8"))):  # fmt: skip
        r = subprocess.run(["bash", str(REPO / "scripts" / "train.sh"), which], capture_output=True, text=True,
                           env=dict(env, **extra), cwd=REPO)  # fmt: skip
        assert r.returncode == 0, r.stderr
        cmd = r.stdout.split()  # the CPU crops: asked for, or the profile's own (joint128: larger crops)
        assert (cmd[cmd.index("--patch") + 1], cmd[cmd.index("--batch") + 1]) == size, (which, extra)


def test_a_plain_resume_of_the_training_script_keeps_the_runs_own_length_and_crops(tmp_path):
    """A leg begun with STEPS=1800 PATCH=256 BATCH=4 must not drop back to the profile's 2,000 steps of 8 x 128
    when resumed without them (it did once: the resumed leg trained on other crops and another schedule)."""
    from conftest import REPO

    run = tmp_path / "run"
    run.mkdir()
    (run / "last.ckpt").write_bytes(b"")

    def command(which: str, **extra: str) -> list[str]:
        env = dict(os.environ, DRY_RUN="1", RUN_DIR=str(run), **extra)
        for name in ("STEPS", "PATCH", "BATCH", "GPU", "GPU_BATCH", "WARMUP", "LR"):
            if name not in extra:
                env.pop(name, None)
        r = subprocess.run(["bash", str(REPO / "scripts" / "train.sh"), which], capture_output=True, text=True,
                           env=env, cwd=REPO)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    cmd = command("camera128")
    assert "--resume" in cmd and not {"--steps", "--patch", "--batch", "--init"} & set(cmd)
    cmd = command("camera128", STEPS="2400", BATCH="2")
    assert cmd[cmd.index("--steps") + 1] == "2400" and cmd[cmd.index("--batch") + 1] == "2" and "--patch" not in cmd
    assert "--warmup" not in cmd and command("joint128", WARMUP="100")[-2:] == ["--warmup", "100"]
    cmd = command("camera128", GPU="1")  # the GPU profile's size replaces a CPU run's
    assert (cmd[cmd.index("--patch") + 1], cmd[cmd.index("--batch") + 1]) == ("256", "16")
    cmd = command("joint128")  # its CPU size always: a GPU leg (16 a batch) continues at the CPU's 4
    assert (cmd[cmd.index("--patch") + 1], cmd[cmd.index("--batch") + 1]) == ("256", "4")
    assert "--steps" not in cmd
    (run / "last.ckpt").unlink()
    cmd = command("camera128")  # a new leg: the profile's own length and size
    assert "--resume" not in cmd and cmd[cmd.index("--steps") + 1] == "2000" and cmd[cmd.index("--patch") + 1] == "128"
    cmd = command("joint128", WARMUP="0")  # a new leg takes it too
    assert "--resume" not in cmd and cmd[cmd.index("--warmup") + 1] == "0"


def test_the_gpu_machine_script_runs_the_profile_on_the_packed_data(tmp_path):
    """scripts/gpu_run.sh: the profile's own switches, pointed at what scripts/gpu_pack.sh packs; resumes."""
    from conftest import REPO

    packed = tmp_path / "gpu"
    env = dict(os.environ, DRY_RUN="1", PY=sys.executable, OUT=str(tmp_path), RUN=str(tmp_path / "run"),
               PACKED=str(packed))  # fmt: skip
    r = subprocess.run(["bash", str(REPO / "scripts" / "gpu_run.sh"), "camera128", "60"], capture_output=True,
                       text=True, env=env, cwd=REPO)  # fmt: skip
    assert r.returncode != 0 and "gpu_pack.sh" in r.stderr  # nothing packed: says so instead of training from scratch
    (packed / "train").mkdir(parents=True)
    (packed / "start.safetensors").write_bytes(b"")
    r = subprocess.run(["bash", str(REPO / "scripts" / "gpu_run.sh"), "camera128", "60"], capture_output=True,
                       text=True, env=env, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.split()
    last = {flag: cmd[len(cmd) - 1 - cmd[::-1].index(flag) + 1] for flag in ("--patch", "--batch", "--data", "--out")}
    assert last == {"--patch": "256", "--batch": "16", "--data": str(packed / "train"), "--out": str(tmp_path / "run")}
    assert cmd[cmd.index("--init") + 1] == str(packed / "start.safetensors") and "--resume" not in cmd
    assert {"--noise", "mix", "--gamma", "srgb", "-N", "128"} <= set(cmd)  # camera128's switches
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.ckpt").write_bytes(b"")
    r = subprocess.run(["bash", str(REPO / "scripts" / "gpu_run.sh"), "camera128", "60"], capture_output=True,
                       text=True, env=env, cwd=REPO)  # fmt: skip
    assert r.returncode == 0 and "--resume" in r.stdout.split() and "--init" not in r.stdout.split(), r.stdout
    for resume in (True, False):  # GPU_BATCH sets the batch, on resuming and on starting
        if not resume:
            (tmp_path / "run" / "last.ckpt").unlink()
        r = subprocess.run(["bash", str(REPO / "scripts" / "gpu_run.sh"), "camera128", "60"], capture_output=True,
                           text=True, env={**env, "GPU_BATCH": "32"}, cwd=REPO)  # fmt: skip
        cmd = r.stdout.split()
        assert r.returncode == 0 and cmd[len(cmd) - 1 - cmd[::-1].index("--batch") + 1] == "32", r.stdout
        assert ("--resume" in cmd) == resume


def test_calibration_moves_only_the_gains_and_lowers_the_rd_cost(image_dir, tmp_path):
    from jcdcodec.train.calibrate import calibrate_gains
    from jcdcodec.train.data import PatchSampler, load_uint8
    from jcdcodec.train.losses import bpp

    mc, tc = tiny_run(image_dir, tmp_path / "cal", 40, lr=1e-3, model={"qualities": (1, 6)})
    tr = started(mc, tc, 40)
    model = tr.module.model
    ims = [load_uint8(p) for p in sorted(image_dir.iterdir())]
    sampler = PatchSampler(ims, 64, 4)
    fixed = [sampler.sample(torch.Generator().manual_seed(k)) for k in range(3)]

    def cost(q: int) -> float:
        model.eval()
        with torch.no_grad():
            total = 0.0
            for b in fixed:
                torch.manual_seed(0)
                model.train()  # uniform-noise rate, as in training
                out = model(b.noisy, q)
                n = b.clean.shape[0] * 64 * 64
                total += float(bpp(out["y_lik"], n) + bpp(out["z_lik"], n)
                               + model.lmbda(q) * 255**2 * torch.mean((out["x_hat"] - b.clean) ** 2))
        return total / len(fixed)

    with torch.no_grad():  # q6 spends as few bits as q1: the underspending calibration is for
        model.log_gain[1] = model.log_gain[0]
        model.log_inv_gain[1] = model.log_inv_gain[0]
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before = [cost(q) for q in (1, 6)]
    result = calibrate_gains(model, sampler, 80, lr=2e-2, bf16=False)
    after = [cost(q) for q in (1, 6)]
    assert after[1] < before[1] - 1.0 and sum(after) < sum(before), (before, after)
    assert result.gain_change[6] > 1.05  # q6's quantisation got finer
    # MaskedConv2d re-zeroes its masked taps at every forward: compare it under the mask.
    mask = model.context_prediction.mask
    before_state["context_prediction.weight"] = before_state["context_prediction.weight"] * mask
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before_state[k])}
    assert {"log_gain", "log_inv_gain"} <= changed
    assert changed <= {"log_gain", "log_inv_gain", "entropy_bottleneck.quantiles"}, changed
    assert set(result.gain_change) == {1, 6} and all(p.requires_grad for p in model.parameters())


def test_cli_calibrate_keeps_the_record_and_adds_what_changed(image_dir, tmp_path):
    from conftest import run_jcd

    mc, tc = tiny_run(image_dir, tmp_path / "c2", 2, model={"qualities": (1, 2, 3)})
    ckpt = started(mc, tc, 2).save_checkpoint()
    weights = tmp_path / "models" / "w.safetensors"
    assert run_jcd("export", str(ckpt), "-o", str(weights), "--name", "w").returncode == 0
    out = tmp_path / "models" / "w-cal.safetensors"
    r = run_jcd("calibrate", str(weights), "-o", str(out), "--name", "w-cal", "--data", str(image_dir),
                "--val-count", "2", "--steps", "4", "--patch", "64", "--batch", "2", "--threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "models" / "manifest.json").read_text())
    e = m["models"]["w-cal"]
    assert e["steps"] == 2 and e["calibration"]["steps"] == 4 and e["file"] == "w-cal.safetensors"
    assert e["calibration"]["from_sha256"] == m["models"]["w"]["sha256"] != e["sha256"]
    assert set(e["calibration"]["gain_change"]) == {"1", "2", "3"}
    assert e["calibration"]["noise"] == "readshot"  # the weights' own training noise
    m["models"]["w"]["train_config"]["noise"] = "mix"  # weights trained on camera-like noise calibrate on it
    (tmp_path / "models" / "manifest.json").write_text(json.dumps(m))
    r = run_jcd("calibrate", str(weights), "-o", str(out), "--name", "w-cal", "--data", str(image_dir),
                "--val-count", "2", "--steps", "2", "--patch", "64", "--batch", "2", "--threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    e = json.loads((tmp_path / "models" / "manifest.json").read_text())["models"]["w-cal"]
    assert e["calibration"]["noise"] == "mix"


def test_export_can_say_what_the_weights_are_for(image_dir, tmp_path):
    from conftest import run_jcd

    mc, tc = tiny_run(image_dir, tmp_path / "p", 1)
    ckpt = started(mc, tc, 1).save_checkpoint()
    out = tmp_path / "models" / "stage.safetensors"
    r = run_jcd("export", str(ckpt), "-o", str(out), "--name", "stage", "--purpose", "training only: stage one")
    assert r.returncode == 0, r.stderr
    r = run_jcd("models", env={"JCD_MODELS": str(out.parent)})
    assert "made for  training only: stage one" in r.stdout, r.stdout


def test_stage_two_starts_from_a_plain_codec_with_open_gates_and_logs_them(image_dir, tmp_path):
    from conftest import run_jcd

    mc, tc = tiny_run(image_dir, tmp_path / "s1", 1, clean_input=True, model={"denoise": False})
    ckpt = started(mc, tc, 1).save_checkpoint()
    plain = tmp_path / "models" / "plain.safetensors"
    assert run_jcd("export", str(ckpt), "-o", str(plain), "--name", "plain").returncode == 0
    mc, tc = tiny_run(image_dir, tmp_path / "s2", 2, init=str(plain), gate_init=2.0)
    tr = started(mc, tc)
    for d in (tr.module.model.d0, tr.module.model.d1):
        assert float(d.mask[-1].bias.mean()) == pytest.approx(2.0)
    rec = tr.train_step()
    assert 0.7 < rec["d0_gate"] < 0.95 and 0.7 < rec["d1_gate"] < 0.95
    assert rec["d0_corr"] > 0 and rec["d1_corr"] > 0
    # The codec's own weights came from stage one.
    s1 = started(*tiny_run(image_dir, tmp_path / "s1b", 1, init=str(plain), model={"denoise": False}))
    key = "g_s.0.conv1.weight"
    assert torch.equal(s1.module.model.state_dict()[key], started(mc, tc).module.model.state_dict()[key])


def test_denoisers_with_a_scale_join_a_plain_codec_silently_and_grow_in(image_dir, tmp_path):
    """--denoiser-scale with --gate-init: the stage-two model starts as exactly the stage-one codec (the
    denoisers add nothing), and the scales move away from zero in the first steps."""
    from conftest import run_jcd

    mc, tc = tiny_run(image_dir, tmp_path / "s1", 1, model={"denoise": False})
    ckpt = started(mc, tc, 1).save_checkpoint()
    plain = tmp_path / "models" / "plain.safetensors"
    assert run_jcd("export", str(ckpt), "-o", str(plain), "--name", "plain").returncode == 0
    mc, tc = tiny_run(image_dir, tmp_path / "s2", 3, init=str(plain), gate_init=2.0, lr=1e-3,
                      model={"denoiser_scale": True})  # fmt: skip
    tr = started(mc, tc)
    s1 = started(*tiny_run(image_dir, tmp_path / "s1b", 1, init=str(plain), model={"denoise": False}))
    x = torch.rand(1, 3, 64, 64)
    for m in (tr.module.model, s1.module.model):
        m.eval()
    with torch.no_grad():
        assert torch.equal(tr.module.model.analysis(x, 3), s1.module.model.analysis(x, 3))
    for d in (tr.module.model.d0, tr.module.model.d1):
        assert float(d.scale.abs().max()) == 0.0 and float(d.mask[-1].bias.mean()) == pytest.approx(2.0)
    tr.module.train()
    rec = tr.train_step()
    assert rec["d0_corr"] == 0.0 and rec["d1_corr"] == 0.0  # the first step still adds nothing
    for _ in range(2):
        rec = tr.train_step()
    assert float(tr.module.model.d0.scale.abs().max()) > 0 and rec["d0_corr"] > 0
    # the scale travels with the exported weights (their config says the model has it)
    from jcdcodec.weights import load_model_file

    grown = tmp_path / "models" / "grown.safetensors"
    assert run_jcd("export", str(tr.save_checkpoint()), "-o", str(grown), "--raw").returncode == 0
    loaded, _ = load_model_file(grown)
    assert loaded.config.denoiser_scale
    assert torch.allclose(loaded.d1.scale.float(), tr.module.model.d1.scale.detach().float(), atol=1e-3)
    # without the switch, the weights and their config are as before (no scale tensor)
    assert started(*tiny_run(image_dir, tmp_path / "s3", 1)).module.model.d0.scale is None


def test_a_killed_checkpoint_save_leaves_a_temporary_the_next_save_removes(image_dir, tmp_path):
    from jcdcodec.outputs import TMP_TAG

    mc, tc = tiny_run(image_dir, tmp_path / "k", 1)
    tr = started(mc, tc, 1)
    ckpt = tr.out / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (ckpt.parent / f".last.ckpt{TMP_TAG}{dead.pid}-0badf00d.ckpt").write_bytes(b"\0" * 10)  # kill -9 mid-save
    assert tr.save_checkpoint() == ckpt
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"]


def test_compare_runs_pairs_equal_steps(tmp_path):
    """scripts/compare_runs.py: the paired difference at equal steps, and a refusal of incomparable runs."""
    lambdas = list(ModelConfig().lambdas)
    for name, shift in (("a", 0.0), ("b", 0.5)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"model": {"lambdas": lambdas}, "train": {"seed": 0}}))
        rows = [{"step": s, "quality": 1 + s // 50 % 6, "bpp": 0.1 * (s // 50), "mse": 1e-3, "psnr": 30.0 + shift}
                for s in range(50, 1050, 50)]  # fmt: skip
        rows.append({"step": 1000, "val": {"L1q1_psnr": 25.0 + shift, "L1q1_bpp": 0.2}})
        (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    script = str(Path(__file__).resolve().parent.parent / "scripts" / "compare_runs.py")
    out = subprocess.run([sys.executable, script, str(tmp_path / "a"), str(tmp_path / "b")], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert "paired on 20 logged steps" in out
    assert "| 1-500 | 10 | +0.0000 +- 0.0000 | +0.5000 +- 0.0000 | +0.0000 +- 0.0000 |" in out
    assert "L1q1 25.00 @ 0.200 / 25.50 @ 0.200" in out
    assert "branches of one run" not in out
    # A branch of run a from its step 300: the shared history is not a comparison; the windows start at the fork.
    branch = tmp_path / "branch"
    branch.mkdir()
    (branch / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    rows = [dict(r, mse=2e-3) if "mse" in r and r["step"] > 300 else r for r in rows]
    (branch / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = subprocess.run([sys.executable, script, str(tmp_path / "a"), str(branch), "--window", "700"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "identical to step 300, paired after it" in out and "paired on 14 logged steps" in out
    assert "| 301-1000 | 14 | " in out and "| +0.0000 +- 0.0000 | +0.0000 +- 0.0000 |" in out
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    config["model"]["lambdas"] = lambdas[::-1]
    (tmp_path / "b" / "config.json").write_text(json.dumps(config))
    bad = subprocess.run([sys.executable, script, str(tmp_path / "a"), str(tmp_path / "b")], capture_output=True,
                         text=True)  # fmt: skip
    assert bad.returncode != 0 and "different lambdas" in bad.stderr


def test_bf16_follows_the_hardware_unless_asked_and_is_chosen_again_on_resume(image_dir, tmp_path, monkeypatch):
    """Emulated bf16 (a CPU without AVX512-BF16/AMX) is slower than fp32, so the default picks it only
    where the hardware has it; the choice belongs to the machine, so a resumed run makes it afresh."""
    import jcdcodec.train.loop as loop

    mc, tc = tiny_run(image_dir, tmp_path / "bf", 2)
    assert tc.bf16 is None
    for native in (False, True):
        monkeypatch.setattr(loop, "native_bf16", lambda device, native=native: native)
        tr = started(mc, tc, 1)
        assert tr.bf16 is native
        assert tr.train_step()["loss"] > 0
    ckpt = tr.save_checkpoint()
    monkeypatch.setattr(loop, "native_bf16", lambda device: False)
    assert Trainer(mc, tc, resume=ckpt).bf16 is False  # auto again, on this "machine"
    assert Trainer(mc, dataclasses.replace(tc, bf16=True), resume=ckpt).bf16 is True  # asked for


def test_the_leg_measurement_codes_the_candidate_against_the_base_on_every_setting(tmp_path):
    """scripts/measure_leg.sh: a run folder is exported first (a weights file is not); every setting codes the
    candidate and the base, and the two report-backed settings reuse copies of the reports' rows (so only the
    candidate is coded there), never the reports' own files."""
    from conftest import REPO

    def commands(cand: str, **extra: str) -> list[list[str]]:
        env = dict(os.environ, DRY_RUN="1", OUT=str(tmp_path / "out"), **extra)
        r = subprocess.run(["bash", str(REPO / "scripts" / "measure_leg.sh"), cand], capture_output=True, text=True,
                           env=env, cwd=REPO)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return [line.split() for line in r.stdout.splitlines()]

    cmds = commands("runs/legX")
    assert cmds[0][1:3] == ["export", "runs/legX/last.ckpt"]
    weights = cmds[0][cmds[0].index("-o") + 1]
    evals = cmds[1:]
    assert [c[1] for c in evals] == ["eval"] * 5
    assert len({c[2] for c in evals}) == 5  # five data sets
    for c in evals:
        named = [c[i + 1] for i, a in enumerate(c) if a == "--weights"]
        assert named == [weights, "jcd-n128-camera"]
        if "--rows" in c:
            assert not c[c.index("--rows") + 1].startswith("docs/")
    assert sum("--rows" in c for c in evals) == 2
    cmds = commands("/tmp/x/cand.safetensors", BASE="jcd-n64")
    assert all(c[1] == "eval" for c in cmds) and len(cmds) == 5
    assert all(c[c.index("--weights") + 1] == "/tmp/x/cand.safetensors" and "jcd-n64" in c for c in cmds)
