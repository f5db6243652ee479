"""Builds the optional C++ filter extension; all metadata lives in pyproject.toml.

`sievedb_server._native_filter` lets hnswlib's filtered search test labels without calling
back into Python (see server/sievedb_server/index/_native_filter.cpp). It is optional: without
a compiler, or without pybind11, the install still succeeds and sievedb uses a Python callback.
"""

from setuptools import Extension, setup

try:
    import pybind11

    ext_modules = [
        Extension(
            "sievedb_server._native_filter",
            ["server/sievedb_server/index/_native_filter.cpp"],
            include_dirs=[pybind11.get_include()],
            language="c++",
            extra_compile_args=["-std=c++17", "-O2", "-fvisibility=hidden"],
            optional=True,
        )
    ]
except ImportError:  # no pybind11 in the build environment: pure-Python install
    ext_modules = []

setup(ext_modules=ext_modules)
