"""Where the time of the integer ONNX graph goes: float vs int8 (the seed's ConvInteger graph and the lean one) in onnxruntime.

N2D2's ResNet-18 (224) and MobileNet_v2 (alpha 0.5, 160) INIs with fillers (`-seed 1`), calibrated on a few random
images, quantized to 8 bits (Single-shift), exported float32 and int8 (`to_onnx_int(q)`, `to_onnx_int(q, lean=True)`, and fake-quantized for comparison),
run in onnxruntime at batch 1 on 2 intra-op threads, in one process. For each model: img/s and its ratio to float, the
nodes by type, and onnxruntime's profile (`SessionOptions.enable_profiling`) summed by operator type, convolutions split
by kind (dense k x k, 1x1, depthwise). The integer models are checked bit for bit against the simulation on the image
(every cell), so a fast graph is never a wrong one.

    python benchmarks/bench_int_graph.py                 # both networks (a few minutes on two loaded cores)
    python benchmarks/bench_int_graph.py MobileNet_v2    # one

A benchmark, not a test: it asserts nothing and prints tables."""
import collections
import sys

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
    return net, q, x[:1], quantize_input(q, x[:1])


def node_types(model):
    return ', '.join(f'{n} {t}' for t, n in collections.Counter(n.op_type for n in model.graph.node).most_common())


def identical(q, model, xi, casting='explicit'):
    "Integers of every cell (but Softmax) identical to the simulation's, and their total."
    from n2d2x.export import model_runner, with_outputs
    from n2d2x.quantize import simulate
    names = [qc.name for qc in q if qc.type != 'Softmax']
    sim, got = simulate(q, xi), model_runner(with_outputs(model, names), casting)(xi)
    return sum(int((got[n] == sim[n]).sum()) for n in names), sum(sim[n].size for n in names)


def main(names):
    from n2d2x.export import format_profile, ort_speed, profile_ops, to_onnx, to_onnx_int
    summary = []
    for name in names:
        net, q, x, xi = build(name)
        models = {'float': (to_onnx(net), x), 'int8 seed': (to_onnx_int(q), xi), 'int8 lean': (to_onnx_int(q, lean=True), xi),
                  'int8 fake': (to_onnx_int(q, fake_quantization=True), xi.astype(np.float32))}   # float operators on the integers
        speed = {k: ort_speed(m, v, seconds=3.0) for k, (m, v) in models.items()}
        print(f'\n## {name} {NETS[name]}x{NETS[name]}, batch 1, 2 threads')
        for k, (m, v) in models.items():
            same = '' if k == 'float' else ', {}/{} integers identical to simulate'.format(*identical(q, m, xi, k.split()[1].replace('seed', 'explicit').replace('lean', 'explicit')))
            print(f'\n### {k}: {speed[k]:.1f} img/s ({speed[k] / speed["float"]:.2f}x float), {len(m.graph.node)} nodes{same}')
            print(f'nodes: {node_types(m)}\n')
            print(format_profile(profile_ops(m, v, runs=20)))
            summary.append((name, k, speed[k], speed[k] / speed['float'], len(m.graph.node)))
    print('\n| network | model | img/s | vs float | nodes |\n|---|---|---:|---:|---:|')
    for name, k, s, r, n in summary: print(f'| {name} | {k} | {s:.1f} | {r:.2f}x | {n} |')


if __name__ == '__main__':
    main(sys.argv[1:] or list(NETS))
