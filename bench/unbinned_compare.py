#!/usr/bin/env python3
"""Unbinned fits side by side: gradfit, zfit, iminuit + numba-stats, NextStat.

Run through bench/unbinned.sh (it builds gradfit and the venv). Data are
generated here with numpy and written as Parquet; each tool fits the same
events with the same model, starting from the same point:

- gauss_expo: extended Gaussian + exponential on [60, 120], 1,000,000 events;
- dscb_expo: extended double-sided Crystal Ball (one width, two tails) +
  exponential on [60, 120], 1,000,000 events;
- toys: 1,000 toys of a 2,000-event Gaussian + exponential (peak position and
  width known), each fitted twice (free and with the signal yield fixed):
  `gradfit toys`, NextStat's `unbinned-fit-toys`, and the same work as
  gradfit's in iminuit + numba-stats and zfit (bench/unbinned_toys.py, which
  also checks that the fitted yields and test statistics agree).

`--only toys` runs the toy row alone; `--toy-peers iminuit` leaves zfit (minutes)
out of it.

Times are wall-clock seconds, best of the repeats, of a full fit with errors
(gradfit: exact Hessian covariance; iminuit/zfit: MIGRAD + HESSE; NextStat:
its unbinned-fit). "warm" means after a first fit of the same model (zfit's
graph built, numba compiled); gradfit and NextStat are measured as command-line
runs that include reading the Parquet file, and gradfit also in-process.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

LO, HI = 60.0, 120.0
TRUTH = {"mu": 91.0, "sigma": 2.5, "c": 0.03, "al": 1.3, "nl": 3.0, "ar": 1.6, "nr": 5.0}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sample_gauss(rng, n, mu, s):
    out = np.empty(0)
    while len(out) < n:
        x = rng.normal(mu, s, size=2 * n)
        out = np.concatenate([out, x[(x >= LO) & (x <= HI)]])
    return out[:n]


def sample_expo(rng, n, c):
    u = rng.uniform(size=n)
    return LO - np.log1p(u * np.expm1(-c * (HI - LO))) / c


def dscb_f(x, m0, s, al, nl, ar, nr):
    t = (x - m0) / s
    out = np.exp(-0.5 * t * t)
    left = t < -al
    right = t > ar
    out[left] = (nl / al) ** nl * np.exp(-al * al / 2) * (nl / al - al - t[left]) ** (-nl)
    out[right] = (nr / ar) ** nr * np.exp(-ar * ar / 2) * (nr / ar - ar + t[right]) ** (-nr)
    return out


def sample_dscb(rng, n):
    out = np.empty(0)
    p = (TRUTH["mu"], TRUTH["sigma"], TRUTH["al"], TRUTH["nl"], TRUTH["ar"], TRUTH["nr"])
    while len(out) < n:
        x = rng.uniform(LO, HI, size=4 * n)
        u = rng.uniform(size=4 * n)
        out = np.concatenate([out, x[u <= dscb_f(x, *p)]])
    return out[:n]


def write_parquet(path, x):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"mass": x}), path, compression="snappy")


def hs3(kind, n_events, file, toys=False):
    ns, nb = 0.2 * n_events, 0.8 * n_events
    if kind == "gauss_expo":
        sig = {"name": "sig", "type": "gaussian_dist", "x": "mass", "mean": "mu", "sigma": "sigma"}
        shape = [{"name": "mu", "value": 90.5, "const": toys}, {"name": "sigma", "value": 2.7, "const": toys}]
        if toys:
            shape = [{"name": "mu", "value": TRUTH["mu"], "const": True}, {"name": "sigma", "value": TRUTH["sigma"], "const": True}]
    else:
        sig = {"name": "sig", "type": "crystalball_doublesided_dist", "m": "mass", "m0": "mu", "sigma_L": "sigma",
               "sigma_R": "sigma", "alpha_L": "al", "n_L": "nl", "alpha_R": "ar", "n_R": "nr"}
        shape = [{"name": "mu", "value": 90.5}, {"name": "sigma", "value": 2.7}, {"name": "al", "value": 1.4},
                 {"name": "nl", "value": 2.8}, {"name": "ar", "value": 1.5}, {"name": "nr", "value": 4.5}]
    doms = [{"name": "nsig", "min": -1e7, "max": 1e8}, {"name": "nbkg", "min": 0.0, "max": 1e8},
            {"name": "mu", "min": 80.0, "max": 100.0}, {"name": "sigma", "min": 0.5, "max": 10.0},
            {"name": "c", "min": -1.0, "max": 1.0}, {"name": "al", "min": 0.3, "max": 5.0}, {"name": "nl", "min": 1.05, "max": 50.0},
            {"name": "ar", "min": 0.3, "max": 5.0}, {"name": "nr", "min": 1.05, "max": 50.0}]
    return {
        "metadata": {"hs3_version": "0.2"},
        "distributions": [
            {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": True},
            sig, {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"}],
        "data": [{"name": "events", "type": "unbinned", "axes": [{"name": "mass", "min": LO, "max": HI}], "entries_file": file}],
        "likelihoods": [{"name": "L", "distributions": ["model"], "data": ["events"]}],
        "domains": [{"name": "dom", "type": "product_domain", "axes": doms}],
        "parameter_points": [{"name": "start", "parameters": [
            {"name": "nsig", "value": ns * 0.95}, {"name": "nbkg", "value": nb * 1.02}, {"name": "c", "value": 0.028}] + shape}],
        "analyses": [{"name": kind, "likelihood": "L", "domains": ["dom"], "parameters_of_interest": ["nsig"], "init": "start"}],
    }


def nextstat_spec(kind, n_events, file):
    ns, nb = 0.2 * n_events, 0.8 * n_events
    pars = [{"name": "nsig", "init": ns * 0.95, "bounds": [-1e7, 1e8]}, {"name": "nbkg", "init": nb * 1.02, "bounds": [0.0, 1e8]},
            {"name": "mu", "init": 90.5, "bounds": [80.0, 100.0]}, {"name": "sigma", "init": 2.7, "bounds": [0.5, 10.0]},
            # NextStat's exponential is exp(lambda x): lambda = -c
            {"name": "lam", "init": -0.028, "bounds": [-1.0, 1.0]}]
    if kind == "gauss_expo":
        sig = {"type": "gaussian", "observable": "mass", "params": ["mu", "sigma"]}
    else:
        pars += [{"name": "al", "init": 1.4, "bounds": [0.3, 5.0]}, {"name": "nl", "init": 2.8, "bounds": [1.05, 50.0]},
                 {"name": "ar", "init": 1.5, "bounds": [0.3, 5.0]}, {"name": "nr", "init": 4.5, "bounds": [1.05, 50.0]}]
        sig = {"type": "double_crystal_ball", "observable": "mass", "params": ["mu", "sigma", "al", "nl", "ar", "nr"]}
    return {"schema_version": "nextstat_unbinned_spec_v0", "model": {"poi": "nsig", "parameters": pars},
            "channels": [{"name": "ch", "data": {"file": file}, "observables": [{"name": "mass", "bounds": [LO, HI]}],
                          "processes": [{"name": "sig", "pdf": sig, "yield": {"type": "parameter", "name": "nsig"}},
                                        {"name": "bkg", "pdf": {"type": "exponential", "observable": "mass", "params": ["lam"]},
                                         "yield": {"type": "parameter", "name": "nbkg"}}]}]}


def timed(cmd, repeats):
    best, out = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t
        if r.returncode not in (0, 3):
            raise RuntimeError(f"{cmd[0]} failed: {r.stderr[-2000:]}")
        best = min(best, dt)
        out = r.stdout
    return best, out


def iminuit_fit(x, kind, warm_repeats):
    from iminuit import Minuit
    from numba_stats import crystalball_ex, truncexpon, truncnorm

    n = len(x)

    def nll(nsig, nbkg, mu, sigma, c, *tail):
        if kind == "gauss_expo":
            s = truncnorm.pdf(x, LO, HI, mu, sigma)
        else:
            al, nl, ar, nr = tail
            p = (al, nl, sigma, ar, nr, sigma, mu)
            norm = crystalball_ex.cdf(np.array([HI]), *p)[0] - crystalball_ex.cdf(np.array([LO]), *p)[0]
            s = crystalball_ex.pdf(x, *p) / norm
        b = truncexpon.pdf(x, LO, HI, LO, 1.0 / c)
        return 2 * (nsig + nbkg) - 2 * np.sum(np.log(nsig * s + nbkg * b))

    start = dict(nsig=0.19 * n, nbkg=0.81 * n, mu=90.5, sigma=2.7, c=0.028)
    names = ["nsig", "nbkg", "mu", "sigma", "c"]
    if kind != "gauss_expo":
        start.update(al=1.4, nl=2.8, ar=1.5, nr=4.5)
        names += ["al", "nl", "ar", "nr"]

    def run():
        m = Minuit(lambda *p: nll(*p), *[start[k] for k in names], name=names)
        m.errordef = 1.0
        m.limits["sigma"] = (0.5, 10)
        m.limits["c"] = (1e-4, 1)
        if kind != "gauss_expo":
            for k in ("al", "ar"):
                m.limits[k] = (0.3, 5)
            for k in ("nl", "nr"):
                m.limits[k] = (1.05, 50)
        m.migrad()
        m.hesse()
        return m

    run()  # compile
    best = math.inf
    for _ in range(warm_repeats):
        t = time.perf_counter()
        m = run()
        best = min(best, time.perf_counter() - t)
    return best, m.valid


def zfit_fit(x, kind, warm_repeats):
    import zfit

    obs = zfit.Space("mass", limits=(LO, HI))
    n = len(x)
    mu = zfit.Parameter("mu", 90.5, 80, 100)
    sigma = zfit.Parameter("sigma", 2.7, 0.5, 10)
    lam = zfit.Parameter("lam", -0.028, -1, 1)
    nsig = zfit.Parameter("nsig", 0.19 * n, -1e7, 1e8)
    nbkg = zfit.Parameter("nbkg", 0.81 * n, 0, 1e8)
    if kind == "gauss_expo":
        sig = zfit.pdf.Gauss(mu=mu, sigma=sigma, obs=obs, extended=nsig)
        extra = []
    else:
        al = zfit.Parameter("al", 1.4, 0.3, 5)
        nl = zfit.Parameter("nl", 2.8, 1.05, 50)
        ar = zfit.Parameter("ar", 1.5, 0.3, 5)
        nr = zfit.Parameter("nr", 4.5, 1.05, 50)
        sig = zfit.pdf.DoubleCB(mu=mu, sigma=sigma, alphal=al, nl=nl, alphar=ar, nr=nr, obs=obs, extended=nsig)
        extra = [(al, 1.4), (nl, 2.8), (ar, 1.5), (nr, 4.5)]
    bkg = zfit.pdf.Exponential(lam=lam, obs=obs, extended=nbkg)
    model = zfit.pdf.SumPDF([sig, bkg])
    data = zfit.Data.from_numpy(obs=obs, array=x)
    loss = zfit.loss.ExtendedUnbinnedNLL(model=model, data=data)
    minimizer = zfit.minimize.Minuit()

    def run():
        for p, v in [(mu, 90.5), (sigma, 2.7), (lam, -0.028), (nsig, 0.19 * n), (nbkg, 0.81 * n)] + extra:
            p.set_value(v)
        r = minimizer.minimize(loss)
        r.hesse()
        return r

    run()
    best = math.inf
    for _ in range(warm_repeats):
        t = time.perf_counter()
        r = run()
        best = min(best, time.perf_counter() - t)
    return best, r.valid


def fit_rows(a, skip):
    """The 1,000,000-event fits with errors (Gaussian + exponential, double-sided CB + exponential)."""
    if not a.profile:
        raise SystemExit("--profile (target/release/examples/profile_unbinned) is needed for the fit rows")
    rng = np.random.Generator(np.random.PCG64(7))
    rows = []
    for kind in ("gauss_expo", "dscb_expo"):
        n = rng.poisson(a.events)
        ns = rng.binomial(n, 0.2)
        xs = sample_gauss(rng, ns, TRUTH["mu"], TRUTH["sigma"]) if kind == "gauss_expo" else sample_dscb(rng, ns)
        x = np.concatenate([xs, sample_expo(rng, n - ns, TRUTH["c"])])
        rng.shuffle(x)
        pq = os.path.join(a.work, f"{kind}.parquet")
        write_parquet(pq, x)
        with open(os.path.join(a.work, f"{kind}.json"), "w") as f:
            json.dump(hs3(kind, a.events, f"{kind}.parquet"), f)
        with open(os.path.join(a.work, f"{kind}.nextstat.json"), "w") as f:
            json.dump(nextstat_spec(kind, a.events, f"{kind}.parquet"), f)
        row = {"task": f"{kind} fit with errors, {n} events", "times": {}}
        log(f"== {kind}")
        t, out = timed([a.gradfit, "fit", os.path.join(a.work, f"{kind}.json"), "--json"], a.repeats)
        row["times"]["gradfit (command, incl. reading)"] = t
        row["gradfit_twice_nll"] = json.loads(out)["twice_nll"]
        _, out = timed([a.profile, os.path.join(a.work, f"{kind}.json")], 1)
        warm = [float(line.split()[3]) for line in out.splitlines() if line.startswith("fit with errors")]
        row["times"]["gradfit (in-process, warm)"] = min(warm) / 1e3
        if "nextstat" not in skip:
            try:
                t, _ = timed([a.nextstat, "unbinned-fit", "--config", os.path.join(a.work, f"{kind}.nextstat.json")], a.repeats)
                row["times"]["NextStat unbinned-fit (command)"] = t
            except Exception as e:  # noqa: BLE001
                row.setdefault("notes", []).append(f"NextStat: {e}")
        if "iminuit" not in skip:
            t, ok = iminuit_fit(x, kind, a.repeats)
            row["times"]["iminuit + numba-stats (warm)"] = t
        if "zfit" not in skip:
            t, ok = zfit_fit(x, kind, a.repeats)
            row["times"]["zfit (warm)"] = t
        log(row)
        rows.append(row)
    return rows


def toy_row(a, skip):
    """1,000 toys of 2,000 events, two fits each: gradfit toys, NextStat, iminuit + numba-stats, zfit."""
    import unbinned_toys as ut

    n_toys = a.toys
    rng = np.random.Generator(np.random.PCG64(8))  # its own stream: the same data with or without --only
    x = np.concatenate([sample_gauss(rng, 400, TRUTH["mu"], TRUTH["sigma"]), sample_expo(rng, 1600, TRUTH["c"])])
    write_parquet(os.path.join(a.work, "toys.parquet"), x)
    model = os.path.join(a.work, "toys.json")
    with open(model, "w") as f:
        json.dump(hs3("gauss_expo", 2000, "toys.parquet", toys=True), f)
    log("== toys")
    row = {"task": f"{n_toys} toys of 2,000 events, two fits each", "times": {}, "toys": {}}
    # gradfit: n_toys / 2 toys per hypothesis (signal + background at nsig = 400, background only)
    mu = 400.0
    out_file = os.path.join(a.work, "toys_out.json")
    t, _ = timed([a.gradfit, "toys", model, "--mu", "400", "--n", str(n_toys // 2), "--out", out_file], a.repeats)
    row["times"]["gradfit toys (command)"] = t
    with open(out_file) as f:
        run = json.load(f)
    _, out = timed([a.gradfit, "fit", model, "--json"], 1)
    names = json.loads(out)["par_names"]
    gen = [[p[names.index(k)] for k in ("nsig", "nbkg", "c")] for p in (run["pars_sig_bkg"], run["pars_bkg"])]
    ref = ut.summary(*ut.gradfit_records(run))
    row["toys"]["gradfit"] = {"gen": gen, "summary": ref}
    if a.toy_ref > 0:
        # an untimed, larger gradfit run (another seed) as the reference of the agreement check
        ref_file = os.path.join(a.work, "toys_ref.json")
        timed([a.gradfit, "toys", model, "--mu", "400", "--n", str(a.toy_ref), "--seed", "1", "--out", ref_file], 1)
        with open(ref_file) as f:
            big = ut.summary(*ut.gradfit_records(json.load(f)))
        row["toys"]["gradfit"]["z_vs_gradfit"] = ut.agreement(big, ref)
        row["toys"][f"gradfit reference ({a.toy_ref} toys per hypothesis, seed 1, untimed)"] = {"gen": gen, "summary": big}
        ref = big
    if "nextstat" not in skip:
        spec = nextstat_spec("gauss_expo", 2000, "toys.parquet")
        with open(os.path.join(a.work, "toys.nextstat.json"), "w") as f:
            json.dump(spec, f)
        try:
            # one fit per toy: scaled to two
            t, out = timed([a.nextstat, "unbinned-fit-toys", "--config", os.path.join(a.work, "toys.nextstat.json"),
                            "--n-toys", str(n_toys)], 1)
            row["times"]["NextStat unbinned-fit-toys (command, one fit per toy, x2)"] = 2 * t
            r = json.loads(out)["results"]
            ph = np.array([v for v in r["poi_hat"] if v is not None])
            row["toys"]["NextStat (other work: shape floating, generated at the start point, one fit)"] = {
                "poi_hat_mean": float(ph.mean()), "poi_hat_std": float(ph.std(ddof=1)), "n_converged": r["n_converged"]}
        except Exception as e:  # noqa: BLE001
            row.setdefault("notes", []).append(f"NextStat: {e}")
    shape = (TRUTH["mu"], TRUTH["sigma"])
    start = (380.0, 1632.0, 0.028)  # the HS3 file's start point
    peers = [("iminuit", "iminuit + numba-stats (warm, incl. numpy sampling)",
              lambda: ut.iminuit_toys(x, mu, n_toys // 2, shape, start, seed=1, repeats=a.repeats)),
             ("zfit", "zfit (warm, incl. its sampler)",
              lambda: ut.zfit_toys(x, mu, n_toys // 2, shape, start, repeats=a.repeats))]
    for key, label, go in peers:
        if key in skip or key not in a.toy_peers.split(","):
            continue
        t, gen, hyps = go()
        row["times"][label] = t
        s = ut.summary(*hyps)
        row["toys"][label] = {"gen": [list(g) for g in gen], "summary": s, "z_vs_gradfit": ut.agreement(ref, s)}
        log(label, t, row["toys"][label])
    log(row)
    return row


def write_md(path, res):
    rows = res["rows"]
    with open(path, "w") as f:
        f.write(f"Load average (1, 5, 15 min) at the start: {', '.join(f'{v:.1f}' for v in res['load_start'])}; "
                f"at the end: {', '.join(f'{v:.1f}' for v in res['load'])} on {res['cpus']} CPUs.\n\n")
        f.write("| task | tool | seconds | ratio to gradfit (in-process) |\n|---|---|---|---|\n")
        for r in rows:
            base = r["times"].get("gradfit (in-process, warm)") or r["times"].get("gradfit toys (command)")
            for tool, t in r["times"].items():
                f.write(f"| {r['task']} | {tool} | {t:.3f} | {t / base:.1f} |\n")
            for nte in r.get("notes", []):
                f.write(f"| {r['task']} | note | {nte} | |\n")
        for r in rows:
            if "toys" not in r:
                continue
            f.write("\nToys: fitted nsig (mu_hat) and t = twice_nll(fixed) - twice_nll(free) per hypothesis; "
                    "stat = gradfit's toy qtilde (0 where mu_hat > 400; twice_nll(fixed) - twice_nll(fit at nsig = 0) where mu_hat < 0); "
                    "t - stat: what the fit at 0 and the clipping take off t (per toy, then the mean); "
                    "z = (tool - gradfit reference) / standard error "
                    "of the difference (the reference: the larger untimed gradfit run where there is one).\n\n")
            f.write("| tool | toys at | generation (nsig, nbkg, c) | ok / failed | mean mu_hat | std mu_hat | mean t "
                    "| mean stat | mean t - stat | z mean, std, t, stat, t - stat |\n|---|---|---|---|---|---|---|---|---|---|\n")
            for tool, d in r["toys"].items():
                if "summary" not in d:
                    f.write(f"| {tool} | start point | | {d['n_converged']} converged | {d['poi_hat_mean']:.2f} "
                            f"| {d['poi_hat_std']:.2f} | | | | |\n")
                    continue
                for k, h in enumerate(("sig_bkg", "bkg")):
                    s, g = d["summary"][h], d["gen"][k]
                    z = d.get("z_vs_gradfit", {}).get(h)
                    zs = (f"{z['mu_hat_mean']:+.1f}, {z['mu_hat_std']:+.1f}, {z['t_mean']:+.1f}, {z['stat_mean']:+.1f}, "
                           f"{z['t_minus_stat_mean']:+.1f}"
                          if z else "-")
                    f.write(f"| {tool} | {h} | {g[0]:.1f}, {g[1]:.3f}, {g[2]:.6f} | {s['n']} / {s['n_failed']} "
                            f"| {s['mu_hat_mean']:.2f} | {s['mu_hat_std']:.2f} | {s['t_mean']:.3f} "
                            f"| {s['stat_mean']:.3f} | {s['t_minus_stat_mean']:.4f} | {zs} |\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradfit", required=True)
    ap.add_argument("--profile", help="target/release/examples/profile_unbinned (needed for the fit rows)")
    ap.add_argument("--nextstat", default="nextstat")
    ap.add_argument("--work", required=True)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--toys", type=int, default=1000)
    ap.add_argument("--skip", default="", help="comma-separated peers to skip: zfit,iminuit,nextstat")
    ap.add_argument("--only", choices=("all", "fits", "toys"), default="all", help="run only the fit rows or the toy row")
    ap.add_argument("--toy-peers", default="iminuit,zfit",
                    help="Python peers of the toy row (comma-separated; zfit takes minutes); '' for none")
    ap.add_argument("--toy-ref", type=int, default=10000,
                    help="toys per hypothesis of an untimed gradfit run that the toy agreement check compares with (0: the timed run)")
    ap.add_argument("--out-json", required=True)
    ap.add_argument("--out-md", required=True)
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    os.makedirs(a.work, exist_ok=True)
    load_start = os.getloadavg()
    rows = fit_rows(a, skip) if a.only != "toys" else []
    if a.only != "fits":
        rows.append(toy_row(a, skip))
    res = {"rows": rows, "machine": os.uname().nodename, "cpus": os.cpu_count(),
           "load_start": load_start, "load": os.getloadavg()}
    with open(a.out_json, "w") as f:
        json.dump(res, f, indent=1)
    write_md(a.out_md, res)
    log(f"wrote {a.out_md}")


if __name__ == "__main__":
    main()
