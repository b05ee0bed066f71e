//! pyhf's workspace utilities (`combine`, `prune`, `rename`, `digest`, `sort`,
//! `patchset ...`, `inspect`'s measurements) against pyhf's own output, and
//! HEPData archives read in place of workspaces and patchsets.
//!
//! The references in tests/refs/pyhf_tools are pyhf 0.7.6's output, written
//! by scripts/pyhf_tools_refs.py (CI reruns it against pyhf from PyPI and
//! diffs): `cases.json` lists each case's gradfit arguments and the bytes it
//! must print, or the error pyhf raises (then gradfit must fail too).

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const REFS: &str = "tests/refs/pyhf_tools";
const TWO: &str = "examples/workspaces/two-channel.json";
const ONE: &str = "examples/workspaces/one-bin-high-count.json";
const PATCHSET: &str = "tests/refs/pyhf_tools/two-channel.patchset.json";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run gradfit in the repository root: (exit code, stdout bytes, stderr).
fn run(args: &[&str], stdin: Option<&[u8]>) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .current_dir(root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gradfit runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("gradfit ends");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refs_file(name: &str) -> Vec<u8> {
    std::fs::read(root().join(REFS).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn manifest() -> Vec<Value> {
    let v: Value = serde_json::from_slice(&refs_file("cases.json")).expect("cases.json parses");
    assert_eq!(v["pyhf"], "0.7.6");
    v["cases"].as_array().expect("cases").clone()
}

fn args_of(case: &Value) -> Vec<String> {
    case["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// First differing line, for readable failures.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let (g, w) = (String::from_utf8_lossy(got), String::from_utf8_lossy(want));
    for (i, (a, b)) in g.lines().zip(w.lines()).enumerate() {
        if a != b {
            return format!("line {}: gradfit {a:?}, pyhf {b:?}", i + 1);
        }
    }
    format!(
        "{} lines vs {} (trailing newline {} vs {})",
        g.lines().count(),
        w.lines().count(),
        g.ends_with('\n'),
        w.ends_with('\n')
    )
}

#[test]
fn every_utility_prints_pyhfs_bytes() {
    let cases = manifest();
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.get("stdout").is_some()) {
        let name = case["name"].as_str().unwrap();
        let args = args_of(case);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&argv, None);
        assert_eq!(code, 0, "{name}: gradfit {argv:?} failed: {err}");
        let want = refs_file(case["stdout"].as_str().unwrap());
        assert!(
            out == want,
            "{name}: gradfit {argv:?} differs from pyhf: {}",
            first_difference(&out, &want)
        );
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} byte-compared cases");
}

#[test]
fn what_pyhf_refuses_gradfit_refuses() {
    let mut checked = 0;
    for case in manifest()
        .iter()
        .filter(|c| c.get("pyhf_error").is_some() && c.get("stdout").is_none())
    {
        let name = case["name"].as_str().unwrap();
        let args = args_of(case);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&argv, None);
        assert_eq!(
            code,
            1,
            "{name}: pyhf raised {}, gradfit exited {code}: {}",
            case["pyhf_error"],
            String::from_utf8_lossy(&out)
        );
        assert!(out.is_empty(), "{name}: printed output on failure");
        assert!(
            err.starts_with("error: ") && err.lines().count() == 1,
            "{name}: {err}"
        );
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} refusal cases");
    // the messages name what is wrong and where
    let (_, _, err) = run(&["prune", TWO, "-c", "VR"], None);
    assert!(
        err.contains(TWO) && err.contains("'VR'") && err.contains("CR, SR"),
        "{err}"
    );
    let (_, _, err) = run(&["rename", TWO, "-m", "lumi", "luminosity"], None);
    assert!(
        err.contains("/channels/0/samples/0/modifiers/2/name"),
        "{err}"
    );
    let (_, _, err) = run(
        &[
            "combine",
            TWO,
            &format!("{REFS}/inputs/overlap.json"),
            "-j",
            "outer",
        ],
        None,
    );
    assert!(
        err.contains("channels of the same name but different content: SR"),
        "{err}"
    );
    let (_, _, err) = run(&["patchset", "verify", ONE, PATCHSET], None);
    assert!(
        err.contains("digest of examples/workspaces/one-bin-high-count.json"),
        "{err}"
    );
    let (code, _, err) = run(&["digest", TWO, "-a", "whirlpool"], None);
    assert!(code == 1 && err.contains("sha256, md5"), "{err}");
}

#[test]
fn the_one_deliberate_difference_is_documented() {
    // pyhf 0.7.6 refuses `prune -t histosys` when each histosys shares its
    // name with a modifier of another type; gradfit prunes (the reference is
    // pyhf's own prune without that check)
    let c = manifest()
        .into_iter()
        .find(|c| c["name"] == "prune_type_histosys")
        .expect("case");
    assert!(
        c["pyhf_error"]
            .as_str()
            .unwrap()
            .contains("histosys is not one of")
    );
    let (code, out, _) = run(&["prune", TWO, "-t", "histosys"], None);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_slice(&out).unwrap();
    let types: Vec<&str> = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["samples"].as_array().unwrap())
        .flat_map(|s| s["modifiers"].as_array().unwrap())
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert!(
        !types.contains(&"histosys") && types.contains(&"normsys"),
        "{types:?}"
    );
}

#[test]
fn inspect_lists_every_measurement_as_pyhf_does() {
    for case in manifest()
        .iter()
        .filter(|c| c.get("measurements").is_some())
    {
        let args = args_of(case);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&argv, None);
        assert_eq!(code, 0, "{err}");
        let got: Value = serde_json::from_slice(&out).unwrap();
        let want: Value =
            serde_json::from_slice(&refs_file(case["measurements"].as_str().unwrap())).unwrap();
        let got_list: Vec<Value> = got["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| serde_json::json!([m["name"], m["poi"], m["parameters"]]))
            .collect();
        assert_eq!(Value::Array(got_list), want, "{argv:?}");
        let used: Vec<&Value> = got["measurements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["used"] == true)
            .collect();
        assert_eq!(used.len(), 1);
        assert_eq!(
            used[0]["name"], want[0][0],
            "the first measurement is taken"
        );
        // the warning names the measurement taken, only when there is a choice
        let several = want.as_array().unwrap().len() > 1;
        assert_eq!(err.contains("taking the first"), several, "{err}");
    }
    let multi = format!("{REFS}/inputs/multi.json");
    let (code, out, err) = run(&["inspect", &multi, "--measurement", "alt"], None);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("taking the first"), "{err}");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("(*) alt") && text.contains("    main"),
        "{text}"
    );
}

#[test]
fn output_files_and_standard_input_work_as_in_pyhf() {
    let dir = tempdir("out");
    let f = dir.join("sorted.json");
    let (code, out, err) = run(&["sort", TWO, "--output-file", f.to_str().unwrap()], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    // json.dump writes no trailing newline; click.echo adds one
    let mut want = refs_file("sort_two_channel.out");
    assert_eq!(want.pop(), Some(b'\n'));
    assert_eq!(std::fs::read(&f).unwrap(), want);
    let ws = std::fs::read(root().join(TWO)).unwrap();
    let (code, out, _) = run(&["digest", "-"], Some(&ws));
    assert_eq!(code, 0);
    assert_eq!(out, refs_file("digest_two_channel.out"));
    // read twice in one run (the model, then inspect's measurement list)
    let (code, out, err) = run(&["inspect", "-", "--json"], Some(&ws));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["measurements"][0]["name"], "example");
    let (code, out, err) = run(&["combine", "-", "-", "-j", "outer"], Some(&ws));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, refs_file("combine_outer_same.out"));
}

// ------------------------------------------------------------------ HEPData archives

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradfit-pyhf-tools-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A gzipped tar archive with the given members.
fn archive(path: &Path, members: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

fn twice_nll(args: &[&str]) -> f64 {
    let (code, out, err) = run(args, None);
    assert_eq!(code, 0, "{args:?}: {err}");
    let v: Value = serde_json::from_slice(&out).unwrap();
    v["twice_nll"].as_f64().expect("twice_nll")
}

#[test]
fn hepdata_archives_are_read_in_place_of_workspaces_and_patchsets() {
    let dir = tempdir("hepdata");
    let two = std::fs::read(root().join(TWO)).unwrap();
    let one = std::fs::read(root().join(ONE)).unwrap();
    let ps = refs_file("two-channel.patchset.json");
    // HEPData's layout: a folder per region, plus macOS metadata files
    let multi = dir.join("likelihoods.tar.gz");
    archive(
        &multi,
        &[
            ("./README.md", b"signal regions A and B"),
            ("RegionA/BkgOnly.json", &two),
            ("RegionA/._BkgOnly.json", b"\x00\x05\x16\x07 mac"),
            ("RegionA/patchset.json", &ps),
            ("RegionB/BkgOnly.json", &one),
        ],
    );
    let m = multi.to_str().unwrap();
    let region_a = format!("{m}:RegionA");
    // several workspaces: the error names them and the way to choose
    let (code, _, err) = run(&["digest", m], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("2 workspaces")
            && err.contains("RegionA/BkgOnly.json")
            && err.contains(&format!("{m}:RegionA")),
        "{err}"
    );
    // the utilities: the same bytes as on the unpacked files
    let (code, out, err) = run(&["digest", &region_a], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, refs_file("digest_two_channel.out"));
    let (code, out, err) = run(
        &["patchset", "apply", &region_a, "--name", "mass_800_width_2"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, refs_file("patchset_apply.out"));
    let (code, out, _) = run(&["patchset", "verify", &region_a], None);
    assert_eq!((code, out.as_slice()), (0, b"All good.\n".as_slice()));
    let (code, out, _) = run(&["patchset", "inspect", &region_a], None);
    assert_eq!(code, 0);
    assert_eq!(out, refs_file("patchset_inspect.out"));
    let region_b = format!("{m}:RegionB/BkgOnly.json");
    let (code, out, _) = run(&["sort", &region_b], None);
    assert_eq!(code, 0);
    assert_eq!(out, refs_file("sort_one_bin.out"));
    // the model commands: archive + --patch-name is the patched workspace
    let patched = dir.join("patched.json");
    std::fs::write(&patched, refs_file("patchset_apply.out")).unwrap();
    let want = twice_nll(&["fit", patched.to_str().unwrap(), "--json"]);
    let got = twice_nll(&[
        "fit",
        &region_a,
        "--patch-name",
        "mass_800_width_2",
        "--json",
    ]);
    assert_eq!(got, want);
    let got = twice_nll(&[
        "fit",
        TWO,
        "--patchset",
        &region_a,
        "--patch-name",
        "mass_800_width_2",
        "--json",
    ]);
    assert_eq!(got, want);
    let plain = twice_nll(&["fit", TWO, "--json"]);
    assert_eq!(twice_nll(&["fit", &region_a, "--json"]), plain);
    assert_ne!(plain, want, "the patch changes the model");
    // a single-region archive needs no member; .tgz works as well
    let single = dir.join("single.tgz");
    archive(&single, &[("BkgOnly.json", &two), ("patchset.json", &ps)]);
    let s = single.to_str().unwrap();
    assert_eq!(
        twice_nll(&["fit", s, "--patch-name", "mass_800_width_2", "--json"]),
        want
    );
    let (code, out, err) = run(&["inspect", s, "--json"], None);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["measurement"], "example");
    // no workspace inside: the error lists what is there
    let empty = dir.join("empty.tar.gz");
    archive(&empty, &[("notes.txt", b"x"), ("patchset.json", &ps)]);
    let (code, _, err) = run(&["fit", empty.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("no pyhf workspace") && err.contains("notes.txt"),
        "{err}"
    );
    // --patch-name without a patchset anywhere
    let (code, _, err) = run(&["fit", TWO, "--patch-name", "mass_500_width_1"], None);
    assert_eq!(code, 1);
    assert!(err.contains("--patchset"), "{err}");
}

#[test]
fn a_patchset_for_another_workspace_is_flagged_by_its_digest() {
    // the model commands warn (pyhf refuses); the patch then fails, naming it
    let (code, _, err) = run(
        &[
            "fit",
            ONE,
            "--patchset",
            PATCHSET,
            "--patch-name",
            "mass_500_width_1",
        ],
        None,
    );
    assert!(
        err.contains("warning:") && (err.contains("sha256 digest") || err.contains("md5 digest")),
        "{err}"
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mass_500_width_1"), "{err}");
    // the right workspace: no warning
    let (code, _, err) = run(
        &[
            "fit",
            TWO,
            "--patchset",
            PATCHSET,
            "--patch-name",
            "mass_500_width_1",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("digest"), "{err}");
}
