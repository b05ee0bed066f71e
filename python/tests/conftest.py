"""Shared fixtures: paths to the repository's example workspaces, and a
runner for the pyhf-style scripts that swaps ``import pyhf`` for gradfit."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "workspaces"
SCRIPTS = pathlib.Path(__file__).resolve().parent / "pyhf_scripts"


@pytest.fixture
def two_channel():
    return str(EXAMPLES / "two-channel.json")


@pytest.fixture
def patchset_path():
    return str(EXAMPLES / "two-channel.patchset.json")


def run_script(name, engine, *args):
    """Run ``pyhf_scripts/NAME.py`` with pyhf, or with gradfit by swapping its import line."""
    path = SCRIPTS / f"{name}.py"
    src = path.read_text()
    if engine == "gradfit":
        assert src.startswith("import pyhf\n"), f"{path} must start with 'import pyhf'"
        src = src.replace("import pyhf\n", "import gradfit as pyhf\n", 1)
    ns = {"__name__": f"script_{name}_{engine}"}
    exec(compile(src, str(path), "exec"), ns)
    return ns["run"](*args)


def gradfit_bin():
    """The gradfit command line: $GRADFIT_BIN, else target/release/gradfit (never skipped)."""
    b = os.environ.get("GRADFIT_BIN") or str(ROOT / "target" / "release" / "gradfit")
    if not os.path.exists(b):
        raise RuntimeError(
            f"the gradfit binary is needed for the CLI parity tests: {b} does not exist "
            "(cargo build --release, or set GRADFIT_BIN)")
    return b
