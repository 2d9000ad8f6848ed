"""Gram matrices, style/content targets and the combined objective, against hand computations."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from audiostyle.errors import ConfigError
from audiostyle.networks import RandomCNN
from audiostyle.networks.random import split_filters
from audiostyle.objective import ContentTargets, Objective, StyleStatistics, gram

pytestmark = pytest.mark.usefixtures("single_thread")

N_FREQ = 65  # n_fft = 128


def _log_magnitude(rng: np.random.Generator, channels: int, frames: int, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.log1p(3 * np.abs(rng.standard_normal((channels, N_FREQ, frames))))).to(dtype)


def _hand_style_loss(maps, style_grams) -> torch.Tensor:
    """sum over layers of mean over batch of ||G_x - G_s||^2 / ||G_s||^2, straight from the definition."""
    total = 0.0
    for features, style_gram in zip(maps, style_grams):
        frames = features.shape[-1]
        grams = torch.einsum("bkt,blt->bkl", features, features) / frames
        distance = ((grams - style_gram) ** 2).sum((-1, -2))
        total = total + (distance / (style_gram**2).sum()).mean()
    return total


def _pooled_gram(feature_map: torch.Tensor) -> torch.Tensor:
    """Gram of a style's channels concatenated over time."""
    pooled = torch.cat(list(feature_map), dim=-1)
    return pooled @ pooled.T / pooled.shape[-1]


@pytest.mark.parametrize("shape", [(4, 7), (3, 5, 9), (2, 3, 6, 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gram_is_f_ft_over_frames(rng, device, shape, dtype):
    features = torch.from_numpy(rng.standard_normal(shape)).to(device=device, dtype=dtype)
    result = gram(features)
    assert tuple(result.shape) == (*shape[:-1], shape[-2])
    expected = torch.from_numpy(np.einsum("...kt,...lt->...kl", features.cpu().double().numpy(), features.cpu().double().numpy()) / shape[-1])
    torch.testing.assert_close(result.cpu().double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result, result.transpose(-1, -2))


# frames + style_frames < channels selects the frame-product form; otherwise the direct Gram form.
REGIMES = [
    pytest.param(256, (3,), 20, [30], id="product-one-style"),
    pytest.param(256, (3, 5), 15, [12, 25], id="product-two-styles-two-layers"),
    # 129 and 128 channels: two layers of different widths.
    pytest.param(257, (3, 5), 15, [12, 25], id="product-two-layers-unequal"),
    pytest.param(16, (3,), 20, [30], id="direct-one-style"),
    pytest.param(32, (3, 5), 15, [12, 25], id="direct-two-styles-two-layers"),
    pytest.param(96, (3,), 40, [60], id="direct-near-boundary"),
]


@pytest.mark.parametrize("filters, widths, frames, style_frames", REGIMES)
def test_regimes_select_the_intended_form(request, filters, widths, frames, style_frames):
    """Guards the parametrisation: each case really exercises the form its id names."""
    wanted = request.node.callspec.id.startswith("product")
    for channels in split_filters(filters, len(widths)):
        assert (frames + sum(style_frames) < channels) == wanted


@pytest.mark.parametrize("filters, widths, frames, style_frames", REGIMES)
@pytest.mark.parametrize("batch", [1, 2])
def test_style_loss_matches_gram_distance(rng, device, filters, widths, frames, style_frames, batch):
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=widths, seed=1).to(device)
    styles = [_log_magnitude(rng, 1, n).to(device) for n in style_frames]
    weights = [0.3, 0.7][: len(styles)]
    statistics = StyleStatistics.from_log_magnitudes(net, styles, weights)
    maps = net(_log_magnitude(rng, batch, frames).to(device))

    style_grams = []
    for index in range(len(widths)):
        total = sum(weights)
        style_grams.append(sum(w / total * _pooled_gram(net(s)[index]) for w, s in zip(weights, styles)))
    expected = _hand_style_loss(maps, style_grams)
    loss = statistics.loss(maps)
    assert loss.ndim == 0
    assert float(expected) > 1e-3  # a real distance, not a cancellation test
    torch.testing.assert_close(loss, expected, rtol=1e-3, atol=0)


@pytest.mark.parametrize("filters, widths, frames, style_frames", REGIMES)
def test_style_loss_gradient_matches_gram_distance(rng, filters, widths, frames, style_frames):
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=widths, seed=1)
    styles = [_log_magnitude(rng, 1, n, torch.float64) for n in style_frames]
    statistics = StyleStatistics.from_log_magnitudes(net, styles)
    style_grams = [
        sum(_pooled_gram(net(s)[i]) for s in styles) / len(styles) for i in range(len(widths))
    ]
    x = _log_magnitude(rng, 1, frames, torch.float64).requires_grad_(True)
    statistics.loss(net(x)).backward()
    ours = x.grad.clone()
    x.grad = None
    _hand_style_loss(net(x), style_grams).backward()
    torch.testing.assert_close(ours, x.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("filters, frames", [(256, 20), (16, 20)], ids=["product", "direct"])
def test_style_loss_of_the_style_itself_is_zero(rng, device, filters, frames):
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=(3,), seed=0).to(device)
    style = _log_magnitude(rng, 1, frames).to(device)
    statistics = StyleStatistics.from_log_magnitudes(net, [style])
    assert float(statistics.loss(net(style))) < 1e-4
    assert float(statistics.loss(net(_log_magnitude(rng, 1, frames).to(device)))) > 1e-3


def test_stereo_style_pools_both_channels(rng):
    net = RandomCNN(N_FREQ, filters=48, kernel_widths=(3, 5), seed=0)
    stereo = _log_magnitude(rng, 2, 25)
    statistics = StyleStatistics.from_log_magnitudes(net, [stereo])
    maps = net(stereo)
    for layer, feature_map in zip(statistics.layers, maps):
        expected = _pooled_gram(feature_map)
        torch.testing.assert_close(layer.gram, expected, rtol=1e-5, atol=1e-6)
        # ... which is the mean of the channels' own Grams (equal lengths), not either one.
        torch.testing.assert_close(layer.gram, gram(feature_map).mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(layer.norm2, expected.square().sum(), rtol=1e-5, atol=0)
    assert statistics.layer_indices == (0, 1)
    assert statistics.n_freq == N_FREQ


@pytest.mark.parametrize("filters", [256, 16], ids=["product", "direct"])
def test_stereo_style_loss_matches_pooled_gram(rng, filters):
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=(3,), seed=0)
    stereo = _log_magnitude(rng, 2, 30)
    statistics = StyleStatistics.from_log_magnitudes(net, [stereo])
    maps = net(_log_magnitude(rng, 2, 20))
    expected = _hand_style_loss(maps, [_pooled_gram(net(stereo)[0])])
    torch.testing.assert_close(statistics.loss(maps), expected, rtol=1e-3, atol=0)


def test_blend_weights_are_normalised(rng):
    net = RandomCNN(N_FREQ, filters=32, kernel_widths=(3,), seed=0)
    styles = [_log_magnitude(rng, 1, 20), _log_magnitude(rng, 1, 30)]
    scaled = StyleStatistics.from_log_magnitudes(net, styles, [2.0, 6.0])
    unit = StyleStatistics.from_log_magnitudes(net, styles, [0.25, 0.75])
    torch.testing.assert_close(scaled.layers[0].gram, unit.layers[0].gram)
    maps = net(_log_magnitude(rng, 1, 20))
    torch.testing.assert_close(scaled.loss(maps), unit.loss(maps))


def test_default_weights_are_equal(rng):
    net = RandomCNN(N_FREQ, filters=32, kernel_widths=(3,), seed=0)
    styles = [_log_magnitude(rng, 1, 20), _log_magnitude(rng, 1, 30)]
    default = StyleStatistics.from_log_magnitudes(net, styles)
    halves = StyleStatistics.from_log_magnitudes(net, styles, [0.5, 0.5])
    torch.testing.assert_close(default.layers[0].gram, halves.layers[0].gram)


@pytest.mark.parametrize("filters", [256, 16], ids=["product", "direct"])
def test_blend_with_zero_weight_equals_single_style(rng, filters):
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=(3, 5), seed=0)
    style_a, style_b = _log_magnitude(rng, 1, 20), _log_magnitude(rng, 1, 30)
    blend = StyleStatistics.from_log_magnitudes(net, [style_a, style_b], [1.0, 0.0])
    alone = StyleStatistics.from_log_magnitudes(net, [style_a])
    for a, b in zip(blend.layers, alone.layers):
        torch.testing.assert_close(a.gram, b.gram)
        torch.testing.assert_close(a.norm2, b.norm2)
    maps = net(_log_magnitude(rng, 1, 25))
    torch.testing.assert_close(blend.loss(maps), alone.loss(maps), rtol=1e-5, atol=1e-7)


def test_half_half_blend_is_the_average_gram(rng):
    net = RandomCNN(N_FREQ, filters=32, kernel_widths=(3, 7), seed=0)
    style_a, style_b = _log_magnitude(rng, 1, 20), _log_magnitude(rng, 1, 30)
    blend = StyleStatistics.from_log_magnitudes(net, [style_a, style_b], [0.5, 0.5])
    only_a = StyleStatistics.from_log_magnitudes(net, [style_a])
    only_b = StyleStatistics.from_log_magnitudes(net, [style_b])
    for mixed, a, b in zip(blend.layers, only_a.layers, only_b.layers):
        torch.testing.assert_close(mixed.gram, (a.gram + b.gram) / 2)


@pytest.mark.parametrize(
    "weights, count",
    [([-1.0, 2.0], 2), ([0.0, 0.0], 2), ([0.0], 1), ([1.0], 2), ([1.0, 1.0, 1.0], 2), ([-0.5], 1)],
)
def test_bad_blend_weights(rng, weights, count):
    net = RandomCNN(N_FREQ, filters=16, kernel_widths=(3,), seed=0)
    styles = [_log_magnitude(rng, 1, 20) for _ in range(count)]
    with pytest.raises(ConfigError, match="weights"):
        StyleStatistics.from_log_magnitudes(net, styles, weights)


def test_no_style_is_an_error():
    net = RandomCNN(N_FREQ, filters=16, kernel_widths=(3,), seed=0)
    with pytest.raises(ConfigError, match="style"):
        StyleStatistics.from_log_magnitudes(net, [])


def test_style_statistics_move_between_devices(rng, device):
    net = RandomCNN(N_FREQ, filters=256, kernel_widths=(3,), seed=0)
    statistics = StyleStatistics.from_log_magnitudes(net, [_log_magnitude(rng, 1, 20)])
    x = _log_magnitude(rng, 1, 20)
    moved = copy.deepcopy(statistics).to(device)  # a module: .to() moves it in place
    assert moved.layers[0].gram.device.type == device.type
    assert moved.layers[0].rows.device.type == moved.layers[0].row_weights.device.type == device.type
    on_device = moved.loss(net.to(device)(x.to(device)))
    torch.testing.assert_close(on_device.cpu(), statistics.loss(net.to("cpu")(x)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("widths", [(3,), (3, 5, 7)])
@pytest.mark.parametrize("channels", [1, 2])
def test_content_loss(rng, device, widths, channels):
    net = RandomCNN(N_FREQ, filters=48, kernel_widths=widths, seed=0).to(device)
    content = _log_magnitude(rng, channels, 25).to(device)
    targets = ContentTargets.from_log_magnitude(net, content)
    assert targets.layer_indices == (len(widths) - 1,)
    assert float(targets.loss(net(content))) == 0.0
    other = _log_magnitude(rng, channels, 25).to(device)
    content_features = net(content)[-1]
    other_features = net(other)[-1]
    expected = (other_features - content_features).square().mean() / content_features.square().mean()
    loss = targets.loss(net(other))
    assert float(loss) > 0.01
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=0)


@pytest.mark.parametrize("channels", [1, 2])
def test_content_loss_gradient_matches_autograd(rng, channels):
    net = RandomCNN(N_FREQ, filters=48, kernel_widths=(3, 5), seed=0)
    targets = ContentTargets.from_log_magnitude(net, _log_magnitude(rng, channels, 25, torch.float64))
    x = _log_magnitude(rng, channels, 25, torch.float64).requires_grad_(True)
    (3.0 * targets.loss(net(x))).backward()
    ours = x.grad.clone()
    x.grad = None
    features, target = net(x)[-1], targets.features[0]
    (3.0 * (features - target).square().mean() / target.square().mean()).backward()
    torch.testing.assert_close(ours, x.grad, rtol=1e-9, atol=1e-12)


def test_content_loss_of_silence_is_finite(rng):
    net = RandomCNN(N_FREQ, filters=16, kernel_widths=(3,), seed=0)
    targets = ContentTargets.from_log_magnitude(net, torch.zeros(1, N_FREQ, 20))
    loss = targets.loss(net(_log_magnitude(rng, 1, 20)))
    assert bool(torch.isfinite(loss)) and float(loss) > 0


@pytest.mark.parametrize("content_weight, style_weight", [(1.0, 100.0), (0.5, 0.0), (2.0, 3.0)])
def test_objective_combines_weighted_parts(rng, device, content_weight, style_weight):
    net = RandomCNN(N_FREQ, filters=64, kernel_widths=(3, 5), seed=0).to(device)
    content = _log_magnitude(rng, 1, 20).to(device)
    style = StyleStatistics.from_log_magnitudes(net, [_log_magnitude(rng, 1, 30).to(device)])
    targets = ContentTargets.from_log_magnitude(net, content)
    objective = Objective(net, style, targets, content_weight=content_weight, style_weight=style_weight)
    x = _log_magnitude(rng, 1, 20).to(device).requires_grad_(True)
    total, parts = objective(x)
    assert set(parts) == {"content", "style"}
    assert not parts["content"].requires_grad and not parts["style"].requires_grad
    torch.testing.assert_close(parts["style"], style.loss(net(x)).detach())
    torch.testing.assert_close(parts["content"], targets.loss(net(x)).detach())
    torch.testing.assert_close(total.detach(), content_weight * parts["content"] + style_weight * parts["style"])
    total.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("filters, widths, frames, style_frames", REGIMES)
@pytest.mark.parametrize("batch", [1, 2])
def test_style_and_content_gradient_matches_autograd(rng, filters, widths, frames, style_frames, batch):
    """Style and content on the same map share one product: value and gradient against the
    definitions through autograd, in float64, for both forms and one or two batch items."""
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=widths, seed=2).double()
    styles = [_log_magnitude(rng, 1, n, torch.float64) for n in style_frames]
    statistics = StyleStatistics.from_log_magnitudes(net, styles, [0.3, 0.7][: len(styles)])
    targets = ContentTargets.from_log_magnitude(net, _log_magnitude(rng, batch, frames, torch.float64))
    objective = Objective(net, statistics, targets, content_weight=2.0, style_weight=5.0)
    x = _log_magnitude(rng, batch, frames, torch.float64).requires_grad_(True)
    total, parts = objective(x)
    total.backward()
    ours = x.grad.clone()
    x.grad = None

    maps = net(x)
    grams = [layer.gram for layer in statistics.layers]
    style = _hand_style_loss(maps, grams)
    content = (maps[-1] - targets.features[0]).square().mean() / targets.features[0].square().mean()
    (2.0 * content + 5.0 * style).backward()
    torch.testing.assert_close(parts["style"], style.detach(), rtol=1e-9, atol=0)
    torch.testing.assert_close(parts["content"], content.detach(), rtol=1e-9, atol=0)
    torch.testing.assert_close(ours, x.grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("content_weight", [1.0, 0.0])
def test_objective_texture_mode_has_only_style(rng, content_weight):
    net = RandomCNN(N_FREQ, filters=64, kernel_widths=(3,), seed=0)
    style = StyleStatistics.from_log_magnitudes(net, [_log_magnitude(rng, 1, 30)])
    content = ContentTargets.from_log_magnitude(net, _log_magnitude(rng, 1, 20)) if content_weight == 0 else None
    objective = Objective(net, style, content, content_weight=content_weight, style_weight=10.0)
    x = _log_magnitude(rng, 1, 20)
    total, parts = objective(x)
    assert set(parts) == {"style"}
    torch.testing.assert_close(total, 10.0 * parts["style"])


def test_objective_treats_negative_log_magnitude_as_zero(rng):
    net = RandomCNN(N_FREQ, filters=64, kernel_widths=(3,), seed=0)
    style = StyleStatistics.from_log_magnitudes(net, [_log_magnitude(rng, 1, 30)])
    objective = Objective(net, style, None, content_weight=0.0, style_weight=1.0)
    x = torch.from_numpy(rng.standard_normal((1, N_FREQ, 20)).astype(np.float32))
    torch.testing.assert_close(objective(x)[0], objective(x.clamp_min(0))[0])


def test_loudness_contour_is_zero_for_the_content_and_grows_with_level_changes(rng):
    from audiostyle.objective import LoudnessContour

    content = torch.from_numpy(rng.random((2, 65, 40), dtype=np.float32)) * 3
    contour = LoudnessContour.from_log_magnitude(content)
    assert contour.level.shape == (2, 40)
    assert float(contour.loss(content)) == pytest.approx(0.0, abs=1e-10)
    # A fade applied to the content's linear magnitude changes its level per frame.
    fade = torch.linspace(1.0, 0.1, 40)
    faded = torch.log1p(torch.expm1(content) * fade)
    louder = torch.log1p(torch.expm1(content) * 2.0)
    assert float(contour.loss(faded)) > 0.1
    # A uniform gain changes every frame alike: the loss sees it, but less than the fade.
    assert 0 < float(contour.loss(louder)) < float(contour.loss(faded)) * 10
    # The same level with another spectrum inside each frame costs nothing.
    shuffled = content[:, torch.randperm(65), :]
    assert float(contour.loss(shuffled)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("batch", [1, 2])
def test_loudness_contour_gradient_matches_autograd(rng, batch):
    """The hand-written gradient equals autograd through the definition, negative entries included."""
    from audiostyle.objective import LoudnessContour

    content = torch.from_numpy(rng.random((batch, 65, 30))) * 3
    contour = LoudnessContour.from_log_magnitude(content)
    x = (torch.from_numpy(rng.standard_normal((batch, 65, 30))) + 1).requires_grad_(True)
    (2.0 * contour.loss(x)).backward()
    ours = x.grad.clone()
    x.grad = None
    level = torch.log(torch.expm1(x.clamp_min(0)).square().mean(-2) + contour.floor)
    expected = ((level - contour.level).square().mean(-1) / contour.scale).mean()
    torch.testing.assert_close(contour.loss(x.detach()), expected.detach(), rtol=1e-10, atol=0)
    (2.0 * expected).backward()
    assert bool((x.detach() < 0).any())
    torch.testing.assert_close(ours, x.grad, rtol=1e-9, atol=1e-12)


def test_loudness_contour_of_silence_is_finite():
    from audiostyle.objective import LoudnessContour

    silence = torch.zeros(1, 33, 20)
    contour = LoudnessContour.from_log_magnitude(silence)
    x = torch.rand(1, 33, 20, requires_grad=True)
    loss = contour.loss(x)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_objective_adds_the_weighted_envelope_term(rng):
    from audiostyle.objective import LoudnessContour

    network = RandomCNN(65, filters=32, kernel_widths=(3,))
    content = torch.from_numpy(rng.random((1, 65, 30), dtype=np.float32))
    style = StyleStatistics.from_log_magnitudes(network, [torch.from_numpy(rng.random((1, 65, 25), dtype=np.float32))])
    targets = ContentTargets.from_log_magnitude(network, content)
    contour = LoudnessContour.from_log_magnitude(content)
    x = content * torch.linspace(0.2, 1.5, 30)
    plain, parts = Objective(network, style, targets, content_weight=1.0, style_weight=2.0)(x)
    with_envelope, parts_e = Objective(
        network, style, targets, content_weight=1.0, style_weight=2.0, envelope=contour, envelope_weight=5.0
    )(x)
    assert "envelope" not in parts and float(parts_e["envelope"]) > 0
    assert float(with_envelope) == pytest.approx(float(plain) + 5.0 * float(parts_e["envelope"]), rel=1e-5)


def test_shared_front_end_equals_the_terms_computed_apart(rng):
    """Mel network, texture and contour read one expanded magnitude and one band product:
    the objective must equal (value and gradient) the sum of each term's own loss."""
    from audiostyle.networks import MelBands
    from audiostyle.objective import LoudnessContour
    from audiostyle.objective.texture import TextureStatistics

    sample_rate, n_fft = 8000, 128
    network = MelBands(RandomCNN(24, filters=32, kernel_widths=(3,)), sample_rate=sample_rate, n_fft=n_fft, n_bands=24)
    content = _log_magnitude(rng, 1, 40, torch.float64)
    style_mag = _log_magnitude(rng, 1, 30, torch.float64)
    network = network.double()
    style = StyleStatistics.from_log_magnitudes(network, [style_mag])
    targets = ContentTargets.from_log_magnitude(network, content)
    texture = TextureStatistics.from_log_magnitudes([style_mag], [1.0], sample_rate=sample_rate, n_fft=n_fft, hop_length=32)
    texture = TextureStatistics(
        {k: v.double() for k, v in texture.targets.items()}, texture.filters.double(), texture.frame_rate,
        texture.floor.double(), texture.steady,
    )
    contour = LoudnessContour.from_log_magnitude(content)
    objective = Objective(
        network, style, targets, content_weight=1.0, style_weight=3.0,
        texture=texture, texture_weight=2.0, envelope=contour, envelope_weight=5.0,
    )
    x = (content + 0.3 * torch.from_numpy(rng.standard_normal(content.shape))).requires_grad_(True)
    total, parts = objective(x)
    total.backward()
    shared_grad = x.grad.clone()
    x.grad = None
    clamped = x.clamp_min(0)
    maps = network(clamped)
    apart = 3.0 * style.loss(maps) + targets.loss(maps) + 2.0 * texture.loss(clamped) + 5.0 * contour.loss(clamped)
    apart.backward()
    torch.testing.assert_close(total, apart)
    torch.testing.assert_close(shared_grad, x.grad)
    assert set(parts) == {"style", "content", "texture", "envelope"}
    torch.testing.assert_close(parts["texture"], texture.loss(clamped).detach())
    # Switching the texture term off and on again after construction re-stacks the bands.
    objective.texture_weight = 0.0
    without, parts_without = objective(x)
    assert "texture" not in parts_without
    torch.testing.assert_close(without, apart.detach() - 2.0 * parts["texture"])
    objective.texture_weight = 2.0
    torch.testing.assert_close(objective(x)[0], total.detach())
    off_at_first = Objective(
        network, style, targets, content_weight=1.0, style_weight=3.0,
        texture=texture, texture_weight=0.0, envelope=contour, envelope_weight=5.0,
    )
    torch.testing.assert_close(off_at_first(x)[0], without)
    off_at_first.texture_weight = 2.0
    torch.testing.assert_close(off_at_first(x)[0], total.detach())


def test_blend_statistics_are_the_weighted_grams():
    net = RandomCNN(65, filters=16, kernel_widths=(3,), seed=1)
    a, b = torch.rand(1, 65, 30), torch.rand(1, 65, 50) * 2
    blended = StyleStatistics.from_log_magnitudes(net, [a, b], [7, 3])  # normalised to 0.7, 0.3
    grams = [gram(net(x)[0][0]) for x in (a, b)]
    assert torch.allclose(blended.layers[0].gram, 0.7 * grams[0] + 0.3 * grams[1], atol=1e-5)
    alone = StyleStatistics.from_log_magnitudes(net, [a, b], [1, 0])
    assert torch.allclose(alone.layers[0].gram, grams[0], atol=1e-5)
