"""Quantization-aware training (n2d2x.qat): the integer network of a QAT network (`qat_to_qnetwork`) is exported by
`to_onnx_int` bit for bit (onnxruntime for explicit casting and fake quantization, onnx.reference for implicit casting),
agrees with the fake-quantized float network, and the example INI trains and round-trips its quantizer files."""
import warnings

import numpy as np
import onnx
import pytest

from n2d2x.engine import forward, predict
from n2d2x.export import layer_report, model_runner, to_onnx_int, with_outputs
from n2d2x.learn import learn, solvers_from_ini
from n2d2x.network import Activation, BatchNorm, Conv, Dropout, Fc, Network, Pool, Softmax, Target, model_path
from n2d2x.data import MNIST_IDX_Database, StimuliProvider, bundled_mnist_path
from n2d2x.qat import (LSQAct, LSQWeights, QATError, SATAct, SATWeights, has_quantizers, load_quantizers, qat_from_ini,
                       qat_to_qnetwork, without_quantizers)
from n2d2x.quantize import INT_KERNELS, RESCALING_MODES, predict_int, quantize_input, requantize, simulate
from n2d2x.weights import fill, load_weights

CASTINGS = ('explicit', 'implicit', 'fake')


def qat_net(wq='SAT', aq='SAT', bits=4, quant_mode='Default', avg=False, seed=0, negative=True):
    """A small random QAT network: Conv+BatchNorm (a negative and a zero scale), Max pool, Conv with a Rectifier and its
    own QAct, Max or Average pool, Fc+BatchNorm, Dropout, a last Fc without QAct, Softmax; every weight quantized."""
    cells = [Conv('conv1', ['env'], nb_outputs=6, kernel=(3, 3), pads=(1, 1, 1, 1), no_bias=True),
             BatchNorm('bn1', ['conv1']),
             Pool('pool1', ['bn1'], pooling='Max', kernel=(2, 2), stride=(2, 2)),
             Conv('conv2', ['pool1'], nb_outputs=8, kernel=(3, 3), activation=Activation('Rectifier')),
             Pool('pool2', ['conv2'], pooling='Average' if avg else 'Max', kernel=(2, 2), stride=(2, 2)),
             Fc('fc1', ['pool2'], nb_outputs=16, no_bias=True),
             BatchNorm('bn3', ['fc1']),
             Dropout('drop', ['bn3']),
             Fc('fc2', ['drop'], nb_outputs=10),
             Softmax('softmax', ['fc2'], with_loss=True)]
    net = fill(Network((1, 12, 12), cells, [Target('softmax.Target', 'softmax')]), seed)
    rng = np.random.default_rng(seed)
    for bn in (net['bn1'], net['bn3']):
        n = bn.dims[0]
        bn.scale = rng.uniform(0.5, 2, n).astype(np.float32) * np.where((np.arange(n) == 1) & negative, -1, 1).astype(np.float32)
        bn.scale[2] = 0.0                       # a dead channel: constant output
        bn.bias, bn.mean = rng.normal(0.5, 0.5, n).astype(np.float32), rng.normal(0, 0.3, n).astype(np.float32)
        bn.variance = rng.uniform(0.5, 2, n).astype(np.float32)
    r = 2 ** bits - 1
    for name in ('conv1', 'conv2', 'fc1', 'fc2'):
        net[name].weights_quantizer = (SATWeights(range=r, quant_mode=quant_mode, apply_scaling=name == 'fc2') if wq == 'SAT'
                                       else LSQWeights(range=r))
    for name in ('bn1', 'conv2', 'bn3'):
        net[name].output_quantizer = SATAct(range=r, alpha=np.float32([1.5])) if aq == 'SAT' else LSQAct(range=r)
    forward(net, stimuli(seed=seed + 1))          # LSQ takes its step sizes from the first batch
    return net


def stimuli(n=64, seed=1):
    "Random 8-bit grey images in [0, 1]."
    return (np.random.default_rng(seed).integers(0, 256, (n, 1, 12, 12)) / np.float32(255)).astype(np.float32)


def mismatches(qnet, model, casting, xi):
    "{cell: integers that differ from simulate} over the integer stimuli xi, for every cell but Softmax."
    names = [qc.name for qc in qnet if qc.type != 'Softmax']
    sim, got = simulate(qnet, xi), model_runner(with_outputs(model, names), casting)(xi)
    return {n: int((got[n] != sim[n]).sum()) for n in names if (got[n] != sim[n]).any()}


def assert_exported(qnet, model, casting, xi, what=''):
    """The model computes simulate's integers: exactly, or, for a fake-quantized model that layer_report does not call
    exact (float32 arithmetic on a float or 32-bit multiplier), within one unit on under 1% of them."""
    if casting == 'fake' and not all(r['fake_exact'] for r in layer_report(qnet, 'fake')):
        names = [qc.name for qc in qnet if qc.type != 'Softmax']
        sim, got = simulate(qnet, xi), model_runner(with_outputs(model, names), casting)(xi)
        assert all(np.abs(got[n] - sim[n]).max() <= 1 and (got[n] != sim[n]).mean() < 0.01 for n in names), what
    else: assert not mismatches(qnet, model, casting, xi), what


def export(net, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return qat_to_qnetwork(net, stimuli=stimuli(128, seed=5), **kw)


# --- bit for bit: every method x rescaling mode x casting ---

@pytest.mark.parametrize('methods', [('SAT', 'SAT'), ('LSQ', 'LSQ'), ('SAT', 'LSQ')])
@pytest.mark.parametrize('mode', RESCALING_MODES)
@pytest.mark.parametrize('casting', CASTINGS)
def test_onnx_bit_exact(methods, mode, casting):
    qnet = export(qat_net(*methods, avg=mode == 'Fixed-point16'), act_rescaling_mode=mode)
    model = to_onnx_int(qnet, casting == 'implicit', casting == 'fake')
    if casting != 'implicit': onnx.checker.check_model(model, full_check=True)
    assert_exported(qnet, model, casting, quantize_input(qnet, stimuli(16 if casting == 'implicit' else 64)), mode)


@pytest.mark.parametrize('bits', (2, 4))
def test_nbbits_honoured(bits):
    """LSQ levels fit n bits: -nbbits n keeps them on n bits, the QAct grids on n bits; what the training did not fix
    (the stimuli, fc2's logits) takes the 8 bits of the integer tensors, as N2D2; exact in onnxruntime."""
    net = qat_net('LSQ', 'LSQ', bits=bits, negative=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')              # no weight had to be rounded or clipped
        qnet = qat_to_qnetwork(net, nbbits=bits, act_rescaling_mode='Fixed-point32', stimuli=stimuli())
    assert qnet.nbbits == 8 and qnet.env_scale == 255 and quantize_input(qnet, stimuli()).max() == 255
    lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    for qc in qnet:
        if qc.weights is not None: assert lo <= qc.weights.min() and qc.weights.max() <= hi
    assert all(qnet.act_bits[n] == bits for n in ('conv1', 'conv2', 'fc1')) and qnet.act_bits['fc2'] == 16   # the logits
    assert qnet['conv1'].clip == (0, 2 ** bits - 1) and qnet['fc2'].clip == (-32768, 32767) and qnet.dtype('fc2') == np.int16
    assert not mismatches(qnet, to_onnx_int(qnet), 'explicit', quantize_input(qnet, stimuli()))


@pytest.mark.parametrize('casting', CASTINGS)
def test_negative_scale_with_lsq_levels(casting):
    """LSQ's level -128 in a channel whose BatchNorm scale is negative is +128 after the sign change: kept, in 9 bits
    (two uint8 tensors in ONNX), exact; no warning."""
    net = qat_net('LSQ', 'LSQ', bits=8)
    net['fc1'].weights_quantizer.step_size[...] = np.abs(net['fc1'].weights).max() / 200   # saturated levels
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        qnet = qat_to_qnetwork(net, act_rescaling_mode='Fixed-point32', stimuli=stimuli())
    levels = net['fc1'].weights_quantizer._levels(net['fc1'].weights)[0]
    assert (levels[1] == -128).any() and qnet.weight_bits['fc1'] == 9 and qnet['fc1'].weights.max() == 128
    assert (qnet['fc1'].weights[1] == -levels[1]).all()                                    # bn3's channel 1: scale < 0
    model = to_onnx_int(qnet, casting == 'implicit', casting == 'fake')
    assert {'fc1_hi', 'fc1_lo'} <= {n.name for n in model.graph.node} or casting == 'fake'
    assert_exported(qnet, model, casting, quantize_input(qnet, stimuli(16 if casting == 'implicit' else 64)))


def test_nbbits_too_small():
    "A trained Range wider than -nbbits is an error that says what to pass (never a silently rounded network)."
    with pytest.raises(QATError, match=r"cell \[conv1\]: QWeight.Range=255 needs 8 bits, more than -nbbits 4 \(6 other "
                                       r"quantizers too\): export it with -nbbits 8, or train it with Range=15"):
        qat_to_qnetwork(qat_net(bits=8), nbbits=4)
    net = qat_net(bits=4)
    net['bn3'].output_quantizer.range = 63
    with pytest.raises(QATError, match=r"cell \[bn3\]: QAct.Range=63 needs 6 bits, more than -nbbits 4: export it with -nbbits 6"):
        qat_to_qnetwork(net, nbbits=4)
    assert qat_to_qnetwork(qat_net('LSQ', 'LSQ', bits=8)).nbbits == 8          # None: 8 bits
    net = qat_net('SAT', 'LSQ', bits=4)
    net['conv1'].weights_quantizer.apply_quantization = False                  # clamped, not quantized: rounded as PTQ
    with pytest.warns(UserWarning, match=r"cell \[conv1\]: QWeight.ApplyQuantization=0: its float weights rounded to 8 bits"):
        assert qat_to_qnetwork(net, nbbits=4, stimuli=stimuli()).weight_bits['conv1'] == 8


def test_sat_levels_kept_at_every_nbbits():
    """SAT Default levels 2k - 15 need 5 signed bits: at -nbbits 4 and 8 alike the weights are those levels, in 5 bits
    (said in `weight_bits`), the bias in the rescaling's finer units (its offset); bit-exact in onnxruntime. The shift
    modes cannot multiply: their weights absorb the factor, within the bits of -nbbits 8 (the levels move)."""
    net = qat_net('SAT', 'SAT', bits=4)
    levels = net['conv2'].weights_quantizer._levels(net['conv2'].weights)[0]
    assert np.abs(levels).max() == 15 and (levels % 2 == 1).all()
    for nbbits in (4, 8):
        for mode in ('Floating-point', 'Fixed-point16', 'Fixed-point32'):
            with warnings.catch_warnings():
                warnings.simplefilter('error')
                qnet = qat_to_qnetwork(net, nbbits=nbbits, act_rescaling_mode=mode, stimuli=stimuli())
            assert (np.abs(qnet['conv2'].weights) == np.abs(levels)).all() and qnet['conv2'].bias is None
            assert qnet.weight_bits['conv2'] == 5 and qnet.nbbits == 8 and qnet['conv2'].scaling.offset is not None
            assert not mismatches(qnet, to_onnx_int(qnet), 'explicit', quantize_input(qnet, stimuli()))
    qnet = qat_to_qnetwork(net, nbbits=8, act_rescaling_mode='Single-shift', stimuli=stimuli())
    assert qnet.weight_bits['conv2'] == 8 and qnet['conv2'].scaling.offset is None
    assert not mismatches(qnet, to_onnx_int(qnet), 'explicit', quantize_input(qnet, stimuli()))


def test_bias_finer_than_an_accumulator_unit():
    """2-bit weights and activations: the accumulators are sums of a few small levels, so a bias rounded to their unit
    (N2D2's way) moves the outputs; the offset after the 32-bit multiplier keeps it to 2^-31. Against the float
    network, cell by cell, the offset's integers differ far less than the rounded bias's."""
    net = qat_net('LSQ', 'LSQ', bits=2, negative=False)
    x = stimuli(256, seed=7)
    qnet = qat_to_qnetwork(net, nbbits=2, act_rescaling_mode='Fixed-point32', stimuli=stimuli())
    coarse = qat_to_qnetwork(net, nbbits=2, act_rescaling_mode='Fixed-point32', stimuli=stimuli())
    for qc in coarse:                                                   # the same network, its bias rounded to acc units
        if qc.type in ('Conv', 'Fc') and qc.scaling.offset is not None:
            a, b, c = qc.scaling.division()
            qc.bias = np.rint((b - (c >> 1)) / a).astype(np.int64)      # offset / multiplier, rounded
            qc.scaling.offset = None
    out = forward(net, x)
    level = lambda q, name: np.rint(out[q.float_names[name]] / q[name].step)
    xi = quantize_input(qnet, x)
    fine, rough = simulate(qnet, xi), simulate(coarse, xi)
    for name in ('conv1', 'conv2'):
        assert (fine[name] != level(qnet, name)).mean() < 0.01, name
    assert sum((rough[n] != level(coarse, n)).mean() for n in ('conv1', 'conv2')) > 2 * sum((fine[n] != level(qnet, n)).mean() for n in ('conv1', 'conv2'))
    assert not mismatches(qnet, to_onnx_int(qnet), 'explicit', quantize_input(qnet, stimuli()))


@pytest.mark.parametrize('casting', CASTINGS)
@pytest.mark.parametrize('signed_fc', (False, True))
def test_nine_bit_levels_exact(casting, signed_fc):
    """8-bit SAT Default: the levels 2k - 255, all of them, in every Conv and Fc; ONNX holds the trained code k once
    (uint8) and reads it twice; exact in every casting, with an Fc reading signed integers too (its x zero point)."""
    net = qat_net('SAT', 'SAT', bits=8)
    if signed_fc: net['bn3'].output_quantizer = None                         # fc2 reads bn3's signed values
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        qnet = qat_to_qnetwork(net, nbbits=8, act_rescaling_mode='Fixed-point32', stimuli=stimuli())
    for name in ('conv1', 'conv2', 'fc1', 'fc2'):
        q = net[name].weights_quantizer
        levels = q._levels(net[name].weights)[0]
        live = (qnet[name].weights != 0).reshape(len(levels), -1).any(1)                 # a dead BatchNorm channel is zeros
        assert qnet.weight_bits[name] == 9 and np.abs(levels).max() == 255 and (levels % 2 == 1).all(), name
        assert (np.abs(qnet[name].weights)[live] == np.abs(levels)[live]).all(), name
    model = to_onnx_int(qnet, casting == 'implicit', casting == 'fake')
    if casting != 'implicit': onnx.checker.check_model(model, full_check=True)
    if casting != 'fake':
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        assert inits['conv2_w'].dtype == np.uint8 and 'conv2_w2' not in inits                   # one code, read twice
        assert (inits['conv2_w'].astype(np.int64) * 2 - 255 == qnet['conv2'].weights).all()
    assert_exported(qnet, model, casting, quantize_input(qnet, stimuli(16 if casting == 'implicit' else 64)))


def test_export_says_how_many_bits_the_weights_occupy(tmp_path):
    "The export of a 4-bit Default SAT network at -nbbits 4: 5-bit weights, in the model's metadata and its Readme."
    import json
    from n2d2x.data import ArrayDatabase
    from n2d2x.export import export_onnx
    net = qat_net('SAT', 'SAT', bits=4)
    imgs = stimuli(48, seed=3)[:, 0]
    sp = StimuliProvider(ArrayDatabase(imgs, np.arange(48) % 10, {'Validation': np.arange(32), 'Test': np.arange(32, 48)}),
                         (1, 12, 12), batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        out = export_onnx(net, nbbits=4, out_dir=tmp_path, stimuli=sp, qat=True, db_export=-1, act_rescaling_mode='Fixed-point32')
    assert out.report['verification']['softmax.Target']['identical'] == 16
    meta = {p.key: p.value for p in onnx.load(out / 'model.onnx').metadata_props}
    acts = json.loads(meta['n2d2x.activation_bits'])
    assert acts['env'] == 8 and acts['fc2'] == 16 and all(acts[n] == 4 for n in ('conv1', 'pool1', 'conv2', 'pool2', 'fc1')), acts
    assert json.loads(meta['n2d2x.weight_bits']) == {'conv1': 5, 'conv2': 5, 'fc1': 5, 'fc2': 5}
    readme = (out / 'Readme.txt').read_text()
    assert "activations 4 bits: conv1, pool1, conv2, pool2, fc1; 8 bits: stimuli; 16 bits: fc2; weights 5 bits: conv1, conv2, fc1, fc2" in readme, readme
    w = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(out / 'model.onnx').graph.initializer if t.name.endswith('_w')}
    assert w and all(np.abs(v).max() <= 15 for v in w.values()), {k: int(np.abs(v).max()) for k, v in w.items()}


def test_rintf_is_n2d2s_rounding():
    "-wt-round-mode RINTF: rint(w_q floor(R/2)), and N2D2's 4-bit Default special case (15) for a Conv."
    net = qat_net('SAT', 'SAT', bits=4)
    qnet = export(net, wt_round_mode='RINTF', act_rescaling_mode='Floating-point')
    q = net['fc1'].weights_quantizer
    v, step, _, _, scale = q._levels(net['fc1'].weights)
    expected = np.rint(v * step * scale * 7)
    live = np.arange(16) != 2                                                      # bn3's dead channel has no weights
    assert (np.abs(qnet['fc1'].weights) == np.abs(expected))[live].all() and not qnet['fc1'].weights[2].any()
    assert (expected == 0).sum() > (v == 0).sum()                                  # the levels +-1 merged into 0
    levels = net['conv2'].weights_quantizer._levels(net['conv2'].weights)[0]      # 15 for a 4-bit Conv: exact levels
    assert (np.abs(qnet['conv2'].weights) == np.abs(levels)).all()


@pytest.mark.parametrize('methods', [('SAT', 'SAT'), ('LSQ', 'LSQ')])
def test_agrees_with_the_fake_quantized_network(methods):
    "In isolation, each cell computes the float network's integers (up to float32 and bias rounding); end to end, its answers."
    net = qat_net(*methods)
    qnet = export(net, act_rescaling_mode='Fixed-point32')
    x = stimuli(256, seed=7)
    out, sim = forward(net, x), simulate(qnet, quantize_input(qnet, x))
    level = lambda name: quantize_input(qnet, x).astype(np.int64) if name == 'env' else np.rint(out[qnet.float_names[name]] / qnet[name].step)
    for qc in qnet:
        if qc.step is None or qc.name == 'fc2': continue
        alone = requantize(qc, INT_KERNELS[qc.type](qc, [level(i).astype(np.int64) for i in qc.inputs]))
        assert (alone != level(qc.name)).mean() < 0.005, qc.name
    agree = (predict(net, x)['softmax'].argmax(1) == predict_int(qnet, x)['softmax'].argmax(1)).mean()
    assert agree > 0.95, agree


def test_unsupported():
    net = qat_net()
    net['conv1'].activation = Activation('Rectifier')
    with pytest.raises(QATError, match=r"cell \[bn1\]: this BatchNorm cannot be folded .* \[conv1\] has a Rectifier activation"):
        qat_to_qnetwork(net)
    net = qat_net()
    net['conv2'].activation = Activation('Rectifier', leak_slope=0.1)
    with pytest.raises(QATError, match=r"cell \[conv2\]: a Rectifier activation with a leak has no integer form"):
        qat_to_qnetwork(net)
    with pytest.raises(QATError, match="-wt-round-mode ROUND: expected NONE or RINTF"):
        qat_to_qnetwork(qat_net(), wt_round_mode='ROUND')


# --- the example INI: keys, training, files ---

def test_example_ini_trains_and_round_trips(tmp_path):
    ini = model_path('LeNet_SAT4.ini')
    net = qat_from_ini(fill(Network.from_ini(ini), seed=1))
    quantized = {c.name for c in net if getattr(c, 'weights_quantizer', None) is not None}
    assert quantized == {c.name for c in net if c.type in ('Conv', 'Fc')} and has_quantizers(net)
    assert not has_quantizers(without_quantizers(net)) and has_quantizers(net)
    sp = StimuliProvider.from_ini(ini)
    solvers = solvers_from_ini(net, lambda s, p: sp.count('Learn') if p == '_EpochSize' else None)
    assert any(k.startswith('output_quantizer.') for per in solvers.values() for k in per)
    learn(net, sp, stimuli=640, log=640, out_dir=tmp_path, progress=False)
    names = {p.name for p in (tmp_path / 'weights').iterdir()}
    alphas = {f'{c.name}_QAct_SAT_Alpha.syntxt' for c in net if getattr(c, 'output_quantizer', None) is not None}
    assert alphas and alphas <= names
    back = load_quantizers(load_weights(qat_from_ini(Network.from_ini(ini)), tmp_path / 'weights'), tmp_path / 'weights')
    x = np.concatenate([x for x, _ in sp.batches('Test', limit=64)])
    assert np.array_equal(predict(back, x)['softmax'], predict(net, x)['softmax'])
    qnet = qat_to_qnetwork(back, nbbits=4, act_rescaling_mode='Fixed-point32', stimuli=x)   # every level fits 4 bits
    assert not qnet.notes
    assert not mismatches(qnet, to_onnx_int(qnet), 'explicit', quantize_input(qnet, x))
