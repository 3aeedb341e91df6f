"""N2D2's model folder through the INI layer: templates, `$(...)` expressions, `${N2D2_MODELS}` / `${N2D2_DATA}`."""
import os, re, time
from pathlib import Path

import pytest

from n2d2x.ini import Ini, IniError, N2D2_MODELS_DIR, env_var, render_template

MODELS = N2D2_MODELS_DIR
INIS = sorted(MODELS.rglob('*.ini'))


@pytest.fixture(autouse=True)
def no_n2d2_models(monkeypatch):
    "Every test runs as a new user would: N2D2_MODELS unset."
    monkeypatch.delenv('N2D2_MODELS', raising=False)


def read_all(ini):
    "Every value of every section, resolved; {(section, key): value or the IniError}."
    out = {}
    for s in ini.sections:
        for k in ini.keys(s):
            try: out[s, k] = ini.get(s, k, pseudo=lambda sec, prop: '7')
            except IniError as e: out[s, k] = e
    return out


# The vendored folder ----------------------------------------------------------------------------------

def test_vendored_folder_is_complete():
    names = {str(p.relative_to(MODELS)) for p in MODELS.rglob('*') if p.is_file()}
    assert len(INIS) == 54 and {'ONNX/resnet-18-v1-onnx.ini', 'quantizer/resnet-18v1-LSQ-8b.ini'} <= names
    assert {'ResNet-block.ini.tpl', 'ResNet_BN-block.ini.tpl', 'ResNet11-block.ini.tpl', 'ResNet-bottleneck_block.ini.tpl',
            'MobileNet_v2-bottleneck.ini.tpl', 'ilsvrc2012_labels.dat', 'LICENSE', 'README.md'} <= names
    assert 'CeCILL-C' in (MODELS/'LICENSE').read_bytes().decode('latin-1')
    assert 'ccce8ba' in (MODELS/'README.md').read_text()


@pytest.mark.parametrize('path', INIS, ids=lambda p: str(p.relative_to(MODELS)))
def test_every_vendored_ini_reads(path):
    "Every key of every section resolves, templates expanded; the only failures are N2D2's undefined ${STEPDECAY_RATE}."
    text = path.read_text()
    values = read_all(Ini.load(path))
    failed = {sk: str(v) for sk, v in values.items() if isinstance(v, IniError)}
    # independent truth, from the raw text: the files that use ${STEPDECAY_RATE} and define no $STEPDECAY_RATE
    if '${STEPDECAY_RATE}' in text and '$STEPDECAY_RATE=' not in text:
        assert list(failed) == [('common.config', 'Solvers.LearningRateDecay')]
        assert 'unknown variable ${STEPDECAY_RATE}' in failed['common.config', 'Solvers.LearningRateDecay']
    else: assert failed == {}
    assert not any('${' in v or '$(' in v for v in values.values() if isinstance(v, str))


# Templates: the expansion of each templated model, counted by hand from its template -----------------

# model: (sections the templates write, cells in all). Per template, sections written per instance:
#   ResNet11-block / ResNet-block: 3x3_1, 3x3_2, sum (3) + 1x1_proj with PROJECTION_SHORTCUT
#   ResNet_BN-block: 3x3_1, bn_1, 3x3_2, bn_2, sum (5) + 1x1_proj, bn_proj with PROJECTION_SHORTCUT
#   ResNet-bottleneck_block: 1x1, 3x3, 1x1_x4, sum (4) + 1x1_proj with PROJECTION_SHORTCUT
#   MobileNet_v2-bottleneck: 1x1, 3x3, 1x1_linear (3) + sum with RESIDUAL
# Cells in all = the `Input=` lines of the INI itself + the sections written (each has Input=).
EXPANSIONS = {
    'ResNet-11':    (4 * 3 + 4, 5 + 16),    # 4 blocks, all 4 with a projection
    'ResNet-18':    (8 * 3 + 4, 5 + 28),    # 8 blocks, 4 projections
    'ResNet-18-BN': (8 * 5 + 4 * 2, 6 + 48),
    'ResNet-34':    (16 * 3 + 4, 5 + 52),
    'ResNet-50':    (16 * 4 + 4, 5 + 68),
    'ResNet-50-BN': (16 * 4 + 4, 9 + 68),
    'MobileNet_v2': (17 * 3 + 10, 5 + 61),  # 17 bottlenecks, 10 residual
}

@pytest.mark.parametrize('model', EXPANSIONS)
def test_template_expansion_counts(model):
    path = MODELS/f'{model}.ini'
    ini = Ini.load(path)
    written = [s for s in ini.sections.values() if s.file != ini.path]
    cells = [s for s in ini.sections if ini.has(s, 'Input')]
    assert (len(written), len(cells)) == EXPANSIONS[model]
    assert len(re.findall(r'^Input=', path.read_text(), re.M)) + len(written) == len(cells)
    # every written section comes right after its template section or a sibling, and names it as parent
    names = list(ini.sections)
    for s in written:
        parent = s.props['$PARENT_SECTION_NAME'].value
        assert ini.sections[parent].template and s.name.startswith(parent + '_')
        assert names.index(parent) < names.index(s.name)
        assert Path(s.file).name == Path(ini.sections[parent].template).name


def test_resnet18_values():
    ini = Ini.load(MODELS/'ResNet-18.ini')
    assert ini.get('conv4.1_3x3_1', 'WeightsFiller.Scaling') == str(8 ** (-1.0 / (2 * 2 - 2)))
    assert ini.get('conv4.1_3x3_2', 'WeightsFiller.Scaling') == '0.0'
    assert (ini.get('conv4.1_3x3_1', 'NbOutputs'), ini.get('conv4.1_3x3_1', 'Stride'), ini.get('conv4.1_3x3_1', 'Type')) == ('256', '2', 'Conv')
    assert ini.get('conv4.1_sum', 'Input') == 'conv4.1_3x3_2,conv4.1_1x1_proj'
    assert ini.get('conv4.2_sum', 'Input') == 'conv4.2_3x3_2,conv4.1_sum'
    assert ini.get('conv4.1_1x1_proj', 'Input') == 'conv3.2_sum'
    assert 'conv4.2_1x1_proj' not in ini.sections
    assert (Path(ini.file('conv4.1_sum', 'Operation')).name, ini.line('conv4.1_sum', 'Operation')) == ('ResNet-block.ini.tpl', 35)
    assert ini.file('conv4.1_sum', 'Operation') == str(MODELS/'ResNet-block.ini.tpl')


def test_resnet50bn_no_relu_and_bn_template():
    ini = Ini.load(MODELS/'ResNet-50-BN.ini')
    no_relu = [s for s in ini.sections if s.endswith('_sum') and not ini.has(s, 'ActivationFunction')]
    assert no_relu == ['conv2.3_sum', 'conv3.4_sum', 'conv4.6_sum', 'conv5.3_sum']
    assert ini.get('conv5.2_sum', 'ActivationFunction') == 'Rectifier'
    assert ini.get('conv5.2_1x1_x4', 'NbOutputs') == '2048'
    assert ini.get('conv5.2_1x1', 'WeightsFiller.Scaling') == '1.0'   # $L=0: no Fixup scaling
    bn = Ini.load(MODELS/'ResNet-18-BN.ini')   # a relative template path: next to the INI
    assert bn.get('conv3.1_bn_proj', 'Input') == 'conv3.1_1x1_proj' and bn.get('conv3.1_sum', 'Input') == 'conv3.1_bn_2,conv3.1_bn_proj'


def test_mobilenet_v2_residual_and_references():
    ini = Ini.load(MODELS/'MobileNet_v2.ini')
    sums = [s for s in ini.sections if s.endswith('_sum')]
    assert sums == ['conv3.2_sum', 'conv4.2_sum', 'conv4.3_sum', 'conv5.2_sum', 'conv5.3_sum', 'conv5.4_sum',
                    'conv6.2_sum', 'conv6.3_sum', 'conv7.2_sum', 'conv7.3_sum']
    # $([{{INPUT}}]NbOutputs * {{EXPANSION}}): $ALPHA=0.5, $EXPANSION=6 -> int(32 * 0.5) * 6 for the first conv4.2 layer
    assert ini.get('conv4.2_1x1', 'NbOutputs') == str(int(32 * 0.5) * 6)
    assert ini.get('conv2.1_1x1', 'NbOutputs') == str(int(32 * 0.5) * 1)
    assert ini.get('conv3.2_1x1', 'WeightsFiller.Scaling') == str(10 ** (-1.0 / (2 * 3 - 2)))
    assert not ini.has('conv3.1_1x1', 'WeightsFiller.Scaling')


def test_template_constructs(tmp_path):
    (tmp_path/'item.tpl').write_text('<{{#}}:{{NAME}}>')
    t = tmp_path/'t.ini.tpl'
    t.write_text('{% for i in range(2, N) %}{{i}} {% endfor %}|{% if MODE == fast %}F{% else %}S{% endif %}|'
                 '{% if MODE != fast %}{% if X not_exists %}nx{% else %}x{% endif %}{% endif %}|'
                 '{% block ITEM %}{% include item.tpl %}{% endblock %}|{% set X %}{{MODE}}!{% endset %}{{X}}|{% for j in range(K) %}{{j}}{% endfor %}')
    p = {'N': '4', 'MODE': 'slow', 'ITEM': '2', 'ITEM[0]NAME': 'a', 'ITEM[1]NAME': 'b', 'K': '3'}
    assert render_template(t, p) == '2 3 |S|nx|<0:a><1:b>|slow!|012'
    assert render_template(t, {**p, 'MODE': 'fast', 'ITEM': '0', 'N': '1', 'K': '0'}) == '|F|||fast!|'
    assert render_template(t, {**p, 'X': '1'}) == '2 3 |S|x|<0:a><1:b>|slow!|012'


def test_template_parameters_and_nesting(tmp_path):
    (tmp_path/'inner.ini.tpl').write_text('[{{SECTION_NAME}}_in]\nInput={{IN}}\nWho=${PREV_SECTION_NAME}\nN=$({{K}} * 2)\n')
    (tmp_path/'outer.ini.tpl').write_text('[{{SECTION_NAME}}_a]\nInput={{IN}}\n[{{SECTION_NAME}}_b@inner.ini.tpl]\nIN={{SECTION_NAME}}_a\nK={{K}}\n')
    ini = Ini.from_string('$K=3\n[base]\nIN=sp\n[blk@outer.ini.tpl] base\nK=$(${K} + 1)\n[after]\nX=1\n', str(tmp_path/'net.ini'))
    assert list(ini.sections) == ['base', 'blk', 'blk_a', 'blk_b', 'blk_b_in', 'after']
    assert (ini.get('blk_a', 'Input'), ini.get('blk_b_in', 'Input'), ini.get('blk_b_in', 'N')) == ('sp', 'blk_a', '8')
    assert ini.get('blk_b_in', 'Who') == 'blk_a'   # skips its template section [blk_b]
    assert (ini.file('blk_b_in', 'N'), ini.line('blk_b_in', 'N')) == (str(tmp_path/'inner.ini.tpl'), 4)


@pytest.mark.parametrize('body, line, words', [
    ('[{{SECTION_NAME}}_a]\nX=1\nY={{NOPE}}\n', 3, ['undefined template variable NOPE']),
    ('\n\n\n{% if X %}\n', 4, ['malformed template tag']),
    ('\n{% for i in range(3) %}\n', 2, ['without its {% endfor %}']),
    ('\n{% set A %}\n', 2, ['without its {% endset %}']),
    ('\n\n{% else %}', 3, ['without an open {% if %}']),
    ('{% frobnicate %}', 1, ['unknown template tag']),
    ('[a]\n\nX={{A\n', 3, ["'{{' without"]),
    ('[a]\n{% if A exists', 2, ["'{%' without"]),
    ('\n{% include missing.tpl %}', 2, ['cannot read template file', 'missing.tpl']),
    ('\n{% for i in range(x, 3) %}{% endfor %}', 2, ['unreadable loop range value']),
    ('\n{% block N %}{% endblock %}', 2, ['unreadable size']),
    ('\n{% for i in range(1e12) %}{% endfor %}', 2, ['runaway']),
    ('\n{% for i in range(40) %}{% set S %}{{S}}{{S}}{% endset %}{% endfor %}', 2, ['runaway']),
    ('[a]\nX\n', 2, ["missing '='"]),
])
def test_template_errors_name_template_file_and_line(tmp_path, body, line, words):
    (tmp_path/'bad.ini.tpl').write_text(body)
    with pytest.raises(IniError) as e:
        Ini.from_string('$V=1\n[blk@bad.ini.tpl]\nN=x\nS=s\n', str(tmp_path/'net.ini'))
    assert (e.value.file, e.value.line) == (str(tmp_path/'bad.ini.tpl'), line)
    assert all(w in str(e.value) for w in words) and 'expanding [blk@bad.ini.tpl]' in str(e.value)


def test_template_runaway_is_fast(tmp_path):
    (tmp_path/'self.ini.tpl').write_text('[{{SECTION_NAME}}x@{{SECTION_FILE_NAME}}]\n')
    (tmp_path/'loop.tpl').write_text('{% include loop.tpl %}')
    t0 = time.perf_counter()
    with pytest.raises(IniError, match='templates nested deeper'): Ini.from_string(f'[a@{tmp_path}/self.ini.tpl]\n', 'n.ini')
    with pytest.raises(IniError, match='nested deeper'): Ini.from_string(f'[a@{tmp_path}/loop.tpl]\n', 'n.ini')
    assert time.perf_counter() - t0 < 5


# $(...) ------------------------------------------------------------------------------------------------

def _model_expressions():
    "Every `$(...)` written in N2D2's model files and templates (balanced parentheses), as written."
    out = set()
    for p in MODELS.rglob('*'):
        if p.suffix not in ('.ini', '.tpl'): continue
        text = p.read_text(errors='replace')
        for m in re.finditer(r'\$\(', text):
            depth, j = 0, m.start() + 1
            for j in range(m.start() + 1, len(text)):
                depth += {'(': 1, ')': -1}.get(text[j], 0)
                if depth == 0: break
            out.add(text[m.start() + 2:j])
    return sorted(out)

EXPRS = _model_expressions()
SUBST = [{'L': '8', 'ALPHA': '1.0'}, {'L': '0', 'ALPHA': '0.5'}, {'L': '10', 'ALPHA': '0.25'}]

@pytest.mark.parametrize('expr', EXPRS)
def test_model_expressions_evaluate_as_python(expr):
    "Each expression of the models, its variables given values, evaluates as Python prints it (what N2D2 runs)."
    for sub in SUBST:
        e = re.sub(r'\$\{(\w+)\}', lambda m: sub.get(m[1], '32'), expr)
        e = re.sub(r'\[[^\]]+\]_?\w+', '24', e).replace('{{NB_FILTERS}}', '64').replace('{{EXPANSION}}', '6')
        ini = Ini.from_string(f'[a]\nX=$({e})\n', 'x.ini')
        assert ini.get('a', 'X') == str(eval(e, {'__builtins__': {'int': int, 'max': max}}))

def test_model_expressions_found():
    assert len(EXPRS) == 30 and '${L}**(-1.0/(2*2-2)) if ${L} > 0 else 1.0' in EXPRS and '0.0 if ${L} > 0 else 1.0' in EXPRS


@pytest.mark.parametrize('expr, want', [
    ('1 if 0 else 2', 2), ('1 < 2 < 3', True), ('3 > 2 > 2', False), ('not 0', True), ('0 or 0.5', 0.5),
    ('1 and 0', 0), ('2 ** -1', 0.5), ('(-8) ** 2', 64), ('9 ** 0.5', 3.0), ('10 ** 300 > 10 ** 299', True),
    ('round(123.456, -1)', 120.0), ('round(2 ** 100, -25)', round(2 ** 100, -25)), ('1 == 1.0 != 2', True),
    ('0 and 1 / 0', 0), ('1 or 1 / 0', 1), ('5 if 1 else 1 / 0', 5), ('1 > 2 > 1 / 0', False),
])
def test_expression_subset(expr, want):
    assert Ini.from_string(f'[a]\nX=$({expr})\n').get('a', 'X') == str(want) == str(eval(expr))


@pytest.mark.parametrize('expr, why', [
    ("__import__('os').system('true')", 'not allowed'), ('(1).real', 'not allowed'), ('x + 1', 'not allowed'),
    ('[1, 2][0]', 'not allowed'), ("'a' * 3", 'not allowed'), ('(lambda: 1)()', 'not allowed'),
    ('[i for i in (1, 2)]', 'not allowed'), ('(y := 2)', 'not allowed'), ('f"{1}"', 'not allowed'),
    ('open(1)', 'not allowed'), ('int(x=1)', 'not allowed'), ('~1', 'not allowed'), ('1 << 2', 'not allowed'),
    ('1 in (1, 2)', 'not allowed'), ('1 is 1', 'not allowed'), ('pow(2, 3)', 'not allowed'), ('math.pi', 'not allowed'),
    ('round(1, -10**9)', 'digits'), ('round(1.5, 10**9)', 'digits'), ('10 ** 10 ** 6', 'too large'),
    ('2 ** 2 ** 20', 'too large'), ('(10 ** 2000) ** 5', 'too large'), ('(10 ** 1300) * (10 ** 1300)', 'over 8192 bits'),
    ('(-8) ** 0.5', 'not a real number'), ('1.5 ** 10 ** 6', 'Numerical result out of range'), ('1 / 0', 'division by zero'),
    ('int(1e309)', 'infinity'), ('math.exp(10 ** 4)', 'range'), ('max()', 'expected'),
    ('-' * 2000 + '1', 'longer than'), ('-' * 900 + '1', 'nested'), ('+'.join(['1'] * 300), 'nested'),
    ('not ' * 240 + '1', 'nested'), ('1 +', 'invalid syntax'),
])
def test_unsafe_or_huge_expressions_refused(expr, why):
    ini = Ini.from_string(f'[a]\n\nX=$({expr})\n', 'e.ini')
    t0 = time.perf_counter()
    with pytest.raises(IniError) as e: ini.get('a', 'X')
    assert time.perf_counter() - t0 < 10   # refused before any work: no hang, even on a loaded machine
    assert (e.value.file, e.value.line) == ('e.ini', 3) and why in str(e.value) and 'cannot evaluate' in str(e.value)


def test_deep_nesting_is_a_clean_error():
    deep_expr = '$(' * 80 + '1' + ')' * 80
    with pytest.raises(IniError, match='nested deeper'): Ini.from_string(f'[a]\nX={deep_expr}\n').get('a', 'X')
    chain = '[s0]\nX=1\n' + ''.join(f'[s{i}]\nX=[s{i - 1}]X\n' for i in range(1, 400))
    with pytest.raises(IniError, match='nested deeper than 50'): Ini.from_string(chain, 'c.ini').get('s399', 'X')
    assert Ini.from_string(chain, 'c.ini').get('s40', 'X') == '1'


# Environment variables ---------------------------------------------------------------------------------

def test_env_defaults(monkeypatch):
    assert env_var('N2D2_MODELS') == str(MODELS) and (Path(env_var('N2D2_MODELS'))/'ResNet-block.ini.tpl').is_file()
    monkeypatch.delenv('N2D2_DATA', raising=False)
    monkeypatch.setenv('USER', 'ada')
    assert env_var('N2D2_DATA') == '/local/ada/n2d2_data'
    monkeypatch.delenv('USER')
    assert env_var('N2D2_DATA') == '/local/n2d2_data'
    monkeypatch.setenv('N2D2_DATA', '/data/n2d2')
    monkeypatch.setenv('N2D2_MODELS', '/opt/n2d2/models')
    assert (env_var('N2D2_DATA'), env_var('N2D2_MODELS')) == ('/data/n2d2', '/opt/n2d2/models')
    assert env_var('N2D2X_SURELY_UNSET') is None


def test_env_in_values_and_paths_is_expanded(monkeypatch):
    monkeypatch.setenv('N2D2_DATA', '/data/n2d2')
    ini = Ini.load(MODELS/'ONNX/resnet-18-v1-onnx.ini')
    assert ini.get('onnx', 'File') == str(MODELS/'ONNX/resnet-18-v1/resnet18v1.onnx')
    t = Ini.from_string('[database]\nDataPath=${N2D2_DATA}/mnist\nP=$N2D2_DATA/x\nM=$N2D2_MODELS/y\n', 'd.ini')
    assert (t.get('database', 'DataPath'), t.get_path('database', 'P'), t.get_path('database', 'M')) == ('/data/n2d2/mnist', '/data/n2d2/x', f'{MODELS}/y')


def test_unset_template_folder_names_the_expanded_path(monkeypatch):
    monkeypatch.setenv('N2D2_MODELS', '/nowhere/models')
    with pytest.raises(IniError) as e: Ini.load(MODELS/'ResNet-18.ini')
    assert (e.value.file, e.value.line) == (str(MODELS/'ResNet-18.ini'), 130)
    assert 'cannot read template file /nowhere/models/ResNet-block.ini.tpl' in str(e.value)


def test_missing_onnx_file_message_shows_expanded_path():
    "The CLI's 'ONNX file not found' (network layer) now quotes the real path, since `get` expands ${N2D2_MODELS}."
    from n2d2x.network import Network
    with pytest.raises(IniError) as e: Network.from_ini(Ini.load(MODELS/'ONNX/resnet-18-v1-onnx.ini'))
    assert f"'{MODELS}/ONNX/resnet-18-v1/resnet18v1.onnx' not found" in str(e.value) and '${' not in str(e.value)
