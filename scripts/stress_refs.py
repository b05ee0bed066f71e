#!/usr/bin/env python3
"""Reference minima for gradfit's stress corpus, from an independent minimiser.

    cargo run --release --example stress -- --dump /tmp/stress     # the corpus (CI size) and gradfit's fits
    /work/.venv-dev/bin/python scripts/stress_refs.py /tmp/stress [NAME...] [--force] [--match SUBSTRING]
                                        # writes tests/refs/stress_refs.json (only missing cases without --force)

Needs pyhf 0.7.6, scipy and iminuit (numpy backend; no gradfit code is used).
For each selected case (a subset: every case of the small workspaces, the
observed, Asimov and two toy datasets of the large ones) the minimum of pyhf's
twice_nll = -2 logpdf under the case's bounds and fixed parameters is sought by
scipy's SLSQP from gradfit's end point and, for all cases of the smaller
workspaces and a few of the large ones, from the case's own start; on models
of up to 70 free parameters the better result is polished by iminuit's Migrad.
The reference is the lowest value reached. So a gradfit fit that stopped short of a minimum (a
stall, a saddle, a false convergence) or in a worse local minimum than SLSQP
finds from the same start shows up as a difference.

Bins without data whose expected rate would go negative (where pyhf's
`2 nu` is unbounded below and gradfit uses its extension) are handled by
constraints `nu_b >= 0` (SLSQP); such references are marked "constrained".
Bins with data need `nu_b > 0` (pyhf's logpdf is not finite otherwise); a start
outside that domain is skipped (gradfit's end point is always used).
"""
import json
import math
import os
import sys
import time

import numpy as np
import pyhf
import scipy
import scipy.optimize
import iminuit

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "refs", "stress_refs.json")
LARGE = ("atlas-susy-2019-09-3l-offshell", "atlas-tttt")
# SLSQP from the case's own start (minutes per fit on these) only for a few cases
FEW_FROM_START = LARGE + ("atlas-susy-2018-04-staus",)


def from_start(name, case):
    """Whether SLSQP also runs from the case's own start (all cases of the
    smaller workspaces; a few of each large one, where one run takes minutes)."""
    if name not in FEW_FROM_START:
        return True
    _, v, data, fit = case["id"].split("/", 3)
    if name in LARGE:
        return v == "v0" and (data, fit) in (("obs", "free"), ("toy1-0", "free"))
    return v == "v0" and (data, fit) in (("obs", "free"), ("obs", "mu=1"), ("asimov1", "free"), ("toy1-0", "free"))


def selected(name, case):
    """The subset with references (case ids are `WS/vV/DATA/FIT[@away]`)."""
    _, v, data, fit = case["id"].split("/", 3)
    if name not in LARGE:
        return True
    if v != "v0":
        return data in ("obs",) and fit in ("free", "mu=1")
    if data.startswith("toy") and data not in ("toy0-0", "toy1-0"):
        return False
    if data.startswith("obs*"):
        return fit == "free"
    return fit in ("free", "mu=0", "mu=1", "free@away")


class Problem:
    def __init__(self, model, data, case):
        self.m = model
        self.data = np.asarray(data, dtype=float)
        self.nmain = model.config.nmaindata
        self.fixed = np.asarray(case["fixed"], dtype=bool)
        self.init = np.asarray(case["init"], dtype=float)
        self.bounds = [tuple(b) for b in case["bounds"]]
        self.free = np.flatnonzero(~self.fixed)
        n = self.data[: self.nmain]
        self.empty = np.flatnonzero(n <= 0)
        self.filled = np.flatnonzero(n > 0)
        self.nevals = 0

    def full(self, y):
        x = self.init.copy()
        x[self.free] = y
        return x

    def f(self, y):
        self.nevals += 1
        v = -2.0 * float(self.m.logpdf(self.full(y), self.data)[0])
        return v if math.isfinite(v) else 1e30

    def rates(self, y):
        return np.asarray(self.m.expected_actualdata(self.full(y)))

    def in_domain(self, x):
        nu = np.asarray(self.m.expected_actualdata(x))
        return bool(np.all(nu[self.filled] > 0)) and bool(np.all(nu[self.empty] >= -1e-9))

    def slsqp(self, x0, constrained):
        y0 = np.clip(x0[self.free], [self.bounds[i][0] for i in self.free], [self.bounds[i][1] for i in self.free])
        cons = []
        if constrained:
            cons = [
                {"type": "ineq", "fun": lambda y: self.rates(y)[self.empty]},
                {"type": "ineq", "fun": lambda y: self.rates(y)[self.filled] - 1e-9},
            ]
        r = scipy.optimize.minimize(
            self.f,
            y0,
            method="SLSQP",
            bounds=[self.bounds[i] for i in self.free],
            constraints=cons,
            options={"maxiter": 3000, "ftol": 1e-13},
        )
        return self.full(r.x), self.f(r.x)

    def migrad(self, x0, constrained):
        y0 = x0[self.free]

        def fcn(*y):
            v = self.f(np.asarray(y))
            if constrained and np.any(self.rates(np.asarray(y))[self.empty] < 0):
                return 1e30
            return v

        mi = iminuit.Minuit(fcn, *y0)
        mi.errordef = 1.0
        mi.limits = [self.bounds[i] for i in self.free]
        mi.strategy = 2
        mi.tol = 1e-6
        mi.migrad(ncall=200000)
        y = np.asarray(mi.values)
        return self.full(y), self.f(y)


def reference(model, data, case, start=True):
    pr = Problem(model, data, case)
    gx = np.asarray(case["gradfit"]["x"], dtype=float)
    # constraints where gradfit's end point or the start leaves pyhf's domain in an empty bin
    nu_g = np.asarray(model.expected_actualdata(gx))
    constrained = bool(np.any(nu_g[pr.empty] < 1e-7))
    starts = []
    if start and pr.in_domain(np.clip(pr.init, *np.array(pr.bounds).T)):
        starts.append(("start", pr.init))
    starts.append(("gradfit", gx))
    best = (math.inf, None, None)
    for label, x0 in starts:
        x, v = pr.slsqp(x0, constrained)
        if constrained and not pr.in_domain(x):
            continue
        if v < best[0]:
            best = (v, x, "slsqp from " + label)
    if best[1] is not None and len(pr.free) <= 70:
        x, v = pr.migrad(best[1], constrained)
        if v < best[0] and (not constrained or pr.in_domain(x)):
            best = (v, x, best[2] + " + migrad")
    return {
        "twice_nll": best[0] if math.isfinite(best[0]) else None,
        "method": best[2],
        "constrained": constrained,
        "evals": pr.nevals,
    }


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    args = sys.argv[2:]
    force = "--force" in args
    match = None
    if "--match" in args:
        match = args[args.index("--match") + 1]
        args = [a for a in args if a not in ("--match", match)]
    only = [a for a in args if a != "--force"]
    out = {"cases": {}}
    if os.path.exists(OUT):
        out = json.load(open(OUT))
    out["generated_by"] = "scripts/stress_refs.py"
    out["versions"] = {"pyhf": pyhf.__version__, "scipy": scipy.__version__, "iminuit": iminuit.__version__, "numpy": np.__version__}
    for fn in sorted(os.listdir(folder)):
        name = fn[: -len(".json")]
        if only and name not in only:
            continue
        dump = json.load(open(os.path.join(folder, fn)))
        models = [pyhf.Workspace(v["workspace"]).model() for v in dump["variants"]]
        for v, m in zip(dump["variants"], models):
            # gradfit names a one-bin per-bin modifier without "[0]"
            names = [n[:-3] if n.endswith("[0]") and n[:-3] in v["par_names"] else n for n in m.config.par_names]
            assert names == v["par_names"], f"{name}: parameter order differs"
        t0 = time.time()
        n = 0
        for case in dump["cases"]:
            if not selected(name, case) or (match and match not in case["id"]):
                continue
            old = out["cases"].get(case["id"])
            if old is not None and old.get("twice_nll") is not None and not force:
                continue
            m = models[case["variant"]]
            data = dump["datasets"][case["data"]]["data"]
            t = time.time()
            r = reference(m, data, case, from_start(name, case))
            r["seconds"] = round(time.time() - t, 2)
            out["cases"][case["id"]] = r
            n += 1
            diff = case["gradfit"]["twice_nll"] - r["twice_nll"]
            print(f"{case['id']}: ref {r['twice_nll']:.8f} ({r['method']}{', constrained' if r['constrained'] else ''}) gradfit-ref {diff:+.2e} [{r['seconds']} s]", flush=True)
            if n % 10 == 0:
                json.dump(out, open(OUT, "w"), indent=0, sort_keys=True)
        print(f"{name}: {n} references in {time.time() - t0:.0f} s", flush=True)
        json.dump(out, open(OUT, "w"), indent=0, sort_keys=True)


if __name__ == "__main__":
    main()
