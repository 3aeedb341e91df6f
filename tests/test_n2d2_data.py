"""N2D2's own model files that need the data pieces of issue 12: GTSRB and CIFAR-100 folders generated in their real
on-disk formats, `[sp] QuantizationLevels` (LeNet_quant.ini), an ONNX model of open input size in a Type=ONNX section,
and filler errors with file and line."""
import re

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from n2d2x.data import (CIFAR100_Database, GTSRB_DIR_Database, PARTITIONS, StimuliProvider, database_from_ini,
                        quantize_stimuli)
from n2d2x.network import Network, model_path

GTSRB29 = model_path('n2d2/GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini')
HEADER = 'Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n'


def make_gtsrb(root, classes=3, per_class=5, tests=6, seed=0):
    "GTSRB as distributed: Final_Training/Images/000NN/*.ppm + GT-000NN.csv, Final_Test/Images/*.ppm, GT-final_test.csv."
    rng = np.random.default_rng(seed)
    for k in range(classes):
        d = root / 'Final_Training' / 'Images' / f'{k:05d}'
        d.mkdir(parents=True)
        lines = []
        for j in range(per_class):
            h, w = (int(v) for v in rng.integers(25, 40, 2))
            cv2.imwrite(str(d / f'{k:05d}_{j:05d}.ppm'), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            lines.append(f'{k:05d}_{j:05d}.ppm;{w};{h};5;5;{w - 5};{h - 5};{k}\n')
        (d / f'GT-{k:05d}.csv').write_text(HEADER + ''.join(lines))
    t = root / 'Final_Test' / 'Images'
    t.mkdir(parents=True)
    for j in range(tests):
        cv2.imwrite(str(t / f'{j:05d}.ppm'), rng.integers(0, 256, (30, 31, 3), dtype=np.uint8))
    (root / 'GT-final_test.csv').write_text(HEADER + ''.join(f'{j:05d}.ppm;31;30;5;5;26;25;{j % classes}\n' for j in range(tests)))


def test_gtsrb_labels_and_partitions(tmp_path):
    make_gtsrb(tmp_path / 'GTSRB', classes=3, per_class=5)
    db = GTSRB_DIR_Database(tmp_path / 'GTSRB', validation=0.2, seed=1)
    assert db.label_names == ['0', '1', '2']
    # per class of 5: Learn round_half_up(4.0) = 4, Validation 1 (partitionStimuliPerLabel), all 6 test images in Test
    assert [db.count(p) for p in PARTITIONS] == [12, 3, 6]
    assert np.bincount(db.labels('Validation')).tolist() == [1, 1, 1]
    # every training image carries the class of its folder's GT file, every test image the ClassId of GT-final_test.csv
    for i in np.concatenate([db.stimuli('Learn'), db.stimuli('Validation'), db.stimuli('Test')]):
        name = db.name(int(i))
        folder = re.search(r'Images/(\d{5})/', name)
        expect = int(folder.group(1)) if folder else int(re.search(r'(\d{5})\.ppm$', name).group(1)) % 3
        assert db.label(int(i)) == expect, name


def test_gtsrb29_int8_export_identical(tmp_path, n2d2x, monkeypatch):
    "N2D2's GTSRB29 INI, unmodified, int8 with calibration on a generated GTSRB folder: onnxruntime = simulation."
    make_gtsrb(tmp_path / 'data' / 'GTSRB')
    monkeypatch.setenv('N2D2_DATA', str(tmp_path / 'data'))
    out = n2d2x([GTSRB29, '-seed', 1, '-w', '/dev/null', '-export', 'ONNX', '-nbbits', 8, '-calib', -1, '-db-export', 4, '-test'], tmp_path)
    assert 'onnxruntime: 6/6 outputs identical to the integer simulation' in out, out


def cifar100_record(coarse, fine, rgb):
    return bytes([coarse, fine]) + b''.join(bytes([v]) * 1024 for v in rgb)


def make_cifar100(root, n_train=20, n_test=10, seed=0):
    "CIFAR-100 binary version: train.bin, test.bin (coarse byte, fine byte, R, G, B planes) and the two name files."
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    (root / 'fine_label_names.txt').write_text(''.join(f'fine_{k}\n' for k in range(100)))
    (root / 'coarse_label_names.txt').write_text(''.join(f'coarse_{k}\n' for k in range(20)))
    labels = {}
    for f, n in (('train.bin', n_train), ('test.bin', n_test)):
        fine = rng.integers(0, 100, n)
        labels[f] = fine
        (root / f).write_bytes(b''.join(cifar100_record(v // 5, v, rng.integers(0, 256, 3)) for v in fine))
    return labels


def test_cifar100_fine_and_coarse(tmp_path):
    labels = make_cifar100(tmp_path / 'c100')
    fine = CIFAR100_Database(tmp_path / 'c100', validation=0.1, seed=1)
    order = list(dict.fromkeys(labels['train.bin'].tolist() + labels['test.bin'].tolist()))  # first appearance
    assert fine.label_names == [f'fine_{k}' for k in order]
    assert [fine.count(p) for p in PARTITIONS] == [18, 2, 10]
    got = [int(fine.label_names[fine.label(i)][5:]) for i in range(len(fine))]
    assert got == labels['train.bin'].tolist() + labels['test.bin'].tolist()
    coarse = CIFAR100_Database(tmp_path / 'c100', use_coarse=True, seed=1)
    got = [int(coarse.label_names[coarse.label(i)][7:]) for i in range(len(coarse))]
    assert got == (np.concatenate([labels['train.bin'], labels['test.bin']]) // 5).tolist()


def test_mobilenet_v1_onnx_transfer_database(tmp_path, monkeypatch):
    "MobileNet_v1_ONNX_transfer.ini's [database] (CIFAR100_Database, Validation=0.1) on $N2D2_DATA/cifar-100-binary."
    make_cifar100(tmp_path / 'cifar-100-binary', n_train=30, n_test=5)
    monkeypatch.setenv('N2D2_DATA', str(tmp_path))
    db = database_from_ini(model_path('n2d2/MobileNet_v1_ONNX_transfer.ini'), seed=1)
    assert isinstance(db, CIFAR100_Database) and [db.count(p) for p in PARTITIONS] == [27, 3, 5]
    assert db.image(0).shape == (32, 32, 3)


def test_lenet_quant_stimuli_on_7_levels(tmp_path, n2d2x, monkeypatch):
    """LeNet_quant.ini quantizes its stimuli on 8 levels in [0, 1]: in float32 the top level is never reached (1 / (1/7)
    rounds to 6.9999995), so the calibrated input range is 6/7 and the exported 8-bit stimuli take 7 values."""
    monkeypatch.setenv('N2D2_DATA', str(tmp_path / 'none'))   # the bundled digits
    sp = StimuliProvider.from_ini(model_path('n2d2/LeNet_quant.ini'))
    x, _ = next(sp.batches('Test', batch_size=20))
    np.testing.assert_allclose(np.unique(x), np.arange(7) / 7, atol=1e-7)
    out = n2d2x([model_path('n2d2/LeNet_quant.ini'), '-seed', 1, '-w', '/dev/null', '-export', 'ONNX', '-nbbits', 8, '-calib', 50,
                 '-db-export', 3, '-test', '-nb-test', 30], tmp_path)
    assert 'onnxruntime: 30/30 outputs identical to the integer simulation' in out, out
    readme = (tmp_path / 'export_ONNX_int8' / 'Readme.txt').read_text()
    assert f'R = {6 / 7:.6f}' in readme, readme
    img = cv2.imread(str(tmp_path / 'export_ONNX_int8' / 'stimuli' / 'env0.pgm'), cv2.IMREAD_UNCHANGED)
    assert len(np.unique(img)) <= 7 and img.max() == 255


def test_quantize_stimuli_formula():
    "N2D2's quantize(..., truncate=true) by hand: step (M - m) / (L - 1), clamp, truncate towards m."
    np.testing.assert_allclose(quantize_stimuli([0.26, 0.5, 0.99, 2.0, -1.0], 3), [0.0, 0.5, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(quantize_stimuli([-0.9, 0.1, 0.7], 4, -1.0, 2.0), [-1.0, 0.0, 0.0])


def paddle_like(path):
    "A PaddleOCR-MobileNetV3-classifier-like model of input (None, 3, None, None): conv-BN-hardswish, dw conv-BN-relu, GAP, fc."
    rng = np.random.default_rng(0)
    w = lambda *s: (rng.standard_normal(s) / np.sqrt(np.prod(s[1:]))).astype(np.float32)
    pos = lambda c: (1 + np.abs(rng.standard_normal(c)) * 0.2).astype(np.float32)
    inits = {'w1': w(8, 3, 3, 3), 'w2': w(8, 1, 3, 3), 'fw': w(2, 8), 'fb': w(2)}
    for k in (1, 2): inits.update({f's{k}': pos(8), f'b{k}': w(8, 1) * 0.1, f'm{k}': w(8, 1) * 0.1, f'v{k}': pos(8)})
    N = helper.make_node
    nodes = [N('Conv', ['x', 'w1'], ['c1'], strides=[2, 2], pads=[1, 1, 1, 1]), N('BatchNormalization', ['c1', 's1', 'b1', 'm1', 'v1'], ['n1']),
             N('HardSwish', ['n1'], ['h1']), N('Conv', ['h1', 'w2'], ['c2'], group=8, pads=[1, 1, 1, 1]),
             N('BatchNormalization', ['c2', 's2', 'b2', 'm2', 'v2'], ['n2']), N('Relu', ['n2'], ['r2']), N('GlobalAveragePool', ['r2'], ['g']),
             N('Flatten', ['g'], ['f']), N('Gemm', ['f', 'fw', 'fb'], ['logits'], transB=1), N('Softmax', ['logits'], ['y'], axis=1)]
    g = helper.make_graph(nodes, 'cls', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [None, 3, None, None])],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, [None, 2])],
                          [numpy_helper.from_array(v.reshape(-1) if k[0] in 'sbmv' else v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 14)])
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return m


def test_dynamic_input_onnx_section_exports_and_matches(tmp_path, n2d2x, capsys):
    "An ONNX model of open input size in a Type=ONNX section without extra keys: exported float, = onnxruntime on the original."
    m = paddle_like(tmp_path / 'cls.onnx')
    (tmp_path / 'cls.ini').write_text('[sp]\nSizeX=40\nSizeY=16\nNbChannels=3\n[cls]\nInput=sp\nType=ONNX\nFile=cls.onnx\n[y.Target]\n')
    capsys.readouterr()
    n2d2x([tmp_path / 'cls.ini', '-seed', 1, '-w', '/dev/null', '-export', 'ONNX', '-nbbits', -32], tmp_path)
    notice = [l for l in capsys.readouterr().err.splitlines() if 'no fixed size' in l]   # the CLI's one-line warning
    assert len(notice) == 1 and re.match(r"n2d2x: warning: .*input 'x' has no fixed size \(None, 3, None, None\): it takes the dims "
                                         r"\(3, 16, 40\)", notice[0]), notice
    x = np.random.default_rng(1).standard_normal((5, 3, 16, 40)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=['CPUExecutionProvider']).run(None, {'x': x})[0]
    sess = ort.InferenceSession(str(tmp_path / 'export_ONNX_float32' / 'model.onnx'), providers=['CPUExecutionProvider'])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0].reshape(ref.shape)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert np.abs(ref - 0.5).max() > 1e-3   # the two classes are not trivially equal


def test_filler_errors_name_file_and_line(tmp_path, n2d2x, capsys):
    "VGG16's [fc7] mistake (BiasFiller=ConstantFiller without BiasFiller.Value) and a number as filler type: FILE:LINE."
    body = '[sp]\nSizeX=4\nSizeY=4\n[fc]\nInput=sp\nType=Fc\nNbOutputs=3\n{}[fc.Target]\n'
    (tmp_path / 'a.ini').write_text(body.format('WeightsFiller=HeFiller\nBiasFiller=ConstantFiller\n'))
    (tmp_path / 'b.ini').write_text(body.format('BiasFiller=0.9\n'))
    for name, line, words in (('a.ini', 9, 'cell [fc] BiasFiller: ConstantFiller needs ConstantFiller.Value'),
                              ('b.ini', 8, "cell [fc] BiasFiller: unknown filler '0.9'")):
        n2d2x([tmp_path / name, '-seed', 1, '-w', '/dev/null', '-export', 'ONNX', '-nbbits', -32], tmp_path, expect=1)
        assert f'n2d2x: error: {tmp_path / name}:{line}: {words}' in capsys.readouterr().err
        assert not (tmp_path / 'export_ONNX_float32').exists()
    assert Network.from_ini(model_path('n2d2/VGG16.ini'))['fc7'].bias_filler.origin == f"{model_path('n2d2/VGG16.ini')}:262"


def test_headers_checked_against_the_file_before_allocating(tmp_path):
    "Issue 16: an IDX header claiming 0xFFFFFFFF items, a PNG claiming 100000 x 100000 pixels: a DataError naming the file, no MemoryError."
    import struct
    from n2d2x.data import DataError, _decode, read_idx
    (tmp_path / 'x-idx1-ubyte').write_bytes(struct.pack('>II', 0x00000801, 0xFFFFFFFF) + bytes(10))
    with pytest.raises(DataError, match=r'x-idx1-ubyte: truncated file: 4294967295 values needs 4,294,967,295 bytes, found 10'):
        read_idx(tmp_path / 'x-idx1-ubyte')
    png = bytearray(cv2.imencode('.png', np.zeros((4, 4), np.uint8))[1].tobytes())
    png[16:24] = struct.pack('>II', 100000, 100000)
    (tmp_path / 'big.png').write_bytes(bytes(png))
    with pytest.raises(DataError, match=r'big\.png: image of 100000 x 100000 pixels'):
        _decode(tmp_path / 'big.png')
