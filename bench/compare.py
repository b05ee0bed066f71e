#!/usr/bin/env python3
"""Side-by-side benchmarks of gradfit against pyhf (NumPy and JAX), cabinetry and NextStat.

Run through bench/compare.sh, which builds gradfit and prepares the Python
environment. Every figure is the median of several repeats (with min and max);
every row first checks that both tools agree on the result and marks the row
when they do not. Each peer measurement runs in its own Python process with a
time limit, so a slow peer is skipped (and says so) instead of stalling the
run; a global time budget keeps the whole run under 30 minutes.

    python3 bench/compare.py --gradfit target/release/gradfit --shared ../shared \
        --out-json bench/results.json --out-md bench/results.md
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WORKSPACES = [
    "atlas-susy-2018-31-sbottom-regionA",
    "atlas-susy-2018-04-staus",
    "atlas-susy-2019-09-3l-offshell",
    "atlas-tttt",
]
SBOTTOM = "atlas-susy-2018-31-sbottom-regionA"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def stats(times):
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


# --------------------------------------------------------------------------- worker side


def load_pyhf(shared, name):
    import pyhf

    ws_path = os.path.join(shared, "workspaces", f"{name}.json")
    patch_path = os.path.join(shared, "workspaces", f"{name}.signal-patch.json")
    ws = pyhf.Workspace(json.load(open(ws_path)))
    patches = []
    if os.path.exists(patch_path):
        patches = [pyhf.patchset.Patch({"metadata": {"name": "signal", "values": []}, "patch": json.load(open(patch_path))})]
    model = ws.model(patches=patches)
    return model, ws.data(model)


def worker(args):
    """One peer measurement; prints a JSON object on stdout."""
    import pyhf

    if args.backend == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        if args.task == "toys":
            # pyhf 0.7.6 passes `interpolation=` to jnp.percentile, which JAX
            # 0.10 no longer accepts (its name is `method=`): the toy calculator's
            # expected band fails without this one-line compatibility shim
            import jax.numpy as jnp
            from pyhf.tensor.jax_backend import jax_backend

            def percentile(self, tensor_in, q, axis=None, interpolation="linear"):
                return jnp.percentile(tensor_in, q, axis=axis, method=interpolation)

            jax_backend.percentile = percentile
    pyhf.set_backend(args.backend, "scipy")
    model, data = load_pyhf(args.shared, args.workspace)
    out = {}
    if args.task == "fit":
        fn = lambda: pyhf.infer.mle.fit(data, model, return_fitted_val=True)  # noqa: E731
    elif args.task == "cls":
        fn = lambda: pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde", return_expected_set=True)  # noqa: E731
    elif args.task == "limit":
        lo, hi = (float(b) for b in model.config.suggested_bounds()[model.config.poi_index])
        if args.backend == "jax":
            # scipy's toms748 computes its next POI value from the returned CLs,
            # which on JAX are JAX arrays, and pyhf 0.7.6 caches hypotests in a
            # dict keyed by that value (unhashable): hand it plain floats
            import pyhf.infer.intervals.upper_limits as ul

            hypotest = ul.hypotest

            def float_hypotest(*a, **k):
                obs, exp = hypotest(*a, **k)
                return float(obs), [float(e) for e in exp]

            ul.hypotest = float_hypotest
        fn = lambda: pyhf.infer.intervals.upper_limits.toms748_scan(data, model, max(lo, 1e-3), hi, rtol=1e-5, level=0.05)  # noqa: E731
    elif args.task == "toys":
        fn = lambda: pyhf.infer.hypotest(  # noqa: E731
            1.0, data, model, test_stat="qtilde", calctype="toybased", ntoys=args.ntoys, track_progress=False,
            return_tail_probs=True,
        )
    elif args.task == "ranking":
        import cabinetry

        def fn():
            fr = cabinetry.fit.fit(model, data)
            return cabinetry.fit.ranking(model, data, fit_results=fr)

    else:
        raise SystemExit(f"unknown task {args.task}")
    if args.warmup:
        t0 = time.perf_counter()
        fn()
        out["warmup_s"] = time.perf_counter() - t0
    times = []
    value = None
    start = time.perf_counter()
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > args.soft_budget:
            break
    out["times"] = times
    if args.task == "fit":
        pars, val = value
        out["twice_nll"] = float(val)
    elif args.task == "cls":
        obs, exp = value
        out["cls"] = [float(obs)] + [float(x) for x in exp]
    elif args.task == "limit":
        obs, exp = value
        out["limit"] = [float(obs)] + [float(x) for x in exp]
    elif args.task == "toys":
        cls, (clsb, clb) = value
        out["cls_clsb_clb"] = [float(cls), float(clsb), float(clb)]
    elif args.task == "ranking":
        out["labels"] = list(value.labels)
        out["postfit_up"] = [float(x) for x in value.postfit_up]
        out["postfit_down"] = [float(x) for x in value.postfit_down]
    print(json.dumps(out))


# --------------------------------------------------------------------------- orchestrator


class Budget:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()


def peer(args, budget, task, backend, workspace, timeout, repeats, warmup, ntoys=0):
    """Run one peer measurement in a subprocess; returns (result dict or None, note)."""
    timeout = min(timeout, budget.left() - 60)
    if timeout < 30:
        return None, "skipped: overall time budget spent"
    cmd = [
        sys.executable, os.path.abspath(__file__), "worker", "--task", task, "--backend", backend,
        "--workspace", workspace, "--shared", args.shared, "--repeats", str(repeats),
        "--soft-budget", str(0.5 * timeout), "--ntoys", str(ntoys),
    ] + (["--warmup"] if warmup else [])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"skipped: over {timeout:.0f} s"
    if p.returncode != 0:
        return None, "failed: " + p.stderr.strip().splitlines()[-1][:200] if p.stderr.strip() else "failed"
    return json.loads(p.stdout.strip().splitlines()[-1]), ""


def gradfit(binary, args, timeout=900):
    t0 = time.perf_counter()
    p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if p.returncode not in (0, 3):
        raise RuntimeError(f"gradfit {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-300:]}")
    return json.loads(p.stdout), dt


def gradfit_timed(binary, args, repeats):
    times, value = [], None
    for _ in range(repeats):
        value, dt = gradfit(binary, args)
        times.append(dt)
    return stats(times), value


def close(a, b, rtol, atol=0.0):
    return abs(a - b) <= rtol * abs(b) + atol


def impacts_row(args, binary, budget, quick, gargs, add):
    """cabinetry's ranking vs gradfit's refit ranking and Hessian impacts on sbottom."""
    log("== impacts: sbottom")
    row = {"workspace": SBOTTOM, "task": "impacts (refit ranking)", "notes": []}
    gi = None
    try:
        row["gradfit_command"], gi = gradfit_timed(binary, ["impacts"] + gargs(SBOTTOM) + ["--method", "refit", "--json"], 2 if quick else 3)
        row["gradfit_hessian_command"], _ = gradfit_timed(binary, ["impacts"] + gargs(SBOTTOM) + ["--method", "hessian", "--json"], 3)
    except Exception as e:  # noqa: BLE001
        row["notes"].append(f"gradfit impacts: {e}")
    # cabinetry on pyhf's JAX backend (Minuit with JAX gradients): with its
    # default NumPy backend the 262 refits took 1065 s here (docs/report.md),
    # more than this whole run may take
    if quick:
        r, note = None, "not run in --quick mode (about 8 minutes)"
    else:
        r, note = peer(args, budget, "ranking", "jax", SBOTTOM, 720, 1, False)
    if r is None:
        row["notes"].append(f"cabinetry: {note}")
        row["agree"] = None
    else:
        row["cabinetry"] = stats(r["times"])
        row["cabinetry_refits"] = 4 * len(r["labels"])
        row["agree"] = None
        if gi is not None:
            entries = gi if isinstance(gi, list) else gi.get("parameters", gi.get("impacts", []))
            mine = {p["name"]: p for p in entries}
            # absolute differences: on sbottom the POI sits at its bound and
            # every impact is (nearly) zero, so relative ones mean nothing;
            # tolerance 5% of the largest impact, at least 1e-3 (Minuit's precision)
            worst, largest, compared = 0.0, 0.0, 0
            for lab, up, down in zip(r["labels"], r["postfit_up"], r["postfit_down"]):
                p = mine.get(lab)
                if not p or "refit_postfit_up" not in p:
                    continue
                for a, b in [(p["refit_postfit_up"], up), (p["refit_postfit_down"], down)]:
                    worst = max(worst, abs(a - b))
                    largest = max(largest, abs(b))
                    compared += 1
            row["max_abs_diff_postfit_impacts"] = worst
            row["largest_postfit_impact"] = largest
            row["impacts_compared"] = compared
            row["agree"] = compared > 0 and worst <= max(1e-3, 0.05 * largest)
    add(row)


def orchestrate(args):
    binary = os.path.abspath(args.gradfit)
    budget = Budget(args.budget)
    quick = args.quick
    rep = 2 if quick else 5
    versions = {"gradfit": subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()}
    for mod in ["pyhf", "jax", "jaxlib", "scipy", "numpy", "cabinetry", "iminuit"]:
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            versions[mod] = "n/a"
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": versions,
        "command": " ".join(sys.argv),
        "rows": [],
    }
    rows = results["rows"]

    def add(row):
        rows.append(row)
        log(json.dumps(row))

    def gargs(name):
        ws = os.path.join(args.shared, "workspaces", f"{name}.json")
        patch = os.path.join(args.shared, "workspaces", f"{name}.signal-patch.json")
        return [ws] + (["-p", patch] if os.path.exists(patch) else [])

    tasks = set(args.tasks.split(","))
    unknown = tasks - {"fit", "cls", "toys", "impacts", "limit"}
    if unknown:
        raise SystemExit(f"unknown task(s) {sorted(unknown)}: choose from fit,cls,toys,impacts,limit")

    def selected(task, names):
        return names if task in tasks else []

    # 1. free fits
    for name in selected("fit", WORKSPACES):
        log(f"== free fit: {name}")
        gv, _ = gradfit(binary, ["fit"] + gargs(name) + ["--json", "--repeat", "20"])
        t = gv["timing"]
        row = {
            "workspace": name, "task": "free fit", "parameters": len(gv["par_names"]),
            "gradfit_inprocess": {"median": t["median_s"], "min": t["min_s"], "max": t["max_s"], "n": t["repeats"]},
            "gradfit_twice_nll": gv["twice_nll"],
        }
        row["gradfit_command"], _ = gradfit_timed(binary, ["fit"] + gargs(name) + ["--json"], rep)
        notes = []
        for backend, timeout, warm in [("numpy", 125, False), ("jax", 300, True)]:
            r, note = peer(args, budget, "fit", backend, name, timeout, 1 if backend == "numpy" else (2 if quick else 3), warm)
            if r is None:
                notes.append(f"pyhf {backend}: {note}")
                continue
            if backend == "numpy" and r["times"][0] > 120:
                notes.append(f"pyhf numpy: skipped, one fit took {r['times'][0]:.0f} s (> 120 s)")
                continue
            row[f"pyhf_{backend}"] = stats(r["times"])
            row[f"pyhf_{backend}_twice_nll"] = r["twice_nll"]
            if "warmup_s" in r:
                row["pyhf_jax_first_call_s"] = r["warmup_s"]
        others = [row[k] for k in ["pyhf_numpy_twice_nll", "pyhf_jax_twice_nll"] if k in row]
        row["agree"] = all(row["gradfit_twice_nll"] <= o + 1e-3 for o in others) if others else None
        row["notes"] = notes
        add(row)

    # 2. asymptotic CLs at mu = 1
    for name in selected("cls", WORKSPACES):
        log(f"== CLs: {name}")
        st, gc = gradfit_timed(binary, ["cls"] + gargs(name) + ["--mu", "1", "--json"], rep)
        row = {"workspace": name, "task": "CLs at mu=1 (qtilde)", "gradfit_command": st, "gradfit_cls": [gc["cls_obs"]] + gc["cls_exp"], "notes": []}
        r, note = peer(args, budget, "cls", "jax", name, 400, 1 if quick else 2, True)
        if r is None:
            row["notes"].append(f"pyhf jax: {note}")
            row["agree"] = None
        else:
            row["pyhf_jax"] = stats(r["times"])
            row["pyhf_cls"] = r["cls"]
            row["agree"] = all(close(a, b, 1e-3, 1e-7) for a, b in zip(row["gradfit_cls"], r["cls"]))
        add(row)

    # 3. toys: fits per second
    for name in selected("toys", WORKSPACES):
        log(f"== toys: {name}")
        big = name in ("atlas-tttt", "atlas-susy-2019-09-3l-offshell")
        n_gf = 50 if quick else (200 if big else 1000)
        n_py = 2 if quick else (4 if big else 20)
        st, gt = gradfit_timed(binary, ["cls"] + gargs(name) + ["--mu", "1", "--toys", str(n_gf), "--seed", "1", "--json"], 1)
        row = {
            "workspace": name, "task": "toys (qtilde, mu=1)", "gradfit_command": st, "gradfit_toys": n_gf,
            "gradfit_fits_per_s": 4 * n_gf / st["median"], "notes": [], "agree": None,
            "gradfit_failed_toys": gt.get("n_failed", 0),
        }
        if row["gradfit_failed_toys"]:
            row["notes"].append(f"gradfit: {row['gradfit_failed_toys']} toys with a failed fit, reported and left out")
        r, note = peer(args, budget, "toys", "jax", name, 420, 1, True, ntoys=n_py)
        if r is None:
            row["notes"].append(f"pyhf jax: {note}")
        else:
            row["pyhf_jax"] = stats(r["times"])
            row["pyhf_toys"] = n_py
            row["pyhf_fits_per_s"] = 4 * n_py / statistics.median(r["times"])
            # toy CLs of both within 3 combined standard errors (delta method
            # on CLs = CLs+b / CLb with binomial errors of the two tail counts)
            g = [gt["cls_obs"], gt["clsb_obs"], gt["clb_obs"]]
            q = r["cls_clsb_clb"]
            row["gradfit_toy_cls"], row["pyhf_toy_cls"] = g, q

            def var(v, n):
                cls, a, b = v
                if a <= 0 or b <= 0:
                    return 1.0 / n
                return cls * cls * (a * (1 - a) / n / a**2 + b * (1 - b) / n / b**2) + 1.0 / n**2

            sigma = (var(g, n_gf) + var(q, n_py)) ** 0.5
            row["toy_cls_sigma"] = sigma
            finite = all(v == v and abs(v) != float("inf") for v in g + q)
            if finite:
                row["agree"] = abs(g[0] - q[0]) <= 3 * sigma
            else:
                row["notes"].append("toy CLs not comparable (0/0 with pyhf's few toys)")
        add(row)

    # 4. impacts on sbottom: cabinetry's ranking vs gradfit's refit ranking and Hessian impacts
    for _ in selected("impacts", [SBOTTOM]):
        impacts_row(args, binary, budget, quick, gargs, add)

    # 5. upper limits (pyhf's take minutes: run where the reference run finished, while time is left)
    for name in selected("limit", WORKSPACES):
        log(f"== limit: {name}")
        st, gl = gradfit_timed(binary, ["limit"] + gargs(name) + ["--json"], 2 if quick else 3)
        row = {"workspace": name, "task": "95% CL upper limit", "gradfit_command": st, "gradfit_limit": [gl["obs"]] + gl["exp"], "notes": [], "agree": None}
        ref = json.load(open(os.path.join(args.shared, "references", f"{name}.json")))["upper_limit_95"]
        if ref is None:
            row["notes"].append("pyhf: not run (its NumPy reference run did not finish here; on JAX about 50 hypotests of 8-10 s)")
        elif quick:
            row["notes"].append(f"pyhf: not run in --quick mode (reference run took {ref['seconds']:.0f} s)")
        else:
            # one cold run: a warm-up would double a run of several minutes, and
            # JAX's compilation is a small part of the ~100 fits a limit takes
            r, note = peer(args, budget, "limit", "jax", name, 700, 1, False)
            if r is None:
                row["notes"].append(f"pyhf jax: {note} (reference run took {ref['seconds']:.0f} s)")
            else:
                row["pyhf_jax"] = stats(r["times"])
                row["pyhf_limit"] = r["limit"]
                row["agree"] = all(close(a, b, 1e-2) for a, b in zip(row["gradfit_limit"], r["limit"]))
        add(row)

    # 6. NextStat (nextstat-cli) beside gradfit: fits, CLs, toys, ranking
    if args.nextstat:
        import nextstat_peer

        log("== NextStat")
        v = subprocess.run([args.nextstat, "--version"], capture_output=True, text=True).stdout.strip()
        results["versions"]["nextstat"] = v or "?"
        results["nextstat_rows"] = nextstat_peer.rows(
            args.nextstat, args.shared, WORKSPACES, tasks, gradfit_timed, binary, gargs, quick, budget
        )
        for r in results["nextstat_rows"]:
            log(json.dumps(r))

    results["elapsed_s"] = args.budget - budget.left()
    with open(args.out_json, "w") as f:
        json.dump(results, f, indent=1)
    write_markdown(results, args.out_md)
    log(f"done in {results['elapsed_s']:.0f} s; wrote {args.out_json} and {args.out_md}")


def fmt_t(s):
    if not s:
        return "—"
    if s["median"] >= 1:
        return f"{s['median']:.2f} s [{s['min']:.2f}, {s['max']:.2f}]"
    return f"{1e3 * s['median']:.3g} ms [{1e3 * s['min']:.3g}, {1e3 * s['max']:.3g}]"


def ratio(g, p, r=None):
    if r is None:
        if not g or not p:
            return "—"
        r = p["median"] / g["median"]
    return f"{r:.3g}x" if r >= 10 else f"{r:.2f}x"


def write_markdown(results, path):
    v = results["versions"]
    lines = [
        f"Measured {results['date']} on {results['machine']['platform']} ({results['machine']['cpus']} CPUs) in {results['elapsed_s']:.0f} s;",
        f"{v['gradfit']}, pyhf {v['pyhf']}, jax {v['jax']}, scipy {v['scipy']}, numpy {v['numpy']}, cabinetry {v['cabinetry']}, iminuit {v['iminuit']}.",
        "Times: median [min, max] over repeats.",
        "Speed-up = peer time / gradfit command time; for toys, gradfit fits/s / pyhf fits/s (the two run different numbers of toys).",
        "`agree` compares results first (twice_nll: gradfit not above pyhf + 1e-3; CLs: 1e-3 relative; limits: 1e-2; toy CLs: within 3 combined standard errors;"
        " impacts: within 5% of the largest, at least 1e-3); **NO** marks a disagreement, — means not comparable.",
        "",
        "| workspace | task | gradfit in-process | gradfit command | pyhf NumPy | pyhf JAX (warm) | speed-up | agree | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        agree = {True: "yes", False: "**NO**", None: "—"}[r.get("agree")]
        notes = list(r.get("notes", []))
        peer_t = r.get("pyhf_jax")
        if "gradfit_fits_per_s" in r:
            notes.append(f"gradfit {r['gradfit_fits_per_s']:.0f} fits/s ({r['gradfit_toys']} toys per hypothesis)")
        if "pyhf_fits_per_s" in r:
            notes.append(f"pyhf JAX {r['pyhf_fits_per_s']:.2f} fits/s ({r['pyhf_toys']} toys)")
            notes.append(f"toy CLs {r['gradfit_toy_cls'][0]:.3f} vs {r['pyhf_toy_cls'][0]:.3f} (3 sigma = {3 * r['toy_cls_sigma']:.2f})")
        if "pyhf_jax_first_call_s" in r:
            notes.append(f"pyhf JAX first call (compilation) {r['pyhf_jax_first_call_s']:.1f} s")
        if r.get("cabinetry"):
            peer_t = r["cabinetry"]
            notes.append(f"peer = cabinetry ranking (pyhf JAX backend, Minuit), {r['cabinetry_refits']} refits one by one")
            notes.append(f"gradfit Hessian impacts {fmt_t(r.get('gradfit_hessian_command'))}")
            if "max_abs_diff_postfit_impacts" in r:
                notes.append(
                    f"largest post-fit impact difference {r['max_abs_diff_postfit_impacts']:.2g} "
                    f"(largest impact {r['largest_postfit_impact']:.2g}) over {r['impacts_compared']} values"
                )
        if "gradfit_fits_per_s" in r and "pyhf_fits_per_s" in r:
            # toy rows: the two tools run different numbers of toys, so compare rates
            speedup = ratio(None, None, r["gradfit_fits_per_s"] / r["pyhf_fits_per_s"]) + " (fits/s)"
        else:
            speedup = ratio(r.get("gradfit_command"), peer_t)
        lines.append(
            f"| {r['workspace']} | {r['task']} | {fmt_t(r.get('gradfit_inprocess'))} | {fmt_t(r.get('gradfit_command'))} | "
            f"{fmt_t(r.get('pyhf_numpy'))} | {fmt_t(r.get('pyhf_jax')) if not r.get('cabinetry') else fmt_t(r.get('cabinetry')) + ' (cabinetry)'} | "
            f"{speedup} | {agree} | {'; '.join(notes)} |"
        )
    if results.get("nextstat_rows"):
        import nextstat_peer

        lines += nextstat_peer.markdown(results["nextstat_rows"], fmt_t, ratio)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode")
    w = sub.add_parser("worker")
    w.add_argument("--task", required=True)
    w.add_argument("--backend", default="jax")
    w.add_argument("--workspace", required=True)
    w.add_argument("--shared", required=True)
    w.add_argument("--repeats", type=int, default=3)
    w.add_argument("--soft-budget", type=float, default=60.0)
    w.add_argument("--ntoys", type=int, default=0)
    w.add_argument("--warmup", action="store_true")
    o = sub.add_parser("run")
    o.add_argument("--gradfit", required=True)
    o.add_argument("--shared", required=True)
    o.add_argument("--out-json", required=True)
    o.add_argument("--out-md", required=True)
    o.add_argument("--budget", type=float, default=27 * 60, help="overall time budget in seconds")
    o.add_argument("--quick", action="store_true", help="fewer repeats and toys, no pyhf limits (smoke test)")
    o.add_argument("--tasks", default="fit,cls,toys,impacts,limit", help="comma-separated subset of fit,cls,toys,impacts,limit")
    o.add_argument("--nextstat", default="", help="nextstat binary (nextstat-cli): adds NextStat rows")
    args = ap.parse_args()
    if args.mode == "worker":
        worker(args)
    elif args.mode == "run":
        orchestrate(args)
    else:
        ap.print_help()
        sys.exit(2)


if __name__ == "__main__":
    main()
