"""The toy row of bench/unbinned_compare.py for the Python peers.

It repeats the work of `gradfit toys MODEL --mu MU --n N` (test statistic
qtilde) on the toy model of the harness: an extended Gaussian (peak position
and width const) + exponential on [60, 120]; free parameters nsig (the POI),
nbkg and c. Like gradfit, each peer

1. fits the observed data twice, with the POI fixed at MU (the parameters
   that generate the signal-plus-background toys) and fixed at 0 (background
   toys);
2. for each hypothesis draws N toys (a Poisson total, events from the model at
   that hypothesis' parameters) and fits each toy twice, free and with the POI
   fixed at MU, both starting from the generation point, without errors
   (gradfit computes no covariance in `toys`);
3. where the free fit of a toy has mu_hat < 0, fits it a third time with the
   POI fixed at 0, starting from the free fit's point with the POI set to 0
   (gradfit's qtilde compares with the best fit at mu >= 0, as for the
   observed data);
4. records per toy mu_hat, t = max(twice_nll_fixed - twice_nll_free, 0) and
   gradfit's toy statistic: 0 where mu_hat > MU, else
   max(twice_nll_fixed - twice_nll_ref, 0), twice_nll_ref being the fit at 0
   where mu_hat < 0 and the free fit otherwise (a toy whose fit at 0 fails has
   no statistic, as in gradfit).

Sampling is part of the timed work for every tool (gradfit and NextStat
sample inside their commands): zfit with its own sampler
(`create_sampler` + `resample`, the route of zfit's toy-study docs, the loss
built once on the sampler), iminuit + numba-stats with numpy (Poisson total,
binomial split, truncated Gaussian by rejection, exponential by inverse CDF).
Both are timed warm: one untimed pass over a few toys first builds zfit's
graph / compiles the numba cost function.
"""

import math
import time

import numpy as np

LO, HI = 60.0, 120.0


def summary(sig_bkg, bkg):
    """Mean/std of mu_hat, t, the statistic and t - statistic per hypothesis; records are (mu_hat, t, stat or None).

    t - statistic is what the fit at 0 (toys with mu_hat < 0) and the clipping
    at mu_hat > MU take off t: a paired, low-noise check of the statistic."""
    out = {}
    for name, recs in (("sig_bkg", sig_bkg), ("bkg", bkg)):
        ok = [r for r in recs if r[2] is not None and math.isfinite(r[0])]
        mh = np.array([r[0] for r in ok])
        t = np.array([r[1] for r in ok])
        q = np.array([r[2] for r in ok])
        out[name] = {"n": len(ok), "n_failed": len(recs) - len(ok),
                     "mu_hat_mean": float(mh.mean()), "mu_hat_std": float(mh.std(ddof=1)),
                     "t_mean": float(t.mean()), "t_std": float(t.std(ddof=1)),
                     "stat_mean": float(q.mean()), "stat_std": float(q.std(ddof=1)),
                     "t_minus_stat_mean": float((t - q).mean()), "t_minus_stat_std": float((t - q).std(ddof=1))}
    return out


def record(mu, mu_hat, twice_free, twice_fixed, ok, twice_zero=None):
    """(mu_hat, t, statistic or None); `twice_zero`: twice_nll of the fit at 0 of a toy with mu_hat < 0."""
    t = max(twice_fixed - twice_free, 0.0)
    q = max(twice_fixed - (twice_free if twice_zero is None else twice_zero), 0.0)
    return (float(mu_hat), float(t), (0.0 if mu_hat > mu else float(q)) if ok else None)


def gradfit_records(run):
    """Records of a gradfit toy-run file (its `sig_bkg` and `bkg` lists)."""
    def conv(r):
        return (r["mu_hat"], max(r["twice_nll_fixed"] - r["twice_nll_free"], 0.0), r["stat"])
    return [conv(r) for r in run["sig_bkg"]], [conv(r) for r in run["bkg"]]


def agreement(ref, other):
    """z-scores of `other` against `ref` (two summaries of independent toys)."""
    z = {}
    for h in ("sig_bkg", "bkg"):
        a, b = ref[h], other[h]
        se_mean = math.hypot(a["mu_hat_std"] / math.sqrt(a["n"]), b["mu_hat_std"] / math.sqrt(b["n"]))
        # std of a sample std: sigma / sqrt(2 (n - 1)) (normal approximation)
        se_std = math.hypot(a["mu_hat_std"] / math.sqrt(2 * (a["n"] - 1)), b["mu_hat_std"] / math.sqrt(2 * (b["n"] - 1)))
        se_t = math.hypot(a["t_std"] / math.sqrt(a["n"]), b["t_std"] / math.sqrt(b["n"]))
        se_q = math.hypot(a["stat_std"] / math.sqrt(a["n"]), b["stat_std"] / math.sqrt(b["n"]))
        se_d = math.hypot(a["t_minus_stat_std"] / math.sqrt(a["n"]), b["t_minus_stat_std"] / math.sqrt(b["n"]))
        z[h] = {"mu_hat_mean": (b["mu_hat_mean"] - a["mu_hat_mean"]) / se_mean,
                "mu_hat_std": (b["mu_hat_std"] - a["mu_hat_std"]) / se_std,
                "t_mean": (b["t_mean"] - a["t_mean"]) / se_t if se_t > 0 else 0.0,
                "stat_mean": (b["stat_mean"] - a["stat_mean"]) / se_q if se_q > 0 else 0.0,
                "t_minus_stat_mean": (b["t_minus_stat_mean"] - a["t_minus_stat_mean"]) / se_d if se_d > 0 else 0.0}
    return z


def best_of(run, n_toys, repeats):
    """Best wall time of `repeats` calls of run(n_toys), with the last call's results."""
    best = math.inf
    for _ in range(max(repeats, 1)):
        t = time.perf_counter()
        gens, hyps = run(n_toys)
        best = min(best, time.perf_counter() - t)
    return best, gens, hyps


# ---------------------------------------------------------------- iminuit


def iminuit_toys(x_obs, mu, n_toys, shape, start, seed, repeats=1, warm_toys=3):
    """iminuit + numba-stats; returns (best seconds of `repeats`, generation points, records per hypothesis)."""
    import numba as nb
    from iminuit import Minuit
    from numba_stats import truncexpon, truncnorm

    m0, s0 = shape

    @nb.njit(cache=False)
    def twice_nll(x, nsig, nbkg, c):
        s = truncnorm.pdf(x, LO, HI, m0, s0)
        b = truncexpon.pdf(x, LO, HI, LO, 1.0 / c)
        return 2.0 * (nsig + nbkg) - 2.0 * np.sum(np.log(nsig * s + nbkg * b))

    def fit(x, init, fixed_poi=None):
        m = Minuit(lambda nsig, nbkg, c: twice_nll(x, nsig, nbkg, c), *init, name=("nsig", "nbkg", "c"))
        m.errordef = Minuit.LEAST_SQUARES  # twice the NLL: errordef 1
        m.limits["nbkg"] = (0.0, None)
        m.limits["c"] = (1e-4, 1.0)  # numba-stats' truncexpon takes the scale 1/c
        if fixed_poi is not None:
            m.values["nsig"] = fixed_poi
            m.fixed["nsig"] = True
        m.migrad()
        return m

    def sample(rng, nsig, nbkg, c):
        n = rng.poisson(nsig + nbkg)
        ns = rng.binomial(n, nsig / (nsig + nbkg))
        xs = np.empty(0)
        while len(xs) < ns:
            g = rng.normal(m0, s0, size=2 * ns)
            xs = np.concatenate([xs, g[(g >= LO) & (g <= HI)]])
        u = rng.uniform(size=n - ns)
        xb = LO - np.log1p(u * np.expm1(-c * (HI - LO))) / c
        return np.concatenate([xs[:ns], xb])

    def run(n):
        rng = np.random.Generator(np.random.PCG64(seed))
        gens = []
        for poi in (mu, 0.0):
            m = fit(x_obs, start, fixed_poi=poi)
            gens.append((poi, m.values["nbkg"], m.values["c"]))
        hyps = []
        for g in gens:
            recs = []
            for _ in range(n):
                x = sample(rng, *g)
                f = fit(x, g)
                fx = fit(x, g, fixed_poi=mu)
                ok, zero = f.valid and fx.valid, None
                if f.valid and f.values["nsig"] < 0:
                    # qtilde: the fit at 0, from the free fit's point
                    f0 = fit(x, (0.0, f.values["nbkg"], f.values["c"]), fixed_poi=0.0)
                    ok, zero = ok and f0.valid, f0.fval
                recs.append(record(mu, f.values["nsig"], f.fval, fx.fval, ok, zero))
            hyps.append(recs)
        return gens, hyps

    run(warm_toys)  # compile
    return best_of(run, n_toys, repeats)


# ---------------------------------------------------------------- zfit


def zfit_toys(x_obs, mu, n_toys, shape, start, repeats=1, warm_toys=3):
    """zfit; returns (best seconds of `repeats`, generation points, records per hypothesis)."""
    import zfit

    obs = zfit.Space("mass", limits=(LO, HI))
    pm = zfit.Parameter("toy_mu", shape[0], floating=False)
    ps = zfit.Parameter("toy_sigma", shape[1], floating=False)
    nsig = zfit.Parameter("toy_nsig", start[0], -1e7, 1e8)
    nbkg = zfit.Parameter("toy_nbkg", start[1], 0, 1e8)
    lam = zfit.Parameter("toy_lam", -start[2], -1, 1)  # zfit's exponential is exp(lam x): lam = -c
    model = zfit.pdf.SumPDF([zfit.pdf.Gauss(mu=pm, sigma=ps, obs=obs, extended=nsig),
                             zfit.pdf.Exponential(lam=lam, obs=obs, extended=nbkg)])
    minimizer = zfit.minimize.Minuit()
    free, nuis = [nsig, nbkg, lam], [nbkg, lam]
    loss_obs = zfit.loss.ExtendedUnbinnedNLL(model=model, data=zfit.Data.from_numpy(obs=obs, array=x_obs))
    sampler = model.create_sampler()  # extended: Poisson yields per component
    loss = zfit.loss.ExtendedUnbinnedNLL(model=model, data=sampler)

    def fit(lo, init, fixed_poi=None):
        nsig.set_value(init[0] if fixed_poi is None else fixed_poi)
        nbkg.set_value(init[1])
        lam.set_value(-init[2])
        r = minimizer.minimize(lo, params=free if fixed_poi is None else nuis)
        return r

    def run(n):
        gens = []
        for poi in (mu, 0.0):
            r = fit(loss_obs, start, fixed_poi=poi)
            gens.append((poi, float(r.params[nbkg]["value"]), -float(r.params[lam]["value"])))
        hyps = []
        for g in gens:
            recs = []
            for _ in range(n):
                sampler.resample(params={nsig: g[0], nbkg: g[1], lam: -g[2]})
                f = fit(loss, g)
                fx = fit(loss, g, fixed_poi=mu)
                ok, zero = f.valid and fx.valid, None
                if f.valid and f.params[nsig]["value"] < 0:
                    # qtilde: the fit at 0, from the free fit's point
                    f0 = fit(loss, (0.0, f.params[nbkg]["value"], -f.params[lam]["value"]), fixed_poi=0.0)
                    ok, zero = ok and f0.valid, 2 * f0.fmin
                recs.append(record(mu, f.params[nsig]["value"], 2 * f.fmin, 2 * fx.fmin, ok, zero))
            hyps.append(recs)
        return gens, hyps

    run(warm_toys)  # graph building
    return best_of(run, n_toys, repeats)
