//! The correlation matrix as a heat map (`gradfit corr --plot`).

use super::plot::{DrawResult, OrMsg, Plot, anchored, max_text_width};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// Correlation matrix of the parameters that have a correlation of at least
/// `threshold` in size with some other parameter.
#[derive(Debug, Clone)]
pub struct CorrelationPlot {
    /// Parameter names in matrix order.
    pub names: Vec<String>,
    /// Correlations, row-major n x n.
    pub corr: Vec<f64>,
    /// Pruning threshold used (for the title).
    pub threshold: f64,
    /// Title.
    pub title: String,
}

impl CorrelationPlot {
    fn cell(&self) -> u32 {
        let n = self.names.len().max(1) as u32;
        (900 / n).clamp(14, 44)
    }

    fn label_width(&self) -> u32 {
        max_text_width(self.names.iter().map(|s| s.as_str()), self.label_size()) + 12
    }

    fn label_size(&self) -> f64 {
        (self.cell() as f64 * 0.75).clamp(10.0, 13.0)
    }
}

fn corr_color(r: f64) -> RGBColor {
    let t = r.clamp(-1.0, 1.0);
    let (end, t) = if t >= 0.0 {
        ((178.0, 24.0, 43.0), t)
    } else {
        ((33.0, 102.0, 172.0), -t)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(255.0, end.0), mix(255.0, end.1), mix(255.0, end.2))
}

impl Plot for CorrelationPlot {
    fn size(&self) -> (u32, u32) {
        let n = self.names.len().max(1) as u32;
        let side = n * self.cell();
        let lw = self.label_width();
        (lw + side + 130, 70 + side + lw + 20)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).m()?;
        let n = self.names.len();
        let cell = self.cell() as i32;
        let lw = self.label_width() as i32;
        let (w, _) = self.size();
        root.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, 12),
            anchored(18.0, HPos::Center, VPos::Top),
        ))
        .m()?;
        let x0 = lw + 10;
        let y0 = 60;
        let ls = self.label_size();
        let show_numbers = cell >= 30;
        for i in 0..n {
            for j in 0..n {
                let r = self.corr[i * n + j];
                let (cx, cy) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
                root.draw(&Rectangle::new(
                    [(cx, cy), (cx + cell, cy + cell)],
                    corr_color(r).filled(),
                ))
                .m()?;
                if show_numbers {
                    let c = if r.abs() > 0.6 { WHITE } else { BLACK };
                    let txt = if r.abs() < 0.005 {
                        "0.00".to_string()
                    } else {
                        format!("{r:.2}").replace('-', "\u{2212}")
                    };
                    root.draw(&Text::new(
                        txt,
                        (cx + cell / 2, cy + cell / 2),
                        anchored(10.0, HPos::Center, VPos::Center).color(&c),
                    ))
                    .m()?;
                }
            }
        }
        let side = n as i32 * cell;
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + side, y0 + side)],
            BLACK.stroke_width(1),
        ))
        .m()?;
        for (i, name) in self.names.iter().enumerate() {
            let c = i as i32 * cell + cell / 2;
            root.draw(&Text::new(
                name.clone(),
                (x0 - 6, y0 + c),
                anchored(ls, HPos::Right, VPos::Center),
            ))
            .m()?;
            root.draw(&Text::new(
                name.clone(),
                (x0 + c, y0 + side + 6),
                anchored(ls, HPos::Right, VPos::Center).transform(FontTransform::Rotate270),
            ))
            .m()?;
        }
        // colour bar
        let bx = x0 + side + 30;
        let bh = side.clamp(120, 400);
        let by = y0;
        let steps = 100;
        for k in 0..steps {
            let r = 1.0 - 2.0 * (k as f64 + 0.5) / steps as f64;
            let ya = by + k * bh / steps;
            let yb = by + (k + 1) * bh / steps;
            root.draw(&Rectangle::new(
                [(bx, ya), (bx + 18, yb)],
                corr_color(r).filled(),
            ))
            .m()?;
        }
        root.draw(&Rectangle::new(
            [(bx, by), (bx + 18, by + bh)],
            BLACK.stroke_width(1),
        ))
        .m()?;
        for (v, t) in [
            (1.0, "+1"),
            (0.5, "+0.5"),
            (0.0, "0"),
            (-0.5, "\u{2212}0.5"),
            (-1.0, "\u{2212}1"),
        ] {
            let y = by + ((1.0 - v) / 2.0 * bh as f64).round() as i32;
            root.draw(&PathElement::new(vec![(bx + 18, y), (bx + 23, y)], BLACK))
                .m()?;
            root.draw(&Text::new(
                t.to_string(),
                (bx + 26, y),
                anchored(12.0, HPos::Left, VPos::Center),
            ))
            .m()?;
        }
        root.draw(&Text::new(
            "correlation".to_string(),
            (bx + 9, by + bh + 10),
            anchored(12.0, HPos::Center, VPos::Top),
        ))
        .m()?;
        Ok(())
    }
}
