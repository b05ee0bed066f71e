import pyhf
import json

import numpy as np


def run(workspace_path):
    pyhf.set_backend("numpy", "minuit")
    with open(workspace_path) as f:
        spec = json.load(f)
    ws = pyhf.Workspace(spec)
    model = ws.model()
    data = ws.data(model)
    init = model.config.suggested_init()
    bestfit, twice_nll = pyhf.infer.mle.fit(data, model, return_uncertainties=True, return_fitted_val=True)
    fixed = pyhf.infer.mle.fixed_poi_fit(0.5, data, model)
    return {
        "par_names": list(model.config.par_names),
        "poi_index": model.config.poi_index,
        "npars": model.config.npars,
        "bestfit": np.asarray(bestfit)[:, 0],
        "errors": np.asarray(bestfit)[:, 1],
        "twice_nll": float(twice_nll),
        "fixed_poi_fit": np.asarray(fixed),
        "logpdf_init": float(model.logpdf(init, data)[0]),
        "expected_data": np.asarray(model.expected_data(init)),
        "expected_actualdata": np.asarray(model.expected_actualdata(init)),
        "par_slice_mu": model.config.par_slice(model.config.poi_name),
    }
