use super::*;

fn ev(text: &str, names: &[(&str, f64)]) -> f64 {
    let e = parse(text).unwrap();
    let vals: Vec<f64> = e
        .variables()
        .iter()
        .map(|v| names.iter().find(|(n, _)| n == v).unwrap().1)
        .collect();
    e.eval(&vals)
}

#[test]
fn precedence_and_values() {
    let x = [("x", 3.0), ("y", 2.0), ("alpha", 0.5)];
    assert_eq!(ev("1 + 2 * 3", &x), 7.0);
    assert_eq!(ev("-x^2", &x), -9.0);
    assert_eq!(ev("2^3^2", &x), 512.0);
    assert_eq!(ev("2**-1", &x), 0.5);
    assert_eq!(ev("(1+2)*3", &x), 9.0);
    assert_eq!(ev("x - y - 1", &x), 0.0);
    assert_eq!(ev("x / y / 3", &x), 0.5);
    assert_eq!(ev("-alpha", &x), -0.5);
    assert_eq!(ev("2/3", &x), 2.0 / 3.0);
    assert_eq!(ev("1.234e2 + 1E-1 + .5", &x), 123.4 + 0.1 + 0.5);
    assert_eq!(ev("min(x, y) + max(x, y)", &x), 5.0);
    assert_eq!(ev("pow(y, 10)", &x), 1024.0);
    assert_eq!(ev("x > y ? 10 : 20", &x), 10.0);
    assert_eq!(ev("x < y || y == 2", &x), 1.0);
    assert_eq!(ev("!(x === 3) && TRUE", &x), 0.0);
    assert_eq!(ev("x !== 3", &x), 0.0);
    assert_eq!(ev("PI", &x), std::f64::consts::PI);
    assert_eq!(ev("log(EULER)", &x), 1.0);
    assert_eq!(ev("abs(-x) + sqrt(4)", &x), 5.0);
    assert_eq!(ev("0.1 + 0.2 == 0.3", &x), 1.0);
    assert_eq!(ev("0.1 + 0.2 === 0.3", &x), 0.0);
    assert_eq!(
        ev(
            "sigma_nom_ch0 * (1.0 + 0.1 * alpha_sigma)",
            &[("sigma_nom_ch0", 2.0), ("alpha_sigma", 0.5)]
        ),
        2.0 * 1.05
    );
}

#[test]
fn variables_in_order_of_appearance() {
    let e = parse("b*a + exp(b) - c.d").unwrap();
    assert_eq!(e.variables(), &["b", "a", "c.d"]);
    assert!(!e.is_constant());
    assert!(parse("2*PI + pow(2, 3)").unwrap().is_constant());
}

#[test]
fn parse_errors_name_the_position() {
    for (text, pos) in [
        ("1 +", 3),
        ("(a + b", 6),
        ("foo(1)", 0),
        ("pow(1)", 0),
        ("a $ b", 2),
        ("2x", 1),
        ("", 0),
        ("a ? b", 5),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.pos, pos, "{text}: {e}");
    }
    let deep = "(".repeat(1000) + "1" + &")".repeat(1000);
    assert!(parse(&deep).is_err());
}

/// Central differences of the value (gradient) and of the gradient (Hessian).
fn check_derivatives(text: &str, at: &[f64]) {
    let e = parse(text).unwrap();
    let n = e.variables().len();
    assert_eq!(n, at.len(), "{text}");
    let mut g = vec![0.0; n];
    let mut h = vec![0.0; n * n];
    let f = e.hessian(at, &mut g, &mut h);
    assert!((f - e.eval(at)).abs() <= 1e-15 * f.abs().max(1.0));
    let mut g2 = vec![0.0; n];
    assert_eq!(e.grad(at, &mut g2), f);
    assert_eq!(g, g2);
    for k in 0..n {
        let s = 1e-6 * at[k].abs().max(1.0);
        let mut p = at.to_vec();
        let mut m = at.to_vec();
        p[k] += s;
        m[k] -= s;
        let fd = (e.eval(&p) - e.eval(&m)) / (2.0 * s);
        assert!(
            (fd - g[k]).abs() <= 1e-7 * g[k].abs().max(1.0),
            "{text}: d/d{} = {} vs fd {}",
            e.variables()[k],
            g[k],
            fd
        );
        let (mut gp, mut gm) = (vec![0.0; n], vec![0.0; n]);
        e.grad(&p, &mut gp);
        e.grad(&m, &mut gm);
        for r in 0..n {
            let fd2 = (gp[r] - gm[r]) / (2.0 * s);
            let hv = h[r * n + k];
            assert!(
                (fd2 - hv).abs() <= 1e-6 * hv.abs().max(1.0),
                "{text}: d2/d{}d{} = {hv} vs fd {fd2}",
                e.variables()[r],
                e.variables()[k]
            );
            assert_eq!(h[r * n + k], h[k * n + r], "{text}: symmetric");
        }
    }
}

#[test]
fn derivatives_match_differences() {
    let cases: &[(&str, &[f64])] = &[
        ("-alpha", &[0.7]),
        ("a*b + a/b - b^3", &[1.3, -0.4]),
        ("exp(a*b) * log(b) / sqrt(a)", &[0.8, 1.9]),
        ("pow(a, b)", &[1.7, 2.3]),
        ("a^b^0.5", &[1.2, 1.5]),
        ("2^a + a^2 + pow(a, -1.5)", &[0.9]),
        ("(a - b)^2 / (2 * c^2)", &[0.3, -0.2, 1.4]),
        ("sin(a) * cos(b) + tan(a*b)", &[0.4, 0.6]),
        ("asin(a) + acos(b) + atan(a*b)", &[0.3, -0.5]),
        ("erf(a - b) * abs(b)", &[0.3, -0.8]),
        ("min(a*a, b) + max(a, 2*b)", &[0.9, 0.5]),
        ("a > 0 ? a*b : -a*b*b", &[0.5, 2.0]),
        ("a > 0 ? a*b : -a*b*b", &[-0.5, 2.0]),
        ("sigma_nom * (1.0 + 0.1 * alpha)", &[2.0, 0.3]),
        ("-(a / (1 + exp(-b)))^2", &[1.5, 0.25]),
    ];
    for (t, at) in cases {
        check_derivatives(t, at);
    }
}

#[test]
fn composition_and_display_round_trip() {
    let f = parse("a * b + 1").unwrap();
    let g = f.substitute(&|n| match n {
        "a" => Some(parse("x^2").unwrap()),
        "b" => Some(Expr::constant(3.0)),
        _ => None,
    });
    assert_eq!(g.variables(), &["x"]);
    assert_eq!(g.eval(&[2.0]), 13.0);
    let text = g.to_string();
    let h = parse(&text).unwrap();
    assert_eq!(h.eval(&[2.0]), 13.0);
    let s = Expr::sum(vec![Expr::var("p"), Expr::constant(2.0), Expr::var("q")]);
    assert_eq!(s.variables(), &["p", "q"]);
    assert_eq!(s.eval(&[1.0, 4.0]), 7.0);
    let p = Expr::product(vec![Expr::var("p"), Expr::var("p"), Expr::constant(0.5)]);
    let (mut gr, mut he) = ([0.0], [0.0]);
    assert_eq!(p.hessian(&[3.0], &mut gr, &mut he), 4.5);
    assert_eq!((gr[0], he[0]), (3.0, 1.0));
    assert_eq!(Expr::sum(vec![]).eval(&[]), 0.0);
    assert_eq!(Expr::product(vec![]).eval(&[]), 1.0);
    let r = f.rename(&|n| (n == "a").then(|| "z".to_string()));
    assert_eq!(r.variables(), &["z", "b"]);
}

#[test]
fn constant_exponent_power_rule_at_negative_and_zero_base() {
    let e = parse("a^2 + a^3").unwrap();
    let (mut g, mut h) = ([0.0], [0.0]);
    let v = e.hessian(&[-2.0], &mut g, &mut h);
    assert_eq!((v, g[0], h[0]), (-4.0, 8.0, -10.0));
    let v = e.hessian(&[0.0], &mut g, &mut h);
    assert_eq!((v, g[0], h[0]), (0.0, 0.0, 2.0));
}
