"""Speed of the Python package (docs/benchmarks.md, "## Python"):

1. Python overhead: gradfit.infer.mle.fit on the staus workspace against the
   in-process Rust fit (`gradfit fit --repeat N`'s median).
2. hypotest against pyhf on JAX (jit-warm), for every shared workspace.
3. gradfit.dask.toys on a 2-worker LocalCluster against `gradfit toys`, fits per second.

Each measurement runs --rounds times, interleaved, and keeps each side's best
round; the load average is recorded with it (the development machine is shared).

    python python/bench/bench_python.py --gradfit target/release/gradfit --shared ../shared \
        [--only fit|hypotest|dask] [--rounds 5] [--skip-pyhf] [--workspaces NAME ...]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import gradfit

WORKSPACES = [
    ("atlas-susy-2018-04-staus", True),
    ("atlas-susy-2018-31-sbottom-regionA", True),
    ("atlas-susy-2019-09-3l-offshell", True),
    ("atlas-tttt", False),
]


def median_time(f, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def paths(shared, name, patched):
    ws = os.path.join(shared, "workspaces", f"{name}.json")
    patch = os.path.join(shared, "workspaces", f"{name}.signal-patch.json") if patched else None
    return ws, patch


def fit_overhead(a):
    """Best (over --rounds) of the per-round medians, each side, interleaved."""
    ws, patch = paths(a.shared, "atlas-susy-2018-04-staus", True)
    model = gradfit.Workspace(ws).model(patches=[json.load(open(patch))])
    data = model.observed_data()
    gradfit.infer.mle.fit(data, model)
    rust, py_unc, py = [], [], []
    for _ in range(a.rounds):
        r = subprocess.run([a.gradfit, "fit", ws, "-p", patch, "--repeat", str(a.repeat), "--json"],
                           capture_output=True, text=True, check=True)
        rust.append(json.loads(r.stdout)["timing"]["median_s"])
        py_unc.append(median_time(lambda: gradfit.infer.mle.fit(data, model, return_uncertainties=True), a.repeat))
        py.append(median_time(lambda: gradfit.infer.mle.fit(data, model), a.repeat))
    return {"rust_fit_s": min(rust), "python_fit_uncertainties_s": min(py_unc), "python_fit_s": min(py),
            "overhead": min(py_unc) / min(rust) - 1.0, "rounds": a.rounds, "loadavg": os.getloadavg()}


def hypotests(a):
    """Per workspace: best over --rounds of the per-round medians, each side, interleaved."""
    rows = []
    if not a.skip_pyhf:
        import pyhf

        pyhf.set_backend("jax")
    for name, patched in WORKSPACES:
        if a.workspaces and name not in a.workspaces:
            continue
        ws, patch = paths(a.shared, name, patched)
        spec = json.load(open(ws))
        patches = [json.load(open(patch))] if patch else []
        model = gradfit.Workspace(spec).model(patches=patches)
        data = model.observed_data()
        row = {"workspace": name, "npars": model.config.npars}
        gcall = lambda: gradfit.infer.hypotest(1.0, data, model, return_expected_set=True)  # noqa: E731
        row["gradfit_cls_obs"] = float(gcall()[0])
        pcall = None
        if not a.skip_pyhf:
            import pyhf

            pws = pyhf.Workspace(spec)
            pm = pws.model(patches=patches) if patches else pws.model()
            pd = pws.data(pm)
            pcall = lambda: pyhf.infer.hypotest(1.0, pd, pm, return_expected_set=True)  # noqa: E731
            try:
                row["pyhf_cls_obs"] = float(pcall()[0])  # compiles (jit)
            except Exception as e:  # report, do not hide
                row["pyhf_error"] = f"{type(e).__name__}: {e}"[:200]
                pcall = None
        g, p = [], []
        for _ in range(a.rounds):
            g.append(median_time(gcall, 5))
            if pcall is not None:
                p.append(median_time(pcall, a.pyhf_repeat))
        row["gradfit_s"] = min(g)
        if p:
            row["pyhf_jax_s"] = min(p)
            row["ratio"] = row["pyhf_jax_s"] / row["gradfit_s"]
        row["loadavg"] = os.getloadavg()
        rows.append(row)
        print(row, file=sys.stderr)
    return rows


def dask_toys(a):
    from distributed import Client, LocalCluster

    import gradfit.dask

    ws, patch = paths(a.shared, "atlas-susy-2018-31-sbottom-regionA", True)
    n = a.toys
    model = gradfit.Workspace(ws).model(patches=[json.load(open(patch))])
    out = "/tmp/gradfit-bench-toys.json"
    cli, dk = [], []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, Client(c) as cl:
        gradfit.dask.toys(model, 1.0, 20, 0, cl, n_shards=2)  # workers compile the model once
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            subprocess.run([a.gradfit, "toys", ws, "-p", patch, "--mu", "1", "--toys", str(n), "--seed", "1",
                            "-o", out], check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run = gradfit.dask.toys(model, 1.0, n, 1, cl, n_shards=2)
            dk.append(time.perf_counter() - t0)
    same = open(out).read() == run.json
    fits = 4 * n
    return {"workspace": "atlas-susy-2018-31-sbottom-regionA", "toys_per_hypothesis": n,
            "cli_s": min(cli), "dask_s": min(dk), "cli_fits_per_s": fits / min(cli),
            "dask_fits_per_s": fits / min(dk), "ratio": min(cli) / min(dk), "identical_file": same,
            "rounds": a.rounds, "loadavg": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradfit", default="target/release/gradfit")
    ap.add_argument("--shared", default=os.environ.get("GRADFIT_SHARED", "../shared"))
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--toys", type=int, default=2000)
    ap.add_argument("--workspaces", nargs="*", help="hypotest: only these shared workspaces")
    ap.add_argument("--pyhf-repeat", type=int, default=3, help="hypotest: pyhf calls per round (median)")
    ap.add_argument("--rounds", type=int, default=5, help="repeat each measurement, keep the best")
    ap.add_argument("--skip-pyhf", action="store_true")
    ap.add_argument("--only", choices=["fit", "hypotest", "dask"])
    a = ap.parse_args()
    res = {}
    if a.only in (None, "fit"):
        res["fit_overhead"] = fit_overhead(a)
        print(res["fit_overhead"], file=sys.stderr)
    if a.only in (None, "hypotest"):
        res["hypotest"] = hypotests(a)
    if a.only in (None, "dask"):
        res["dask_toys"] = dask_toys(a)
        print(res["dask_toys"], file=sys.stderr)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
