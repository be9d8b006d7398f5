"""The wavefront schedule and the context coder."""

import numpy as np
import pytest
import torch
from conftest import textured

from jcdcodec import Picture
from jcdcodec.entropy.context import TAPS, wavefront_schedule


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (5, 1), (4, 6), (32, 48)])
def test_schedule_covers_every_position_once_after_its_neighbours(h, w):
    step_of = -np.ones((h, w), int)
    for t, (i, j) in enumerate(wavefront_schedule(h, w)):
        assert len(i) > 0
        assert (step_of[i, j] == -1).all()
        step_of[i, j] = t
        assert list(i) == sorted(i.tolist()), "rows increase inside a step"
    assert (step_of >= 0).all()
    for i in range(h):
        for j in range(w):
            for dy, dx in TAPS:
                if 0 <= i + dy < h and 0 <= j + dx < w:
                    assert step_of[i + dy, j + dx] < step_of[i, j]


def test_kodak_sized_latent_takes_141_steps():
    assert len(wavefront_schedule(32, 48)) == 141


def test_taps_are_exactly_the_type_a_mask():
    from compressai.layers import MaskedConv2d

    mask = MaskedConv2d(1, 1, 5, padding=2).mask[0, 0]
    kept = {(dy - 2, dx - 2) for dy in range(5) for dx in range(5) if mask[dy, dx] == 1}
    assert kept == set(TAPS) and len(TAPS) == 12


def test_encoder_latent_is_the_rounded_analysis(codec):
    """y_hat = round(y - mean) + mean: never more than half a step from the analysis output."""
    pic = Picture.from_array(textured(64, 128, seed=9))
    q = 3
    enc = codec.encode(pic, q)
    x = torch.from_numpy(pic.rgb).permute(2, 0, 1)[None]
    with torch.no_grad(), codec._transforms():  # transforms as the encoder runs them; the gain in fp32
        y1 = codec.model.analysis_noisy(x.contiguous(memory_format=codec._fmt))[1].float()
    y = (y1 * codec.model.gain(q).detach())[0].double().numpy()
    assert enc.y_hat.shape == y.shape and enc.y_hat.dtype == np.float64
    assert float(np.abs(enc.y_hat - y).max()) <= 0.5 + 1e-4
    assert (enc.y_hat != 0).any()


def test_the_entropy_path_holds_numpys_blas_to_one_thread_inside_other_programs(codec, monkeypatch):
    """A program calling jcdcodec (no OPENBLAS_NUM_THREADS=1 set by the CLI) gets one BLAS thread while the
    entropy path runs, and its own setting back afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import jcdcodec.entropy.path as path_module
    from jcdcodec.entropy.arrays import one_blas_thread

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    controller = threadpoolctl.ThreadpoolController()
    if not [i for i in controller.info() if i["user_api"] == "blas"]:
        pytest.skip("numpy has no BLAS thread pool here")

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpoolctl.ThreadpoolController().info() if i["user_api"] == "blas"}

    seen = []

    def recording():
        cm = one_blas_thread()

        class Recorder:
            def __enter__(self):
                cm.__enter__()
                seen.append(blas_threads())

            def __exit__(self, *exc):
                return cm.__exit__(*exc)

        return Recorder()

    monkeypatch.setattr(path_module, "one_blas_thread", recording)
    with controller.limit(limits=2, user_api="blas"):  # the program's own setting
        enc = codec.encode(Picture.from_array(textured(64, 96, seed=1)), 3)
        codec.decode(enc.data)
        assert blas_threads() == {2}
    assert seen == [{1}, {1}]  # encode and decode
