import pyhf
import json

import numpy as np


def run(workspace_path, patchset_path):
    pyhf.set_backend("numpy")
    with open(workspace_path) as f:
        ws = pyhf.Workspace(json.load(f))
    with open(patchset_path) as f:
        patchset = pyhf.PatchSet(json.load(f))
    results = {}
    for patch in patchset.patches:
        model = ws.model(patches=[patch])
        data = ws.data(model)
        cls_obs, cls_exp = pyhf.infer.hypotest(1.0, data, model, test_stat="qtilde", return_expected_set=True)
        results[patch.name] = [float(cls_obs)] + [float(x) for x in cls_exp]
    model = ws.model(patches=[patchset["mass_800"]])
    results["by_name"] = float(pyhf.infer.hypotest(1.0, ws.data(model), model))
    return results
