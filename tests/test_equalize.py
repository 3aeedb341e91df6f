"""Cross-layer equalization (n2d2x.fuse.equalize) on whole networks: the float function is unchanged and the
per-channel ranges of each pair meet, on N2D2's MobileNet_v1 (depthwise on both sides of a pair, an average pool
before the Fc) and on the trained MobileNet_Fashion with real images; the equalized network still quantizes."""
import warnings

import numpy as np
import pytest

from n2d2x.calibrate import calibrate
from n2d2x.data import MNIST_IDX_Database, StimuliProvider, bundled_mnist_path
from n2d2x.engine import forward, predict
from n2d2x.fuse import FuseWarning, equalization_pairs, equalize, fuse, input_ranges, output_ranges
from n2d2x.network import Network, model_path
from n2d2x.onnx_import import network_from_onnx
from n2d2x.quantize import predict_int, quantize
from n2d2x.weights import fill, load_weights


def assert_same_function(a, b, x, cells):
    ya, yb = forward(a, x, cells), forward(b, x, cells)
    for c in cells:
        np.testing.assert_allclose(yb[c], ya[c], rtol=0, atol=1e-5 * np.abs(ya[c]).max())


def spread(r): return r.max() / r.min()


@pytest.fixture(scope='module')
def mobilenet_v1():
    "N2D2's MobileNet_v1 with seed-1 weights whose output channels are rescaled at random (as a BatchNorm would)."
    net = fill(Network.from_ini(model_path('n2d2/MobileNet_v1.ini')), seed=1)
    rng = np.random.default_rng(0)
    for c in net:
        if c.type == 'Conv': c.weights *= np.exp(rng.normal(0, 1, c.nb_outputs)).astype('f4')[:, None, None, None]
    return net


def test_mobilenet_v1_same_function(mobilenet_v1):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        eq = equalize(mobilenet_v1, max_range_delta=1e-3, max_iterations=1000)
    x = np.random.default_rng(1).random((2, *mobilenet_v1.input_dims), dtype=np.float32)
    assert_same_function(mobilenet_v1, eq, x, ['fc', 'softmax'])
    pairs = equalization_pairs(eq.copy(), 'skip')
    assert len(pairs) == 27 and pairs[-1] == ('conv9_1x1', 'fc')
    for a, b in pairs:
        r1, r2 = output_ranges(eq[a]), input_ranges(eq[b], eq.dims(eq[b].inputs[0]))
        np.testing.assert_allclose(r1, r2, rtol=0, atol=2e-3)
    dw = 'conv5_3x3_dw'
    assert spread(output_ranges(eq[dw])) < spread(output_ranges(mobilenet_v1[dw])) / 4


def test_mobilenet_v1_stop_rules_same_function(mobilenet_v1):
    "N2D2's stop rule (absolute delta 1.0) and a tight one give the same function."
    a, b = equalize(mobilenet_v1), equalize(mobilenet_v1, max_range_delta=1e-3, max_iterations=1000)
    x = np.random.default_rng(2).random((1, *mobilenet_v1.input_dims), dtype=np.float32)
    assert_same_function(a, b, x, ['fc'])


@pytest.fixture(scope='module')
def trained():
    ini = model_path('MobileNet_Fashion.ini')
    net = fuse(load_weights(Network.from_ini(ini), model_path('MobileNet_Fashion_weights')))
    sp = StimuliProvider.from_ini(ini, database=MNIST_IDX_Database(bundled_mnist_path()))
    return net, np.concatenate([x for x, _ in sp.batches('Test', limit=300)])


def test_trained_mobilenet_real_images(trained):
    net, x = trained
    eq = equalize(net)
    assert_same_function(net, eq, x, ['fc', 'softmax'])
    np.testing.assert_array_equal(predict(eq, x)['softmax'].argmax(1), predict(net, x)['softmax'].argmax(1))


def test_trained_mobilenet_quantizes_after_equalization(trained):
    "8-bit PTQ of the equalized network agrees with its float predictions on real images."
    net, x = trained
    eq = equalize(net)
    q = quantize(eq, calibrate(eq, [x[:100], x[100:200]], nbbits=8), 8)
    agree = (predict_int(q, x[200:])['softmax'].argmax(1) == predict(eq, x[200:])['softmax'].argmax(1)).mean()
    assert agree >= 0.97, agree


@pytest.fixture(scope='module')
def relu6():
    "The ReLU6 MobileNet of tools/train_mobilenet_relu6.py (BatchNorms folded by PyTorch), on 300 bundled MNIST images."
    net = fuse(network_from_onnx(model_path('MobileNetReLU6_Fashion.onnx')))
    sp = StimuliProvider.from_ini(model_path('MobileNet_Fashion.ini'), database=MNIST_IDX_Database(bundled_mnist_path()))
    return net, np.concatenate([x for x, _ in sp.batches('Test', limit=300)])


def test_relu6_equalized_through_its_clips(relu6):
    "Every pair after a ReLU6 is equalized by moving the clip per channel: the same function, and the depthwise ranges close."
    net, x = relu6
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # no pair refused
        eq = equalize(net)
    assert len(equalization_pairs(net.copy(), 'per-channel')) == 9
    with pytest.warns(FuseWarning): assert equalization_pairs(net.copy(), 'skip') == []
    assert_same_function(net, eq, x, ['fc'])
    assert all(eq[c.name].activation.channel_clipping is not None for c in net if c.type == 'Conv')
    assert spread(output_ranges(net['conv2_dw'])) > 100 > 10 > spread(output_ranges(eq['conv2_dw']))
