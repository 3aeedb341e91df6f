"""n2d2x.explore's helpers on tiny inputs, in a second or two: the SQNR, the Table, the DAG of an ONNX graph (merged
activations, edges through the nodes left out, lanes for the edges that skip rows) and netron's server behind
`show_netron`. The notebook 14_explore drives them on the trained networks."""
import math
import urllib.request

import matplotlib
matplotlib.use('Agg')
import netron
import numpy as np
import onnx
from onnx import TensorProto, helper

from n2d2x.explore import Table, _layers, draw_graph, graph_dag, show_netron, sqnr

N = helper.make_node


def residual_model():
    "x -> Conv+Relu -> Conv -> Add(x) -> Relu -> Gemm: a residual block, in valid ONNX."
    w = lambda name, *s: onnx.numpy_helper.from_array(np.ones(s, np.float32), name)
    nodes = [N('Conv', ['x', 'w1'], ['c1'], 'a', pads=[1] * 4), N('Relu', ['c1'], ['r1'], 'a_relu'),
             N('Conv', ['r1', 'w2'], ['c2'], 'b', pads=[1] * 4), N('Add', ['c2', 'x'], ['s'], 'sum'),
             N('Relu', ['s'], ['r'], 'sum_relu'), N('Flatten', ['r'], ['f'], 'flat'), N('Gemm', ['f', 'wf'], ['y'], 'fc', transB=1)]
    g = helper.make_graph(nodes, 'res', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2, 4, 4])],
                          [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 3])],
                          [w('w1', 2, 2, 3, 3), w('w2', 2, 2, 3, 3), w('wf', 3, 32)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)])
    onnx.checker.check_model(m)
    return m


def test_sqnr():
    y = np.array([3.0, 4.0])
    assert sqnr(y, y) == math.inf
    assert math.isclose(sqnr(y, y + [0.0, 0.5]), 10 * math.log10(25 / 0.25))


def test_table():
    t = Table([dict(nbbits=8, accuracy=96.5), dict(nbbits=4, accuracy=95.25)])
    assert repr(t).splitlines() == ['nbbits  accuracy', '     8     96.50', '     4     95.25']
    assert t.where(nbbits=4) == [t[1]] and t.best() is t[0]
    assert t._repr_markdown_().splitlines()[:2] == ['| nbbits | accuracy |', '|---|---|']


def test_graph_dag_merges_and_branches():
    boxes, edges = graph_dag(residual_model())
    assert list(boxes) == ['a_relu', 'b', 'sum_relu', 'flat', 'fc']
    assert boxes['a_relu']['label'] == 'Conv + Relu\na_relu' and boxes['sum_relu']['op'] == 'Add'
    assert edges == [('a_relu', 'b'), ('b', 'sum_relu'), ('flat', 'fc'), ('sum_relu', 'flat')]   # x is the graph input
    sub, sub_edges = graph_dag(residual_model(), prefixes=['a', 'fc'])
    assert list(sub) == ['a_relu', 'fc'] and sub_edges == [('a_relu', 'fc')]   # through the nodes left out
    row, x, paths = _layers(*graph_dag(residual_model(), merge_activations=False))
    assert row['sum'] == 3 and len(paths['a', 'a_relu']) == 2   # a, a_relu, b, sum: one row each


def test_draw_graph_lane_for_skip():
    row, x, paths = _layers({'a': {}, 'b': {}, 'c': {}, 'd': {}}, [('a', 'b'), ('b', 'c'), ('c', 'd'), ('a', 'd')])
    assert [row[k] for k in 'abcd'] == [0, 1, 2, 3] and len(paths['a', 'd']) == 4
    assert all(px != x['b'] for px, _ in paths['a', 'd'][1:3])   # the skip runs beside b and c
    ax = draw_graph(residual_model(), title='residual')
    assert ax.get_title() == 'residual' and ax.figure.get_size_inches()[0] * ax.figure.dpi >= 800


def test_show_netron(tmp_path):
    path = tmp_path / 'model.onnx'
    onnx.save(residual_model(), path)
    frame = show_netron(tmp_path, height=300)   # a folder means its model.onnx
    port = int(frame.src.rsplit(':', 1)[1])
    try:
        with urllib.request.urlopen(frame.src, timeout=10) as r: assert b'<title>Netron</title>' in r.read()
        assert frame.height == 300
    finally: netron.stop(port)
