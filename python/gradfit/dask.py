"""Toys on a ``dask.distributed`` cluster.

``toys(model, poi_value, n_toys, seed, client)`` splits the run into shards,
runs shard ``i`` of ``N`` on a worker exactly as ``gradfit toys --shard i/N``
does, and merges the shards with the library's merge: the result is the run an
unsplit execution gives, byte for byte (toy ``i`` depends only on the seed and
``i``). A shard whose worker dies is run again elsewhere (Dask reschedules it;
``retries`` more attempts for shards that raise), and since shards are
deterministic the result does not change. Dask's progress bar works on
``submit_toys(...).futures``, or with ``toys(..., progress=True)``.
"""

import hashlib
import threading

from . import _core
from .exceptions import InvalidInput
from .model import Model
from .toys import ToyRun, merge

_cache = {}
_lock = threading.Lock()


class _ModelRef:
    """What a worker needs to compile the model (once per process, cached by digest)."""

    def __init__(self, model):
        self.recipe = model._core.recipe()
        self.key = model.digest or hashlib.sha256(repr(self.recipe).encode()).hexdigest()

    def get(self):
        with _lock:
            m = _cache.get(self.key)
            if m is None:
                m = Model(_core.load_model(*self.recipe))
                _cache[self.key] = m
            return m


def _worker_threads():
    try:
        from distributed import get_worker

        w = get_worker()
        n = getattr(w, "nthreads", None) or getattr(getattr(w, "state", None), "nthreads", None)
        return int(n) if n else None
    except Exception:
        return None


def _run_shard(ref, mu, n_toys, seed, shard, test_stat, batch, threads):
    if threads == "worker":
        threads = _worker_threads()
    text, _ = _core.run_toys(ref.get()._core, mu, n_toys, seed, shard, test_stat, batch, threads)
    return text


class ToyJob:
    """Shards submitted to a Dask client; ``result()`` gathers and merges them."""

    def __init__(self, client, futures, names):
        self.client = client
        self.futures = futures
        self.names = names

    def result(self):
        """The merged run (a ``ToyRun``); raises the first shard's error, if any."""
        texts = self.client.gather(self.futures)
        return merge(texts, self.names)


def _check_client(client):
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - the dask extra is not installed
        raise InvalidInput("gradfit.dask needs dask.distributed: pip install 'dask[distributed]'") from None
    if not isinstance(client, Client):
        raise InvalidInput(f"client: expected a dask.distributed.Client, got {type(client).__name__}")
    if client.status not in ("running", "connecting"):
        raise InvalidInput(f"the Dask client is {client.status}: toys need a running client (Client(cluster))")


def submit_toys(model, poi_value, n_toys, seed, client, n_shards=None, test_stat="qtilde",
                batch=512, retries=3, threads="worker"):
    """Submit the shards of a toy run; returns a ``ToyJob`` (its ``futures`` for
    ``distributed.progress``, ``result()`` for the merged run).

    ``n_shards`` defaults to the cluster's thread count (at most ``n_toys``);
    ``threads`` bounds the threads each shard uses (``"worker"``: the worker's
    thread count; None: all cores of the worker's machine)."""
    if not isinstance(model, Model):
        raise InvalidInput(f"model: expected a gradfit Model, got {type(model).__name__}")
    _check_client(client)
    n_toys = int(n_toys)
    if n_toys < 1:
        raise InvalidInput(f"n_toys must be at least 1, got {n_toys}")
    if int(seed) < 0:
        raise InvalidInput(f"seed must be >= 0, got {seed}")
    if n_shards is None:
        n_shards = max(1, sum(client.nthreads().values()))
    n_shards = int(n_shards)
    if n_shards < 1:
        raise InvalidInput(f"n_shards must be at least 1, got {n_shards}")
    n_shards = min(n_shards, n_toys)
    # check the settings on the client first (same errors as one run, raised here)
    if model.config.poi_index is None:
        raise InvalidInput("the model has no parameter of interest (apply the signal patch, or choose the measurement)")
    from dask.base import tokenize

    ref = _ModelRef(model)
    token = tokenize(ref.key, float(poi_value), n_toys, int(seed), test_stat, n_shards, batch)
    futures, names = [], []
    for i in range(n_shards):
        key = f"gradfit-toys-{i}of{n_shards}-{token}"
        futures.append(client.submit(_run_shard, ref, float(poi_value), n_toys, int(seed), (i, n_shards),
                                     test_stat, int(batch), threads, key=key, retries=retries, pure=False))
        names.append(f"shard {i}/{n_shards}")
    return ToyJob(client, futures, names)


def toys(model, poi_value, n_toys, seed, client, n_shards=None, test_stat="qtilde", progress=False,
         batch=512, retries=3, threads="worker"):
    """Run ``n_toys`` toys per hypothesis at ``poi_value`` on a Dask cluster and
    return the merged ``ToyRun`` (identical to ``gradfit.toys.run`` and to
    ``gradfit toys``'s file for the same model, value, statistic and seed)."""
    job = submit_toys(model, poi_value, n_toys, seed, client, n_shards, test_stat, batch, retries, threads)
    if progress:
        from distributed import progress as _progress

        _progress(job.futures)
    return job.result()


__all__ = ["toys", "submit_toys", "ToyJob", "ToyRun"]
