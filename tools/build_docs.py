"""Build the documentation site into `_docs/` from the notebooks, here, without quarto: `python tools/build_docs.py`.

Two steps. First nbdev processes the notebooks exactly as `nbdev_proc_nbs` does (its `proc_nbs`, minus the quarto
install it would try): `show_doc` output for every exported symbol, directives applied, hidden and exported cells removed,
symbol names linked, into `_proc/`. Then Sphinx renders those processed notebooks, with their committed outputs (nothing
is re-executed), into a static site.

Why Sphinx with MyST-NB (and the furo theme): MyST-NB reads a notebook as a document, so `show_doc`'s markdown output
is parsed like any other markdown (signatures, headings, tables), images are extracted, `[..](09_quantize.ipynb)` links
become checked cross-references and every broken one is a build error; Sphinx ships its own offline search index and
takes a local MathJax through one setting. mkdocs-jupyter, the other candidate, hands notebooks to nbconvert as opaque
HTML: mkdocs then neither resolves the links between notebooks nor checks them.

MathJax comes from PyPI (`django-static-mathjax`, MathJax 3's own release files and nothing else, no dependency): the
pages load nothing from outside the site.

The site also ships netron's static viewer (`netron/`: the files of the `netron` package that an ONNX model needs, 8.5 MB
of its 28, most of it ONNX's operator metadata) with the bundled LeNet exported four ways (`netron/models/`: float,
int8, int8 with implicit casting, fake-quantized), so that `netron/index.html?url=models/lenet_int8.onnx` opens the
real graph. The viewer is made to stay offline: its startup's update nag, cookie-consent check (a request to
ipinfo.io) and telemetry are taken out.
"""
import argparse, html, json, re, shutil, sys, tempfile, time
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r'^(```|~~~)')


def nbdev_process(force=False, n_workers=2):
    "`nbdev_proc_nbs`'s work (its quarto check left out): the processed notebooks in `_proc/`; an error stops the build."
    from nbdev.config import get_config
    from nbdev.doclinks import _build_modidx
    from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
    from nbdev.serve import proc_nbs
    cfg = get_config()
    refresh_quarto_yml()
    _build_modidx()   # the symbol index the links are made from, with settings.ini's doc_host (as nbdev_proc_nbs does)
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    return proc_nbs(cfg.nbs_path, n_workers=n_workers, force=force)


def _sidebar(nbs):
    "Notebook file names in the sidebar's order (nbdev's `sidebar.yml`: index first, then the numbers)."
    return re.findall(r'^\s*-\s*(\S+\.ipynb)\s*$', (nbs/'sidebar.yml').read_text(), re.M)


def _frontmatter(nb):
    "The YAML front matter nbdev puts in a raw first cell, as a dict; the cell is removed."
    import yaml
    c = nb['cells'][0]
    if c['cell_type'] != 'raw' or not ''.join(c['source']).startswith('---'): return {}
    del nb['cells'][0]
    return yaml.safe_load(''.join(c['source']).strip().strip('-')) or {}


_TAGS = {'echo: false': 'remove-input', 'output: false': 'remove-output', 'include: false': 'remove-cell'}

def _directives(cell):
    "Quarto's `#| key: value` lines (left by nbdev for quarto) become MyST-NB tags and leave the shown source."
    lines = ''.join(cell['source']).split('\n')
    n = 0
    while n < len(lines) and lines[n].startswith('#|'): n += 1
    tags = cell['metadata'].setdefault('tags', [])
    for l in lines[:n]:
        t = _TAGS.get(l[2:].strip())
        if t and t not in tags: tags.append(t)
    cell['source'] = '\n'.join(lines[n:])


def _rewrite_md(md, pages, anchors, code_url):
    "Links between notebooks to the pages' names; nbdev's symbol links and show_doc's source links as plain HTML links."
    def nb_link(m):
        name, anchor = m.group(1), m.group(2) or ''
        return f'({pages[name]}.ipynb{anchor})' if name in pages else m.group(0)
    def sym_link(m):   # [`name`](page.html#anchor): to the anchor where show_doc documents it, else to its page
        name, page, anchor = m.group(1), m.group(2), (m.group(3) or '')[1:]
        if page not in anchors: return m.group(0)
        href = f'{page}.html' + (f'#{anchor}' if anchor in anchors[page] else '')
        return f'<a class="doclink" href="{html.escape(href)}"><code>{html.escape(name)}</code></a>'
    def source_link(m): return f'<a class="source-link" href="_src/{m.group(1)}.html#L-{m.group(2)}">source</a>'
    md = re.sub(r'\[source\]\(' + re.escape(code_url) + r'(\S+?\.py)#L(\d+)\)(\{[^}\n]*\})?', source_link, md)
    md = re.sub(r'\[`([^`]+)`\]\(([\w-]+)\.html(#[^)\s]*)?\)', sym_link, md)
    return re.sub(r'\(([\w.-]+\.ipynb)(#[\w.-]+)?\)', nb_link, md)


_SHOW_DOC_HEADING = re.compile(r'^#{2,4} (\S+)$', re.M)

def _anchors(md, taken):
    "nbdev's symbol links point at `page.html#name.lower()` (quarto's heading ids): give show_doc's headings that id."
    md = re.sub(r'^---\n', '', md)   # show_doc's rule: docutils allows none inside an output
    def anchor(m):
        a = m.group(1).lower()
        if a in taken or re.fullmatch(r'[\w-]+', a): return m.group(0)   # MyST's own slug of the heading is that id
        return f'<span id="{html.escape(a)}"></span>\n\n{m.group(0)}'
    return _SHOW_DOC_HEADING.sub(anchor, md)


def _text(x): return x if isinstance(x, str) else ''.join(x)

_CELL_KEYS = {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}

def _md_cell(source, id):
    return {'cell_type': 'markdown', 'id': id, 'metadata': {}, 'source': source}


def sphinx_sources(proc, dest, cfg):
    "The processed notebooks, as MyST-NB reads them, in `dest`: one page per notebook, named as quarto names them."
    nbs = ROOT/cfg['nbs_path']
    order = _sidebar(nbs)
    nbs_read = {n: json.loads((proc/n).read_text()) for n in order}
    fms = {n: _frontmatter(nb) for n, nb in nbs_read.items()}
    pages = {n: Path(fms[n].get('output-file', Path(n).with_suffix('.html').name)).stem for n in order}
    code_url = f"{cfg['git_url']}/blob/{cfg['branch']}/"
    anchors = {pages[n]: {h.lower() for c in nb['cells'] for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {})
                          for h in _SHOW_DOC_HEADING.findall(_text(o['data']['text/markdown']))}
               for n, nb in nbs_read.items()}
    for n, nb in nbs_read.items():
        fm, cells = fms[n], []
        taken = {h.lower() for c in nb['cells'] if c['cell_type'] == 'markdown'   # ids of the page's own headings
                 for h in re.findall(r'^#+ `?([^`\n]+?)`?$', _text(c['source']), re.M)}
        head = f"# {fm.get('title', pages[n])}\n\n" + (f"> {fm['description']}\n" if fm.get('description') else '')
        cells.append(_md_cell(head, 'title'))
        for c in nb['cells']:
            s = _text(c['source'])
            if c['cell_type'] == 'markdown' and s.startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            if c['cell_type'] == 'raw': continue
            c['source'] = _rewrite_md(s, pages, anchors, code_url) if c['cell_type'] == 'markdown' else s
            if c['cell_type'] == 'code':
                _directives(c)
                for o in c.get('outputs', []):
                    if '<iframe' in _text(o.get('data', {}).get('text/html', '')) and '//localhost:' in _text(o['data']['text/html']):
                        o['data'] = {'text/html': _NETRON_NOTE}   # show_netron's server lived with the notebook's kernel
                    md = o.get('data', {}).get('text/markdown')
                    if md is not None: o['data']['text/markdown'] = _anchors(_rewrite_md(_text(md), pages, anchors, code_url), taken)
            cells.append({k: v for k, v in c.items() if k in _CELL_KEYS})   # nbdev's own keys (has_sd, ...) out
        if n == order[0]:   # the root page carries the sidebar's table of contents
            toc = '\n'.join(pages[o] for o in order[1:])
            cells.append(_md_cell(f"```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toc}\n```", 'toctree'))
        nb['cells'] = cells
        nb['metadata'].pop('jupytext', None)
        nb['metadata'].pop('widgets', None)   # saved widget state: MyST-NB would load the widget manager from a CDN
        (dest/f'{pages[n]}.ipynb').write_text(json.dumps(nb))
    return pages


_NETRON_NOTE = ('<p><em>Here the notebook showed netron, served by its kernel. On this site, netron\'s viewer opens the '
                '<a href="netron/index.html?url=models/lenet_int8.onnx">int8 LeNet</a> and the other example models.</em></p>')


def module_sources(dest, cfg):
    "Each module of the library as a highlighted page whose lines are anchors (`#L-12`), for show_doc's source links."
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    lib = ROOT/cfg['lib_path']
    fmt = HtmlFormatter(full=True, linenos='inline', lineanchors='L', anchorlinenos=True, style='friendly')
    for py in sorted(lib.rglob('*.py')):
        rel = py.relative_to(ROOT)
        out = dest/'_src'/f'{rel}.html'
        out.parent.mkdir(parents=True, exist_ok=True)
        fmt.title = str(rel)
        out.write_text(highlight(py.read_text(), PythonLexer(), fmt))


def _mathjax(static):
    "MathJax 3 (tex-chtml and what it loads on demand) copied into the site's `_static/mathjax`."
    import mathjax
    es5 = Path(mathjax.__file__).parent/'static'/'mathjax'/'es5'
    out = static/'mathjax'
    out.mkdir(parents=True)
    shutil.copy(es5/'tex-chtml.js', out)
    for d in ('input', 'output', 'ui', 'a11y', 'sre', 'adaptors'): shutil.copytree(es5/d, out/d)


# What netron's viewer loads to show an ONNX model (measured in Chromium: the page, its modules, the ONNX reader and
# the readers it tries for the .onnx extension, their schemas and metadata), and the icons its page names.
NETRON_FILES = ['index.html', 'index.js', 'grapher.css', 'grapher.js', 'dagre.js', 'browser.js', 'view.js', 'worker.js',
                'message.js', 'base.js', 'text.js', 'json.js', 'xml.js', 'protobuf.js', 'hdf5.js', 'flatbuffers.js',
                'flexbuffers.js', 'zip.js', 'tar.js', 'python.js', 'numpy.js', 'onnx.js', 'onnx-proto.js', 'onnx-schema.js',
                'onnx-metadata.json', 'pytorch.js', 'pytorch-metadata.json', 'tflite.js', 'tflite-schema.js',
                'tflite-metadata.json', 'mlnet.js', 'favicon.ico', 'icon.png']
_NETRON_ONLINE = "        await age();\n        await consent();\n        await telemetry();\n"

def netron_viewer(dest):
    "netron's static viewer in `dest`, offline: no update nag, no consent request to ipinfo.io, no telemetry."
    import netron
    src = Path(netron.__file__).parent
    dest.mkdir(parents=True)
    for f in NETRON_FILES: shutil.copy(src/f, dest)
    js = (dest/'browser.js').read_text()
    if js.count(_NETRON_ONLINE) != 1: raise SystemExit(f'netron {netron.__version__}: its browser.js startup changed, update _NETRON_ONLINE')
    (dest/'browser.js').write_text(js.replace(_NETRON_ONLINE, ''))


EXAMPLE_MODELS = {'lenet_float': dict(nbbits=-32), 'lenet_int8': dict(nbbits=8),
                  'lenet_int8_implicit': dict(nbbits=8, implicit_casting=True), 'lenet_int8_fake': dict(nbbits=8, fake_quantization=True)}

def example_models(dest):
    "The bundled LeNet, with its trained weights, exported as the quick start does: float, int8, implicit casting, fake-quantized."
    from n2d2x.data import StimuliProvider
    from n2d2x.export import export_onnx
    from n2d2x.network import Network, model_path
    from n2d2x.weights import fill, load_weights
    net = load_weights(fill(Network.from_ini(model_path('LeNet.ini')), seed=1), model_path('LeNet_weights'))
    sp = StimuliProvider.from_ini(net.ini, seed=1)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in EXAMPLE_MODELS.items():
            shutil.copy(export_onnx(net, stimuli=sp, calib=-1, export_dir=Path(tmp)/name, **kw)/'model.onnx', dest/f'{name}.onnx')


_FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2962ff"/>'
            '<text x="8" y="12" font-size="10" font-family="sans-serif" text-anchor="middle" fill="#fff">n2</text></svg>')

def sphinx_conf(cfg, static):
    "The whole Sphinx configuration (no conf.py to keep in step with settings.ini)."
    return dict(
        project=cfg['title'], author=cfg['author'], copyright=cfg['copyright'], release=cfg['version'],
        extensions=['myst_nb'], html_theme='furo', html_title=cfg['title'],
        html_static_path=[str(static)], html_css_files=['styles.css'], html_extra_path=[str(static.parent/'extra')],
        html_copy_source=False, html_show_sourcelink=False, html_favicon=str(static/'favicon.svg'),
        mathjax_path='mathjax/tex-chtml.js',
        nb_execution_mode='off', nb_render_markdown_format='myst', nb_merge_streams=True,
        myst_enable_extensions=['dollarmath', 'amsmath', 'colon_fence'], myst_heading_anchors=4,
        suppress_warnings=['mystnb.unknown_mime_type', 'myst.header'])   # show_doc's H3 under a page's H1


def build(out, force=False, quiet=False):
    "Process the notebooks and write the site into `out`; raises on any nbdev error or Sphinx warning."
    from sphinx.application import Sphinx
    cp = ConfigParser(delimiters=['=']); cp.read(ROOT/'settings.ini', encoding='utf-8'); cfg = cp['DEFAULT']
    t0 = time.time()
    proc = Path(nbdev_process(force=force))
    t1 = time.time()
    work = Path(tempfile.mkdtemp(prefix='n2d2x_docs_'))
    try:
        src, static = work/'src', work/'static'
        src.mkdir(); static.mkdir()
        sphinx_sources(proc, src, cfg)
        module_sources(work/'extra', cfg)
        netron_viewer(work/'extra'/'netron')
        example_models(work/'extra'/'netron'/'models')
        _mathjax(static)
        shutil.copy(ROOT/cfg['nbs_path']/'styles.css', static)
        (static/'favicon.svg').write_text(_FAVICON)   # else the browser asks for /favicon.ico, and logs a 404
        t2 = time.time()
        # Sphinx writes into the work folder (MyST-NB puts its image copies in the output's parent: jupyter_execute/)
        app = Sphinx(str(src), None, str(work/'html'), str(work/'doctrees'), 'html', confoverrides=sphinx_conf(cfg, static),
                     status=None if quiet else sys.stdout, warningiserror=True, keep_going=True, parallel=1)
        app.build()
        if app.statuscode: raise SystemExit(f'sphinx-build failed (status {app.statuscode})')
        if Path(out).exists(): shutil.rmtree(out)
        shutil.move(work/'html', out)
    finally: shutil.rmtree(work)
    print(f'docs: nbdev processing {t1 - t0:.0f}s, netron and example models {t2 - t1:.0f}s, Sphinx {time.time() - t2:.0f}s -> {out}/index.html')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default=str(ROOT/'_docs'), help='folder the site is written to (replaced)')
    p.add_argument('--cached', action='store_true',
                   help="reprocess only the notebooks changed since the last build (nbdev's cache in _proc/; it misses "
                        "changes to the library that show_doc would show)")
    p.add_argument('-q', '--quiet', action='store_true', help="print only Sphinx's warnings")
    a = p.parse_args()
    import os; os.chdir(ROOT)
    build(Path(a.out).resolve(), force=not a.cached, quiet=a.quiet)
