//! JSON text written exactly as Python's `json.dumps(..., sort_keys=True)`
//! writes it, so that gradfit's workspace utilities print pyhf's bytes and
//! compute pyhf's digests.
//!
//! What differs from serde_json's writer: floats in Python's `repr` form
//! (`1e-05`, `1e+16`, `100.0`), Python's separators (`", "` and `": "`
//! without indent, `","` and `": "` with it), keys sorted by code point, and
//! with `ensure_ascii` every character outside printable ASCII escaped as
//! `\uXXXX` (surrogate pairs above the BMP), lowercase hex, as Python does.

use serde_json::Value;

/// How to write: Python's `indent` and `ensure_ascii` arguments.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Spaces per level (`None`: all on one line).
    pub indent: Option<usize>,
    /// Escape non-ASCII characters (Python's default).
    pub ensure_ascii: bool,
}

impl Style {
    /// `json.dumps(v, indent=4, sort_keys=True)`: what pyhf's commands print.
    pub const PRETTY: Style = Style {
        indent: Some(4),
        ensure_ascii: true,
    };
    /// `json.dumps(v, sort_keys=True, ensure_ascii=False)`: what pyhf's digests hash.
    pub const DIGEST: Style = Style {
        indent: None,
        ensure_ascii: false,
    };
}

/// `json.dumps(value, sort_keys=True, ...)` in the given style.
pub fn dumps(value: &Value, style: Style) -> String {
    let mut out = String::new();
    write_value(&mut out, value, style, 0);
    out
}

/// Python's `repr` of a finite float: the shortest digits that read back to
/// the same number, in fixed notation when the decimal exponent is in
/// [-4, 16), else as `d.ddde+XX`.
pub fn float_repr(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    if !x.is_finite() {
        // not reachable from JSON input; Python writes these names
        return if x.is_nan() {
            "NaN"
        } else if x > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Python's repr does
    let sci = format!("{:e}", x.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let (digits, exp) = ties_to_even(x.abs(), digits, exp);
    let sign = if x < 0.0 { "-" } else { "" };
    // decimal point position relative to the digit string (Python's decpt)
    let decpt = exp + 1;
    let n = digits.len() as i32;
    let body = if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let e = decpt - 1;
        format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        format!("{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        let (a, b) = digits.split_at(decpt as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

/// Rust's shortest digits settle an exact decimal tie (x halfway between two
/// shortest candidates, as 3.68738555908203125 between ...312 and ...313)
/// upwards; Python's repr (David Gay's dtoa) takes the even one.
fn ties_to_even(x: f64, digits: String, exp: i32) -> (String, i32) {
    let n = digits.len();
    if digits.ends_with(['0', '2', '4', '6', '8']) {
        return (digits, exp); // an even last digit is already Python's choice
    }
    let mant_digits = |s: &str| -> (String, i32) {
        let (m, e) = s.split_once('e').unwrap_or((s, "0"));
        (
            m.chars().filter(|c| c.is_ascii_digit()).collect(),
            e.parse().unwrap_or(0),
        )
    };
    // one more digit than the shortest form: a tie ends in an exact 5
    let (d, e) = mant_digits(&format!("{:.*e}", n, x));
    if !d.ends_with('5') || d.len() != n + 1 {
        return (digits, exp);
    }
    // exact: every further digit of the full expansion is 0 (a double has at most 767)
    let (all, _) = mant_digits(&format!("{:.*e}", 780, x));
    if all[..n + 1] != d || !all[n + 1..].bytes().all(|b| b == b'0') {
        return (digits, exp);
    }
    let mut t: Vec<u8> = d.as_bytes()[..n].to_vec();
    let mut e = e;
    if matches!(t[n - 1], b'1' | b'3' | b'5' | b'7' | b'9') {
        // round the truncation up, carrying
        let mut i = n;
        loop {
            if i == 0 {
                t.insert(0, b'1');
                t.pop();
                e += 1;
                break;
            }
            i -= 1;
            if t[i] == b'9' {
                t[i] = b'0';
            } else {
                t[i] += 1;
                break;
            }
        }
    }
    while t.len() > 1 && t.last() == Some(&b'0') {
        t.pop();
    }
    (String::from_utf8(t).unwrap_or(digits), e)
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else {
        out.push_str(&float_repr(n.as_f64().unwrap_or(f64::NAN)));
    }
}

fn write_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && !(' '..='~').contains(&c) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn newline(out: &mut String, style: Style, level: usize) {
    if let Some(k) = style.indent {
        out.push('\n');
        out.push_str(&" ".repeat(k * level));
    }
}

fn write_value(out: &mut String, v: &Value, style: Style, level: usize) {
    let item_sep = if style.indent.is_some() { "," } else { ", " };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s, style.ensure_ascii),
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, style, level + 1);
                write_value(out, x, style, level + 1);
            }
            newline(out, style, level);
            out.push(']');
        }
        Value::Object(o) => {
            if o.is_empty() {
                out.push_str("{}");
                return;
            }
            // Python sorts str keys by code point: the order of their UTF-8 bytes
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, style, level + 1);
                write_string(out, k, style.ensure_ascii);
                out.push_str(": ");
                write_value(out, &o[k.as_str()], style, level + 1);
            }
            newline(out, style, level);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        // repr() of each, from CPython 3
        for (x, want) in [
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.2345e22, "1.2345e+22"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (0.30000000000000004, "0.30000000000000004"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
        ] {
            assert_eq!(float_repr(x), want, "{x:e}");
        }
        // exact decimal ties between two shortest forms: Python takes the even one
        for (x, want) in [
            ("3.68738555908203125", "3.6873855590820312"),
            ("1.12033843994140625", "1.1203384399414062"),
            ("8.1335601806640625", "8.133560180664062"),
            ("0.5", "0.5"),
            ("2.5e-05", "2.5e-05"),
        ] {
            assert_eq!(float_repr(x.parse().unwrap()), want, "{x}");
        }
    }

    #[test]
    fn layout_and_escapes_follow_python() {
        let v: Value = serde_json::from_str(
            r#"{"b": [1, 2.0, {"z": null, "a": true}], "a": [], "c": {}, "é": "x\"\u0001☃😀"}"#,
        )
        .unwrap();
        assert_eq!(
            dumps(&v, Style::DIGEST),
            "{\"a\": [], \"b\": [1, 2.0, {\"a\": true, \"z\": null}], \"c\": {}, \"é\": \"x\\\"\\u0001☃😀\"}"
        );
        assert_eq!(
            dumps(&v, Style::PRETTY),
            "{\n    \"a\": [],\n    \"b\": [\n        1,\n        2.0,\n        {\n            \"a\": true,\n            \"z\": null\n        }\n    ],\n    \"c\": {},\n    \"\\u00e9\": \"x\\\"\\u0001\\u2603\\ud83d\\ude00\"\n}"
        );
    }
}
