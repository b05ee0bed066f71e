"""gradfit: exact, fast HistFactory statistics from the gradfit Rust library,
with pyhf's API (``import gradfit as pyhf`` runs most pyhf scripts), a PyTorch
layer for training through fits (``gradfit.torch``) and toys on Dask
(``gradfit.dask``). Every number comes from the library, so Python and the
``gradfit`` command line give the same results."""

from . import _core
from ._core import __version__
from . import exceptions
from .model import Data, Model, ModelConfig
from .workspace import Patch, PatchSet, Workspace
from . import infer, report, simplemodels, toys


def set_backend(backend="numpy", *args, **kwargs):
    """Accepted for pyhf scripts: gradfit has one backend (float64 numpy arrays in and out)."""
    return None


def get_backend():
    """pyhf's ``(tensorlib, optimizer)``: numpy and gradfit's Newton minimiser."""
    import numpy

    return numpy, "gradfit"


__all__ = [
    "Workspace", "PatchSet", "Patch", "Model", "ModelConfig", "Data",
    "infer", "report", "simplemodels", "toys", "exceptions", "set_backend", "get_backend",
    "__version__",
]
