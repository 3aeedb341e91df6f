"""Issue 12: every INI of N2D2's model folder (vendored in n2d2x/models/n2d2, N2D2 commit ccce8ba), as a new user tries it.

- Feed-forward models export float32 with fillers (`-seed 1 -w /dev/null -export ONNX -nbbits -32`), and onnxruntime
  computes every tensor named after a cell as the numpy engine does on the INI's network (not only the outputs:
  with N2D2's default `$L` the last layers of a residual branch start at zero, so the outputs alone say little).
- ResNet-18-BN, ResNet-50-BN, MobileNet_v2 and SqueezeNet_v1.1 export int8 (`-calib 20 -db-export 5 -test`) on a small
  ImageNet-layout folder made here (random JPEGs, synsets.txt, val.txt), every test output of onnxruntime identical to
  the integer simulation; so does mnist-autoencoder (Deconv cells) on the bundled MNIST digits.
- Every other INI stops with a clean one-line error that names the file (and line), for the reason listed below:
  no INI of the folder is left out silently (`test_every_ini_is_classified`).

Two shipped INIs fail in N2D2 too, and are exported from a copy with the missing key added (said so in the test ids):
ResNet-18-BN.ini has no [sp] section (N2D2: "Missing [sp] section."; the copy takes ResNet-18.ini's [sp]), VGG16.ini's
fc7 has `BiasFiller=ConstantFiller` without `BiasFiller.Value`, which N2D2's ConstantFillerGenerator requires (the copy
sets 0.0). Heavy cases (over a minute on two cores) are marked slow: they run with N2D2X_SLOW=1.
"""
import contextlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from n2d2x.data import random_ilsvrc2012
from n2d2x.engine import forward
from n2d2x.fuse import fuse
from n2d2x.ini import N2D2_MODELS_DIR
from n2d2x.network import Network
from n2d2x.weights import fill

MODELS = N2D2_MODELS_DIR
slow = pytest.mark.slow

# feed-forward INIs that export as shipped
FLOAT = ['GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini', 'LeNet.ini', 'LeNet_quant.ini', 'MobileNet_v1.ini',
         'MobileNet_v1_batchnorm.ini', 'MobileNet_v1_batchnorm_grayscale.ini', 'MobileNet_v2.ini', 'ResNet-11.ini',
         'ResNet-18.ini', 'ResNet-34.ini', 'ResNet-50.ini', 'ResNet-50-BN.ini', 'SqueezeNet_v1.0.ini', 'SqueezeNet_v1.1.ini',
         'cifar-10.ini', 'mnist-autoencoder.ini', 'mnist24_16c4s2_24c5s2_150_10.ini']

# spiking / STDP models (N2D2's Spike, Spike_Analog or Transcode models: neurons with thresholds, no ONNX export)
SPIKING = {'LeNet_Spike.ini': "LeNet_Spike.ini:135: [conv1]: unknown key 'Threshold'",
           'mnist24_16c4s2_24c5s2_150_10_Spike.ini': "_Spike.ini:145: [conv1]: unknown key 'Threshold'",
           'mnist-stdp.ini': "mnist-stdp.ini:1: unknown DefaultModel 'Spike_Analog'",
           'mnist-stdp-ijcnn.ini': "mnist-stdp-ijcnn.ini:30: unknown DefaultModel 'Spike_Analog'",
           'n-mnist-stdp.ini': "n-mnist-stdp.ini:3: unknown DefaultModel 'Spike_Analog'"}

# cells that N2D2's ONNX export has no exporter for (n2d2x refuses them when it reads the INI)
CANNOT_EXPORT = {'IMDBWIKI.ini': ("IMDBWIKI.ini:310: [post.Transformation-thres]: cell Type 'Threshold'", 'cannot be exported'),
                 'IMDBWIKI_FasterRCNN.ini': ("IMDBWIKI_FasterRCNN.ini:309: [anchors]: cell Type 'Anchor'", 'cannot be exported'),
                 'mnist24_16c4s2_24c5s2_150_10_AM-Softmax.ini': ("AM-Softmax.ini:115: [fc1.norm]: cell Type 'Normalize'",
                                                                 'cannot be exported')}

# shipped INIs that N2D2 refuses too: the error, and the copy that exports
NEEDS_FIX = {'ResNet-18-BN.ini': 'missing stimuli provider section [sp]',
             'VGG16.ini': 'ConstantFiller needs ConstantFiller.Value'}

# INIs with a Type=ONNX section: the ONNX models are not in N2D2's repository, and nothing is downloaded here
ONNX_INIS = sorted(p.relative_to(MODELS).as_posix() for p in MODELS.rglob('*.ini') if re.search(r'^Type=ONNX\s*$', p.read_text(), re.M))


def all_inis(): return sorted(p.relative_to(MODELS).as_posix() for p in MODELS.rglob('*.ini'))


def test_every_ini_is_classified():
    "Each INI of the folder is tested for one outcome: none is skipped silently."
    groups = [set(FLOAT), set(NEEDS_FIX), set(SPIKING), set(CANNOT_EXPORT), set(ONNX_INIS)]
    assert sum(map(len, groups)) == len(set().union(*groups)), "an INI is in two groups"
    assert set().union(*groups) == set(all_inis())
    assert len(ONNX_INIS) == 27, ONNX_INIS   # 7 in the folder, 18 in ONNX/, 2 in quantizer/


# --- the INI copies for the two models N2D2 refuses as shipped

def section(text, name):
    "The text of INI section [name] (up to the next section header)."
    m = re.search(rf'^\[{re.escape(name)}\][^\n]*\n(.*?)(?=^\[)', text, re.M | re.S)
    return m.group(0)


def resnet18_bn_with_sp(folder):
    """ResNet-18-BN.ini with the [sp] section of ResNet-18.ini added before its first transformation (same SIZE, BATCH_SIZE),
    in `folder` with the templates it includes by relative path."""
    text = (MODELS / 'ResNet-18-BN.ini').read_text()
    assert '\n[sp]' not in text
    sp = section((MODELS / 'ResNet-18.ini').read_text(), 'sp')
    path = Path(folder) / 'ResNet-18-BN+sp.ini'
    for tpl in MODELS.glob('*.tpl'): shutil.copy(tpl, folder)
    path.write_text(text.replace('[sp.Transformation-1]', sp + '\n[sp.Transformation-1]', 1))
    return path


def vgg16_with_bias_value(folder):
    "VGG16.ini with `BiasFiller.Value=0.0` for fc7's ConstantFiller."
    text = (MODELS / 'VGG16.ini').read_text()
    assert text.count('BiasFiller=ConstantFiller\n') == 1 and 'BiasFiller.Value' not in text
    path = Path(folder) / 'VGG16+value.ini'
    path.write_text(text.replace('BiasFiller=ConstantFiller\n', 'BiasFiller=ConstantFiller\nBiasFiller.Value=0.0\n'))
    return path


# --- float: onnxruntime vs the engine, every tensor named after a cell

def engine_by_onnx_name(net, x):
    """The engine's output of each cell of `net` on `x`, under the name the float export gives it: a BatchNorm folded into
    the Conv/Fc before it (or into the identity Conv put before it) is that cell's output; Dropout and Padding cells
    removed by the fusion have no tensor."""
    ys, fused = forward(net, x), fuse(net)
    taken = {}   # fused cell -> the folded BatchNorm whose output it now writes
    for b in (c for c in net if c.type == 'BatchNorm' and c.name not in fused.cells):
        ident = [c.name for c in fused if c.name not in net.cells and c.name.startswith(f'{b.name}_conv')]
        taken[ident[0] if ident else b.inputs[0]] = b.name
    out = {c.name: ys[taken.get(c.name, c.name)] for c in fused}
    return out


def ort_all(model_path, names, x):
    "onnxruntime's value of the tensors `names` of the model, on `x`."
    m = onnx.load(model_path)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names if n not in have)
    sess = ort.InferenceSession(m.SerializeToString(), providers=['CPUExecutionProvider'])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {'env': x})))


def check_float(ini, folder, n2d2x):
    out = n2d2x([ini, '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '-32'], folder)
    assert 'Exported export_ONNX_float32/model.onnx' in out, out
    model_path = Path(folder) / 'export_ONNX_float32' / 'model.onnx'
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    net = fill(Network.from_ini(ini), seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (2, *net.input_dims)).astype(np.float32)
    want = engine_by_onnx_name(net, x)
    tensors = {o for n in onnx.load(model_path, load_external_data=False).graph.node for o in n.output}
    compared = [n for n in want if n in tensors]
    # every cell of the fused network writes a tensor of its name, except those that only pass their input on
    passthrough = {c.name for c in fuse(net) if c.type in ('Dropout', 'Padding', 'Reshape', 'Activation')}
    assert set(want) - set(compared) <= passthrough, set(want) - set(compared) - passthrough
    got = ort_all(model_path, compared, x)
    varying = 0
    for name in compared:
        y, g = want[name], got[name].reshape(want[name].shape)
        scale = float(np.abs(y).max()) or 1.0
        np.testing.assert_allclose(g, y, rtol=1e-4, atol=2e-5 * scale, err_msg=f'{Path(ini).name}: tensor {name}')
        varying += bool(np.ptp(y) > 0)
    assert varying >= len(compared) // 2, f'{varying} of {len(compared)} tensors vary with the input'
    return len(compared)


@pytest.mark.parametrize('ini', FLOAT)
def test_float_export_matches_engine(ini, tmp_path, n2d2x):
    assert check_float(MODELS / ini, tmp_path, n2d2x) >= 5


def test_float_resnet18_bn_with_sp(tmp_path, n2d2x):
    "ResNet-18-BN.ini with ResNet-18.ini's [sp] (N2D2 refuses the shipped file: no [sp] section)."
    assert check_float(resnet18_bn_with_sp(tmp_path), tmp_path, n2d2x) > 20


@slow
def test_float_vgg16_with_bias_value(tmp_path, n2d2x):
    "VGG16.ini with BiasFiller.Value=0.0 for fc7 (N2D2 refuses the shipped file: ConstantFiller needs a Value); 528 MB."
    assert check_float(vgg16_with_bias_value(tmp_path), tmp_path, n2d2x) >= 16


# --- INIs that stop with one clear line

def error_line(ini, folder, n2d2x):
    "The one error line the command prints (to stderr, after any one-line warnings) when it stops on `ini`."
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out = n2d2x([MODELS / ini, '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '-32'], folder, expect=1)
    lines = [l for l in err.getvalue().strip().splitlines() if not l.startswith('n2d2x: warning: ')]
    assert len(lines) == 1 and lines[0].startswith('n2d2x: error: '), err.getvalue()
    assert not list(Path(folder).glob('export_*')), out
    return lines[0]


@pytest.mark.parametrize('ini', ONNX_INIS)
def test_onnx_section_without_its_file(ini, tmp_path, n2d2x):
    "The ONNX model is not in N2D2's repository: a one-line error naming the expanded path and the INI's line."
    line = error_line(ini, tmp_path, n2d2x)
    text = (MODELS / ini).read_text()
    onnx_section = text[text.rindex('\n[', 0, text.index('\nType=ONNX')):]
    file = re.search(r'^File=(.*?)\s*(;.*)?$', onnx_section, re.M).group(1)
    expanded = file.replace('${N2D2_MODELS}', str(MODELS))
    assert '$' not in expanded, file
    assert f"ONNX file '{expanded}' not found" in line, line
    assert re.search(rf'{re.escape(str(MODELS / ini))}:\d+: \[', line), line


@pytest.mark.parametrize('ini', sorted(CANNOT_EXPORT))
def test_cells_n2d2_cannot_export(ini, tmp_path, n2d2x):
    line = error_line(ini, tmp_path, n2d2x)
    for part in CANNOT_EXPORT[ini]: assert part in line, line


@pytest.mark.parametrize('ini', sorted(SPIKING))
def test_spiking_models_stop_cleanly(ini, tmp_path, n2d2x):
    "Spiking / STDP models are outside the ONNX export; they stop at their first spiking key, naming file and line."
    assert SPIKING[ini] in error_line(ini, tmp_path, n2d2x)


@pytest.mark.parametrize('ini', sorted(NEEDS_FIX))
def test_shipped_ini_that_n2d2_refuses_too(ini, tmp_path, n2d2x):
    line = error_line(ini, tmp_path, n2d2x)
    assert NEEDS_FIX[ini] in line and str(MODELS / ini) in line, line


# --- int8 on a generated ImageNet-layout folder

@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    return random_ilsvrc2012(tmp_path_factory.mktemp('n2d2_data'))


def check_int8(ini, folder, n2d2x, data, monkeypatch):
    monkeypatch.setenv('N2D2_DATA', str(data))
    out = n2d2x([ini, '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '8', '-calib', '20', '-db-export', '5', '-test'], folder)
    assert 'onnxruntime: 20/20 outputs identical to the integer simulation' in out, out
    exp = Path(folder) / 'export_ONNX_int8'
    model = onnx.load(exp / 'model.onnx')
    onnx.checker.check_model(model, full_check=True)
    assert {'ConvInteger'} <= {n.op_type for n in model.graph.node}
    assert len(list((exp / 'stimuli').glob('env*.ppm'))) == 5
    return out


@pytest.mark.parametrize('ini', ['MobileNet_v2.ini', 'SqueezeNet_v1.1.ini'])
def test_int8_imagenet(ini, tmp_path, n2d2x, imagenet, monkeypatch):
    check_int8(MODELS / ini, tmp_path, n2d2x, imagenet, monkeypatch)


def test_int8_resnet18_bn_with_sp(tmp_path, n2d2x, imagenet, monkeypatch):
    "ResNet-18-BN.ini with ResNet-18.ini's [sp] added (the shipped file has none: N2D2 refuses it too)."
    check_int8(resnet18_bn_with_sp(tmp_path), tmp_path, n2d2x, imagenet, monkeypatch)


@slow
def test_int8_resnet50_bn(tmp_path, n2d2x, imagenet, monkeypatch):
    check_int8(MODELS / 'ResNet-50-BN.ini', tmp_path, n2d2x, imagenet, monkeypatch)


def test_int8_mnist_autoencoder(tmp_path, n2d2x, monkeypatch):
    "Deconv cells in PTQ: the autoencoder on the MNIST digits bundled with n2d2x, integer-only and bit for bit."
    monkeypatch.setenv('N2D2_DATA', str(tmp_path))   # no mnist/ there: the bundled digits
    out = n2d2x([MODELS / 'mnist-autoencoder.ini', '-seed', '1', '-w', '/dev/null', '-export', 'ONNX', '-nbbits', '8',
                 '-calib', '20', '-db-export', '5', '-test'], tmp_path)
    m = re.search(r'onnxruntime: (\d+)/(\d+) outputs identical to the integer simulation', out)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= 100, out
    model = onnx.load(tmp_path / 'export_ONNX_int8' / 'model.onnx')
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert 'ConvInteger' in ops and not ops & {'ConvTranspose', 'Conv'}, ops
