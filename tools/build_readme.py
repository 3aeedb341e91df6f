"""Write README.md from the landing page notebook, `nbs/index.ipynb` (settings.ini's `readme_nb`): `python tools/build_readme.py`.

nbdev's `nbdev_readme` does this with quarto (`quarto render index.ipynb -t gfm`), which cannot be installed on these
machines; this script renders the same notebook to GitHub markdown the same way, here: markdown cells as they are,
code cells in ```python fences with their text outputs below them (a markdown output, such as a table, as markdown),
`#| hide` cells left out and `#|` directives removed. Links to a notebook (`[11_export](11_export.ipynb)`, right on the
docs site, where the notebooks are pages) are made `nbs/11_export.ipynb`, where the notebooks are in the repository.

`python tools/build_readme.py --check` writes nothing and exits 1 when README.md is not the rendering of the notebook
(`tests/test_docs.py` runs it): the README is edited in `nbs/index.ipynb`, never by hand.
"""
import argparse, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_NB_LINK = re.compile(r'(\]\(|href=")(?![a-z]+:|/|#|nbs/)([\w.-]+\.ipynb)')


def _text(x): return x if isinstance(x, str) else ''.join(x)


def _directives(src):
    "(the `#|` directives of a code cell, its source without them)."
    lines = src.split('\n')
    keys = [l[3:].strip() for l in lines if l.startswith('#|')]
    return keys, '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')


def _outputs(cell):
    "The markdown of a code cell's outputs: markdown as it is, text in a plain fence; images are left to the docs site."
    out = []
    for o in cell.get('outputs', []):
        if o['output_type'] == 'stream': out.append(f"```\n{_text(o['text']).rstrip()}\n```")
        elif o['output_type'] in ('execute_result', 'display_data'):
            data = o.get('data', {})
            if 'text/markdown' in data: out.append(_text(data['text/markdown']).strip('\n'))
            elif 'text/plain' in data and not any(k.startswith('image/') for k in data): out.append(f"```\n{_text(data['text/plain']).rstrip()}\n```")
    return out


def render(nb_path):
    "README.md's text: the notebook's cells in GitHub markdown."
    parts = []
    for cell in json.loads(Path(nb_path).read_text())['cells']:
        src = _text(cell['source'])
        if cell['cell_type'] == 'markdown':
            parts.append(_NB_LINK.sub(r'\1nbs/\2', src.strip('\n')))
        elif cell['cell_type'] == 'code':
            keys, code = _directives(src)
            if any(k.split(':')[0].strip() in ('hide', 'export', 'exporti') for k in keys): continue
            if code: parts.append(f"```python\n{code}\n```")
            parts += _outputs(cell)
    return '\n\n'.join(p for p in parts if p) + '\n'


def _readme_nb():
    from configparser import ConfigParser
    cfg = ConfigParser(); cfg.read(ROOT / 'settings.ini')
    return ROOT / cfg['DEFAULT'].get('nbs_path', 'nbs') / cfg['DEFAULT'].get('readme_nb', 'index.ipynb')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--check', action='store_true', help='write nothing; exit 1 when README.md is not the rendering of the notebook')
    a = p.parse_args()
    nb, readme = _readme_nb(), ROOT / 'README.md'
    text = render(nb)
    if a.check:
        if readme.read_text() != text:
            sys.exit(f"README.md is not the rendering of {nb.relative_to(ROOT)}: edit the notebook, then run python tools/build_readme.py")
        print(f"README.md is the rendering of {nb.relative_to(ROOT)}")
    else:
        readme.write_text(text); print(f"wrote README.md from {nb.relative_to(ROOT)}")
