"""Upper limits with pyhf's signatures (``gradfit.infer.intervals.upper_limits``).

The library finds the crossings: Brent's bracketing method where pyhf uses
TOMS 748 (both converge to the same root), or linear interpolation on a scan."""

import numpy as np

from ... import _core
from ..._util import scalar, vector, warn_all
from ...exceptions import InvalidInput
from ..mle import _spec


def _limits(data, model, level, scan, bracket, init_pars=None, par_bounds=None, fixed_params=None,
            calctype="asymptotics", test_stat="qtilde", ntoys=2000, seed=0, batch=512, threads=None,
            **kwargs):
    kwargs.pop("track_progress", None)
    if kwargs:
        raise InvalidInput(f"upper_limit: unknown arguments {sorted(kwargs)}")
    grid = None if scan is None else [float(x) for x in vector(scan, None, "scan")]
    r = _core.upper_limit(model._core, model._data(data), float(level), grid, bracket, test_stat,
                          _spec(model, init_pars, par_bounds, fixed_params), calctype, int(ntoys),
                          int(seed), int(batch), threads)
    warn_all(r["messages"])
    return r


def _results(r):
    return [(scalar(c), [scalar(x) for x in e]) for c, e in zip(r["cls_obs"], r["cls_exp"])]


def upper_limit(data, model, scan=None, level=0.05, return_results=False, **hypotest_kwargs):
    """Observed and expected (-2..+2 sigma) upper limits on the POI at CL
    ``1 - level``, as ``pyhf.infer.intervals.upper_limits.upper_limit``: root
    finding within the POI's bounds, or linear interpolation on ``scan``.
    With ``return_results`` also ``(scan points, [(CLs_obs, CLs_exp band), ...])``."""
    r = _limits(data, model, level, scan, None, **hypotest_kwargs)
    obs, exp = scalar(r["obs"]), [scalar(x) for x in r["exp"]]
    if return_results:
        mu = np.asarray(r["mu"]) if scan is None else np.asarray(scan, dtype=np.float64)
        return obs, exp, (mu if scan is not None else list(r["mu"]), _results(r))
    return obs, exp


def linear_grid_scan(data, model, scan, level=0.05, return_results=False, **hypotest_kwargs):
    """Upper limits from CLs on the grid ``scan``, interpolated linearly."""
    return upper_limit(data, model, scan=scan, level=level, return_results=return_results, **hypotest_kwargs)


def toms748_scan(data, model, bounds_low, bounds_up, level=0.05, atol=2e-12, rtol=1e-4,
                 from_upper_limit_fn=False, **hypotest_kwargs):
    """Upper limits by root finding in ``[bounds_low, bounds_up]`` (Brent's method, relative tolerance 1e-9)."""
    r = _limits(data, model, level, None, (float(bounds_low), float(bounds_up)), **hypotest_kwargs)
    obs, exp = scalar(r["obs"]), [scalar(x) for x in r["exp"]]
    if from_upper_limit_fn:
        return obs, exp, (list(r["mu"]), _results(r))
    return obs, exp


def upper_limit_result(data, model, scan=None, level=0.05, **kwargs):
    """Everything the limit computes as a dict (``gradfit limit --json``'s numbers)."""
    return _limits(data, model, level, scan, None, **kwargs)


__all__ = ["upper_limit", "linear_grid_scan", "toms748_scan", "upper_limit_result"]
