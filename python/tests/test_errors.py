"""Bad input raises a gradfit exception with a clear message (the command
line's where there is one) and never crashes the interpreter."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import gradfit
from gradfit.exceptions import (FailedMinimization, GradfitError, InvalidInput, InvalidPatch,
                                InvalidWorkspace)
from conftest import gradfit_bin


@pytest.fixture
def ws(two_channel):
    return gradfit.Workspace(two_channel)


@pytest.fixture
def model(ws):
    return ws.model()


def test_wrong_shapes_and_dtypes(ws, model):
    data = ws.data(model)
    n = model.config.npars
    with pytest.raises(InvalidInput, match=f"expected {n} entries, got 3"):
        model.logpdf([1.0, 2.0, 3.0], data)
    with pytest.raises(InvalidInput, match="shape"):
        model.logpdf(np.ones((n, 2)), data)
    with pytest.raises(InvalidInput, match="dtype"):
        model.logpdf(np.array(["a"] * n), data)
    with pytest.raises(InvalidInput, match="dtype"):
        model.logpdf(np.ones(n, dtype=complex), data)
    with pytest.raises(InvalidInput, match="data: expected"):
        model.logpdf(model.config.suggested_init(), data[:-1])
    with pytest.raises(InvalidInput, match="init_pars"):
        gradfit.infer.mle.fit(data, model, init_pars=[1.0])
    with pytest.raises(InvalidInput, match="par_bounds"):
        gradfit.infer.mle.fit(data, model, par_bounds=[(0, 1)])
    with pytest.raises(InvalidInput, match="cannot be read"):
        model.logpdf([[1.0], [1.0, 2.0]], data)
    # float32 and integer arrays are accepted (converted exactly to float64)
    a = model.logpdf(np.asarray(model.config.suggested_init(), dtype=np.float32), data)
    assert np.isfinite(a).all()


def test_nan_parameters_and_data(ws, model):
    data = ws.data(model)
    pars = model.config.suggested_init()
    pars[2] = math.nan
    with pytest.raises(InvalidInput, match=r"parameter 2 \(mu\) is NaN"):
        model.logpdf(pars, data)
    with pytest.raises(InvalidInput, match=r"init_pars: parameter 2 \(mu\) is NaN"):
        gradfit.infer.mle.fit(data, model, init_pars=pars)
    bad = np.array(data)
    bad[0] = -1
    with pytest.raises(InvalidInput, match="main count 0"):
        gradfit.infer.mle.fit(bad, model)
    with pytest.raises(InvalidInput, match="poi_test is NaN"):
        gradfit.infer.hypotest(float("nan"), data, model)


def test_fixed_params(ws, model):
    data = ws.data(model)
    with pytest.raises(InvalidInput, match="no parameter named 'not_a_parameter' in the model"):
        gradfit.infer.mle.fit(data, model, fixed_params=["not_a_parameter"])
    with pytest.raises(InvalidInput, match="no parameter named 'lumix'"):
        gradfit.infer.mle.fit(data, model, fixed_params={"lumix": 1.0})
    with pytest.raises(InvalidInput, match="booleans"):
        gradfit.infer.mle.fit(data, model, fixed_params=[True])
    # names and pyhf's booleans fix the same parameter
    i = model.config.par_index("jes")
    flags = model.config.suggested_fixed()
    flags[i] = True
    a = gradfit.infer.mle.fit(data, model, fixed_params=flags)
    b = gradfit.infer.mle.fit(data, model, fixed_params=["jes"])
    assert np.array_equal(a, b) and a[i] == model.config.suggested_init()[i]
    c = gradfit.infer.mle.fit(data, model, fixed_params={"jes": 0.5})
    assert c[i] == 0.5


def test_values_outside_bounds(ws, model):
    data = ws.data(model)
    with pytest.raises(InvalidInput, match="outside the bounds"):
        gradfit.infer.mle.fixed_poi_fit(50.0, data, model)
    with pytest.raises(InvalidInput, match="outside the bounds"):
        gradfit.infer.hypotest(-1.0, data, model)
    init = model.config.suggested_init()
    init[2] = 20.0
    with pytest.raises(InvalidInput, match="outside its bounds"):
        gradfit.infer.mle.fit(data, model, init_pars=init)


def test_failing_patch(two_channel, patchset_path):
    ws = gradfit.Workspace(two_channel)
    with pytest.raises(InvalidPatch, match="patch"):
        ws.model(patches=[[{"op": "replace", "path": "/channels/99/samples", "value": []}]])
    with pytest.raises(InvalidPatch):
        ws.model(patches=[[{"op": "frobnicate", "path": "/x"}]])
    ps = gradfit.PatchSet(patchset_path)
    with pytest.raises(InvalidPatch, match="no patch named 'mass_9999' among 2 patches"):
        ps.apply(ws, "mass_9999")
    with pytest.raises(InvalidPatch, match="not a pyhf patchset"):
        gradfit.PatchSet({"patches": 3, "version": "1.0.0"})


def test_invalid_workspaces(tmp_path):
    with pytest.raises(InvalidWorkspace, match="workspace error at /channels"):
        gradfit.Workspace({"channels": 3, "observations": [], "measurements": [], "version": "1.0.0"}).model()
    p = tmp_path / "broken.json"
    p.write_text('{"channels": [')
    with pytest.raises(InvalidWorkspace, match="broken.json"):
        gradfit.Workspace(str(p)).model()
    with pytest.raises(gradfit.exceptions.FileError, match="missing.json"):
        gradfit.Workspace(str(tmp_path / "missing.json"))
    with pytest.raises(InvalidInput):
        gradfit.Workspace(42)


def test_failed_minimization(ws, model):
    with pytest.raises(FailedMinimization, match="did not converge"):
        gradfit.infer.mle.fit(ws.data(model), model, max_iter=1)
    assert issubclass(FailedMinimization, GradfitError)


def test_errors_never_crash_the_interpreter(two_channel):
    # a battery of bad calls in a fresh interpreter that must end normally
    code = f"""
import gradfit, numpy as np
ws = gradfit.Workspace({two_channel!r}); m = ws.model(); d = ws.data(m)
bad = [lambda: m.logpdf(None, d), lambda: m.logpdf(np.ones(10**6), d), lambda: m.expected_data(object()),
       lambda: gradfit.infer.hypotest(1.0, None, m), lambda: gradfit.infer.mle.fit(d, m, fixed_params=3),
       lambda: gradfit.toys.run(m, 1.0, 0), lambda: gradfit.toys.merge([]), lambda: gradfit.toys.ToyRun('{{}}'),
       lambda: gradfit.infer.scan(d, m, [float('inf')])]
n = 0
for f in bad:
    try:
        f()
    except gradfit.exceptions.GradfitError:
        n += 1
print(n)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "9", r.stdout + r.stderr


def test_toy_files_are_verified(two_channel):
    m = gradfit.Workspace(two_channel).model()
    run = gradfit.toys.run(m, 1.0, 20, seed=1)
    doc = json.loads(run.json)
    doc["sig_bkg"][3]["stat"] = 0.123
    with pytest.raises(gradfit.exceptions.InvalidToyFile, match="edited or damaged"):
        gradfit.toys.ToyRun(json.dumps(doc))
    a = gradfit.toys.run(m, 1.0, 20, seed=1, shard=(0, 2))
    with pytest.raises(gradfit.exceptions.InvalidToyFile, match="missing"):
        gradfit.toys.merge([a])
    other = gradfit.toys.run(m, 1.0, 20, seed=2, shard=(1, 2))
    with pytest.raises(gradfit.exceptions.InvalidToyFile, match="seed"):
        gradfit.toys.merge([a, other])


def test_messages_are_the_cli_messages(tmp_path, two_channel):
    """InvalidWorkspace, InvalidPatch and FailedMinimization carry the command line's message."""
    cases = []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"channels": 3, "observations": [], "measurements": [], "version": "1.0.0"}))
    cases.append((InvalidWorkspace, ["fit", str(bad)], lambda: gradfit.Workspace(str(bad)).model()))
    broken = tmp_path / "broken.json"
    broken.write_text('{"channels": [')
    cases.append((InvalidWorkspace, ["fit", str(broken)], lambda: gradfit.Workspace(str(broken)).model()))
    patch = tmp_path / "p.json"
    patch.write_text(json.dumps([{"op": "replace", "path": "/channels/99/samples", "value": []}]))
    # (an in-memory patch is labelled by its place in `patches`, where the CLI names the file)
    cases.append((InvalidPatch, ["fit", two_channel, "-p", str(patch)],
                  lambda: gradfit.Model.from_file(two_channel, patches=[json.loads(patch.read_text())])))
    ws = gradfit.Workspace(two_channel)
    m = ws.model()
    cases.append((FailedMinimization, ["fit", two_channel, "--max-iter", "1"],
                  lambda: gradfit.infer.mle.fit(ws.data(m), m, max_iter=1)))
    for exc, args, call in cases:
        r = subprocess.run([gradfit_bin(), *args], capture_output=True, text=True, timeout=300)
        assert r.returncode != 0, args
        with pytest.raises(exc) as e:
            call()
        msg = str(e.value)
        assert len(msg) > 10 and msg in r.stderr.replace(str(patch), "patches[0]"), (args, msg, r.stderr)
    # a failed fit keeps its last point's numbers
    with pytest.raises(FailedMinimization) as e:
        gradfit.infer.mle.fit(ws.data(m), m, max_iter=1)
    assert e.value.iterations == 1 and np.isfinite(e.value.twice_nll) and len(e.value.x) == m.config.npars
