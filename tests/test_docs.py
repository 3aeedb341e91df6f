"""The docs site, built by `tools/build_docs.py` and read in a real browser (Debian's headless Chromium, driven by Playwright).

A build error fails `test_build`; the others serve the site on localhost and check what a reader meets: every page loads
without a console error and asks nothing from outside the site, every image decodes, every link inside the site resolves
(page and anchor), maths is typeset by the bundled MathJax, and the search finds `export_onnx` on its page. netron's
viewer, shipped in the site, opens each example model (the bundled LeNet: float, int8, implicit casting, fake-quantized)
and draws its graph without a console error or a request outside the site.
"""
import os, re, shutil, subprocess, sys, threading
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse
from urllib.request import urlopen
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site built into a temporary folder; a failed build fails every test here, with the builder's own words."
    out = tmp_path_factory.mktemp('docs')/'_docs'
    r = subprocess.run([sys.executable, 'tools/build_docs.py', '--out', str(out), '-q'], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f'tools/build_docs.py failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}'
    return out


def test_build(site):
    pages = sorted(p.name for p in site.glob('*.html'))
    nbs = sorted((ROOT/'nbs').glob('*.ipynb'))
    assert (site/'index.html').exists() and (site/'search.html').exists() and (site/'searchindex.js').exists()
    assert len(pages) >= len(nbs), f'{len(nbs)} notebooks, pages: {pages}'
    for page in ('export.html', 'quantize.html', 'calibrate.html'): assert page in pages
    assert list((site/'_static'/'mathjax').glob('tex-chtml.js')), 'MathJax is not shipped with the site'
    assert list((site/'_images').glob('*.png')), "no plot was extracted from the notebooks' outputs"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def server(site):
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), partial(_Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown()


@pytest.fixture(scope='module')
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get('CI'): pytest.fail(f'no Chromium at {CHROMIUM}: .ci/run installs Debian\'s chromium')
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        yield b
        b.close()


def _pages(site): return sorted(p.name for p in site.glob('*.html') if p.name not in ('genindex.html',))


_WAIT_MATH = "async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise; return true; }"
_READ = """() => ({
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  broken_images: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
  images: document.images.length,
  math: document.querySelectorAll('.math').length,
  untypeset: Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80)),
  typeset: document.querySelectorAll('mjx-container').length,
  raw_tex: (() => { const a = document.querySelector('article').cloneNode(true);
                    a.querySelectorAll('pre, code, .highlight').forEach(e => e.remove());
                    return (a.innerText.match(/\\$\\$|\\\\\\(|\\\\\\[/g) || []).length; })(),
})"""


@pytest.fixture(scope='module')
def visited(site, server, browser):
    "Every page, opened in Chromium: what it logged, asked for and shows."
    res = {}
    for name in _pages(site):
        page, errors, outside = browser.new_page(), [], []
        page.on('console', lambda m, e=errors: m.type == 'error' and e.append(m.text))
        page.on('pageerror', lambda exc, e=errors: e.append(str(exc)))
        page.on('requestfailed', lambda r, e=errors: e.append(f'request failed: {r.url}'))
        page.on('response', lambda r, e=errors: r.status >= 400 and e.append(f'{r.status}: {r.url}'))
        page.on('request', lambda r, o=outside: not r.url.startswith(server) and not r.url.startswith('data:') and o.append(r.url))
        page.goto(server + name, wait_until='load')
        page.evaluate(_WAIT_MATH)
        res[name] = dict(page.evaluate(_READ), errors=errors, outside=outside)
        page.close()
    return res


def test_pages_load_cleanly(visited):
    assert len(visited) > 15
    bad = {n: v['errors'] for n, v in visited.items() if v['errors']}
    assert not bad, f'console errors: {bad}'
    outside = {n: v['outside'] for n, v in visited.items() if v['outside']}
    assert not outside, f'requests that leave the site (no CDN, no network): {outside}'


def test_images_decode(visited):
    assert sum(v['images'] for v in visited.values()) > 10, 'the plots are missing'
    assert visited['calibrate.html']['images'] > 0, 'the calibration notebook shows its histograms'
    bad = {n: v['broken_images'] for n, v in visited.items() if v['broken_images']}
    assert not bad, f'images that do not decode: {bad}'


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__(); self.ids = set()
    def handle_starttag(self, tag, attrs):
        self.ids.update(v for k, v in attrs if k in ('id', 'name') and v)


def _ids(site, path):
    p = _Ids(); p.feed((site/path).read_text(encoding='utf-8')); return p.ids


def test_internal_links_resolve(site, server, visited):
    links = {l for v in visited.values() for l in v['links'] if l.startswith(server)}
    assert any('quantize.html' in l for l in links) and any('export.html#export_onnx' in l for l in links)
    assert any('_src/n2d2x/' in l for l in links), "show_doc's source links point into the site"
    pages, missing = {urldefrag(l)[0] for l in links}, []
    for url in sorted(pages):
        with urlopen(url) as r: assert r.status == 200, url
    ids = {}
    for l in sorted(links):
        url, frag = urldefrag(l)
        if not frag: continue
        path = urlparse(url).path.lstrip('/') or 'index.html'
        if path.endswith('/'): path += 'index.html'
        if path not in ids: ids[path] = _ids(site, path)
        if frag not in ids[path]: missing.append(l)
    assert not missing, f'{len(missing)} links to anchors that do not exist: {missing[:20]}'


def test_maths_typeset(visited):
    cal = visited['calibrate.html']
    assert cal['math'] > 10 and cal['typeset'] >= cal['math'], cal
    with_math = [n for n, v in visited.items() if v['math']]
    assert len(with_math) > 5, with_math
    bad = {n: v['untypeset'] for n, v in visited.items() if v['untypeset']}
    assert not bad, f'maths left as TeX: {bad}'
    raw = {n: v['raw_tex'] for n, v in visited.items() if v['raw_tex']}
    assert not raw, f'TeX delimiters ($$, \\(, \\[) left in the text: {raw}'


def test_search_finds_export_onnx(server, browser):
    page = browser.new_page()
    page.goto(server + 'search.html?q=export_onnx', wait_until='load')
    page.wait_for_function("document.querySelectorAll('#search-results li a').length > 0", timeout=30_000)
    hrefs = page.eval_on_selector_all('#search-results li a', 'as => as.map(a => a.getAttribute("href"))')
    page.close()
    assert any(h.split('#')[0].endswith('export.html') for h in hrefs), hrefs


_MODELS = {'lenet_float': 'Conv', 'lenet_int8': 'ConvInteger', 'lenet_int8_implicit': 'ConvInteger', 'lenet_int8_fake': 'Conv'}

@pytest.mark.parametrize('model', list(_MODELS))
def test_netron_opens_example_models(site, server, browser, model):
    "netron's own page (it forbids eval: read through locators only) draws the model's graph, offline, with no error."
    assert (site/'netron'/'models'/f'{model}.onnx').is_file()
    page, errors, outside = browser.new_page(), [], []
    page.on('console', lambda m: m.type == 'error' and errors.append(m.text))
    page.on('pageerror', lambda exc: errors.append(str(exc)))
    page.on('response', lambda r: r.status >= 400 and errors.append(f'{r.status}: {r.url}'))
    page.on('request', lambda r: not r.url.startswith(server) and not r.url.startswith(('data:', 'blob:')) and outside.append(r.url))
    page.goto(server + f'netron/index.html?url=models/{model}.onnx', wait_until='load')
    page.wait_for_selector('svg .node', timeout=30_000)
    for _ in range(100):   # netron names the page after the model once the graph is drawn: on a busy machine, a moment later
        if page.title() == f'{model}.onnx': break
        page.wait_for_timeout(100)
    nodes, title = page.locator('svg .node').count(), page.title()
    has_op = page.get_by_text(_MODELS[model], exact=True).count()
    page.close()
    assert title == f'{model}.onnx' and nodes > 10 and has_op, (title, nodes, has_op)
    assert not errors and not outside, (errors, outside)


def test_explore_page_links_the_viewer(visited, server):
    links = visited['explore.html']['links']
    for model in _MODELS: assert server + f'netron/index.html?url=models/{model}.onnx' in links, model
