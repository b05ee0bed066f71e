"""neos's four-blob demo trained in PyTorch through gradfit.torch.

The samples are the library's (``gradfit.torch.neos_data``: the same points as
``cargo run --release --example neos``); a 2-64-64-1 network in PyTorch maps
each point to (0, 1); KDE histograms (bandwidth 0.1, 4 bins) of its outputs,
scaled as neos does, are the templates of a HistFactory model (a normfactor on
the signal, a histosys on the background from the up and down samples); the
loss is the expected CLs at mu = 1 on the background-only Asimov data (q~),
with its gradient through the fits from the library. Test metric: CLs with hard
histograms of the test quarter, as the Rust example reports it.

    python python/examples/neos_torch.py [--steps 10] [--seed 0] [--json] [--export ws.json]

``--export`` writes the trained network's test-set model (hard histograms) as a
pyhf workspace whose observed data is the background-only Asimov data, so that
``gradfit cls ws.json --mu 1`` (or pyhf) recomputes the final test CLs.
"""

import argparse
import json
import math
import time

import torch

import gradfit.torch as gt

SPEC = {
    "channels": [{"name": "singlechannel", "nbins": 4, "samples": [
        {"name": "signal", "modifiers": [{"type": "normfactor", "name": "mu"}]},
        {"name": "background", "modifiers": [{"type": "histosys", "name": "correlated_bkg_uncertainty"}]},
    ]}],
    "poi": "mu",
}
EDGES = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
SCALES = [2.0, 10.0, 10.0, 10.0]  # signal, background nominal, up, down
LUMI, FLOOR = 10.0, 1e-3


def kde_hist(x, bandwidth):
    z = (EDGES[None, :] - x[:, None]) / (bandwidth * math.sqrt(2.0))
    cdf = 0.5 * (1.0 + torch.erf(z)).sum(0)
    return cdf[1:] - cdf[:-1]


def hard_hist(x):
    idx = torch.clamp((x * (len(EDGES) - 1)).long(), 0, len(EDGES) - 2)
    return torch.bincount(idx, minlength=len(EDGES) - 1).to(torch.float64)


def templates(net, samples, bandwidth):
    hs = []
    for k, x in enumerate(samples):
        out = net(x).squeeze(1)
        h = kde_hist(out, bandwidth) if bandwidth > 0 else hard_hist(out.detach())
        hs.append(h / x.shape[0] * SCALES[k] * LUMI + FLOOR)
    signal, bkg, up, down = hs
    return {"signal": {"nominal": signal},
            "background": {"nominal": bkg, "correlated_bkg_uncertainty": (up, down)}}


def export(tp, path):
    """The model of templates ``tp`` as a pyhf workspace, observed = background-only Asimov data."""
    sig = tp["signal"]["nominal"].tolist()
    bkg = tp["background"]["nominal"].tolist()
    up, down = (x.tolist() for x in tp["background"]["correlated_bkg_uncertainty"])
    ws = {
        "channels": [{"name": "singlechannel", "samples": [
            {"name": "signal", "data": sig, "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": bkg, "modifiers": [
                {"name": "correlated_bkg_uncertainty", "type": "histosys",
                 "data": {"hi_data": up, "lo_data": down}}]},
        ]}],
        "observations": [{"name": "singlechannel", "data": bkg}],
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    with open(path, "w") as f:
        json.dump(ws, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-points", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--export", help="write the final test-set model as a pyhf workspace")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    data = gt.neos_data(a.n_points, a.seed)
    n_train = a.n_points * 3 // 4
    train = [d[:n_train] for d in data]
    test = [d[n_train:] for d in data]
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1), torch.nn.Sigmoid()).double()
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    model = gt.TemplateModel(SPEC)
    gen = torch.Generator().manual_seed(a.seed)

    def test_cls():
        with torch.no_grad():
            return gt.cls_loss(model, templates(net, test, 0.0)).item()

    rows = [{"step": "before", "test_cls": test_cls()}]
    for step in range(a.steps):
        t0 = time.perf_counter()
        idx = torch.randperm(n_train, generator=gen)[: a.batch]
        opt.zero_grad()
        metrics = {}
        loss = gt.cls_loss(model, templates(net, [x[idx] for x in train], 0.1), metrics=metrics)
        loss.backward()
        opt.step()
        rows.append({"step": step, "train_cls": loss.item(), "test_cls": test_cls(),
                     "seconds": time.perf_counter() - t0})
    if a.export:
        with torch.no_grad():
            export(templates(net, test, 0.0), a.export)
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'step':>6} {'train CLs':>11} {'test CLs':>11} {'s':>6}")
        for r in rows:
            print(f"{r['step']:>6} {r.get('train_cls', float('nan')):11.3e} {r['test_cls']:11.3e} "
                  f"{r.get('seconds', 0.0):6.3f}")


if __name__ == "__main__":
    main()
