"""Maximum-likelihood fits with pyhf's signatures (``gradfit.infer.mle``)."""

import numpy as np

from .. import _core
from .._util import vector
from ..exceptions import FailedMinimization, InvalidInput


def _fixed_flags(model, fixed_params, init):
    """pyhf's list of booleans, or (gradfit) a list of names or a dict {name: value}."""
    cfg = model.config
    if fixed_params is None:
        return None, init
    if isinstance(fixed_params, dict):
        flags = list(cfg.suggested_fixed())
        init = np.array(cfg.suggested_init() if init is None else init, dtype=np.float64)
        for name, value in fixed_params.items():
            i = cfg.par_index(name)
            flags[i] = True
            try:
                init[i] = float(value)
            except (TypeError, ValueError):
                raise InvalidInput(f"fixed_params[{name!r}]: {value!r} is not a number") from None
        return flags, init
    try:
        items = list(fixed_params)
    except TypeError:
        raise InvalidInput(
            f"fixed_params: expected {cfg.npars} booleans, parameter names or {{name: value}}, "
            f"got {type(fixed_params).__name__}") from None
    if items and all(isinstance(x, str) for x in items):
        flags = list(cfg.suggested_fixed())
        for name in items:
            flags[cfg.par_index(name)] = True
        return flags, init
    if len(items) != cfg.npars:
        raise InvalidInput(
            f"fixed_params: expected {cfg.npars} booleans (or parameter names), got {len(items)} entries")
    flags = []
    for k, x in enumerate(items):
        if isinstance(x, (bool, np.bool_)) or x in (0, 1):
            flags.append(bool(x))
        else:
            raise InvalidInput(f"fixed_params[{k}]: expected a boolean, got {x!r}")
    return flags, init


def _spec(model, init_pars, par_bounds, fixed_params):
    cfg = model.config
    flags, init_pars = _fixed_flags(model, fixed_params, init_pars)
    init = None if init_pars is None else vector(init_pars, cfg.npars, "init_pars")
    bounds = None
    if par_bounds is not None:
        b = np.asarray(par_bounds, dtype=object)
        try:
            b = np.asarray(par_bounds, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput("par_bounds: expected (lo, hi) pairs of numbers") from None
        if b.shape != (cfg.npars, 2):
            raise InvalidInput(f"par_bounds: expected shape ({cfg.npars}, 2), got {b.shape}")
        bounds = [(float(lo), float(hi)) for lo, hi in b]
    return (init, bounds, flags)


def _run(data, model, init_pars, par_bounds, fixed_params, poi_value, return_uncertainties,
         return_fitted_val, return_correlations, max_iter=500):
    r = _core.fit(model._core, model._data(data), _spec(model, init_pars, par_bounds, fixed_params),
                  poi_value, max_iter, bool(return_uncertainties or return_correlations),
                  bool(return_correlations))
    if not r["converged"]:
        # the command line's message; the last point's numbers as attributes
        e = FailedMinimization(f"the fit did not converge: {r['message']}")
        e.twice_nll, e.iterations, e.x = r["twice_nll"], r["iterations"], r["x"]
        raise e
    x = r["x"]
    if return_uncertainties:
        x = np.stack([x, r["errors"]], axis=-1)
    out = [x]
    if return_correlations:
        out.append(r["correlation"])
    if return_fitted_val:
        out.append(np.asarray(r["twice_nll"]))
    return tuple(out) if len(out) > 1 else out[0]


def fit(data, pdf, init_pars=None, par_bounds=None, fixed_params=None, return_uncertainties=False,
        return_fitted_val=False, return_correlations=False, max_iter=500, **kwargs):
    """Free fit, as ``pyhf.infer.mle.fit``: the best-fit parameters, stacked with
    their uncertainties when ``return_uncertainties`` (shape ``[npars, 2]``),
    then the correlation matrix and twice_nll at the minimum when asked.
    ``fixed_params`` may also be a list of parameter names or ``{name: value}``.
    Raises ``FailedMinimization`` when the fit does not converge."""
    _ignore(kwargs)
    return _run(data, pdf, init_pars, par_bounds, fixed_params, None, return_uncertainties,
                return_fitted_val, return_correlations, max_iter)


def fixed_poi_fit(poi_val, data, pdf, init_pars=None, par_bounds=None, fixed_params=None,
                  return_uncertainties=False, return_fitted_val=False, return_correlations=False,
                  max_iter=500, **kwargs):
    """Fit with the POI fixed at ``poi_val``, as ``pyhf.infer.mle.fixed_poi_fit``."""
    _ignore(kwargs)
    if pdf.config.poi_index is None:
        raise InvalidInput("fixed_poi_fit: the model has no parameter of interest")
    return _run(data, pdf, init_pars, par_bounds, fixed_params, float(poi_val), return_uncertainties,
                return_fitted_val, return_correlations, max_iter)


def twice_nll(pars, data, pdf):
    """twice the negative log-likelihood (pyhf's objective)."""
    return np.asarray([pdf.twice_nll(pars, data)])


_IGNORED = {"return_result_obj", "do_grad", "do_stitch", "method", "solver_options", "tolerance", "strategy"}


def _ignore(kwargs):
    unknown = set(kwargs) - _IGNORED
    if unknown:
        raise InvalidInput(f"unknown fit arguments: {sorted(unknown)}")
    if kwargs.get("return_result_obj"):
        raise InvalidInput("return_result_obj is not supported (gradfit has no scipy result object)")


__all__ = ["fit", "fixed_poi_fit", "twice_nll"]
