//! Arithmetic expressions with exact first and second derivatives.
//!
//! The HS3 `generic_function` language (and pyhf-style custom functions) parsed
//! once into a small tape: a list of nodes whose operands always come earlier,
//! so evaluation is one forward pass with no string handling. Derivatives are
//! forward-mode and second order: every node carries its value, its gradient and
//! its Hessian with respect to the expression's variables, so [`Expr::hessian`]
//! is exact (to rounding), not a difference quotient.
//!
//! Grammar (HS3 "generic expressions", lowest precedence first):
//! `c ? a : b`; `||`; `&&`; `==` `!=` `===` `!==`; `<` `<=` `>` `>=`; `+` `-`;
//! `*` `/`; unary `-` `+` `!`; `^` (also `**`, right-associative, binding tighter
//! than a unary minus on its left: `-x^2 = -(x^2)`). Functions: `exp log ln sqrt
//! abs sin cos tan asin acos atan erf` of one argument, `pow min max` of two.
//! Constants `PI`, `EULER` (Euler's number), `TRUE`, `FALSE`. Any other name is a
//! variable (letters, digits, `_` and `.`; not starting with a digit).
//!
//! Comparisons and logical operators give 1 or 0 and have zero derivatives; `min`,
//! `max`, `abs` and `?:` take the derivatives of the branch they select.
//!
//! A crate such as `evalexpr` parses and evaluates but gives no derivatives,
//! which is why this module is written out here.

mod deriv;
mod parse;

pub use deriv::Scratch;

use std::fmt;

/// Functions of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// e^x
    Exp,
    /// natural logarithm
    Log,
    /// square root
    Sqrt,
    /// absolute value
    Abs,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// tangent
    Tan,
    /// inverse sine
    Asin,
    /// inverse cosine
    Acos,
    /// inverse tangent
    Atan,
    /// error function
    Erf,
}

/// Binary operators and two-argument functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
    /// a ^ b, pow(a, b)
    Pow,
    /// min(a, b)
    Min,
    /// max(a, b)
    Max,
    /// a < b
    Lt,
    /// a <= b
    Le,
    /// a > b
    Gt,
    /// a >= b
    Ge,
    /// a == b (within a few units in the last place)
    ApproxEq,
    /// a != b (not within a few units in the last place)
    ApproxNe,
    /// a === b
    Eq,
    /// a !== b
    Ne,
    /// a && b
    And,
    /// a || b
    Or,
}

/// One node of the tape; operands are indices of earlier nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node {
    /// A number.
    Const(f64),
    /// Variable `i` of [`Expr::variables`].
    Var(usize),
    /// -a
    Neg(usize),
    /// !a
    Not(usize),
    /// f(a)
    Call(Func, usize),
    /// a op b
    Bin(BinOp, usize, usize),
    /// c ? a : b
    Select(usize, usize, usize),
}

/// A parse error with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// Byte offset into the expression.
    pub pos: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.pos)
    }
}

impl std::error::Error for ParseError {}

/// A parsed expression: a tape of nodes over named variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    nodes: Vec<Node>,
    vars: Vec<String>,
    /// Per node: does it depend on any variable?
    live: Vec<bool>,
}

/// Parse an expression (see the module documentation for the grammar).
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    parse::parse(text)
}

impl Expr {
    /// The variables in order of first appearance (the order of value slices).
    pub fn variables(&self) -> &[String] {
        &self.vars
    }

    /// The tape (operands before their users; the last node is the result).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// True when the expression depends on no variable.
    pub fn is_constant(&self) -> bool {
        !self.live.last().copied().unwrap_or(false)
    }

    /// A constant expression.
    pub fn constant(v: f64) -> Expr {
        Expr::from_parts(vec![Node::Const(v)], Vec::new())
    }

    /// The expression consisting of one variable.
    pub fn var(name: &str) -> Expr {
        Expr::from_parts(vec![Node::Var(0)], vec![name.to_string()])
    }

    /// Sum of expressions (0 for none).
    pub fn sum(terms: Vec<Expr>) -> Expr {
        Expr::fold(terms, BinOp::Add, 0.0)
    }

    /// Product of expressions (1 for none).
    pub fn product(factors: Vec<Expr>) -> Expr {
        Expr::fold(factors, BinOp::Mul, 1.0)
    }

    /// `self op other`.
    pub fn binary(&self, op: BinOp, other: &Expr) -> Expr {
        let mut b = Builder::default();
        let a = b.append(self, &|_| None);
        let c = b.append(other, &|_| None);
        let r = b.push(Node::Bin(op, a, c));
        b.finish(r)
    }

    fn fold(items: Vec<Expr>, op: BinOp, empty: f64) -> Expr {
        let mut b = Builder::default();
        let mut acc: Option<usize> = None;
        for e in &items {
            let i = b.append(e, &|_| None);
            acc = Some(match acc {
                None => i,
                Some(a) => b.push(Node::Bin(op, a, i)),
            });
        }
        let r = match acc {
            Some(r) => r,
            None => b.push(Node::Const(empty)),
        };
        b.finish(r)
    }

    /// Replace variables by expressions: `map(name)` gives the replacement, or
    /// `None` to keep the variable. Variables of the result are in order of first
    /// appearance.
    pub fn substitute(&self, map: &dyn Fn(&str) -> Option<Expr>) -> Expr {
        let mut b = Builder::default();
        let r = b.append(self, map);
        b.finish(r)
    }

    /// Rename variables (`map(name)` gives the new name, or `None` to keep it).
    pub fn rename(&self, map: &dyn Fn(&str) -> Option<String>) -> Expr {
        self.substitute(&|n| map(n).map(|m| Expr::var(&m)))
    }

    fn from_parts(nodes: Vec<Node>, vars: Vec<String>) -> Expr {
        let mut live = Vec::with_capacity(nodes.len());
        for n in &nodes {
            let l = match *n {
                Node::Const(_) => false,
                Node::Var(_) => true,
                Node::Neg(a) | Node::Not(a) | Node::Call(_, a) => live[a],
                Node::Bin(_, a, b) => live[a] || live[b],
                Node::Select(c, a, b) => live[c] || live[a] || live[b],
            };
            live.push(l);
        }
        Expr { nodes, vars, live }
    }

    /// Value at `vals` (one per variable).
    pub fn eval(&self, vals: &[f64]) -> f64 {
        deriv::value(self, vals)
    }

    /// Value and gradient (`grad` has one entry per variable).
    pub fn grad(&self, vals: &[f64], grad: &mut [f64]) -> f64 {
        let mut s = Scratch::default();
        self.eval_with(vals, &mut s, Some(grad), None)
    }

    /// Value, gradient and row-major Hessian (`hess` has n_vars^2 entries).
    pub fn hessian(&self, vals: &[f64], grad: &mut [f64], hess: &mut [f64]) -> f64 {
        let mut s = Scratch::default();
        self.eval_with(vals, &mut s, Some(grad), Some(hess))
    }

    /// Value with optional gradient and Hessian, reusing `scratch` (no allocation
    /// after the first call with a given expression size).
    pub fn eval_with(
        &self,
        vals: &[f64],
        scratch: &mut Scratch,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        deriv::eval(self, vals, scratch, grad, hess)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn go(e: &Expr, i: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match e.nodes[i] {
                Node::Const(v) => write!(f, "{v:?}"),
                Node::Var(k) => write!(f, "{}", e.vars[k]),
                Node::Neg(a) => {
                    write!(f, "(-")?;
                    go(e, a, f)?;
                    write!(f, ")")
                }
                Node::Not(a) => {
                    write!(f, "(!")?;
                    go(e, a, f)?;
                    write!(f, ")")
                }
                Node::Call(func, a) => {
                    write!(f, "{}(", parse::func_name(func))?;
                    go(e, a, f)?;
                    write!(f, ")")
                }
                Node::Bin(op, a, b) => {
                    if let Some(name) = parse::binfunc_name(op) {
                        write!(f, "{name}(")?;
                        go(e, a, f)?;
                        write!(f, ", ")?;
                        go(e, b, f)?;
                        return write!(f, ")");
                    }
                    write!(f, "(")?;
                    go(e, a, f)?;
                    write!(f, " {} ", parse::op_symbol(op))?;
                    go(e, b, f)?;
                    write!(f, ")")
                }
                Node::Select(c, a, b) => {
                    write!(f, "(")?;
                    go(e, c, f)?;
                    write!(f, " ? ")?;
                    go(e, a, f)?;
                    write!(f, " : ")?;
                    go(e, b, f)?;
                    write!(f, ")")
                }
            }
        }
        match self.nodes.len() {
            0 => write!(f, "0"),
            n => go(self, n - 1, f),
        }
    }
}

/// Incremental construction of a tape (used by the parser and by composition).
#[derive(Default)]
pub(crate) struct Builder {
    nodes: Vec<Node>,
    vars: Vec<String>,
}

impl Builder {
    pub(crate) fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    pub(crate) fn var(&mut self, name: &str) -> usize {
        let k = match self.vars.iter().position(|v| v == name) {
            Some(k) => k,
            None => {
                self.vars.push(name.to_string());
                self.vars.len() - 1
            }
        };
        self.push(Node::Var(k))
    }

    /// Copy `e` into this tape, substituting variables; returns its result node.
    fn append(&mut self, e: &Expr, map: &dyn Fn(&str) -> Option<Expr>) -> usize {
        let mut idx = Vec::with_capacity(e.nodes.len());
        for n in &e.nodes {
            let i = match *n {
                Node::Const(v) => self.push(Node::Const(v)),
                Node::Var(k) => match map(&e.vars[k]) {
                    Some(sub) => self.append(&sub, &|_| None),
                    None => self.var(&e.vars[k]),
                },
                Node::Neg(a) => self.push(Node::Neg(idx[a])),
                Node::Not(a) => self.push(Node::Not(idx[a])),
                Node::Call(f, a) => self.push(Node::Call(f, idx[a])),
                Node::Bin(op, a, b) => self.push(Node::Bin(op, idx[a], idx[b])),
                Node::Select(c, a, b) => self.push(Node::Select(idx[c], idx[a], idx[b])),
            };
            idx.push(i);
        }
        match idx.last() {
            Some(&r) => r,
            None => self.push(Node::Const(0.0)),
        }
    }

    /// The expression whose result is node `root` (nodes after it are dropped).
    pub(crate) fn finish(mut self, root: usize) -> Expr {
        self.nodes.truncate(root + 1);
        Expr::from_parts(self.nodes, self.vars)
    }
}

#[cfg(test)]
mod tests;
