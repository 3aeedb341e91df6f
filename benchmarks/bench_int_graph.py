"""Where the time of the integer ONNX graph goes: float vs int8 in onnxruntime, n2d2x's graphs beside onnxruntime's own.

N2D2's ResNet-18 (224) and MobileNet_v2 (alpha 0.5, 160) INIs with fillers (`-seed 1`), calibrated on a few random
images, quantized to 8 bits (Single-shift), exported float32 and int8: the seed's ConvInteger graph (`to_onnx_int(q)`),
the lean one (`to_onnx_int(q, lean=True)`), fake-quantized, the QDQ graph (`to_onnx_qdq(to_qdq(q))`, `QDQ=1`), and
onnxruntime's own `quantize_static` of the float model (QDQ, uint8 activations, int8 per-channel weights, calibrated on
the same images), run in onnxruntime at batch 1 on 2 intra-op threads, in one process. For each model: img/s (the
median of several runs, interleaved across the models, with their min-max spread) and its ratio to float, the nodes
by type, and onnxruntime's profile (`SessionOptions.enable_profiling`) summed by operator type, convolutions split
by kind (dense k x k, 1x1, depthwise). n2d2x's integer models are checked bit for bit against the simulation on the
image (every cell), so a fast graph is never a wrong one; onnxruntime's QDQ model has no simulation to match.

    python benchmarks/bench_int_graph.py                 # both networks (a few minutes on two loaded cores)
    python benchmarks/bench_int_graph.py MobileNet_v2    # one
    python benchmarks/bench_int_graph.py --runs 7 --seconds 2 --no-profile

A benchmark, not a test: it asserts nothing and prints tables."""
import argparse
import collections
import os
import statistics
import sys
import tempfile

import numpy as np

NETS = {'ResNet-18': 224, 'MobileNet_v2': 160}   # the INIs' own $SIZE


def build(name, seed=1, n_calib=4):
    "The fused float network, its int8 network, and one float and one integer input image."
    from n2d2x.calibrate import calibrate
    from n2d2x.fuse import fuse
    from n2d2x.ini import N2D2_MODELS_DIR
    from n2d2x.network import Network
    from n2d2x.quantize import quantize, quantize_input
    from n2d2x.weights import fill
    net = fuse(fill(Network.from_ini(N2D2_MODELS_DIR / f'{name}.ini'), seed=seed))
    x = np.random.default_rng(seed).random((n_calib, *net.dims('env')), dtype=np.float32)
    q = quantize(net, calibrate(net, [x[i:i + 1] for i in range(n_calib)], nbbits=8), 8)
    return net, q, x[:1], quantize_input(q, x[:1]), x


def ort_quantize_static(model, x):
    "onnxruntime's own post-training quantization of the float `model`: QDQ, uint8 activations, int8 per-channel weights, calibrated on x."
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self): self.it = iter([{'env': x[i:i + 1]} for i in range(len(x))])
        def get_next(self): return next(self.it, None)
    d = tempfile.mkdtemp()
    src, pre, out = (os.path.join(d, f) for f in ('float.onnx', 'pre.onnx', 'qdq.onnx'))
    onnx.save(model, src)
    quant_pre_process(src, pre, skip_symbolic_shape=True)   # (symbolic shape inference needs sympy)
    quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    return onnx.load(out)


def node_types(model):
    return ', '.join(f'{n} {t}' for t, n in collections.Counter(n.op_type for n in model.graph.node).most_common())


def identical(q, model, xi, casting='explicit'):
    "Integers of every cell (but Softmax) identical to the simulation's, and their total."
    from n2d2x.export import model_runner, with_outputs
    from n2d2x.quantize import simulate, to_qdq
    q = to_qdq(q) if casting == 'qdq' else q
    names = [qc.name for qc in q if qc.type != 'Softmax']
    sim, got = simulate(q, xi), model_runner(with_outputs(model, names), casting)(xi)
    return sum(int((got[n] == sim[n]).sum()) for n in names), sum(sim[n].size for n in names)


def speeds(models, runs, seconds):
    "{model: [img/s of each run]}: `runs` rounds, each timing every model once in turn (so that a load change hits all alike)."
    from n2d2x.export import ort_speed
    out = {k: [] for k in models}
    for _ in range(runs):
        for k, (m, v) in models.items(): out[k].append(ort_speed(m, v, seconds=seconds))
    return out


CASTING = {'float': None, 'int8 seed': 'explicit', 'int8 lean': 'explicit', 'int8 fake': 'fake', 'QDQ n2d2x': 'qdq', 'QDQ onnxruntime': None}


def main(names, runs=5, seconds=1.5, profile=True):
    from n2d2x.export import format_profile, profile_ops, to_onnx, to_onnx_int, to_onnx_qdq
    from n2d2x.quantize import to_qdq
    summary = []
    for name in names:
        net, q, x, xi, xc = build(name)
        fm = to_onnx(net)
        models = {'float': (fm, x), 'int8 seed': (to_onnx_int(q), xi), 'int8 lean': (to_onnx_int(q, lean=True), xi),
                  'int8 fake': (to_onnx_int(q, fake_quantization=True), xi.astype(np.float32)),   # float operators on the integers
                  'QDQ n2d2x': (to_onnx_qdq(to_qdq(q)), xi), 'QDQ onnxruntime': (ort_quantize_static(fm, xc), x)}
        speed = speeds(models, runs, seconds)
        med = {k: statistics.median(v) for k, v in speed.items()}
        print(f'\n## {name} {NETS[name]}x{NETS[name]}, batch 1, 2 threads, {runs} runs of {seconds} s')
        for k, (m, v) in models.items():
            same = '' if CASTING[k] is None else ', {}/{} integers identical to simulate'.format(*identical(q, m, xi, CASTING[k]))
            print(f'\n### {k}: {med[k]:.1f} img/s ({min(speed[k]):.1f}-{max(speed[k]):.1f}; {med[k] / med["float"]:.2f}x float), {len(m.graph.node)} nodes{same}')
            print(f'nodes: {node_types(m)}\n')
            if profile: print(format_profile(profile_ops(m, v, runs=20)))
            summary.append((name, k, med[k], min(speed[k]), max(speed[k]), med[k] / med['float'], len(m.graph.node)))
    print('\n| network | model | img/s (median) | min-max | vs float | nodes |\n|---|---|---:|---:|---:|---:|')
    for name, k, s, lo, hi, r, n in summary: print(f'| {name} | {k} | {s:.1f} | {lo:.1f}-{hi:.1f} | {r:.2f}x | {n} |')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('nets', nargs='*', default=list(NETS), help=f"networks among {', '.join(NETS)}")
    p.add_argument('--runs', type=int, default=5, help='timed runs per model (interleaved)')
    p.add_argument('--seconds', type=float, default=1.5, help='seconds per timed run')
    p.add_argument('--no-profile', action='store_true', help="skip onnxruntime's per-operator profiles")
    a = p.parse_args()
    main(a.nets, a.runs, a.seconds, not a.no_profile)
