"""ONNX import end to end: models built in code, imported by `network_from_onnx` or a `Type=ONNX` INI section, run by
n2d2x's engine and compared with onnxruntime on the original model."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from n2d2x.engine import forward, predict
from n2d2x.ini import Ini, IniError
from n2d2x.network import Network
from n2d2x.onnx_import import network_from_onnx
from n2d2x.onnx_read import OnnxImportError

N = helper.make_node
RNG = np.random.default_rng(0)
ort.set_default_logger_severity(3)


def W(*shape):
    return (RNG.standard_normal(shape) / np.sqrt(max(1, np.prod(shape[1:])))).astype(np.float32)


def model(nodes, inputs, outputs, inits=None, opset=13):
    ins = [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in inputs.items()]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    g = helper.make_graph(nodes, 'test', ins, outs, [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)])


def run_ort(m, feeds):
    return ort.InferenceSession(m.SerializeToString(), providers=['CPUExecutionProvider']).run(None, feeds)


def max_rel(a, b):
    return float(np.abs(a.reshape(b.shape) - b).max() / np.abs(b).max())


def check(m, batch=2, nhwc=False):
    """Import m, run both, return (network, worst relative difference over the outputs)."""
    net = network_from_onnx(m)
    x = np.random.default_rng(1).standard_normal((batch,) + net.input_dims).astype(np.float32)
    refs = run_ort(m, {m.graph.input[0].name: x.transpose(0, 2, 3, 1) if nhwc else x})
    y = forward(net, x)
    return net, max(max_rel(y[net.aliases[o.name]], r) for o, r in zip(m.graph.output, refs))


def test_mobilenet_v3_block():
    """Conv + BN + hard-swish (PyTorch's Add/Clip/Div/Mul pattern), depthwise conv, squeeze-and-excitation, residual."""
    bn = {f'{k}{i}': v for i in (1, 2) for k, v in (('s', W(8) + 1), ('b', W(8)), ('m', W(8)), ('v', np.abs(W(8)) + .5))}
    nodes = [N('Conv', ['x', 'w1'], ['c1'], pads=[1, 1, 1, 1]), N('BatchNormalization', ['c1', 's1', 'b1', 'm1', 'v1'], ['n1']),
             N('Add', ['n1', 'three'], ['a1']), N('Clip', ['a1', 'zero', 'six'], ['k1']), N('Div', ['k1', 'six'], ['d1']),
             N('Mul', ['n1', 'd1'], ['h1']),
             N('Conv', ['h1', 'w2'], ['c2'], pads=[1, 1, 1, 1], group=8), N('BatchNormalization', ['c2', 's2', 'b2', 'm2', 'v2'], ['n2']),
             N('Relu', ['n2'], ['r2']), N('GlobalAveragePool', ['r2'], ['g']), N('Conv', ['g', 'ws1', 'bs1'], ['e1']), N('Relu', ['e1'], ['e2']),
             N('Conv', ['e2', 'ws2', 'bs2'], ['e3']), N('HardSigmoid', ['e3'], ['e4'], alpha=1 / 6, beta=0.5), N('Mul', ['r2', 'e4'], ['se']),
             N('Add', ['se', 'h1'], ['y'])]
    inits = dict(w1=W(8, 3, 3, 3), w2=W(8, 1, 3, 3), ws1=W(2, 8, 1, 1), bs1=W(2), ws2=W(8, 2, 1, 1), bs2=W(8),
                 three=np.float32(3), zero=np.float32(0), six=np.float32(6), **bn)
    net, err = check(model(nodes, {'x': ['N', 3, 10, 10]}, ['y'], inits))
    assert err < 1e-5
    assert net['n1'].activation.type == 'HardSwish'
    assert net['se'].operation == 'Prod' and net['y'].operation == 'Sum'
    assert [c.type for c in net].count('Conv') == 4


def test_tf2onnx_style_classifier():
    """NHWC input, SAME padding, ReLU6 as Clip, NHWC flatten into a MatMul + Add: the network reads NCHW stimuli."""
    nodes = [N('Transpose', ['input:0'], ['t'], perm=[0, 3, 1, 2]), N('Conv', ['t', 'w'], ['c'], auto_pad='SAME_UPPER', strides=[2, 2]),
             N('Clip', ['c', 'zero', 'six'], ['r']), N('Transpose', ['r'], ['nhwc'], perm=[0, 2, 3, 1]), N('Reshape', ['nhwc', 'shape'], ['f']),
             N('MatMul', ['f', 'm'], ['mm']), N('Add', ['mm', 'bias'], ['y'])]
    m = model(nodes, {'input:0': ['N', 9, 8, 3]}, ['y'], dict(w=W(4, 3, 3, 3), zero=np.float32(0), six=np.float32(6),
                                                              shape=np.array([-1, 80]), m=W(80, 5), bias=W(5)))
    net, err = check(m, nhwc=True)
    assert err < 1e-5
    assert net.input_dims == (3, 9, 8) and [c.type for c in net] == ['Conv', 'Fc']


def test_shape_subgraph_and_constant_weights():
    """PyTorch's x.view(x.size(0), -1) and weights from Constant nodes fold away."""
    nodes = [N('Constant', [], ['w'], value=numpy_helper.from_array(W(4, 2, 3, 3))), N('Conv', ['x', 'w'], ['c']),
             N('Shape', ['c'], ['s']), N('Gather', ['s', 'zero'], ['n'], axis=0), N('Unsqueeze', ['n', 'ax'], ['n1']),
             N('Concat', ['n1', 'minus1'], ['t'], axis=0), N('Reshape', ['c', 't'], ['f']), N('Gemm', ['f', 'fw', 'fb'], ['y'], transB=1)]
    m = model(nodes, {'x': ['N', 2, 6, 6]}, ['y'], dict(zero=np.array(0), ax=np.array([0]), minus1=np.array([-1]), fw=W(3, 64), fb=W(3)))
    net, err = check(m, batch=3)
    assert err < 1e-5 and [c.type for c in net] == ['Conv', 'Fc']


def test_conv_transpose_and_resize():
    nodes = [N('ConvTranspose', ['x', 'w', 'b'], ['d'], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1], kernel_shape=[3, 3]),
             N('Relu', ['d'], ['r']), N('Resize', ['r', '', 's'], ['y'], mode='nearest', coordinate_transformation_mode='asymmetric', nearest_mode='floor')]
    m = model(nodes, {'x': ['N', 4, 5, 6]}, ['y'], dict(w=W(4, 3, 3, 3), b=W(3), s=np.float32([1, 1, 2, 2])))
    net, err = check(m)
    assert err < 1e-5 and [c.type for c in net] == ['Deconv', 'Resize'] and net['d'].dims == (3, 10, 12)


def test_light_squeezenet_matches_onnxruntime():
    """One of the onnx package's real architectures (weights 0.02): the final outputs agree."""
    path = Path(onnx.__file__).parent / 'backend/test/data/light/light_squeezenet.onnx'
    net = network_from_onnx(path)
    assert len(net) == 32 and net.name == 'light_squeezenet'
    x = np.random.default_rng(2).random((1,) + net.input_dims, dtype=np.float32)
    ref = run_ort(onnx.load(str(path)), {'data_0': x})[0]
    assert max_rel(predict(net, x)[net.targets[0].cell], ref) < 1e-5


def test_ini_section(tmp_path):
    """A Type=ONNX section: Ignore, a per-type default section, a target on an imported cell, an N2D2 cell after it."""
    nodes = [N('Conv', ['image', 'w'], ['conv:0'], pads=[1, 1, 1, 1]), N('Relu', ['conv:0'], ['relu:0']),
             N('GlobalAveragePool', ['relu:0'], ['gap:0']), N('Flatten', ['gap:0'], ['flat:0']), N('Gemm', ['flat:0', 'fw'], ['logits:0'], transB=1),
             N('Softmax', ['logits:0'], ['prob:0'])]
    m = model(nodes, {'image': [1, 3, 8, 8]}, ['prob:0'], dict(w=W(6, 3, 3, 3), fw=W(5, 6)))
    onnx.save(m, tmp_path / 'm.onnx')
    ini = (f"[sp]\nSizeX=8\nSizeY=8\nNbChannels=3\n[onnx]\nInput=sp\nType=ONNX\nFile=m.onnx\nIgnore=prob:0\n"
           f"[onnx:Conv_def]\nWeightsSolver.LearningRate=0.01\n[softmax]\nInput=logits:0\nType=Softmax\n[softmax.Target]\n[relu:0.Target-features]\n")
    (tmp_path / 'net.ini').write_text(ini)
    net = Network.from_ini(tmp_path / 'net.ini')
    assert [c.name for c in net] == ['conv:0', 'gap:0', 'logits:0', 'softmax']
    assert [t.cell for t in net.targets] == ['softmax', 'conv:0'] and net.cell_sections == {'conv:0': 'onnx:Conv_def'}
    x = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert max_rel(predict(net, x)['softmax'], run_ort(m, {'image': x})[0]) < 1e-5
    (tmp_path / 'bad.ini').write_text(ini.replace('SizeX=8', 'SizeX=9'))
    with pytest.raises(IniError, match="the ONNX model takes inputs of dims"):
        Network.from_ini(tmp_path / 'bad.ini')


def test_errors_name_file_node_and_operator(tmp_path):
    m = model([N('Erf', ['x'], ['y'], name='erf_1')], {'x': ['N', 3, 4, 4]}, ['y'])
    onnx.save(m, tmp_path / 'erf.onnx')
    with pytest.raises(OnnxImportError, match=r"erf\.onnx: Erf node 'erf_1': operator Erf is not supported"):
        network_from_onnx(tmp_path / 'erf.onnx')
    with pytest.raises(OnnxImportError, match="no such ONNX file"):
        network_from_onnx(tmp_path / 'missing.onnx')


def _conv_model(**change):
    "A Conv + Relu model, with one thing changed: 'w' (its weights), 'opset', 'ir', 'no_outputs'."
    m = model([N('Conv', ['x', 'w'], ['c'], name='conv'), N('Relu', ['c'], ['y'], name='relu')], {'x': [1, 1, 6, 6]}, ['y'],
              dict(w=change.get('w', W(2, 1, 3, 3))), opset=change.get('opset', 13))
    if 'ir' in change: m.ir_version = change['ir']
    if change.get('no_outputs'): del m.graph.output[:]
    return m


@pytest.mark.parametrize('change,message', [
    (dict(opset=99), r"m\.onnx: opset 99 is not supported"),
    (dict(ir=99), r"m\.onnx: IR version 99 is not supported"),
    (dict(no_outputs=True), r"m\.onnx: the graph has no outputs"),
    (dict(w=np.full((2, 1, 3, 3), np.nan, np.float32)), r"m\.onnx: initializer 'w' \(read by Conv 'conv'\) holds NaN or infinite values"),
    (dict(w=np.array([[[[np.inf]]]], np.float32)), r"m\.onnx: initializer 'w' \(read by Conv 'conv'\) holds NaN or infinite values"),
])
def test_models_checked_on_the_way_in(tmp_path, change, message):
    "Issue 16: what n2d2x cannot read faithfully is refused by name before anything is computed from it."
    onnx.save(_conv_model(**change), tmp_path / 'm.onnx')
    with pytest.raises(OnnxImportError, match=message):
        network_from_onnx(tmp_path / 'm.onnx')


def test_ignore_names_a_node_output(tmp_path):
    "Ignore=nosuch is an error at the File key of the section (N2D2 would fail to find the node)."
    onnx.save(_conv_model(), tmp_path / 'm.onnx')
    (tmp_path / 'net.ini').write_text("[sp]\nSizeX=6\nSizeY=6\n[onnx]\nInput=sp\nType=ONNX\nFile=m.onnx\nIgnore=nosuch\n[y.Target]\n")
    with pytest.raises(IniError, match=r"net\.ini:7: \[onnx\]: .*m\.onnx: Ignore names no node output: nosuch"):
        Network.from_ini(tmp_path / 'net.ini')
