import pytest
import torch

from jcdcodec.noise import LEVELS, add_level_noise, add_noise, from_linear, sample_training_sigmas, to_linear


def test_reference_gamma_quirk_is_reproduced_and_srgb_is_an_inverse():
    x = torch.tensor([0.25, 0.5, 0.75, 0.9])
    ref = from_linear(to_linear(x))
    assert torch.allclose(ref, torch.tensor([0.262, 0.519, 0.776, 0.931]), atol=1e-3)
    assert torch.allclose(from_linear(to_linear(x, "srgb"), "srgb"), x, atol=1e-6)


def _expected_std(level: int, grey: float) -> tuple[float, float]:
    """Linear-light value of ``grey`` and the model's noise std there."""
    read, shot = LEVELS[level]
    lin = float(to_linear(torch.tensor(grey), "srgb"))
    return lin, (read**2 + lin * shot**2) ** 0.5


def _unclamped(level: int, grey: float) -> bool:
    lin, std = _expected_std(level, grey)
    return lin - 3 * std >= 0 and lin + 3 * std <= 1  # else clamping to [0, 1] cuts the distribution


@pytest.mark.parametrize(
    ("level", "grey"), [(lv, g) for lv in (1, 2, 3, 4) for g in (0.3, 0.5, 0.7) if _unclamped(lv, g)]
)
def test_noise_std_matches_the_model(level, grey):
    """Mapped back to linear light, the noise std is sqrt(read^2 + lin * shot^2) within a few percent."""
    clean = torch.full((3, 256, 256), grey)
    lin, expected = _expected_std(level, grey)
    noisy = add_level_noise(clean, level, seed=7, gamma="srgb")
    got = float((to_linear(noisy, "srgb") - lin).std())
    assert got == pytest.approx(expected, rel=0.03)


def test_published_srgb_noise_magnitudes():
    """reference.md 1.3: std x255 at grey 0.5 is about 6.9 / 11.0 / 19.0 / 38.5."""
    clean = torch.full((3, 200, 200), 0.5)
    base = from_linear(to_linear(clean))
    for level, want in zip((1, 2, 3, 4), (6.9, 11.0, 19.0, 38.5), strict=True):
        got = float((add_level_noise(clean, level) - base).std()) * 255
        assert got == pytest.approx(want, rel=0.04)


def test_same_seed_same_image_different_seed_different_image():
    clean = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(add_level_noise(clean, 3, seed=5), add_level_noise(clean, 3, seed=5))
    assert not torch.equal(add_level_noise(clean, 3, seed=5), add_level_noise(clean, 3, seed=6))


def test_training_sampler_ranges():
    g = torch.Generator().manual_seed(0)
    read, shot = sample_training_sigmas(10000, g)
    assert read.min() >= 1e-3 and read.max() <= 10**-1.5
    assert shot.min() >= 1e-2 and shot.max() <= 1e-1
    # log-uniform: the median sits at the middle of the log range
    assert float(torch.log10(read).median()) == pytest.approx(-2.25, abs=0.05)
    wide_read, wide_shot = sample_training_sigmas(10000, g, wide=True)
    assert wide_read.max() > LEVELS[4][0] and wide_shot.max() > LEVELS[4][1]


def test_per_image_sigmas_broadcast():
    clean = torch.full((2, 3, 64, 64), 0.5)
    noisy = add_noise(clean, torch.tensor([0.001, 0.08]), torch.tensor([0.01, 0.18]), torch.Generator().manual_seed(0))
    assert (noisy[0] - 0.519).std() < (noisy[1] - 0.519).std() / 5


# -- camera-like noise (noise/camera.py) ------------------------------------------------------------------

def _picture(h: int = 96, w: int = 128, batch: int = 4) -> torch.Tensor:
    from conftest import textured

    return torch.stack([torch.from_numpy(textured(h, w, seed=s)).permute(2, 0, 1) for s in range(batch)])


def _neighbour_correlation(d: torch.Tensor) -> float:
    d = d - d.mean(dim=(2, 3), keepdim=True)
    return float((d[..., :, 1:] * d[..., :, :-1]).mean() / (d**2).mean())


def test_camera_noise_is_spatially_correlated_where_read_shot_noise_is_not():
    from jcdcodec.noise.camera import add_camera_noise, camera_level_params

    x = _picture()
    cam = add_camera_noise(x, camera_level_params(3, 4), torch.Generator().manual_seed(0)) - x
    iid = add_noise(x, *LEVELS[1], generator=torch.Generator().manual_seed(0), gamma="srgb") - x
    assert _neighbour_correlation(cam) > 0.3  # demosaicking spreads each sample over its neighbours
    assert abs(_neighbour_correlation(iid)) < 0.05
    rg = float((cam[:, 0] * cam[:, 1]).mean() / (cam**2).mean())
    assert abs(rg) > 0.1  # and the colour matrix mixes the channels


@pytest.mark.parametrize("level", [1, 2, 3])
def test_camera_noise_keeps_the_brightness(level):
    from jcdcodec.noise.camera import add_camera_noise, camera_level_params

    x = _picture()
    y = add_camera_noise(x, camera_level_params(level, 4), torch.Generator().manual_seed(1))
    assert abs(float((y - x).mean())) * 255 < 0.3


def test_camera_noise_is_deterministic_per_seed_and_spans_the_real_range():
    from jcdcodec.noise.camera import add_camera_noise, sample_camera_params

    x = _picture(64, 64, 8)

    def draw(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return add_camera_noise(x, sample_camera_params(8, g), g)

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))
    psnrs = []
    g = torch.Generator().manual_seed(0)
    for _ in range(12):
        p = sample_camera_params(8, g, jpeg_fraction=0.0)
        y = add_camera_noise(x, p, g)
        psnrs += (-10 * torch.log10(((y - x) ** 2).mean(dim=(1, 2, 3)))).tolist()
    # The PolyU pairs lie at 32-41 dB: the sampler covers them and goes beyond on both sides.
    assert min(psnrs) < 30 and max(psnrs) > 43
    assert sum(32 <= v <= 41 for v in psnrs) > len(psnrs) // 4


def test_camera_noise_jpeg_and_odd_sizes():
    from jcdcodec.noise.camera import CameraParams, add_camera_noise, camera_level_params

    x = _picture(33, 47, 2)
    p = camera_level_params(2, 2)
    plain = add_camera_noise(x, p, torch.Generator().manual_seed(0))
    assert plain.shape == x.shape
    jp = CameraParams(p.shot, p.read_var, p.ccm, p.wb, torch.tensor([75, 0]))
    y = add_camera_noise(x, jp, torch.Generator().manual_seed(0))
    assert torch.allclose(y[0] * 255, (y[0] * 255).round(), atol=1e-4)  # decoded JPEG: on the 8-bit grid
    assert not torch.allclose(y[0], plain[0], atol=1 / 255) and torch.equal(y[1], plain[1])


def test_training_batches_can_carry_camera_noise():
    from jcdcodec.train.data import PatchSampler

    ims = [(_picture(96, 96, 1)[0] * 255).round().byte() for _ in range(2)]
    s = PatchSampler(ims, 64, 4, noise="camera")
    b = s.sample(torch.Generator().manual_seed(0))
    assert not torch.equal(b.noisy, b.clean) and _neighbour_correlation(b.noisy - b.clean) > 0.2
    mixed = PatchSampler(ims, 64, 4, noise="mix")
    kinds = set()
    for k in range(12):
        d = mixed.sample(torch.Generator().manual_seed(k))
        kinds.add(_neighbour_correlation(d.noisy - d.clean) > 0.2)
    assert kinds == {True, False}
