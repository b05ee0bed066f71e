#!/usr/bin/env python3
"""pyhf's own outputs for gradfit's workspace utilities (tests/pyhf_tools.rs).

Runs pyhf's command line (in process, through click's test runner: the same
bytes as the `pyhf` command prints) on the shipped example workspaces and the
small inputs in tests/refs/pyhf_tools/inputs/, and writes

  OUT/CASE.out          pyhf's standard output, byte for byte
  OUT/CASE.json         measurement lists from `pyhf inspect --output-file`
  OUT/two-channel.patchset.json
                        a patchset for examples/workspaces/two-channel.json,
                        with pyhf's digests of it
  OUT/cases.json        the manifest: each case's gradfit arguments and the
                        file it must print, or the error pyhf raises

so that `cargo test --test suite -- pyhf_tools::` needs no Python. Usage:

  python3 scripts/pyhf_tools_refs.py                 # rewrite tests/refs/pyhf_tools
  python3 scripts/pyhf_tools_refs.py --out DIR       # write elsewhere (CI diffs DIR
                                                     # against the committed files)
Needs pyhf 0.7.6 (pip install pyhf==0.7.6).
"""

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

import pyhf
from click.testing import CliRunner
from pyhf.cli import cli

ROOT = Path(__file__).resolve().parent.parent
REFS = "tests/refs/pyhf_tools"
INPUTS = f"{REFS}/inputs"
TWO = "examples/workspaces/two-channel.json"
ONE = "examples/workspaces/one-bin-high-count.json"
MULTI = f"{INPUTS}/multi.json"
OVERLAP = f"{INPUTS}/overlap.json"
DISJOINT = f"{INPUTS}/disjoint.json"
PATCHSET = f"{REFS}/two-channel.patchset.json"  # written by this script


def patchset_for_two_channel():
    """Two signal hypotheses for the two-channel example, with pyhf's digests."""
    ws = pyhf.Workspace(json.loads((ROOT / TWO).read_text()))
    spec = {
        "metadata": {
            "description": "signal hypotheses for examples/workspaces/two-channel.json",
            "digests": {
                "md5": pyhf.utils.digest(ws, "md5"),
                "sha256": pyhf.utils.digest(ws, "sha256"),
            },
            "labels": ["mass", "width"],
            "references": {"hepdata": "ins0000000"},
        },
        "patches": [
            {
                "metadata": {"name": "mass_500_width_1", "values": [500, 1.0]},
                "patch": [
                    {"op": "replace", "path": "/channels/0/samples/0/data", "value": [8.0, 12.0, 3.0]}
                ],
            },
            {
                "metadata": {"name": "mass_800_width_2", "values": [800, 2.5e-05]},
                "patch": [
                    {"op": "replace", "path": "/channels/0/samples/0/data", "value": [1, 3.5, 6e-07]},
                    {"op": "add", "path": "/measurements/0/config/parameters/-", "value": {"name": "sig_xsec", "inits": [0.5]}},
                ],
            },
        ],
        "version": "1.0.0",
    }
    pyhf.PatchSet(spec)  # pyhf's own schema and consistency checks
    return spec


def cases(patchset):
    """(name, pyhf arguments, gradfit arguments or None for the same, kind)."""
    return [
        # sort and digest
        ("sort_two_channel", ["sort", TWO], None),
        ("sort_multi", ["sort", MULTI], None),
        ("sort_one_bin", ["sort", ONE], None),
        ("digest_two_channel", ["digest", TWO], None),
        ("digest_one_bin", ["digest", ONE], None),
        ("digest_multi_json", ["digest", MULTI, "-a", "sha256", "-a", "md5", "-a", "sha1", "-a", "sha512", "--json"], None),
        ("digest_multi_plain", ["digest", MULTI, "-a", "sha384", "-a", "sha224"], None),
        # prune
        ("prune_channel", ["prune", TWO, "-c", "CR"], None),
        ("prune_sample", ["prune", TWO, "-s", "fakes"], None),
        ("prune_modifier", ["prune", TWO, "-m", "lumi"], None),
        ("prune_modifiers_jes", ["prune", TWO, "--modifier", "jes", "-m", "bkg_norm"], None),
        ("prune_type_staterror", ["prune", TWO, "-t", "staterror"], None),
        ("prune_multi_measurement", ["prune", MULTI, "--measurement", "alt", "-s", "signal"], None),
        ("prune_multi_types", ["prune", MULTI, "-t", "shapefactor", "-t", "lumi", "-c", "CR_a"], None),
        ("prune_unknown_channel", ["prune", TWO, "-c", "VR"], None),
        ("prune_empty_channel", ["prune", ONE, "-s", "signal", "-s", "background"], None),
        # rename
        ("rename_all", ["rename", TWO, "-c", "SR", "SR_new", "-s", "background", "bkg", "-m", "mu", "mu_sig",
                        "--measurement", "example", "ex2", "-m", "jes", "jet_energy_scale"], None),
        ("rename_lumi", ["rename", TWO, "-m", "lumi", "luminosity"], None),
        ("rename_multi", ["rename", MULTI, "-s", "bkg_\u00fc", "bkg_u", "-c", "CR_a", "CR_\u00e5", "-m", "shape", "shape2"], None),
        ("rename_unknown_sample", ["rename", TWO, "-s", "ttbar", "tt"], None),
        # combine
        ("combine_none", ["combine", TWO, DISJOINT], None),
        ("combine_none_multi", ["combine", TWO, MULTI], None),
        ("combine_outer", ["combine", TWO, DISJOINT, "--join", "outer"], None),
        ("combine_outer_same", ["combine", TWO, TWO, "--join", "outer"], None),
        ("combine_outer_conflict", ["combine", TWO, OVERLAP, "--join", "outer"], None),
        ("combine_left_outer", ["combine", TWO, OVERLAP, "--join", "left outer"], None),
        ("combine_right_outer", ["combine", TWO, OVERLAP, "--join", "right outer"], None),
        ("combine_left_merge", ["combine", TWO, OVERLAP, "--join", "left outer", "--merge-channels"], None),
        ("combine_right_merge", ["combine", TWO, OVERLAP, "--join", "right outer", "--merge-channels"], None),
        ("combine_outer_merge", ["combine", OVERLAP, DISJOINT, "--join", "outer", "--merge-channels"], None),
        # patchsets
        ("patchset_inspect", ["patchset", "inspect", PATCHSET], None),
        ("patchset_extract", ["patchset", "extract", PATCHSET, "--name", "mass_800_width_2"], None),
        ("patchset_extract_metadata", ["patchset", "extract", PATCHSET, "--name", "mass_500_width_1", "--with-metadata"], None),
        ("patchset_extract_unknown", ["patchset", "extract", PATCHSET, "--name", "mass_900"], None),
        ("patchset_apply", ["patchset", "apply", TWO, PATCHSET, "--name", "mass_800_width_2"], None),
        ("patchset_apply_wrong_workspace", ["patchset", "apply", ONE, PATCHSET, "--name", "mass_500_width_1"], None),
        ("patchset_verify", ["patchset", "verify", TWO, PATCHSET], None),
        ("patchset_verify_wrong_workspace", ["patchset", "verify", MULTI, PATCHSET], None),
    ]


def run(args, cwd):
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        r = runner.invoke(cli, args, catch_exceptions=True)
    finally:
        os.chdir(old)
    return r


def prune_ignoring_type_check(path, types):
    """pyhf 0.7.6 checks --modifier-type against dict(ws.modifiers).values(),
    which keeps one type per modifier name: a type whose every modifier shares
    its name with a modifier of another type (two-channel's 'jes' is a
    histosys and a normsys) is refused as absent. gradfit prunes it; this is
    pyhf's own pruning with that check given every type present."""
    ws = pyhf.Workspace(json.loads((ROOT / path).read_text()))
    real = pyhf.Workspace.modifiers
    try:
        pyhf.Workspace.modifiers = property(lambda self: [(t, t) for _, t in real.fget(self)])
        out = ws.prune(modifier_types=types)
    finally:
        pyhf.Workspace.modifiers = real
    return (json.dumps(out, indent=4, sort_keys=True) + "\n").encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / REFS), help="output folder (default: %(default)s)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ps = patchset_for_two_channel()
    text = json.dumps(ps, indent=1, sort_keys=True) + "\n"
    (out / "two-channel.patchset.json").write_text(text)
    # pyhf reads the patchset just written (in OUT); gradfit reads the committed one
    pyhf_patchset = str((out / "two-channel.patchset.json").resolve())
    manifest = []
    for name, pargs, gargs in cases(ps):
        gargs = list(gargs or pargs)
        pargs = [pyhf_patchset if x == PATCHSET else x for x in pargs]
        r = run(pargs, ROOT)
        entry = {"name": name, "args": gargs}
        if r.exit_code == 0:
            (out / f"{name}.out").write_bytes(r.stdout_bytes)
            entry["stdout"] = f"{name}.out"
        else:
            entry["pyhf_error"] = f"{type(r.exception).__name__}: {r.exception}"
        manifest.append(entry)
    # the one place gradfit and pyhf 0.7.6 differ on purpose (see prune_ignoring_type_check)
    name = "prune_type_histosys"
    r = run(["prune", TWO, "-t", "histosys"], ROOT)
    assert r.exit_code != 0, "pyhf now prunes histosys on two-channel: drop the work-around"
    (out / f"{name}.out").write_bytes(prune_ignoring_type_check(TWO, ["histosys"]))
    manifest.append({
        "name": name,
        "args": ["prune", TWO, "-t", "histosys"],
        "stdout": f"{name}.out",
        "pyhf_error": f"{type(r.exception).__name__}: {r.exception}",
        "note": "pyhf 0.7.6 refuses this type (see scripts/pyhf_tools_refs.py); the output is pyhf's prune without that check",
    })
    # inspect: the measurement list (pyhf's --output-file JSON)
    for name, path in [("inspect_multi", MULTI), ("inspect_two_channel", TWO)]:
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "inspect.json"
            r = run(["inspect", path, "--output-file", str(f)], ROOT)
            assert r.exit_code == 0, r.output
            res = json.loads(f.read_text())
        (out / f"{name}.json").write_text(json.dumps(res["measurements"], indent=1) + "\n")
        manifest.append({"name": name, "args": ["inspect", path, "--json"], "measurements": f"{name}.json"})
    (out / "cases.json").write_text(json.dumps(
        {"pyhf": pyhf.__version__, "cases": manifest}, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(manifest)} cases written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
