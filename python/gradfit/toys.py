"""Toy runs as ``gradfit toys`` makes them: a whole run or shard ``(i, N)``,
sealed with a digest of its records; ``merge`` joins the shards of one run into
exactly the run an unsplit execution gives (the library's merge, after
verifying each shard). ``ToyRun.json`` is the toy file's text."""

import os

from . import _core
from ._util import warn_all
from .exceptions import InvalidInput


class ToyRun:
    """A toy run (or one shard of it), held as the toy file's JSON text."""

    def __init__(self, text, name="<toy run>"):
        if not isinstance(text, str):
            raise InvalidInput(f"ToyRun(text): expected the toy file's JSON text, got {type(text).__name__}")
        _core.verify_toys(text, name)
        self.json = text
        self.name = name
        self._info = None

    @classmethod
    def load(cls, path):
        """Read (and verify) a toy file written by ``gradfit toys`` or ``save``."""
        path = os.fspath(path)
        return cls(bytes(_core.read_input(path)).decode("utf-8"), path)

    def save(self, path):
        """Write the toy file (the same bytes ``gradfit toys -o`` writes)."""
        tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.json)
        os.replace(tmp, path)

    @property
    def info(self):
        """Settings, test statistics (``sig_bkg``, ``bkg`` arrays; nan for failed toys)
        and, for a whole run, ``cls_obs``, ``cls_exp``, ``clsb_obs``, ``clb_obs``, ``n_failed``."""
        if self._info is None:
            self._info = _core.toy_result(self.json)
        return self._info

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        info = self.info
        if key in info:
            return info[key]
        raise AttributeError(key)

    def __eq__(self, other):
        return isinstance(other, ToyRun) and self.json == other.json

    def __repr__(self):
        i = self.info
        part = f" shard {i['shard'][0]}/{i['shard'][1]}" if i["shard"] else ""
        return f"<gradfit.ToyRun mu={i['mu']} {i['test_stat']} seed={i['seed']} toys {i['range'][0]}..{i['range'][1]} of {i['n_toys']}{part}>"


def run(model, poi_value, n_toys, seed=0, shard=None, test_stat="qtilde", batch=512, threads=None):
    """Generate and fit ``n_toys`` toys per hypothesis at ``poi_value`` on the
    model's observed data (or shard ``(i, N)`` of them), as ``gradfit toys``."""
    if shard is not None:
        try:
            i, n = (int(x) for x in shard)
        except (TypeError, ValueError):
            raise InvalidInput(f"shard: expected (i, N), got {shard!r}") from None
        if n < 1 or not 0 <= i < n:
            raise InvalidInput(f"shard {i}/{n}: need 0 <= i < N")
        shard = (i, n)
    if int(n_toys) < 1:
        raise InvalidInput(f"n_toys must be at least 1, got {n_toys}")
    if int(seed) < 0:
        raise InvalidInput(f"seed must be >= 0, got {seed}")
    text, warnings = _core.run_toys(model._core, float(poi_value), int(n_toys), int(seed), shard,
                                    test_stat, int(batch), threads)
    warn_all(warnings)
    return ToyRun(text)


def merge(runs, names=None):
    """Merge shards (``ToyRun`` objects or toy-file texts) into one run."""
    runs = list(runs)
    texts = [r.json if isinstance(r, ToyRun) else r for r in runs]
    if names is None:
        names = [getattr(r, "name", None) or f"shard #{k + 1}" for k, r in enumerate(runs)]
        names = [n if n != "<toy run>" else f"shard #{k + 1}" for k, n in enumerate(names)]
    return ToyRun(_core.merge_toys(texts, list(names)))


__all__ = ["ToyRun", "run", "merge"]
