//! Forward-mode evaluation of a tape with exact gradients and Hessians.

use super::{BinOp, Expr, Func, Node};

/// Work buffers for [`Expr::eval_with`]: values, gradients and Hessians per node.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    val: Vec<f64>,
    grad: Vec<f64>,
    hess: Vec<f64>,
    t1: Vec<f64>,
}

/// Value only (allocates one buffer; use [`Expr::eval_with`] in loops).
pub(super) fn value(e: &Expr, vals: &[f64]) -> f64 {
    let mut v = Vec::with_capacity(e.nodes.len());
    for n in &e.nodes {
        let x = node_value(n, &v, vals);
        v.push(x);
    }
    v.last().copied().unwrap_or(0.0)
}

fn node_value(n: &Node, v: &[f64], vals: &[f64]) -> f64 {
    match *n {
        Node::Const(c) => c,
        Node::Var(k) => vals[k],
        Node::Neg(a) => -v[a],
        Node::Not(a) => bool_f(v[a] == 0.0),
        Node::Call(f, a) => call(f, v[a]).0,
        Node::Bin(op, a, b) => binary(op, v[a], v[b]),
        Node::Select(c, a, b) => {
            if v[c] != 0.0 {
                v[a]
            } else {
                v[b]
            }
        }
    }
}

fn bool_f(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn approx_eq(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs())
}

fn binary(op: BinOp, a: f64, b: f64) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Pow => a.powf(b),
        BinOp::Min => {
            if b < a {
                b
            } else {
                a
            }
        }
        BinOp::Max => {
            if b > a {
                b
            } else {
                a
            }
        }
        BinOp::Lt => bool_f(a < b),
        BinOp::Le => bool_f(a <= b),
        BinOp::Gt => bool_f(a > b),
        BinOp::Ge => bool_f(a >= b),
        BinOp::ApproxEq => bool_f(approx_eq(a, b)),
        BinOp::ApproxNe => bool_f(!approx_eq(a, b)),
        BinOp::Eq => bool_f(a == b),
        BinOp::Ne => bool_f(a != b),
        BinOp::And => bool_f(a != 0.0 && b != 0.0),
        BinOp::Or => bool_f(a != 0.0 || b != 0.0),
    }
}

/// f(a), f'(a), f''(a).
fn call(f: Func, a: f64) -> (f64, f64, f64) {
    match f {
        Func::Exp => {
            let e = a.exp();
            (e, e, e)
        }
        Func::Log => (a.ln(), 1.0 / a, -1.0 / (a * a)),
        Func::Sqrt => {
            let s = a.sqrt();
            (s, 0.5 / s, -0.25 / (s * a))
        }
        Func::Abs => {
            let sg = if a > 0.0 {
                1.0
            } else if a < 0.0 {
                -1.0
            } else {
                0.0
            };
            (a.abs(), sg, 0.0)
        }
        Func::Sin => (a.sin(), a.cos(), -a.sin()),
        Func::Cos => (a.cos(), -a.sin(), -a.cos()),
        Func::Tan => {
            let t = a.tan();
            let d = 1.0 + t * t;
            (t, d, 2.0 * t * d)
        }
        Func::Asin => {
            let r = 1.0 - a * a;
            (a.asin(), 1.0 / r.sqrt(), a / (r * r.sqrt()))
        }
        Func::Acos => {
            let r = 1.0 - a * a;
            (a.acos(), -1.0 / r.sqrt(), -a / (r * r.sqrt()))
        }
        Func::Atan => {
            let r = 1.0 + a * a;
            (a.atan(), 1.0 / r, -2.0 * a / (r * r))
        }
        Func::Erf => {
            let c = std::f64::consts::FRAC_2_SQRT_PI * (-a * a).exp();
            (libm::erf(a), c, -2.0 * a * c)
        }
    }
}

/// Which operand a selecting node (min, max, ?:) takes at these values.
fn selected(n: &Node, v: &[f64]) -> Option<usize> {
    match *n {
        Node::Bin(BinOp::Min, a, b) => Some(if v[b] < v[a] { b } else { a }),
        Node::Bin(BinOp::Max, a, b) => Some(if v[b] > v[a] { b } else { a }),
        Node::Select(c, a, b) => Some(if v[c] != 0.0 { a } else { b }),
        _ => None,
    }
}

pub(super) fn eval(
    e: &Expr,
    vals: &[f64],
    s: &mut Scratch,
    grad: Option<&mut [f64]>,
    hess: Option<&mut [f64]>,
) -> f64 {
    let nn = e.nodes.len();
    let nv = e.vars.len();
    assert_eq!(vals.len(), nv, "one value per variable");
    let want_g = grad.is_some() || hess.is_some();
    let want_h = hess.is_some();
    s.val.clear();
    s.val.resize(nn, 0.0);
    if want_g {
        s.grad.clear();
        s.grad.resize(nn * nv, 0.0);
        s.t1.clear();
        s.t1.resize(nv, 0.0);
    }
    if want_h {
        s.hess.clear();
        s.hess.resize(nn * nv * nv, 0.0);
    }
    for (i, n) in e.nodes.iter().enumerate() {
        let x = node_value(n, &s.val, vals);
        s.val[i] = x;
        if !want_g || !e.live[i] {
            continue;
        }
        let (before, cur) = s.grad.split_at_mut(i * nv);
        let g = &mut cur[..nv];
        let ga = |k: usize| &before[k * nv..(k + 1) * nv];
        let (hbefore, hcur) = if want_h {
            let (b, c) = s.hess.split_at_mut(i * nv * nv);
            (b, &mut c[..nv * nv])
        } else {
            (&mut [][..], &mut [][..])
        };
        let ha = |k: usize| &hbefore[k * nv * nv..(k + 1) * nv * nv];
        let live = |k: usize| e.live[k];
        if let Some(k) = selected(n, &s.val) {
            if live(k) {
                g.copy_from_slice(ga(k));
                if want_h {
                    hcur.copy_from_slice(ha(k));
                }
            }
            continue;
        }
        match *n {
            Node::Const(_) | Node::Not(_) | Node::Select(..) => {}
            Node::Var(k) => g[k] = 1.0,
            Node::Neg(a) => {
                lin(
                    g,
                    hcur,
                    -1.0,
                    ga(a),
                    if want_h { ha(a) } else { &[] },
                    false,
                );
            }
            Node::Call(f, a) => {
                let (_, d1, d2) = call(f, s.val[a]);
                chain(g, hcur, d1, d2, ga(a), if want_h { ha(a) } else { &[] });
            }
            Node::Bin(op, a, b) => {
                let (va, vb) = (s.val[a], s.val[b]);
                let (la, lb) = (live(a), live(b));
                let hs = |k: usize| if want_h { ha(k) } else { &[][..] };
                match op {
                    BinOp::Add | BinOp::Sub => {
                        let sb = if op == BinOp::Add { 1.0 } else { -1.0 };
                        if la {
                            lin(g, hcur, 1.0, ga(a), hs(a), true);
                        }
                        if lb {
                            lin(g, hcur, sb, ga(b), hs(b), true);
                        }
                    }
                    BinOp::Mul => {
                        if la {
                            lin(g, hcur, vb, ga(a), hs(a), true);
                        }
                        if lb {
                            lin(g, hcur, va, ga(b), hs(b), true);
                        }
                        if la && lb && want_h {
                            cross(hcur, 1.0, ga(a), ga(b));
                        }
                    }
                    BinOp::Div => {
                        let ib = 1.0 / vb;
                        if la {
                            lin(g, hcur, ib, ga(a), hs(a), true);
                        }
                        if lb {
                            let c = -va * ib * ib;
                            lin(g, hcur, c, ga(b), hs(b), true);
                            if want_h {
                                outer(hcur, 2.0 * va * ib * ib * ib, ga(b), ga(b));
                                if la {
                                    cross(hcur, -ib * ib, ga(a), ga(b));
                                }
                            }
                        }
                    }
                    BinOp::Pow => {
                        if !lb {
                            // a^c with a constant exponent: the power rule (works for a < 0)
                            let d1 = if vb == 0.0 {
                                0.0
                            } else {
                                vb * va.powf(vb - 1.0)
                            };
                            let d2 = if vb == 0.0 || vb == 1.0 {
                                0.0
                            } else {
                                vb * (vb - 1.0) * va.powf(vb - 2.0)
                            };
                            chain(g, hcur, d1, d2, ga(a), hs(a));
                        } else {
                            // a^b = exp(b ln a): z = b ln a, y' = y z', y'' = y (z' z'^T + z'')
                            let y = x;
                            let la_ = va.ln();
                            // z' into t1
                            let t1 = &mut s.t1;
                            for k in 0..nv {
                                let mut z = ga(b)[k] * la_;
                                if la {
                                    z += vb * ga(a)[k] / va;
                                }
                                t1[k] = z;
                                g[k] = y * z;
                            }
                            if want_h {
                                for r in 0..nv {
                                    for c in 0..nv {
                                        let mut z2 = hs(b)[r * nv + c] * la_;
                                        if la {
                                            let (ar, ac) = (ga(a)[r], ga(a)[c]);
                                            let (br, bc) = (ga(b)[r], ga(b)[c]);
                                            z2 += (br * ac + ar * bc) / va
                                                + vb * (hs(a)[r * nv + c] / va
                                                    - ar * ac / (va * va));
                                        }
                                        hcur[r * nv + c] = y * (t1[r] * t1[c] + z2);
                                    }
                                }
                            }
                        }
                    }
                    // selecting and boolean operators: handled above or constant
                    _ => {}
                }
            }
        }
    }
    if let Some(gout) = grad {
        if e.live.last().copied().unwrap_or(false) {
            gout.copy_from_slice(&s.grad[(nn - 1) * nv..nn * nv]);
        } else {
            gout.iter_mut().for_each(|x| *x = 0.0);
        }
    }
    if let Some(hout) = hess {
        if e.live.last().copied().unwrap_or(false) {
            hout.copy_from_slice(&s.hess[(nn - 1) * nv * nv..nn * nv * nv]);
        } else {
            hout.iter_mut().for_each(|x| *x = 0.0);
        }
    }
    s.val.last().copied().unwrap_or(0.0)
}

/// g (+)= c ga, h (+)= c ha (h empty: no Hessian).
fn lin(g: &mut [f64], h: &mut [f64], c: f64, ga: &[f64], ha: &[f64], add: bool) {
    for (x, y) in g.iter_mut().zip(ga) {
        *x = if add { *x + c * y } else { c * y };
    }
    if !h.is_empty() {
        for (x, y) in h.iter_mut().zip(ha) {
            *x = if add { *x + c * y } else { c * y };
        }
    }
}

/// Chain rule through a scalar function with derivatives d1, d2 (overwrites g, h).
fn chain(g: &mut [f64], h: &mut [f64], d1: f64, d2: f64, ga: &[f64], ha: &[f64]) {
    let nv = g.len();
    for k in 0..nv {
        g[k] = d1 * ga[k];
    }
    if !h.is_empty() {
        for r in 0..nv {
            for c in 0..nv {
                h[r * nv + c] = d2 * ga[r] * ga[c] + d1 * ha[r * nv + c];
            }
        }
    }
}

/// h += c u v^T
fn outer(h: &mut [f64], c: f64, u: &[f64], v: &[f64]) {
    let nv = u.len();
    for r in 0..nv {
        for k in 0..nv {
            h[r * nv + k] += c * u[r] * v[k];
        }
    }
}

/// h += c (u v^T + v u^T)
fn cross(h: &mut [f64], c: f64, u: &[f64], v: &[f64]) {
    let nv = u.len();
    for r in 0..nv {
        for k in 0..nv {
            h[r * nv + k] += c * (u[r] * v[k] + v[r] * u[k]);
        }
    }
}
