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

    /// Render with column widths fitted to the content, wrapped to the
    /// terminal's width (see [`terminal_width`]) when it is too wide.
    pub fn render(&self) -> String {
        self.render_width(terminal_width())
    }

    /// Render for a display `width` characters wide (`None`: never wrap).
    /// A table wider than that is cut into blocks of columns, one under the
    /// other, each repeating the first (label) column.
    pub fn render_width(&self, width: Option<usize>) -> String {
        let n = self.header.len();
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let total = w.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        let Some(width) = width.filter(|&x| total > x && n > 2) else {
            return self.block(&(0..n).collect::<Vec<_>>(), &w);
        };
        let mut blocks: Vec<Vec<usize>> = Vec::new();
        let mut cur = vec![0];
        let mut used = w[0];
        for i in 1..n {
            if cur.len() > 1 && used + 2 + w[i] > width {
                blocks.push(std::mem::replace(&mut cur, vec![0]));
                used = w[0];
            }
            cur.push(i);
            used += 2 + w[i];
        }
        blocks.push(cur);
        let parts: Vec<String> = blocks.iter().map(|b| self.block(b, &w)).collect();
        parts.join("\n")
    }

    /// The columns `cols` (widths `w`, indexed by column) as one block.
    fn block(&self, cols: &[usize], w: &[usize]) -> String {
        let n = cols.len();
        let line = |cells: &[String]| -> String {
            let mut s = String::new();
            for (k, &i) in cols.iter().enumerate() {
                let c = cells.get(i).map(|x| x.as_str()).unwrap_or("");
                let pad = w[i] - c.chars().count();
                if k > 0 {
                    s.push_str("  ");
                }
                if self.right.get(i).copied().unwrap_or(false) {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if k + 1 < n {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        out.push_str(
            &"-".repeat(cols.iter().map(|&i| w[i]).sum::<usize>() + 2 * n.saturating_sub(1)),
        );
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// The width to wrap tables to when standard output is a terminal (`COLUMNS`
/// when set, else the terminal's width); `None` otherwise, so that piped or
/// redirected output keeps whole rows.
pub fn terminal_width() -> Option<usize> {
    let term = console::Term::stdout();
    if !term.is_term() {
        return None;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .or_else(|| term.size_checked().map(|(_, cols)| cols as usize))
        .filter(|&c| c >= 20)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_tables_wrap_into_blocks_that_repeat_the_label_column() {
        let mut t = Table::new(
            &["sample", "bin 0", "bin 1", "bin 2", "bin 3"],
            &[false, true, true, true, true],
        );
        t.row(vec![
            "signal".into(),
            "1.000000".into(),
            "2.000000".into(),
            "3.000000".into(),
            "4.000000".into(),
        ]);
        t.row(vec![
            "background".into(),
            "10.00000".into(),
            "20.00000".into(),
            "30.00000".into(),
            "40.00000".into(),
        ]);
        let whole = t.render_width(None);
        assert_eq!(whole.lines().count(), 4);
        assert_eq!(t.render_width(Some(200)), whole);
        let wrapped = t.render_width(Some(34));
        assert!(
            wrapped.lines().all(|l| l.chars().count() <= 34),
            "{wrapped}"
        );
        // two blocks of two bins, each with the label column, separated by a blank line
        let blocks: Vec<&str> = wrapped.split("\n\n").collect();
        assert_eq!(blocks.len(), 2, "{wrapped}");
        assert!(blocks[0].contains("bin 1") && !blocks[0].contains("bin 2"));
        assert!(blocks[1].contains("bin 3") && blocks[1].contains("background"));
        // every cell appears exactly once
        for v in ["1.000000", "4.000000", "30.00000", "40.00000"] {
            assert_eq!(wrapped.matches(v).count(), 1, "{v}");
        }
        // a single over-wide column still prints (no infinite blocks)
        let narrow = t.render_width(Some(20));
        assert_eq!(narrow.split("\n\n").count(), 4);
    }
}
