//! TensorBoard event files, as PyTorch's `SummaryWriter` writes them: `tensorboard --logdir DIR`
//! shows the scalars (and PNG images) of a run while it trains.
//!
//! The format: a file `events.out.tfevents.<seconds>.<host>` of TFRecords (length as u64 LE, its
//! masked CRC-32C, the bytes, their masked CRC-32C), each an `Event` protocol buffer: the first
//! carries `file_version = "brain.Event:2"`, the others a `Summary` with one value (a scalar or
//! an encoded image) under a tag, a step and a wall time. The protobuf is encoded here by hand
//! (a handful of fields), and [`read_events`] decodes what this writer produces, checking every
//! CRC, for tests and tools.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bitwise with a 256-entry table.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        std::array::from_fn(|i| {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
            c
        })
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

/// TFRecord's masked CRC: rotated right by 15 bits plus a constant.
fn masked_crc(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    varint(out, ((field << 3) | 2) as u64);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A varint field (wire type 0).
fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, (field << 3) as u64);
    varint(out, v);
}

/// An `Event` with wall time, step and either a file version or a one-value summary.
fn event(wall_time: f64, step: i64, what: &[u8], what_field: u32) -> Vec<u8> {
    let mut e = Vec::new();
    varint(&mut e, (1 << 3) | 1); // wall_time: double, wire type 1
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint_field(&mut e, 2, step as u64);
    bytes_field(&mut e, what_field, what);
    e
}

/// What a summary value holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number (`simple_value`).
    Scalar(f32),
    /// A PNG image (`image`: height, width, colour channels, encoded bytes).
    Png {
        /// Rows.
        height: u32,
        /// Columns.
        width: u32,
        /// 1 grey, 3 RGB.
        channels: u32,
        /// The PNG file's bytes.
        png: Vec<u8>,
    },
}

/// One event read back by [`read_events`] (the file-version event is left out).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Seconds since the epoch.
    pub wall_time: f64,
    /// Global step.
    pub step: i64,
    /// The summary's tag.
    pub tag: String,
    /// Its value.
    pub value: Value,
}

/// Appends events to one TensorBoard event file.
pub struct SummaryWriter {
    file: std::fs::File,
    path: PathBuf,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl SummaryWriter {
    /// Creates `dir` if needed and a new event file in it
    /// (`events.out.tfevents.<seconds>.<host>.<pid>.<n>.wgnn`).
    pub fn new(dir: impl AsRef<Path>) -> Result<SummaryWriter> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or_else(|| "localhost".into());
        let t = now();
        // The pid and a per-process count keep writers started in the same second apart.
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(
            "events.out.tfevents.{}.{host}.{}.{n}.wgnn",
            t as u64,
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut w = SummaryWriter { file, path };
        w.record(&event(t, 0, b"brain.Event:2", 3))?;
        Ok(w)
    }

    /// The event file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut rec = Vec::with_capacity(data.len() + 16);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&masked_crc(&len).to_le_bytes());
        rec.extend_from_slice(data);
        rec.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file
            .write_all(&rec)
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }

    fn summary(&mut self, tag: &str, step: i64, value: &[u8], value_field: u32) -> Result<()> {
        let mut v = Vec::new();
        bytes_field(&mut v, 1, tag.as_bytes());
        if value_field == 2 {
            v.extend_from_slice(value); // simple_value: already tag + fixed32
        } else {
            bytes_field(&mut v, value_field, value);
        }
        let mut summary = Vec::new();
        bytes_field(&mut summary, 1, &v);
        self.record(&event(now(), step, &summary, 5))
    }

    /// Adds a scalar under `tag` at `step` (`add_scalar`).
    pub fn add_scalar(&mut self, tag: &str, value: f32, step: i64) -> Result<()> {
        let mut v = Vec::new();
        varint(&mut v, (2 << 3) | 5); // simple_value: float, wire type 5
        v.extend_from_slice(&value.to_le_bytes());
        self.summary(tag, step, &v, 2)
    }

    /// Adds an image under `tag` at `step` (`add_image`), stored as PNG.
    pub fn add_image(&mut self, tag: &str, image: &crate::image::Image, step: i64) -> Result<()> {
        self.add_png(tag, &image.png_bytes()?, step)
    }

    /// Adds a PNG file's bytes as an image under `tag` at `step` (its size and colour type
    /// read from its header; 8-bit grey, grey+alpha, RGB or RGBA).
    pub fn add_png(&mut self, tag: &str, png: &[u8], step: i64) -> Result<()> {
        if png.len() < 26 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
            return Err(Error::invalid(
                "SummaryWriter::add_png",
                format!("\"{tag}\": not a PNG file"),
            ));
        }
        let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
        let channels = match png[25] {
            0 => 1,
            4 => 2,
            2 => 3,
            6 => 4,
            t => {
                return Err(Error::invalid(
                    "SummaryWriter::add_png",
                    format!("\"{tag}\": PNG colour type {t} (palette) is not supported"),
                ));
            }
        };
        let mut img = Vec::new();
        varint_field(&mut img, 1, be(20) as u64);
        varint_field(&mut img, 2, be(16) as u64);
        varint_field(&mut img, 3, channels);
        bytes_field(&mut img, 4, png);
        self.summary(tag, step, &img, 4)
    }
}

/// A protobuf reader over one message's bytes.
struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.data.get(self.pos)?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// The next field: number and payload (varints as their value's little-endian bytes).
    fn next_field(&mut self) -> Option<(u32, &'a [u8], u64)> {
        if self.pos >= self.data.len() {
            return None;
        }
        let key = self.varint()?;
        let (field, wire) = ((key >> 3) as u32, key & 7);
        let take = |s: &mut Self, n: usize| -> Option<&'a [u8]> {
            let b = s.data.get(s.pos..s.pos + n)?;
            s.pos += n;
            Some(b)
        };
        match wire {
            0 => {
                let v = self.varint()?;
                Some((field, &[], v))
            }
            1 => Some((field, take(self, 8)?, 0)),
            2 => {
                let n = self.varint()? as usize;
                Some((field, take(self, n)?, 0))
            }
            5 => Some((field, take(self, 4)?, 0)),
            _ => None,
        }
    }
}

/// Reads an event file back: every record's two CRCs are checked, and each summary event is
/// decoded into tag, step, wall time and value.
pub fn read_events(path: impl AsRef<Path>) -> Result<Vec<Event>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: String| Error::data(path, msg);
    let mut events = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let head = bytes
            .get(pos..pos + 12)
            .ok_or_else(|| bad(format!("truncated record header at byte {pos}")))?;
        let len_bytes = &head[..8];
        let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if crc != masked_crc(len_bytes) {
            return Err(bad(format!("length CRC mismatch at byte {pos}")));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8])) as usize;
        let data = bytes
            .get(pos + 12..pos + 12 + len)
            .ok_or_else(|| bad(format!("truncated record at byte {pos}")))?;
        let tail = bytes
            .get(pos + 12 + len..pos + 16 + len)
            .ok_or_else(|| bad(format!("truncated record CRC at byte {pos}")))?;
        if u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) != masked_crc(data) {
            return Err(bad(format!("data CRC mismatch at byte {pos}")));
        }
        pos += 16 + len;
        let (mut wall_time, mut step, mut summary) = (0.0, 0i64, None);
        let mut f = Fields { data, pos: 0 };
        while let Some((field, payload, v)) = f.next_field() {
            match field {
                1 => wall_time = f64::from_le_bytes(payload.try_into().unwrap_or([0; 8])),
                2 => step = v as i64,
                5 => summary = Some(payload),
                _ => {}
            }
        }
        let Some(summary) = summary else { continue };
        let mut s = Fields {
            data: summary,
            pos: 0,
        };
        while let Some((1, value, _)) = s.next_field() {
            let (mut tag, mut val) = (String::new(), None);
            let mut v = Fields {
                data: value,
                pos: 0,
            };
            while let Some((field, payload, _)) = v.next_field() {
                match field {
                    1 => tag = String::from_utf8_lossy(payload).into_owned(),
                    2 => {
                        val = Some(Value::Scalar(f32::from_le_bytes(
                            payload.try_into().unwrap_or([0; 4]),
                        )))
                    }
                    4 => {
                        let (mut height, mut width, mut channels, mut png) = (0, 0, 0, Vec::new());
                        let mut im = Fields {
                            data: payload,
                            pos: 0,
                        };
                        while let Some((field, p, n)) = im.next_field() {
                            match field {
                                1 => height = n as u32,
                                2 => width = n as u32,
                                3 => channels = n as u32,
                                4 => png = p.to_vec(),
                                _ => {}
                            }
                        }
                        val = Some(Value::Png {
                            height,
                            width,
                            channels,
                            png,
                        });
                    }
                    _ => {}
                }
            }
            if let Some(value) = val {
                events.push(Event {
                    wall_time,
                    step,
                    tag,
                    value,
                });
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C over the ASCII digits 1–9.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
