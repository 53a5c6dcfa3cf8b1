//! Line charts as PNG files: learning curves and the like, drawn by wgnn itself (antialiased
//! lines, "nice" axis ticks, a legend) with text from the DejaVu Sans font vendored in
//! `assets/fonts/` (Bitstream Vera license), so it needs no system fonts and works on
//! headless machines.

use crate::error::{Error, Result};
use crate::image::Image;
use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use std::path::Path;

/// The vendored font's bytes.
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Colours for series, in order (Tableau 10's first six).
pub const PALETTE: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

/// One named line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points, drawn in order; non-finite points are skipped (and break the line).
    pub points: Vec<(f64, f64)>,
    /// Also mark each point with a dot (for short series such as per-epoch figures).
    pub markers: bool,
    /// Draw bars from 0 up to each point instead of a line (a histogram: points at the bin
    /// centres, bars as wide as the spacing of the points).
    pub bars: bool,
    /// Join the points with a line (off for a scatter plot: dots only).
    pub lines: bool,
}

impl Series {
    /// A series drawn as a line with a dot at each point.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            markers: true,
            bars: false,
            lines: true,
        }
    }

    /// A scatter of `points`: a dot at each, no line.
    pub fn scatter(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            lines: false,
            ..Series::new(name, points)
        }
    }
}

/// A line chart: title, axis labels and series, in the palette's colours.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineChart {
    /// Above the plot.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// The lines, coloured from [`PALETTE`] in order.
    pub series: Vec<Series>,
    /// Fixed y range (default: the data's, padded by 5 %).
    pub y_range: Option<(f64, f64)>,
}

/// An RGB canvas with blending, lines and text (the charts', and `rl`'s CartPole frames).
pub(crate) struct Canvas<'f> {
    img: Image,
    font: FontRef<'f>,
}

impl Canvas<'static> {
    /// A white `width`×`height` canvas with the vendored font (`op` names the caller in
    /// errors).
    pub(crate) fn blank(op: &'static str, width: usize, height: usize) -> Result<Self> {
        let font = FontRef::try_from_slice(FONT)
            .map_err(|e| Error::invalid(op, format!("the vendored font: {e}")))?;
        Ok(Canvas {
            img: Image::filled(width, height, 3, 255)?,
            font,
        })
    }
}

impl Canvas<'_> {
    /// The picture drawn so far.
    pub(crate) fn into_image(self) -> Image {
        self.img
    }

    fn blend(&mut self, x: i64, y: i64, c: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.img.width as i64 || y >= self.img.height as i64 {
            return;
        }
        let i = (y as usize * self.img.width + x as usize) * 3;
        let a = alpha.clamp(0.0, 1.0);
        for (k, &ck) in c.iter().enumerate() {
            let old = self.img.pixels[i + k] as f32;
            self.img.pixels[i + k] = (old + (ck as f32 - old) * a).round() as u8;
        }
    }

    pub(crate) fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0..y1 {
            for x in x0..x1 {
                self.blend(x, y, c, 1.0);
            }
        }
    }

    /// An antialiased line `width` pixels wide: each pixel near the segment is covered by
    /// its distance to it.
    pub(crate) fn line(
        &mut self,
        (x0, y0): (f64, f64),
        (x1, y1): (f64, f64),
        width: f64,
        c: [u8; 3],
    ) {
        let r = width / 2.0;
        let (lo_x, hi_x) = (x0.min(x1) - r - 1.0, x0.max(x1) + r + 1.0);
        let (lo_y, hi_y) = (y0.min(y1) - r - 1.0, y0.max(y1) + r + 1.0);
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        for y in lo_y.floor() as i64..=hi_y.ceil() as i64 {
            for x in lo_x.floor() as i64..=hi_x.ceil() as i64 {
                let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let t = if len2 > 0.0 {
                    (((px - x0) * dx + (py - y0) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (qx, qy) = (x0 + t * dx, y0 + t * dy);
                let d = ((px - qx).powi(2) + (py - qy).powi(2)).sqrt();
                let cover = (r + 0.5 - d).clamp(0.0, 1.0);
                if cover > 0.0 {
                    self.blend(x, y, c, cover as f32);
                }
            }
        }
    }

    pub(crate) fn dot(&mut self, (x, y): (f64, f64), radius: f64, c: [u8; 3]) {
        self.line((x, y), (x, y), 2.0 * radius, c);
    }

    /// Width of `text` at `size` pixels.
    fn text_width(&self, text: &str, size: f32) -> f64 {
        text_width(&self.font, text, size)
    }

    /// Draws `text` with its left end at `x` and its baseline at `y`, or rotated a quarter
    /// turn counter-clockwise (reading upwards) when `vertical`.
    pub(crate) fn text(
        &mut self,
        text: &str,
        x: f64,
        y: f64,
        size: f32,
        c: [u8; 3],
        vertical: bool,
    ) {
        let scale = PxScale::from(size);
        let mut pen = 0.0f32;
        let font = self.font.clone();
        let sf = font.as_scaled(scale);
        for ch in text.chars() {
            let id = sf.glyph_id(ch);
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(pen, 0.0));
            pen += sf.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue; // a space
            };
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cover| {
                let (u, v) = (b.min.x as f64 + gx as f64, b.min.y as f64 + gy as f64);
                let (px, py) = if vertical {
                    (x + v, y - u)
                } else {
                    (x + u, y + v)
                };
                self.blend(px.round() as i64, py.round() as i64, c, cover);
            });
        }
    }
}

/// Width of `text` in `font` at `size` pixels.
fn text_width(font: &FontRef, text: &str, size: f32) -> f64 {
    let f = font.as_scaled(PxScale::from(size));
    text.chars()
        .map(|ch| f.h_advance(f.glyph_id(ch)) as f64)
        .sum()
}

/// About five "nice" tick values (1, 2 or 5 × 10ⁿ apart) covering `lo..hi`.
fn ticks(lo: f64, hi: f64) -> (Vec<f64>, f64) {
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| raw <= *s)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let v = (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        .collect();
    (v, step)
}

/// A tick label with as many decimals as the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

impl LineChart {
    /// Draws the chart on a `width`×`height` RGB image.
    pub fn render(&self, width: usize, height: usize) -> Result<Image> {
        const OP: &str = "LineChart::render";
        if width < 200 || height < 150 {
            return Err(Error::invalid(
                OP,
                format!("{width}×{height} is too small (at least 200×150)"),
            ));
        }
        let pts = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
        };
        if pts().next().is_none() {
            return Err(Error::invalid(
                OP,
                format!("\"{}\": no finite point to draw", self.title),
            ));
        }
        let span = |v: Vec<f64>| -> (f64, f64) {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if hi > lo {
                (lo, hi)
            } else {
                (lo - 1.0, hi + 1.0)
            }
        };
        let (x_lo, x_hi) = {
            let (lo, hi) = span(pts().map(|p| p.0).collect());
            let pad = 0.03 * (hi - lo);
            (lo - pad, hi + pad)
        };
        let (y_lo, y_hi) = match self.y_range {
            Some(r) => r,
            None => {
                let (lo, hi) = span(pts().map(|p| p.1).collect());
                let pad = 0.05 * (hi - lo);
                (lo - pad, hi + pad)
            }
        };
        let font = FontRef::try_from_slice(FONT)
            .map_err(|e| Error::invalid(OP, format!("the vendored font: {e}")))?;
        let mut cv = Canvas {
            img: Image::filled(width, height, 3, 255)?,
            font,
        };
        let (left, right, top, bottom) = (78.0, width as f64 - 20.0, 42.0, height as f64 - 52.0);
        let sx = |x: f64| left + (x - x_lo) / (x_hi - x_lo) * (right - left);
        let sy = |y: f64| bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top);
        let (ink, grid, grey) = ([30, 30, 30], [225, 225, 225], [90, 90, 90]);
        // Grid and tick labels.
        let (yt, ystep) = ticks(y_lo, y_hi);
        for v in yt {
            let y = sy(v);
            cv.line((left, y), (right, y), 1.0, grid);
            let label = tick_label(v, ystep);
            let w = cv.text_width(&label, 13.0);
            cv.text(&label, left - 8.0 - w, y + 4.5, 13.0, grey, false);
        }
        let (xt, xstep) = ticks(x_lo, x_hi);
        for v in xt {
            let x = sx(v);
            cv.line((x, top), (x, bottom), 1.0, grid);
            let label = tick_label(v, xstep);
            let w = cv.text_width(&label, 13.0);
            cv.text(&label, x - w / 2.0, bottom + 18.0, 13.0, grey, false);
        }
        // Axes, title and labels.
        cv.line((left, bottom), (right, bottom), 1.5, ink);
        cv.line((left, top), (left, bottom), 1.5, ink);
        let w = cv.text_width(&self.title, 17.0);
        cv.text(
            &self.title,
            (width as f64 - w) / 2.0,
            26.0,
            17.0,
            ink,
            false,
        );
        let w = cv.text_width(&self.x_label, 14.0);
        cv.text(
            &self.x_label,
            (left + right - w) / 2.0,
            height as f64 - 12.0,
            14.0,
            ink,
            false,
        );
        let w = cv.text_width(&self.y_label, 14.0);
        cv.text(
            &self.y_label,
            18.0,
            (top + bottom + w) / 2.0,
            14.0,
            ink,
            true,
        );
        // The series, clipped to the plot area by skipping points outside the y range.
        for (i, s) in self.series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            if s.bars {
                let width = s
                    .points
                    .windows(2)
                    .map(|w| (w[1].0 - w[0].0).abs())
                    .fold(f64::INFINITY, f64::min);
                let half = if width.is_finite() { 0.45 * width } else { 0.5 };
                for &(x, y) in s
                    .points
                    .iter()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                {
                    let (x0, x1) = (sx(x - half), sx(x + half));
                    let (y0, y1) = (sy(y.clamp(y_lo, y_hi)), sy(0f64.clamp(y_lo, y_hi)));
                    cv.rect(
                        x0.round() as i64,
                        y0.min(y1).round() as i64,
                        x1.round() as i64,
                        y0.max(y1).round() as i64,
                        c,
                    );
                }
                continue;
            }
            let inside =
                |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && y >= y_lo && y <= y_hi;
            let mut prev: Option<(f64, f64)> = None;
            for p in &s.points {
                if !inside(p) {
                    prev = None;
                    continue;
                }
                let q = (sx(p.0), sy(p.1));
                if let Some(a) = prev.filter(|_| s.lines) {
                    cv.line(a, q, 2.0, c);
                }
                if s.markers {
                    cv.dot(q, 3.0, c);
                }
                prev = Some(q);
            }
        }
        // Legend, top right inside the plot.
        let named: Vec<(usize, &Series)> = self
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.name.is_empty())
            .collect();
        if !named.is_empty() {
            let text_w = named
                .iter()
                .map(|(_, s)| cv.text_width(&s.name, 13.0))
                .fold(0.0, f64::max);
            let (bw, bh) = (text_w + 46.0, 8.0 + 19.0 * named.len() as f64);
            // The corner that hides the fewest data points (top right on a tie).
            let covered = |(bx, by): (f64, f64)| {
                pts()
                    .filter(|p| {
                        let (x, y) = (sx(p.0), sy(p.1));
                        x >= bx - 4.0 && x <= bx + bw + 4.0 && y >= by - 4.0 && y <= by + bh + 4.0
                    })
                    .count()
            };
            let (xr, xl) = (right - bw - 8.0, left + 8.0);
            let (yt, yb) = (top + 8.0, bottom - bh - 8.0);
            let (bx, by) = [(xr, yt), (xr, yb), (xl, yt), (xl, yb)]
                .into_iter()
                .min_by_key(|&corner| covered(corner))
                .unwrap_or((xr, yt));
            cv.rect(
                bx as i64,
                by as i64,
                (bx + bw) as i64,
                (by + bh) as i64,
                [255, 255, 255],
            );
            for (x0, y0, x1, y1) in [
                (bx, by, bx + bw, by),
                (bx, by + bh, bx + bw, by + bh),
                (bx, by, bx, by + bh),
                (bx + bw, by, bx + bw, by + bh),
            ] {
                cv.line((x0, y0), (x1, y1), 1.0, [180, 180, 180]);
            }
            for (row, (i, s)) in named.iter().enumerate() {
                let y = by + 14.0 + 19.0 * row as f64;
                let c = PALETTE[i % PALETTE.len()];
                match s.lines || s.bars {
                    true => cv.line((bx + 8.0, y), (bx + 32.0, y), 2.5, c),
                    false => cv.dot((bx + 20.0, y), 3.5, c),
                }
                cv.text(&s.name, bx + 38.0, y + 4.5, 13.0, ink, false);
            }
        }
        Ok(cv.img)
    }

    /// Renders the chart at 720×440 and writes it as a PNG file.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        self.render(720, 440)?.save_png(path)
    }
}

/// The epoch-by-epoch learning curves of a run: `loss.png` (the running mean training loss at
/// every logged step, the epoch means and the validation loss) and `accuracy.png` (training,
/// validation and test accuracy per epoch), written into `dir` (created if missing). Returns
/// the files written.
pub fn learning_curves(
    metrics: &crate::train::Metrics,
    title: &str,
    dir: impl AsRef<Path>,
) -> Result<Vec<std::path::PathBuf>> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ep = &metrics.epochs;
    let per_epoch = |f: &dyn Fn(&crate::train::EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        ep.iter()
            .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
            .collect()
    };
    // Logged steps as fractions of their epoch (the last logged step of an epoch is its end).
    let steps_in = |epoch: usize| {
        metrics
            .loss_log
            .iter()
            .filter(|p| p.epoch == epoch)
            .map(|p| p.step)
            .max()
            .unwrap_or(1)
            .max(1)
    };
    let steps: Vec<(f64, f64)> = metrics
        .loss_log
        .iter()
        .map(|p| {
            let x = (p.epoch - 1) as f64 + p.step as f64 / steps_in(p.epoch) as f64;
            (x, p.mean_loss)
        })
        .collect();
    let mut loss = LineChart {
        title: format!("{title}: loss"),
        x_label: "epoch".into(),
        y_label: "cross-entropy loss".into(),
        ..LineChart::default()
    };
    if !steps.is_empty() {
        loss.series.push(Series {
            name: "train (running mean within the epoch)".into(),
            points: steps,
            markers: false,
            bars: false,
            lines: true,
        });
    }
    loss.series.push(Series::new(
        "train (epoch mean)",
        per_epoch(&|e| Some(e.train_loss)),
    ));
    let val_loss = per_epoch(&|e| e.val_loss);
    if !val_loss.is_empty() {
        loss.series.push(Series::new("validation", val_loss));
    }
    let mut acc = LineChart {
        title: format!("{title}: accuracy"),
        x_label: "epoch".into(),
        y_label: "accuracy".into(),
        ..LineChart::default()
    };
    acc.series
        .push(Series::new("train", per_epoch(&|e| Some(e.train_accuracy))));
    let val_acc = per_epoch(&|e| e.val_accuracy);
    if !val_acc.is_empty() {
        acc.series.push(Series::new("validation", val_acc));
    }
    acc.series
        .push(Series::new("test", per_epoch(&|e| Some(e.test_accuracy))));
    let mut written = Vec::new();
    for (chart, name) in [(loss, "loss.png"), (acc, "accuracy.png")] {
        let path = dir.join(name);
        chart.save_png(&path)?;
        written.push(path);
    }
    Ok(written)
}

/// A grid of NCHW images in [0, 1] (1 or 3 channels), each enlarged `scale`× and captioned
/// underneath (e.g. "7 → 1" for a misclassified digit), `cols` to a row.
pub fn captioned_grid(
    batch: &crate::Tensor,
    captions: &[String],
    cols: usize,
    scale: usize,
) -> Result<Image> {
    const OP: &str = "captioned_grid";
    let &[n, c, h, w] = batch.dims() else {
        return Err(Error::invalid(
            OP,
            format!("expected NCHW images, got {}", batch.shape()),
        ));
    };
    if captions.len() != n || cols == 0 || scale == 0 || !matches!(c, 1 | 3) {
        return Err(Error::invalid(
            OP,
            format!(
                "{n} images of {c} channels need as many captions (got {}), cols and scale ≥ 1",
                captions.len()
            ),
        ));
    }
    let values = batch.to_dtype(crate::DType::F32)?.to_vec::<f32>()?;
    let (tw, th, cap) = (w * scale, h * scale, 18);
    let font = FontRef::try_from_slice(FONT)
        .map_err(|e| Error::invalid(OP, format!("the vendored font: {e}")))?;
    let widest = captions
        .iter()
        .map(|s| text_width(&font, s, 12.0))
        .fold(0.0, f64::max);
    let cell_w = tw.max(widest.ceil() as usize + 4) + 8;
    let rows = n.div_ceil(cols);
    let mut cv = Canvas {
        img: Image::filled(cols * cell_w + 8, rows * (th + cap + 8) + 8, 3, 255)?,
        font,
    };
    for i in 0..n {
        let left = 8 + (i % cols) * cell_w + (cell_w - 8 - tw) / 2;
        let top = 8 + (i / cols) * (th + cap + 8);
        for y in 0..th {
            for x in 0..tw {
                let px: Vec<u8> = (0..3)
                    .map(|k| {
                        let ch = if c == 1 { 0 } else { k };
                        let v = values[((i * c + ch) * h + y / scale) * w + x / scale];
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    })
                    .collect();
                let o = ((top + y) * cv.img.width + left + x) * 3;
                cv.img.pixels[o..o + 3].copy_from_slice(&px);
            }
        }
        let tw_text = cv.text_width(&captions[i], 12.0);
        let cx = 8.0 + ((i % cols) * cell_w) as f64 + ((cell_w - 8) as f64 - tw_text) / 2.0;
        cv.text(
            &captions[i],
            cx,
            (top + th + 14) as f64,
            12.0,
            [30, 30, 30],
            false,
        );
    }
    Ok(cv.img)
}

/// Lays equally sized images (charts) out `cols` to a row on white, for a figure of small
/// multiples such as the book's 4×4 batch-norm panels.
pub fn tile(images: &[Image], cols: usize) -> Result<Image> {
    let Some(first) = images.first() else {
        return Err(Error::invalid("plot::tile", "no images to lay out"));
    };
    let (w, h, c) = (first.width, first.height, first.channels);
    if cols == 0
        || images
            .iter()
            .any(|i| (i.width, i.height, i.channels) != (w, h, c))
    {
        return Err(Error::invalid(
            "plot::tile",
            format!("need at least one column and images all {w}×{h}×{c}"),
        ));
    }
    let rows = images.len().div_ceil(cols);
    let mut out = Image::filled(cols * w, rows * h, c, 255)?;
    for (k, img) in images.iter().enumerate() {
        let (top, left) = ((k / cols) * h, (k % cols) * w);
        for y in 0..h {
            let dst = ((top + y) * out.width + left) * c;
            out.pixels[dst..dst + w * c].copy_from_slice(&img.pixels[y * w * c..(y + 1) * w * c]);
        }
    }
    Ok(out)
}
