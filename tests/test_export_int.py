"""Integer ONNX export: the exported models compute the integer simulation (`n2d2x.quantize.simulate`) bit for bit.

Explicit casting is run by onnxruntime, implicit casting by onnx.reference (with C's conversions), fake quantization by
onnxruntime (exact wherever `layer_report` says float32 holds every value)."""
import functools
import re

import numpy as np
import onnx
import pytest

from n2d2x.calibrate import calibrate
from n2d2x.data import ArrayDatabase, StimuliProvider
from n2d2x.export import (CASTINGS, ExportError, export_onnx, format_verification, layer_report, model_runner, to_onnx_int,
                          to_onnx_qdq, verify_export, with_outputs)
from n2d2x.fuse import equalize, fuse
from n2d2x.network import (Activation, ActivationCell, Conv, Dropout, ElemWise, Fc, Network, Padding, Pool, Reshape, Resize,
                           Softmax, Target, model_path)
from n2d2x.onnx_import import network_from_onnx
from n2d2x.quantize import RESCALING_MODES, quantize, quantize_input, simulate, to_qdq
from n2d2x.weights import fill, load_weights

BITS = (8, 4, 2)


@functools.lru_cache(None)
def lenet():
    net = Network.from_ini(model_path('LeNet.ini'))
    load_weights(net, model_path('LeNet_weights'))
    return net


@functools.lru_cache(None)
def lenet_sp():
    return StimuliProvider.from_ini(lenet().ini, seed=1)


@functools.lru_cache(None)
def lenet_data():
    sp = lenet_sp()
    x_val = np.concatenate([x for x, _ in sp.batches('Validation', limit=64)])
    x_test, y_test = (np.concatenate(v) for v in zip(*sp.batches('Test', limit=64)))
    return fuse(lenet().copy()), x_val, x_test, y_test


@functools.lru_cache(None)
def lenet_calibration(nbbits):
    net, x_val, _, _ = lenet_data()
    return calibrate(net, [x_val[:32], x_val[32:]], nbbits=nbbits)


def mismatches(qnet, model, casting, xi):
    "{cell: integers that differ from simulate} over the integer stimuli xi, for every cell but Softmax."
    names = [qc.name for qc in qnet if qc.type != 'Softmax']
    sim, got = simulate(qnet, xi), model_runner(with_outputs(model, names), casting)(xi)
    return {n: int((got[n] != sim[n]).sum()) for n in names if (got[n] != sim[n]).any()}


def check(qnet, casting, xi, lean=False):
    "Build the model of `casting` (lean or the seed's), check it, and compare every cell with the simulation."
    model = to_onnx_int(qnet, casting == 'implicit', casting == 'fake', lean=lean)
    if casting != 'implicit': onnx.checker.check_model(model, full_check=True)
    bad = mismatches(qnet, model, casting, xi)
    if casting == 'fake' and bad:   # allowed only downstream of a layer that float32 cannot hold exactly
        inexact = {r['cell'] for r in layer_report(qnet, 'fake') if not r['fake_exact']}
        assert next(qc.name for qc in qnet if qc.name in bad) in inexact, bad
    else:
        assert not bad, bad
    return model


# --- the trained LeNet: every mode x casting x width, every cell ---

@pytest.mark.parametrize('nbbits', BITS)
@pytest.mark.parametrize('mode', RESCALING_MODES)
@pytest.mark.parametrize('casting', CASTINGS)
def test_lenet_every_cell(nbbits, mode, casting):
    net, _, x_test, _ = lenet_data()
    q = quantize(net, lenet_calibration(nbbits), nbbits=nbbits, act_rescaling_mode=mode)
    model = check(q, casting, quantize_input(q, x_test[:16 if casting == 'implicit' else 64]))
    assert model.opset_import[0].version == (13 if casting == 'fake' else 14)
    if casting != 'explicit': assert 'Cast' not in {n.op_type for n in model.graph.node}


# --- the files: export_onnx, its exported stimuli and expected outputs ---

@pytest.mark.parametrize('nbbits', BITS)
@pytest.mark.parametrize('casting', CASTINGS)
def test_lenet_export_files(nbbits, casting, tmp_path):
    out = export_onnx(lenet(), nbbits=nbbits, out_dir=tmp_path, stimuli=lenet_sp(), calib=32, db_export=12,
                      implicit_casting=casting == 'implicit', fake_quantization=casting == 'fake')
    assert out == tmp_path / f'export_ONNX_int{nbbits}' and out.casting == casting
    assert out.report['verification']['softmax.Target']['identical'] == 12
    names = (out / 'stimuli.list').read_text().split()
    assert names[:2] == ['stimuli/env00.pgm', 'stimuli/env01.pgm'] and len(names) == 12
    model = with_outputs(onnx.load(out / 'model.onnx'), ['fc2'])
    run, dt = model_runner(model, casting), np.float32 if casting == 'fake' else np.uint8
    for f in names:
        raw = (out / f).read_bytes()
        header = b'P5\n32 32\n' + (b'65535\n' if casting == 'fake' else b'255\n')
        assert raw.startswith(header)
        body = raw[len(header):]
        x = np.frombuffer(body[:-4], dt).reshape(1, 1, 32, 32)
        want = np.frombuffer((out / f).with_suffix('.out').read_bytes(), '<i4')
        np.testing.assert_array_equal(run(x)['fc2'].ravel(), want)   # every exported stimulus, from the files only


def test_verify_export_lines(tmp_path):
    out = export_onnx(lenet(), out_dir=tmp_path, stimuli=lenet_sp(), calib=32)
    ver = verify_export(out, lenet_sp(), limit=100)
    text = format_verification(ver)
    assert 'onnxruntime: 100/100 outputs identical to the integer simulation' in text
    assert text.startswith('softmax.Target (100 Test stimuli): float ')
    assert ver['softmax.Target']['onnx'] == ver['softmax.Target']['simulation']


# --- small multi-branch networks ---

relu, lin = Activation('Rectifier'), Activation('Linear')


def conv3(n, i, m, a=relu): return Conv(n, i, m, a, kernel=(3, 3), pads=(1, 1, 1, 1))
def conv1(n, i, m, a=relu): return Conv(n, i, m, a, kernel=(1, 1))


def net_of(cells, dims, targets=None, seed=1):
    cells = list(cells)
    return fill(Network(dims, cells, [Target(f'{t}.Target', t) for t in (targets or [cells[-1].name])], name='t'), seed=seed)


def residual():
    n = net_of([conv3('c1', ['env'], 8), conv3('c2', ['c1'], 8), conv3('c3', ['c2'], 8, lin), conv3('c4', ['c2'], 8),
                ElemWise('sum', ['c3', 'c1', 'c4'], activation=relu), Fc('fc', ['sum'], 10, lin), Softmax('softmax', ['fc'])],
               (3, 8, 8), seed=3)
    n['c3'].weights *= 8
    return n


def two_input_conv():
    return net_of([conv1('a', ['env'], 4, lin), conv1('b', ['env'], 6), conv1('cat', ['a', 'b'], 5), Fc('fc', ['cat'], 10, lin),
                   Softmax('softmax', ['fc'])], (3, 6, 6), targets=['softmax', 'b'], seed=4)


def depthwise_avgpool():
    return net_of([conv3('c', ['env'], 4), Conv('dw', ['c'], 4, relu, kernel=(3, 3), pads=(1, 1, 1, 1), groups=4),
                   Pool('avg', ['dw'], pooling='Average', kernel=(3, 3), pads=(1, 1, 1, 1)),
                   Padding('crop', ['avg'], top=-1, left=-1, bottom=-1, right=-1),
                   Resize('up', ['crop'], out_height=12, out_width=12, mode='NearestNeighbor'),
                   conv1('sat', ['up'], 4, Activation('Saturation', threshold=0.05)),
                   conv1('clp', ['up'], 4, Activation('Rectifier', clipping=0.05)),
                   ActivationCell('act', ['sat'], activation=relu), ElemWise('mx', ['act', 'clp'], operation='Max'),
                   ElemWise('prod', ['mx', 'sat'], operation='Prod'), Reshape('flat', ['prod'], shape=(576, 1, 1)),
                   Fc('fc', ['flat', 'clp'], 10, lin), Softmax('softmax', ['fc'])], (2, 8, 8), seed=5)


def signed_elemwise():
    return net_of([conv1('a', ['env'], 4, lin), conv1('b', ['env'], 4),
                   ElemWise('d', ['a', 'b'], weights=[1.0, -0.5], shifts=[0.1, 0.2]), ElemWise('ab', ['a', 'b'], operation='AbsSum'),
                   Pool('ap', ['d'], pooling='Average', kernel=(2, 2), stride=(2, 2)),
                   Pool('mp', ['ab'], pooling='Max', kernel=(2, 2), stride=(2, 2), activation=Activation('Rectifier', clipping=0.5)),
                   Fc('fc', ['ap', 'mp'], 5, lin)], (3, 6, 6), targets=['fc', 'ap'], seed=6)


NETS = {f.__name__: f for f in (residual, two_input_conv, depthwise_avgpool, signed_elemwise)}


@functools.lru_cache(None)
def branchy(name, nbbits, no_unsigned=False):
    net = NETS[name]()
    x = (np.random.default_rng(0).random((32, *net.input_dims)) * 2 - (0.5 if name == 'signed_elemwise' else 0)).astype(np.float32)
    return net, x, calibrate(net, [x[:16], x[16:]], nbbits=nbbits, unsigned_data=not no_unsigned)


@pytest.mark.parametrize('name', NETS)
@pytest.mark.parametrize('nbbits', BITS)
@pytest.mark.parametrize('mode', RESCALING_MODES)
def test_branchy_every_casting(name, nbbits, mode):
    net, x, cal = branchy(name, nbbits)
    q = quantize(net, cal, nbbits=nbbits, act_rescaling_mode=mode)
    for casting in CASTINGS: check(q, casting, quantize_input(q, x))


@pytest.mark.parametrize('name', NETS)
@pytest.mark.parametrize('opts', [{'no_unsigned': True}, {'act_rescale_per_output': True}], ids=['no_unsigned', 'per_output'])
def test_branchy_options(name, opts):
    net, x, cal = branchy(name, 8, opts.get('no_unsigned', False))
    for mode in RESCALING_MODES:
        q = quantize(net, cal, act_rescaling_mode=mode, **opts)
        for casting in CASTINGS: check(q, casting, quantize_input(q, x))


# --- the lean graph (to_onnx_int(..., lean=True)): the same integers, fewer nodes ---

LEAN = ('explicit', 'implicit')


@pytest.mark.parametrize('nbbits', BITS)
@pytest.mark.parametrize('mode', RESCALING_MODES)
def test_lean_lenet_every_cell(nbbits, mode):
    net, _, x_test, _ = lenet_data()
    q = quantize(net, lenet_calibration(nbbits), nbbits=nbbits, act_rescaling_mode=mode)
    for casting in LEAN:
        lean = check(q, casting, quantize_input(q, x_test[:16 if casting == 'implicit' else 64]), lean=True)
        seed = to_onnx_int(q, casting == 'implicit')
        assert 'Relu' not in {n.op_type for n in lean.graph.node}   # every ReLU of LeNet goes into its clip
        if mode != 'Floating-point': assert len(lean.graph.node) < len(seed.graph.node)
        else: assert len(lean.graph.node) <= len(seed.graph.node)   # 4 Relu fewer, 4 Cast more (float MaxPool, explicit)


@pytest.mark.parametrize('name', NETS)
@pytest.mark.parametrize('opts', [{}, {'no_unsigned': True}, {'act_rescale_per_output': True}], ids=['plain', 'no_unsigned', 'per_output'])
def test_lean_branchy(name, opts):
    net, x, cal = branchy(name, 8, opts.get('no_unsigned', False))
    for mode in RESCALING_MODES:
        q = quantize(net, cal, act_rescaling_mode=mode, **opts)
        for casting in LEAN: check(q, casting, quantize_input(q, x), lean=True)


@pytest.mark.parametrize('nbbits', (4, 2))
def test_lean_branchy_narrow(nbbits):
    for name in NETS:
        net, x, cal = branchy(name, nbbits)
        q = quantize(net, cal, nbbits=nbbits)
        for casting in LEAN: check(q, casting, quantize_input(q, x), lean=True)


def mobilenet_block():
    "An inverted residual: 1x1 expansion (ReLU), depthwise 3x3 (ReLU), 1x1 projection (linear, signed), a Sum, pooling, Fc."
    return net_of([conv3('c0', ['env'], 8), conv1('exp', ['c0'], 24), Conv('dw', ['exp'], 24, relu, kernel=(3, 3), pads=(1, 1, 1, 1), groups=24),
                   conv1('proj', ['dw'], 8, lin), ElemWise('add', ['proj', 'c0']), Conv('dw2', ['add'], 8, lin, kernel=(3, 3), pads=(1, 1, 1, 1), groups=8),
                   Pool('gap', ['dw2'], pooling='Average', kernel=(8, 8)), Fc('fc', ['gap'], 10, lin), Softmax('softmax', ['fc'])], (3, 8, 8), seed=7)


@pytest.mark.parametrize('mode', RESCALING_MODES)
@pytest.mark.parametrize('opts', [{}, {'no_unsigned': True}, {'act_rescale_per_output': True}], ids=['plain', 'no_unsigned', 'per_output'])
def test_lean_depthwise(mode, opts):
    net = mobilenet_block()
    x = np.random.default_rng(2).random((32, 3, 8, 8)).astype(np.float32)
    q = quantize(net, calibrate(net, [x[:16], x[16:]], unsigned_data=not opts.get('no_unsigned')), act_rescaling_mode=mode, **opts)
    for casting in LEAN: check(q, casting, quantize_input(q, x), lean=True)


def test_lean_graph_form():
    "Single-shift, explicit: uint8 ConvInteger weights (zero point 128), depthwise in float32, no Relu, BitShift or Cast pairs."
    net = mobilenet_block()
    x = np.random.default_rng(2).random((32, 3, 8, 8)).astype(np.float32)
    q = quantize(net, calibrate(net, [x[:16], x[16:]]))
    seed, lean = to_onnx_int(q), check(q, 'explicit', quantize_input(q, x), lean=True)
    ops = lambda m, cell: [n.op_type for n in m.graph.node if n.name == cell or n.name.startswith(f'{cell}_') and n.name != f'{cell}_icast']
    assert ops(seed, 'exp') == ['ConvInteger', 'Add', 'Relu', 'Cast', 'BitShift', 'Cast', 'Clip', 'Cast']   # the seed's, by default
    assert ops(lean, 'exp') == ['ConvInteger', 'Add', 'Clip', 'Div', 'Cast']
    assert ops(lean, 'proj') == ['ConvInteger', 'Add', 'Clip', 'Div', 'Add', 'Cast']   # signed: + lo after the floor
    assert ops(lean, 'dw') == ['Conv', 'Clip', 'Cast']                                  # float32, exact: acc_bound < 2^24
    assert 'Floor' in ops(lean, 'dw2')                                                   # a signed depthwise output
    w = {t.name: t for t in lean.graph.initializer}
    assert w['exp_w'].data_type == onnx.TensorProto.UINT8 and onnx.numpy_helper.to_array(w['exp_w_zero_point']) == 128
    types = {n.op_type for n in lean.graph.node}
    assert not types & {'Relu', 'BitShift'} and len(lean.graph.node) < len(seed.graph.node)
    meta = {p.key: p.value for p in lean.metadata_props}
    assert meta['n2d2x.lean'] == '1' and {p.key: p.value for p in seed.metadata_props}['n2d2x.lean'] == '0'


def test_lean_fake_is_the_fake_graph():
    net, _, x_test, _ = lenet_data()
    q = quantize(net, lenet_calibration(8))
    a, b = to_onnx_int(q, fake_quantization=True), to_onnx_int(q, fake_quantization=True, lean=True)
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]


def test_signed_fc_input_uses_a_zero_point():
    net, x, cal = branchy('signed_elemwise', 8)
    model = check(quantize(net, cal), 'explicit', quantize_input(quantize(net, cal), x))
    mm = next(n for n in model.graph.node if n.op_type == 'MatMulInteger')
    assert mm.input[2] == 'fc_x_zero_point'


# --- the export flow on stimuli outside [0, 1] (R != 1), three channels ---

def test_range_not_one_and_ppm(tmp_path):
    net = residual()
    for c in net:
        if c.type in ('Conv', 'Fc'): c.bias = np.random.default_rng(1).normal(0, 0.3, c.nb_outputs).astype('f4')
    imgs = np.random.default_rng(3).uniform(-2, 3, (48, 8, 8, 3)).astype('f4')
    sp = StimuliProvider(ArrayDatabase(imgs, np.arange(48) % 10, {'Validation': np.arange(32), 'Test': np.arange(32, 48)}),
                         (3, 8, 8), batch_size=8)
    for casting in CASTINGS:
        out = export_onnx(net, out_dir=tmp_path / casting, stimuli=sp, calib=-1, db_export=-1,
                          implicit_casting=casting == 'implicit', fake_quantization=casting == 'fake')
        assert out.stimuli_range == float(np.abs(imgs[:32]).max())
        assert out.report['verification']['softmax.Target']['identical'] == 16
    raw = (tmp_path / 'explicit' / 'export_ONNX_int8' / 'stimuli' / 'env00.ppm').read_bytes()
    assert raw.startswith(b'P6\n8 8\n255\n') and len(raw) == len(b'P6\n8 8\n255\n') + 3 * 64 + 4
    x = np.frombuffer(raw[len(b'P6\n8 8\n255\n'):-4], np.int8).reshape(3, 8, 8)   # planar C, H, W, signed stimuli
    np.testing.assert_array_equal(x, quantize_input(out.qnet, imgs[32].transpose(2, 0, 1)[None] / np.float32(out.stimuli_range))[0])


# --- options, parameters, refusals ---

def test_export_parameters_file(tmp_path):
    (tmp_path / 'p.ini').write_text('ImplicitCasting=1\n')
    out = export_onnx(lenet(), out_dir=tmp_path, stimuli=lenet_sp(), calib=16, export_parameters=tmp_path / 'p.ini')
    assert out.casting == 'implicit'
    (tmp_path / 'p.ini').write_text('ImplicitCasting=0\nFakeQuantization=1\n')
    out = export_onnx(lenet(), out_dir=tmp_path, stimuli=lenet_sp(), calib_reload=True, export_parameters=tmp_path / 'p.ini')
    assert out.casting == 'fake' and out.report['calibration']['reloaded']
    (tmp_path / 'p.ini').write_text('\nImplicitCasting=1\nImplicit=1\n')
    with pytest.raises(ExportError, match=r'p\.ini:3: unknown export parameter Implicit'):
        export_onnx(lenet(), out_dir=tmp_path, stimuli=lenet_sp(), calib=16, export_parameters=tmp_path / 'p.ini')


def test_refusals_leave_nothing(tmp_path):
    for kw, msg in [({'calib': -1}, 'needs the stimuli'), ({'stimuli': lenet_sp()}, 'needs calibration'),
                    ({'stimuli': lenet_sp(), 'calib': 8, 'nbbits': 12}, "-nbbits 12: ONNX's ConvInteger"),
                    ({'stimuli': lenet_sp(), 'calib_reload': True}, 'missing calibration file')]:
        with pytest.raises(ExportError, match=msg): export_onnx(lenet(), out_dir=tmp_path, **kw)
    assert not list(tmp_path.iterdir())


def test_sixteen_bits_fake_quantized(tmp_path):
    out = export_onnx(lenet(), nbbits=16, out_dir=tmp_path, stimuli=lenet_sp(), calib=16, fake_quantization=True)
    model = onnx.load(out / 'model.onnx')
    onnx.checker.check_model(model, full_check=True)
    assert {n.op_type for n in model.graph.node} >= {'Conv', 'Gemm', 'Floor'}
    assert not any(r['fake_exact'] for r in out.report['layers'])   # 16-bit accumulators pass 2^24


def test_unfused_dropout_is_a_tensor_not_a_node():
    net = net_of([conv3('c', ['env'], 4), Dropout('drop', ['c']), Pool('p', ['drop'], pooling='Max', kernel=(2, 2), stride=(2, 2)),
                  Fc('fc', ['p'], 3, lin)], (2, 6, 6), targets=['drop', 'fc'])
    x = np.random.default_rng(0).random((8, 2, 6, 6)).astype(np.float32)
    q = quantize(net, calibrate(net, [x]))
    for casting in CASTINGS:
        model = check(q, casting, quantize_input(q, x))
        assert [o.name for o in model.graph.output] == ['drop', 'fc']
        assert next(n for n in model.graph.node if n.op_type == 'Identity').output == ['drop']


def test_lean_from_the_export_parameters_file(tmp_path, n2d2x):
    "Lean=1 in -export-parameters: the CLI writes the lean graph (uint8 weights, no BitShift) and -test finds it bit-exact."
    from n2d2x.network import model_path
    (tmp_path / 'params.ini').write_text('Lean=1\n')
    out = n2d2x([model_path('LeNet.ini'), '-seed', 1, '-w', model_path('LeNet_weights'), '-export', 'ONNX', '-nbbits', 8, '-calib', 100, '-db-export', 50,
                 '-export-parameters', tmp_path / 'params.ini', '-test'], tmp_path)
    assert re.search(r'onnxruntime: (\d+)/\1 outputs identical to the integer simulation', out), out[-1500:]
    model = onnx.load(tmp_path / 'export_ONNX_int8' / 'model.onnx')
    ops = {n.op_type for n in model.graph.node}
    assert 'BitShift' not in ops and 'ConvInteger' in ops, ops
    weights = {i.name: i for i in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == 'ConvInteger')
    assert weights[conv.input[1]].data_type == onnx.TensorProto.UINT8
    assert {p.key: p.value for p in model.metadata_props}.get('n2d2x.lean') == '1'
    assert 'n2d2x.weight_bits' in {p.key for p in model.metadata_props}


# --- a Rectifier clipped per channel: the ReLU6 MobileNet equalized through its clips ---

@functools.lru_cache(None)
def relu6_mobilenet():
    "The ReLU6 MobileNet (tools/train_mobilenet_relu6.py) equalized through its clips, and 64 bundled MNIST images."
    net = equalize(fuse(network_from_onnx(model_path('MobileNetReLU6_Fashion.onnx'))))
    x = np.concatenate([x for x, _ in lenet_sp().batches('Test', limit=64)])[:, :, 2:30, 2:30]   # LeNet's 32x32 MNIST, cropped
    return net, x


@pytest.mark.parametrize('mode', ['Single-shift', 'Fixed-point16', 'Floating-point'])
def test_channel_clip_every_casting(mode):
    "Every cell of every casting (seed's and lean graphs, QDQ) computes the simulation, per-channel bounds (a Min) included."
    net, x = relu6_mobilenet()
    q = quantize(net, calibrate(net, [x[:32], x[32:]]), act_rescaling_mode=mode)
    assert sum(qc.channel_clip is not None for qc in q) >= 8
    xi = quantize_input(q, x)
    for casting in CASTINGS:
        model = check(q, casting, xi)
        assert sum(n.op_type == 'Min' for n in model.graph.node) == sum(qc.channel_clip is not None for qc in q)
    for casting in LEAN: check(q, casting, xi, lean=True)
    qq = to_qdq(q)
    names = [qc.name for qc in qq if qc.type != 'Softmax']
    sim, got = simulate(qq, xi), model_runner(with_outputs(to_onnx_qdq(qq), names), 'qdq')(xi)
    assert all((got[n] == sim[n]).all() for n in names)
