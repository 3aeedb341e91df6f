"""Squeeze-and-excitation and hard-swish blocks, as PyTorch exports them, through the whole PTQ path: ONNX import,
`split_activations`, calibration, quantization and the integer ONNX export, bit-exact against the integer simulation
and close to the float model in onnxruntime."""
import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from n2d2x.data import MNIST_IDX_Database, StimuliProvider, bundled_mnist_path
from n2d2x.engine import forward
from n2d2x.export import export_onnx
from n2d2x.network import Network
from n2d2x.onnx_import import network_from_onnx
from n2d2x.quantize import RESCALING_MODES, dequantize, quantize_input, simulate, split_activations

N = helper.make_node
ort.set_default_logger_severity(3)


def _const(name, v): return numpy_helper.from_array(np.asarray(v, np.float32), name)


def _hard_swish(x, y, decomposed, k):
    "PyTorch's Hardswish: the HardSwish op (opset 14), or x * Clip(x + 3, 0, 6) / 6 as older exporters write it."
    if not decomposed: return [N('HardSwish', [x], [y])], []
    return [N('Add', [x, 'three'], [f'hs{k}_a']), N('Clip', [f'hs{k}_a', 'zero', 'six'], [f'hs{k}_c']),
            N('Div', [f'hs{k}_c', 'six'], [f'hs{k}_d']), N('Mul', [x, f'hs{k}_d'], [y])], ['three', 'zero', 'six']


def se_model(gate='HardSigmoid', decomposed=False, seed=0, bn=False):
    """conv 3x3/2 (+ BatchNormalization with `bn`) + hard-swish -> SE (GlobalAveragePool, 1x1 conv + Relu, 1x1 conv, gate, Mul) -> conv 3x3/2 + Relu
    -> hard-swish -> x.view(x.size(0), -1) (a Shape/Gather/Unsqueeze/Concat subgraph) -> Gemm, on [N, 1, 28, 28]."""
    r = np.random.default_rng(seed)
    w = lambda *s: r.normal(0, 1.5 / np.sqrt(np.prod(s[1:])), s)
    inits = dict(w0=w(8, 1, 3, 3), b0=r.normal(0, .2, 8), w1=w(4, 8, 1, 1), b1=r.normal(0, .2, 4), w2=w(8, 4, 1, 1),
                 b2=r.normal(0, .5, 8), w3=w(12, 8, 3, 3), b3=r.normal(0, .1, 12), wf=w(10, 12 * 7 * 7), bf=r.normal(0, .1, 10),
                 three=3.0, zero=0.0, six=6.0, bn_s=r.uniform(.5, 1.5, 8), bn_b=r.normal(0, .2, 8), bn_m=r.normal(0, .2, 8),
                 bn_v=r.uniform(.5, 2, 8))
    a0, used0 = _hard_swish('c0', 'a0', decomposed, 0)
    gate_node = (N('HardSigmoid', ['s3'], ['s4'], alpha=1 / 6, beta=0.5) if gate == 'HardSigmoid' else N('Sigmoid', ['s3'], ['s4']))
    a1, used1 = _hard_swish('c1', 'a1', decomposed, 1)
    conv0 = N('Conv', ['x', 'w0', 'b0'], ['c0pre' if bn else 'c0'], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    bn0 = [N('BatchNormalization', ['c0pre', 'bn_s', 'bn_b', 'bn_m', 'bn_v'], ['c0'])] if bn else []
    nodes = [conv0, *bn0, *a0,
             N('GlobalAveragePool', ['a0'], ['g']), N('Conv', ['g', 'w1', 'b1'], ['s1'], kernel_shape=[1, 1]),
             N('Relu', ['s1'], ['s2']), N('Conv', ['s2', 'w2', 'b2'], ['s3'], kernel_shape=[1, 1]), gate_node,
             N('Mul', ['a0', 's4'], ['se']),
             N('Conv', ['se', 'w3', 'b3'], ['c1'], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]), *a1,
             N('Shape', ['a1'], ['shp']), N('Gather', ['shp', 'i0'], ['n'], axis=0), N('Unsqueeze', ['n', 'ax0'], ['n1']),
             N('Concat', ['n1', 'm1'], ['shape'], axis=0), N('Reshape', ['a1', 'shape'], ['flat']),
             N('Gemm', ['flat', 'wf', 'bf'], ['logits'], transB=1)]
    keep = {'w0', 'b0', 'w1', 'b1', 'w2', 'b2', 'w3', 'b3', 'wf', 'bf', *used0, *used1, *(('bn_s', 'bn_b', 'bn_m', 'bn_v') if bn else ())}
    tensors = [_const(k, v) for k, v in inits.items() if k in keep]
    tensors += [numpy_helper.from_array(np.array(0, np.int64), 'i0'), numpy_helper.from_array(np.array([0], np.int64), 'ax0'),
                numpy_helper.from_array(np.array([-1], np.int64), 'm1')]
    g = helper.make_graph(nodes, 'se_net', [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 1, 28, 28])],
                          [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['N', 10])], tensors)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 14)])
    onnx.checker.check_model(m, full_check=True)
    return m


@functools.lru_cache(None)
def digits():
    "The bundled MNIST digits: 800 validation (calibration) and 1,000 test stimuli in [0, 1], batches of 100."
    return StimuliProvider(MNIST_IDX_Database(bundled_mnist_path(), validation=0.2, seed=1), (1, 28, 28), batch_size=100)


def _ort(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider']).run(None, {'x': x})[0]


def _export(tmp_path, model, nbbits=8, calib=-1, **kw):
    "Import `model`, export it to integers, and compare on the test digits: (export, float, dequantized, integer outputs)."
    (tmp_path / 'm.onnx').write_bytes(model.SerializeToString())
    net = network_from_onnx(tmp_path / 'm.onnx')
    out = export_onnx(net, nbbits=nbbits, out_dir=tmp_path, stimuli=digits(), calib=calib, **kw)
    x = np.concatenate([b for b, _ in digits().batches('Test')])
    xi, t = quantize_input(out.qnet, x), out.qnet.targets[0]
    y_int = ort.InferenceSession(str(out / 'model.onnx'), providers=['CPUExecutionProvider']).run(None, {'env': xi})[0]
    np.testing.assert_array_equal(y_int, simulate(out.qnet, xi, [t])[t])        # bit for bit, on all 1,000 digits
    return out, _ort(model, x).reshape(len(x), -1), dequantize(out.qnet, t, y_int).reshape(len(x), -1), y_int


def test_import_and_split():
    "The imported graph has the cells the quantizer expects, and splitting hard-swish leaves the float outputs as they were."
    for decomposed in (False, True):
        net = network_from_onnx(se_model(decomposed=decomposed))
        acts = {c.name: (c.type, c.activation.type if c.activation else None) for c in net}
        assert [a for a in acts.values() if a[1] in ('HardSwish', 'HardSigmoid')] == [('Conv', 'HardSwish'), ('Conv', 'HardSigmoid'), ('Conv', 'HardSwish')]
        prod = next(c for c in net if c.type == 'ElemWise')
        assert prod.operation == 'Prod' and [net.dims(i) for i in prod.inputs] == [(8, 14, 14), (8, 1, 1)]
        split = split_activations(net)
        assert sum(c.type == 'ElemWise' for c in split) == 3 and not any(c.activation and c.activation.type == 'HardSwish' for c in split)
        x = digits().batches('Test', limit=100).__next__()[0]
        t = net.targets[0].cell
        np.testing.assert_array_equal(forward(split, x)[split.targets[0].cell], forward(net, x)[t])
        np.testing.assert_allclose(forward(net, x)[t].reshape(len(x), -1), _ort(se_model(decomposed=decomposed), x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('decomposed,bn', [(False, False), (True, False), (False, True)])
def test_se_hard_swish_int8(tmp_path, decomposed, bn):
    """8 bits: bit-exact on 1,000 digits, and close to the float model. In steps of the 8-bit logits (T/127, 0.0054 and
    0.0037 with the BatchNormalization), the dequantized logits are off by 1.5 and 1.6 on average, 8.1 and 15.0 at most:
    the per-layer roundings summed through 11 quantized cells and the MSE clipping of the Linear convolutions, not the
    gates (see 09_quantize). The argmax agrees on 96.9 % and 96.7 % of the digits (untrained weights give logits close to
    each other). Asserted: mean < 3 steps, max < 20 steps, agreement > 93 %."""
    out, f, y, _ = _export(tmp_path, se_model(decomposed=decomposed, bn=bn))
    v = out.report['verification']['logits.Target']
    assert v['identical'] == v['stimuli'] == 100
    kinds = {(qc.type, qc.cell.activation.type if qc.cell is not None and qc.cell.activation else None) for qc in out.qnet}
    assert {('Activation', 'HardSigmoid'), ('Conv', 'HardSigmoid'), ('ElemWise', None)} <= kinds
    assert not any(qc.type == 'Rescale' for qc in out.qnet)            # a Prod needs no branch alignment
    d, step = np.abs(y - f), out.qnet.step('logits')
    agree = (y.argmax(1) == f.argmax(1)).mean()
    print(f"8 bits, decomposed={decomposed}, bn={bn}: |dequantized - float| max {d.max():.4f} ({d.max() / step:.1f} steps), "
          f"mean {d.mean():.4f} ({d.mean() / step:.2f} steps), max |logit| {np.abs(f).max():.3f}, argmax agreement {agree:.1%}")
    assert d.mean() < 3 * step and d.max() < 20 * step and agree > 0.93


def test_se_hard_swish_int4(tmp_path):
    """4 bits: still bit-exact; the network is far from the float one (untrained weights, 15 levels per gate), but its
    argmax agrees on more than half of the digits (67.8 %; chance is 10 %)."""
    out, f, y, _ = _export(tmp_path, se_model(), nbbits=4)
    err, spread, agree = np.abs(y - f).max(), np.abs(f).max(), (y.argmax(1) == f.argmax(1)).mean()
    print(f"4 bits: max |dequantized - float| = {err:.4f} ({err / spread:.2%} of max |logit| {spread:.2f}), argmax agreement {agree:.1%}")
    assert out.qnet['s3'].clip == (0, 15) and agree > 0.5


@pytest.mark.parametrize('casting', ['implicit', 'fake'])
def test_se_other_castings(tmp_path, casting):
    "ImplicitCasting (onnx.reference) and FakeQuantization (float operators) compute the same integers."
    (tmp_path / 'm.onnx').write_bytes(se_model().SerializeToString())
    out = export_onnx(network_from_onnx(tmp_path / 'm.onnx'), out_dir=tmp_path, stimuli=digits(), calib=200,
                      implicit_casting=casting == 'implicit', fake_quantization=casting == 'fake')
    v = out.report['verification']['logits.Target']
    assert v['identical'] == v['stimuli'] == 100


@pytest.mark.parametrize('mode', [m for m in RESCALING_MODES if m != 'Single-shift'])
def test_se_rescaling_modes(tmp_path, mode):
    "Every -act-rescaling-mode, bit-exact on the 1,000 test digits (HardSigmoid cells without weights use Fixed-point16)."
    out, f, y, _ = _export(tmp_path, se_model(seed=1), act_rescaling_mode=mode, calib=200)
    assert (y.argmax(1) == f.argmax(1)).mean() > 0.9


def test_sigmoid_gate(tmp_path):
    """A Sigmoid gate (a Conv with a Logistic activation) is split into the Conv (Linear) and an Activation cell that
    quantizes the sigmoid as a table (tests/test_lut_act.py has more): bit-exact on the 1,000 digits, and as close to the
    float model as the HardSigmoid gate (measured: 1.40 / 6.4 steps mean / max, argmax agreement 96.6 %; the HardSigmoid
    gate: 1.5 / 8.1, 96.9 %)."""
    out, f, y, _ = _export(tmp_path, se_model('Sigmoid'))
    gate = out.qnet['s3_sigmoid']
    assert gate.table is not None and out.qnet['s3'].cell.activation.type == 'Linear' and gate.clip is None
    d, step = np.abs(y - f), out.qnet.step('logits')
    print(f"Sigmoid gate: mean {d.mean() / step:.2f} steps, max {d.max() / step:.1f} steps, agreement {(y.argmax(1) == f.argmax(1)).mean():.1%}")
    assert d.mean() < 3 * step and d.max() < 20 * step and (y.argmax(1) == f.argmax(1)).mean() > 0.93


def test_gate_with_negative_offset(tmp_path):
    "A HardSigmoid with beta < 0 on unsigned integers gives a negative bias: the export must not treat its accumulator as >= 0."
    from n2d2x.network import ActivationCell, Activation, Conv, Fc, Target
    from n2d2x.weights import fill
    net = fill(Network((1, 28, 28), [Conv('c', ['env'], 4, Activation('Rectifier'), kernel=(5, 5), stride=(3, 3)),
                                     ActivationCell('h', ['c'], activation=Activation('HardSigmoid', slope=2.0, offset=-0.5)),
                                     Fc('fc', ['h'], 10)], [Target('t', 'fc')]), seed=3)
    net['c'].weights *= 10
    out = export_onnx(net, out_dir=tmp_path, stimuli=digits(), calib=200)
    assert out.qnet['h'].bias.min() < 0 and out.qnet['h'].in_unsigned
    assert out.report['verification']['t']['identical'] == 100
