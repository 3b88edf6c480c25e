# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
"""imdd-mm: an OpenMMLab plugin for open-vocabulary industrial defect
understanding (IMDD-1M)."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    scope = {}
    with open(osp.join(HERE, 'imdd_mm', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(name: str) -> list:
    """Read ``requirements/<name>.txt`` without comments or blank lines."""
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


if __name__ == '__main__':
    setup(
        name='imdd_mm',
        version=get_version(),
        description='Open-vocabulary industrial defect understanding '
        '(IMDD-1M) on MMDetection and MMSegmentation',
        long_description=open(osp.join(HERE, 'README.md')).read(),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.9',
        packages=find_packages(include=['imdd_mm', 'imdd_mm.*']),
        include_package_data=True,
        package_data={'imdd_mm.vocab': ['data/*']},
        install_requires=parse_requirements('runtime'),
        extras_require={
            'torch': parse_requirements('torch'),
            'mim': parse_requirements('mminstall'),
            'tests': parse_requirements('tests'),
            'all': parse_requirements('torch') +
            parse_requirements('mminstall') + parse_requirements('tests'),
        },
        classifiers=[
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False)
