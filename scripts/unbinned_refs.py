#!/usr/bin/env python3
"""References for the unbinned tests (tests/unbinned.rs), written to tests/refs/unbinned/.

Independent of gradfit's code:
- densities of every shape from scipy.stats or numpy closed forms, normalised
  with scipy.integrate.quad where scipy has no truncated form;
- four fits on data generated here with numpy (extended Gaussian + exponential;
  double-sided Crystal Ball + Chebychev with a signal fraction and inline shape
  numbers; a two-dimensional product with a Gaussian constraint; weighted
  events), minimised with iminuit (MIGRAD + HESSE) on twice_nll written out with
  numpy/scipy; the models and data are written as HS3 files for gradfit to read;
- pyhs3's -2 log L of the shared HS3 files it can evaluate (needs GRADFIT_SHARED
  or ../shared), at the initial point and at a shifted point.

Run with a venv that has numpy, scipy, iminuit and pyhs3 (PyPI):
    python3 -m venv .venv && .venv/bin/pip install numpy scipy iminuit pyhs3
    .venv/bin/python scripts/unbinned_refs.py
The outputs are committed; `cargo test` needs no Python.
"""

import json
import math
import os
import sys
import warnings

import numpy as np
from iminuit import Minuit
from scipy import integrate, special, stats

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "refs", "unbinned")
LN2PI = math.log(2 * math.pi)


def dump(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------- densities


def dscb_f(x, m0, sl, sr, al, nl, ar, nr):
    """The HS3 text's double-sided Crystal Ball (unnormalised), scalar x."""
    tl, tr = (x - m0) / sl, (x - m0) / sr
    if tl < -al:
        a = (nl / al) ** nl * math.exp(-al * al / 2)
        return a * (nl / al - al - tl) ** (-nl)
    if tl <= 0:
        return math.exp(-tl * tl / 2)
    if tr <= ar:
        return math.exp(-tr * tr / 2)
    a = (nr / ar) ** nr * math.exp(-ar * ar / 2)
    return a * (nr / ar - ar + tr) ** (-nr)


def dscb_norm(lo, hi, p):
    m0, sl, sr, al, nl, ar, nr = p
    pts = [q for q in (m0 - al * sl, m0, m0 + ar * sr) if lo < q < hi]
    v, _ = integrate.quad(lambda x: dscb_f(x, *p), lo, hi, points=pts or None, epsabs=0, epsrel=2e-14, limit=500)
    return v


def density_cases():
    cases = []

    def add(shape, params, lo, hi, logpdf):
        xs = list(np.linspace(lo, hi, 23)[1:-1] + 0.013 * (hi - lo))
        xs = [x for x in xs if lo < x < hi]
        cases.append({"shape": shape, "params": params, "lo": lo, "hi": hi, "x": xs,
                      "logpdf": [float(logpdf(x)) for x in xs]})

    mu, s, lo, hi = 91.0, 2.5, 60.0, 120.0
    tn = stats.truncnorm((lo - mu) / s, (hi - mu) / s, loc=mu, scale=s)
    add("gaussian", [mu, s], lo, hi, tn.logpdf)
    mu, s, lo, hi = 5.5, 0.7, -1.0, 4.0
    tn2 = stats.truncnorm((lo - mu) / s, (hi - mu) / s, loc=mu, scale=s)
    add("gaussian", [mu, s], lo, hi, tn2.logpdf)
    c, lo, hi = 0.035, 60.0, 120.0
    te = stats.truncexpon(b=(hi - lo) * c, loc=lo, scale=1 / c)
    add("exponential", [c], lo, hi, te.logpdf)
    c, lo, hi = -0.4, 0.0, 10.0  # rising: exp(0.4 x) / int
    add("exponential", [c], lo, hi, lambda x: -c * x - math.log((math.exp(-c * hi) - math.exp(-c * lo)) / -c))
    m, s, lo, hi = 1.2, 0.6, 0.5, 20.0
    ln = stats.lognorm(s=s, scale=math.exp(m))
    add("lognormal", [m, s], lo, hi, lambda x: ln.logpdf(x) - math.log(ln.cdf(hi) - ln.cdf(lo)))
    m0, sg, al, n, lo, hi = 5.28, 0.03, 1.4, 3.2, 5.0, 6.0
    cb = stats.crystalball(beta=al, m=n, loc=m0, scale=sg)
    add("crystalball", [m0, sg, al, n], lo, hi, lambda x: cb.logpdf(x) - math.log(cb.cdf(hi) - cb.cdf(lo)))
    p, lo, hi = [91.0, 2.3, 3.1, 1.2, 2.5, 1.6, 5.0], 60.0, 120.0
    nn = dscb_norm(lo, hi, p)
    add("crystalball_doublesided", p, lo, hi, lambda x: math.log(dscb_f(x, *p) / nn))
    a, lo, hi = [0.3, -0.2, 0.1], 0.0, 10.0
    cheb = np.polynomial.Chebyshev([1.0] + a, domain=[lo, hi])
    ci = cheb.integ()
    add("chebychev", a, lo, hi, lambda x: math.log(cheb(x) / (ci(hi) - ci(lo))))
    cs, lo, hi = [1.0, 0.4, 2.0, 0.7], -2.0, 3.0
    from scipy.interpolate import BPoly
    bp = BPoly(np.array(cs).reshape(-1, 1), [lo, hi])
    add("bernstein", cs, lo, hi, lambda x: math.log(bp(x) / bp.integrate(lo, hi)))
    a, lo, hi = [2.0, -0.3, 0.12], 1.0, 4.0
    pol = np.polynomial.Polynomial(a)
    pi_ = pol.integ()
    add("polynomial", a, lo, hi, lambda x: math.log(pol(x) / (pi_(hi) - pi_(lo))))
    lam = 4.5
    cases.append({"shape": "poisson", "params": [lam], "lo": 0.0, "hi": 50.0, "x": [0.0, 1.0, 3.0, 7.0, 15.0],
                  "logpdf": [float(stats.poisson.logpmf(k, lam)) for k in (0, 1, 3, 7, 15)]})
    return cases


# ---------------------------------------------------------------- fits


def gauss_norm(mu, s, lo, hi):
    k = 1 / math.sqrt(2)
    return s * math.sqrt(math.pi / 2) * (special.erf((hi - mu) / s * k) - special.erf((lo - mu) / s * k))


def expo_ln(x, c, lo, hi):
    """ln of exp(-c x) normalised on [lo, hi]."""
    l = hi - lo
    return -c * (x - lo) - math.log(-math.expm1(-c * l) / c)


def fit(nll, start, limits, fixed=()):
    m = Minuit(nll, **start)
    m.errordef = 1.0  # twice_nll
    for k, v in limits.items():
        m.limits[k] = v
    for k in fixed:
        m.fixed[k] = True
    m.strategy = 2
    m.tol = 1e-7
    m.migrad(ncall=100000)
    m.migrad(ncall=100000)
    m.hesse()
    assert m.valid, m
    return m


def num_errors(nll, m, names):
    """Errors sqrt(diag(2 H^-1)) from a numerical Hessian of twice_nll at the minimum:
    central differences with steps h = 0.005 and 0.01 error, Richardson-extrapolated
    (iminuit's HESSE is good to about 1e-3 only, the tolerance being tested)."""
    v = np.array([m.values[k] for k in names])
    e = np.array([m.errors[k] for k in names])
    n = len(v)

    def hess(scale):
        h = scale * e
        out = np.zeros((n, n))
        f0 = nll(*v)
        for i in range(n):
            for j in range(i, n):
                def f(di, dj):
                    x = v.copy()
                    x[i] += di * h[i]
                    x[j] += dj * h[j]
                    return nll(*x)
                if i == j:
                    d = (f(1, 0) - 2 * f0 + f(-1, 0)) / (h[i] * h[i])
                    d = (-f(2, 0) + 16 * f(1, 0) - 30 * f0 + 16 * f(-1, 0) - f(-2, 0)) / (12 * h[i] * h[i])
                else:
                    d = (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1)) / (4 * h[i] * h[j])
                out[i, j] = out[j, i] = d
        return out

    h1, h2 = hess(0.005), hess(0.01)
    hh = (4 * h1 - h2) / 3
    cov = 2 * np.linalg.inv(hh)
    return [float(math.sqrt(cov[i, i])) for i in range(n)]


def hs3_file(dists, funcs, data, lk, domains, points, analysis):
    return {"metadata": {"hs3_version": "0.2", "packages": [{"name": "gradfit-refs", "version": "1"}]},
            "distributions": dists, "functions": funcs, "data": data, "likelihoods": [lk],
            "domains": [{"name": "dom", "type": "product_domain", "axes": domains}],
            "parameter_points": [{"name": "default_values", "parameters": points}],
            "analyses": [analysis]}


def axis(name, lo, hi):
    return {"name": name, "min": lo, "max": hi}


def sample_gauss(rng, n, mu, s, lo, hi):
    out = []
    while len(out) < n:
        x = rng.normal(mu, s, size=2 * n)
        out.extend(x[(x >= lo) & (x <= hi)].tolist())
    return np.array(out[:n])


def sample_expo(rng, n, c, lo, hi):
    u = rng.uniform(size=n)
    return lo - np.log1p(u * np.expm1(-c * (hi - lo))) / c


def model_gauss_expo(name, seed, weighted):
    lo, hi = 60.0, 120.0
    rng = np.random.Generator(np.random.PCG64(seed))
    ns, nb = rng.poisson(1000), rng.poisson(4000)
    x = np.concatenate([sample_gauss(rng, ns, 91.0, 2.5, lo, hi), sample_expo(rng, nb, 0.035, lo, hi)])
    rng.shuffle(x)
    w = rng.uniform(0.5, 1.5, size=len(x)) if weighted else np.ones(len(x))
    sw = float(np.sum(w))

    def per_event(nsig, nbkg, mu, sigma, c):
        g = np.exp(-0.5 * ((x - mu) / sigma) ** 2) / gauss_norm(mu, sigma, lo, hi)
        e = np.exp(-c * (x - lo)) / (-math.expm1(-c * (hi - lo)) / c)
        return np.log(nsig * g + nbkg * e)

    def nll(nsig, nbkg, mu, sigma, c):
        return 2 * (nsig + nbkg) - 2 * np.sum(w * per_event(nsig, nbkg, mu, sigma, c)) + 2 * math.lgamma(sw + 1)

    start = {"nsig": 900.0, "nbkg": 4100.0, "mu": 90.0, "sigma": 3.0, "c": 0.03}
    m = fit(nll, start, {"nsig": (0, 1e5), "nbkg": (0, 1e5), "mu": (60, 120), "sigma": (0.1, 20), "c": (-1, 1)})
    names = list(start)
    res = {"par_names": names, "values": [m.values[k] for k in names], "errors": num_errors(nll, m, names), "errors_hesse": [m.errors[k] for k in names],
           "twice_nll": float(nll(*[m.values[k] for k in names]))}
    if weighted:
        # asymptotic covariance C = H^-1 D H^-1 (H: Hessian of -ln L = 2 (2 cov)^-1 ... in twice_nll units)
        v = np.array([m.values[k] for k in names])
        cov = np.array(m.covariance)  # 2 H2^-1 = H^-1 of -ln L
        grads = []
        for i in range(len(v)):
            h = 1e-6 * max(abs(v[i]), 1e-3)
            vp, vm = v.copy(), v.copy()
            vp[i] += h
            vm[i] -= h
            grads.append((per_event(*vp) - per_event(*vm)) / (2 * h))
        g = np.array(grads)  # n_par x n_events
        d = (g * w * w) @ g.T
        c_asym = cov @ d @ cov
        res["errors_asymptotic"] = [float(math.sqrt(c_asym[i, i])) for i in range(len(v))]
    dists = [
        {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": True},
        {"name": "sig", "type": "gaussian_dist", "x": "mass", "mean": "mu", "sigma": "sigma"},
        {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"},
    ]
    data = {"name": "events", "type": "unbinned", "axes": [axis("mass", lo, hi)], "entries": [[float(v)] for v in x]}
    if weighted:
        data["weights"] = [float(v) for v in w]
    doms = [axis("nsig", 0, 1e5), axis("nbkg", 0, 1e5), axis("mu", 60, 120), axis("sigma", 0.1, 20), axis("c", -1, 1)]
    pts = [{"name": k, "value": v} for k, v in start.items()]
    doc = hs3_file(dists, [], [data], {"name": "L", "distributions": ["model"], "data": ["events"]}, doms, pts,
                   {"name": "A", "likelihood": "L", "domains": ["dom"], "parameters_of_interest": ["nsig"], "init": "default_values"})
    dump(f"{name}.json", doc)
    return res


def model_dscb_cheb(seed):
    lo, hi = 60.0, 120.0
    rng = np.random.Generator(np.random.PCG64(seed))
    n = 4000
    truth = dict(frac=0.3, m0=91.0, sl=2.0, sr=2.6, al=1.3, nl=3.0, a1=-0.25, a2=0.05)
    ar, nr = 1.8, 4.0  # inline numbers
    nsig = rng.binomial(n, truth["frac"])
    sig = []
    p = [truth["m0"], truth["sl"], truth["sr"], truth["al"], truth["nl"], ar, nr]
    while len(sig) < nsig:
        xs = rng.uniform(lo, hi, size=4 * nsig)
        us = rng.uniform(size=4 * nsig)
        sig.extend(xs[us <= np.array([dscb_f(x, *p) for x in xs])].tolist())
    cheb_t = np.polynomial.Chebyshev([1.0, truth["a1"], truth["a2"]], domain=[lo, hi])
    bkg = []
    fmax = 1 + abs(truth["a1"]) + abs(truth["a2"])
    while len(bkg) < n - nsig:
        xs = rng.uniform(lo, hi, size=4 * n)
        us = rng.uniform(size=4 * n) * fmax
        bkg.extend(xs[us <= cheb_t(xs)].tolist())
    x = np.concatenate([sig[:nsig], bkg[: n - nsig]])
    rng.shuffle(x)

    def nll(frac, m0, sl, sr, al, nl, a1, a2):
        pp = [m0, sl, sr, al, nl, ar, nr]
        nn = dscb_norm(lo, hi, pp)
        f = np.array([dscb_f(v, *pp) for v in x]) / nn
        ch = np.polynomial.Chebyshev([1.0, a1, a2], domain=[lo, hi])
        ci = ch.integ()
        b = ch(x) / (ci(hi) - ci(lo))
        return -2 * np.sum(np.log(frac * f + (1 - frac) * b))

    def exact_errors(v):
        """sqrt(diag(2 H^-1)) with H the exact Hessian of twice_nll from pytensor's
        symbolic derivatives of a closed form written here (the density has a kink
        in its second derivative at the tail junctions, so any finite-step Hessian
        differs from the pointwise one by the events the step moves across)."""
        import pytensor
        import pytensor.tensor as pt
        th = pt.dvector("th")
        frac, m0, sl, sr, al, nl, a1, a2 = [th[i] for i in range(8)]
        xs = pt.constant(x)
        tl, tr = (xs - m0) / sl, (xs - m0) / sr
        bl, br = nl / al - al, nr / ar - ar
        lal = nl * pt.log(nl / al) - al * al / 2
        lar = nr * np.log(nr / ar) - ar * ar / 2
        safe = lambda u: pt.switch(u > 0, u, 1.0)
        lf = pt.switch(tl < -al, lal - nl * pt.log(safe(bl - tl)),
                       pt.switch(tl <= 0, -tl * tl / 2, pt.switch(tr <= ar, -tr * tr / 2, lar - nr * pt.log(safe(br + tr)))))
        tlo, thi = (lo - m0) / sl, (hi - m0) / sr
        k = math.sqrt(math.pi / 2)
        norm = (sl * pt.exp(lal) / (nl - 1) * ((bl + al) ** (1 - nl) - (bl - tlo) ** (1 - nl))
                + sl * k * pt.erf(al / math.sqrt(2)) + sr * k * pt.erf(ar / math.sqrt(2))
                + sr * math.exp(lar) / (nr - 1) * ((br + ar) ** (1 - nr) - (br + thi) ** (1 - nr)))
        z = 2 * (xs - lo) / (hi - lo) - 1
        lb = pt.log(1 + a1 * z + a2 * (2 * z * z - 1)) - pt.log((hi - lo) * (1 - a2 / 3))
        nll_t = -2 * pt.sum(pt.log(frac * pt.exp(lf - pt.log(norm)) + (1 - frac) * pt.exp(lb)))
        fn = pytensor.function([th], [nll_t, pt.hessian(nll_t, th), norm])
        val, h, nv = fn(np.array(v))
        pp = [v[1], v[2], v[3], v[4], v[5], ar, nr]
        assert lo < v[1] - v[4] * v[2] and v[1] + ar * v[3] < hi
        assert abs(nv / dscb_norm(lo, hi, pp) - 1) < 1e-12, (nv, dscb_norm(lo, hi, pp))
        assert abs(val - nll(*v)) < 1e-6 * abs(val), (val, nll(*v))
        cov = 2 * np.linalg.inv(h)
        return [float(math.sqrt(cov[i, i])) for i in range(8)]

    start = {"frac": 0.25, "m0": 90.5, "sl": 2.2, "sr": 2.4, "al": 1.5, "nl": 2.5, "a1": -0.2, "a2": 0.0}
    lim = {"frac": (0, 1), "m0": (80, 100), "sl": (0.5, 10), "sr": (0.5, 10), "al": (0.2, 5), "nl": (1.01, 20), "a1": (-1, 1), "a2": (-1, 1)}
    m = fit(nll, start, lim)
    names = list(start)
    vals = [m.values[k] for k in names]
    res = {"par_names": names, "values": vals, "errors": exact_errors(vals), "errors_hesse": [m.errors[k] for k in names],
           "twice_nll": float(nll(*vals))}
    dists = [
        {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["frac"], "extended": False},
        {"name": "sig", "type": "crystalball_doublesided_dist", "m": "mass", "m0": "m0", "sigma_L": "sl", "sigma_R": "sr",
         "alpha_L": "al", "n_L": "nl", "alpha_R": ar, "n_R": nr},
        {"name": "bkg", "type": "chebychev_dist", "x": "mass", "coefficients": ["a1", "a2"]},
    ]
    data = {"name": "events", "type": "unbinned", "axes": [axis("mass", lo, hi)], "entries": [[float(v)] for v in x]}
    doms = [axis(k, *v) for k, v in lim.items()]
    pts = [{"name": k, "value": v} for k, v in start.items()]
    doc = hs3_file(dists, [], [data], {"name": "L", "distributions": ["model"], "data": ["events"]}, doms, pts,
                   {"name": "A", "likelihood": "L", "domains": ["dom"], "parameters_of_interest": ["frac"], "init": "default_values"})
    dump("dscb_cheb.json", doc)
    return res


def model_product_2d(seed):
    (xl, xh), (yl, yh) = (0.0, 10.0), (-5.0, 5.0)
    rng = np.random.Generator(np.random.PCG64(seed))
    ns, nb = rng.poisson(600), rng.poisson(1400)
    sx_true, theta_true = 0.8 * (1 + 0.05 * 0.4), 0.4
    xs = np.concatenate([sample_gauss(rng, ns, 4.0, sx_true, xl, xh), sample_expo(rng, nb, 0.3, xl, xh)])
    ys = np.concatenate([sample_gauss(rng, ns, 0.5, 1.5, yl, yh), rng.uniform(yl, yh, size=nb)])
    perm = rng.permutation(len(xs))
    xs, ys = xs[perm], ys[perm]
    nom_theta = 0.0
    n = len(xs)

    def nll(nsig, nbkg, mx, my, sy, c, theta):
        sx = 0.8 * (1 + 0.05 * theta)
        gx = np.exp(-0.5 * ((xs - mx) / sx) ** 2) / gauss_norm(mx, sx, xl, xh)
        gy = np.exp(-0.5 * ((ys - my) / sy) ** 2) / gauss_norm(my, sy, yl, yh)
        ex = np.exp(-c * (xs - xl)) / (-math.expm1(-c * (xh - xl)) / c)
        uy = 1 / (yh - yl)
        main = 2 * (nsig + nbkg) - 2 * np.sum(np.log(nsig * gx * gy + nbkg * ex * uy)) + 2 * math.lgamma(n + 1)
        return main + (nom_theta - theta) ** 2 + LN2PI

    start = {"nsig": 500.0, "nbkg": 1500.0, "mx": 4.2, "my": 0.3, "sy": 1.3, "c": 0.25, "theta": 0.0}
    lim = {"nsig": (0, 1e4), "nbkg": (0, 1e4), "mx": (0, 10), "my": (-5, 5), "sy": (0.1, 5), "c": (-2, 2), "theta": (-5, 5)}
    m = fit(nll, start, lim)
    names = list(start)
    res = {"par_names": names, "values": [m.values[k] for k in names], "errors": num_errors(nll, m, names), "errors_hesse": [m.errors[k] for k in names],
           "twice_nll": float(nll(*[m.values[k] for k in names]))}
    dists = [
        {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": True},
        {"name": "sig", "type": "product_dist", "factors": ["sig_x", "sig_y"]},
        {"name": "bkg", "type": "product_dist", "factors": ["bkg_x", "bkg_y"]},
        {"name": "sig_x", "type": "gaussian_dist", "x": "x", "mean": "mx", "sigma": "sx"},
        {"name": "sig_y", "type": "gaussian_dist", "x": "y", "mean": "my", "sigma": "sy"},
        {"name": "bkg_x", "type": "exponential_dist", "x": "x", "c": "c"},
        {"name": "bkg_y", "type": "uniform_dist", "x": "y"},
        {"name": "constr_theta", "type": "gaussian_dist", "x": "nom_theta", "mean": "theta", "sigma": 1.0},
    ]
    funcs = [{"name": "sx", "type": "generic_function", "expression": "0.8 * (1 + 0.05 * theta)"}]
    data = {"name": "events", "type": "unbinned", "axes": [axis("y", yl, yh), axis("x", xl, xh)],
            "entries": [[float(b), float(a)] for a, b in zip(xs, ys)]}
    doms = [axis(k, *v) for k, v in lim.items()]
    pts = [{"name": k, "value": v} for k, v in start.items()] + [{"name": "nom_theta", "value": nom_theta, "const": True}]
    doc = hs3_file(dists, funcs, [data], {"name": "L", "distributions": ["model"], "data": ["events"], "aux_distributions": ["constr_theta"]},
                   doms, pts, {"name": "A", "likelihood": "L", "domains": ["dom"], "parameters_of_interest": ["nsig"], "init": "default_values"})
    dump("product_2d.json", doc)
    return res


# ---------------------------------------------------------------- pyhs3


def pyhs3_refs(shared):
    import pyhs3
    import pytensor
    from pytensor.graph.traversal import graph_inputs

    out = []

    def evaluate(d, analysis, shift):
        ws = pyhs3.Workspace(**d)
        an = [a for a in ws.analyses if a.name == analysis][0]
        m = ws.model(an, progress=False)
        lp = m.log_prob
        inputs = [v for v in graph_inputs([lp]) if v.name is not None and not isinstance(v, pytensor.graph.basic.Constant)]
        fn = pytensor.function(inputs, -2 * lp, on_unused_input="ignore")
        pp = {p["name"]: p["value"] for p in d["parameter_points"][0]["parameters"]}
        # global observables (variables of aux distributions) keep their value
        lname = [a for a in d["analyses"] if a["name"] == analysis][0]["likelihood"]
        lk = [l for l in d["likelihoods"] if l["name"] == lname][0]
        dists = {x["name"]: x for x in d["distributions"]}
        globs = {dists[a].get("x") for a in lk.get("aux_distributions", [])}
        point = {}
        args = []
        for i in inputs:
            if i.name in m.data:
                args.append(np.asarray(m.data[i.name]))
                continue
            v = pp[i.name]
            if shift and i.name in m.free_params and i.name not in globs:
                v = v + shift * (0.5 + abs(v) * 0.1)
            point[i.name] = float(v)
            args.append(np.asarray(v, dtype=float))
        return float(np.asarray(fn(*args)).reshape(-1)[0]), point

    files = [
        ("pyhs3-benchmarks-1ch.json", None, ["L_ch0"]),
        ("pyhs3-benchmarks-3ch.json", None, ["L_ch0", "L_ch1", "L_ch2"]),
        ("hs3testsuite-rf304_uncorrprod.json", "gaussxy", ["A"]),
    ]
    for fname, add_dist, analyses in files:
        with open(os.path.join(shared, "hs3", fname)) as f:
            d = json.load(f)
        note = ""
        if add_dist:
            # the file has no likelihood: pair its data with the distribution, as gradfit does
            d["likelihoods"] = [{"name": "L", "distributions": [add_dist], "data": [d["data"][0]["name"]]}]
            d["analyses"] = [{"name": "A", "likelihood": "L", "domains": [d["domains"][0]["name"]], "init": d["parameter_points"][0]["name"]}]
            note = f"likelihood added for pyhs3: {add_dist} with data {d['data'][0]['name']}"
        for an in analyses:
            for shift in (0.0, 0.3):
                v, point = evaluate(d, an, shift)
                out.append({"file": fname, "analysis": an if not add_dist else None, "params": point,
                            "minus2logL_pyhs3": v, "note": note})
    return out


def pyhf_histfactory_refs(shared):
    """twice_nll of the shared histfactory_dist file from pyhf, through a pyhf
    workspace written here from the HS3 channel (shapesys: HS3's relative
    uncertainties times the nominal contents; gammas named as ROOT names them)."""
    import pyhf

    fname = "pyhs3-simplemodel_uncorrelated-background_hs3.json"
    with open(os.path.join(shared, "hs3", fname)) as f:
        d = json.load(f)
    ch = d["distributions"][0]
    obs = [x for x in d["data"] if x["name"] == "obsData_singlechannel"][0]["contents"]
    samples = []
    for smp in ch["samples"]:
        nom = smp["data"]["contents"]
        mods = []
        for m in smp["modifiers"]:
            if m["type"] == "normfactor":
                mods.append({"name": m["parameter"], "type": "normfactor", "data": None})
            elif m["type"] == "shapesys":
                mods.append({"name": m["name"], "type": "shapesys", "data": [v * n for v, n in zip(m["data"]["vals"], nom)]})
            else:
                raise ValueError(m["type"])
        samples.append({"name": smp["name"], "data": nom, "modifiers": mods})
    ws = pyhf.Workspace({"channels": [{"name": ch["name"], "samples": samples}],
                         "observations": [{"name": ch["name"], "data": obs}],
                         "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
                             {"name": "Lumi", "fixed": True, "inits": [1.0], "bounds": [[0.0, 10.0]]}]}}],
                         "version": "1.0.0"})
    model = ws.model()
    data = ws.data(model)
    out = []
    for point in ({"Lumi": 1.0, "mu": 1.0, "g0": 1.0, "g1": 1.0}, {"Lumi": 1.0, "mu": 1.3, "g0": 0.95, "g1": 1.1}):
        pars = model.config.suggested_init()
        names = {"Lumi": "Lumi", "mu": "mu"}
        for k, v in names.items():
            pars[model.config.par_slice(v).start] = point[k]
        sl = model.config.par_slice("uncorr_bkguncrt")
        pars[sl.start] = point["g0"]
        pars[sl.start + 1] = point["g1"]
        v = float(-2 * model.logpdf(pars, data)[0])
        out.append({"file": fname, "analysis": "simPdf_obsData",
                    "params": {"Lumi": point["Lumi"], "mu": point["mu"], "gamma_uncorr_bkguncrt_bin_0": point["g0"],
                               "gamma_uncorr_bkguncrt_bin_1": point["g1"]},
                    "twice_nll_pyhf": v})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    warnings.simplefilter("ignore")
    refs = {"generated_by": "scripts/unbinned_refs.py", "densities": density_cases()}
    refs["fits"] = {
        "gauss_expo": model_gauss_expo("gauss_expo", 101, False),
        "dscb_cheb": model_dscb_cheb(202),
        "product_2d": model_product_2d(303),
        "weighted": model_gauss_expo("weighted", 404, True),
    }
    shared = os.environ.get("GRADFIT_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    try:
        refs["pyhs3"] = pyhs3_refs(shared)
    except ImportError as e:
        print(f"pyhs3 not available ({e}); no pyhs3 references", file=sys.stderr)
        refs["pyhs3"] = []
    try:
        refs["pyhf_histfactory"] = pyhf_histfactory_refs(shared)
    except ImportError as e:
        print(f"pyhf not available ({e})", file=sys.stderr)
        refs["pyhf_histfactory"] = []
    dump("refs.json", refs)
    print("wrote", os.path.abspath(OUT))


if __name__ == "__main__":
    main()
