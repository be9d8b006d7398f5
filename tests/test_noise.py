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
