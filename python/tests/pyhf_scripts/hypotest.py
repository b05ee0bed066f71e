import pyhf
import json

import numpy as np


def run(workspace_path):
    pyhf.set_backend("numpy")
    with open(workspace_path) as f:
        ws = pyhf.Workspace(json.load(f))
    model = ws.model()
    data = ws.data(model)
    out = {}
    for mu in (0.5, 1.0, 2.0):
        cls_obs, (clsb, clb), cls_exp_set = pyhf.infer.hypotest(
            mu, data, model, test_stat="qtilde", return_tail_probs=True, return_expected_set=True
        )
        out[mu] = [float(cls_obs), float(clsb), float(clb)] + [float(x) for x in cls_exp_set]
    p0, exp = pyhf.infer.hypotest(0.0, data, model, test_stat="q0", return_expected=True)
    out["q0"] = [float(p0), float(exp)]
    return out
