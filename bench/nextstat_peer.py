"""NextStat (nextstat-cli from PyPI, a Rust engine like gradfit) as a peer of
bench/compare.py: free fits, asymptotic CLs, toy CLs and the refit ranking on
the shared workspaces, timed as commands (start-up included, as gradfit's
"command" column), with the results compared.

NextStat reads a workspace file, so the signal patch is applied first (with
jsonpatch, which pyhf depends on). Its default interpolation (`root`: normsys
code4, histosys code4p) is the one of the shared references and of gradfit's
runs here. Fits run on one thread (NextStat's default); toys on all cores
(`--threads 0`), as gradfit's.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time


def stats(times):
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


def patched(shared, name, tmp):
    """The workspace with its signal patch applied, written to tmp (the workspace itself without one)."""
    ws = os.path.join(shared, "workspaces", f"{name}.json")
    patch = os.path.join(shared, "workspaces", f"{name}.signal-patch.json")
    if not os.path.exists(patch):
        return ws
    import jsonpatch

    with open(ws) as f, open(patch) as g:
        doc = jsonpatch.apply_patch(json.load(f), json.load(g))
    out = os.path.join(tmp, f"{name}.patched.json")
    with open(out, "w") as f:
        json.dump(doc, f)
    return out


def run(ns, args, timeout, repeats):
    """Run `nextstat ARGS -o FILE` `repeats` times; (stats, parsed output) or (None, note)."""
    times, value = [], None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        for _ in range(repeats):
            t0 = time.perf_counter()
            try:
                p = subprocess.run([ns] + args + ["-o", out], capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return None, f"over {timeout:.0f} s"
            if p.returncode != 0:
                return None, "failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:200]
            times.append(time.perf_counter() - t0)
            with open(out) as f:
                value = json.load(f)
    return stats(times), value


def rows(ns, shared, workspaces, tasks, gradfit_timed, binary, gargs, quick, budget):
    """The NextStat rows: one per workspace and task, each with gradfit's time beside it."""
    out = []
    rep = 2 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        for name in workspaces:
            ws = patched(shared, name, tmp)
            ref_path = os.path.join(shared, "references", f"{name}.json")
            ref = json.load(open(ref_path)) if os.path.exists(ref_path) else {}

            def left(default):
                return max(30.0, min(default, budget.left() - 60))

            if "fit" in tasks:
                g, gv = gradfit_timed(binary, ["fit"] + gargs(name) + ["--json"], rep)
                s, v = run(ns, ["fit", "-i", ws], left(120), rep)
                row = {"workspace": name, "task": "free fit", "gradfit_command": g, "notes": []}
                if s is None:
                    row["notes"].append(f"NextStat: {v}")
                else:
                    row["nextstat"] = s
                    best = ref.get("fit_free", {}).get("twice_nll")
                    row["gradfit_twice_nll"], row["nextstat_twice_nll"] = gv["twice_nll"], v["twice_nll"]
                    if best is not None:
                        row["notes"].append(
                            f"twice_nll above pyhf's minimum: gradfit {gv['twice_nll'] - best:.1e}, NextStat {v['twice_nll'] - best:.1e}"
                        )
                    row["agree"] = abs(gv["twice_nll"] - v["twice_nll"]) <= 1e-3
                out.append(row)
            if "cls" in tasks:
                g, gc = gradfit_timed(binary, ["cls"] + gargs(name) + ["--mu", "1", "--json"], rep)
                s, v = run(ns, ["hypotest", "-i", ws, "--mu", "1", "--expected-set"], left(120), rep)
                row = {"workspace": name, "task": "CLs at mu=1 (qtilde)", "gradfit_command": g, "notes": []}
                if s is None:
                    row["notes"].append(f"NextStat: {v}")
                else:
                    row["nextstat"] = s
                    row["notes"].append(f"CLs obs gradfit {gc['cls_obs']:.5f}, NextStat {v['cls']:.5f}")
                    row["agree"] = abs(gc["cls_obs"] - v["cls"]) <= 1e-3 * abs(gc["cls_obs"]) + 1e-7
                out.append(row)
            if "toys" in tasks:
                n = 50 if quick else 1000
                g, gt = gradfit_timed(binary, ["cls"] + gargs(name) + ["--mu", "1", "--toys", str(n), "--seed", "1", "--json"], 1)
                s, v = run(ns, ["hypotest-toys", "-i", ws, "--mu", "1", "--n-toys", str(n), "--seed", "1", "--threads", "0"], left(300), 1)
                row = {"workspace": name, "task": f"toy CLs at mu=1 ({n} toys per hypothesis)", "gradfit_command": g, "notes": []}
                if s is None:
                    row["notes"].append(f"NextStat: {v}")
                else:
                    row["nextstat"] = s
                    row["notes"].append(
                        f"fits/s gradfit {4 * n / g['median']:.0f}, NextStat {4 * n / s['median']:.0f}; "
                        f"toy CLs gradfit {gt['cls_obs']:.3f}, NextStat {v['cls']:.3f}"
                    )
                    # different random numbers: agreement within 3 binomial standard errors (at least 0.02)
                    sigma = max(0.02, 3 * (max(gt["cls_obs"], 1e-3) * (1 - min(gt["cls_obs"], 1)) / n) ** 0.5)
                    row["agree"] = abs(gt["cls_obs"] - v["cls"]) <= sigma
                out.append(row)
            if "impacts" in tasks and name.endswith("sbottom-regionA"):
                g, gi = gradfit_timed(binary, ["impacts"] + gargs(name) + ["--method", "refit", "--json"], 2 if quick else 3)
                s, v = run(ns, ["viz", "ranking", "-i", ws], left(600), 1)
                row = {"workspace": name, "task": "impacts (refit ranking)", "gradfit_command": g, "notes": [], "agree": None}
                if s is None:
                    row["notes"].append(f"NextStat: {v}")
                else:
                    row["nextstat"] = s
                    row["notes"].append(f"NextStat ranks {len(v.get('names', []))} parameters")
                    entries = gi if isinstance(gi, list) else gi.get("parameters", gi.get("impacts", []))
                    mine = {e["name"]: e for e in entries}
                    worst, largest, compared = 0.0, 0.0, 0
                    for lab, up, down in zip(v.get("names", []), v.get("delta_mu_up", []), v.get("delta_mu_down", [])):
                        e = mine.get(lab)
                        if not e or "refit_postfit_up" not in e:
                            continue
                        for a, b in [(e["refit_postfit_up"], up), (e["refit_postfit_down"], down)]:
                            worst, largest, compared = max(worst, abs(a - b)), max(largest, abs(a)), compared + 1
                    if compared:
                        row["notes"].append(
                            f"largest post-fit impact difference {worst:.2g} (largest impact {largest:.2g}) over {compared} values"
                        )
                        row["agree"] = worst <= max(1e-3, 0.05 * largest)
                out.append(row)
    return out


def markdown(rows, fmt_t, ratio):
    lines = [
        "",
        "NextStat (nextstat-cli, Rust) beside gradfit, both as commands (start-up included):",
        "",
        "| workspace | task | gradfit command | NextStat | speed-up | agree | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agree = {True: "yes", False: "**NO**", None: "—"}[r.get("agree")]
        lines.append(
            f"| {r['workspace']} | {r['task']} | {fmt_t(r.get('gradfit_command'))} | {fmt_t(r.get('nextstat'))} | "
            f"{ratio(r.get('gradfit_command'), r.get('nextstat'))} | {agree} | {'; '.join(r.get('notes', []))} |"
        )
    return lines
