"""Python and the command line give the same numbers (the same library code
runs behind both): fits, CLs, limits, toys (the toy file byte for byte)."""

import json
import subprocess

import numpy as np

import gradfit
from conftest import gradfit_bin


def cli(*args):
    r = subprocess.run([gradfit_bin(), *args, "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_fit_equals_cli(two_channel):
    ws = gradfit.Workspace(two_channel)
    m = ws.model()
    x, corr, twice_nll = gradfit.infer.mle.fit(ws.data(m), m, return_uncertainties=True,
                                               return_correlations=True, return_fitted_val=True)
    c = cli("fit", two_channel)
    assert c["par_names"] == m.config.par_names
    assert np.array_equal(x[:, 0], np.array(c["values"]))
    assert np.array_equal(x[:, 1], np.array(c["errors"]))
    assert float(twice_nll) == c["twice_nll"]
    assert np.array_equal(corr, np.array(c["correlation"]))


def test_fixed_poi_fit_equals_cli(two_channel):
    ws = gradfit.Workspace(two_channel)
    m = ws.model()
    x = gradfit.infer.mle.fixed_poi_fit(2.0, ws.data(m), m)
    c = cli("fit", two_channel, "--poi-value", "2")
    assert np.array_equal(x, np.array(c["values"]))


def test_hypotest_and_limit_equal_cli(two_channel):
    ws = gradfit.Workspace(two_channel)
    m = ws.model()
    r = gradfit.infer.hypotest_result(1.5, ws.data(m), m)
    c = cli("cls", two_channel, "--mu", "1.5")
    assert r["cls_obs"] == c["cls_obs"] and list(r["cls_exp"]) == c["cls_exp"]
    obs, exp = gradfit.infer.intervals.upper_limits.upper_limit(ws.data(m), m)
    lim = cli("limit", two_channel)
    assert float(obs) == lim["obs"] and [float(e) for e in exp] == lim["exp"]


def test_patched_model_equals_cli(two_channel, patchset_path):
    ps = gradfit.PatchSet(patchset_path)
    ws = ps.apply(gradfit.Workspace(two_channel), "mass_800")
    m = ws.model()
    r = gradfit.infer.hypotest_result(1.0, ws.data(m), m)
    c = cli("cls", two_channel, "--patchset", patchset_path, "--patch-name", "mass_800")
    assert r["cls_obs"] == c["cls_obs"]


def test_toy_file_equals_cli(two_channel, tmp_path):
    m = gradfit.Workspace(two_channel).model()
    run = gradfit.toys.run(m, 1.0, 60, seed=11)
    out = tmp_path / "toys.json"
    subprocess.run([gradfit_bin(), "toys", two_channel, "--mu", "1", "--toys", "60", "--seed", "11",
                    "-o", str(out)], check=True, capture_output=True, timeout=300)
    assert out.read_text() == run.json
    assert gradfit.toys.ToyRun.load(out) == run
