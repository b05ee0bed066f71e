//! Plain-text tables for human-readable output.

/// A simple left/right aligned text table.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    /// A table with these column headers; `right` marks right-aligned (numeric) columns.
    pub fn new(header: &[&str], right: &[bool]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            right: right.to_vec(),
        }
    }

    /// Append a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Render with column widths fitted to the content.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut s = String::new();
            for i in 0..n {
                let c = cells.get(i).map(|x| x.as_str()).unwrap_or("");
                let pad = w[i] - c.chars().count();
                if i > 0 {
                    s.push_str("  ");
                }
                if self.right.get(i).copied().unwrap_or(false) {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if i + 1 < n {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        out.push_str(&"-".repeat(w.iter().sum::<usize>() + 2 * n.saturating_sub(1)));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// Format a number compactly for tables.
pub fn fmt(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a < 1e-15 {
        // rounding noise (1e-78 from a cancellation) reads as 0
        return format!("{:.6}", 0.0);
    }
    if a != 0.0 && !(1e-4..1e6).contains(&a) {
        format!("{x:.6e}")
    } else {
        format!("{x:.6}")
    }
}

/// [`fmt`] for a fitted value with uncertainty `scale`: values within the
/// minimiser's precision of zero (1e-6 of the uncertainty) print as 0.
pub fn fmt_fitted(x: f64, scale: f64) -> String {
    if scale.is_finite() && scale > 0.0 && x.abs() < 1e-6 * scale {
        fmt(0.0)
    } else {
        fmt(x)
    }
}
