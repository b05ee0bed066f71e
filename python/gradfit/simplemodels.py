"""pyhf's simple models, as workspaces compiled by the library."""

from .workspace import Workspace


def _ws(signal, bkg, modifier):
    spec = {
        "channels": [{"name": "singlechannel", "samples": [
            {"name": "signal", "data": list(map(float, signal)),
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": list(map(float, bkg)), "modifiers": [modifier]},
        ]}],
        "observations": [{"name": "singlechannel", "data": list(map(float, bkg))}],
        "measurements": [{"name": "Measurement", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    return Workspace(spec)


def uncorrelated_background(signal, bkg, bkg_uncertainty):
    """One channel, a signal scaled by ``mu`` and a background with an
    uncorrelated (shapesys) uncertainty, as ``pyhf.simplemodels``. The model's
    observed data are the background counts (pyhf's models carry none)."""
    mod = {"name": "uncorr_bkguncrt", "type": "shapesys", "data": list(map(float, bkg_uncertainty))}
    return _ws(signal, bkg, mod).model()


def correlated_background(signal, bkg, bkg_up, bkg_down):
    """One channel with a correlated (histosys) background uncertainty, as ``pyhf.simplemodels``."""
    mod = {"name": "correlated_bkg_uncertainty", "type": "histosys",
           "data": {"hi_data": list(map(float, bkg_up)), "lo_data": list(map(float, bkg_down))}}
    return _ws(signal, bkg, mod).model()
