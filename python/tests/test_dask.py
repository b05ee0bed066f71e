"""gradfit.dask: shards on a 2-worker LocalCluster merge into exactly the run
one process gives; a worker killed mid-run does not change the result; the
progress bar works; a closed client is refused."""

import os
import signal
import time

import pytest
from distributed import Client, LocalCluster, progress

import gradfit
import gradfit.dask


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def model():
    here = os.path.dirname(__file__)
    return gradfit.Workspace(os.path.join(here, "..", "..", "examples", "workspaces", "two-channel.json")).model()


def test_shards_merge_into_the_single_run(client, model):
    whole = gradfit.toys.run(model, 1.0, 1000, seed=7)
    for n in (1, 3, 8):
        r = gradfit.dask.toys(model, 1.0, 1000, 7, client, n_shards=n)
        assert r.json == whole.json  # byte for byte, records digest included
    q0 = gradfit.dask.toys(model, 0.0, 300, 2, client, test_stat="q0")
    assert q0 == gradfit.toys.run(model, 0.0, 300, seed=2, test_stat="q0")
    assert q0.test_stat == "q0"


def test_killed_worker_does_not_change_the_result(client, model):
    n, seed = 12000, 3
    whole = gradfit.toys.run(model, 1.0, n, seed=seed)
    before = set(client.scheduler_info()["workers"])
    pids = client.run(os.getpid)
    job = gradfit.dask.submit_toys(model, 1.0, n, seed, client, n_shards=6)
    # wait until a worker is running a shard, then kill its process (the nanny restarts it)
    victim = None
    t0 = time.time()
    while victim is None and time.time() - t0 < 60:
        busy = {w: ks for w, ks in client.processing().items() if ks}
        victim = next(iter(busy), None)
        time.sleep(0.02)
    assert victim is not None, "no shard started within 60 s"
    assert not all(f.done() for f in job.futures), "the shards finished before the kill"
    os.kill(pids[victim], signal.SIGKILL)
    merged = job.result()
    assert merged.json == whole.json
    after = set(client.scheduler_info()["workers"])
    assert victim not in after, "the worker was not killed"
    assert len(before) == 2


def test_progress_bar(client, model, capsys):
    job = gradfit.dask.submit_toys(model, 1.0, 400, 1, client, n_shards=4)
    progress(job.futures, notebook=False)
    out = capsys.readouterr()
    assert "100%" in out.out + out.err
    assert job.result() == gradfit.toys.run(model, 1.0, 400, seed=1)


def test_closed_client_is_refused(model):
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        c = Client(cluster)
        c.close()
        with pytest.raises(gradfit.exceptions.InvalidInput, match="client is closed"):
            gradfit.dask.toys(model, 1.0, 10, 0, c)


def test_bad_arguments(client, model):
    with pytest.raises(gradfit.exceptions.InvalidInput, match="n_toys"):
        gradfit.dask.toys(model, 1.0, 0, 0, client)
    with pytest.raises(gradfit.exceptions.InvalidInput, match="Client"):
        gradfit.dask.toys(model, 1.0, 10, 0, object())
    # a value outside the POI's bounds fails in the shard with the CLI's message
    with pytest.raises(gradfit.exceptions.InvalidInput, match="outside the bounds"):
        gradfit.dask.toys(model, 99.0, 10, 0, client, n_shards=2, retries=0)
