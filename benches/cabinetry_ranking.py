"""cabinetry's refit ranking of a shared workspace, timed, for comparison with
`gradfit impacts` (docs/report.md). Not part of CI; needs `pip install cabinetry`.

    python benches/cabinetry_ranking.py atlas-susy-2018-31-sbottom-regionA [numpy|jax]

Writes OUT/NAME.BACKEND.json (OUT: $CABINETRY_OUT or the current folder) with
the timings and the four impacts per parameter.
"""
import os
import json, sys, time
import jsonpatch, pyhf, cabinetry, numpy as np
name = sys.argv[1]
backend = sys.argv[2] if len(sys.argv) > 2 else "numpy"
S = os.path.join(os.environ.get("GRADFIT_SHARED", "../shared"), "workspaces") + "/"
spec = json.load(open(S + name + ".json"))
try:
    patch = json.load(open(S + name + ".signal-patch.json"))
    spec = jsonpatch.apply_patch(spec, patch)
except FileNotFoundError:
    pass
pyhf.set_backend(backend)
ws = pyhf.Workspace(spec)
model, data = cabinetry.model_utils.model_and_data(ws)
t0 = time.time(); fr = cabinetry.fit.fit(model, data); t1 = time.time()
print("fit", t1 - t0, "s; twice_nll", fr.best_twice_nll, flush=True)
t2 = time.time(); rr = cabinetry.fit.ranking(model, data, fit_results=fr); t3 = time.time()
nfits = int(sum((np.array(x) != 0).sum() for x in [rr.prefit_up, rr.prefit_down, rr.postfit_up, rr.postfit_down]))
print("ranking", t3 - t2, "s", flush=True)
json.dump({"fit_seconds": t1 - t0, "ranking_seconds": t3 - t2, "backend": backend,
           "labels": rr.labels, "prefit_up": rr.prefit_up.tolist(), "prefit_down": rr.prefit_down.tolist(),
           "postfit_up": rr.postfit_up.tolist(), "postfit_down": rr.postfit_down.tolist(),
           "bestfit": fr.bestfit.tolist(), "uncertainty": fr.uncertainty.tolist(), "labels_all": fr.labels,
           "nonzero_impacts": nfits}, open(os.path.join(os.environ.get("CABINETRY_OUT", "."), f"{name}.{backend}.json"), "w"))
