//! Stacked pre- or post-fit yields of one channel: the samples stacked, the
//! data, the hatched uncertainty band, and a data / model panel with a line
//! at 1; on bin edges when given (pyhf workspaces carry none) and with a
//! logarithmic y axis on request.

use super::plot::{
    DrawResult, OrMsg, PALETTE, Plot, anchored, font, hatch, legend_row, max_text_width, tick,
};
use super::yields::ChannelYields;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// Stacked expected yields of one channel with data and the uncertainty band,
/// and a data / model ratio panel.
#[derive(Debug, Clone)]
pub struct StackPlot {
    /// Title, e.g. "SR: post-fit".
    pub title: String,
    /// Samples (name, yield per bin), stacked bottom to top in this order.
    pub samples: Vec<(String, Vec<f64>)>,
    /// Total expected yield per bin.
    pub total: Vec<f64>,
    /// Its uncertainty per bin.
    pub total_errors: Vec<f64>,
    /// Observed counts per bin.
    pub data: Vec<f64>,
    /// Bin edges (one more than bins, increasing); `None`: bins numbered 0, 1, ...
    pub edges: Option<Vec<f64>>,
    /// Title of the x axis when edges are given.
    pub x_label: String,
    /// Logarithmic y axis in the main panel.
    pub log: bool,
}

impl StackPlot {
    /// The stacked distribution of one channel; `stage` is "pre-fit" or "post-fit".
    pub fn new(ch: &ChannelYields, stage: &str) -> Self {
        StackPlot {
            title: format!("{}: {stage}", ch.name),
            samples: ch
                .samples
                .iter()
                .map(|s| (s.name.clone(), s.yields.clone()))
                .collect(),
            total: ch.total.clone(),
            total_errors: ch.total_errors.clone(),
            data: ch.data.clone(),
            edges: None,
            x_label: "observable".into(),
            log: false,
        }
    }

    /// Draw on these bin edges (`nbins + 1` increasing numbers); an error
    /// message otherwise.
    pub fn with_edges(mut self, edges: Vec<f64>) -> Result<Self, String> {
        let nb = self.total.len();
        if edges.len() != nb + 1 {
            return Err(format!(
                "{} bin edges given for {nb} bins (need {})",
                edges.len(),
                nb + 1
            ));
        }
        if !edges.iter().all(|e| e.is_finite()) || edges.windows(2).any(|w| !(w[0] < w[1])) {
            return Err(format!("bin edges must increase: {edges:?}"));
        }
        self.edges = Some(edges);
        Ok(self)
    }

    fn legend_width(&self) -> u32 {
        max_text_width(
            self.samples
                .iter()
                .map(|s| s.0.as_str())
                .chain(["uncertainty"]),
            13.0,
        ) + 70
    }

    /// x range of bin `b`.
    fn bin(&self, b: usize) -> (f64, f64) {
        match &self.edges {
            Some(e) => (e[b], e[b + 1]),
            None => (b as f64, b as f64 + 1.0),
        }
    }

    fn x_range(&self) -> (f64, f64) {
        let nb = self.total.len().max(1);
        match &self.edges {
            Some(e) => (e[0], e[e.len() - 1]),
            None => (0.0, nb as f64),
        }
    }

    /// Stacks, band, totals and data on a main panel with any y coordinate;
    /// values below `floor` (the bottom of a log axis) are drawn from it.
    fn draw_main<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
        &self,
        root: &DrawingArea<DB, Shift>,
        chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
        floor: f64,
    ) -> DrawResult {
        let nb = self.total.len();
        let mut base = vec![0.0; nb];
        for (k, (_, y)) in self.samples.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            for b in 0..nb {
                let (lo, hi) = (base[b], base[b] + y[b]);
                let (x0, x1) = self.bin(b);
                if hi > lo && hi > floor {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x0, lo.max(floor)), (x1, hi)],
                            c.mix(0.85).filled(),
                        )))
                        .m()?;
                }
                base[b] = hi;
            }
        }
        let clip = chart.plotting_area().get_pixel_range();
        for b in 0..nb {
            let (t, e) = (self.total[b], self.total_errors[b]);
            let (x0, x1) = self.bin(b);
            if e > 0.0 && t + e > floor {
                hatch(
                    root,
                    chart.backend_coord(&(x0, (t - e).max(floor))),
                    chart.backend_coord(&(x1, t + e)),
                    &clip,
                )?;
            }
            if t > floor {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x0, t), (x1, t)],
                        BLACK.stroke_width(1),
                    )))
                    .m()?;
            }
            let d = self.data[b];
            if d > floor {
                let x = 0.5 * (x0 + x1);
                chart
                    .draw_series(std::iter::once(ErrorBar::new_vertical(
                        x,
                        (d - d.sqrt()).max(floor),
                        d,
                        d + d.sqrt(),
                        BLACK.stroke_width(2),
                        0,
                    )))
                    .m()?;
                chart
                    .draw_series(std::iter::once(Circle::new((x, d), 4, BLACK.filled())))
                    .m()?;
            }
        }
        Ok(())
    }

    fn draw_ratio<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
        ylab: u32,
    ) -> DrawResult {
        let nb = self.total.len();
        let (xa, xb) = self.x_range();
        let mut rmax: f64 = 0.0;
        for b in 0..nb {
            let t = self.total[b];
            if t > 0.0 {
                let d = self.data[b];
                rmax = rmax.max(((d + d.sqrt()) / t - 1.0).abs());
                rmax = rmax.max(((d - d.sqrt()) / t - 1.0).abs());
                rmax = rmax.max(self.total_errors[b] / t);
            }
        }
        let rl = if rmax > 0.45 {
            (rmax * 1.2).min(3.0)
        } else {
            0.5
        };
        let ylo = (1.0 - rl).max(0.0);
        let mut rc = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(10)
            .margin_bottom(5)
            .x_label_area_size(50)
            .y_label_area_size(ylab)
            .build_cartesian_2d(xa..xb, ylo..1.0 + rl)
            .m()?;
        let edges = self.edges.is_some();
        let x_desc = if edges {
            self.x_label.clone()
        } else {
            "bin (pyhf workspaces carry no bin edges: --bin-edges sets them)".to_string()
        };
        rc.configure_mesh()
            .disable_x_mesh()
            .x_labels(if edges { 8 } else { 0 })
            .x_label_formatter(&|v| tick(*v))
            .y_labels(5)
            .y_label_formatter(&|v| tick(*v))
            .x_desc(x_desc)
            .y_desc("data / model")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .light_line_style(WHITE)
            .draw()
            .m()?;
        let rclip = rc.plotting_area().get_pixel_range();
        for b in 0..nb {
            let (t, e) = (self.total[b], self.total_errors[b]);
            if !(t > 0.0) {
                continue;
            }
            let (x0, x1) = self.bin(b);
            if e > 0.0 {
                hatch(
                    root,
                    rc.backend_coord(&(x0, 1.0 - e / t)),
                    rc.backend_coord(&(x1, 1.0 + e / t)),
                    &rclip,
                )?;
            }
            let d = self.data[b];
            let x = 0.5 * (x0 + x1);
            rc.draw_series(std::iter::once(ErrorBar::new_vertical(
                x,
                (d - d.sqrt()) / t,
                d / t,
                (d + d.sqrt()) / t,
                BLACK.stroke_width(2),
                0,
            )))
            .m()?;
            rc.draw_series(std::iter::once(Circle::new((x, d / t), 4, BLACK.filled())))
                .m()?;
        }
        if !edges {
            // bin numbers under the bin centres (every k-th when there are many)
            let every = nb.div_ceil(30).max(1);
            for b in (0..nb).step_by(every) {
                let (px, py) = rc.backend_coord(&(b as f64 + 0.5, ylo));
                root.draw(&Text::new(
                    b.to_string(),
                    (px, py + 8),
                    anchored(13.0, HPos::Center, VPos::Top),
                ))
                .m()?;
            }
        }
        // the line at 1, over the band and the points
        rc.draw_series(std::iter::once(DashedPathElement::new(
            vec![(xa, 1.0), (xb, 1.0)],
            6,
            4,
            BLACK.stroke_width(1),
        )))
        .m()?;
        Ok(())
    }
}

impl Plot for StackPlot {
    fn size(&self) -> (u32, u32) {
        let nb = self.total.len().max(1) as u32;
        let main = (nb * 60).clamp(480, 1400);
        (main + self.legend_width() + 40, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).m()?;
        let (w, h) = self.size();
        let nb = self.total.len();
        root.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, 10),
            anchored(20.0, HPos::Center, VPos::Top),
        ))
        .m()?;
        let (plots, legend) = root.split_horizontally(w - self.legend_width());
        let (_, plots) = plots.split_vertically(40);
        let (top, bottom) = plots.split_vertically((h - 40) * 68 / 100);
        let ymax = (0..nb)
            .map(|b| (self.total[b] + self.total_errors[b]).max(self.data[b] + self.data[b].sqrt()))
            .fold(0.0f64, f64::max);
        let (xa, xb) = self.x_range();
        let ylab = 80;
        let builder = |area| {
            let mut b = ChartBuilder::on(area);
            b.margin_left(10)
                .margin_right(10)
                .x_label_area_size(10)
                .y_label_area_size(ylab);
            b
        };
        if self.log {
            let positive = self
                .samples
                .iter()
                .flat_map(|s| s.1.iter())
                .chain(&self.data)
                .chain(&self.total)
                .copied()
                .filter(|v| *v > 0.0)
                .fold(f64::INFINITY, f64::min);
            let floor = if positive.is_finite() {
                10f64.powf((0.5 * positive).log10().floor())
            } else {
                0.1
            };
            let top_y = if ymax > floor {
                ymax * 30.0
            } else {
                floor * 100.0
            };
            let mut chart = builder(&top)
                .build_cartesian_2d(xa..xb, (floor..top_y).log_scale())
                .m()?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(8)
                .y_label_formatter(&|v| tick(*v))
                .y_desc("events")
                .label_style(font(13.0))
                .axis_desc_style(font(14.0))
                .light_line_style(WHITE)
                .draw()
                .m()?;
            self.draw_main(root, &mut chart, floor)?;
        } else {
            let ymax = if ymax > 0.0 { ymax * 1.25 } else { 1.0 };
            let mut chart = builder(&top).build_cartesian_2d(xa..xb, 0.0..ymax).m()?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(8)
                .y_label_formatter(&|v| tick(*v))
                .y_desc("events")
                .label_style(font(13.0))
                .axis_desc_style(font(14.0))
                .light_line_style(WHITE)
                .draw()
                .m()?;
            self.draw_main(root, &mut chart, f64::NEG_INFINITY)?;
        }
        self.draw_ratio(root, &bottom, ylab)?;
        // legend: data, uncertainty, then samples from the top of the stack down
        let mut y = 70;
        legend_row(&legend, (10, y), "data", &|a, (x, y)| {
            a.draw(&PathElement::new(
                vec![(x + 11, y - 8), (x + 11, y + 8)],
                BLACK.stroke_width(2),
            ))
            .m()?;
            a.draw(&Circle::new((x + 11, y), 4, BLACK.filled())).m()
        })?;
        let (lx0, ly0) = legend.get_base_pixel();
        let lclip = (lx0..lx0 + 10_000, ly0..ly0 + 10_000);
        let uy = y + 24;
        hatch(
            root,
            (lx0 + 10, ly0 + uy - 7),
            (lx0 + 32, ly0 + uy + 7),
            &lclip,
        )?;
        y = uy;
        legend
            .draw(&Text::new(
                "uncertainty".to_string(),
                (40, y),
                anchored(13.0, HPos::Left, VPos::Center),
            ))
            .m()?;
        for (k, (name, _)) in self.samples.iter().enumerate().rev() {
            y += 24;
            let c = PALETTE[k % PALETTE.len()];
            legend_row(&legend, (10, y), name, &|a, (x, y)| {
                a.draw(&Rectangle::new(
                    [(x, y - 7), (x + 22, y + 7)],
                    c.mix(0.85).filled(),
                ))
                .m()
            })?;
        }
        Ok(())
    }
}
