"""``Workspace`` and ``PatchSet`` with pyhf's names. The input document is
handed to the command line's loader unchanged (patches in memory, applied by
the library), so errors carry the command line's messages."""

import json
import os

from . import _core
from .exceptions import InvalidInput, InvalidPatch
from .model import Model


def _patch_ops(p, k):
    """(JSON text, label) of a patch given as our Patch, a jsonpatch.JsonPatch, or a list of operations."""
    label = getattr(p, "name", None) or f"patches[{k}]"
    ops = getattr(p, "patch", p)
    if isinstance(ops, (str, bytes)):
        try:
            ops = json.loads(ops)
        except ValueError as e:
            raise InvalidPatch(f"{label}: invalid JSON: {e}") from None
    if isinstance(ops, dict):
        ops = [ops]
    try:
        return json.dumps(ops), str(label)
    except (TypeError, ValueError) as e:
        raise InvalidPatch(f"{label}: cannot be written as JSON: {e}") from None


class Workspace:
    """A model input: a pyhf workspace (dict or file path), or any other input
    the command line reads (HS3, NSBI workspaces) given by path.

    ``Workspace(spec).model(measurement_name=None, patches=None, ...)``
    compiles it; ``.data(model)`` gives the observed data."""

    def __init__(self, spec, source=None, _patches=()):
        if isinstance(spec, Workspace):
            self._bytes, self._source, self._patches = spec._bytes, spec._source, tuple(spec._patches) + tuple(_patches)
            self._spec = None
            return
        if isinstance(spec, (str, os.PathLike)):
            path = os.fspath(spec)
            self._bytes = bytes(_core.read_input(path))
            self._source = source or path
        elif isinstance(spec, (bytes, bytearray)):
            self._bytes = bytes(spec)
            self._source = source or "<workspace>"
        elif isinstance(spec, dict):
            try:
                self._bytes = json.dumps(spec).encode()
            except (TypeError, ValueError) as e:
                raise InvalidInput(f"workspace: cannot be written as JSON: {e}") from None
            self._source = source or "<workspace>"
        else:
            raise InvalidInput(
                f"Workspace(spec): expected a dict, a path or JSON bytes, got {type(spec).__name__}")
        self._patches = tuple(_patches)
        self._spec = None

    @classmethod
    def load(cls, path):
        """Read a workspace file."""
        return cls(os.fspath(path))

    @property
    def spec(self):
        """The document as a dict (patches not applied)."""
        if self._spec is None:
            try:
                self._spec = json.loads(self._bytes)
            except ValueError as e:
                # the library's message names the line and column
                _core.load_model(self._bytes, self._source)
                raise InvalidInput(f"{self._source}: invalid JSON: {e}") from None
        return self._spec

    def __getitem__(self, key):
        return self.spec[key]

    @property
    def measurement_names(self):
        return [m.get("name") for m in self.spec.get("measurements", [])]

    @property
    def channels(self):
        return sorted(c.get("name") for c in self.spec.get("channels", []))

    @property
    def samples(self):
        return sorted({s.get("name") for c in self.spec.get("channels", []) for s in c.get("samples", [])})

    def model(self, measurement_name=None, patches=None, modifier_settings=None, poi_name=None,
              bounds=None, allow_negative_yields=False, **kwargs):
        """Compile the model.

        ``patches``: JSON Patches (lists of operations, pyhf/gradfit ``Patch``
        objects or ``jsonpatch.JsonPatch``) applied in order;
        ``modifier_settings``: pyhf's ``{"normsys": {"interpcode": "code4"},
        "histosys": {"interpcode": "code4p"}}``; ``poi_name``: another POI than
        the measurement's; ``bounds``: ``{name: (lo, hi)}`` (a parameter or a
        whole set, as ``--bounds``)."""
        kwargs.pop("validate", None)
        if kwargs:
            raise InvalidInput(f"Workspace.model: unknown arguments {sorted(kwargs)}")
        plist = list(self._patches)
        for k, p in enumerate(patches or []):
            plist.append(_patch_ops(p, k))
        if poi_name is not None:
            names = self.measurement_names
            idx = names.index(measurement_name) if measurement_name in names else 0
            if not names:
                raise InvalidInput("poi_name: the workspace has no measurements")
            plist.append((json.dumps([{"op": "add", "path": f"/measurements/{idx}/config/poi",
                                       "value": poi_name}]), f"poi_name={poi_name}"))
        interp = []
        for t, v in (modifier_settings or {}).items():
            code = v.get("interpcode") if isinstance(v, dict) else v
            interp.append((str(t), str(code)))
        blist = []
        for name, b in (bounds or {}).items():
            try:
                lo, hi = (float(x) for x in b)
            except (TypeError, ValueError):
                raise InvalidInput(f"bounds[{name!r}]: expected (lo, hi), got {b!r}") from None
            blist.append((str(name), lo, hi))
        core = _core.load_model(self._bytes, self._source, plist, measurement_name, interp, blist,
                                bool(allow_negative_yields))
        return Model(core, workspace=self)

    def data(self, model, include_auxdata=True):
        """The observed data of ``model``: main counts then aux data (a float64
        vector) for binned models, a ``Data`` object for others."""
        if not isinstance(model, Model):
            raise InvalidInput(f"data(model): expected a gradfit Model, got {type(model).__name__}")
        return model.observed_data(include_auxdata)


class Patch:
    """One patch of a patchset: ``name``, ``values``, ``metadata`` and the operations (``patch``)."""

    def __init__(self, name, values, metadata, ops):
        self.name = name
        self.values = values
        self.metadata = metadata
        self.patch = ops

    def apply(self, workspace):
        """The workspace with this patch applied (by the library, when the model is built)."""
        return Workspace(workspace, _patches=(_patch_ops(self, 0),))

    def __repr__(self):
        return f"<gradfit.Patch {self.name} {self.values}>"


class PatchSet:
    """A pyhf patchset (checked as the command line checks it)."""

    def __init__(self, spec, source="<patchset>"):
        if isinstance(spec, (str, os.PathLike)):
            source = os.fspath(spec)
            text = bytes(_core.read_input(source)).decode("utf-8", errors="replace")
        elif isinstance(spec, dict):
            text = json.dumps(spec)
        else:
            raise InvalidPatch(f"PatchSet(spec): expected a dict or a path, got {type(spec).__name__}")
        self._text = text
        self._source = source
        names = _core.patchset_names(text, source)
        self._spec = json.loads(text)
        self.metadata = self._spec.get("metadata", {})
        self.version = self._spec.get("version")
        self.patches = []
        for (name, values), entry in zip(names, self._spec["patches"]):
            self.patches.append(Patch(name, json.loads(values), entry.get("metadata", {}), entry["patch"]))

    def __iter__(self):
        return iter(self.patches)

    def __len__(self):
        return len(self.patches)

    def __getitem__(self, key):
        for p in self.patches:
            if p.name == key or (not isinstance(key, str) and list(p.values) == list(key)):
                return p
        # the library's message (lists the names)
        _core.patchset_patch(self._text, str(key), self._source)
        raise InvalidPatch(f"{self._source}: no patch {key!r}")

    def apply(self, workspace, key):
        """The workspace with patch ``key`` (name or values) applied."""
        p = self[key]
        ops = _core.patchset_patch(self._text, p.name, self._source)
        return Workspace(workspace, _patches=((ops, f"{self._source} [{p.name}]"),))
