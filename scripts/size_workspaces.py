#!/usr/bin/env python3
"""Generate the large pyhf workspaces of docs/robustness.md ("Sizes"):

    python3 scripts/size_workspaces.py OUT_DIR

- staterror_10k.json: one channel of 10,000 bins, a signal with a normfactor
  and a background with a staterror (10,000 parameters), plus 10 normsys.
- windows_10k_2k.json: one channel of 10,000 bins, a signal (normfactor) over
  all bins and 200 background samples, each non-zero in its own window of 50
  bins and carrying 10 normsys of its own (2,000 parameters; the parameters of
  one sample meet each other and the signal strength, no others).
- dense_2k_200.json: one channel of 2,000 bins and 200 normsys that all act on
  one background over every bin (every pair of parameters meets).

Observations are Poisson draws around the nominal total (numpy seed 1). Only
the standard library and numpy.
"""
import json
import os
import sys

import numpy as np


def write(path, channels, observations, extra_params=()):
    ws = {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": list(extra_params)}}],
        "version": "1.0.0",
    }
    with open(path, "w") as f:
        json.dump(ws, f, separators=(",", ":"))
    print(path, os.path.getsize(path) // 1000, "kB")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)

    # staterror, 10,000 bins
    nb = 10_000
    x = np.linspace(0.0, 1.0, nb)
    sig = 5.0 * np.exp(-0.5 * ((x - 0.5) / 0.02) ** 2)
    bkg = 50.0 + 30.0 * (1.0 - x)
    unc = 0.05 * bkg
    mods = [{"name": "staterror_SR", "type": "staterror", "data": unc.tolist()}]
    mods += [{"name": f"norm_{k}", "type": "normsys", "data": {"hi": 1.0 + 0.01 * (k + 1), "lo": 1.0 - 0.01 * (k + 1)}}
             for k in range(10)]
    ch = {"name": "SR", "samples": [
        {"name": "signal", "data": sig.tolist(), "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "background", "data": bkg.tolist(), "modifiers": mods}]}
    obs = rng.poisson(sig + bkg).astype(float)
    write(os.path.join(out, "staterror_10k.json"), [ch], [{"name": "SR", "data": obs.tolist()}])

    # 200 windows of 50 bins, 10 normsys each
    samples = [{"name": "signal", "data": sig.tolist(), "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}]
    total = sig.copy()
    for s in range(200):
        d = np.zeros(nb)
        d[50 * s: 50 * (s + 1)] = bkg[50 * s: 50 * (s + 1)]
        total += d
        ms = [{"name": f"w{s}_n{k}", "type": "normsys", "data": {"hi": 1.0 + 0.02 * (k + 1), "lo": 1.0 - 0.015 * (k + 1)}}
              for k in range(10)]
        samples.append({"name": f"bkg_{s}", "data": d.tolist(), "modifiers": ms})
    obs = rng.poisson(total).astype(float)
    write(os.path.join(out, "windows_10k_2k.json"), [{"name": "SR", "samples": samples}],
          [{"name": "SR", "data": obs.tolist()}])

    # dense: 200 normsys on one background over 2,000 bins
    nb = 2_000
    x = np.linspace(0.0, 1.0, nb)
    sig = 5.0 * np.exp(-0.5 * ((x - 0.5) / 0.02) ** 2)
    bkg = 50.0 + 30.0 * (1.0 - x)
    ms = [{"name": f"n{k}", "type": "histosys",
           "data": {"hi_data": (bkg * (1.0 + 0.01 * np.sin((k + 1) * 3.0 * x))).tolist(),
                    "lo_data": (bkg * (1.0 - 0.01 * np.sin((k + 1) * 3.0 * x))).tolist()}}
          for k in range(200)]
    ch = {"name": "SR", "samples": [
        {"name": "signal", "data": sig.tolist(), "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "background", "data": bkg.tolist(), "modifiers": ms}]}
    obs = rng.poisson(sig + bkg).astype(float)
    write(os.path.join(out, "dense_2k_200.json"), [ch], [{"name": "SR", "data": obs.tolist()}])


if __name__ == "__main__":
    main()
