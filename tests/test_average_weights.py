"""scripts/average_weights.py: interpolating two exports gives exactly the interpolated parameters, and a file
that loads and codes like any export."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import REPO

from jcdcodec.errors import JcdError
from jcdcodec.weights import load_model_file

spec = importlib.util.spec_from_file_location("average_weights", REPO / "scripts" / "average_weights.py")
average_weights = importlib.util.module_from_spec(spec)
spec.loader.exec_module(average_weights)

A = REPO / "models" / "jcd-n64.safetensors"
B = REPO / "models" / "jcd-n64-srgb.safetensors"


def params(path):
    model, _ = load_model_file(path)
    return dict(model.named_parameters()), model


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_parameters_are_the_interpolation(tmp_path, alpha):
    out = tmp_path / "mix.safetensors"
    average_weights.average(A, B, alpha, out, synthesis=False)
    pa, _ = params(A)
    pb, _ = params(B)
    pm, model = params(out)  # loads: the tables were rebuilt for the new parameters
    assert model.tables_ready()
    differs = 0
    for name, p in pm.items():
        want = torch.lerp(pa[name], pb[name], alpha).half().float()
        assert torch.equal(p, want), name
        differs += not torch.equal(p, pa[name])
    assert (differs == 0) == (alpha == 0.0)


def test_different_networks_and_bad_alpha_are_refused(tmp_path):
    with pytest.raises(JcdError, match="different networks"):
        average_weights.average(A, REPO / "models" / "jcd-n128.safetensors", 0.5, tmp_path / "x.safetensors")
    with pytest.raises(JcdError, match="alpha"):
        average_weights.average(A, B, 1.5, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
