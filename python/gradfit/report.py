"""Pulls, impacts (Hessian and refit ranking), yields and correlations at the
best fit to the observed data: ``gradfit pulls``, ``impacts``, ``yields`` and
``corr`` as numpy arrays and dicts; plots with matplotlib where it is installed."""

import numpy as np

from . import _core


def pulls(model, max_iter=500):
    """Per parameter: ``value``, ``error``, ``prefit_sigma``, ``nominal``, ``pull``,
    ``pull_error`` (nan where undefined), ``constraint``, ``fixed``."""
    return _core.pulls(model._core, max_iter)


def impacts(model, refit=True, max_iter=500):
    """Impacts on the POI, ranked by the largest post-fit impact: ``ranking`` is
    a list of dicts (``name``, ``hessian``, ``hessian_prefit``, and with
    ``refit`` ``refit_prefit_up``, ``refit_prefit_down``, ``refit_postfit_up``,
    ``refit_postfit_down``)."""
    return _core.impacts(model._core, bool(refit), max_iter)


def ranking(model, max_iter=500):
    """The refit ranking: (names, post-fit up impacts, post-fit down impacts) as arrays, largest first."""
    r = impacts(model, True, max_iter)["ranking"]
    names = [x["name"] for x in r]
    up = np.array([x["refit_postfit_up"] for x in r])
    down = np.array([x["refit_postfit_down"] for x in r])
    return names, up, down


def yields(model, prefit=True, postfit=True, max_iter=500):
    """Yields per channel, sample and bin with uncertainties (binned models)."""
    return _core.yields(model._core, bool(prefit), bool(postfit), max_iter)


def correlation(model, max_iter=500):
    """The correlation and covariance matrices at the best fit."""
    return _core.correlation(model._core, max_iter)


def plot_pulls(model, ax=None):
    """Pulls as a matplotlib figure (needs matplotlib)."""
    import matplotlib.pyplot as plt

    p = pulls(model)
    keep = ~np.isnan(p["pull"])
    names = [n for n, k in zip(p["par_names"], keep) if k]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 0.3 * len(names) + 1))
    y = np.arange(len(names))
    ax.axvspan(-2, 2, color="#ffff99")
    ax.axvspan(-1, 1, color="#99ff99")
    ax.errorbar(p["pull"][keep], y, xerr=p["pull_error"][keep], fmt="ko")
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.set_xlabel(r"$(\hat\theta - \theta_0) / \Delta\theta$")
    fig.tight_layout()
    return fig


def plot_ranking(model, top=20, ax=None):
    """The refit ranking as a matplotlib figure (needs matplotlib)."""
    import matplotlib.pyplot as plt

    names, up, down = ranking(model)
    names, up, down = names[:top][::-1], up[:top][::-1], down[:top][::-1]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 0.3 * len(names) + 1))
    y = np.arange(len(names))
    ax.barh(y, up, color="none", edgecolor="tab:blue", label="+1 sigma post-fit")
    ax.barh(y, down, color="none", edgecolor="tab:orange", label="-1 sigma post-fit")
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.set_xlabel(r"$\Delta\hat\mu$")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_scan(scan, ax=None):
    """A profile-likelihood scan (the dict ``gradfit.infer.scan`` returns) as a
    matplotlib figure: delta(-2 ln L) against the parameter (needs matplotlib)."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    ax.plot(scan["values"], scan["delta_twice_nll"], "k.-")
    for level in (1.0, 4.0):
        ax.axhline(level, color="grey", ls="--", lw=0.8)
    ax.set_xlabel(scan["parameter"])
    ax.set_ylabel(r"$-2\Delta\ln L$")
    fig.tight_layout()
    return fig


__all__ = ["pulls", "impacts", "ranking", "yields", "correlation", "plot_pulls", "plot_ranking",
           "plot_scan"]
