"""A fuzzer for the promise of the README (issue 16): whatever the input, `n2d2x` exits 0 or 1, an error is one line naming the
file (and line, for an INI file), nothing is written outside the working or export folder, no export folder is left
half-written, no case hangs, and an exported model never outputs NaN.

Each case mutates one input of a tiny network (the INI text, a weights file, IDX / PNG / CIFAR data, an ONNX model), writes
it to a fresh folder and runs the command in-process there. The mutations are drawn by hypothesis from a `Random` it controls
(`st.randoms`), derandomized: the same cases on every run. The regular run draws `N2D2X_FUZZ_CASES` cases per input kind
(default 80); a soak run sets `N2D2X_FUZZ=10000` (cases in all). `python tests/test_fuzz.py N [SEED]` runs N cases without
stopping at the first failure and prints the outcomes by category (the counts of issue 16)."""
import contextlib
import io
import math
import os
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / 'n2d2x' / 'models'
FIXTURES = Path(__file__).parent / 'fixtures'
SOAK = int(os.environ.get('N2D2X_FUZZ', '0'))
CASE_LIMIT_S = 20 if SOAK else 10   # a hang: a case that runs past this
OUTSIDE = str(Path(tempfile.gettempdir()) / f'n2d2x-fuzz-outside-{os.getpid()}')   # an absolute path that no case may write

TINY = """; a tiny network for the fuzzer
[database]
{db}

[sp]
SizeX=8
SizeY=8
NbChannels={ch}
BatchSize=4

[sp.Transformation-1]
Type=RescaleTransformation
Width=[sp]SizeX
Height=[sp]SizeY

[conv1]
Input=sp
Type=Conv
KernelDims=3 3
NbOutputs=4
Stride=1
Padding=1
ActivationFunction=Rectifier
WeightsFiller=HeFiller
ConfigSection=common.config

[pool1]
Input=conv1
Type=Pool
PoolDims=2 2
Stride=2
Pooling=Max
NbOutputs=[conv1]NbOutputs
Mapping.Size=1

[fc1]
Input=pool1
Type=Fc
NbOutputs=$(2 * 5)
ActivationFunction=Linear
ConfigSection=common.config

[softmax]
Input=fc1
Type=Softmax
NbOutputs=[fc1]NbOutputs
WithLoss=1

[softmax.Target]

[common.config]
NoBias=0
WeightsSolver.LearningRate=0.01
"""
DBS = {'idx': ('Type=MNIST_IDX_Database\nDataPath=data\nValidation=0.2', 1),
       'png': ('Type=DIR_Database\nDataPath=data\nLearn=0.5\nValidation=0.25', 1),
       'cifar': ('Type=CIFAR10_Database\nDataPath=data\nValidation=0.2', 3)}
ONNX_INI = """[database]
Type=MNIST_IDX_Database
DataPath=data

[sp]
SizeX=8
SizeY=8
BatchSize=4

[onnx]
Input=sp
Type=ONNX
File=model.onnx
Ignore=softmax

[fc1.Target]
"""
FLOAT, INT8 = ['-export', 'ONNX', '-nbbits', '-32'], ['-export', 'ONNX', '-nbbits', '8', '-calib', '4']

# Values that break things: zero, negative, huge, not finite, non-ASCII digits, paths, runaway expressions.
NASTY = ['', '0', '-1', '1', '2147483648', '1e308', '1e12', 'nan', 'inf', '-inf', '١٢', '１２', '0x10', '3.5', 'yes', 'Bogus',
         '../../x', OUTSIDE, 'nosuch', '$(round(1, -10**9))', '$(10**10**10)', '$(' * 3000 + '1' + ')' * 3000, '$(1/0)',
         '${NOSUCH}', '[nosuch]Key', 'a' * 5000, '1 2 3 4 5 6 7', '" "', '\\', '$(' * 40 + '1' + ')' * 40]
# Mutations that must be refused (exit 1): (section or None, key, value), key '-' deletes the key.
MUST_FAIL = [('conv1', 'Stride', '0'), ('conv1', 'Input', ''), ('conv1', 'KernelDims', '-'), ('pool1', 'PoolDims', '-'),
             ('conv1', 'NbOutputs', '-1'), ('fc1', 'NbOutputs', '0'), ('sp', 'SizeX', '2147483648'), ('fc1', 'NbOutputs', '١٢'),
             ('pool1', 'Mapping.Size', '1e308'), ('pool1', 'Mapping.Size', '1e12'), ('database', 'Type', 'Transformer'),
             ('database', 'Validation', '-inf'), ('sp', 'Bogus', '1'), ('sp.Transformation-1', 'Type', 'Transformer'),
             ('softmax.Target', 'Bogus', '1'), ('conv1', 'ConfigSection', 'conv1'), ('fc1', 'NbOutputs', '$(round(1, -10**9))'),
             ('fc1', 'NbOutputs', '$(' * 3000 + '1' + ')' * 3000), ('conv1', 'Stride', 'nan'), ('sp', 'SizeY', '0'),
             ('conv1', 'KernelDims', '3 3 3'), ('conv1', 'Padding', '-5'), ('fc1', 'Input', 'nosuch'), ('conv1', 'Bogus', '1')]


def _set_key(text, section, key, value):
    "`text` with `key` of `[section]` set to `value` (added when absent, deleted when `value` is '-')."
    lines, out, cur, done = text.split('\n'), [], None, False
    for ln in lines:
        s = ln.strip()
        if s.startswith('['):
            if cur == section and not done and value != '-': out.append(f'{key}={value}'); done = True
            cur = s[1:s.index(']')] if ']' in s else None
        elif cur == section and s.split('=')[0].strip() == key:
            done = True
            if value != '-': out.append(f'{key}={value}')
            continue
        out.append(ln)
    if cur == section and not done and value != '-': out.append(f'{key}={value}')
    return '\n'.join(out)


def _chain(n):
    "A global `$V0=1`, `$V1=${V0}`, ... chain `n` long, and its last name."
    return ''.join(f'$V{i}={"1" if i == 0 else "${V%d}" % (i - 1)}\n' for i in range(n)), f'${{V{n - 1}}}'


def mutate_ini(rng, text):
    "`text` with one to three random mutations; and a label saying what, with `!` when the result must be refused."
    lines, label = text.split('\n'), []
    for _ in range(rng.randint(1, 3)):
        how = rng.randrange(8)
        props = [i for i, l in enumerate(lines) if '=' in l and not l.startswith(';')]
        if how == 0 and props:      # a value replaced by a nasty one
            i = rng.choice(props); k = lines[i].split('=')[0]; v = rng.choice(NASTY)
            lines[i] = f'{k}={v}'; label.append(f'{k}={v[:20]}')
        elif how == 1 and lines:    # a line deleted
            i = rng.randrange(len(lines)); label.append(f'del {lines[i][:20]}'); del lines[i]
        elif how == 2 and lines:    # a line duplicated or moved
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines)); lines.insert(j, lines[i]); label.append(f'dup {lines[i][:20]}')
        elif how == 3 and props:    # a number changed
            i = rng.choice(props); k, _, v = lines[i].partition('=')
            v2 = ''.join(str(rng.choice([0, 1, 2, -1, 7, 1 << 31, 10 ** 9])) if c.isdigit() else c for c in v)
            lines[i] = f'{k}={v2}'; label.append(f'{k}={v2[:20]}')
        elif how == 4:              # a must-fail mutation
            sec, key, value = rng.choice(MUST_FAIL)
            here = any(l.strip().startswith(f'[{sec}]') for l in lines)   # the tiny network's sections; not all in the others
            new = _set_key('\n'.join(lines), sec, key, value).split('\n')
            here = here and new != lines   # a key inherited from a base section is not deleted
            lines = new; label.append(f'{"!" if here else ""}[{sec}]{key}={value[:20]}')
        elif how == 5:              # a long ${V} chain
            g, ref = _chain(rng.choice([5, 60, 500]))
            lines = _set_key(g + '\n'.join(lines), 'sp', 'BatchSize', ref).split('\n'); label.append(f'chain {ref}')
        elif how == 6 and lines:    # random characters
            i = rng.randrange(len(lines)); p = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:p] + ''.join(rng.choice('[]=$(){};#"\\ .\t0-xé\x00') for _ in range(rng.randint(1, 4))) + lines[i][p:]
            label.append(f'chars line {i + 1}')
        elif how == 7 and props:    # a key renamed
            i = rng.choice(props); k, _, v = lines[i].partition('=')
            lines[i] = f'{k}Q={v}'; label.append(f'{"" if k.startswith("$") else "!"}{k}Q')
    label = [l.lstrip('!') for l in label[:-1]] + label[-1:]   # a later mutation may undo an earlier one: only the last surely stands
    return '\n'.join(lines), ' '.join(label)


def _flip_bytes(rng, data, start=0):
    "`data` with a few bytes from `start` on replaced, truncated or extended."
    b = bytearray(data)
    how = rng.randrange(4)
    if how == 0 and len(b) > start: b[rng.randrange(start, len(b))] = rng.randrange(256)
    elif how == 1: b = b[:rng.randrange(len(b) + 1)]
    elif how == 2: b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    else:
        for _ in range(rng.randint(1, 6)):
            if len(b) > start: b[rng.randrange(start, min(len(b), start + 32))] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return bytes(b), f'bytes/{how}'


# --- the data sets and weights of the tiny network ---------------------------------------------------------------------------

def _idx(arr):
    codes = {np.uint8: 0x08}
    return struct.pack('>HBB', 0, codes[arr.dtype.type], arr.ndim) + struct.pack(f'>{arr.ndim}I', *arr.shape) + arr.tobytes()


def data_files(kind, rng=None):
    "The data files of `kind` (name -> bytes), 16 stimuli of 8x8; with `rng`, one header or payload mutated."
    g = np.random.default_rng(0)
    img, lab = g.integers(0, 256, (16, 8, 8), dtype=np.uint8), (np.arange(16) % 10).astype(np.uint8)
    if kind == 'idx':
        files = {f'data/{p}-{w}-idx{d}-ubyte': _idx(a) for p in ('train', 't10k') for w, d, a in (('images', 3, img), ('labels', 1, lab))}
    elif kind == 'png':
        files = {f'data/{c}/{i}.png': cv2.imencode('.png', img[i])[1].tobytes() for i in range(8) for c in ('a', 'b')}
    else:
        rec = lambda n: b''.join(bytes([i % 10]) + g.integers(0, 256, 3072, dtype=np.uint8).tobytes() for i in range(n))
        files = {f'data/data_batch_{i}.bin': rec(4) for i in range(1, 6)} | {'data/test_batch.bin': rec(4),
                 'data/batches.meta.txt': '\n'.join('abcdefghij').encode()}
    if rng is None: return files, ''
    name = rng.choice(sorted(files))
    if kind == 'idx' and rng.random() < 0.5:   # a header claiming a huge count or size
        b = bytearray(files[name]); pos = rng.choice([4, 8, 12]) if 'images' in name else 4
        if pos < len(b): b[pos:pos + 4] = struct.pack('>I', rng.choice([0xFFFFFFFF, 1 << 30, 0, 17, 65536]))
        files[name] = bytes(b); return files, f'!idx header {name}'
    if kind == 'png' and rng.random() < 0.5:   # a PNG claiming a huge size
        b = bytearray(files[name]); b[16:24] = struct.pack('>II', *rng.choice([(100000, 100000), (0, 8), (1 << 31, 1)]))
        files[name] = bytes(b); return files, f'png size {name}'   # not '!': a stimulus that is not read is no error
    files[name], how = _flip_bytes(rng, files[name])
    return files, f'{name} {how}'


def _weights_text(rng, text):
    "A .syntxt file with one token replaced by a nasty number, or lines dropped or added."
    toks = text.split()
    how = rng.randrange(3)
    if how == 0 and toks: toks[rng.randrange(len(toks))] = rng.choice(['nan', 'inf', '-inf', '1e39', '1e308', 'x', '١', '0x1'])
    elif how == 1 and toks: del toks[rng.randrange(len(toks)):]
    else: toks += ['1'] * rng.randint(1, 5)
    return ' '.join(toks) + '\n', f'weights/{how}'


# --- the cases ---------------------------------------------------------------------------------------------------------------

_CACHE = {}

def _base_onnx():
    "The float export of the tiny network (IDX data), the ONNX model the ONNX cases mutate."
    if 'onnx' not in _CACHE:
        with tempfile.TemporaryDirectory() as d:
            files = {'net.ini': TINY.format(db=DBS['idx'][0], ch=1).encode(), **data_files('idx')[0]}
            code, _, _ = run_case(Path(d), files, ['net.ini', '-seed', '1', '-w', '/dev/null', *FLOAT])
            assert code == 0
            _CACHE['onnx'] = (Path(d) / 'work' / 'export_ONNX_float32' / 'model.onnx').read_bytes()
    return _CACHE['onnx']


def mutate_onnx(rng, data):
    "The model `data` with one structural mutation; '!' in the label when it must be refused."
    m = onnx.load_from_string(data)
    how = rng.randrange(9)
    if how == 0: m.opset_import[0].version = rng.choice([99, 0, 1, 6]); return m, f'!opset {m.opset_import[0].version}' if m.opset_import[0].version == 99 else 'opset'
    if how == 1: m.ir_version = rng.choice([99, 0, 2]); return m, f'!ir 99' if m.ir_version == 99 else f'ir {m.ir_version}'
    if how == 2: del m.graph.output[:]; return m, '!no outputs'
    if how == 3:
        t = rng.choice([t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]); a = onnx.numpy_helper.to_array(t).copy()
        a.flat[rng.randrange(a.size)] = rng.choice([np.nan, np.inf, -np.inf]); t.CopyFrom(onnx.numpy_helper.from_array(a, t.name))
        return m, f'!non-finite {t.name}'
    if how == 4:
        n = rng.choice(list(m.graph.node)); old = n.output[0]; new = rng.choice(['../../x', OUTSIDE, 'a/b', '..', 'CON', ''])
        for x in m.graph.node:
            x.output[:] = [new if o == old else o for o in x.output]; x.input[:] = [new if i == old else i for i in x.input]
        for o in m.graph.output:
            if o.name == old: o.name = new
        return m, f'rename {old}->{new}'
    if how == 5: del m.graph.node[rng.randrange(len(m.graph.node))]; return m, 'drop node'
    if how == 6:
        t = rng.choice(list(m.graph.initializer)); t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 1 << 31]) if t.dims else 0
        return m, f'dims {t.name}'
    if how == 7: n = rng.choice(list(m.graph.node)); n.op_type = rng.choice(['Bogus', 'Conv', 'Relu', 'Loop']); return m, f'op {n.op_type}'
    n = rng.choice(list(m.graph.node)); n.attribute.add().CopyFrom(onnx.helper.make_attribute(rng.choice(['strides', 'pads', 'group']), [0, -1]))
    return m, f'attr {n.name}'


KINDS = ('ini', 'template', 'weights', 'data', 'onnx')


def make_case(rng, kind):
    "A case of `kind`: (files name -> bytes, argv, label); `!` in the label when the input is invalid."
    db = rng.choice(sorted(DBS))
    text = TINY.format(db=DBS[db][0], ch=DBS[db][1])
    files, argv, label = dict(data_files(db)[0]), ['net.ini', '-seed', '1', '-w', '/dev/null', *rng.choice([FLOAT, FLOAT, INT8])], ''
    if kind == 'ini': text, label = mutate_ini(rng, text)
    elif kind == 'template':   # the bundled INIs: LeNet, the fixtures
        src = rng.choice([MODELS / 'LeNet.ini', FIXTURES / 'unseen.ini', FIXTURES / 'fashion_lenet.ini'])
        text, label = mutate_ini(rng, src.read_text())
        text = _set_key(text, 'database', 'DataPath', 'data'); label = f'{src.name}: {label}'
        files = dict(data_files('idx')[0]); argv[5:] = FLOAT
    elif kind == 'weights':    # LeNet's weights
        text = _set_key(MODELS.joinpath('LeNet.ini').read_text(), 'database', 'DataPath', 'data')
        files = dict(data_files('idx')[0])
        for f in (MODELS / 'LeNet_weights').iterdir(): files[f'weights/{f.name}'] = f.read_bytes()
        name = rng.choice(sorted(k for k in files if k.startswith('weights/')))
        if rng.random() < 0.3: files[name], label = _flip_bytes(rng, files[name])
        else: text_w, label = _weights_text(rng, files[name].decode()); files[name] = text_w.encode()
        label = f'{name} {label}'
        argv[4] = 'weights'; argv[5:] = FLOAT
    elif kind == 'data':
        files, label = data_files(db, rng)
        argv[5:] = INT8
    else:
        m, label = mutate_onnx(rng, _base_onnx())
        files = dict(data_files('idx')[0]) | {'model.onnx': m.SerializeToString()}
        if rng.random() < 0.5: text, argv = ONNX_INI, ['net.ini', '-seed', '1', *rng.choice([FLOAT, INT8])]
        else: text, argv = None, ['model.onnx', '-seed', '1', *FLOAT]
    if text is not None: files['net.ini'] = text.encode('utf-8', 'surrogatepass')
    return files, argv, label


class _Hang(BaseException): pass


@contextlib.contextmanager
def _cheap_plots():
    "Figures saved as empty files: where they go is tested, drawing them (most of an int8 export's time here) is not."
    import matplotlib.figure
    real = matplotlib.figure.Figure.savefig
    def save(self, fname, *args, **kwargs):
        if not isinstance(fname, (str, os.PathLike)): return real(self, fname, *args, **kwargs)
        Path(fname).write_bytes(b'')
    matplotlib.figure.Figure.savefig = save
    try: yield
    finally: matplotlib.figure.Figure.savefig = real


def _alarm(*_): raise _Hang()


def run_case(case_dir, files, argv, limit=CASE_LIMIT_S):
    "Run the command on `files` in `case_dir/a/b/work`: (exit code or 'hang', stderr, seconds)."
    from n2d2x.cli import main
    work = case_dir / 'work'
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True); (work / name).write_bytes(data)
    err, cwd, t0 = io.StringIO(), os.getcwd(), time.monotonic()
    old = signal.signal(signal.SIGALRM, _alarm); signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        os.chdir(work)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), warnings.catch_warnings(), _cheap_plots():
            code = main(argv)
    except _Hang: code = 'hang'
    except BaseException as e: code, _ = 2, err.write(f'escaped: {type(e).__name__}: {e}')
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0); signal.signal(signal.SIGALRM, old); os.chdir(cwd)
    return code, err.getvalue(), time.monotonic() - t0


def _nan_outputs(model):
    "Whether the exported `model` outputs a non-finite value on a probe input (zeros and ones)."
    sess = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    i = sess.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in i.shape]
    dtype = {'tensor(float)': np.float32, 'tensor(uint8)': np.uint8, 'tensor(int8)': np.int8}.get(i.type, np.float32)
    return any(not np.isfinite(np.asarray(y, np.float64)).all() for x in (np.zeros(shape, dtype), np.ones(shape, dtype))
               for y in sess.run(None, {i.name: x}))


def outcome(files, argv, label, root):
    "The category of a case: 'ok', or what went wrong (the issue's categories), with a detail."
    case_dir = Path(tempfile.mkdtemp(dir=root))
    inner = case_dir / 'a' / 'b'
    inner.mkdir(parents=True)
    code, err, secs = run_case(inner, files, argv)
    work = inner / 'work'
    made = {p.relative_to(case_dir) for p in case_dir.rglob('*')} - {Path('a'), Path('a/b'), Path('a/b/work')}
    outside = [str(p) for p in made if not str(p).startswith('a/b/work/')] + [p for p in (OUTSIDE,) if os.path.exists(p)]
    lines = [l for l in err.strip().splitlines() if not l.startswith('n2d2x: warning: ')]
    exports = sorted(work.glob('export_*')) + sorted(work.glob('.export_*'))
    try:
        if code == 'hang': return 'hang', f'over {CASE_LIMIT_S} s'
        if code not in (0, 1): return 'traceback', err.strip().splitlines()[-1][:300] if err.strip() else f'exit {code}'
        if outside: return 'write outside', str(outside[:3])
        if code == 1:
            if exports: return 'half-written export', str(exports)
            if len(lines) != 1 or not lines[0].startswith('n2d2x: error: '): return 'not one line', err[:300]
            names = {Path(n).name for n in files} | {Path(argv[0]).name}
            if not any(n in lines[0] for n in names) and not any(f in lines[0] for f in ('-w ', '-calib', '-nbbits', 'weights', 'data')):
                return 'error without file', lines[0][:300]
            if 'net.ini' in lines[0] and 'net.ini:' not in lines[0]: return 'error without line', lines[0][:300]
            return 'ok', ''
        if '!' in label: return 'exit 0 on invalid input', label
        model = next(iter(work.glob('export_*/model.onnx')), None)
        if model is None or list(work.glob('.export_*')): return 'half-written export', f'exit 0, model {model}, {list(work.glob(".export_*"))}'
        if _nan_outputs(model): return 'NaN', str(model.relative_to(work))
        return 'ok', ''
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)
        if os.path.isdir(OUTSIDE): shutil.rmtree(OUTSIDE, ignore_errors=True)
        elif os.path.exists(OUTSIDE): os.remove(OUTSIDE)


@contextlib.contextmanager
def _memory_cap(extra=3 << 30):
    "Address space capped at what the process uses now plus `extra`: a runaway allocation fails fast instead of swapping."
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(Path('/proc/self/statm').read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + extra, hard))
    try: yield
    finally: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


_PER_KIND = max(1, SOAK // len(KINDS)) if SOAK else int(os.environ.get('N2D2X_FUZZ_CASES', '80'))


@pytest.mark.parametrize('kind', KINDS)
@settings(max_examples=_PER_KIND, derandomize=True, deadline=None, database=None, print_blob=True,
          suppress_health_check=list(HealthCheck))
@given(rng=st.randoms(use_true_random=False))
def test_fuzz(kind, rng, tmp_path_factory):
    files, argv, label = make_case(rng, kind)
    with _memory_cap():
        what, detail = outcome(files, argv, label, tmp_path_factory.getbasetemp())
    assert what == 'ok', f'{what}: {detail} [{kind}: {label}; n2d2x {" ".join(argv)}]'


def test_fuzz_must_fail_cases_are_refused(tmp_path):
    "Each listed invalid input gives a clean one-line error naming net.ini:LINE, in the float and the int8 paths."
    for sec, key, value in MUST_FAIL:
        for mode in (FLOAT, INT8):
            files = {'net.ini': _set_key(TINY.format(db=DBS['idx'][0], ch=1), sec, key, value).encode(), **data_files('idx')[0]}
            what, detail = outcome(files, ['net.ini', '-seed', '1', '-w', '/dev/null', *mode], '!', tmp_path)
            assert what == 'ok', f'[{sec}]{key}={value[:30]} {mode}: {what}: {detail}'


def counts(n, seed=0):
    "Outcomes of `n` cases (drawn with `random.Random(seed + i)`) by category, with one example each."
    out, t0 = {}, time.monotonic()
    root = Path(tempfile.mkdtemp(prefix='n2d2x-fuzz-'))
    with _memory_cap():
        for i in range(n):
            rng = random.Random(seed + i); kind = KINDS[i % len(KINDS)]
            files, argv, label = make_case(rng, kind)
            what, detail = outcome(files, argv, label, root)
            out.setdefault(what, []).append(f'{kind}: {label} -> {detail}')
    shutil.rmtree(root, ignore_errors=True)
    return out, time.monotonic() - t0


if __name__ == '__main__':
    n, seed = int(sys.argv[1]) if len(sys.argv) > 1 else 500, int(sys.argv[2]) if len(sys.argv) > 2 else 0
    res, secs = counts(n, seed)
    print(f'{n} cases in {secs:.0f} s')
    for k, v in sorted(res.items(), key=lambda kv: -len(kv[1])):
        print(f'{k}: {len(v)}')
        if k != 'ok':
            for ex in v[:int(os.environ.get('N2D2X_FUZZ_SHOW', '6'))]: print('   ', ex[:400])
