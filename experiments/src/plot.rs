//! The figures of an experiment report, written as SVG files that a person
//! can read without the JSON: ROC curves, lines over rounds and heat maps,
//! each with a title, labelled axes, a legend and, on the heat map, the
//! value printed in every cell.
//!
//! Drawing goes through `plotters` with only its SVG backend and line
//! series. Without its `ttf`/`ab_glyph` features plotters needs no font
//! file and no system font: text sizes are estimated for layout and the
//! text itself is written as SVG `<text>` elements (XML-escaped), which
//! the viewer renders with its own sans-serif font. Nothing is loaded or
//! downloaded at run time.
//!
//! The output format follows the path's extension; only `.svg` is written,
//! anything else is [`PlotError::UnsupportedFormat`].
//!
//! Degenerate input never panics:
//! - no series, or series without a finite point: the axes are drawn with
//!   "no data" in the plot area;
//! - points with a NaN or infinite coordinate are left out (in [`lines`]
//!   the line is broken there);
//! - ROC points are clamped to the unit square, and so are the y values of
//!   [`lines`] with `unit_y`;
//! - heat map cells that are `None`, NaN or infinite are drawn hatched with
//!   "–"; a heat map without rows or columns shows "no data"; a `values`
//!   table whose shape does not match the labels is
//!   [`PlotError::InvalidInput`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One named series of (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
        }
    }
}

/// Why a figure could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: unsupported plot format (only .svg is written)")]
    UnsupportedFormat { path: PathBuf },
    #[error("{path}: invalid plot input: {reason}")]
    InvalidInput { path: PathBuf, reason: String },
    #[error("{path}: drawing failed: {reason}")]
    Render { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PlotError {
    fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        PlotError::InvalidInput {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    fn render(path: &Path, reason: impl std::fmt::Display) -> Self {
        PlotError::Render {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

const FONT: &str = "sans-serif";
/// Font sizes as plotters takes them (it writes `size / 1.24` px).
const TITLE_SIZE: f64 = 24.0;
const AXIS_DESC_SIZE: f64 = 18.0;
const LABEL_SIZE: f64 = 16.0;
const LEGEND_SIZE: f64 = 16.0;
const MAX_TEXT_PX: f64 = 20_000.0;
/// Most rows or columns a heat map draws.
const MAX_CELLS_PER_SIDE: usize = 1_000;
/// Rough width of one character at a plotters font size, for layout.
const CHAR_WIDTH_PER_SIZE: f64 = 0.46;

/// Tableau 10: distinct hues, readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const GRID: RGBColor = RGBColor(225, 225, 225);
const DIAGONAL: RGBColor = RGBColor(120, 120, 120);
const MISSING_FILL: RGBColor = RGBColor(242, 242, 242);
const MISSING_HATCH: RGBColor = RGBColor(190, 190, 190);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Estimated width in px, capped so that layout sums cannot overflow.
fn text_width(text: &str, size: f64) -> i32 {
    (text.chars().count() as f64 * size * CHAR_WIDTH_PER_SIZE)
        .ceil()
        .min(MAX_TEXT_PX) as i32
}

/// Checks the extension, draws into a string and writes the file.
fn render_svg(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), PlotError>,
) -> Result<(), PlotError> {
    let is_svg = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !is_svg {
        return Err(PlotError::UnsupportedFormat {
            path: path.to_path_buf(),
        });
    }
    let buf = svg_string(path, size, draw)?;
    std::fs::write(path, buf).map_err(|source| PlotError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The drawing as SVG text; `path` only names the figure in errors.
fn svg_string(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), PlotError>,
) -> Result<String, PlotError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| PlotError::render(path, e))?;
        draw(&root)?;
        root.present().map_err(|e| PlotError::render(path, e))?;
    }
    Ok(buf)
}

/// A "nice" step (1, 2 or 5 times a power of ten) for about `target`
/// intervals over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let residual = raw / magnitude;
    let nice = if residual <= 1.0 {
        1.0
    } else if residual <= 2.0 {
        2.0
    } else if residual <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Multiples of `step` within `[lo, hi]` (at most a few dozen).
fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let mut out = Vec::new();
    if !step.is_finite() || step <= 0.0 || !lo.is_finite() || !hi.is_finite() {
        return out;
    }
    let mut k = (lo / step).ceil();
    while out.len() < 64 {
        let v = k * step;
        if v > hi + step * 1e-9 {
            break;
        }
        // -0.0 would print as "-0".
        out.push(if v == 0.0 { 0.0 } else { v });
        k += 1.0;
    }
    out
}

/// Decimals needed to tell ticks `step` apart.
fn decimals_for(step: f64) -> usize {
    if step.is_nan() || step <= 0.0 || step >= 1.0 {
        0
    } else {
        (-step.log10() - 1e-9).ceil().clamp(0.0, 10.0) as usize
    }
}

/// A linear axis whose ticks are chosen here: plotters' own choice may
/// put ticks between rounds.
#[derive(Clone, Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for Axis {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        let px = limit.0 as f64 + (value - self.lo) / span * (limit.1 - limit.0) as f64;
        if px.is_finite() {
            px.round().clamp(-1e6, 1e6) as i32
        } else {
            (limit.0 + limit.1) / 2
        }
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }
}

fn no_data_note(area: &DrawingArea<SVGBackend, Shift>, path: &Path) -> Result<(), PlotError> {
    let (w, h) = area.dim_in_pixel();
    let (cx, cy) = (w as i32 / 2, h as i32 / 2);
    let size = LABEL_SIZE * 1.2;
    let half = text_width("no data", size) / 2 + 8;
    // A white patch, so the note stays readable over the ROC diagonal.
    area.draw(&Rectangle::new(
        [(cx - half, cy - 14), (cx + half, cy + 14)],
        WHITE.filled(),
    ))
    .map_err(|e| PlotError::render(path, e))?;
    let style = TextStyle::from((FONT, size).into_font())
        .color(&DIAGONAL)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new("no data", (cx, cy), style))
        .map_err(|e| PlotError::render(path, e))
}

/// ROC curves: x = false-positive rate, y = true-positive rate, both
/// [0, 1], with the chance diagonal drawn dashed. Legend entries carry the
/// label as given (the caller puts the AUC in it). Points are drawn in the
/// order given; non-finite points are left out and the rest are clamped to
/// the unit square. With no series (or no finite point) the axes and the
/// diagonal are drawn with "no data".
pub fn roc_curves(path: &Path, title: &str, series: &[Series]) -> Result<(), PlotError> {
    let curves: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| (x.clamp(0.0, 1.0), y.clamp(0.0, 1.0)))
                .collect()
        })
        .collect();
    let empty = curves.iter().all(|c| c.is_empty());
    let legend_w = series
        .iter()
        .map(|s| text_width(&s.label, LEGEND_SIZE))
        .chain(std::iter::once(text_width("chance", LEGEND_SIZE)))
        .max()
        .unwrap_or(0);
    // Square plot area, at least 520 px; wider if the legend needs it.
    let plot = 520.max(legend_w + 60);
    let size = ((plot + 110) as u32, (plot + 120) as u32);

    render_svg(path, size, |root| {
        let unit: Vec<f64> = (0..=5).map(|i| i as f64 * 0.2).collect();
        let light: Vec<f64> = (0..=10).map(|i| i as f64 * 0.1).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, TITLE_SIZE))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(
                Axis {
                    lo: 0.0,
                    hi: 1.0,
                    bold: unit.clone(),
                    light: light.clone(),
                },
                Axis {
                    lo: 0.0,
                    hi: 1.0,
                    bold: unit,
                    light,
                },
            )
            .map_err(|e| PlotError::render(path, e))?;
        chart
            .configure_mesh()
            .x_desc("false-positive rate")
            .y_desc("true-positive rate")
            .axis_desc_style((FONT, AXIS_DESC_SIZE))
            .label_style((FONT, LABEL_SIZE))
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .light_line_style(GRID.mix(0.6))
            .bold_line_style(GRID)
            .draw()
            .map_err(|e| PlotError::render(path, e))?;

        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                5,
                DIAGONAL.stroke_width(2),
            ))
            .map_err(|e| PlotError::render(path, e))?
            .label("chance")
            .legend(|(x, y)| {
                let style = DIAGONAL.stroke_width(3);
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (7, 0)], style)
                    + PathElement::new(vec![(12, 0), (20, 0)], style)
            });

        for (i, (s, pts)) in series.iter().zip(&curves).enumerate() {
            let c = colour(i);
            let anno = if pts.len() == 1 {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            } else {
                chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(3)))
            }
            .map_err(|e| PlotError::render(path, e))?;
            anno.label(s.label.as_str()).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (20, 0)], c.stroke_width(3))
            });
        }

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, LEGEND_SIZE))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.5))
            .margin(10)
            .legend_area_size(28)
            .draw()
            .map_err(|e| PlotError::render(path, e))?;

        if empty {
            no_data_note(&chart.plotting_area().strip_coord_spec(), path)?;
        }
        Ok(())
    })
}

/// Lines over rounds, e.g. ROC-AUC per round for each variant: x = round
/// (ticks on integers), y auto-ranged from the finite values with a 10 %
/// margin, or fixed to [0, 1] if `unit_y` (values outside are clamped to
/// the axis). Each point is marked; a point with a NaN or infinite
/// coordinate is left out and breaks the line there. Points are joined in
/// the order given. The legend sits to the right of the plot.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    unit_y: bool,
    series: &[Series],
) -> Result<(), PlotError> {
    draw_lines(path, Some(path), title, x_label, y_label, unit_y, series).map(|_| ())
}

/// [`lines`] as SVG text instead of a file, for pages that inline the
/// figure (the console); errors name the figure `name`.
pub fn lines_svg(
    name: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    unit_y: bool,
    series: &[Series],
) -> Result<String, PlotError> {
    draw_lines(
        Path::new(name),
        None,
        title,
        x_label,
        y_label,
        unit_y,
        series,
    )
}

/// Draws [`lines`]: into `file` when given, else returned as SVG text.
fn draw_lines(
    path: &Path,
    file: Option<&Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    unit_y: bool,
    series: &[Series],
) -> Result<String, PlotError> {
    // Each series as runs of finite points.
    let runs: Vec<Vec<Vec<(f64, f64)>>> = series
        .iter()
        .map(|s| {
            let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for &(x, y) in &s.points {
                if x.is_finite() && y.is_finite() {
                    let y = if unit_y { y.clamp(0.0, 1.0) } else { y };
                    if let Some(run) = out.last_mut() {
                        run.push((x, y));
                    }
                } else if out.last().is_some_and(|r| !r.is_empty()) {
                    out.push(Vec::new());
                }
            }
            out.retain(|r| !r.is_empty());
            out
        })
        .collect();
    let all = || runs.iter().flatten().flatten();
    let empty = all().next().is_none();

    let (x_min, x_max) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(x, _)| {
        (lo.min(x), hi.max(x))
    });
    let (x_min, x_max) = if empty {
        (0.0, 1.0)
    } else if x_max - x_min > 0.0 {
        (x_min, x_max)
    } else {
        (x_min - 1.0, x_max + 1.0)
    };
    let x_span = x_max - x_min;
    if !x_span.is_finite() {
        return Err(PlotError::invalid(path, "x values too large to plot"));
    }
    // Rounds are integers: never a tick step below 1 unless the data
    // itself spans less than one.
    let mut x_step = nice_step(x_span, 10.0);
    if x_span >= 1.0 {
        x_step = x_step.max(1.0);
    }
    let x_ticks = ticks(x_min, x_max, x_step);
    let x_decimals = decimals_for(x_step);
    let x_pad = x_span * 0.03;
    let (x_lo, x_hi) = (x_min - x_pad, x_max + x_pad);

    let (y_lo, y_hi) = if unit_y || empty {
        (0.0, 1.0)
    } else {
        let (lo, hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
            (lo.min(y), hi.max(y))
        });
        let span = hi - lo;
        let pad = if span > 0.0 {
            span * 0.1
        } else {
            (lo.abs() * 0.1).max(0.05)
        };
        (lo - pad, hi + pad)
    };
    let y_span = y_hi - y_lo;
    if !(y_span.is_finite() && y_span > 0.0) {
        return Err(PlotError::invalid(path, "y values too large to plot"));
    }
    let y_step = nice_step(y_span, 8.0);
    let y_ticks = ticks(y_lo, y_hi, y_step);
    let y_decimals = decimals_for(y_step);

    let legend_w = series
        .iter()
        .map(|s| text_width(&s.label, LEGEND_SIZE))
        .max()
        .unwrap_or(0);
    let legend_box = if series.is_empty() { 0 } else { legend_w + 70 };
    // Tall enough for the legend (24 px a line) beside the plot.
    let legend_h = series.len().min(10_000) as u32 * 24 + 12;
    let size = ((720 + legend_box) as u32, 480u32.max(legend_h + 100));

    let draw = |root: &DrawingArea<SVGBackend, Shift>| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, TITLE_SIZE))
            .margin(20)
            .margin_right(20 + legend_box)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(
                Axis {
                    lo: x_lo,
                    hi: x_hi,
                    bold: x_ticks,
                    light: Vec::new(),
                },
                Axis {
                    lo: y_lo,
                    hi: y_hi,
                    bold: y_ticks,
                    light: Vec::new(),
                },
            )
            .map_err(|e| PlotError::render(path, e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style((FONT, AXIS_DESC_SIZE))
            .label_style((FONT, LABEL_SIZE))
            .x_label_formatter(&|v| format!("{v:.x_decimals$}"))
            .y_label_formatter(&|v| format!("{v:.y_decimals$}"))
            .bold_line_style(GRID)
            .draw()
            .map_err(|e| PlotError::render(path, e))?;

        for (i, s_runs) in runs.iter().enumerate() {
            let c = colour(i);
            for run in s_runs.iter().filter(|r| r.len() > 1) {
                chart
                    .draw_series(LineSeries::new(run.iter().copied(), c.stroke_width(3)))
                    .map_err(|e| PlotError::render(path, e))?;
            }
            chart
                .draw_series(
                    s_runs
                        .iter()
                        .flatten()
                        .map(|&p| Circle::new(p, 4, c.filled())),
                )
                .map_err(|e| PlotError::render(path, e))?;
        }

        // Legend to the right of the plot area (plotters' own legend is
        // clipped to the plot area).
        let (base_x, base_y) = chart.plotting_area().get_base_pixel();
        let (plot_w, _) = chart.plotting_area().dim_in_pixel();
        let entries: Vec<(&str, RGBColor)> = series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.label.as_str(), colour(i)))
            .collect();
        side_legend(
            root,
            (base_x + plot_w as i32 + 15, base_y),
            legend_w,
            &entries,
            path,
        )?;
        if empty {
            no_data_note(&chart.plotting_area().strip_coord_spec(), path)?;
        }
        Ok(())
    };
    match file {
        Some(file) => render_svg(file, size, draw).map(|()| String::new()),
        None => svg_string(path, size, draw),
    }
}

/// A legend box with a coloured line and a label per entry, its top-left
/// corner at `at`, wide enough for labels of `label_w` px.
fn side_legend(
    root: &DrawingArea<SVGBackend, Shift>,
    at: (i32, i32),
    label_w: i32,
    entries: &[(&str, RGBColor)],
    path: &Path,
) -> Result<(), PlotError> {
    if entries.is_empty() {
        return Ok(());
    }
    let err = |e| PlotError::render(path, e);
    let (x, y) = at;
    let line_h = 24;
    let w = label_w + 58;
    let h = entries.len() as i32 * line_h + 12;
    root.draw(&Rectangle::new(
        [(x, y), (x + w, y + h)],
        BLACK.mix(0.5).stroke_width(1),
    ))
    .map_err(err)?;
    let style =
        TextStyle::from((FONT, LEGEND_SIZE).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, (label, c)) in entries.iter().enumerate() {
        let cy = y + 6 + k as i32 * line_h + line_h / 2;
        root.draw(&PathElement::new(
            vec![(x + 10, cy), (x + 34, cy)],
            c.stroke_width(3),
        ))
        .map_err(err)?;
        root.draw(&Circle::new((x + 22, cy), 4, c.filled()))
            .map_err(err)?;
        root.draw(&Text::new(*label, (x + 44, cy), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// Sequential colour for `v` in [0, 1] (clamped), light to dark blue.
fn heat_colour(v: f64) -> RGBColor {
    const STOPS: [(f64, (f64, f64, f64)); 3] = [
        (0.0, (247.0, 251.0, 255.0)),
        (0.5, (107.0, 174.0, 214.0)),
        (1.0, (8.0, 48.0, 107.0)),
    ];
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (a, b) = if v <= STOPS[1].0 {
        (STOPS[0], STOPS[1])
    } else {
        (STOPS[1], STOPS[2])
    };
    let t = (v - a.0) / (b.0 - a.0);
    let mix = |p: f64, q: f64| (p + (q - p) * t).round().clamp(0.0, 255.0) as u8;
    RGBColor(mix(a.1.0, b.1.0), mix(a.1.1, b.1.1), mix(a.1.2, b.1.2))
}

/// A cell with no value: light grey with diagonal hatching.
fn hatched_cell(
    area: &DrawingArea<SVGBackend, Shift>,
    (x0, y0): (i32, i32),
    (w, h): (i32, i32),
    path: &Path,
) -> Result<(), PlotError> {
    area.draw(&Rectangle::new(
        [(x0, y0), (x0 + w, y0 + h)],
        MISSING_FILL.filled(),
    ))
    .map_err(|e| PlotError::render(path, e))?;
    let step = 9;
    let mut d = step;
    while d < w + h {
        let from = (x0 + d.min(w), y0 + (d - w).max(0));
        let to = (x0 + (d - h).max(0), y0 + d.min(h));
        area.draw(&PathElement::new(
            vec![from, to],
            MISSING_HATCH.stroke_width(1),
        ))
        .map_err(|e| PlotError::render(path, e))?;
        d += step;
    }
    Ok(())
}

/// Heat map: one row per row label (e.g. participants, "federated",
/// "centralized"), one column per column label (e.g. attack families),
/// cells in [0, 1] shown with 2 decimals on a light-to-dark colour scale
/// with a legend bar. `None`, NaN or infinite cells are drawn hatched with
/// "–"; values outside [0, 1] are printed as they are and coloured as the
/// nearest end of the scale. `values` must have one row per row label and
/// one value per column label in every row, else
/// [`PlotError::InvalidInput`]. No rows or no columns draws "no data".
pub fn heatmap(
    path: &Path,
    title: &str,
    row_labels: &[String],
    col_labels: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<(), PlotError> {
    if values.len() != row_labels.len() {
        return Err(PlotError::invalid(
            path,
            format!(
                "{} rows of values for {} row labels",
                values.len(),
                row_labels.len()
            ),
        ));
    }
    if let Some((i, row)) = values
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != col_labels.len())
    {
        return Err(PlotError::invalid(
            path,
            format!(
                "row {i} ({:?}) has {} values for {} column labels",
                row_labels.get(i).map(String::as_str).unwrap_or_default(),
                row.len(),
                col_labels.len()
            ),
        ));
    }

    if row_labels.len() > MAX_CELLS_PER_SIDE || col_labels.len() > MAX_CELLS_PER_SIDE {
        return Err(PlotError::invalid(
            path,
            format!(
                "{} rows by {} columns is more than a heat map can show (at most {MAX_CELLS_PER_SIDE} each)",
                row_labels.len(),
                col_labels.len()
            ),
        ));
    }
    let margin = 20;
    let title_h = 50;
    let cell_h = 40;
    let label_gap = 10;
    let row_label_w = row_labels
        .iter()
        .map(|l| text_width(l, LABEL_SIZE))
        .max()
        .unwrap_or(0)
        .max(40);
    let widest_col = col_labels
        .iter()
        .map(|l| text_width(l, LABEL_SIZE))
        .max()
        .unwrap_or(0);
    // Column labels lie flat when they fit a cell of at most 150 px, and
    // stand upright under narrower cells otherwise.
    let upright = widest_col + 12 > 150;
    let cell_w = if upright {
        72
    } else {
        (widest_col + 12).max(72)
    };
    let col_label_h = if upright { widest_col + label_gap } else { 30 };
    let rows = row_labels.len() as i32;
    let cols = col_labels.len() as i32;
    let has_data = rows > 0 && cols > 0;
    let grid_w = cols * cell_w;
    let grid_h = rows * cell_h;
    let bar_gap = 30;
    let bar_w = 20;
    let bar_h = grid_h.max(160);
    let bar_label_w = text_width("1.00", LABEL_SIZE) + 12;
    let any_missing = values
        .iter()
        .flatten()
        .any(|v| !v.is_some_and(f64::is_finite));
    let missing_note_h = if any_missing { cell_h } else { 0 };

    let grid_x = margin + row_label_w + label_gap;
    let grid_y = title_h + col_label_h;
    let bar_x = grid_x + grid_w + bar_gap;
    let content_w =
        (bar_x + bar_w + bar_label_w + margin).max(text_width(title, TITLE_SIZE) + 2 * margin);
    let content_h = grid_y + bar_h.max(grid_h + missing_note_h) + margin;
    let size = if has_data {
        (content_w.max(300) as u32, content_h as u32)
    } else {
        (
            (text_width(title, TITLE_SIZE) + 2 * margin).max(400) as u32,
            200,
        )
    };

    render_svg(path, size, |root| {
        let err = |e| PlotError::render(path, e);
        let title_style = TextStyle::from((FONT, TITLE_SIZE).into_font())
            .pos(Pos::new(HPos::Center, VPos::Center));
        root.draw(&Text::new(
            title,
            (size.0 as i32 / 2, title_h / 2 + 5),
            title_style,
        ))
        .map_err(err)?;
        if !has_data {
            return no_data_note(root, path);
        }

        let label_style = TextStyle::from((FONT, LABEL_SIZE).into_font());
        // Column labels.
        for (j, label) in col_labels.iter().enumerate() {
            let cx = grid_x + j as i32 * cell_w + cell_w / 2;
            let style = if upright {
                label_style
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Left, VPos::Center))
            } else {
                label_style.pos(Pos::new(HPos::Center, VPos::Bottom))
            };
            root.draw(&Text::new(label.as_str(), (cx, grid_y - label_gap), style))
                .map_err(err)?;
        }
        // Rows: label then cells.
        let row_style = label_style.pos(Pos::new(HPos::Right, VPos::Center));
        for (i, (label, row)) in row_labels.iter().zip(values).enumerate() {
            let y = grid_y + i as i32 * cell_h;
            root.draw(&Text::new(
                label.as_str(),
                (grid_x - label_gap, y + cell_h / 2),
                row_style.clone(),
            ))
            .map_err(err)?;
            for (j, cell) in row.iter().enumerate() {
                let x = grid_x + j as i32 * cell_w;
                let centre = (x + cell_w / 2, y + cell_h / 2);
                let cell_text = match cell.filter(|v| v.is_finite()) {
                    Some(v) => {
                        root.draw(&Rectangle::new(
                            [(x, y), (x + cell_w, y + cell_h)],
                            heat_colour(v).filled(),
                        ))
                        .map_err(err)?;
                        let ink = if v > 0.55 { WHITE } else { BLACK };
                        (format!("{v:.2}"), ink)
                    }
                    None => {
                        hatched_cell(root, (x, y), (cell_w, cell_h), path)?;
                        ("–".to_string(), BLACK)
                    }
                };
                let style = TextStyle::from((FONT, LABEL_SIZE).into_font())
                    .color(&cell_text.1)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(cell_text.0, centre, style))
                    .map_err(err)?;
            }
        }
        // Thin white cell borders, then a frame round the grid.
        for j in 1..cols {
            let x = grid_x + j * cell_w;
            root.draw(&PathElement::new(
                vec![(x, grid_y), (x, grid_y + grid_h)],
                WHITE.stroke_width(1),
            ))
            .map_err(err)?;
        }
        for i in 1..rows {
            let y = grid_y + i * cell_h;
            root.draw(&PathElement::new(
                vec![(grid_x, y), (grid_x + grid_w, y)],
                WHITE.stroke_width(1),
            ))
            .map_err(err)?;
        }
        root.draw(&Rectangle::new(
            [(grid_x, grid_y), (grid_x + grid_w, grid_y + grid_h)],
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(err)?;

        // Legend bar, 1.00 at the top.
        let strips = 50;
        for k in 0..strips {
            let y0 = grid_y + bar_h * k / strips;
            let y1 = grid_y + bar_h * (k + 1) / strips;
            let v = 1.0 - (k as f64 + 0.5) / strips as f64;
            root.draw(&Rectangle::new(
                [(bar_x, y0), (bar_x + bar_w, y1)],
                heat_colour(v).filled(),
            ))
            .map_err(err)?;
        }
        root.draw(&Rectangle::new(
            [(bar_x, grid_y), (bar_x + bar_w, grid_y + bar_h)],
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(err)?;
        let tick_style = label_style.pos(Pos::new(HPos::Left, VPos::Center));
        for k in 0..=4 {
            let v = k as f64 / 4.0;
            let y = grid_y + ((1.0 - v) * bar_h as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(bar_x + bar_w, y), (bar_x + bar_w + 5, y)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                format!("{v:.2}"),
                (bar_x + bar_w + 8, y),
                tick_style.clone(),
            ))
            .map_err(err)?;
        }
        // Key for missing cells, under the grid.
        if any_missing {
            let y = grid_y + grid_h + 12;
            hatched_cell(root, (grid_x, y), (24, 18), path)?;
            root.draw(&Text::new(
                "– no value",
                (grid_x + 32, y + 9),
                label_style.pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(err)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    fn assert_svg(svg: &str) {
        let start = svg.trim_start();
        assert!(
            start.starts_with("<svg") || start.starts_with("<?xml"),
            "{}",
            &svg[..svg.len().min(200)]
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        // Every `<` opens a tag: no raw `<` in text.
        for piece in svg.split('<').skip(1) {
            let c = piece.chars().next().unwrap();
            assert!(c.is_ascii_alphabetic() || c == '/' || c == '?', "{piece}");
        }
        // Every `&` starts an entity.
        for piece in svg.split('&').skip(1) {
            assert!(
                ["lt;", "gt;", "amp;", "quot;", "apos;"]
                    .iter()
                    .any(|e| piece.starts_with(e)),
                "{piece}"
            );
        }
    }

    fn roc(label: &str, bend: f64) -> Series {
        let pts = (0..=20)
            .map(|i| {
                let x = i as f64 / 20.0;
                (x, x.powf(bend))
            })
            .collect();
        Series::new(label, pts)
    }

    #[test]
    fn roc_curves_writes_title_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roc.svg");
        let series = [
            roc("federated (AUC 0.91)", 0.2),
            roc("local-only (AUC 0.74)", 0.5),
        ];
        roc_curves(&path, "ROC on the held-out test set", &series).unwrap();
        let svg = read(&path);
        assert_svg(&svg);
        assert!(svg.contains("ROC on the held-out test set"));
        assert!(svg.contains("federated (AUC 0.91)"));
        assert!(svg.contains("local-only (AUC 0.74)"));
        assert!(svg.contains("false-positive rate"));
        assert!(svg.contains("true-positive rate"));
        assert!(svg.contains("chance"));
    }

    #[test]
    fn roc_curves_degenerate_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roc.svg");
        roc_curves(&path, "nothing", &[]).unwrap();
        let svg = read(&path);
        assert_svg(&svg);
        assert!(svg.contains("no data"));

        let series = [
            Series::new("empty", vec![]),
            Series::new("nan", vec![(f64::NAN, 0.5), (0.2, f64::NAN)]),
            Series::new("one point", vec![(0.1, 0.8)]),
            Series::new("out of range", vec![(-1.0, 2.0), (f64::INFINITY, 1.0)]),
        ];
        roc_curves(&path, "odd", &series).unwrap();
        let svg = read(&path);
        assert_svg(&svg);
        for s in &series {
            assert!(svg.contains(&s.label));
        }
        assert!(!svg.contains("no data"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn lines_writes_title_axes_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auc.svg");
        let series = [
            Series::new(
                "federated",
                (1..=10)
                    .map(|r| (r as f64, 0.7 + 0.02 * r as f64))
                    .collect(),
            ),
            Series::new("centralized", (1..=10).map(|r| (r as f64, 0.93)).collect()),
        ];
        lines(
            &path,
            "ROC-AUC per round",
            "round",
            "ROC-AUC",
            false,
            &series,
        )
        .unwrap();
        let svg = read(&path);
        assert_svg(&svg);
        for s in [
            "ROC-AUC per round",
            "round",
            "ROC-AUC",
            "federated",
            "centralized",
        ] {
            assert!(svg.contains(s), "{s}");
        }
        // Integer round ticks only.
        assert!(svg.contains(">\n10\n<") || svg.contains(">10<"), "{svg}");
        assert!(!svg.contains("1.5"));
    }

    #[test]
    fn lines_degenerate_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.svg");
        for unit_y in [false, true] {
            lines(&path, "none", "round", "y", unit_y, &[]).unwrap();
            let svg = read(&path);
            assert_svg(&svg);
            assert!(svg.contains("no data"));

            let series = [
                Series::new("empty", vec![]),
                Series::new("all nan", vec![(f64::NAN, f64::NAN)]),
            ];
            lines(&path, "empty", "round", "y", unit_y, &series).unwrap();
            let svg = read(&path);
            assert_svg(&svg);
            assert!(svg.contains("no data"));
            assert!(svg.contains("all nan"));

            let series = [
                Series::new("single", vec![(3.0, 0.5)]),
                Series::new("flat", vec![(3.0, 0.5), (3.0, 0.5)]),
                Series::new("gap", vec![(1.0, 0.2), (2.0, f64::NAN), (3.0, 1.7)]),
            ];
            lines(&path, "odd", "round", "y", unit_y, &series).unwrap();
            let svg = read(&path);
            assert_svg(&svg);
            assert!(!svg.contains("no data"));
            assert!(!svg.contains("NaN"));
        }
        // A single constant value still gets a y range.
        let one = [Series::new("one", vec![(1.0, 0.0)])];
        lines(&path, "one", "round", "y", false, &one).unwrap();
        assert_svg(&read(&path));
        // Values too far apart to subtract.
        let huge = [Series::new("huge", vec![(1.0, f64::MAX), (2.0, -f64::MAX)])];
        assert!(matches!(
            lines(&path, "huge", "round", "y", false, &huge),
            Err(PlotError::InvalidInput { .. })
        ));
    }

    #[test]
    fn heatmap_writes_cells_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heat.svg");
        let rows: Vec<String> = ["soc-a", "soc-b", "federated", "centralized"]
            .map(String::from)
            .to_vec();
        let cols: Vec<String> = ["port scan", "brute force", "exfiltration"]
            .map(String::from)
            .to_vec();
        let values = vec![
            vec![Some(0.87), Some(0.1), None],
            vec![Some(0.5), Some(f64::NAN), Some(0.999)],
            vec![Some(0.93), Some(0.91), Some(0.88)],
            vec![Some(0.95), Some(1.2), Some(-0.1)],
        ];
        heatmap(&path, "ROC-AUC by attack family", &rows, &cols, &values).unwrap();
        let svg = read(&path);
        assert_svg(&svg);
        assert!(svg.contains("ROC-AUC by attack family"));
        for l in rows.iter().chain(&cols) {
            assert!(svg.contains(l.as_str()), "{l}");
        }
        for v in ["0.87", "0.10", "1.00", "1.20", "-0.10", "–"] {
            assert!(svg.contains(v), "{v}");
        }
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn heatmap_shape_errors_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heat.svg");
        let rows = vec!["a".to_string(), "b".to_string()];
        let cols = vec!["x".to_string(), "y".to_string()];
        let ragged = vec![vec![Some(0.1), Some(0.2)], vec![Some(0.3)]];
        let err = heatmap(&path, "t", &rows, &cols, &ragged).unwrap_err();
        assert!(matches!(err, PlotError::InvalidInput { .. }));
        assert!(err.to_string().contains("heat.svg"), "{err}");
        let short = vec![vec![Some(0.1), Some(0.2)]];
        assert!(matches!(
            heatmap(&path, "t", &rows, &cols, &short),
            Err(PlotError::InvalidInput { .. })
        ));
        assert!(!path.exists());
        let many: Vec<String> = (0..=MAX_CELLS_PER_SIDE).map(|i| i.to_string()).collect();
        let wide = vec![vec![None; many.len()]];
        assert!(matches!(
            heatmap(&path, "t", &rows[..1], &many, &wide),
            Err(PlotError::InvalidInput { .. })
        ));

        heatmap(&path, "empty", &[], &[], &[]).unwrap();
        let svg = read(&path);
        assert_svg(&svg);
        assert!(svg.contains("no data"));
        // Rows without columns.
        heatmap(&path, "no columns", &rows, &[], &[vec![], vec![]]).unwrap();
        assert!(read(&path).contains("no data"));
        // All cells missing.
        let none = vec![vec![None, None], vec![None, None]];
        heatmap(&path, "none", &rows, &cols, &none).unwrap();
        assert!(read(&path).contains("–"));
    }

    #[test]
    fn text_is_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("esc.svg");
        let nasty = "a <b> & \"c\" 'd'";
        roc_curves(&path, nasty, &[roc(nasty, 0.3)]).unwrap();
        let svg = read(&path);
        assert_svg(&svg);
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;"));

        lines(&path, nasty, nasty, nasty, true, &[roc(nasty, 0.3)]).unwrap();
        assert_svg(&read(&path));

        let labels = vec![nasty.to_string()];
        heatmap(&path, nasty, &labels, &labels, &[vec![Some(0.5)]]).unwrap();
        assert_svg(&read(&path));
    }

    #[test]
    fn long_column_labels_stand_upright() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heat.svg");
        let rows = vec!["r".to_string()];
        let cols = vec![
            "a very long attack family name indeed".to_string(),
            "b".to_string(),
        ];
        heatmap(&path, "t", &rows, &cols, &[vec![Some(0.2), Some(0.8)]]).unwrap();
        let svg = read(&path);
        assert_svg(&svg);
        assert!(svg.contains("rotate(270"));
    }

    #[test]
    fn unsupported_extension_and_unwritable_path() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("roc.pdf");
        assert!(matches!(
            roc_curves(&png, "t", &[]),
            Err(PlotError::UnsupportedFormat { .. })
        ));
        let missing = dir.path().join("no/such/dir/roc.svg");
        let err = roc_curves(&missing, "t", &[]).unwrap_err();
        assert!(matches!(err, PlotError::Io { .. }));
        assert!(err.to_string().contains("roc.svg"));
    }

    #[test]
    fn heat_colour_runs_light_to_dark() {
        let lum = |c: RGBColor| c.0 as u32 + c.1 as u32 + c.2 as u32;
        assert!(lum(heat_colour(0.0)) > lum(heat_colour(0.5)));
        assert!(lum(heat_colour(0.5)) > lum(heat_colour(1.0)));
        assert_eq!(heat_colour(f64::NAN), heat_colour(0.0));
        assert_eq!(heat_colour(7.0), heat_colour(1.0));
    }

    #[test]
    fn ticks_are_bounded() {
        assert_eq!(ticks(1.0, 10.0, 1.0).len(), 10);
        assert!(ticks(0.0, 1e300, 1.0).len() <= 64);
        assert!(ticks(f64::NAN, 1.0, 1.0).is_empty());
        assert_eq!(decimals_for(0.05), 2);
        assert_eq!(decimals_for(0.1), 1);
        assert_eq!(decimals_for(2.0), 0);
        assert_eq!(nice_step(9.0, 10.0), 1.0);
        assert_eq!(nice_step(0.0, 10.0), 1.0);
    }
}
