"""Check that pyhf reads the workspace `gradfit train` exported and gives the same CLs.

Usage: python scripts/check_train_pyhf.py OUTPUT_DIR

OUTPUT_DIR is the output folder of a neos run (`gradfit train examples/train/neos.json`):
its workspace.json holds the trained analysis (test-set templates, observed data the
background-only Asimov data) and summary.json the CLs gradfit computed for it. pyhf's
asymptotic CLs (qtilde, mu = 1) must agree to 1e-5 relative (pyhf's own fits use
scipy's SLSQP with its default tolerance). Exits non-zero on a mismatch.
"""

import json
import sys
from pathlib import Path

import pyhf


def main() -> int:
    out = Path(sys.argv[1])
    spec = json.loads((out / "workspace.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    pyhf.set_backend("numpy")
    ws = pyhf.Workspace(spec)  # validates against pyhf's schema
    model = ws.model()
    data = ws.data(model)
    mu = summary["workspace_poi"]
    cls = float(pyhf.infer.hypotest(mu, data, model, test_stat=summary["workspace_test_stat"]))
    ours = summary["final"]["cls"]
    rel = abs(cls - ours) / abs(ours)
    print(f"pyhf {pyhf.__version__}: CLs = {cls:.10e}; gradfit: {ours:.10e}; relative difference {rel:.2e}")
    if not rel < 1e-5:
        print("error: pyhf and gradfit disagree on the exported workspace", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
