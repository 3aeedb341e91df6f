"""Peak memory and wall time of the float ONNX export of N2D2's VGG16 (553 MB of float32 weights), each run in a fresh process.

VGG16.ini with `BiasFiller.Value=0.0` for fc7 (as nbs/13_model_zoo.ipynb patches it), random weights (`fill(seed=1)`),
then two jobs, alternating, `--repeat` times each:

- `network`: build and fill the network, nothing else (the baseline: what the network itself holds);
- `export`: the same, then `export_onnx(net, nbbits=-32)` into a temporary folder.

Memory is read from Linux's `/proc/self/status` in the child: `VmHWM` (peak resident set size) once the network is
built and filled (`fill` draws float64 values before casting them: the building's own peak), `VmRSS` then (what the
filled network holds), then the peak is reset (`/proc/self/clear_refs` 5) and read again after the export: the
export's peak, the network's arrays included. The process's peak is the larger of the two peaks. The time is the
export's own (`time.perf_counter` around `export_onnx`), and the child's from start to exit (Python start, imports,
building included).

    python benchmarks/bench_export_memory.py [--repeat 3] [--ini n2d2/VGG16.ini]

A benchmark, not a test: it asserts nothing and prints one table (median, and min-max over the runs)."""
import argparse
import json
import statistics
import subprocess
import sys
import time

CHILD = r'''
import json, sys, tempfile, time
from pathlib import Path
from n2d2x.network import Network, model_path
from n2d2x.weights import fill
def status(key): return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith(key + ':'))
job, ini = sys.argv[1], sys.argv[2]
text = model_path(ini).read_text().replace('BiasFiller=ConstantFiller\n', 'BiasFiller=ConstantFiller\nBiasFiller.Value=0.0\n')
with tempfile.TemporaryDirectory() as d:
    path = Path(d) / 'net.ini'
    path.write_text(text)
    net = fill(Network.from_ini(path), seed=1)
    out = dict(build_peak=status('VmHWM'), network=status('VmRSS'), export_s=0.0, size=0,
               weights=sum(getattr(c, k).nbytes for c in net for k in c.parameters if getattr(c, k, None) is not None))
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')   # reset VmHWM: from here on, the export's peak
    if job == 'export':
        from n2d2x.export import export_onnx
        t = time.perf_counter()
        e = export_onnx(net, nbbits=-32, out_dir=d)
        out['export_s'], out['size'] = time.perf_counter() - t, (Path(e) / 'model.onnx').stat().st_size
    out['export_peak'] = status('VmHWM')
    print(json.dumps(out))
'''


def run(job, ini):
    "The child's figures (bytes, seconds) of one job in a fresh process, and its wall time from start to exit."
    t = time.perf_counter()
    out = subprocess.run([sys.executable, '-c', CHILD, job, ini], check=True, capture_output=True, text=True).stdout
    return {**json.loads(out.splitlines()[-1]), 'wall_s': time.perf_counter() - t}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--ini', default='n2d2/VGG16.ini')
    args = p.parse_args()
    res = {'network': [], 'export': []}
    for _ in range(args.repeat):
        for job in res: res[job].append(run(job, args.ini))
    fmt = lambda v, f: f"{f(statistics.median(v))} ({f(min(v))}-{f(max(v))})"
    gb, s = lambda v: f'{v / 1e9:.3f}', lambda v: f'{v:.1f}'
    r0 = res['export'][0]
    print(f"{args.ini}: weights {r0['weights'] / 1e9:.3f} GB, model.onnx {r0['size'] / 1e9:.3f} GB, {args.repeat} runs each, "
          f"median (min-max); GB = 1e9 bytes")
    print("| job | building peak GB | network RSS GB | export peak GB | process peak GB | export s | process s |")
    print("|---|---|---|---|---|---|---|")
    for job, rows in res.items():
        col = lambda k: [r[k] for r in rows]
        proc = [max(r['build_peak'], r['export_peak']) for r in rows]
        print(f"| {job} | {fmt(col('build_peak'), gb)} | {fmt(col('network'), gb)} | {fmt(col('export_peak'), gb)} | "
              f"{fmt(proc, gb)} | {fmt(col('export_s'), s)} | {fmt(col('wall_s'), s)} |")


if __name__ == '__main__':
    main()
