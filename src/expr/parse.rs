//! Recursive-descent parser for the expression grammar of [`super`].

use super::{BinOp, Builder, Expr, Func, Node, ParseError};

pub(super) fn parse(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        b: Builder::default(),
        depth: 0,
    };
    p.skip_ws();
    if p.pos >= p.s.len() {
        return Err(p.err("empty expression"));
    }
    let root = p.ternary()?;
    p.skip_ws();
    if p.pos < p.s.len() {
        return Err(p.err(&format!(
            "unexpected '{}'",
            String::from_utf8_lossy(&p.s[p.pos..p.pos + 1])
        )));
    }
    Ok(p.b.finish(root))
}

pub(super) fn func_name(f: Func) -> &'static str {
    match f {
        Func::Exp => "exp",
        Func::Log => "log",
        Func::Sqrt => "sqrt",
        Func::Abs => "abs",
        Func::Sin => "sin",
        Func::Cos => "cos",
        Func::Tan => "tan",
        Func::Asin => "asin",
        Func::Acos => "acos",
        Func::Atan => "atan",
        Func::Erf => "erf",
    }
}

pub(super) fn binfunc_name(op: BinOp) -> Option<&'static str> {
    match op {
        BinOp::Min => Some("min"),
        BinOp::Max => Some("max"),
        _ => None,
    }
}

pub(super) fn op_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Pow => "^",
        BinOp::Min => "min",
        BinOp::Max => "max",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::ApproxEq => "==",
        BinOp::ApproxNe => "!=",
        BinOp::Eq => "===",
        BinOp::Ne => "!==",
        BinOp::And => "&&",
        BinOp::Or => "||",
    }
}

/// Nesting deeper than this is refused (no stack overflow on hostile input).
const MAX_DEPTH: usize = 200;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    b: Builder,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, msg: &str) -> ParseError {
        ParseError {
            pos: self.pos,
            message: msg.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// Consume `tok` (after whitespace) if it is next; never a prefix of a longer operator.
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        let t = tok.as_bytes();
        if self.s[self.pos..].starts_with(t) {
            // "=" must not match the start of "==", "*" not "**", "<" not "<=", ...
            let next = self.s.get(self.pos + t.len()).copied();
            let clash = match tok {
                "*" => next == Some(b'*'),
                "<" | ">" => next == Some(b'='),
                "!" => next == Some(b'='),
                "==" | "!=" => next == Some(b'='),
                _ => false,
            };
            if clash {
                return false;
            }
            self.pos += t.len();
            return true;
        }
        false
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("expression nested too deeply"));
        }
        Ok(())
    }

    fn ternary(&mut self) -> Result<usize, ParseError> {
        self.enter()?;
        let c = self.or()?;
        let r = if self.eat("?") {
            let a = self.ternary()?;
            if !self.eat(":") {
                return Err(self.err("expected ':' of a conditional"));
            }
            let b = self.ternary()?;
            self.b.push(Node::Select(c, a, b))
        } else {
            c
        };
        self.depth -= 1;
        Ok(r)
    }

    fn or(&mut self) -> Result<usize, ParseError> {
        let mut a = self.and()?;
        while self.eat("||") {
            let b = self.and()?;
            a = self.b.push(Node::Bin(BinOp::Or, a, b));
        }
        Ok(a)
    }

    fn and(&mut self) -> Result<usize, ParseError> {
        let mut a = self.equality()?;
        while self.eat("&&") {
            let b = self.equality()?;
            a = self.b.push(Node::Bin(BinOp::And, a, b));
        }
        Ok(a)
    }

    fn equality(&mut self) -> Result<usize, ParseError> {
        let mut a = self.relational()?;
        loop {
            let op = if self.eat("===") {
                BinOp::Eq
            } else if self.eat("!==") {
                BinOp::Ne
            } else if self.eat("==") {
                BinOp::ApproxEq
            } else if self.eat("!=") {
                BinOp::ApproxNe
            } else {
                return Ok(a);
            };
            let b = self.relational()?;
            a = self.b.push(Node::Bin(op, a, b));
        }
    }

    fn relational(&mut self) -> Result<usize, ParseError> {
        let mut a = self.additive()?;
        loop {
            let op = if self.eat("<=") {
                BinOp::Le
            } else if self.eat(">=") {
                BinOp::Ge
            } else if self.eat("<") {
                BinOp::Lt
            } else if self.eat(">") {
                BinOp::Gt
            } else {
                return Ok(a);
            };
            let b = self.additive()?;
            a = self.b.push(Node::Bin(op, a, b));
        }
    }

    fn additive(&mut self) -> Result<usize, ParseError> {
        let mut a = self.multiplicative()?;
        loop {
            let op = if self.eat("+") {
                BinOp::Add
            } else if self.eat("-") {
                BinOp::Sub
            } else {
                return Ok(a);
            };
            let b = self.multiplicative()?;
            a = self.b.push(Node::Bin(op, a, b));
        }
    }

    fn multiplicative(&mut self) -> Result<usize, ParseError> {
        let mut a = self.unary()?;
        loop {
            let op = if self.eat("*") {
                BinOp::Mul
            } else if self.eat("/") {
                BinOp::Div
            } else {
                return Ok(a);
            };
            let b = self.unary()?;
            a = self.b.push(Node::Bin(op, a, b));
        }
    }

    fn unary(&mut self) -> Result<usize, ParseError> {
        self.enter()?;
        let r = if self.eat("-") {
            let a = self.unary()?;
            self.b.push(Node::Neg(a))
        } else if self.eat("+") {
            self.unary()?
        } else if self.eat("!") {
            let a = self.unary()?;
            self.b.push(Node::Not(a))
        } else {
            self.power()?
        };
        self.depth -= 1;
        Ok(r)
    }

    fn power(&mut self) -> Result<usize, ParseError> {
        let base = self.primary()?;
        if self.eat("^") || self.eat("**") {
            // right-associative; the exponent may carry its own sign: a^-b
            let e = self.unary()?;
            return Ok(self.b.push(Node::Bin(BinOp::Pow, base, e)));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<usize, ParseError> {
        self.skip_ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.err("unexpected end of expression"));
        };
        if c == b'(' {
            self.pos += 1;
            let e = self.ternary()?;
            if !self.eat(")") {
                return Err(self.err("expected ')'"));
            }
            return Ok(e);
        }
        if c.is_ascii_digit() || c == b'.' {
            return self.number();
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = self.pos;
            while self.pos < self.s.len()
                && (self.s[self.pos].is_ascii_alphanumeric()
                    || self.s[self.pos] == b'_'
                    || self.s[self.pos] == b'.')
            {
                self.pos += 1;
            }
            let name = std::str::from_utf8(&self.s[start..self.pos])
                .unwrap_or_default()
                .to_string();
            if self.s.get(self.pos) == Some(&b'(') {
                return self.call(&name, start);
            }
            return Ok(match name.as_str() {
                "PI" => self.b.push(Node::Const(std::f64::consts::PI)),
                "EULER" => self.b.push(Node::Const(std::f64::consts::E)),
                "TRUE" => self.b.push(Node::Const(1.0)),
                "FALSE" => self.b.push(Node::Const(0.0)),
                _ => self.b.var(&name),
            });
        }
        Err(self.err(&format!("unexpected '{}'", c as char)))
    }

    fn call(&mut self, name: &str, start: usize) -> Result<usize, ParseError> {
        self.pos += 1; // '('
        let mut args = vec![self.ternary()?];
        while self.eat(",") {
            args.push(self.ternary()?);
        }
        if !self.eat(")") {
            return Err(self.err("expected ')' or ',' in a function call"));
        }
        let one = |f: Func| (f, 1usize);
        let (node, want) = match name {
            "exp" => (Some(one(Func::Exp)), 1),
            "log" | "ln" => (Some(one(Func::Log)), 1),
            "sqrt" => (Some(one(Func::Sqrt)), 1),
            "abs" | "fabs" => (Some(one(Func::Abs)), 1),
            "sin" => (Some(one(Func::Sin)), 1),
            "cos" => (Some(one(Func::Cos)), 1),
            "tan" => (Some(one(Func::Tan)), 1),
            "asin" => (Some(one(Func::Asin)), 1),
            "acos" => (Some(one(Func::Acos)), 1),
            "atan" => (Some(one(Func::Atan)), 1),
            "erf" => (Some(one(Func::Erf)), 1),
            "pow" | "min" | "max" => (None, 2),
            _ => {
                return Err(ParseError {
                    pos: start,
                    message: format!("unknown function '{name}'"),
                });
            }
        };
        if args.len() != want {
            return Err(ParseError {
                pos: start,
                message: format!(
                    "function '{name}' takes {want} argument(s), got {}",
                    args.len()
                ),
            });
        }
        Ok(match node {
            Some((f, _)) => self.b.push(Node::Call(f, args[0])),
            None => {
                let op = match name {
                    "pow" => BinOp::Pow,
                    "min" => BinOp::Min,
                    _ => BinOp::Max,
                };
                self.b.push(Node::Bin(op, args[0], args[1]))
            }
        })
    }

    fn number(&mut self) -> Result<usize, ParseError> {
        let start = self.pos;
        let s = self.s;
        let mut i = self.pos;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i < s.len() && s[i] == b'.' {
            i += 1;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
            let mut j = i + 1;
            if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
                j += 1;
            }
            if j < s.len() && s[j].is_ascii_digit() {
                while j < s.len() && s[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        let text = std::str::from_utf8(&s[start..i]).unwrap_or_default();
        let v: f64 = text.parse().map_err(|_| ParseError {
            pos: start,
            message: format!("invalid number '{text}'"),
        })?;
        self.pos = i;
        if self.pos < s.len() && (s[self.pos].is_ascii_alphabetic() || s[self.pos] == b'_') {
            return Err(self.err("a name cannot start with a digit"));
        }
        Ok(self.b.push(Node::Const(v)))
    }
}
