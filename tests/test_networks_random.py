"""The random CNN feature network: shapes, seeding, agreement with conv1d, errors; build_network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audiostyle.errors import ConfigError
from audiostyle.networks import FeatureNetwork, MelBands, RandomCNN, build_network
from audiostyle.networks.base import band_front_end, content_layer_indices, style_layer_indices
from audiostyle.networks.random import split_filters

pytestmark = pytest.mark.usefixtures("single_thread")

N_FREQ = 129  # n_fft = 256


def _log_magnitude(rng: np.random.Generator, batch: int, frames: int, n_freq: int = N_FREQ) -> torch.Tensor:
    return torch.from_numpy(np.log1p(np.abs(rng.standard_normal((batch, n_freq, frames)))).astype(np.float32))


def _reference(net: RandomCNN, log_magnitude: torch.Tensor) -> list[torch.Tensor]:
    """conv1d + ReLU with the network's weights; row j * n_freq + f holds tap j, bin f."""
    maps = []
    for width, dilation, weight in zip(net.kernel_widths, net.dilations, net.weights):
        kernel = weight.reshape(width, net.n_freq, -1).permute(2, 1, 0)  # (K, n_freq, width)
        reach = (width // 2) * dilation
        if net.padding == "circular":
            padded = torch.cat([log_magnitude[..., log_magnitude.shape[-1] - reach :], log_magnitude, log_magnitude[..., :reach]], -1)
            maps.append(torch.relu(F.conv1d(padded, kernel, dilation=dilation)))
        else:
            maps.append(torch.relu(F.conv1d(log_magnitude, kernel, padding=reach, dilation=dilation)))
    return maps


#: (kernel widths, dilations) with and without dilation, one branch and several.
KERNELS = [((1,), ()), ((3,), ()), ((11,), ()), ((3, 7, 15), ()), ((3,), (2,)), ((3, 3), (1, 3)), ((3, 5, 3), (1, 2, 4))]


@pytest.mark.parametrize(
    "filters, widths",
    [(16, (3,)), (64, (11,)), (64, (3, 7, 15)), (100, (1, 3, 5)), (256, (3, 7)), (17, (5, 9, 1, 3))],
)
@pytest.mark.parametrize("batch, frames", [(1, 20), (2, 33)])
def test_output_shapes(rng, device, filters, widths, batch, frames):
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=widths, seed=0).to(device)
    maps = net(_log_magnitude(rng, batch, frames).to(device))
    assert isinstance(maps, list) and len(maps) == len(widths)
    counts = split_filters(filters, len(widths))
    assert sum(counts) == filters and max(counts) - min(counts) <= 1
    for feature_map, count in zip(maps, counts):
        assert tuple(feature_map.shape) == (batch, count, frames)
        assert feature_map.device.type == device.type
        assert bool((feature_map >= 0).all())


@pytest.mark.parametrize("filters, n_widths, expected", [(10, 3, [4, 3, 3]), (9, 3, [3, 3, 3]), (5, 5, [1] * 5), (7, 1, [7])])
def test_split_filters(filters, n_widths, expected):
    assert split_filters(filters, n_widths) == expected


def test_weight_layout_and_scale():
    filters, widths = 256, (3, 11)
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=widths, seed=0)
    for width, weight, count in zip(widths, net.weights, split_filters(filters, len(widths))):
        assert tuple(weight.shape) == (width * N_FREQ, count)
        expected_std = np.sqrt(2) * np.sqrt(2.0 / ((N_FREQ + filters) * width))
        assert abs(float(weight.std()) / expected_std - 1) < 0.05


def test_weights_are_buffers_not_parameters():
    net = RandomCNN(N_FREQ, filters=32, kernel_widths=(3, 5))
    assert list(net.parameters()) == []
    assert sorted(dict(net.named_buffers())) == ["weight0", "weight1"]


def test_same_seed_same_weights():
    first = RandomCNN(N_FREQ, filters=64, kernel_widths=(3, 7), seed=123)
    second = RandomCNN(N_FREQ, filters=64, kernel_widths=(3, 7), seed=123)
    for a, b in zip(first.weights, second.weights):
        assert torch.equal(a, b)


def test_seed_independent_of_global_rng():
    torch.manual_seed(1)
    first = RandomCNN(N_FREQ, filters=32, kernel_widths=(5,), seed=9)
    torch.manual_seed(2)
    torch.rand(100)
    second = RandomCNN(N_FREQ, filters=32, kernel_widths=(5,), seed=9)
    assert torch.equal(first.weights[0], second.weights[0])


def test_different_seed_different_weights():
    first = RandomCNN(N_FREQ, filters=64, kernel_widths=(3, 7), seed=0)
    second = RandomCNN(N_FREQ, filters=64, kernel_widths=(3, 7), seed=1)
    for a, b in zip(first.weights, second.weights):
        assert not torch.equal(a, b)
        assert float((a - b).abs().max()) > 1e-3


def test_same_seed_same_features_on_every_device(rng, device):
    log_magnitude = _log_magnitude(rng, 1, 24)
    on_cpu = RandomCNN(N_FREQ, filters=48, kernel_widths=(3, 9), seed=5)(log_magnitude)
    elsewhere = RandomCNN(N_FREQ, filters=48, kernel_widths=(3, 9), seed=5).to(device)(log_magnitude.to(device))
    for a, b in zip(on_cpu, elsewhere):
        torch.testing.assert_close(b.cpu(), a, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("padding", ["same", "circular"])
@pytest.mark.parametrize("widths, dilations", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_forward_matches_conv1d(rng, device, padding, widths, dilations, dtype):
    net = RandomCNN(N_FREQ, filters=96, kernel_widths=widths, dilations=dilations, seed=4, padding=padding).to(device)
    log_magnitude = _log_magnitude(rng, 2, 40).to(device=device, dtype=dtype)
    ours = net(log_magnitude)
    reference = _reference(net, log_magnitude.float())
    for a, b in zip(ours, reference):
        assert a.dtype == dtype
        torch.testing.assert_close(a.float(), b, atol=1e-4, rtol=1e-4)


def test_circular_padding_wraps_around(rng):
    """Circular features of a clip equal the middle of 'same' features of the clip tiled 3x."""
    net_circular = RandomCNN(N_FREQ, filters=32, kernel_widths=(7,), seed=2, padding="circular")
    net_same = RandomCNN(N_FREQ, filters=32, kernel_widths=(7,), seed=2, padding="same")
    log_magnitude = _log_magnitude(rng, 1, 25)
    circular = net_circular(log_magnitude)[0]
    tiled = net_same(log_magnitude.repeat(1, 1, 3))[0][..., 25:50]
    torch.testing.assert_close(circular, tiled, atol=1e-5, rtol=1e-5)
    # ... and differ from zero padding at the edges only.
    same = net_same(log_magnitude)[0]
    torch.testing.assert_close(circular[..., 3:-3], same[..., 3:-3], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(circular[..., :3], same[..., :3])


def test_same_padding_is_silence_at_the_edges(rng):
    net = RandomCNN(N_FREQ, filters=32, kernel_widths=(5,), seed=2)
    log_magnitude = _log_magnitude(rng, 1, 20)
    padded = torch.cat([torch.zeros(1, N_FREQ, 2), log_magnitude, torch.zeros(1, N_FREQ, 2)], -1)
    inner = net(padded)[0][..., 2:-2]
    torch.testing.assert_close(net(log_magnitude)[0], inner, atol=1e-5, rtol=1e-5)


def test_batch_equals_items(rng):
    net = RandomCNN(N_FREQ, filters=64, kernel_widths=(3, 9), seed=1)
    log_magnitude = _log_magnitude(rng, 3, 30)
    batched = net(log_magnitude)
    for item in range(3):
        for a, b in zip(batched, net(log_magnitude[item : item + 1])):
            torch.testing.assert_close(a[item : item + 1], b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("padding", ["same", "circular"])
def test_gradients_reach_the_input(rng, device, padding):
    net = RandomCNN(N_FREQ, filters=64, kernel_widths=(3, 7), seed=0, padding=padding).to(device)
    log_magnitude = _log_magnitude(rng, 2, 16).to(device).requires_grad_(True)
    sum(feature_map.square().sum() for feature_map in net(log_magnitude)).backward()
    assert log_magnitude.grad is not None
    assert log_magnitude.grad.shape == log_magnitude.shape
    assert bool(torch.isfinite(log_magnitude.grad).all())
    assert float(log_magnitude.grad.abs().sum()) > 0
    # Every frame influences the features.
    assert bool((log_magnitude.grad.abs().sum(1) > 0).all())


@pytest.mark.parametrize("filters", [48, 1200], ids=["per-tap", "one-product"])
@pytest.mark.parametrize("padding", ["same", "circular"])
@pytest.mark.parametrize("widths, dilations", [((1,), ()), ((5,), ()), ((3, 7, 15), ()), ((3, 3), (1, 3)), ((5, 3), (2, 1))])
def test_gradients_match_conv1d(rng, device, padding, widths, dilations, filters):
    """The backward pass (per tap, or one product for all taps when its buffer is no larger than
    the map) equals autograd through conv1d + ReLU, for every map used alone too."""
    net = RandomCNN(N_FREQ, filters=filters, kernel_widths=widths, dilations=dilations, seed=5, padding=padding).to(device)
    log_magnitude = _log_magnitude(rng, 2, 23).to(device=device, dtype=torch.float64)
    probes = [torch.randn(m.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64).to(device)
              for i, m in enumerate(net(log_magnitude))]
    for used in [range(len(widths)), [len(widths) - 1]]:
        ours = log_magnitude.clone().requires_grad_(True)
        sum((net(ours)[i] * probes[i]).sum() for i in used).backward()
        theirs = log_magnitude.clone().requires_grad_(True)
        sum((_reference(net.double(), theirs)[i] * probes[i]).sum() for i in used).backward()
        net.float()
        torch.testing.assert_close(ours.grad, theirs.grad, atol=1e-9, rtol=1e-7)


def test_dilation_spreads_taps_without_adding_weights(rng):
    plain = RandomCNN(N_FREQ, filters=32, kernel_widths=(3,), seed=6)
    dilated = RandomCNN(N_FREQ, filters=32, kernel_widths=(3,), dilations=(4,), seed=6)
    assert (plain.reach, dilated.reach) == (1, 4)
    assert torch.equal(plain.weights[0], dilated.weights[0])
    # An impulse at frame 10 reaches frames 6, 10 and 14 only.
    impulse = torch.zeros(1, N_FREQ, 21)
    impulse[..., 10] = 1.0
    touched = (dilated(impulse)[0].abs().sum(1)[0] > 0).nonzero().flatten().tolist()
    assert touched == [6, 10, 14]


@pytest.mark.parametrize("dilations", [(0,), (1, 2), (-1,)])
def test_bad_dilations(dilations):
    with pytest.raises(ConfigError, match="dilations"):
        RandomCNN(N_FREQ, filters=8, kernel_widths=(3,), dilations=dilations)


def test_outputs_are_non_negative_even_for_negative_input(rng):
    net = RandomCNN(N_FREQ, filters=64, kernel_widths=(3, 5), seed=0)
    maps = net(-_log_magnitude(rng, 1, 20) + torch.randn(1, N_FREQ, 20))
    for feature_map in maps:
        assert bool((feature_map >= 0).all())
        assert float(feature_map.max()) > 0


def test_zero_input_gives_zero_features():
    net = RandomCNN(N_FREQ, filters=32, kernel_widths=(3,), seed=0)
    assert float(net(torch.zeros(1, N_FREQ, 10))[0].abs().max()) == 0.0


def test_build_network_random():
    net = build_network("random", n_freq=N_FREQ, sample_rate=16000, n_fft=256, filters=48,
                        kernel_widths=(3, 5), seed=3, padding="circular")
    assert isinstance(net, RandomCNN)
    assert net.n_freq == N_FREQ and net.kernel_widths == (3, 5) and net.padding == "circular"
    reference = RandomCNN(N_FREQ, filters=48, kernel_widths=(3, 5), seed=3)
    for a, b in zip(net.weights, reference.weights):
        assert torch.equal(a, b)


def test_build_network_passes_modules_through():
    module = torch.nn.Identity()
    assert build_network(module, n_freq=N_FREQ, sample_rate=16000, n_fft=256) is module
    net = RandomCNN(N_FREQ, filters=16)
    assert build_network(net, n_freq=999, sample_rate=16000, n_fft=256) is net


def test_random_cnn_is_a_feature_network():
    net = RandomCNN(N_FREQ, filters=16, kernel_widths=(3, 5))
    assert isinstance(net, FeatureNetwork)
    assert isinstance(net, torch.nn.Module)
    # Without its own choice, the last map feeds the content loss and all maps the style loss.
    assert tuple(content_layer_indices(net, 2)) == (1,)
    assert tuple(style_layer_indices(net, 2)) == (0, 1)


def test_layer_choice_attributes_are_honoured():
    net = RandomCNN(N_FREQ, filters=16, kernel_widths=(3, 5, 7))
    net.content_layers = (0,)
    net.style_layers = (1, 2)
    assert tuple(content_layer_indices(net, 3)) == (0,)
    assert tuple(style_layer_indices(net, 3)) == (1, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kernel_widths=(2,)), "kernel width"),
        (dict(kernel_widths=(3, 4)), "kernel width"),
        (dict(kernel_widths=(0,)), "kernel width"),
        (dict(kernel_widths=(-3,)), "kernel width"),
        (dict(kernel_widths=()), "kernel_widths"),
        (dict(filters=2, kernel_widths=(3, 5, 7)), "filters"),
        (dict(filters=0), "filters"),
        (dict(padding="reflect"), "padding"),
        (dict(padding="zeros"), "padding"),
    ],
)
def test_bad_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RandomCNN(N_FREQ, **{"filters": 16, **kwargs})


@pytest.mark.parametrize("n_freq", [0, -1])
def test_bad_n_freq(n_freq):
    with pytest.raises(ConfigError, match="n_freq"):
        RandomCNN(n_freq, filters=16)


@pytest.mark.parametrize("shape", [(N_FREQ, 20), (1, N_FREQ - 1, 20), (1, N_FREQ + 1, 20), (1, 1, N_FREQ, 20), (20,)])
def test_wrong_input_shape(shape):
    net = RandomCNN(N_FREQ, filters=16)
    with pytest.raises(ConfigError, match="input shape"):
        net(torch.zeros(shape))


def test_circular_padding_wraps_clips_shorter_than_the_kernel():
    net = RandomCNN(N_FREQ, filters=16, kernel_widths=(15,), padding="circular")
    x = torch.rand(1, N_FREQ, 5, generator=torch.Generator().manual_seed(3))
    wrapped = x[..., torch.arange(-7, 5 + 7) % 5]
    weight = net.weights[0].reshape(15, N_FREQ, 16).permute(2, 1, 0)
    reference = torch.relu(torch.nn.functional.conv1d(wrapped, weight))
    (out,) = net(x)
    assert out.shape == (1, 16, 5)
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n_fft, bands", [(256, 32), (256, 100), (2048, 256)])
def test_mel_bands_front_end(rng, n_fft, bands):
    """Each band averages magnitudes (rows sum to 1, none empty); features are the inner network's."""
    n_freq = n_fft // 2 + 1
    net = build_network("random", n_freq=n_freq, sample_rate=22050, n_fft=n_fft, filters=24,
                        kernel_widths=(3, 5), seed=2, mel_bands=bands)
    assert isinstance(net, MelBands) and isinstance(net, FeatureNetwork)
    assert tuple(net.bands.shape) == (bands, n_freq)
    torch.testing.assert_close(net.bands.sum(-1), torch.ones(bands))
    assert bool((net.bands >= 0).all())
    log_magnitude = _log_magnitude(rng, 2, 17, n_freq).requires_grad_(True)
    maps = net(log_magnitude)
    assert [tuple(m.shape) for m in maps] == [(2, 12, 17), (2, 12, 17)]
    expected = net.network(torch.log1p(net.bands @ torch.expm1(log_magnitude.detach())))
    for a, b in zip(maps, expected):
        torch.testing.assert_close(a, b)
    sum(m.square().sum() for m in maps).backward()
    assert bool(torch.isfinite(log_magnitude.grad).all())
    # Every band reads some bin, so every band's input moves the features.
    assert int((log_magnitude.grad.abs().sum((0, 2)) > 0).sum()) >= bands


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_mel_bands_gradient_matches_autograd(rng, dtype):
    """The hand-written front-end gradient is autograd's, also at negative entries and exact zeros."""
    net = build_network("random", n_freq=129, sample_rate=16000, n_fft=256, filters=16,
                        kernel_widths=(3,), seed=1, mel_bands=24).to(dtype)
    log_magnitude = _log_magnitude(rng, 2, 19, 129).to(dtype) - 0.3  # some entries below 0
    log_magnitude[:, :10, :5] = 0.0  # clamp_min passes the gradient at exactly 0
    probes = [torch.randn(m.shape, generator=torch.Generator().manual_seed(7), dtype=dtype) for m in net(log_magnitude)]

    def gradient(network):
        x = log_magnitude.clone().requires_grad_(True)
        sum((m * p).sum() for m, p in zip(network(x), probes)).backward()
        return x.grad

    ours = gradient(net)
    reference = gradient(lambda x: net.network(torch.log1p(net.bands @ torch.expm1(x.clamp_min(0)))))
    assert bool((ours[:, :10, :5] != 0).any()) and bool((ours[log_magnitude < 0] == 0).all())
    tolerance = {"rtol": 1e-4, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    torch.testing.assert_close(ours, reference, **tolerance)


def test_mel_bands_at_or_above_the_bin_count_mean_linear_bins():
    for bands in (0, 129, 500):
        net = build_network("random", n_freq=129, sample_rate=16000, n_fft=256, filters=8, mel_bands=bands)
        assert isinstance(net, RandomCNN) and net.n_freq == 129


def test_mel_bands_wrong_input_shape_is_a_config_error(rng):
    net = build_network("random", n_freq=129, sample_rate=16000, n_fft=256, filters=8, mel_bands=32)
    with pytest.raises(ConfigError, match=r"\(batch, 129, frames\)"):
        net(_log_magnitude(rng, 1, 10, 64))


def test_band_front_end_protocol():
    random = RandomCNN(64, filters=8, kernel_widths=(3,))
    mel = MelBands(random, sample_rate=16000, n_fft=510, n_bands=64)
    assert band_front_end(mel) is mel and mel.input_bands is mel.bands
    assert band_front_end(random) is None


@pytest.mark.parametrize("mel_bands", [0, 40])
def test_footprint_counts_what_the_built_network_holds(mel_bands):
    widths = (3, 7, 5)
    footprint = RandomCNN.footprint(257, filters=50, kernel_widths=widths, mel_bands=mel_bands)
    network = build_network("random", n_freq=257, sample_rate=16000, n_fft=512, filters=50, kernel_widths=widths, mel_bands=mel_bands)
    convolution = network.network if mel_bands else network
    assert footprint.input_channels == convolution.n_freq == (mel_bands or 257)
    assert footprint.weight_floats == sum(weight.numel() for weight in convolution.weights)
    assert footprint.gram_floats == sum(weight.shape[1] ** 2 for weight in convolution.weights)
    assert footprint.filters == 50
