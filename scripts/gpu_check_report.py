#!/usr/bin/env python3
"""Tables of scripts/gpu-check.sh: reads the step results in RESDIR and writes
OUTDIR/gpu-check.md (markdown for docs/gpu.md) and OUTDIR/gpu-check.json.

Usage: gpu_check_report.py RESDIR OUTDIR
"""
import json
import re
import sys
from pathlib import Path

MODELS = ["sbottom", "staus", "tttt", "offshell"]


def read_steps(res):
    steps = {}
    path = res / "steps.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            name, rc, secs = line.split("\t")
            steps[name] = {"rc": int(rc), "seconds": float(secs)}
    return steps


def load_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fmt(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 1e4 or abs(x) < 1e-2:
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


def status(step):
    if step is None:
        return "not run"
    if step["rc"] == 0:
        return "ok"
    if step["rc"] == 124:
        return "timed out"
    return f"failed (rc {step['rc']})"


def host_refits(err_path):
    try:
        text = err_path.read_text()
    except OSError:
        return 0
    m = re.search(r"note: (\d+) toys had a fit that stalled or passed", text)
    return int(m.group(1)) if m else 0


def main():
    res, out = Path(sys.argv[1]), Path(sys.argv[2])
    steps = read_steps(res)
    device = (res / "device.txt").read_text().strip() if (res / "device.txt").exists() else "?"
    cores = (res / "nproc.txt").read_text().strip() if (res / "nproc.txt").exists() else "?"
    report = {"device": device, "cpu_cores": cores, "steps": steps, "selftests": {}, "toys": [], "commands": []}
    md = [f"Device: `{device.splitlines()[-1] if device else '?'}`; CPU cores: {cores}.", ""]

    # 1. selftests
    md += ["| selftest | result | comparisons passed | largest deviation / tolerance | seconds |", "|---|---|---|---|---|"]
    bench = []
    for name in ["builtins"] + MODELS:
        st = steps.get(f"selftest-{name}")
        rep = load_json(res / f"selftest-{name}.out")
        if st is None:
            continue
        if rep is None:
            md.append(f"| {name} | {status(st)} | - | - | {st['seconds']:.1f} |")
            continue
        checks = rep.get("checks", [])
        ok = sum(1 for c in checks if c["pass"])
        worst = max((c["value"] / c["tolerance"] for c in checks if c["tolerance"] > 0), default=0.0)
        md.append(f"| {name} | {status(st)} | {ok} of {len(checks)} | {fmt(worst)} | {st['seconds']:.1f} |")
        report["selftests"][name] = rep
        bench += rep.get("benchmark", [])
    md += ["", "| model | benchmark | batch | per second | GB/s (counted) | GFLOP/s (counted) |", "|---|---|---|---|---|---|"]
    for b in bench:
        md.append(
            f"| {b['model']} | {b['what']} | {b['batch']} | {fmt(b['per_second'])} | "
            f"{fmt(b.get('gbytes_per_s'))} | {fmt(b.get('gflops'))} |"
        )

    # 2. toys, CPU against GPU (4 fits per toy: two hypotheses, free and POI-fixed fits)
    md += [
        "",
        "| model | toys per hypothesis | CPU seconds | CPU fits/s | GPU seconds | GPU fits/s | GPU / CPU | toys finished on the host |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in MODELS:
        c, g = steps.get(f"toys-cpu-{name}"), steps.get(f"toys-gpu-{name}")
        if c is None and g is None:
            continue
        run = load_json(res / f"toys-cpu-{name}.json") or load_json(res / f"toys-gpu-{name}.json") or {}
        n = run.get("n_toys") or run.get("settings", {}).get("n_toys")
        fits = 4 * n if n else None
        row = {"model": name, "toys": n}
        cells = []
        for tag, st in (("cpu", c), ("gpu", g)):
            if st is None or st["rc"] != 0:
                cells += [status(st) if st else "-", "-"]
                row[tag] = None
            else:
                rate = fits / st["seconds"] if fits else None
                cells += [f"{st['seconds']:.2f}", fmt(rate)]
                row[tag] = {"seconds": st["seconds"], "fits_per_s": rate}
        ratio = (
            f"{row['cpu']['seconds'] / row['gpu']['seconds']:.2f}x" if row.get("cpu") and row.get("gpu") else "-"
        )
        row["host_refits"] = host_refits(res / f"toys-gpu-{name}.err")
        report["toys"].append(row)
        md.append(f"| {name} | {n or '?'} | {' | '.join(cells)} | {ratio} | {row['host_refits']} |")

    # 3. single fits, scans, refit impacts: wall seconds on both devices
    md += ["", "| model | command | --device cpu (s) | --device cuda (s) | cuda / cpu |", "|---|---|---|---|---|"]
    for name in MODELS:
        for cmd in ("fit", "scan", "impacts"):
            c, g = steps.get(f"{cmd}-cpu-{name}"), steps.get(f"{cmd}-cuda-{name}") or steps.get(f"{cmd}-cuda-emu-{name}")
            if c is None and g is None:
                continue
            cs = f"{c['seconds']:.3f}" if c and c["rc"] == 0 else status(c)
            gs = f"{g['seconds']:.3f}" if g and g["rc"] == 0 else status(g)
            ratio = f"{g['seconds'] / c['seconds']:.2f}" if c and g and c["rc"] == 0 and g["rc"] == 0 else "-"
            report["commands"].append({"model": name, "command": cmd, "cpu": c, "cuda": g})
            label = "impacts --method refit" if cmd == "impacts" else cmd
            md.append(f"| {name} | {label} | {cs} | {gs} | {ratio} |")

    ncu = steps.get("ncu-tttt")
    if ncu is not None:
        md += ["", f"Nsight Compute on tttt toys: {status(ncu)} ({ncu['seconds']:.0f} s); see ncu.txt."]
    (out / "gpu-check.md").write_text("\n".join(md) + "\n")
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
