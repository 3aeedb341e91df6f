"""An N2D2 INI with Deconv cells, end to end from the command line: it fills under -seed, learns a few batches of the
bundled MNIST digits, writes its weights in N2D2's .syntxt layout, and its float ONNX export (ConvTranspose) computes
what the engine computes from those weights; its 8-bit integer export (each Deconv a ConvInteger) is the
simulation's, bit for bit."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from n2d2x.data import bundled_mnist_path
from n2d2x.engine import predict
from n2d2x.network import Network
from n2d2x.weights import fill, load_weights

# conv1 (16x16 -> 8 maps of 7x7), up: a 2x2 stride-2 Deconv (4 maps of 14x14), up2: a grouped 3x3 Deconv with
# padding (2 groups, 14x14), then a classifier
INI = """
[database]
Type=MNIST_IDX_Database
DataPath={mnist}
Validation=0.1

[sp]
SizeX=16
SizeY=16
BatchSize=16

[sp.Transformation_1]
Type=RescaleTransformation
Width=[sp]SizeX
Height=[sp]SizeY

[conv1]
Input=sp
Type=Conv
KernelDims=4 4
Stride=2
NbOutputs=8
ActivationFunction=Rectifier
WeightsFiller=HeFiller
ConfigSection=solvers

[up]
Input=conv1
Type=Deconv
KernelDims=2 2
Stride=2
NbOutputs=4
ActivationFunction=Rectifier
WeightsFiller=XavierFiller
ConfigSection=solvers

[up2]
Input=up
Type=Deconv
KernelDims=3 3
Padding=1
Mapping.NbGroups=2
NbOutputs=4
ActivationFunction=Tanh
WeightsFiller=HeFiller
ConfigSection=solvers

[fc]
Input=up2
Type=Fc
NbOutputs=10
ConfigSection=solvers

[softmax]
Input=fc
Type=Softmax
NbOutputs=10
WithLoss=1

[softmax.Target]

[solvers]
Solvers.LearningRate=0.05
Solvers.Momentum=0.9
"""


@pytest.fixture(scope='module')
def trained(tmp_path_factory, n2d2x):
    "(folder, ini path): the INI learnt for 64 stimuli, then exported from its learnt weights, by the n2d2x command."
    d = tmp_path_factory.mktemp('deconv')
    ini = d / 'deconv.ini'
    ini.write_text(INI.format(mnist=bundled_mnist_path()))
    n2d2x([ini, '-seed', '1', '-learn', '64'], d)
    n2d2x([ini, '-seed', '1', '-w', 'weights', '-export', 'ONNX', '-nbbits', '-32'], d)
    return d, ini


def test_deconv_cells_are_built_and_filled(tmp_path):
    (tmp_path / 'n.ini').write_text(INI.format(mnist=bundled_mnist_path()))
    net = fill(Network.from_ini(tmp_path / 'n.ini'), seed=1)
    assert [(c.name, c.type, c.dims) for c in net][:3] == [('conv1', 'Conv', (8, 7, 7)), ('up', 'Deconv', (4, 14, 14)),
                                                           ('up2', 'Deconv', (4, 14, 14))]
    assert net['up'].weights.shape == (8, 4, 2, 2) and net['up'].bias.shape == (4,)
    assert net['up2'].weights.shape == (4, 2, 3, 3) and net['up2'].groups == 2       # [C_in, M/groups, kH, kW]
    assert np.abs(net['up'].weights).max() <= np.sqrt(3 / (8 * 4))                   # Xavier, fan-in C_in kH kW
    again = fill(Network.from_ini(tmp_path / 'n.ini'), seed=1)
    np.testing.assert_array_equal(again['up2'].weights, net['up2'].weights)


def test_learning_writes_deconv_weights_in_n2d2_layout(trained):
    d, ini = trained
    w = d / 'weights'
    lines = (w / 'up_weights.syntxt').read_text().splitlines()
    assert [len(l.split()) for l in lines] == [8 * 4] * 4          # one line per output: 8 channels x 2x2 kernel
    assert [len(l.split()) for l in (w / 'up2_weights.syntxt').read_text().splitlines()] == [2 * 9] * 4  # its group's 2 channels
    assert len((w / 'up_biases.syntxt').read_text().split()) == 4
    learnt = load_weights(Network.from_ini(ini), w)
    first = fill(Network.from_ini(ini), seed=1)
    for name in ('up', 'up2'):
        assert not np.array_equal(learnt[name].weights, first[name].weights), name     # the Deconvs learnt
    # line o of the file holds the kernels w[c, o] of every channel c, in channel order
    np.testing.assert_array_equal(np.float32(lines[2].split()), learnt['up'].weights[:, 2].ravel())


def test_exported_deconv_model_matches_the_engine(trained):
    d, ini = trained
    path = d / 'export_ONNX_float32' / 'model.onnx'
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    net = load_weights(Network.from_ini(ini), d / 'weights')
    convt = [n for n in model.graph.node if n.op_type == 'ConvTranspose']
    assert len(convt) == 2
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits[convt[0].input[1]], net['up'].weights)
    assert {a.name: a.i for a in convt[1].attribute if a.name == 'group'} == {'group': 2}
    x = np.random.default_rng(0).random((4, 1, 16, 16), dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {'env': x})))
    want = predict(net, x)['softmax']
    np.testing.assert_allclose(got['softmax'].reshape(want.shape), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('mode', ['Single-shift', 'Fixed-point32'])
def test_deconv_integer_export_is_bit_exact(trained, n2d2x, mode):
    "The same network in 8-bit integers: each Deconv a ConvInteger on its spread input, every output the simulation's."
    d, ini = trained
    out = n2d2x([ini, '-seed', '1', '-w', 'weights', '-export', 'ONNX', '-nbbits', '8', '-calib', '100', '-db-export', '200',
                 '-act-rescaling-mode', mode, '-test'], d)
    assert 'onnxruntime: 1000/1000 outputs identical to the integer simulation' in out, out[-2000:]   # every test stimulus
    model = onnx.load(d / 'export_ONNX_int8' / 'model.onnx')
    ops = [n.op_type for n in model.graph.node]
    assert 'ConvTranspose' not in ops and ops.count('ConvInteger') == 3, ops      # conv1, up, up2
    assert {n.name for n in model.graph.node if n.op_type == 'Reshape'} >= {'up_zeros_reshape'}   # stride 2: zeros inserted
