"""Every cell type and every activation, through every stage of the flow (issue 10's coverage test).

Each stage keeps its kernels in a `n2d2x.helpers.Registry`. Two checks:

1. every registry decides every type of its kind: supported (a kernel) or refused with a reason. A new cell type or
   activation that some stage has not decided fails here, naming the stage;
2. on a small network holding the type, each stage of the flow (engine forward and backward, fusion, calibration,
   PTQ with the integer export checked in onnxruntime, the float export read back by the ONNX import, QAT's
   export) either works, checked against an independent result, or, where a registry of that stage refuses the
   type, raises an error that names the cell and the stage.
"""
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import n2d2x.cli  # noqa: F401  (imports every stage, so every registry exists)
from n2d2x.calibrate import calibrate
from n2d2x.data import ArrayDatabase, StimuliProvider
from n2d2x.engine import backward, forward, forward_train
from n2d2x.export import export_onnx
from n2d2x.fuse import fuse
from n2d2x import network
from n2d2x.helpers import REGISTRIES
from n2d2x.network import (ACTIVATIONS, CELL_TYPES, Activation, ActivationCell, BatchNorm, Conv, Deconv, Dropout, ElemWise,
                           Fc, LRN, Network, Padding, Pool, Reshape, Resize, Softmax, Target)
from n2d2x.onnx_import import network_from_onnx
from n2d2x.qat import SATAct, SATWeights, qat_to_qnetwork
from n2d2x.weights import fill

RELU = Activation('Rectifier')

# one example of each cell type, reading `conv0` (4 channels of 8x8, ReLU) and read by an Fc; the key is the type
EXAMPLES = {
    'Conv': lambda: Conv('x', ['conv0'], 4, RELU, kernel=(3, 3), pads=(1, 1, 1, 1)),
    'Fc': lambda: Fc('x', ['conv0'], 6, RELU),
    'Pool': lambda: Pool('x', ['conv0'], kernel=(2, 2), stride=(2, 2)),
    'BatchNorm': lambda: BatchNorm('x', ['conv0'], 4, RELU),
    'ElemWise': lambda: ElemWise('x', ['conv0', 'conv0'], weights=[1.0, 0.5]),
    'Softmax': None,   # every example ends with one: the target
    'Dropout': lambda: Dropout('x', ['conv0']),
    'Padding': lambda: Padding('x', ['conv0'], top=1, left=2),
    'Reshape': lambda: Reshape('x', ['conv0'], shape=(16, 4, 4)),
    'Resize': lambda: Resize('x', ['conv0'], out_height=16, out_width=16, mode='NearestNeighbor'),
    'Activation': lambda: ActivationCell('x', ['conv0'], activation=Activation('Rectifier')),
    'Deconv': lambda: Deconv('x', ['conv0'], 4, RELU, kernel=(2, 2), stride=(2, 2)),
    'LRN': lambda: LRN('x', ['conv0'], size=3),
}


def example_net(middle, seed=0):
    "env (1, 8, 8) -> conv0 -> `middle` (or nothing) -> fc -> softmax, filled with random parameters."
    cells = [Conv('conv0', ['env'], 4, RELU, kernel=(3, 3), pads=(1, 1, 1, 1))] + ([middle] if middle else [])
    cells += [Fc('fc', [cells[-1].name], 3), Softmax('softmax', ['fc'])]
    net = fill(Network((1, 8, 8), cells, [Target('softmax.Target', 'softmax')]), seed)
    rng = np.random.default_rng(seed)
    for c in net:
        if isinstance(c, BatchNorm):
            c.scale, c.bias = rng.uniform(0.5, 2, 4).astype('f4'), rng.normal(0, 0.5, 4).astype('f4')
            c.mean, c.variance = rng.normal(0, 0.3, 4).astype('f4'), rng.uniform(0.5, 2, 4).astype('f4')
    return net


def activation_network(act):
    "env -> conv0 -> x (a 1x1 Conv with activation `act`) -> fc -> softmax."
    return example_net(Conv("x", ["conv0"], 4, act, kernel=(1, 1)))


CASES = {f'cell {t}': (lambda t=t: example_net(EXAMPLES[t]() if EXAMPLES.get(t) else None), t, None) for t in CELL_TYPES}
CASES |= {f'activation {a}': (lambda a=a: activation_network(Activation(a)), 'Conv', a) for a in ACTIVATIONS}

IMAGES = np.random.default_rng(7).uniform(0, 1, (48, 8, 8)).astype(np.float32)
X = IMAGES[:, None]


def provider():
    db = ArrayDatabase(IMAGES, np.arange(48) % 3, {'Validation': np.arange(32), 'Test': np.arange(32, 48)})
    return StimuliProvider(db, (1, 8, 8), batch_size=16)


# --- 1. every registry decides every type ---

def kinds():
    "The types each kind of registry decides (read when called: the test below adds types)."
    forms = {k.integer_form(Activation(a)) for a, k in network.ACTIVATION_KINDS.items()} - {None}
    cells, acts = set(network.CELL_TYPES), set(network.ACTIVATION_KINDS)
    return {'cell': cells, 'activation': acts, 'qcell': cells | {'Rescale'}, 'integer form': forms}


def undecided():
    "'stage (kind): type' for each type a registry must decide and does not."
    return [f"{r.stage} ({r.kind}): {t}" for r in REGISTRIES for t in sorted(kinds()[r.kind])
            if r.must_decide(t) and not r.decided(t)]


def test_every_registry_decides_every_type():
    assert len(REGISTRIES) >= 15, [r.stage for r in REGISTRIES]
    assert not undecided(), "types no kernel supports or refuses: " + '; '.join(undecided())
    for r in REGISTRIES:
        assert all(why.strip() for why in r.refused.values()), r   # a refusal says why
        assert not set(r) & set(r.refused), r


def test_a_new_cell_type_or_activation_is_reported_stage_by_stage(monkeypatch):
    "What adding a type without deciding it does: each stage that has not decided it is named."
    @dataclass(repr=False)
    class NotYetACell(network.Cell):
        groups: int = 1
        type: ClassVar[str] = 'NotYetACell'
    monkeypatch.setitem(network.CELL_TYPES, 'NotYetACell', NotYetACell)
    monkeypatch.setitem(network.ACTIVATION_KINDS, 'NotYetAnActivation',
                        network.ActivationKind('NotYetAnActivation', lambda a, lo, hi: (max(lo, -1.0), min(hi, 1.0)), integer_form=lambda a: 'clip'))
    todo = undecided()
    cell = {u.split(' (')[0] for u in todo if u.endswith(': NotYetACell')}
    act = {u.split(' (')[0] for u in todo if u.endswith(': NotYetAnActivation')}
    assert {'INI', 'engine forward', 'engine backward', 'float export', 'quantize', 'integer simulation', 'integer export',
            'QAT export', 'ONNX import with Transpose=1'} <= cell, cell
    assert {'activation forward', 'activation gradient', 'float export activation', 'calibrate', 'QAT export'} <= act, act
    assert not any('weights' in u for u in todo if u.endswith(': NotYetACell'))   # no parameters: no weight files to decide
    assert NotYetACell('s', ['env']).value_range([(0.0, 1.0)]) == (-np.inf, np.inf)   # a new type makes any value until it says otherwise


# --- 2. each stage on a network holding the type ---

STEPS = ('engine forward', 'engine backward', 'fuse', 'calibrate', 'float export', 'integer export', 'QAT export')
STAGES = {'engine forward': ['engine forward', 'activation forward'],
          'engine backward': ['engine backward', 'engine training forward', 'activation gradient'],
          'fuse': [], 'calibrate': ['calibrate'],
          'float export': ['float export', 'float export activation'],
          'integer export': ['quantize', 'integer simulation', 'integer export'],
          'QAT export': ['QAT export']}


def refusal(step, net):
    "The registries of `step` that refuse a type (cell, activation or integer form) of `net`: [(stage, cell name)]."
    out = []
    for r in (r for r in REGISTRIES if r.stage in STAGES[step]):
        for c in net:
            a = c.activation
            key = {'cell': c.type, 'qcell': c.type, 'activation': a and a.type, 'integer form': a and a.integer_form}[r.kind]
            if key in r.refused: out.append((r.stage, c.name))
    return out


def run_step(step, net, tmp_path):
    "Run `step` on `net` and check what it computed against an independent result."
    if step == 'engine forward':
        y = forward(net, X)['softmax']
        np.testing.assert_allclose(y.sum(1), 1, rtol=1e-5)
    elif step == 'engine backward':
        check_gradient(net)
    elif step == 'fuse':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            f = fuse(net)
        np.testing.assert_allclose(forward(f, X)['fc'], forward(net, X)['fc'], rtol=1e-4, atol=1e-5)
    elif step == 'calibrate':
        cal = calibrate(net, [X[:16], X[16:]])
        ref = net.copy()   # N2D2 calibrates with the Logistic activations of cells other than Activation cells disabled
        for c in ref:
            if c.activation is not None and c.activation.type.startswith('Logistic') and c.type != 'Activation': c.activation = None
        y = forward(ref, X)
        for c in net: assert cal.ranges[c.name].max == pytest.approx(float(y[c.name].max()))
    elif step == 'float export':
        out = export_onnx(net, nbbits=-32, out_dir=tmp_path)
        import onnxruntime as ort
        sess = ort.InferenceSession(str(out / 'model.onnx'), providers=['CPUExecutionProvider'])
        want = forward(net, X)['softmax']
        np.testing.assert_allclose(sess.run(None, {'env': X})[0].reshape(want.shape), want, rtol=1e-4, atol=1e-6)
        back = network_from_onnx(out / 'model.onnx')          # and read back by the ONNX import
        got = forward(back, X)[back.targets[0].cell]
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-6)
    elif step == 'integer export':
        out = export_onnx(net, nbbits=8, out_dir=tmp_path, stimuli=provider(), calib=-1, db_export=-1)
        v = out.report['verification']['softmax.Target']
        assert v['identical'] == 16, v          # onnxruntime's integers equal the simulation's, on all 16 test stimuli
    elif step == 'QAT export':
        for c in net:
            if c.type in ('Conv', 'Fc'): c.weights_quantizer = SATWeights(range=15)
        net['conv0'].output_quantizer = SATAct(range=15, alpha=np.float32([4.0]))
        out = export_onnx(net, nbbits=8, out_dir=tmp_path, stimuli=provider(), qat=True, db_export=-1)
        v = out.report['verification']['softmax.Target']
        assert v['identical'] == 16, v


def check_gradient(net):
    """The backward pass against central differences, in float64, along a random direction of conv0's weights.
    A loss activation (LogisticWithLoss) passes its gradient through unchanged, by design (the loss supplies y - t):
    its differences are taken with the identity in its place."""
    ref = net.copy()
    for c in ref:
        if c.activation is not None and c.activation.kind.with_loss: c.activation = Activation('Linear')
    rng = np.random.default_rng(1)
    g, v = rng.normal(size=(len(X), 3, 1, 1)), rng.normal(size=net['conv0'].weights.shape)
    loss = lambda n: float((forward_train(n, X, 0, np.float64)['fc'] * g).sum())
    grads = backward(net, forward_train(net, X, 0, np.float64), {'fc': g})
    analytic = float((grads['conv0']['weights'] * v).sum())
    eps, w0 = 1e-6, ref['conv0'].weights.astype(np.float64)
    ref['conv0'].weights = w0 + eps * v; up = loss(ref)
    ref['conv0'].weights = w0 - eps * v; down = loss(ref)
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize('step', STEPS)
@pytest.mark.parametrize('case', list(CASES))
def test_every_stage_supports_or_names_the_refusal(case, step, tmp_path):
    make, cell_type, act = CASES[case]
    net = make()
    refused = refusal(step, net)
    if not refused:
        run_step(step, net, tmp_path)
        return
    with pytest.raises(Exception) as e:
        run_step(step, net, tmp_path)
    msg = str(e.value)
    assert any(f"[{name}]" in msg and stage in msg for stage, name in refused), (refused, msg)
    assert not list(tmp_path.glob('export_*')), "a refused export left files behind"
