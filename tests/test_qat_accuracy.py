"""A SAT network written as N2D2's QAT documentation writes it exports at the accuracy it was trained to (issue 11).

`Default` quantization mode (the levels 2k - R), `QWeight.ApplyScaling=0` on the convolutions and `=1` on the Fc, SAT
activations on the BatchNorms (`ActivationFunction=Linear`, the quantizer's clamp is the ReLU). Each network is
written here, learns briefly on Fashion-MNIST with the n2d2x command from float weights that the same command
learnt, then `-export ONNX -nbbits n -qat-sat -db-export 100 -test` prints the QAT network's own accuracy (its float
column), the integer simulation's and onnxruntime's: they must agree within 0.3 point, every exported stimulus
bit for bit. Then the docs' recipes (`docs/quant/qat.rst`): 8-bit weights (`Range=255`) in the first and last layers,
4-bit ones elsewhere, and a residual network (the ResNet-18 section, on a small network of its cell types: Conv,
BatchNorm, ElemWise Sum with a QAct after the addition, average pooling, Fc). A `-nbbits` too small for what was
trained is an error that says which to pass.
"""
import json, re
from pathlib import Path

import onnx
import pytest


FASHION = Path('/usr/share/datasets/fashion-mnist')

HEAD = """[database]
Type=Fashion_MNIST_IDX_Database
DataPath=/usr/share/datasets/fashion-mnist
Validation=0.1
[sp]
SizeX=28
SizeY=28
BatchSize=32
[conv_def]
Type=Conv
NoBias=1
ActivationFunction=Linear
WeightsFiller=HeFiller
ConfigSection=common.config
{qconv}
[bn_def]
Type=BatchNorm
ActivationFunction={bn_act}
ConfigSection=common.config
{qact}
[fc_def]
Type=Fc
ActivationFunction=Linear
WeightsFiller=XavierFiller
ConfigSection=common.config
{qfc}
"""

TAIL = """[softmax]
Input=fc
Type=Softmax
NbOutputs=10
WithLoss=1
[softmax.Target]
[common.config]
Solvers.LearningRate=0.01
Solvers.Momentum=0.9
Solvers.Decay=0.0001
"""

# the network of the issue: conv + BatchNorm twice, max pooling, one Fc
LENET = """[conv1] conv_def
Input=sp
KernelDims=5 5
NbOutputs=8
{first}
[bn1] bn_def
Input=conv1
NbOutputs=8
[pool1]
Input=bn1
Type=Pool
PoolDims=2 2
Stride=2
NbOutputs=8
Mapping.Size=1
[conv2] conv_def
Input=pool1
KernelDims=5 5
NbOutputs=16
[bn2] bn_def
Input=conv2
NbOutputs=16
[pool2]
Input=bn2
Type=Pool
PoolDims=2 2
Stride=2
NbOutputs=16
Mapping.Size=1
[fc] fc_def
Input=pool2
NbOutputs=10
{last}
"""

# ResNet-18's cell types, small: a stem, an identity block, a strided block with a 1x1 projection, global average
# pooling, an Fc; the second BatchNorm of a block has no QAct (its sum has one), as in the docs' ResNet-18
RESNET = """[conv1] conv_def
Input=sp
KernelDims=3 3
Stride=2
Padding=1
NbOutputs=16
{first}
[bn1] bn_def
Input=conv1
NbOutputs=16
[b1c1] conv_def
Input=bn1
KernelDims=3 3
Padding=1
NbOutputs=16
[b1n1] bn_def
Input=b1c1
NbOutputs=16
[b1c2] conv_def
Input=b1n1
KernelDims=3 3
Padding=1
NbOutputs=16
[b1n2]
Type=BatchNorm
Input=b1c2
NbOutputs=16
ActivationFunction=Linear
ConfigSection=common.config
[b1sum]
Type=ElemWise
Operation=Sum
Input=b1n2,bn1
NbOutputs=16
ActivationFunction={bn_act}
{qact}
[b2c1] conv_def
Input=b1sum
KernelDims=3 3
Stride=2
Padding=1
NbOutputs=32
[b2n1] bn_def
Input=b2c1
NbOutputs=32
[b2c2] conv_def
Input=b2n1
KernelDims=3 3
Padding=1
NbOutputs=32
[b2n2]
Type=BatchNorm
Input=b2c2
NbOutputs=32
ActivationFunction=Linear
ConfigSection=common.config
[b2proj] conv_def
Input=b1sum
KernelDims=1 1
Stride=2
NbOutputs=32
[b2projn]
Type=BatchNorm
Input=b2proj
NbOutputs=32
ActivationFunction=Linear
ConfigSection=common.config
[b2sum]
Type=ElemWise
Operation=Sum
Input=b2n2,b2projn
NbOutputs=32
ActivationFunction={bn_act}
{qact}
[pool]
Input=b2sum
Type=Pool
PoolDims=7 7
Pooling=Average
NbOutputs=32
Mapping.Size=1
[fc] fc_def
Input=pool
NbOutputs=10
{last}
"""


def ini(body, wbits=None, abits=None, first=None, last=None):
    """The INI of `body`: float without bits; else SAT weights of `wbits` bits (`first` / `last`: the first conv's and
    the Fc's, as the docs' recipes set them) and SAT activations of `abits` bits."""
    if wbits is None:
        return (HEAD.format(qconv='', qfc='', qact='', bn_act='Rectifier') + body.format(first='', last='', qact='', bn_act='Rectifier')
                + TAIL)
    w = lambda b, scaling: f"QWeight=SAT\nQWeight.Range={2 ** b - 1}\nQWeight.ApplyScaling={scaling}\n" \
                           "QWeightSolver.LearningRate=0.01\nQWeightSolver.Momentum=0.9\n"
    qact = (f"QAct=SAT\nQAct.Range={2 ** abits - 1}\nQAct.Alpha=6.0\nQActSolver=SGD\nQActSolver.LearningRate=0.01\n"
            "QActSolver.Momentum=0.9\n")
    first = '' if first is None else f"QWeight.Range={2 ** first - 1}\n"
    last = '' if last is None else f"QWeight.Range={2 ** last - 1}\n"
    return (HEAD.format(qconv=w(wbits, 0), qfc=w(wbits, 1), qact=qact, bn_act='Linear')
            + body.format(first=first, last=last, qact=qact, bn_act='Linear') + TAIL)


TESTED = re.compile(r"softmax\.Target \(10000 Test stimuli\): float ([\d.]+)%, integer simulation ([\d.]+)%, onnxruntime ([\d.]+)%")


def export_accuracies(n2d2x, ini_path, weights, nbbits, cwd):
    "(QAT network, integer simulation, onnxruntime) accuracies in % printed by -export ONNX -qat-sat -test, after checks."
    out = n2d2x([ini_path, '-seed', 1, '-w', weights, '-export', 'ONNX', '-nbbits', nbbits, '-qat-sat', '-db-export', 100,
                 '-act-rescaling-mode', 'Fixed-point32', '-test'], cwd)
    assert 'onnxruntime: 10000/10000 outputs identical to the integer simulation' in out, out[-2000:]
    assert 'Warning' not in out and 'rounded' not in out, out[-2000:]
    m = TESTED.search(out)
    assert m, out[-2000:]
    return tuple(map(float, m.groups()))


def bits_metadata(path):
    "The model's metadata of the bits its tensors occupy (JSON): n2d2x.weight_bits, n2d2x.activation_bits."
    return [p for p in onnx.load(path).metadata_props if p.key in ('n2d2x.weight_bits', 'n2d2x.activation_bits')]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, n2d2x):
    "{body name: weights folder of its float network}, learnt by the n2d2x command (30,000 stimuli)."
    if not FASHION.exists(): pytest.fail(f'{FASHION} is missing: apt-get install dataset-fashion-mnist')
    out = {}
    for name, body in (('lenet', LENET), ('resnet', RESNET)):
        d = tmp_path_factory.mktemp(f'{name}_float')
        (d / 'float.ini').write_text(ini(body))
        n2d2x([d / 'float.ini', '-seed', 1, '-learn', 30000, '-log', 10000], d)
        out[name] = d / 'weights_validation'
    return out


def qat(n2d2x, tmp_path, body, float_weights, **bits):
    "The QAT INI of `body`, learnt 10,000 stimuli from the float weights: (INI path, weights folder)."
    path = tmp_path / 'qat.ini'
    path.write_text(ini(body, **bits))
    n2d2x([path, '-seed', 1, '-w', float_weights, '-learn', 10000, '-log', 5000], tmp_path)
    return path, tmp_path / 'weights_validation'


@pytest.mark.parametrize('bits', [8, 4, 3])
def test_default_mode_sat_exports_at_its_accuracy(bits, trained, tmp_path, n2d2x):
    "The issue's network at WnAn, `Default` mode everywhere, exported at -nbbits n: the QAT network's accuracy, exactly kept."
    path, weights = qat(n2d2x, tmp_path, LENET, trained['lenet'], wbits=bits, abits=bits)
    qat_acc, sim, ort = export_accuracies(n2d2x, path, weights, bits, tmp_path)
    print(f"W{bits}A{bits}: QAT network {qat_acc:.2f} %, integer simulation {sim:.2f} %, onnxruntime {ort:.2f} %")
    assert sim == ort and abs(sim - qat_acc) <= 0.3 and qat_acc > 75, (qat_acc, sim)
    export = tmp_path / f'export_ONNX_int{bits}'
    meta = {p.key: json.loads(p.value) for p in bits_metadata(export / 'model.onnx')}
    assert meta['n2d2x.weight_bits'] == dict.fromkeys(['conv1', 'conv2', 'fc'], bits + 1)      # the odd levels 2k - R
    assert {k: v for k, v in meta['n2d2x.activation_bits'].items() if k in ('conv1', 'conv2')} == {'conv1': bits, 'conv2': bits}
    assert meta['n2d2x.activation_bits']['env'] == 8 and meta['n2d2x.activation_bits']['fc'] == 16   # the logits


def test_docs_recipe_first_and_last_layers_at_8_bits(trained, tmp_path, n2d2x, capsys):
    """qat.rst's LeNet: 4-bit weights and activations, the first conv and the Fc with 8-bit weights (Range=255, levels
    2k - 255 in 9 bits). -nbbits 4 cannot hold those: an error that says to pass 8; -nbbits 8 keeps every level."""
    path, weights = qat(n2d2x, tmp_path, LENET, trained['lenet'], wbits=4, abits=4, first=8, last=8)
    capsys.readouterr()
    n2d2x([path, '-seed', 1, '-w', weights, '-export', 'ONNX', '-nbbits', 4, '-qat-sat'], tmp_path, expect=1)
    err = capsys.readouterr().err
    assert re.search(r"cell \[conv1\]: QWeight.Range=255 needs 8 bits, more than -nbbits 4 \(1 other quantizer too\): "
                     r"export it with -nbbits 8", err), err
    assert not (tmp_path / 'export_ONNX_int4').exists()
    qat_acc, sim, ort = export_accuracies(n2d2x, path, weights, 8, tmp_path)
    print(f"docs' LeNet W4A4, first and last W8: QAT network {qat_acc:.2f} %, integer simulation {sim:.2f} %")
    assert sim == ort and abs(sim - qat_acc) <= 0.3 and qat_acc > 75, (qat_acc, sim)
    meta = {p.key: json.loads(p.value) for p in bits_metadata(tmp_path / 'export_ONNX_int8' / 'model.onnx')}
    assert meta['n2d2x.weight_bits'] == {'conv1': 9, 'conv2': 5, 'fc': 9}   # conv2: its 4-bit levels 2k - 15, in 5 bits


def test_docs_resnet_recipe(trained, tmp_path, n2d2x):
    """qat.rst's ResNet-18 section on a small residual network: 4-bit weights and activations (the sums' QAct too),
    8-bit weights in the first conv and the Fc; the outputs without QAct that meet at a sum share its grid."""
    path, weights = qat(n2d2x, tmp_path, RESNET, trained['resnet'], wbits=4, abits=4, first=8, last=8)
    qat_acc, sim, ort = export_accuracies(n2d2x, path, weights, 8, tmp_path)
    print(f"docs' ResNet W4A4, first and last W8: QAT network {qat_acc:.2f} %, integer simulation {sim:.2f} %")
    assert sim == ort and abs(sim - qat_acc) <= 0.3 and qat_acc > 70, (qat_acc, sim)
