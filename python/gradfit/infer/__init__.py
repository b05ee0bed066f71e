"""Inference with pyhf's signatures: ``hypotest``, ``mle``, ``intervals``;
plus ``discovery`` and ``scan``. The numbers are the library's (the same as
``gradfit cls``, ``limit``, ``discovery``, ``scan``)."""

import numpy as np

from .. import _core
from .._util import scalar, vector, warn_all
from ..exceptions import InvalidInput
from . import intervals, mle
from .mle import _spec

_HYPOTEST_KW = {"test_stat", "ntoys", "seed", "track_progress", "batch", "threads"}


def hypotest(poi_test, data, pdf, init_pars=None, par_bounds=None, fixed_params=None,
             calctype="asymptotics", return_tail_probs=False, return_expected=False,
             return_expected_set=False, return_calculator=False, **kwargs):
    """CLs at ``poi_test``, as ``pyhf.infer.hypotest``: the observed CLs, then
    ``[CLs+b, CLb]`` (``return_tail_probs``), the median expected CLs
    (``return_expected``) and the band -2..+2 sigma (``return_expected_set``).
    For ``test_stat="q0"`` the p-value p0 (CLs+b) takes CLs's place, as pyhf.
    ``calctype="toybased"`` runs ``ntoys`` (default 2000) toys per hypothesis
    with ``seed`` (default 0)."""
    unknown = set(kwargs) - _HYPOTEST_KW
    if unknown:
        raise InvalidInput(f"hypotest: unknown arguments {sorted(unknown)}")
    if return_calculator:
        raise InvalidInput("hypotest: return_calculator is not supported (gradfit's calculators live in Rust)")
    test_stat = kwargs.get("test_stat", "qtilde")
    r = _core.hypotest(
        pdf._core, pdf._data(data), float(poi_test), test_stat,
        _spec(pdf, init_pars, par_bounds, fixed_params), calctype,
        int(kwargs.get("ntoys", 2000)), int(kwargs.get("seed", 0)), int(kwargs.get("batch", 512)),
        kwargs.get("threads"))
    warn_all(r["warnings"])
    is_q0 = r["test_stat"] == "q0"
    out = [scalar(r["cls_obs"])]
    if return_tail_probs:
        out.append([scalar(r["clb_obs"])] if is_q0 else [scalar(r["clsb_obs"]), scalar(r["clb_obs"])])
    band = [scalar(x) for x in r["cls_exp"]]
    if return_expected_set:
        if return_expected:
            out.append(band[2])
        out.append(band)
    elif return_expected:
        out.append(band[2])
    return tuple(out) if len(out) > 1 else out[0]


def hypotest_result(poi_test, data, pdf, init_pars=None, par_bounds=None, fixed_params=None,
                    calctype="asymptotics", **kwargs):
    """Everything the hypothesis test computes, as a dict (``gradfit cls --json``'s keys)."""
    r = _core.hypotest(
        pdf._core, pdf._data(data), float(poi_test), kwargs.get("test_stat", "qtilde"),
        _spec(pdf, init_pars, par_bounds, fixed_params), calctype,
        int(kwargs.get("ntoys", 2000)), int(kwargs.get("seed", 0)), int(kwargs.get("batch", 512)),
        kwargs.get("threads"))
    warn_all(r.pop("warnings"))
    return r


def discovery(data, pdf, init_pars=None, par_bounds=None, fixed_params=None):
    """Discovery p-value and significance from q0 (asymptotic): a dict with
    ``p0_obs``, ``p0_exp``, ``z_obs``, ``z_exp``, ``q0_obs``, ``q0_asimov``, ``mu_hat``."""
    return _core.discovery(pdf._core, pdf._data(data), _spec(pdf, init_pars, par_bounds, fixed_params))


def scan(data, pdf, values, par_name=None, init_pars=None, par_bounds=None, fixed_params=None):
    """Profile-likelihood scan of ``par_name`` (default: the POI) over ``values``:
    a dict with ``values``, ``twice_nll``, ``delta_twice_nll``, ``converged``,
    ``pars`` (one row per point), ``best_value``, ``best_twice_nll``."""
    cfg = pdf.config
    if par_name is None:
        if cfg.poi_index is None:
            raise InvalidInput("scan: the model has no POI; give par_name")
        idx = cfg.poi_index
    else:
        idx = cfg.par_index(par_name)
    r = _core.scan(pdf._core, pdf._data(data), idx, vector(values, None, "values"),
                   _spec(pdf, init_pars, par_bounds, fixed_params))
    warn_all(r["messages"])
    return r


__all__ = ["hypotest", "hypotest_result", "discovery", "scan", "mle", "intervals"]
