"""Side-by-side timing of training through fits: gradfit against neos/relaxed
(JAX) on the four-blob problem and against pytorch_inferno (torch) on INFERNO's
benchmark 2. Run through `bash bench/compare.sh --train` (it builds gradfit and
creates the venvs), or directly:

    python bench/train_compare.py neos --gradfit-example target/release/examples/neos
    python bench/train_compare.py inferno --gradfit-example target/release/examples/inferno

Each task prints one JSON object; `--out FILE` also writes it.

neos/relaxed: neos 0.3.0's pipeline (`neos.hists_from_nn` -> `pyhf.Model` ->
`neos.loss_from_model`) does not run with today's packages: pyhf 0.7.6's JAX
backend hands Python lists to `jnp.concatenate`/`jnp.tile`, which JAX 0.10
refuses; with those shimmed, building a `pyhf.Model` inside `jax.jit` fails
(pyhf's ParamViewer calls `int()` on a traced shape product); without `jit`,
neos 0.3.0 calls `relaxed.infer.hypotest` without the `init_pars` argument that
relaxed 0.4.0 requires. relaxed 0.4.0's own `fixed_poi_fit` then fails with
jaxopt 0.8.5 (its objective writes the POI into the parameter dict the solver
owns: a pytree structure error); the script replaces it with a copy that does not. So, as neos's demo does, the peer here composes
relaxed's `hist` and `infer.hypotest` directly, with the demo's model (a
normfactor on the signal, a code-4p histosys on the background) written as the
small equinox module relaxed 0.4's `hypotest` expects (`logpdf(pars=, data=)`),
and the demo's CLs (`test_stat="q"`, background-only Asimov data and expected
parameters), under `jax.jit` with optax's Adam.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def median(v):
    return statistics.median(v) if v else float("nan")


# --------------------------------------------------------------------- neos


def neos_peer(steps: int, batch: int, hidden: int) -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.scipy as jsp
    import numpy as np
    import optax
    import relaxed

    jax.config.update("jax_enable_x64", True)
    import relaxed.infer
    import relaxed.mle

    def fixed_poi_fit(data, model, poi_value, poi_name, init_pars, bounds=None, method="LBFGSB",
                      maxiter=500, tol=1e-6, other_settings=None):
        # relaxed 0.4.0's version assigns the POI into the parameter dict jaxopt
        # passes in, which changes the pytree under the solver (a structure
        # error with jaxopt 0.8.5); this copy builds a new dict instead
        def objective(pars, model, data):
            return -model.logpdf(data=data, pars={**pars, poi_name: poi_value})

        res = relaxed.mle._minimize(fit_objective=objective, model=model, data=data, init_pars=init_pars,
                                    bounds=bounds, method=method, maxiter=maxiter, tol=tol,
                                    other_settings=other_settings)
        return {**res, poi_name: poi_value}

    relaxed.infer.fixed_poi_fit = fixed_poi_fit

    def poisson_logpdf(n, lam):
        return n * jnp.log(lam) - lam - jsp.special.gammaln(n + 1)

    class HistoSysModel(eqx.Module):
        """The neos demo's model: mu * sig + bkg + histosys (pyhf's code 4p)."""

        sig: jax.Array
        nom: jax.Array
        up: jax.Array
        dn: jax.Array

        def expected_data(self, pars):
            mu, a = pars["mu"], pars["correlated_bkg_uncertainty"]
            dp, dm = self.up - self.nom, self.nom - self.dn
            s, d = 0.5 * (dp + dm), 0.0625 * (dp - dm)
            a2 = a * a
            inside = a * (s + a * d * (15.0 + a2 * (-10.0 + a2 * 3.0)))
            delta = jnp.where(a > 1.0, a * dp, jnp.where(a < -1.0, a * dm, inside))
            return mu * self.sig + self.nom + delta, jnp.atleast_1d(a)

        def logpdf(self, pars, data):
            main, aux = data
            lam, a = self.expected_data(pars)
            con = jsp.stats.norm.logpdf(aux, a, 1.0)
            return jnp.sum(poisson_logpdf(main, lam)) + jnp.sum(con)

    rng = np.random.default_rng(0)
    centres = [(-1.0, 1.0), (1.0, -1.0), (2.5, 2.0), (-2.5, -1.5)]
    xs = [jnp.asarray(rng.normal(size=(batch, 2)) + np.array(c)) for c in centres]
    bins = jnp.linspace(0.0, 1.0, 5)

    def init_layer(key, n_in, n_out):
        k1, k2 = jax.random.split(key)
        b = 1.0 / np.sqrt(n_in)
        return (
            jax.random.uniform(k1, (n_in, n_out), minval=-b, maxval=b),
            jax.random.uniform(k2, (n_out,), minval=-b, maxval=b),
        )

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    params = [init_layer(keys[0], 2, hidden), init_layer(keys[1], hidden, hidden), init_layer(keys[2], hidden, 1)]

    def nn(p, x):
        for w, b in p[:-1]:
            x = jax.nn.relu(x @ w + b)
        w, b = p[-1]
        return jax.nn.sigmoid(x @ w + b)

    scales = [2.0 * 10.0, 10.0 * 10.0, 10.0 * 10.0, 10.0 * 10.0]

    def hists(p, xs):
        return [relaxed.hist(nn(p, x).ravel(), bins, 0.1) * sc / x.shape[0] + 1e-3 for x, sc in zip(xs, scales)]

    def cls_from_hists(h):
        model = HistoSysModel(*h)
        bonly = {"mu": 0.0, "correlated_bkg_uncertainty": 0.0}
        data = model.expected_data(bonly)
        init = {"mu": 1.0, "correlated_bkg_uncertainty": 0.0}
        bounds = {"mu": [0.0, 10.0], "correlated_bkg_uncertainty": [-5.0, 5.0]}
        return relaxed.infer.hypotest(
            test_poi=1.0, data=data, model=model, init_pars=init, bounds=bounds,
            test_stat="q", expected_pars=bonly,
        )

    def loss(p, xs):
        return cls_from_hists(hists(p, xs))

    opt = optax.adam(1e-3)
    state = opt.init(params)

    @jax.jit
    def step(p, s, xs):
        v, g = jax.value_and_grad(loss)(p, xs)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, v

    stats_vg = jax.jit(jax.value_and_grad(cls_from_hists))
    t0 = time.perf_counter()
    params, state, v = step(params, state, xs)
    jax.block_until_ready(params)
    compile_s = time.perf_counter() - t0
    times, values = [], [float(v)]
    for _ in range(steps):
        t0 = time.perf_counter()
        params, state, v = step(params, state, xs)
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t0)
        values.append(float(v))
    h = hists(params, xs)
    jax.block_until_ready(stats_vg(h))
    st = []
    for _ in range(20):
        t0 = time.perf_counter()
        jax.block_until_ready(stats_vg(h))
        st.append(time.perf_counter() - t0)
    return {
        "jax": jax.__version__, "relaxed": relaxed.__version__,
        "first_step_seconds_with_compile": compile_s,
        "step_seconds": median(times), "step_seconds_fastest": min(times),
        "stats_seconds": median(st), "cls_per_step": values,
    }


def neos_gradfit(example: str, steps: int, batch: int, hidden: int) -> dict:
    out = subprocess.run(
        [example, "--steps", str(steps + 1), "--batch", str(batch), "--hidden", f"{hidden},{hidden}", "--json"],
        check=True, capture_output=True, text=True,
    )
    r = json.loads(out.stdout)
    s = r["steps"][1:]  # the first step pays for allocations
    return {
        "step_seconds": median([x["seconds"] for x in s]),
        "step_seconds_fastest": min(x["seconds"] for x in s),
        "stats_seconds": median([x["stats_seconds"] for x in s]),
        "cls_per_step": [x["loss"] for x in r["steps"]],
    }


# ------------------------------------------------------------------ inferno


def inferno_peer(n_train: int, epochs: int, batch: int, seed: int = 0, save: str | None = None) -> dict:
    """Train pytorch_inferno's `PaperInferno` (benchmark 2: r and lambda free)
    and time its epochs; with `save`, write the trained network's three linear
    layers as safetensors (`layer{l}.weight`, `layer{l}.bias`, float32), the
    layout gradfit's `Mlp` loads."""
    import numpy as np
    import torch
    from fastcore.all import partialler
    from pytorch_inferno.data import get_paper_data
    from pytorch_inferno.inferno import PaperInferno, VariableSoftmax
    from pytorch_inferno.model_wrapper import ModelWrapper
    from pytorch_inferno.utils import init_net
    from torch import nn, optim

    torch.manual_seed(seed)
    np.random.seed(seed)  # pytorch_inferno samples its data with numpy's global generator
    from pytorch_inferno.data import DataPair, DataSet, WeightedDataLoader

    data, _ = get_paper_data(2 * n_train, bs=2 * batch, n_test=2 * batch)
    # time the training batches: validate on a single batch (its validation set
    # is otherwise as large as the training set, evaluated with the same loss)
    v = data.val_dl.dataset
    half = len(v.x) // 2  # signal first, then background
    idx = np.r_[0:batch, half : half + batch]
    one = DataSet(v.x[idx], v.y[idx], None if v.w is None else v.w[idx])
    data = DataPair(data.trn_dl, WeightedDataLoader(one, batch_size=2 * batch))
    net = nn.Sequential(nn.Linear(3, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                        nn.Linear(100, 10), VariableSoftmax(0.1))
    init_net(net)
    model = ModelWrapper(net)
    t0 = time.perf_counter()
    model.fit(epochs, data=data, opt=partialler(optim.Adam, lr=1e-3), loss=None,
              cbs=[PaperInferno(float_r=True, float_l=True)])
    total = time.perf_counter() - t0
    if save:
        from safetensors.torch import save_file

        lin = [m for m in net if isinstance(m, nn.Linear)]
        tensors = {}
        for i, m in enumerate(lin):
            tensors[f"layer{i}.weight"] = m.weight.detach().float().contiguous()
            tensors[f"layer{i}.bias"] = m.bias.detach().float().contiguous()
        save_file(tensors, save)
    return {"torch": torch.__version__, "epoch_seconds": total / epochs, "epochs": epochs}


def inferno_sigma(example: str, n_train: int, epochs: int, seeds: int, outdir: str) -> dict:
    """sigma_s of fully trained pytorch_inferno networks, evaluated by gradfit's
    INFERNO evaluation (the same test sample, hard histograms and profile
    width as `sigma_s_inferno`), next to gradfit's own networks trained with
    the same sizes, epochs and seeds."""
    import os

    os.makedirs(outdir, exist_ok=True)
    nets, secs = [], []
    for k in range(seeds):
        path = os.path.join(outdir, f"pytorch_inferno_seed{k}.safetensors")
        nets.append(path)
        if os.path.exists(path):  # trained by an earlier run with the same settings
            log(f"pytorch_inferno seed {k}: reusing {path}")
            continue
        log(f"pytorch_inferno seed {k}: {epochs} epochs ...")
        r = inferno_peer(n_train, epochs, 1000, seed=k, save=path + ".tmp")
        os.replace(path + ".tmp", path)
        secs.append(r["epoch_seconds"])
    args = [example, "--benchmark", "2", "--seeds", str(seeds), "--epochs", str(epochs),
            "--n-train", str(n_train), "--json"]
    for p in nets:
        args += ["--evaluate-net", p]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    return {
        "pytorch_inferno": {"sigma_s": median(r["evaluated"]), "all": r["evaluated"],
                            "epoch_seconds": median(secs) if secs else None},
        "gradfit": {"sigma_s": r["sigma_s_inferno"], "all": r["inferno_all"],
                    "sigma_s_bce": r["sigma_s_bce"], "epoch_seconds": r["inferno_epoch_seconds"]},
        "sigma_s_analytic": r["sigma_s_analytic"],
    }


def inferno_gradfit(example: str, n_train: int, epochs: int) -> dict:
    out = subprocess.run(
        [example, "--benchmark", "2", "--seeds", "1", "--epochs", str(epochs),
         "--n-train", str(n_train), "--json"],
        check=True, capture_output=True, text=True,
    )
    r = json.loads(out.stdout)
    return {"epoch_seconds": r["inferno_epoch_seconds"], "sigma_s_inferno": r["sigma_s_inferno"],
            "sigma_s_bce": r["sigma_s_bce"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=["neos", "inferno", "inferno-sigma"])
    ap.add_argument("--gradfit-example", required=True, help="path of the built example binary")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5, help="inferno-sigma: network initialisations")
    ap.add_argument("--net-dir", default="bench/inferno_nets", help="inferno-sigma: trained networks")
    ap.add_argument("--out")
    a = ap.parse_args()
    res = {"task": a.task}
    if a.task == "neos":
        res["settings"] = {"steps": a.steps, "batch": a.batch, "hidden": a.hidden}
        log("gradfit neos ...")
        res["gradfit"] = neos_gradfit(a.gradfit_example, a.steps, a.batch, a.hidden)
        log("neos/relaxed on JAX ...")
        try:
            res["relaxed_jax"] = neos_peer(a.steps, a.batch, a.hidden)
        except Exception as e:  # report, do not hide
            res["relaxed_jax"] = {"error": f"{type(e).__name__}: {e}"}
        p = res["relaxed_jax"]
        if "step_seconds" in p:
            res["step_speedup"] = p["step_seconds"] / res["gradfit"]["step_seconds"]
            # the fastest step of each: the least disturbed by other work on a shared machine
            res["step_speedup_fastest"] = p["step_seconds_fastest"] / res["gradfit"]["step_seconds_fastest"]
            res["stats_speedup"] = p["stats_seconds"] / res["gradfit"]["stats_seconds"]
    elif a.task == "inferno-sigma":
        res["settings"] = {"n_train_per_class": a.n_train, "epochs": a.epochs, "seeds": a.seeds}
        res.update(inferno_sigma(a.gradfit_example, a.n_train, a.epochs, a.seeds, a.net_dir))
    else:
        res["settings"] = {"n_train_per_class": a.n_train, "epochs": a.epochs}
        log("gradfit inferno ...")
        res["gradfit"] = inferno_gradfit(a.gradfit_example, a.n_train, a.epochs)
        log("pytorch_inferno ...")
        try:
            res["pytorch_inferno"] = inferno_peer(a.n_train, a.epochs, 1000)
        except Exception as e:
            res["pytorch_inferno"] = {"error": f"{type(e).__name__}: {e}"}
        p = res["pytorch_inferno"]
        if "epoch_seconds" in p:
            res["epoch_speedup"] = p["epoch_seconds"] / res["gradfit"]["epoch_seconds"]
    s = json.dumps(res, indent=2)
    print(s)
    if a.out:
        with open(a.out, "w") as f:
            f.write(s + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
