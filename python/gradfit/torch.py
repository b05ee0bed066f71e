"""PyTorch layer: ``torch.autograd.Function``s in float64 over the library's
training module (``src/train``).

An analysis structure (channels, samples, modifiers: the ``AnalysisSpec`` of
``gradfit train``) is compiled once with ``TemplateModel(spec)``; its template
numbers (nominal yields, histosys/normsys up and down templates, sums of
squared weights for staterror) come from any PyTorch graph, as a flat list of
1-d tensors in ``model.layout`` order or as a dict (see ``TemplateModel.flatten``).

- ``twice_nll(model, pars, templates, data)``: gradients with respect to the
  parameters and every template tensor.
- ``cls_loss``, ``discovery_loss``, ``poi_variance``: profiled losses on the
  Asimov data with gradients through the fits (implicit differentiation, the
  library's), with respect to every template tensor.

Every number comes from the library; the backward passes multiply its
gradients by the incoming gradient.
"""

import json

import numpy as np
import torch

from . import _core
from .exceptions import InvalidInput

__all__ = ["TemplateModel", "twice_nll", "cls_loss", "discovery_loss", "poi_variance", "loss", "neos_data"]


class TemplateModel:
    """A trainable analysis structure.

    ``spec``: ``{"channels": [{"name", "nbins", "samples": [{"name",
    "modifiers": [{"type": "normfactor"|"normsys"|"histosys"|"staterror"|"lumi", "name", ...}]}]}],
    "poi": name}`` (a dict or its JSON text)."""

    def __init__(self, spec):
        text = spec if isinstance(spec, str) else json.dumps(spec)
        self._core = _core.Analysis(text)
        self.layout = [
            {"channel": c, "sample": s, "kind": k, "modifier": m, "size": n}
            for c, s, k, m, n in self._core.layout
        ]
        self.par_names = list(self._core.par_names)
        self.npars = len(self.par_names)
        self.poi_index = self._core.poi_index
        self.channel_bins = list(self._core.channel_bins)
        self.nbins = sum(n for _, n in self.channel_bins)

    def suggested_init(self):
        """Initial values (constraint centres of constrained parameters), float64 tensor."""
        return torch.tensor(np.asarray(self._core.init), dtype=torch.float64)

    def suggested_bounds(self):
        return list(self._core.bounds)

    def flatten(self, templates):
        """The template tensors in layout order, from a list (returned as is) or
        a dict ``{sample: {"nominal": t, "sumw2": t, modifier_name: (hi, lo)}}``
        (sample names may be ``"channel/sample"`` when a name occurs in several channels)."""
        if isinstance(templates, (list, tuple)):
            return list(templates)
        if not isinstance(templates, dict):
            raise InvalidInput(f"templates: expected a list of tensors or a dict, got {type(templates).__name__}")
        out = []
        for slot in self.layout:
            key = f"{slot['channel']}/{slot['sample']}"
            entry = templates.get(key, templates.get(slot["sample"]))
            if entry is None:
                raise InvalidInput(f"templates: no entry for sample '{slot['sample']}' (channel '{slot['channel']}')")
            if slot["kind"] in ("nominal", "sumw2"):
                if slot["kind"] not in entry:
                    raise InvalidInput(f"templates['{slot['sample']}']: missing '{slot['kind']}'")
                out.append(entry[slot["kind"]])
            else:
                pair = entry.get(slot["modifier"])
                if pair is None or len(pair) != 2:
                    raise InvalidInput(
                        f"templates['{slot['sample']}']['{slot['modifier']}']: expected (hi, lo)")
                out.append(pair[0] if slot["kind"] == "hi" else pair[1])
        return out


def _check_tensor(t, what):
    if not isinstance(t, torch.Tensor):
        raise InvalidInput(f"{what}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.float64:
        raise InvalidInput(f"{what}: gradfit.torch works in float64; got {t.dtype} (use .double())")
    return t


def _np(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().reshape(-1), dtype=np.float64)


def _flat_checked(model, templates):
    flat = model.flatten(templates)
    if len(flat) != len(model.layout):
        raise InvalidInput(f"{len(flat)} template tensors given, the analysis takes {len(model.layout)}")
    for k, (t, slot) in enumerate(zip(flat, model.layout)):
        _check_tensor(t, f"template {k} ({slot['sample']} {slot['kind']}{' ' + slot['modifier'] if slot['modifier'] else ''})")
        if t.dim() != 1:
            raise InvalidInput(f"template {k} ({slot['sample']} {slot['kind']}): expected a 1-d tensor, got shape {tuple(t.shape)}")
    return flat


class _TwiceNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, core, main, aux, pars, *templates):
        value, g_pars, g_tp = core.twice_nll(_np(pars), [_np(t) for t in templates], main, aux)
        ctx.save_for_backward(torch.from_numpy(np.asarray(g_pars)).to(pars.device),
                              *[torch.from_numpy(np.asarray(g)).to(t.device) for g, t in zip(g_tp, templates)])
        return torch.tensor(value, dtype=torch.float64, device=pars.device)

    @staticmethod
    def backward(ctx, gout):
        g_pars, *g_tp = ctx.saved_tensors
        return (None, None, None, gout * g_pars, *[gout * g for g in g_tp])


def twice_nll(model, pars, templates, data, aux=None):
    """twice the negative log-likelihood at ``pars`` (float64 tensor) for the
    template tensors on the main counts ``data`` (channels in the structure's
    order; array or tensor, not differentiated) and aux data ``aux`` (one per
    parameter, default the constraint centres). Differentiable with respect to
    ``pars`` and every template tensor. Terms that depend on neither (log n!,
    Gaussian normalisations) are left out, as in the library's training graph."""
    _check_tensor(pars, "pars")
    if pars.dim() != 1 or pars.shape[0] != model.npars:
        raise InvalidInput(f"pars: expected shape ({model.npars},), got {tuple(pars.shape)}")
    flat = _flat_checked(model, templates)
    main = _np(data) if isinstance(data, torch.Tensor) else np.ascontiguousarray(np.asarray(data, dtype=np.float64).reshape(-1))
    a = None if aux is None else (_np(aux) if isinstance(aux, torch.Tensor) else np.asarray(aux, dtype=np.float64))
    return _TwiceNLL.apply(model._core, main, a, pars, *flat)


class _Loss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, core, kind, metrics_out, *templates):
        value, grads, metrics = core.loss(kind, [_np(t) for t in templates])
        metrics_out.update(metrics)
        ctx.save_for_backward(*[torch.from_numpy(np.asarray(g)).to(t.device) for g, t in zip(grads, templates)])
        dev = templates[0].device if templates else "cpu"
        return torch.tensor(value, dtype=torch.float64, device=dev)

    @staticmethod
    def backward(ctx, gout):
        return (None, None, None, *[gout * g for g in ctx.saved_tensors])


def loss(model, templates, kind, metrics=None):
    """A profiled loss of the library (``kind`` a dict such as ``{"kind": "cls",
    "mu": 1.0, "mu_asimov": 0.0, "test_stat": "qtilde"}``); ``metrics`` (a dict)
    receives the library's metrics (q, q_asimov, cls, z, sigma_poi, ...)."""
    flat = _flat_checked(model, templates)
    out = {} if metrics is None else metrics
    return _Loss.apply(model._core, json.dumps(kind), out, *flat)


def cls_loss(model, templates, mu=1.0, mu_asimov=0.0, test_stat="qtilde", metrics=None):
    """Expected CLs at POI ``mu`` on the Asimov data of POI ``mu_asimov``
    (nuisances nominal), with q~_mu (or q), as pyhf computes it; gradients
    through both fits."""
    return loss(model, templates, {"kind": "cls", "mu": float(mu), "mu_asimov": float(mu_asimov),
                                   "test_stat": test_stat}, metrics)


def discovery_loss(model, templates, mu_asimov=1.0, metrics=None):
    """Median expected discovery p-value (q0) on the Asimov data of ``mu_asimov``
    (``metrics["z"]`` holds the significance)."""
    return loss(model, templates, {"kind": "discovery", "mu_asimov": float(mu_asimov)}, metrics)


def poi_variance(model, templates, mu_asimov=1.0, metrics=None):
    """Variance of the POI, ``[I^-1]_poi,poi`` at the Asimov point of ``mu_asimov``."""
    return loss(model, templates, {"kind": "poi_variance", "mu_asimov": float(mu_asimov)}, metrics)


def neos_data(n=10000, seed=0):
    """The library's neos four-blob samples (signal, background, up, down), each a
    float64 tensor ``[n, 2]`` whose first 3/4 are the training part."""
    return [torch.from_numpy(a) for a in _core.neos_data(int(n), int(seed))]
