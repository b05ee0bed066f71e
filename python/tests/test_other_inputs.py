"""Models that are not pyhf workspaces, through the same pyhf-shaped API: an
unbinned HS3 file and an NSBI workspace (small committed inputs). Fits are
checked against the independent references the Rust suites use (iminuit/zfit
for HS3: tests/refs/unbinned/refs.json; scipy for NSBI: tests/refs/nsbi_ref.json),
and fit, hypotest and the upper limit against the command line."""

import json
import subprocess

import numpy as np
import pytest

import gradfit
from conftest import ROOT, gradfit_bin

HS3 = ROOT / "tests" / "refs" / "unbinned" / "gauss_expo.json"
HS3_REFS = ROOT / "tests" / "refs" / "unbinned" / "refs.json"
NSBI = ROOT / "tests" / "data" / "nsbi" / "example" / "nsbi.json"
NSBI_REFS = ROOT / "tests" / "refs" / "nsbi_ref.json"


# the Gaussian's mean and width held constant: with nsig = 0 they are undetermined,
# and the background-only fits of the hypothesis test would not converge (the
# CLI fails there too, with the same message: test_unpatched_hs3_hypotest_fails_as_the_cli)
CONST_SHAPE = [{"op": "add", "path": f"/parameter_points/0/parameters/{i}/const", "value": True} for i in (2, 3)]


def cli(*args):
    r = subprocess.run([gradfit_bin(), *map(str, args), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module", params=["hs3", "nsbi"])
def loaded(request, tmp_path_factory):
    """(kind, the CLI's input arguments, Workspace, Model)."""
    if request.param == "hs3":
        patch = tmp_path_factory.mktemp("hs3") / "const_shape.json"
        patch.write_text(json.dumps(CONST_SHAPE))
        ws = gradfit.Workspace(HS3)
        return "hs3", [HS3, "-p", patch], ws, ws.model(patches=[CONST_SHAPE])
    ws = gradfit.Workspace(NSBI)
    return "nsbi", [NSBI], ws, ws.model()


def test_model_and_config(loaded):
    kind, path, ws, model = loaded
    assert model.kind == "combined"
    c = model.config
    assert c.poi_name == ("nsig" if kind == "hs3" else "mu")
    assert c.par_names[c.poi_index] == c.poi_name
    assert c.npars == len(c.suggested_init()) == len(c.suggested_bounds()) == len(c.suggested_fixed())
    assert c.par_slice(c.poi_name) == slice(c.poi_index, c.poi_index + 1)
    patches = [CONST_SHAPE] if kind == "hs3" else None
    assert gradfit.Model.from_file(path[0], patches=patches).digest == model.digest
    assert [p["name"] for p in cli("inspect", *path)["parameters"]] == c.par_names
    if kind == "hs3":
        fixed = c.suggested_fixed()
        assert [n for n, f in zip(c.par_names, fixed) if f] == ["mu", "sigma"]
    # the data of a non-binned model is a Data object; arrays are refused with a clear message
    d = ws.data(model)
    assert isinstance(d, gradfit.Data)
    with pytest.raises(gradfit.exceptions.InvalidInput, match="not a binned"):
        model.logpdf(c.suggested_init(), np.zeros(3))
    lp = model.logpdf(c.suggested_init(), d)
    assert lp.shape == (1,) and lp[0] == -0.5 * model.twice_nll(c.suggested_init(), d)


def test_hs3_fit_matches_iminuit():
    want = json.loads(HS3_REFS.read_text())["fits"]["gauss_expo"]
    ws = gradfit.Workspace(HS3)
    m = ws.model()
    x, tw = gradfit.infer.mle.fit(ws.data(m), m, return_uncertainties=True, return_fitted_val=True)
    assert abs(float(tw) - want["twice_nll"]) < 1e-6
    for name, v, e in zip(want["par_names"], want["values"], want["errors"]):
        i = m.config.par_index(name)
        assert abs(x[i, 0] - v) < 1e-4 * max(abs(v), e), name
        assert abs(x[i, 1] - e) < 1e-3 * e, name


def test_nsbi_fits_match_scipy():
    ref = json.loads(NSBI_REFS.read_text())["models"]["example"]
    ws = gradfit.Workspace(NSBI)
    m = ws.model()
    d = ws.data(m)
    # likelihood values at the reference points
    for ev in ref["evals"]:
        p = [ev["pars"][n] for n in m.config.par_names]
        assert abs(m.twice_nll(p, d) - ev["twice_nll"]) < 1e-9 * abs(ev["twice_nll"])
    cases = [(None, ref["fits"]["free"])] + [(f["mu"], f) for f in ref["fits"]["fixed"]]
    for mu, want in cases:
        if mu is None:
            x, tw = gradfit.infer.mle.fit(d, m, return_fitted_val=True)
        else:
            x, tw = gradfit.infer.mle.fixed_poi_fit(mu, d, m, return_fitted_val=True)
        w = want["twice_nll"]
        # as low as scipy's minimum, and the same one
        assert float(tw) <= w + 1e-8 * max(abs(w), 1.0)
        assert abs(float(tw) - w) < 2e-6 * max(abs(w), 1.0)
        for i, n in enumerate(m.config.par_names):
            assert abs(x[i] - want["pars"][n]) < 1e-3, (mu, n)


def test_fit_hypotest_limit_equal_cli(loaded):
    kind, path, ws, model = loaded
    d = ws.data(model)
    x, tw = gradfit.infer.mle.fit(d, model, return_uncertainties=True, return_fitted_val=True)
    c = cli("fit", *path)
    assert c["par_names"] == model.config.par_names
    assert np.array_equal(x[:, 0], np.array(c["values"])) and float(tw) == c["twice_nll"]
    assert np.array_equal(x[:, 1], np.array(c["errors"]))
    mu = 1000.0 if kind == "hs3" else 1.5
    cls_obs, band = gradfit.infer.hypotest(mu, d, model, return_expected_set=True)
    h = cli("cls", *path, "--mu", mu)
    assert float(cls_obs) == h["cls_obs"] and [float(b) for b in band] == h["cls_exp"]
    assert 0.0 < float(cls_obs) < 1.0
    if kind == "nsbi":
        obs, exp = gradfit.infer.intervals.upper_limits.upper_limit(d, model)
        lim = cli("limit", *path)
        assert float(obs) == lim["obs"] and [float(e) for e in exp] == lim["exp"]


def test_toys_equal_cli(loaded, tmp_path):
    kind, path, ws, model = loaded
    mu = 1000.0 if kind == "hs3" else 1.0
    run = gradfit.toys.run(model, mu, 8, seed=5)
    out = tmp_path / "toys.json"
    subprocess.run([gradfit_bin(), "toys", *map(str, path), "--mu", str(mu), "--toys", "8", "--seed", "5",
                    "-o", str(out)], check=True, capture_output=True, timeout=300)
    assert out.read_text() == run.json


def test_unpatched_hs3_hypotest_fails_as_the_cli():
    """Without the constant shape the background-only fits have flat directions:
    Python does what the CLI does, the same FailedMinimization message where the
    CLI fails, the same CLs where a minimiser handles the flat directions."""
    ws = gradfit.Workspace(HS3)
    m = ws.model()
    r = subprocess.run([gradfit_bin(), "cls", str(HS3), "--mu", "1000", "--json"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        with pytest.raises(gradfit.exceptions.FailedMinimization) as e:
            gradfit.infer.hypotest(1000.0, ws.data(m), m)
        assert "did not converge" in str(e.value) and str(e.value) in r.stderr
    else:
        cls_obs, band = gradfit.infer.hypotest(1000.0, ws.data(m), m, return_expected_set=True)
        h = json.loads(r.stdout)
        assert float(cls_obs) == h["cls_obs"] and [float(b) for b in band] == h["cls_exp"]
