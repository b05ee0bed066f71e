"""The rest of the API: model config, reports, scans, discovery, simple models,
pickling, the GIL released during fits, and inputs other than pyhf JSON going
through the command line's loader."""

import json
import os
import pickle
import subprocess
import threading
import time

import numpy as np
import pytest

import gradfit
from conftest import gradfit_bin


@pytest.fixture
def ws(two_channel):
    return gradfit.Workspace(two_channel)


@pytest.fixture
def model(ws):
    return ws.model()


def test_config(model):
    c = model.config
    assert c.poi_name == "mu" and c.par_names[c.poi_index] == "mu"
    assert c.par_slice("staterror_SR") == slice(12, 15)
    assert c.par_slice("mu") == slice(2, 3)
    assert len(c.suggested_init()) == len(c.suggested_bounds()) == len(c.suggested_fixed()) == c.npars
    assert c.channels == ["CR", "SR"] and c.channel_nbins == {"CR": 2, "SR": 3}
    assert c.nmaindata == 5 and len(c.auxdata) == c.nauxdata
    with pytest.raises(gradfit.exceptions.InvalidInput, match="no parameter named"):
        c.par_slice("nope")


def test_likelihood_relations(ws, model):
    d = ws.data(model)
    p = np.array(model.config.suggested_init())
    f, g, h = model.twice_nll(p, d, grad=True, hessian=True)
    assert model.logpdf(p, d)[0] == -0.5 * f
    # the gradient against central differences
    eps = 1e-6
    for i in range(model.config.npars):
        e = np.zeros_like(p)
        e[i] = eps
        fd = (model.twice_nll(p + e, d) - model.twice_nll(p - e, d)) / (2 * eps)
        assert abs(fd - g[i]) < 1e-5 * max(1.0, abs(g[i]))
    assert np.allclose(h, h.T)
    exp = model.expected_data(p)
    assert np.array_equal(exp[:5], model.expected_actualdata(p))
    assert np.array_equal(exp[5:], model.expected_auxdata(p))
    assert np.allclose(model.expected_sample_data(p).sum(axis=0), exp[:5])
    asimov = model.asimov_data(p)
    assert np.allclose(asimov.vector(), exp)


def test_reports(model):
    pulls = gradfit.report.pulls(model)
    assert pulls["converged"] and len(pulls["pull"]) == model.config.npars
    imp = gradfit.report.impacts(model)
    assert imp["poi"] == "mu" and len(imp["ranking"]) > 0
    sizes = [max(abs(r["refit_postfit_up"]), abs(r["refit_postfit_down"])) for r in imp["ranking"]]
    assert sizes == sorted(sizes, reverse=True)
    y = gradfit.report.yields(model)
    assert set(y["prefit"]) == {"CR", "SR"} and np.all(y["postfit"]["SR"]["total_errors"] > 0)
    c = gradfit.report.correlation(model)
    assert np.allclose(np.diag(c["correlation"])[~np.array(model.config.suggested_fixed())], 1.0)


def test_reports_equal_cli(model, two_channel):
    r = subprocess.run([gradfit_bin(), "pulls", two_channel, "--json"], capture_output=True, text=True, timeout=300)
    cli = json.loads(r.stdout)
    py = gradfit.report.pulls(model)
    assert [p["value"] for p in cli["parameters"]] == list(py["value"])
    r = subprocess.run([gradfit_bin(), "impacts", two_channel, "--json"], capture_output=True, text=True, timeout=300)
    cli = json.loads(r.stdout)
    py = gradfit.report.impacts(model)
    key = [k for k in cli if isinstance(cli[k], list)][0]
    assert [x["name"] for x in cli[key]] == [x["name"] for x in py["ranking"]]


def test_scan_and_discovery(ws, model):
    d = ws.data(model)
    s = gradfit.infer.scan(d, model, np.linspace(0.0, 3.0, 7))
    assert s["parameter"] == "mu" and all(s["converged"])
    assert s["delta_twice_nll"].min() >= 0 and s["pars"].shape == (7, model.config.npars)
    disc = gradfit.infer.discovery(d, model)
    assert disc["z_obs"] > 0 and 0 < disc["p0_obs"] < 0.5


def test_toybased_hypotest(ws, model):
    d = ws.data(model)
    cls, band = gradfit.infer.hypotest(1.0, d, model, calctype="toybased", ntoys=200, return_expected_set=True)
    run = gradfit.toys.run(model, 1.0, 200, seed=0)
    assert float(cls) == run.cls_obs and [float(x) for x in band] == list(run.cls_exp)


def test_simplemodels():
    m = gradfit.simplemodels.uncorrelated_background([5.0, 10.0], [50.0, 60.0], [5.0, 12.0])
    assert m.config.par_names == ["mu", "uncorr_bkguncrt[0]", "uncorr_bkguncrt[1]"]
    data = [55.0, 70.0] + m.config.auxdata
    cls = gradfit.infer.hypotest(1.0, data, m)
    assert 0 < float(cls) < 1


def test_pickle_rebuilds_the_same_model(model, two_channel, patchset_path):
    m2 = pickle.loads(pickle.dumps(model))
    assert m2.digest == model.digest and m2.config.par_names == model.config.par_names
    ps = gradfit.PatchSet(patchset_path)
    mp = ps.apply(gradfit.Workspace(two_channel), "mass_500").model(
        modifier_settings={"normsys": {"interpcode": "code1"}}, bounds={"mu": (0, 20)})
    m3 = pickle.loads(pickle.dumps(mp))
    assert m3.digest == mp.digest != model.digest
    assert m3.config.suggested_bounds()[2] == (0.0, 20.0)


def test_digest_equals_the_cli(model, two_channel, tmp_path):
    out = tmp_path / "t.json"
    subprocess.run([gradfit_bin(), "toys", two_channel, "--mu", "1", "--toys", "2", "-o", str(out)],
                   check=True, capture_output=True, timeout=300)
    assert json.loads(out.read_text())["model_digest"] == model.digest
    # the same spec given as a dict compiles to the same model digest
    assert gradfit.Workspace(json.load(open(two_channel))).model().digest == model.digest


def test_fits_release_the_gil(ws, model):
    d = ws.data(model)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    t0 = time.perf_counter()
    gradfit.toys.run(model, 1.0, 3000, seed=4)
    t1 = time.perf_counter()
    stop.set()
    t.join()
    during = [x for x in ticks if t0 < x < t1]
    # the other thread kept running while the toys ran in Rust
    assert (t1 - t0) > 0.05 and len(during) >= 5


def test_other_inputs_use_the_cli_loader():
    """A HistFactory model in an HS3 file (the shared pyhs3 example): Python loads
    it as the CLI does and fits it to the same numbers."""
    shared = os.environ.get("GRADFIT_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    path = os.path.join(shared, "hs3", "pyhs3-simplemodel_uncorrelated-background_hs3.json")
    assert os.path.exists(path), f"shared data not found at {shared} (set GRADFIT_SHARED)"
    r = subprocess.run([gradfit_bin(), "inspect", path, "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = gradfit.Model.from_file(path)
    assert m.kind == "combined" and m.config.poi_name == "mu"
    assert [p["name"] for p in json.loads(r.stdout)["parameters"]] == m.config.par_names
    x, tw = gradfit.infer.mle.fit(m.observed_data(), m, return_fitted_val=True)
    r = subprocess.run([gradfit_bin(), "fit", path, "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    assert list(x) == c["values"] and float(tw) == c["twice_nll"]


def test_plots_are_matplotlib_figures(ws, model):
    """pulls, ranking and scan plots: figures whose artists hold the report's numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = gradfit.report.pulls(model)
    fig = gradfit.report.plot_pulls(model)
    assert isinstance(fig, matplotlib.figure.Figure)
    keep = ~np.isnan(p["pull"])
    xs = fig.axes[0].lines[0].get_xdata()
    assert np.array_equal(np.asarray(xs), p["pull"][keep])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [n for n, k in zip(p["par_names"], keep) if k]
    plt.close(fig)
    names, up, down = gradfit.report.ranking(model)
    assert isinstance(up, np.ndarray) and len(names) == len(up) == len(down)
    fig = gradfit.report.plot_ranking(model, top=3)
    widths = sorted(r.get_width() for r in fig.axes[0].patches)
    assert np.allclose(widths, sorted(list(up[:3]) + list(down[:3])))
    plt.close(fig)
    s = gradfit.infer.scan(ws.data(model), model, np.linspace(0.0, 3.0, 5))
    fig = gradfit.report.plot_scan(s)
    assert np.array_equal(np.asarray(fig.axes[0].lines[0].get_ydata()), s["delta_twice_nll"])
    assert fig.axes[0].get_xlabel() == "mu"
    plt.close(fig)
