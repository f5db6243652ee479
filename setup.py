"""Builds the optional C++ extensions; all metadata lives in pyproject.toml.

* `sievedb_server._native_filter` lets hnswlib's filtered search test labels without calling
  back into Python (server/sievedb_server/index/_native_filter.cpp);
* `sievedb_server._native_scan` scores the allowed rows of an exact search in place, without
  gathering them (server/sievedb_server/index/_native_scan.cpp).

Both are optional: without a compiler, or without pybind11, the install still succeeds and
sievedb uses a Python callback and numpy instead.
"""

from setuptools import Extension, setup

try:
    import pybind11

    ext_modules = [
        Extension(
            f"sievedb_server._native_{name}",
            [f"server/sievedb_server/index/_native_{name}.cpp"],
            include_dirs=[pybind11.get_include()],
            language="c++",
            # -O3 vectorises the scan's independent partial sums (no -ffast-math needed).
            extra_compile_args=["-std=c++17", "-O3", "-fvisibility=hidden"],
            optional=True,
        )
        for name in ("filter", "scan")
    ]
except ImportError:  # no pybind11 in the build environment: pure-Python install
    ext_modules = []

setup(ext_modules=ext_modules)
