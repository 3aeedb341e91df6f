"""Activations with no integer affine form, quantized as exact tables (`n2d2x.quantize.Lookup`, exported as `Gather`).

ONNX models as exporters write them, built with onnx.helper: an EfficientNet-style block (SiLU as `Sigmoid` then `Mul`,
a squeeze-and-excitation whose gate is a `Sigmoid`), a Tanh network and a LeakyRelu network. Each goes through the
whole PTQ flow, `export_onnx(net, nbbits=8, stimuli=..., calib=-1)` (which refuses to write a model that differs from
the integer simulation); the test then checks, outside n2d2x, that onnxruntime runs the integer model to the
simulation's integers on the 1,000 bundled test digits, and measures how far its dequantized outputs are from the float
model run by onnxruntime."""
import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from n2d2x.data import MNIST_IDX_Database, StimuliProvider, bundled_mnist_path
from n2d2x.export import export_onnx
from n2d2x.onnx_import import network_from_onnx
from n2d2x.quantize import dequantize, quantize_input, simulate, split_activations

N = helper.make_node
ort.set_default_logger_severity(3)


def _graph(nodes, params, out_dims):
    "A model of `nodes` on x [N, 1, 28, 28] with float32 initializers `params`, output `y`."
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in params.items()]
    inits.append(numpy_helper.from_array(np.array([0, -1], np.int64), 'flat_shape'))
    g = helper.make_graph(nodes, 'lut_net', [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 1, 28, 28])],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', *out_dims])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 14)])
    onnx.checker.check_model(m, full_check=True)
    return m


def _weights(seed, **shapes):
    "He-like random weights (gain 1.5) and small biases for each named shape."
    r, out = np.random.default_rng(seed), {}
    for k, s in shapes.items():
        out[k] = r.normal(0, 1.5 / np.sqrt(np.prod(s[1:])), s) if len(s) > 1 else r.normal(0, 0.2, s)
    return out


def _silu(x, y, k):
    "SiLU as PyTorch exports it: Sigmoid, then Mul(x, sigmoid(x))."
    return [N('Sigmoid', [x], [f'sig{k}']), N('Mul', [x, f'sig{k}'], [y])]


def efficientnet_block(seed=0):
    """conv 3x3/2 + SiLU -> squeeze-and-excitation as EfficientNet writes it (GlobalAveragePool, 1x1 conv + SiLU,
    1x1 conv, Sigmoid, Mul) -> 1x1 projection conv (no activation) -> 3x3/2 conv + SiLU -> Reshape -> Gemm."""
    p = _weights(seed, w0=(16, 1, 3, 3), b0=(16,), w1=(4, 16, 1, 1), b1=(4,), w2=(16, 4, 1, 1), b2=(16,), w3=(8, 16, 1, 1),
                 b3=(8,), w4=(12, 8, 3, 3), b4=(12,), wf=(10, 12 * 7 * 7), bf=(10,))
    p['b2'] = p['b2'] + 1.0   # gates mostly open, as in trained networks
    nodes = [N('Conv', ['x', 'w0', 'b0'], ['c0'], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]), *_silu('c0', 'a0', 0),
             N('GlobalAveragePool', ['a0'], ['g']), N('Conv', ['g', 'w1', 'b1'], ['s1'], kernel_shape=[1, 1]), *_silu('s1', 's2', 1),
             N('Conv', ['s2', 'w2', 'b2'], ['s3'], kernel_shape=[1, 1]), N('Sigmoid', ['s3'], ['gate']),
             N('Mul', ['a0', 'gate'], ['se']), N('Conv', ['se', 'w3', 'b3'], ['proj'], kernel_shape=[1, 1]),
             N('Conv', ['proj', 'w4', 'b4'], ['c4'], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]), *_silu('c4', 'a4', 4),
             N('Reshape', ['a4', 'flat_shape'], ['flat']), N('Gemm', ['flat', 'wf', 'bf'], ['y'], transB=1)]
    return _graph(nodes, p, [10])


def plain(act, seed=1):
    "conv 5x5/2 + act -> conv 3x3/2 + act -> Reshape -> Gemm + act (no activation after the Gemm for LeakyRelu)."
    p = _weights(seed, w0=(8, 1, 5, 5), b0=(8,), w1=(12, 8, 3, 3), b1=(12,), wf=(10, 12 * 5 * 5), bf=(10,))
    a = (lambda x, y: N('LeakyRelu', [x], [y], alpha=0.1)) if act == 'LeakyRelu' else (lambda x, y: N(act, [x], [y]))
    nodes = [N('Conv', ['x', 'w0', 'b0'], ['c0'], kernel_shape=[5, 5], strides=[2, 2]), a('c0', 'a0'),
             N('Conv', ['a0', 'w1', 'b1'], ['c1'], kernel_shape=[3, 3], strides=[2, 2]), a('c1', 'a1'),
             N('Reshape', ['a1', 'flat_shape'], ['flat'])]
    nodes += [N('Gemm', ['flat', 'wf', 'bf'], ['y'], transB=1)] if act == 'LeakyRelu' else \
             [N('Gemm', ['flat', 'wf', 'bf'], ['z'], transB=1), a('z', 'y')]
    return _graph(nodes, p, [10])


@functools.lru_cache(None)
def digits():
    "The bundled MNIST digits: 800 validation (calibration) and 1,000 test stimuli in [0, 1], batches of 100."
    return StimuliProvider(MNIST_IDX_Database(bundled_mnist_path(), validation=0.2, seed=1), (1, 28, 28), batch_size=100)


@functools.lru_cache(None)
def digits_test():
    return np.concatenate([b for b, _ in digits().batches('Test')])


def _run(model, feed):
    sess = ort.InferenceSession(model if isinstance(model, str) else model.SerializeToString(), providers=['CPUExecutionProvider'])
    return sess.run(None, feed)[0]


def export(tmp_path, model, **kw):
    "Import, export to integers (8 bits, calibrated on the 800 validation digits), and run both models on the test digits."
    (tmp_path / 'm.onnx').write_bytes(model.SerializeToString())
    out = export_onnx(network_from_onnx(tmp_path / 'm.onnx'), nbbits=8, out_dir=tmp_path, stimuli=digits(), calib=-1, **kw)
    x = digits_test()
    xi, t = quantize_input(out.qnet, x), out.qnet.targets[0]
    v, = out.report['verification'].values()
    assert v['identical'] == v['stimuli'] > 0                                       # n2d2x's own check
    y_int = _run(str(out / 'model.onnx'), {'env': xi if out.casting != 'fake' else xi.astype(np.float32)})
    np.testing.assert_array_equal(y_int, simulate(out.qnet, xi, [t])[t])           # ours: bit for bit, 1,000 digits
    f = _run(model, {'x': x}).reshape(len(x), -1)
    return out, f, dequantize(out.qnet, t, y_int).reshape(len(x), -1)


def _error(name, out, f, y):
    "Mean and max |dequantized - float| in output steps, max relative to max |f|, argmax agreement; printed."
    d, step = np.abs(y - f), out.qnet.step(out.qnet.targets[0])
    r = dict(mean=d.mean() / step, max=d.max() / step, rel=d.max() / np.abs(f).max(), agree=(y.argmax(1) == f.argmax(1)).mean())
    print(f"{name}: |int - float| mean {r['mean']:.2f} steps, max {r['max']:.1f} steps ({r['rel']:.2%} of max |y| "
          f"{np.abs(f).max():.3f}), argmax agreement {r['agree']:.1%}")
    return r


def test_import_and_split():
    "SiLU imports as an Activation cell Logistic and an ElemWise Prod; split_activations moves the Conv's Sigmoid out."
    net = network_from_onnx(efficientnet_block())
    acts = [(c.type, c.activation.type) for c in net if c.activation is not None and c.activation.type != 'Linear']
    assert acts.count(('Activation', 'Logistic')) == 3 and acts.count(('Conv', 'Logistic')) == 1, acts
    split = split_activations(net)
    tabled = [c for c in split if c.type == 'Activation' and c.activation.type == 'Logistic']
    assert len(tabled) == 4 and not any(c.type == 'Conv' and c.activation and c.activation.type == 'Logistic' for c in split)
    gate = next(c for c in split if c.name.endswith('_sigmoid'))
    assert split[gate.inputs[0]].activation.type == 'Linear'


def test_efficientnet_block(tmp_path):
    """SiLU everywhere and a Sigmoid gate: bit-exact; the logits are 1.23 output steps off the float model on average,
    5.3 at most (4.5 % of the largest |logit|), argmax agreement 98.4 % (measured; test_se_int's hard-swish SE block:
    1.5 / 8.1 steps). Asserted: mean < 2.5 steps, max < 7 % of max |y|, agreement > 96 %."""
    out, f, y = export(tmp_path, efficientnet_block())
    tables = {qc.name: qc.cell.activation.type for qc in out.qnet if qc.table is not None}
    assert sorted(tables.values()) == ['Logistic'] * 4, tables
    ops = {n.op_type for n in onnx.load(out / 'model.onnx').graph.node}
    assert 'Gather' in ops and not {'Sigmoid', 'Conv', 'Gemm'} & ops
    r = _error('EfficientNet block', out, f, y)
    assert r['mean'] < 2.5 and r['rel'] < 0.07 and r['agree'] > 0.96


@pytest.mark.parametrize('act', ['Tanh', 'LeakyRelu', 'Sigmoid', 'Relu'])
def test_plain(tmp_path, act):
    """Tanh, LeakyRelu (alpha 0.1), Sigmoid after every layer (the Gemm too, but for LeakyRelu), and Relu (no table) as
    the baseline of the same network: bit-exact. Measured, |int - float| mean and max in output steps, max relative to
    max |y|, argmax agreement on the 1,000 digits:

    Tanh 1.43 / 9.0 steps of 1/127 (7.2 %), 98.0 %; LeakyRelu 0.88 / 4.8 (3.9 %), 96.7 %; Sigmoid 0.50 / 1.8 steps of
    1/255 (0.9 %), 100 %; Relu 0.47 / 5.4 (2.1 %), 99.0 %.

    The tables are exact (bit for bit, and within their bound cell by cell, see 09_quantize); what the output carries is
    the quantization of the layers before them, mostly the MSE clipping of the Linear pre-activations (the largest errors
    of `c1` are values beyond its threshold), which Tanh passes on with slope 1 and measures in its fine output step
    1/127 (T = 1 whatever the pre-activation's range). Asserted: mean < 2 steps, max < 10 % of max |y|, agreement > 95 %."""
    out, f, y = export(tmp_path, plain(act))
    want = {'Tanh': 'Tanh', 'LeakyRelu': 'Rectifier', 'Sigmoid': 'Logistic', 'Relu': None}[act]
    assert sum(qc.table is not None for qc in out.qnet) == {'Tanh': 3, 'LeakyRelu': 2, 'Sigmoid': 3, 'Relu': 0}[act]
    assert all(qc.cell.activation.type == want for qc in out.qnet if qc.table is not None)
    r = _error(act, out, f, y)
    assert r['mean'] < 2 and r['rel'] < 0.1 and r['agree'] > 0.95


@pytest.mark.parametrize('casting', ['implicit', 'fake'])
def test_other_castings(tmp_path, casting):
    "ImplicitCasting (run by onnx.reference in the export's verification) and FakeQuantization (float32 tables, int64 indices)."
    (tmp_path / 'm.onnx').write_bytes(efficientnet_block().SerializeToString())
    out = export_onnx(network_from_onnx(tmp_path / 'm.onnx'), out_dir=tmp_path, stimuli=digits(), calib=200,
                      implicit_casting=casting == 'implicit', fake_quantization=casting == 'fake')
    v, = out.report['verification'].values()
    assert v['identical'] == v['stimuli'] == 100
    if casting == 'fake':
        x = digits_test()[:200]
        xi = quantize_input(out.qnet, x)
        y = _run(str(out / 'model.onnx'), {'env': xi.astype(np.float32)})
        t = out.qnet.targets[0]
        np.testing.assert_array_equal(y, simulate(out.qnet, xi, [t])[t])
