import subprocess
import sys

import pytest
import torch
from torch import nn

from jcdcodec.nn.cbam import CBAM
from jcdcodec.nn.denoiser import Denoiser
from jcdcodec.nn.model import JointModel, ModelConfig, _SubsampledSkip
from jcdcodec.nn.selfonn import SelfONN2d


def test_config_json_round_trip_and_validation():
    c = ModelConfig(N=96, qualities=(2, 3), selfonn=False)
    assert ModelConfig.from_json(c.to_json()) == c
    with pytest.raises(ValueError):
        ModelConfig.from_json('{"N": 64, "bogus": 1}')
    with pytest.raises(ValueError):
        ModelConfig(N=30)
    assert ModelConfig.paper(2).N == 128 and ModelConfig.paper(5).N == 192
    assert not ModelConfig.paper(5).variable_rate


def test_selfonn_q1_is_a_convolution_and_powers_are_power_major():
    torch.manual_seed(0)
    layer = SelfONN2d(4, 5, 3, q=3)
    x = torch.rand(2, 4, 8, 8) * 2 - 1
    conv = nn.Conv2d(12, 5, 3, padding=1)
    conv.load_state_dict(layer.state_dict())
    assert torch.allclose(layer(x), conv(torch.cat([x, x**2, x**3], 1)), atol=1e-6)
    # the same as a sum of per-power convolutions (the "low-memory" form)
    w = layer.weight
    parts = sum(torch.nn.functional.conv2d(x**p, w[:, 4 * (p - 1) : 4 * p], padding=1) for p in (1, 2, 3))
    assert torch.allclose(layer(x), parts + layer.bias.view(1, -1, 1, 1), atol=1e-5)
    one = SelfONN2d(4, 5, 1, q=1)
    assert one.weight.shape == (5, 4, 1, 1)


@pytest.mark.parametrize("n", [64, 128, 192])
def test_cbam_uses_the_real_channel_count(n):
    cbam = CBAM(n)
    assert cbam.channel.mlp[0].in_channels == n and cbam.channel.mlp[0].out_channels == n // 16
    assert cbam(torch.rand(1, n, 6, 6)).shape == (1, n, 6, 6)


def test_denoiser_switches_change_the_network():
    full = Denoiser(64, selfonn=True, multiscale=True, cbam=True)
    base = Denoiser(64, selfonn=False, multiscale=False, cbam=False)
    assert any(isinstance(m, SelfONN2d) for m in full.modules())
    assert not any(isinstance(m, (SelfONN2d, CBAM)) for m in base.modules())
    dil = sorted(m.dilation[0] for m in full.front.branches)
    assert dil == [1, 2, 3, 4] and all(m.out_channels == 16 for m in full.front.branches)
    x = torch.rand(1, 64, 8, 8)
    assert full(x).shape == x.shape == base(x).shape


def test_model_variants_build_and_run():
    x = torch.rand(2, 3, 64, 64)
    for cfg in (ModelConfig(N=32), ModelConfig.baseline(N=32), ModelConfig(N=32, denoise=False),
                ModelConfig(N=32, qualities=(4,))):  # fmt: skip
        m = JointModel(cfg)
        out = m(x, cfg.qualities[0])
        assert out["x_hat"].shape == x.shape and out["y1"].shape == (2, 32, 4, 4)
        assert (m.d0 is None) == (not cfg.denoise)
        assert (m.log_gain is None) == (not cfg.variable_rate)


def test_fractional_gain_interpolates_geometrically():
    m = JointModel(ModelConfig(N=16))
    g2, g3, g25 = m.gain(2), m.gain(3), m.gain(2.5)
    assert torch.allclose(g25, torch.sqrt(g2 * g3))


def test_subsampled_skip_equals_stride_2_conv():
    conv = nn.Conv2d(3, 8, 1, stride=2)
    sub = _SubsampledSkip(conv)
    x = torch.rand(1, 3, 17, 18)
    assert torch.allclose(conv(x), sub(x), atol=1e-6)


CRASH_SCRIPT = """
import torch
from jcdcodec.nn.model import JointModel, ModelConfig
torch.set_num_threads(1)
m = JointModel(ModelConfig(N=16)).to(memory_format=torch.channels_last)
x = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
for _ in range(3):
    for bf16 in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = m(x, 3)
        (out["x_hat"].float().mean() + out["y_lik"].log().mean()).backward()
print("ok")
"""


def test_first_block_backward_in_channels_last_does_not_crash():
    """PyTorch 2.14 CPU crashed on a stride-2 1x1 conv from 3 channels (channels_last backward)."""
    r = subprocess.run([sys.executable, "-c", CRASH_SCRIPT], capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]
