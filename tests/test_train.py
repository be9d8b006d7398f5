"""Training: loss terms on hand-computed tensors, learning, exact resume, export, DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

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
                     ckpt_every=10_000, lr=kw.pop("lr", 1e-4), warmup=1, threads=1, **kw)  # fmt: skip
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


def test_resume_with_a_new_learning_rate(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "lr", 4)
    ckpt = started(mc, tc, 1).save_checkpoint()
    resumed = Trainer(mc, tc, resume=ckpt, new_lr=3e-5)
    assert resumed.tcfg.lr == 3e-5 and resumed.opt.param_groups[0]["lr"] == pytest.approx(3e-5)
    resumed.load_data(progress=False)
    resumed.train_step()
    assert resumed.sched.get_last_lr()[0] == pytest.approx(3e-5)


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


def test_a_non_finite_batch_is_skipped_and_training_goes_on(image_dir, tmp_path):
    mc, tc = tiny_run(image_dir, tmp_path / "nan", 4)
    tr = started(mc, tc, 1)  # one step first: MaskedConv2d zeroes its masked taps on its first forward
    before = {k: v.clone() for k, v in tr.module.state_dict().items()}
    good = tr.sampler.sample
    bad = good(torch.Generator().manual_seed(0))
    bad.noisy[0, 0, 0, 0] = float("nan")
    tr.sampler.sample = lambda g: bad
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
