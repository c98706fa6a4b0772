"""Build the strata Python package: the _strata extension (the library's
sources from src/sources.txt, compiled in, and python/src) and the
pure-Python package in python/strata. Offline, with Debian's tools:

    /usr/bin/python3 -m pip install --no-build-isolation .

One abi3 binary serves Python 3.11 and later."""

import glob
import os
import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def library_sources():
    """The library's sources, as CMakeLists.txt reads them (layer, then path)."""
    out = []
    with open(os.path.join(HERE, "src", "sources.txt")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            layer, path = line.split()
            if layer != "mpi":   # libstrata_mpi's own layer (needs Open MPI): not in the package
                out.append(path)
    return out


def version():
    with open(os.path.join(HERE, "CMakeLists.txt")) as f:
        for line in f:
            if line.startswith("project(strata VERSION"):
                return line.split()[2]
    raise RuntimeError("cannot find the version in CMakeLists.txt")


class BuildPyWithHeaders(build_py):
    """Ship include/strata/*.h in the package: ChipCallable.compile builds
    chip callables against them."""

    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "strata", "include", "strata")
        os.makedirs(dest, exist_ok=True)
        for h in glob.glob(os.path.join(HERE, "include", "strata", "*.h")):
            shutil.copy(h, dest)


class BuildExtWithLibrary(build_ext):
    """Compile the library's sources (with the library's own macros and hidden
    visibility) and link every object into the extension, not only those it
    calls: chip callables loaded from shared objects resolve strata_chip_submit
    and friends against the extension's exports."""

    def build_extension(self, ext):
        objects = self.compiler.compile(
            library_sources(), output_dir=self.build_temp,
            macros=[("STRATA_BUILDING_LIBRARY", None), ("_POSIX_C_SOURCE", "200809L")],
            include_dirs=["include", "src"], extra_postargs=["-std=c11", "-fvisibility=hidden"],
            depends=glob.glob("src/**/*.h", recursive=True) + glob.glob("include/strata/*.h"))
        ext.extra_objects = list(objects) + list(ext.extra_objects or [])
        super().build_extension(ext)


extension = Extension(
    "strata._strata",
    sources=sorted(glob.glob("python/src/*.c")),
    include_dirs=["include"],
    extra_compile_args=["-std=c11", "-fvisibility=hidden"],
    libraries=["dl", "pthread"],
    py_limited_api=True,
)

setup(
    name="strata",
    version=version(),
    description="A hierarchical task runtime for accelerator stacks",
    packages=["strata"],
    package_dir={"": "python"},
    ext_modules=[extension],
    cmdclass={"build_py": BuildPyWithHeaders, "build_ext": BuildExtWithLibrary},
    install_requires=["numpy"],
    python_requires=">=3.11",
    # build-setuptools/, not build/: that is the CMake build tree.
    options={"bdist_wheel": {"py_limited_api": "cp311"}, "build": {"build_base": "build-setuptools"}},
)
