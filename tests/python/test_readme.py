"""Every program README.md shows runs as written: each ```c block is compiled
against the build tree's library and run; each ```python block is run from the
repository root. A block that is not a program would fail here; fragments do
not belong in the README."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STRATA_BUILD_DIR", os.path.join(ROOT, "build"))


def blocks(lang):
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    return re.findall(r"```" + lang + r"\n(.*?)```", text, re.S)


def test_readme_has_programs():
    assert len(blocks("c")) >= 2 and len(blocks("python")) >= 1


@pytest.mark.parametrize("index", range(len(blocks("c"))))
def test_readme_c_program(index, tmp_path):
    src = tmp_path / f"readme_{index}.c"
    src.write_text(blocks("c")[index])
    exe = tmp_path / f"readme_{index}"
    lib = os.path.join(BUILD, "libstrata.a")
    assert os.path.exists(lib), f"build the library first ({lib})"
    cc = os.environ.get("CC", "cc")
    extra = os.environ.get("STRATA_TEST_CFLAGS", "").split()   # the sanitizers of the library's build
    r = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", *extra, "-I", os.path.join(ROOT, "include"),
                        str(src), lib, "-lpthread", "-ldl", "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_readme_python_program(index):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", blocks("python")[index]], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
