//! Pictures for people: image grids of NCHW batches and a small PNG encoder (8-bit grey or
//! RGB, zlib through `flate2`), so examples can write what a person should look at (augmented
//! samples, filters) without an image crate.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use flate2::Crc;
use flate2::write::ZlibEncoder;
use std::io::Write;
use std::path::Path;

/// An 8-bit image, row-major, `channels` bytes per pixel (1: grey, 3: RGB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// `height · width · channels` bytes.
    pub pixels: Vec<u8>,
}

impl Image {
    /// A `width`×`height` image filled with `value` in every channel.
    pub fn filled(width: usize, height: usize, channels: usize, value: u8) -> Result<Image> {
        if !matches!(channels, 1 | 3) || width == 0 || height == 0 {
            return Err(Error::invalid(
                "Image::filled",
                format!(
                    "need 1 or 3 channels and a non-empty size, got {width}×{height}×{channels}"
                ),
            ));
        }
        Ok(Image {
            width,
            height,
            channels,
            pixels: vec![value; width * height * channels],
        })
    }

    /// Lays a batch of NCHW images (1 or 3 channels, values in [0, 1], clamped) out as a grid
    /// of `cols` columns with `pad` pixels of mid-grey between and around them; image `i` is
    /// at row `i / cols`, column `i % cols`.
    pub fn grid(batch: &Tensor, cols: usize, pad: usize) -> Result<Image> {
        const OP: &str = "Image::grid";
        let &[n, c, h, w] = batch.dims() else {
            return Err(Error::invalid(
                OP,
                format!("expected NCHW images, got {}", batch.shape()),
            ));
        };
        if !matches!(c, 1 | 3) || n == 0 || cols == 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "need 1 or 3 channels, at least one image and one column, got {} and {cols} columns",
                    batch.shape()
                ),
            ));
        }
        let values = batch.to_dtype(crate::DType::F32)?.to_vec::<f32>()?;
        let rows = n.div_ceil(cols);
        let mut img = Image::filled(cols * (w + pad) + pad, rows * (h + pad) + pad, c, 128)?;
        for i in 0..n {
            let (top, left) = (pad + (i / cols) * (h + pad), pad + (i % cols) * (w + pad));
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        let v = values[((i * c + ch) * h + y) * w + x];
                        let byte = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                        img.pixels[((top + y) * img.width + left + x) * c + ch] = byte;
                    }
                }
            }
        }
        Ok(img)
    }

    /// This image enlarged `factor` times (each pixel a `factor`×`factor` block).
    pub fn upscaled(&self, factor: usize) -> Image {
        let f = factor.max(1);
        let (w, c) = (self.width * f, self.channels);
        let mut pixels = Vec::with_capacity(self.pixels.len() * f * f);
        for y in 0..self.height * f {
            for x in 0..w {
                let o = ((y / f) * self.width + x / f) * c;
                pixels.extend_from_slice(&self.pixels[o..o + c]);
            }
        }
        Image {
            width: w,
            height: self.height * f,
            channels: c,
            pixels,
        }
    }

    /// The PNG file's bytes (8-bit, no interlace, filter 0 on every row).
    pub fn png_bytes(&self) -> Result<Vec<u8>> {
        let expected = self.width * self.height * self.channels;
        if self.pixels.len() != expected || !matches!(self.channels, 1 | 3) {
            return Err(Error::invalid(
                "Image::png_bytes",
                format!(
                    "{}×{}×{} image holds {} bytes, not {expected}",
                    self.width,
                    self.height,
                    self.channels,
                    self.pixels.len()
                ),
            ));
        }
        let dim = |v: usize| {
            u32::try_from(v).map_err(|_| Error::invalid("Image::png_bytes", "image too large"))
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&dim(self.width)?.to_be_bytes());
        ihdr.extend_from_slice(&dim(self.height)?.to_be_bytes());
        // Bit depth 8; colour type 0 (grey) or 2 (RGB); deflate; filter set 0; no interlace.
        let colour = if self.channels == 1 { 0 } else { 2 };
        ihdr.extend_from_slice(&[8, colour, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        let stride = self.width * self.channels;
        let mut raw = Vec::with_capacity((stride + 1) * self.height);
        for row in self.pixels.chunks(stride) {
            raw.push(0); // filter type None
            raw.extend_from_slice(row);
        }
        let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        let io = |e| Error::invalid("Image::png_bytes", format!("deflate: {e}"));
        z.write_all(&raw).map_err(io)?;
        chunk(&mut png, b"IDAT", &z.finish().map_err(io)?);
        chunk(&mut png, b"IEND", &[]);
        Ok(png)
    }

    /// Writes the image as a PNG file.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.png_bytes()?).map_err(|e| Error::io(path, e))
    }
}

/// Appends one PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
}
