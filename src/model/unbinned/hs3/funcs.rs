//! HS3 `functions` (sum, product, generic_function) and parameter slots,
//! compiled into expressions over parameter names.

use super::Doc;
use crate::error::{Error, Result};
use crate::expr::{self, Expr};
use serde_json::Value;
use std::collections::HashMap;

/// Compiles slot values (numbers, parameter names, function names) into
/// expressions over parameter names, inlining functions (memoised, with cycle
/// detection).
pub(crate) struct Resolver<'a> {
    pub doc: &'a Doc<'a>,
    memo: HashMap<String, Expr>,
    stack: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub fn new(doc: &'a Doc<'a>) -> Self {
        Resolver {
            doc,
            memo: HashMap::new(),
            stack: Vec::new(),
        }
    }

    fn err(&self, loc: &str, msg: impl Into<String>) -> Error {
        Error::workspace(self.doc.source, loc, msg)
    }

    /// The expression of a slot value at JSON location `loc`.
    pub fn slot(&mut self, v: &Value, loc: &str) -> Result<Expr> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Expr::constant)
                .ok_or_else(|| self.err(loc, format!("{n} is not a finite number"))),
            Value::String(s) => {
                if let Ok(x) = s.trim().parse::<f64>() {
                    // ROOT writes default coefficients as the strings "1.0", "0.0"
                    if x.is_finite() {
                        return Ok(Expr::constant(x));
                    }
                }
                self.name(s, loc)
            }
            _ => Err(self.err(
                loc,
                "expected a number or the name of a parameter or function",
            )),
        }
    }

    /// The expression of a name: a function (inlined) or a parameter.
    pub fn name(&mut self, name: &str, loc: &str) -> Result<Expr> {
        if name.is_empty() {
            return Err(self.err(loc, "empty name"));
        }
        if let Some(e) = self.memo.get(name) {
            return Ok(e.clone());
        }
        if self.doc.dists.contains_key(name) {
            return Err(self.err(
                loc,
                format!("'{name}' is a distribution, where a parameter or function is expected"),
            ));
        }
        let Some(&fi) = self.doc.funcs.get(name) else {
            return Ok(Expr::var(name));
        };
        if let Some(pos) = self.stack.iter().position(|s| s == name) {
            let mut cycle: Vec<String> = self.stack[pos..].to_vec();
            cycle.push(name.to_string());
            return Err(self.err(
                loc,
                format!(
                    "functions refer to each other in a cycle: {}",
                    cycle.join(" -> ")
                ),
            ));
        }
        self.stack.push(name.to_string());
        let r = self.function(fi);
        self.stack.pop();
        let e = r?;
        self.memo.insert(name.to_string(), e.clone());
        Ok(e)
    }

    fn function(&mut self, fi: usize) -> Result<Expr> {
        let f = &self.doc.functions[fi];
        let loc = format!("/functions/{fi}");
        let ty = f.get("type").and_then(Value::as_str).unwrap_or("");
        let list = |key: &str| -> Result<&Vec<Value>> {
            f.get(key).and_then(Value::as_array).ok_or_else(|| {
                self.err(
                    &format!("{loc}/{key}"),
                    format!("a '{ty}' function needs an array '{key}'"),
                )
            })
        };
        match ty {
            "sum" => {
                let items = list("summands")?.clone();
                let terms = items
                    .iter()
                    .enumerate()
                    .map(|(k, v)| self.slot(v, &format!("{loc}/summands/{k}")))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Expr::sum(terms))
            }
            "product" => {
                let items = list("factors")?.clone();
                let terms = items
                    .iter()
                    .enumerate()
                    .map(|(k, v)| self.slot(v, &format!("{loc}/factors/{k}")))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Expr::product(terms))
            }
            "generic_function" => {
                let text = f
                    .get("expression")
                    .and_then(Value::as_str)
                    .ok_or_else(|| self.err(&format!("{loc}/expression"), "a generic_function needs a string 'expression'"))?;
                let e = expr::parse(text).map_err(|e| {
                    self.err(&format!("{loc}/expression"), format!("cannot parse '{text}': {e}"))
                })?;
                let mut subs: HashMap<String, Expr> = HashMap::new();
                for v in e.variables() {
                    let s = self.name(v, &format!("{loc}/expression"))?;
                    subs.insert(v.clone(), s);
                }
                Ok(e.substitute(&|n| subs.get(n).cloned()))
            }
            "" => Err(self.err(&format!("{loc}/type"), "function without a 'type'")),
            other => Err(self.err(
                &format!("{loc}/type"),
                format!(
                    "function type '{other}' is not supported (supported: sum, product, generic_function)"
                ),
            )),
        }
    }
}
