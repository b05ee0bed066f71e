import pyhf
import json

import numpy as np


def run(workspace_path):
    pyhf.set_backend("numpy")
    with open(workspace_path) as f:
        ws = pyhf.Workspace(json.load(f))
    model = ws.model()
    data = ws.data(model)
    scan = np.linspace(0.0, 5.0, 11)
    obs, exp, (points, results) = pyhf.infer.intervals.upper_limits.upper_limit(
        data, model, scan=scan, level=0.05, return_results=True
    )
    return {
        "limits": [float(obs)] + [float(x) for x in exp],
        "points": [float(x) for x in points],
        "cls_obs": [float(r[0]) for r in results],
        "cls_exp": [[float(x) for x in r[1]] for r in results],
    }
