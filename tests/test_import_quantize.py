"""Real ONNX architectures, imported and quantized to integer ONNX (issue 5, deliverable 3).

The networks are those of the onnx package's test data (`onnx/backend/test/data/light/`): SqueezeNet (Fire modules,
channel concatenations), ResNet-50 (BatchNorms fused into the convolutions, residual sums of branches with
different scales) and ShuffleNet (grouped convolutions, channel shuffles as Reshape/Transpose/Reshape). Their
"light" weights are all equal; the test gives them He-scaled random weights, so that the quantization has ranges
to measure, then exports them with `export_onnx` (8 bits, calibrated on 3 stimuli) and checks, outside n2d2x's own
verification: onnxruntime runs the integer model, its outputs equal n2d2x's integer simulation bit for bit, and
its dequantized logits follow those of the float network, as the float re-export computes them in onnxruntime.
A small DenseNet built with onnx.helper adds the BatchNorms that cannot be fused (pre-activation, after a Concat).
"""
import tempfile, warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from n2d2x.data import ArrayDatabase, StimuliProvider
from n2d2x.export import export_onnx, to_onnx
from n2d2x.fuse import fuse
from n2d2x.onnx_import import network_from_onnx
from n2d2x.quantize import quantize_input, simulate

LIGHT = Path(onnx.__file__).parent / 'backend/test/data/light'
N = helper.make_node


def randomized(net, seed=0):
    "He-scaled random weights and small random biases for every Conv and Fc of `net` (in place)."
    rng = np.random.default_rng(seed)
    for c in net:
        if c.type in ('Conv', 'Fc') and c.weights is not None:
            fan_in = int(np.prod(c.weights.shape[1:]))
            c.weights = (rng.standard_normal(c.weights.shape) * np.sqrt(2 / fan_in)).astype(np.float32)
            if c.bias is not None: c.bias = rng.normal(0, 0.1, c.bias.shape).astype(np.float32)
    return net


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])


def _stimuli(net, seed=1):
    "6 random images in [0, 1]: 3 to calibrate on (Validation), 3 to test, batches of 3."
    c, h, w = net.input_dims
    images = np.random.default_rng(seed).uniform(0, 1, (6, h, w, c)).astype(np.float32)
    return images, StimuliProvider(ArrayDatabase(images, np.arange(6) % 2, {'Validation': np.arange(3), 'Test': np.arange(3, 6)}),
                                   (c, h, w), batch_size=3)


def quantized_error(name, net, tmp_path):
    """Export `net` (8 bits, calibrated on 3 stimuli), check the file, that onnxruntime computes n2d2x's integer logits bit
    for bit, and return the max |dequantized - float logits| relative to max |logit| (the float re-export in onnxruntime)."""
    images, sp = _stimuli(net)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        exp = export_onnx(net, nbbits=8, out_dir=tmp_path, stimuli=sp, calib=-1)
    model = onnx.load(exp / 'model.onnx')
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert {'ConvInteger'} <= ops and not {'Conv', 'Gemm', 'MatMul', 'BatchNormalization'} & ops, ops

    # the test stimuli, as the Readme says the model takes them: x (in [0, 1]) times 255, truncated, uint8
    x = images[3:].transpose(0, 3, 1, 2)
    xq = quantize_input(exp.qnet, x)
    np.testing.assert_array_equal(xq, np.clip(np.trunc(x * np.float32(255)), 0, 255).astype(np.uint8))

    # the Softmax's input (the logits, integers) from onnxruntime, against n2d2x's simulation
    softmax = next(q for q in exp.qnet if q.type == 'Softmax')
    logits = softmax.inputs[0]
    inferred = onnx.shape_inference.infer_shapes(model)
    model.graph.output.append(next(v for v in inferred.graph.value_info if v.name == logits))
    got = dict(zip([o.name for o in model.graph.output], session(model).run(None, {model.graph.input[0].name: xq})))
    want = simulate(exp.qnet, xq, [logits])[logits]
    np.testing.assert_array_equal(got[logits].astype(np.int64), want.astype(np.int64))

    # the integer logits, dequantized, against the float network run by onnxruntime (its float re-export)
    flo = to_onnx(fuse(net.copy()))
    flo_logits = exp.net.cells[logits].name if logits in exp.net.cells else logits
    flo.graph.output.append(next(v for v in onnx.shape_inference.infer_shapes(flo).graph.value_info if v.name == flo_logits))
    ref = dict(zip([o.name for o in flo.graph.output], session(flo).run(None, {flo.graph.input[0].name: x})))[flo_logits]
    deq = got[logits].astype(np.float64) * exp.qnet.step(logits)
    err = np.abs(deq - ref).max() / np.abs(ref).max()
    print(f"{name}: {len(exp.qnet.cells)} integer cells, logits max |error| {err:.3f} of max |logit|")
    return exp, err


@pytest.mark.parametrize('name', ['squeezenet', 'resnet50', 'shufflenet'])
def test_light_model_quantizes_bit_exact(name, tmp_path):
    """Bit-exact in onnxruntime; the dequantized logits follow the float ones. Measured max |error| / max |logit|:
    squeezenet 0.070, resnet50 0.014, shufflenet 0.079. ShuffleNet was at 0.149 while the integer average pooling
    divided every window by the full kernel area: its 3x3 stride-2 pools come from ONNX with count_include_pad=0, so the
    border windows must divide by the values they hold (09_quantize's window weights). SqueezeNet's remaining error is
    the MSE clipping of its Fire modules: their largest outputs lie beyond the calibrated thresholds."""
    net = randomized(network_from_onnx(LIGHT / f'light_{name}.onnx'))
    _, err = quantized_error(name, net, tmp_path)
    assert err < 0.1, err


def densenet_like(seed=0):
    """A DenseNet as torchvision writes it, small: stem conv; two dense blocks (3 and 2 layers) of pre-activation
    BatchNormalization -> Relu -> 1x1 conv -> BatchNormalization -> Relu -> 3x3 conv, each reading the Concat of all the
    features before it; a transition (BatchNormalization -> Relu -> 1x1 conv -> AveragePool 2x2) between them; a final
    BatchNormalization -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> Softmax. Input [N, 3, 16, 16]."""
    r, nodes, inits, k = np.random.default_rng(seed), [], [], [0]
    def init(v): name = f'p{len(inits)}'; inits.append(numpy_helper.from_array(np.asarray(v, np.float32), name)); return name
    def node(op, ins, **kw): k[0] += 1; out = f'{op.lower()}{k[0]}'; nodes.append(N(op, ins, [out], **kw)); return out
    def conv(x, c_in, c_out, ks):
        w = r.normal(0, np.sqrt(2 / (c_in * ks * ks)), (c_out, c_in, ks, ks))
        return node('Conv', [x, init(w), init(r.normal(0, .1, c_out))], kernel_shape=[ks, ks], pads=[ks // 2] * 4)
    def bn_relu(x, c):
        p = [init(r.uniform(.5, 1.5, c)), init(r.normal(0, .2, c)), init(r.normal(0, .2, c)), init(r.uniform(.5, 2, c))]
        return node('Relu', [node('BatchNormalization', [x, *p], epsilon=1e-5)])
    def block(x, c, layers, growth=4):
        feats, chans = [x], [c]
        for _ in range(layers):
            cat = feats[0] if len(feats) == 1 else node('Concat', feats, axis=1)
            h = conv(bn_relu(conv(bn_relu(cat, sum(chans)), sum(chans), 8, 1), 8), 8, growth, 3)
            feats.append(h); chans.append(growth)
        return node('Concat', feats, axis=1), sum(chans)
    x, c = block(conv('x', 3, 8, 3), 8, 3)
    x = node('AveragePool', [conv(bn_relu(x, c), c, 8, 1)], kernel_shape=[2, 2], strides=[2, 2])
    x, c = block(x, 8, 2)
    x = node('Flatten', [node('GlobalAveragePool', [bn_relu(x, c)])], axis=1)
    y = node('Gemm', [x, init(r.normal(0, np.sqrt(2 / c), (10, c))), init(r.normal(0, .1, 10))], transB=1)
    nodes.append(N('Softmax', [y], ['y'], axis=1))
    g = helper.make_graph(nodes, 'densenet_like', [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 3, 16, 16])],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)])
    onnx.checker.check_model(m, full_check=True)
    return m


def test_densenet_like_quantizes_bit_exact(tmp_path):
    """DenseNet's pre-activation BatchNorms read a Concat (or a cell with other children), so they cannot be fused: each
    becomes a per-channel integer weight, a bias and a rescaling (09_quantize). Bit-exact in onnxruntime; measured max
    |error| / max |logit| 0.016. (onnx's light_densenet121 also exports bit-exact, with 58 unfused BatchNorms and 537
    branch Rescale cells, but takes a minute here and has no Softmax.)"""
    net = network_from_onnx(densenet_like())
    exp, err = quantized_error('densenet-like', net, tmp_path)
    unfused = [q for q in exp.qnet if q.type == 'BatchNorm']
    assert len(unfused) == 6 and all(q.weights is not None and q.scaling is not None for q in unfused)
    assert err < 0.1, err
