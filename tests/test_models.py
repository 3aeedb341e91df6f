"""Every N2D2 model INI that needs no ONNX file parses, builds, fills with seed 1 and exports a float ONNX
model that passes the full ONNX check and that onnxruntime runs with the outputs of the numpy engine."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from n2d2x.engine import predict
from n2d2x.export import export_onnx
from n2d2x.network import Network, model_path
from n2d2x.weights import fill

MODELS = ['LeNet.ini', 'mnist24_16c4s2_24c5s2_150_10.ini', 'cifar-10.ini', 'MobileNet_v1.ini']


def ort_outputs(path, x):
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {'env': x})))


@pytest.mark.parametrize('ini', MODELS)
def test_model_exports_and_matches_engine(ini, tmp_path):
    net = fill(Network.from_ini(model_path(f'n2d2/{ini}')), seed=1)
    out = export_onnx(net, nbbits=-32, out_dir=tmp_path)
    assert out == tmp_path / 'export_ONNX_float32'
    model = onnx.load(out / 'model.onnx')
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {'BatchNormalization', 'Dropout', 'Pad'}, ops
    assert model.graph.input[0].name == 'env'
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    x = np.random.default_rng(0).random((2, *net.input_dims), dtype=np.float32)
    got, want = ort_outputs(out / 'model.onnx', x), predict(net, x)
    assert set(got) == {t.cell for t in net.targets}
    for name, y in want.items():
        np.testing.assert_allclose(got[name].reshape(y.shape), y, rtol=1e-5, atol=1e-6)
