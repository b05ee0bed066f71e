"""Models: the pyhf-shaped ``Model`` and ``model.config`` over a compiled
gradfit model (HistFactory, or a combination of parts from HS3 files and NSBI
workspaces). Every number comes from the library."""

import json
import os

import numpy as np

from . import _core
from ._util import vector
from .exceptions import InvalidInput

Data = _core.Data


def _set_name(name):
    return name.split("[", 1)[0]


class ModelConfig:
    """The parameter table of a model, with pyhf's names (``model.config``)."""

    def __init__(self, core):
        self._core = core
        self.par_names = list(core.par_names)
        self.npars = len(self.par_names)
        self.poi_index = core.poi_index
        self.poi_name = None if self.poi_index is None else self.par_names[self.poi_index]
        # parameter sets in model order: name -> slice
        self._slices = {}
        order = []
        for i, n in enumerate(self.par_names):
            s = _set_name(n)
            if s in self._slices:
                self._slices[s] = slice(self._slices[s].start, i + 1)
            else:
                self._slices[s] = slice(i, i + 1)
                order.append(s)
        self.par_order = order
        self.parameters = sorted(order)
        chans = core.channels
        self.channels = [c for c, _ in chans]
        self.channel_nbins = {c: n for c, n in chans}
        self.samples = list(core.samples)
        self.nmaindata = core.n_main
        self.nauxdata = core.n_aux

    def suggested_init(self):
        """Suggested initial values (a list of floats, as pyhf)."""
        return [float(x) for x in self._core.init]

    def suggested_bounds(self):
        """Suggested bounds, one (lo, hi) pair per parameter."""
        return [tuple(b) for b in self._core.bounds]

    def suggested_fixed(self):
        """Suggested fixed flags."""
        return list(self._core.fixed)

    def par_slice(self, name):
        """The slice of parameter set ``name`` (``NAME`` or a per-bin set) in the parameter vector."""
        if name in self._slices:
            return self._slices[name]
        if name in self.par_names:
            i = self.par_names.index(name)
            return slice(i, i + 1)
        # the library's message (with close names)
        _core.par_index(self._core, name)
        raise InvalidInput(f"no parameter named '{name}'")

    def par_index(self, name):
        """Index of a parameter by its full name (``NAME`` or ``NAME[i]``)."""
        return _core.par_index(self._core, name)

    @property
    def auxdata(self):
        """The observed aux data (binned models)."""
        if self.nmaindata is None:
            return None
        return [float(x) for x in self._core.observed_vector()[self.nmaindata:]]


class Model:
    """A compiled model. Build it with ``Workspace(spec).model(...)`` or
    ``Model.from_file(path)`` (pyhf JSON, HS3, NSBI workspaces: the command
    line's loader decides by content)."""

    def __init__(self, core, workspace=None):
        if not isinstance(core, _core.Model):
            raise InvalidInput("Model(...) wraps a compiled model; use Workspace(spec).model() or Model.from_file(path)")
        self._core = core
        self.config = ModelConfig(core)
        self._workspace = workspace

    @classmethod
    def from_file(cls, path, patches=None, measurement_name=None, modifier_settings=None,
                  bounds=None, allow_negative_yields=False):
        """Load any input the command line reads (a pyhf workspace, an HS3 file,
        a workspace with unbinned channels) from ``path``."""
        from .workspace import Workspace

        return Workspace(os.fspath(path)).model(
            measurement_name=measurement_name, patches=patches,
            modifier_settings=modifier_settings, bounds=bounds,
            allow_negative_yields=allow_negative_yields)

    # -- identity -----------------------------------------------------------
    @property
    def kind(self):
        """``"histfactory"`` for a pyhf workspace, ``"combined"`` otherwise."""
        return self._core.kind

    @property
    def digest(self):
        """The digest toy runs record (the command line's, for the same input)."""
        return self._core.digest

    @property
    def label(self):
        return self._core.label

    def describe(self):
        """``gradfit inspect``'s description, as a dict."""
        return json.loads(self._core.describe())

    def __repr__(self):
        return f"<gradfit.Model {self.kind} '{self.label}': {self.config.npars} parameters, POI {self.config.poi_name}>"

    def __reduce__(self):
        return (_rebuild, self._core.recipe())

    # -- data ---------------------------------------------------------------
    def _pars(self, pars, what="pars"):
        return vector(pars, self.config.npars, what)

    def _data(self, data):
        """Data for the core: a checked float64 vector for binned models, or a Data object."""
        if isinstance(data, _core.Data):
            return data
        if self.kind != "histfactory":
            raise InvalidInput(
                f"data: '{self.label}' is not a binned (pyhf) model; pass workspace.data(model) "
                "(a gradfit Data object), not an array")
        n = self.config.nmaindata + self.config.nauxdata
        return vector(data, n, "data")

    def observed_data(self, include_auxdata=True):
        """The observed data: a float64 vector for binned models (main, then aux
        data), a ``Data`` object otherwise."""
        if self.kind != "histfactory":
            return self._core.observed()
        v = self._core.observed_vector()
        return v if include_auxdata else v[: self.config.nmaindata]

    def asimov_data(self, pars):
        """The Asimov data at ``pars`` (a ``Data`` object; ``.vector()`` gives the numbers of binned models)."""
        return self._core.asimov_data(self._pars(pars))

    # -- likelihood -----------------------------------------------------------
    def twice_nll(self, pars, data, grad=False, hessian=False):
        """twice the negative log-likelihood (all constants included, so that
        ``logpdf == -twice_nll / 2``); with ``grad``/``hessian`` returns
        ``(value, gradient, hessian)`` (None where not asked)."""
        f, g, h = self._core.twice_nll(self._pars(pars), self._data(data), grad, hessian)
        if grad or hessian:
            return f, g, h
        return f

    def logpdf(self, pars, data):
        """log-likelihood as pyhf returns it: an array of shape (1,)."""
        f, _, _ = self._core.twice_nll(self._pars(pars), self._data(data), False, False)
        return np.array([-0.5 * f])

    def expected_data(self, pars, include_auxdata=True):
        """Expected main data, followed by the expected aux data when ``include_auxdata``."""
        return self._core.expected_data(self._pars(pars), include_auxdata)

    def expected_actualdata(self, pars):
        """Expected main data."""
        return self._core.expected_data(self._pars(pars), False)

    def expected_auxdata(self, pars):
        """Expected aux data."""
        return self._core.expected_auxdata(self._pars(pars))

    def expected_sample_data(self, pars):
        """Expected yield per sample (``config.samples`` order) and main bin, shape ``[samples, bins]``."""
        return self._core.expected_sample_data(self._pars(pars))


def _rebuild(spec, source, patches, measurement, interp, bounds, allow_negative_yields):
    core = _core.load_model(spec, source, patches, measurement, interp, bounds, allow_negative_yields)
    return Model(core)
