"""Package metadata is read from settings.ini, the one file nbdev and pip share."""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(), long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'], license='Apache-2.0',
    url=cfg['git_url'], project_urls={'Source': cfg['git_url']},
    classifiers=['Programming Language :: Python :: 3', 'Topic :: Scientific/Engineering :: Artificial Intelligence'],
    keywords=cfg['keywords'].split(), python_requires='>=' + cfg['min_python'],
    packages=setuptools.find_packages(include=['n2d2x', 'n2d2x.*']), include_package_data=True,
    package_data={'n2d2x': ['models/*.ini', 'models/**/*', 'data/**/*']},
    install_requires=cfg['requirements'].split(), extras_require={'dev': cfg['dev_requirements'].split()},
    entry_points={'console_scripts': cfg['console_scripts'].split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False)
