from setuptools import find_packages, setup

from registryd import __version__

setup(
    name="registryd",
    version=__version__,
    description="An OCI Distribution 1.1 / Docker Registry V2 server on Twisted",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/registryd_plugin.py"]},
    install_requires=[
        "twisted[tls]>=24.7",
        "klein>=24.8",
        "treq>=24.9",
        "zope.interface>=6",
        "PyYAML>=6",
        "bcrypt>=4",
        "PyJWT[crypto]>=2.8",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "python-dxf>=12",
            "oras>=0.2.25",
            "hypothesis>=6",
        ],
    },
    entry_points={"console_scripts": ["registryd = registryd.cli:main"]},
)
