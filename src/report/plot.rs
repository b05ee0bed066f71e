//! Plots of pulls, the impact ranking and the correlation matrix, as SVG or
//! PNG, and the helpers the other plots share (stacked yields:
//! [`super::plot_yields`]; scans, limits, toys: [`super::plot_infer`]).
//!
//! Drawn with plotters; text is laid out (and, for PNG, rasterised) with the
//! DejaVu Sans font shipped in `assets/fonts`, so no system font or library is
//! needed. Files are written atomically.

use super::pulls::Pull;
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

pub(crate) const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // the font is compiled in and known to parse; a failure would only drop text
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// Output format of a plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics.
    Svg,
    /// Portable network graphics (rasterised).
    Png,
}

impl Format {
    /// The format named by a file's extension (`.svg` or `.png`).
    pub fn from_path(path: &Path) -> Result<Format> {
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(Error::input(format!(
                "{}: plot files must end in .svg or .png",
                path.display()
            ))),
        }
    }

    /// File extension.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }
}

pub(super) type DrawResult = std::result::Result<(), String>;

pub(super) trait OrMsg<T> {
    fn m(self) -> std::result::Result<T, String>;
}

impl<T, E: std::fmt::Display> OrMsg<T> for std::result::Result<T, E> {
    fn m(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// A figure that can be drawn on any plotters backend.
pub trait Plot {
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draw on `root` (covers the whole figure).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// Render a plot to bytes in the given format.
pub fn render<P: Plot>(plot: &P, format: Format) -> std::result::Result<Vec<u8>, String> {
    register_fonts();
    let (w, h) = plot.size();
    match format {
        Format::Svg => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
                plot.draw(&root)?;
                root.present().m()?;
            }
            Ok(s.into_bytes())
        }
        Format::Png => {
            let mut buf = vec![255u8; w as usize * h as usize * 3];
            {
                // text through our glyph layout (see plot_text: plotters' drops bearings)
                let root =
                    super::plot_text::GlyphBackend(BitMapBackend::with_buffer(&mut buf, (w, h)))
                        .into_drawing_area();
                plot.draw(&root)?;
                root.present().m()?;
            }
            let mut out = Vec::new();
            {
                let mut enc = png::Encoder::new(&mut out, w, h);
                enc.set_color(png::ColorType::Rgb);
                enc.set_depth(png::BitDepth::Eight);
                let mut wr = enc.write_header().m()?;
                wr.write_image_data(&buf).m()?;
            }
            Ok(out)
        }
    }
}

/// Render a plot and write it atomically to `path` (format from the extension).
pub fn write<P: Plot>(plot: &P, path: &Path) -> Result<()> {
    let format = Format::from_path(path)?;
    let bytes = render(plot, format).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("drawing the plot failed: {e}")),
    })?;
    crate::util::write_atomic(path, &bytes)
}

/// Plots of unbinned channels (data, model curves, pulls).
#[path = "unbinned_plot.rs"]
pub mod unbinned;

// ---------------------------------------------------------------- helpers

pub(super) const BLUE: RGBColor = RGBColor(31, 119, 180);
pub(super) const ORANGE: RGBColor = RGBColor(255, 127, 14);
pub(super) const GREY: RGBColor = RGBColor(150, 150, 150);
pub(super) const LIGHT: RGBColor = RGBColor(225, 225, 225);
pub(super) const BAND1: RGBColor = RGBColor(140, 210, 140);
pub(super) const BAND2: RGBColor = RGBColor(250, 235, 130);

/// Colours of stacked samples: matplotlib's tab10 without grey, then their light
/// variants and a few more, so that up to 20 samples get distinct colours.
pub(super) const PALETTE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
    RGBColor(99, 99, 160),
    RGBColor(0, 90, 60),
];

pub(super) fn font(size: f64) -> FontDesc<'static> {
    (FAMILY, size).into_font()
}

/// Width in pixels of `text` in the plot font.
pub(super) fn text_width(text: &str, size: f64) -> u32 {
    register_fonts();
    font(size)
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

pub(super) fn max_text_width<'a>(texts: impl IntoIterator<Item = &'a str>, size: f64) -> u32 {
    texts
        .into_iter()
        .map(|t| text_width(t, size))
        .max()
        .unwrap_or(0)
}

pub(super) fn anchored(size: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from(font(size)).pos(Pos::new(h, v))
}

/// A symmetric axis limit that contains `m` with some room.
pub(super) fn nice_limit(m: f64) -> f64 {
    if !(m > 0.0) || !m.is_finite() {
        return 1.0;
    }
    let m = m * 1.15;
    let e = 10f64.powf(m.log10().floor());
    for f in [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if f * e >= m {
            return f * e;
        }
    }
    10.0 * e
}

/// A tick label for `v` on an axis spanning about `span`: values within
/// rounding noise of 0 (the -2.8e-17 a symmetric axis computes) print as 0.
pub(super) fn tick_on(v: f64, span: f64) -> String {
    if v.abs() <= span.abs() * 1e-9 {
        "0".into()
    } else {
        tick(v)
    }
}

/// A short number for tick labels.
pub(super) fn tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    let s = if !(1e-3..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 10.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    s.replace('-', "\u{2212}")
}

/// Diagonal hatching (lines rising to the right, 6 px apart) over the pixel
/// rectangle spanned by `a` and `b`, clipped to `clip` (x range, y range), on an
/// area whose origin is the backend's.
pub(super) fn hatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    a: (i32, i32),
    b: (i32, i32),
    clip: &(std::ops::Range<i32>, std::ops::Range<i32>),
) -> DrawResult {
    let x0 = a.0.min(b.0).max(clip.0.start);
    let x1 = a.0.max(b.0).min(clip.0.end);
    let y0 = a.1.min(b.1).max(clip.1.start);
    let y1 = a.1.max(b.1).min(clip.1.end);
    if x0 >= x1 || y0 >= y1 {
        return Ok(());
    }
    let style = RGBColor(60, 60, 60).stroke_width(1);
    // lines x + y = c, from the top-left corner to the bottom-right one
    let mut c = x0 + y0 + 3;
    while c < x1 + y1 {
        let xa = x0.max(c - y1);
        let xb = x1.min(c - y0);
        if xa < xb {
            area.draw(&PathElement::new(vec![(xa, c - xa), (xb, c - xb)], style))
                .m()?;
        }
        c += 6;
    }
    area.draw(&Rectangle::new(
        [(x0, y0), (x1, y1)],
        RGBColor(60, 60, 60).stroke_width(1),
    ))
    .m()
}

/// Draws a legend swatch centred vertically at a point.
pub(super) type Swatch<'a, DB> = &'a dyn Fn(&DrawingArea<DB, Shift>, (i32, i32)) -> DrawResult;

/// A legend row: a sample of the style drawn by `swatch` and its text.
pub(super) fn legend_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    text: &str,
    swatch: Swatch<DB>,
) -> DrawResult {
    swatch(area, (x, y))?;
    area.draw(&Text::new(
        text.to_string(),
        (x + 30, y),
        anchored(13.0, HPos::Left, VPos::Center),
    ))
    .m()
}

/// The chart type of the pulls and ranking panels.
type Chart2d<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One row of a pulls panel: the pull with its error bar (if any) at height
/// `y`, and the parameter's name right-aligned left of `x_left`.
pub(super) fn pull_row<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &mut Chart2d<'_, DB>,
    y: f64,
    pull: Option<(f64, f64)>,
    x_left: f64,
    name: &str,
) -> DrawResult {
    if let Some((p, e)) = pull {
        chart
            .draw_series(std::iter::once(ErrorBar::new_horizontal(
                y,
                p - e,
                p,
                p + e,
                BLACK.stroke_width(2),
                8,
            )))
            .m()?;
        chart
            .draw_series(std::iter::once(Circle::new((p, y), 4, BLACK.filled())))
            .m()?;
    }
    let (px, py) = chart.backend_coord(&(x_left, y));
    root.draw(&Text::new(
        name.to_string(),
        (px - 8, py),
        anchored(13.0, HPos::Right, VPos::Center),
    ))
    .m()
}

/// Half-width of a pulls axis: `floor`, or the largest `|pull| + error`
/// rounded up (with a margin) when that is larger.
pub(super) fn pull_limit(pulls: impl Iterator<Item = (f64, f64)>, floor: f64) -> f64 {
    let m = pulls.map(|(p, e)| p.abs() + e).fold(floor, f64::max);
    if m > floor { (m + 0.3).ceil() } else { floor }
}

// ---------------------------------------------------------------- pulls

/// Pulls of the constrained, non-fixed parameters: `(theta_hat - theta_0) / sigma_prefit`
/// with error bars `sigma_postfit / sigma_prefit`, over the +-1 and +-2 bands.
#[derive(Debug, Clone)]
pub struct PullsPlot {
    /// Parameter names, top to bottom.
    pub names: Vec<String>,
    /// Pulls.
    pub pulls: Vec<f64>,
    /// Post-fit / pre-fit widths.
    pub errors: Vec<f64>,
    /// Title.
    pub title: String,
}

impl PullsPlot {
    /// The parameters of `pulls` that have a pull (constrained and free), in model order.
    pub fn new(par_names: &[String], pulls: &[Pull], title: &str) -> Self {
        let keep: Vec<&Pull> = pulls.iter().filter(|p| p.pull.is_some()).collect();
        PullsPlot {
            names: keep.iter().map(|p| par_names[p.par].clone()).collect(),
            pulls: keep.iter().map(|p| p.pull.unwrap_or(0.0)).collect(),
            errors: keep.iter().map(|p| p.pull_error.unwrap_or(0.0)).collect(),
            title: title.to_string(),
        }
    }

    fn label_width(&self) -> u32 {
        max_text_width(self.names.iter().map(|s| s.as_str()), 13.0) + 16
    }

    fn row_height(&self) -> u32 {
        20
    }
}

impl Plot for PullsPlot {
    fn size(&self) -> (u32, u32) {
        let n = self.names.len().max(1) as u32;
        (
            (self.label_width() + 620).max(700),
            120 + 70 + n * self.row_height(),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).m()?;
        let n = self.names.len();
        let (w, _) = self.size();
        let (head, body) = root.split_vertically(90);
        head.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, 12),
            anchored(20.0, HPos::Center, VPos::Top),
        ))
        .m()?;
        // legend
        let lx = self.label_width() as i32 + 20;
        legend_row(
            &head,
            (lx, 55),
            "fit result (error bar: post-fit / pre-fit uncertainty)",
            &|a, (x, y)| {
                a.draw(&PathElement::new(
                    vec![(x, y), (x + 22, y)],
                    BLACK.stroke_width(2),
                ))
                .m()?;
                a.draw(&Circle::new((x + 11, y), 4, BLACK.filled())).m()
            },
        )?;
        legend_row(&head, (lx + 420, 45), "\u{00b1}1", &|a, (x, y)| {
            a.draw(&Rectangle::new(
                [(x, y - 6), (x + 22, y + 6)],
                BAND1.filled(),
            ))
            .m()
        })?;
        legend_row(&head, (lx + 420, 68), "\u{00b1}2", &|a, (x, y)| {
            a.draw(&Rectangle::new(
                [(x, y - 6), (x + 22, y + 6)],
                BAND2.filled(),
            ))
            .m()
        })?;
        let xmax = pull_limit(
            self.pulls.iter().copied().zip(self.errors.iter().copied()),
            3.0,
        );
        let ny = n.max(1) as f64;
        let mut chart = ChartBuilder::on(&body)
            .margin_right(30)
            .margin_bottom(10)
            .x_label_area_size(55)
            .y_label_area_size(self.label_width())
            .build_cartesian_2d(-xmax..xmax, -0.5..ny - 0.5)
            .m()?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(2 * xmax as usize + 1)
            .x_label_formatter(&|v| tick_on(*v, xmax))
            .x_desc("pull = (fitted value \u{2212} nominal) / pre-fit uncertainty")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .light_line_style(WHITE)
            .draw()
            .m()?;
        chart
            .draw_series([
                Rectangle::new([(-2.0, -0.5), (2.0, ny - 0.5)], BAND2.filled()),
                Rectangle::new([(-1.0, -0.5), (1.0, ny - 0.5)], BAND1.filled()),
            ])
            .m()?;
        chart
            .draw_series((0..n).map(|i| {
                let y = (n - 1 - i) as f64;
                PathElement::new(vec![(-xmax, y), (xmax, y)], LIGHT.stroke_width(1))
            }))
            .m()?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, -0.5), (0.0, ny - 0.5)],
                GREY.stroke_width(1),
            )))
            .m()?;
        for i in 0..n {
            let y = (n - 1 - i) as f64;
            let pull = Some((self.pulls[i], self.errors[i]));
            pull_row(root, &mut chart, y, pull, -xmax, &self.names[i])?;
        }
        Ok(())
    }
}

pub use super::plot_corr::CorrelationPlot;
pub use super::plot_ranking::RankingPlot;
pub use super::plot_yields::StackPlot;
