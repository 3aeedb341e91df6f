"""`ExportOptions` is the one home of the export options: `export_onnx`'s keywords are its fields, and every export flag
of the command line sets one field (or the field is listed in `NOT_ON_CLI` with its reason)."""
import dataclasses

import numpy as np
import pytest
from fastcore.docments import docments

from n2d2x.cli import EXPORT_FLAGS, NOT_ON_CLI, export_options, parser
from n2d2x.export import ExportOptions, export_onnx
from n2d2x.network import Activation, Conv, Fc, Network, Target
from n2d2x.weights import fill

FIELDS = {f.name: f for f in dataclasses.fields(ExportOptions)}
FLAG_FIELDS = [name for name, _ in EXPORT_FLAGS.values()]

# N2D2's flags and their defaults on the command line (DESIGN decisions 1 and 9): they must not drift
N2D2_DEFAULTS = {'-nbbits': 8, '-export-parameters': None, '-db-export': -1, '-calib': 0, '-calib-reload': False,
                 '-act-clipping-mode': 'MSE', '-act-quantile-value': 0.9999, '-wt-clipping-mode': 'None',
                 '-act-rescaling-mode': 'Single-shift', '-act-rescale-per-output': False, '-no-unsigned': False,
                 '-no-cle': True, '-qat-sat': False, '-wt-round-mode': 'NONE', '-b-round-mode': 'NONE', '-c-round-mode': 'NONE'}
# where the command line's default differs from the Python API's, on purpose
CLI_DEFAULTS = {'db_export': -1,   # N2D2 exports every test stimulus; a Python call writes none unless asked
                'qat': False}      # the command line decides between -qat-sat and PTQ itself


def test_every_field_has_a_docment():
    doc = docments(ExportOptions)
    assert {k for k in FIELDS if not doc.get(k)} == set()


def test_every_field_is_on_the_cli_or_said_why():
    assert len(FLAG_FIELDS) == len(set(FLAG_FIELDS)), 'a field set by two flags'
    assert set(FLAG_FIELDS).isdisjoint(NOT_ON_CLI)
    assert set(FLAG_FIELDS) | set(NOT_ON_CLI) == set(FIELDS)
    assert all(why.strip() for why in NOT_ON_CLI.values())


def test_every_cli_export_flag_is_a_field():
    assert set(FLAG_FIELDS) <= set(FIELDS)
    actions = {a.option_strings[0]: a for a in parser()._actions if a.option_strings}
    for flag, (name, _) in EXPORT_FLAGS.items():
        assert actions[flag].dest == name
    # no flag added by hand that writes into a field without going through EXPORT_FLAGS
    assert {f for f, a in actions.items() if a.dest in FIELDS} == set(EXPORT_FLAGS)


def test_n2d2_flag_names_and_defaults():
    actions = {a.option_strings[0]: a for a in parser()._actions if a.option_strings}
    assert set(EXPORT_FLAGS) == set(N2D2_DEFAULTS)
    assert {f: actions[f].default for f in N2D2_DEFAULTS} == N2D2_DEFAULTS


def test_cli_defaults_are_the_fields_defaults():
    opts = export_options(parser().parse_args(['net.ini']))
    assert opts == dataclasses.replace(ExportOptions(), **CLI_DEFAULTS)


def test_each_flag_reaches_its_field():
    argv = ['net.ini', '-nbbits', '4', '-export-parameters', 'p.ini', '-db-export', '7', '-calib', '100', '-calib-reload',
            '-act-clipping-mode', 'KL-Divergence', '-act-quantile-value', '0.99', '-wt-clipping-mode', 'MSE',
            '-act-rescaling-mode', 'Fixed-point16', '-act-rescale-per-output', '1', '-no-unsigned', '-no-cle', '-qat-sat',
            '-wt-round-mode', 'RINTF', '-b-round-mode', 'RINTF', '-c-round-mode', 'RINTF']
    assert set(EXPORT_FLAGS) <= set(argv)
    opts, default = export_options(parser().parse_args(argv)), ExportOptions()
    assert {name for name in FLAG_FIELDS if getattr(opts, name) == getattr(default, name)} == set()
    assert (opts.nbbits, opts.calib, opts.cle, opts.qat, opts.act_rescale_per_output) == (4, 100, False, True, True)


def _tiny():
    lin = Activation('Linear')
    net = Network((1, 4, 4), [Conv('conv', ['env'], 2, Activation('Rectifier'), kernel=(3, 3)), Fc('fc', ['conv'], 3, lin)],
                  [Target('fc.Target', 'fc')], name='tiny')
    return fill(net, seed=1)


def test_export_onnx_takes_every_field_as_a_keyword(tmp_path):
    defaults = {k: f.default for k, f in FIELDS.items()}
    a = export_onnx(_tiny(), out_dir=tmp_path / 'a', **{**defaults, 'nbbits': -32})
    b = export_onnx(_tiny(), out_dir=tmp_path / 'b', options=ExportOptions(nbbits=-32))
    assert (a / 'model.onnx').read_bytes() == (b / 'model.onnx').read_bytes()


def test_export_onnx_keywords_amend_options(tmp_path):
    out = export_onnx(_tiny(), out_dir=tmp_path, options=ExportOptions(nbbits=8, opset=13), nbbits=-32)
    assert out.path.name == 'export_ONNX_float32' and out.report['opset'] == 13


def test_export_onnx_refuses_an_unknown_keyword(tmp_path):
    with pytest.raises(TypeError, match=r"unknown option 'nbits' \(did you mean nbbits\?\)"):
        export_onnx(_tiny(), out_dir=tmp_path, nbits=-32)
    with pytest.raises(TypeError):
        export_onnx(_tiny(), -32)   # the options are keywords only: a positional one is no silent out_dir
    assert list(tmp_path.iterdir()) == []
