"""Independent reference numbers for gradfit's NSBI (per-event density ratio) likelihood.

Run from the repository root with numpy, scipy and pyhf (0.7.x) installed:

    python tests/refs/nsbi_ref.py

It (re)generates the second test model (tests/data/nsbi/model2/: an unbinned channel
with weights, a customfunc EFT polynomial, yield and per-event shape systematics, and a
binned control region sharing a normalisation factor, written with numpy's PCG64 from a
fixed seed), then evaluates, with its own reading of the workspace format,

    twice_nll = 2 nu + 2 lnGamma(N + 1) - 2 sum_i w_i ln lambda_i + sum_k (alpha_k^2 + ln 2 pi)
    lambda_i  = sum_c A_c g_c(x_i) r_c(x_i),  A_c = nu_c f_c G_c,  nu = sum_c A_c

for the example workspace (tests/data/nsbi/example/, written by `cargo run --release
--example nsbi -- --out tests/data/nsbi/example --ref 400 --toys 0`) and model 2, with
pyhf's own code4 interpolator for every yield and per-event shape factor and pyhf's
logpdf for the binned channels. It then fits both with scipy (free fits and fits with
the POI fixed) and tabulates pyhf's code4 on per-event ratios. Output:
tests/refs/nsbi_ref.json.
"""

import json
import math
import os
import sys

import numpy as np
import pyhf
import scipy
from pyhf.interpolators import code4
from scipy.optimize import minimize
from scipy.special import gammaln

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "nsbi")
LN2PI = math.log(2.0 * math.pi)
pyhf.set_backend("numpy")


def pyhf_code4(hi, lo, alphas):
    """pyhf's code4 factor of per-event (or per-yield) ratios hi, lo at each alpha: [alpha][event]."""
    hi = np.atleast_1d(np.asarray(hi, dtype=float))
    lo = np.atleast_1d(np.asarray(lo, dtype=float))
    h = np.stack([lo, np.ones_like(hi), hi])[None, None, :, :]
    f = code4(h.tolist(), alpha0=1)
    return np.asarray(f(np.asarray([alphas], dtype=float)))[0, 0]


def write_npy(path, a):
    np.save(path, np.asarray(a, dtype=np.float64))


def make_model2():
    """A second model: unbinned SR (4 processes, weights, EFT-like coefficient functions
    c and c^2 as customfunc, normsys, normplusshape with yield and per-event shape, a
    shape-only variation) plus a binned control region sharing the background
    normalisation k_bkg, the POI mu and the jes nuisance (constrained there)."""
    d = os.path.join(DATA, "model2")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(20241201)
    n = 350
    x = rng.normal(size=n)
    y = rng.uniform(0.5, 2.0, size=n)
    r_sig = np.exp(0.8 * x - 0.32) * (1.0 + 0.1 * np.sin(3 * y))
    r_lin = np.exp(0.4 * x - 0.08) * (1.0 + 0.3 * np.cos(y))
    r_quad = np.exp(1.1 * x - 0.605)
    r_bkg = np.exp(-0.3 * x - 0.045) * (1.0 + 0.05 * np.cos(2 * y))
    w = rng.choice([0.5, 1.0, 1.5, 2.0], size=n)
    jes_sig_up = np.exp(0.06 * x) / np.exp(0.0018)
    jes_sig_dn = np.exp(-0.05 * x) / np.exp(0.00125)
    jes_bkg_up = 1.0 + 0.05 * np.tanh(x)
    jes_bkg_dn = 1.0 - 0.04 * np.tanh(x)
    res_up = 1.0 + 0.04 * (x * x - 1.0) / (1.0 + 0.1 * x * x)
    res_dn = 1.0 / res_up
    for name, a in [("r_sig", r_sig), ("r_lin", r_lin), ("r_quad", r_quad), ("r_bkg", r_bkg), ("w", w),
                    ("jes_sig_up", jes_sig_up), ("jes_sig_dn", jes_sig_dn), ("jes_bkg_up", jes_bkg_up),
                    ("jes_bkg_dn", jes_bkg_dn), ("res_up", res_up), ("res_dn", res_dn)]:
        write_npy(os.path.join(d, name + ".npy"), a)
    lumi = {"name": "lumi_sys", "type": "normsys", "data": {"hi": 1.03, "lo": 0.96}}
    ws = {
        "channels": [
            {"name": "SR", "type": "unbinned", "weights": "w.npy", "samples": [
                {"name": "sig", "data": [42.0], "ratios": "r_sig.npy", "modifiers": [
                    {"name": "mu", "type": "normfactor", "data": None}, lumi,
                    {"name": "jes", "type": "normplusshape", "data": {
                        "hi_data": [1.06], "lo_data": [0.93], "hi_ratio": "jes_sig_up.npy", "lo_ratio": "jes_sig_dn.npy"}},
                ]},
                {"name": "eft_lin", "data": [12.0], "ratios": "r_lin.npy", "modifiers": [
                    {"name": "f_lin", "type": "customfunc", "data": {"expr": "c"}}, lumi,
                ]},
                {"name": "eft_quad", "data": [5.0], "ratios": "r_quad.npy", "modifiers": [
                    {"name": "f_quad", "type": "customfunc", "data": {"expr": "c^2"}}, lumi,
                ]},
                {"name": "bkg", "data": [310.0], "ratios": "r_bkg.npy", "modifiers": [
                    {"name": "k_bkg", "type": "normfactor", "data": None}, lumi,
                    {"name": "jes", "type": "normplusshape", "data": {
                        "hi_data": [1.04], "lo_data": [0.97], "hi_ratio": "jes_bkg_up.npy", "lo_ratio": "jes_bkg_dn.npy"}},
                    {"name": "res", "type": "normplusshape", "data": {"hi_ratio": "res_up.npy", "lo_ratio": "res_dn.npy"}},
                ]},
            ]},
            {"name": "CR", "samples": [
                {"name": "bkg", "data": [520.0, 330.0, 150.0], "modifiers": [
                    {"name": "k_bkg", "type": "normfactor", "data": None},
                    {"name": "jes", "type": "normsys", "data": {"hi": 1.05, "lo": 0.94}},
                    {"name": "stat_cr", "type": "staterror", "data": [15.0, 12.0, 9.0]},
                ]},
                {"name": "sig", "data": [4.0, 2.5, 1.0], "modifiers": [
                    {"name": "mu", "type": "normfactor", "data": None},
                ]},
            ]},
        ],
        "observations": [{"name": "CR", "data": [551.0, 318.0, 170.0]}],
        "measurements": [{"name": "eft_combination", "config": {"poi": "mu", "parameters": [
            {"name": "c", "inits": [0.2], "bounds": [[-1.0, 3.0]]},
        ]}}],
        "version": "1.0.0",
    }
    with open(os.path.join(d, "model2.json"), "w") as f:
        json.dump(ws, f, indent=1)
    return os.path.join(d, "model2.json")


class Model:
    """The workspace format read independently of gradfit."""

    def __init__(self, path):
        self.path = path
        self.base = os.path.dirname(path)
        with open(path) as f:
            self.ws = json.load(f)
        meas = self.ws["measurements"][0]
        self.poi = meas["config"]["poi"]
        cfg = {p["name"]: p for p in meas["config"]["parameters"]}
        self.unbinned = [c for c in self.ws["channels"] if c.get("type") == "unbinned"]
        binned = [c for c in self.ws["channels"] if c.get("type") != "unbinned"]
        kinds = {}
        for c in self.ws["channels"]:
            for s in c["samples"]:
                for m in s["modifiers"]:
                    if m["type"] != "customfunc":
                        kinds.setdefault(m["name"], (m["type"], c.get("type") != "unbinned"))
                    elif m["type"] == "customfunc":
                        pass
        self.binned_model = None
        binned_names = set()
        if binned:
            bws = {"channels": binned,
                   "observations": [o for o in self.ws["observations"] if o["name"] in {c["name"] for c in binned}],
                   "measurements": [{"name": "m", "config": {"poi": self.poi, "parameters": []}}],
                   "version": "1.0.0"}
            w = pyhf.Workspace(bws)
            self.binned_model = w.model()
            self.binned_data = np.asarray(w.data(self.binned_model))
            binned_names = set(self.binned_model.config.par_order)
        self.names, self.init, self.bounds, self.constrained = [], [], [], []
        for c in self.unbinned:
            for s in c["samples"]:
                for m in s["modifiers"]:
                    if m["type"] == "customfunc":
                        for v in sorted(cfg):
                            if v in m["data"]["expr"].replace("sqrt", "") and v not in kinds:
                                self._add(v, cfg[v]["inits"][0], tuple(cfg[v]["bounds"][0]), False)
                    elif m["type"] == "normfactor":
                        self._add(m["name"], 1.0, (0.0, 10.0), False)
                    else:
                        self._add(m["name"], 0.0, (-5.0, 5.0), m["name"] not in binned_names)
        if self.binned_model is not None:
            cfgb = self.binned_model.config
            for name in cfgb.par_order:
                sl = cfgb.par_slice(name)
                inits = cfgb.suggested_init()[sl]
                bnds = cfgb.suggested_bounds()[sl]
                n = sl.stop - sl.start
                for k in range(n):
                    nm = name if n == 1 else f"{name}[{k}]"
                    self._add(nm, inits[k], tuple(bnds[k]), False)
        self.arrays = {}

    def _add(self, name, init, bounds, constrained):
        if name in self.names:
            return
        self.names.append(name)
        self.init.append(float(init))
        self.bounds.append(bounds)
        self.constrained.append(constrained)

    def arr(self, ref):
        if ref not in self.arrays:
            self.arrays[ref] = np.load(os.path.join(self.base, ref)).astype(float)
        return self.arrays[ref]

    def twice_nll(self, x):
        p = dict(zip(self.names, x))
        total = 0.0
        env = {"sqrt": np.sqrt, "exp": np.exp, "log": np.log}
        for c in self.unbinned:
            lam = None
            nu = 0.0
            for s in c["samples"]:
                A = s["data"][0]
                r = self.arr(s["ratios"])
                g = np.ones_like(r)
                for m in s["modifiers"]:
                    t, d = m["type"], m["data"]
                    if t == "normfactor":
                        A *= p[m["name"]]
                    elif t == "normsys":
                        A *= pyhf_code4([d["hi"]], [d["lo"]], [p[m["name"]]])[0, 0]
                    elif t == "normplusshape":
                        a = p[m["name"]]
                        if "hi_data" in d:
                            A *= pyhf_code4(d["hi_data"], d["lo_data"], [a])[0, 0]
                        if "hi_ratio" in d:
                            g = g * pyhf_code4(self.arr(d["hi_ratio"]), self.arr(d["lo_ratio"]), [a])[0]
                    elif t == "customfunc":
                        expr = d["expr"].replace("^", "**")
                        A *= float(eval(expr, {"__builtins__": {}}, {**env, **p}))
                    else:
                        raise ValueError(t)
                nu += A
                term = A * g * r
                lam = term if lam is None else lam + term
            w = self.arr(c["weights"]) if "weights" in c else np.ones_like(lam)
            n = w.sum()
            total += 2.0 * nu + 2.0 * gammaln(n + 1.0) - 2.0 * np.sum(w * np.log(lam))
        for name, con in zip(self.names, self.constrained):
            if con:
                total += p[name] ** 2 + LN2PI
        if self.binned_model is not None:
            cfgb = self.binned_model.config
            pars = []
            for name in cfgb.par_order:
                sl = cfgb.par_slice(name)
                n = sl.stop - sl.start
                pars += [p[name] if n == 1 else p[f"{name}[{k}]"] for k in range(n)]
            total += -2.0 * float(self.binned_model.logpdf(np.asarray(pars), self.binned_data)[0])
        return float(total)

    def fit(self, fixed=None):
        """Minimise with scipy (L-BFGS-B from several starts, then Nelder-Mead polish)."""
        fixed = fixed or {}
        free = [i for i, n in enumerate(self.names) if n not in fixed]
        x0 = np.array(self.init, dtype=float)
        for n, v in fixed.items():
            x0[self.names.index(n)] = v

        def f(z):
            x = x0.copy()
            x[free] = z
            return self.twice_nll(x)

        bounds = [self.bounds[i] for i in free]
        best = None
        for start in [x0[free], np.clip(x0[free] + 0.1, [b[0] for b in bounds], [b[1] for b in bounds])]:
            r = minimize(f, start, method="L-BFGS-B", jac="3-point", bounds=bounds,
                         options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000})
            if best is None or r.fun < best.fun:
                best = r
        r2 = minimize(f, best.x, method="Nelder-Mead", bounds=bounds,
                      options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20000, "maxfev": 40000})
        if r2.fun < best.fun:
            best = r2
        x = x0.copy()
        x[free] = best.x
        return {"twice_nll": float(best.fun), "pars": dict(zip(self.names, map(float, x)))}


def points(m, k, rng):
    """The start point and k random points inside the bounds (within a sensible range)."""
    out = [list(m.init)]
    for _ in range(k):
        x = []
        for n, (lo, hi), x0 in zip(m.names, m.bounds, m.init):
            if n == m.poi:
                x.append(float(rng.uniform(0.2, 3.0)))
            elif lo >= 0.0 and hi <= 10.0 and x0 == 1.0:
                x.append(float(rng.uniform(0.7, 1.3)))
            else:
                x.append(float(rng.uniform(-1.8, 1.8)))
        out.append(x)
    return out


def main():
    m2path = make_model2()
    rng = np.random.default_rng(7)
    out = {"generator": "tests/refs/nsbi_ref.py",
           "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "pyhf": pyhf.__version__},
           "models": {}}
    for key, path in [("example", os.path.join(DATA, "example", "nsbi.json")), ("model2", m2path)]:
        if not os.path.exists(path):
            sys.exit(f"{path} missing: run the example first (see the docstring)")
        m = Model(path)
        evals = [{"pars": dict(zip(m.names, x)), "twice_nll": m.twice_nll(x)} for x in points(m, 5, rng)]
        fits = {"free": m.fit()}
        mus = [0.5, 1.0, 2.0]
        fits["fixed"] = [dict(m.fit({m.poi: mu}), mu=mu) for mu in mus]
        out["models"][key] = {"workspace": os.path.relpath(path, ROOT), "par_names": m.names,
                              "evals": evals, "fits": fits}
        print(key, "free fit", fits["free"])
    # pyhf's code4 on per-event ratios of the example (first 60 events of each shape variation)
    ex = Model(os.path.join(DATA, "example", "nsbi.json"))
    alphas = [-2.5, -1.0, -0.999, -0.7, -0.2, 0.0, 0.3, 0.77, 0.999, 1.0, 1.8]
    tables = []
    for s in ex.unbinned[0]["samples"]:
        for mm in s["modifiers"]:
            if mm["type"] == "normplusshape" and "hi_ratio" in mm["data"]:
                hi = ex.arr(mm["data"]["hi_ratio"])[:60]
                lo = ex.arr(mm["data"]["lo_ratio"])[:60]
                tables.append({"hi": hi.tolist(), "lo": lo.tolist(),
                               "factors": pyhf_code4(hi, lo, alphas).tolist()})
            if mm["type"] in ("normplusshape", "normsys"):
                d = mm["data"]
                hi, lo = (d.get("hi_data", [None])[0], d.get("lo_data", [None])[0]) if mm["type"] == "normplusshape" else (d["hi"], d["lo"])
                if hi is not None:
                    tables.append({"hi": [hi], "lo": [lo], "factors": pyhf_code4([hi], [lo], alphas).tolist()})
    out["code4"] = {"alphas": alphas, "tables": tables}
    with open(os.path.join(ROOT, "tests", "refs", "nsbi_ref.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("wrote tests/refs/nsbi_ref.json")


if __name__ == "__main__":
    main()
