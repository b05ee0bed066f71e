//! Plots of scans, limits and toys, plot file names, and the PNG text rendering.

use super::*;

#[test]
fn scan_plots_and_defaults_to_three_sigma_around_the_best_fit() {
    let d = tmp("scanplot");
    let (code, fitv, err) = gradfit(&["fit", &ws(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let i = fitv["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == "mu")
        .unwrap();
    let (mu, sigma) = (
        fitv["values"][i].as_f64().unwrap(),
        fitv["errors"][i].as_f64().unwrap(),
    );
    for ext in ["svg", "png"] {
        let f = d.join(format!("scan.{ext}"));
        let (code, v, err) = gradfit(&["scan", &ws(), "--json", "--plot", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let pts = v["points"].as_array().unwrap();
        assert_eq!(pts.len(), 11);
        // cabinetry's range, clipped to mu's bounds [0, 10] (and said so)
        let lo = pts[0]["value"].as_f64().unwrap();
        let hi = pts[10]["value"].as_f64().unwrap();
        assert!(
            (lo - (mu - 3.0 * sigma).max(0.0)).abs() < 1e-6 * sigma,
            "{lo}"
        );
        assert!(
            (hi - (mu + 3.0 * sigma).min(10.0)).abs() < 1e-6 * sigma,
            "{hi}"
        );
        assert_eq!(mu - 3.0 * sigma < 0.0, err.contains("clipped"), "{err}");
        assert!(err.contains(&format!("wrote {}", f.display())), "{err}");
        if ext == "svg" {
            let t = svg_texts(&f);
            for want in [
                "68.3% CL",
                "95.4% CL",
                "mu",
                "\u{2212}2 \u{0394} ln L",
                "profile likelihood scan",
            ] {
                assert!(svg_has(&t, want), "{want} missing in {t:?}");
            }
            let best = v["best_value"].as_f64().unwrap();
            assert!(
                svg_has(&t, &format!("best fit: mu = {}", short(best))),
                "{t:?}"
            );
        } else {
            assert_eq!(png_size(&f), (760, 560));
        }
    }
    // --range still sets the grid
    let (code, v, _) = gradfit(&["scan", &ws(), "--json", "--range", "0:2:3"]);
    assert_eq!(code, 0);
    assert_eq!(v["points"].as_array().unwrap().len(), 3);
}

#[test]
fn limit_plot_shows_observed_expected_band_and_the_cl_line() {
    let d = tmp("limitplot");
    for ext in ["svg", "png"] {
        let f = d.join(format!("cls.{ext}"));
        let (code, v, err) = gradfit(&["limit", &ws(), "--json", "--plot", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        if ext == "png" {
            assert_eq!(png_size(&f), (800, 580));
            continue;
        }
        let t = svg_texts(&f);
        let obs = short(v["obs"].as_f64().unwrap());
        let exp = short(v["exp"][2].as_f64().unwrap());
        for want in [
            format!("observed CLs (95% CL limit {obs})"),
            format!("expected CLs, median (limit {exp})"),
            "expected \u{00b1}1\u{03c3}".into(),
            "expected \u{00b1}2\u{03c3}".into(),
            "CLs = 0.05".into(),
            "CLs".into(),
            "mu".into(),
            "CLs against mu (asymptotics)".into(),
        ] {
            assert!(svg_has(&t, &want), "{want} missing in {t:?}");
        }
    }
    // with a scan grid, toys: the toy points are drawn
    let f = d.join("toys.svg");
    let (code, v, err) = gradfit(&[
        "limit",
        &ws(),
        "--json",
        "--toys",
        "60",
        "--scan",
        "0.5:4:4",
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert!(code == 0 || code == 3, "{err}");
    assert_eq!(v["points"].as_array().unwrap().len(), 4);
    assert!(svg_has(&svg_texts(&f), "CLs against mu (toys)"));
    // a folder or another format is refused before any work
    let (code, _, err) = gradfit(&["limit", &ws(), "--plot", d.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(".svg or .png"), "{err}");
}

#[test]
fn toys_plot_histograms_both_ensembles_against_the_asymptotic_form() {
    let d = tmp("toysplot");
    let f = d.join("q.svg");
    let out = d.join("toys.json");
    let (code, _, err) = gradfit(&[
        "toys",
        &ws(),
        "--mu",
        "1",
        "--n",
        "150",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let t = svg_texts(&f);
    for want in [
        "signal + background toys (\u{03bc} = 1): 150 toys",
        "background-only toys (\u{03bc} = 0): 150 toys",
        "test statistic qtilde",
        "toys per bin",
    ] {
        assert!(svg_has(&t, want), "{want} missing in {t:?}");
    }
    assert_eq!(
        t.iter().filter(|x| *x == "asymptotic expectation").count(),
        2
    );
    let run = read(&out);
    let obs = run["test_stat_obs"].as_f64().unwrap();
    assert!(svg_has(&t, &format!("observed: {}", short(obs))), "{t:?}");
    let png = d.join("q0.png");
    let (code, _, err) = gradfit(&[
        "toys",
        &ws(),
        "--mu",
        "0",
        "--test-stat",
        "q0",
        "--n",
        "50",
        "--out",
        out.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(png_size(&png), (820, 600));
}

#[test]
fn toy_histograms_and_asymptotic_counts_add_up() {
    use gradfit::report::plot_infer::ToysPlot;
    // half chi-square: q = max(z, 0)^2, F(q) = Phi(sqrt q)
    let z: Vec<f64> = (0..2000)
        .map(|k| gradfit::infer::normal_quantile((k as f64 + 0.5) / 2000.0))
        .collect();
    let q: Vec<f64> = z.iter().map(|z| z.max(0.0).powi(2)).collect();
    let cdf = |x: f64| gradfit::util::special::normal_cdf(x.max(0.0).sqrt());
    let p = ToysPlot::new("t", "q", 1.0, vec![("a".into(), q, Some(&cdf))], 20);
    let (_, counts, asym) = &p.ensembles[0];
    let asym = asym.as_ref().unwrap();
    assert_eq!(counts.iter().sum::<f64>(), 2000.0);
    assert!((asym.iter().sum::<f64>() - 2000.0).abs() < 1e-9);
    // quantile-spaced samples follow the distribution closely in every bin
    for (c, a) in counts.iter().zip(asym) {
        assert!((c - a).abs() <= 1.0 + 1e-9, "{c} vs {a}");
    }
    assert!(
        counts[0] > 1000.0,
        "the point mass at 0 is in the first bin"
    );
}

#[test]
fn yields_plot_file_names_follow_the_extension() {
    let d = tmp("yieldsfiles");
    // several plots for one file name: FILE_CHANNEL_STAGE.EXT beside it, said so
    let f = d.join("y.png");
    let (code, _, err) = gradfit(&["yields", &ws(), "--plot", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!f.exists(), "no folder or file named y.png");
    for c in ["SR", "CR"] {
        for s in ["prefit", "postfit"] {
            let p = d.join(format!("y_{c}_{s}.png"));
            assert!(png_size(&p).0 > 0);
        }
    }
    assert!(
        err.contains("4 plots") && err.contains("y_CHANNEL_STAGE.png"),
        "{err}"
    );
    // one plot: exactly the file named
    let one = repo("examples/workspaces/one-bin-high-count.json");
    let f = d.join("one.svg");
    let (code, _, err) = gradfit(&[
        "yields",
        one.to_str().unwrap(),
        "--postfit",
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(svg_has(&svg_texts(&f), "SR: post-fit"));
    // bin edges and a log scale
    let f = d.join("edges.svg");
    let (code, _, err) = gradfit(&[
        "yields",
        &ws(),
        "--prefit",
        "--plot",
        f.to_str().unwrap(),
        "--log",
        "--bin-edges",
        "SR=0,100,200,400",
    ]);
    assert_eq!(code, 0, "{err}");
    let t = svg_texts(&d.join("edges_SR_prefit.svg"));
    for want in [
        "observable",
        "100",
        "200",
        "300",
        "400",
        "data / model",
        "10",
    ] {
        assert!(svg_has(&t, want), "{want} missing in {t:?}");
    }
    let t = svg_texts(&d.join("edges_CR_prefit.svg"));
    assert!(t.iter().any(|x| x.contains("carry no bin edges")), "{t:?}");
    // refused before any work
    for (args, msg) in [
        (vec!["--plot", "y.pdf"], "FILE.svg, FILE.png or a folder"),
        (
            vec!["--plot", "y.png", "--png"],
            "--png applies to a folder",
        ),
        (
            vec!["--plot", "y.png", "--bin-edges", "SR=0,1"],
            "need 4 increasing edges",
        ),
        (
            vec!["--plot", "y.png", "--bin-edges", "VR=0,1"],
            "no channel 'VR'",
        ),
    ] {
        let w = ws();
        let mut a = vec!["yields", w.as_str()];
        a.extend(args);
        let (code, _, err) = gradfit(&a);
        assert_eq!(code, 1, "{a:?}");
        assert!(err.contains(msg), "{a:?}: {err}");
    }
}

#[test]
fn png_text_keeps_the_fonts_letter_spacing() {
    use ab_glyph::{Font, FontRef, ScaleFont};
    use plotters::prelude::IntoFont;
    let size = 100.0;
    let font =
        FontRef::try_from_slice(include_bytes!("../../assets/fonts/DejaVuSans.ttf")).unwrap();
    let scaled = font.as_scaled(size as f32);
    let lsb = |c: char| scaled.h_side_bearing(font.glyph_id(c)) as f64;
    let rsb = |c: char| {
        let id = font.glyph_id(c);
        let ink = font.outline_glyph(id.with_scale(size as f32)).unwrap();
        scaled.h_advance(id) as f64 - ink.px_bounds().max.x as f64
    };
    // the layout width plotters computes for the text (what the SVG and the chart layout use)
    let width = |s: &str| ("sans-serif", size).into_font().box_size(s).unwrap().0 as f64;
    // letters with wide side bearings, spaced: each starts at its pen position + bearing
    let text = "m i n u r T";
    let runs = ink_runs(&ink_columns(text, size));
    let letters: Vec<(usize, char)> = text.char_indices().filter(|(_, c)| *c != ' ').collect();
    assert_eq!(runs.len(), letters.len(), "{runs:?}");
    for ((at, c), (first, _)) in letters.iter().zip(&runs) {
        let want = 50.0 + width(&text[..*at]) + lsb(*c);
        assert!(
            (*first as f64 - want).abs() <= 2.0,
            "'{c}' starts at column {first}, the font puts it at {want:.1}"
        );
    }
    // whole words: the ink spans the layout width less the outer bearings
    for word in ["fitresult", "staterror_SR_AllBDT", "parameter moved to its"] {
        let runs = ink_runs(&ink_columns(word, size));
        let (first, last) = (runs[0].0 as f64, runs[runs.len() - 1].1 as f64);
        let c0 = word.chars().next().unwrap();
        let c1 = word.chars().last().unwrap();
        let want_first = 50.0 + lsb(c0);
        let want_last = 50.0 + width(word) - rsb(c1);
        assert!(
            (first - want_first).abs() <= 2.0,
            "{word}: ink from {first}, font {want_first:.1}"
        );
        assert!(
            (last - want_last).abs() <= 2.0,
            "{word}: ink to {last}, font {want_last:.1}"
        );
    }
}
