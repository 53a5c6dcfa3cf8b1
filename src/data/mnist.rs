//! MNIST in IDX format, gzipped or raw.
//!
//! The four files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`) are looked up in a directory, each as
//! `<name>.gz` if present, else as the raw `<name>`. Whether a file is gzipped is decided by its
//! first two bytes (the gzip magic `1f 8b`), not by its extension.
//!
//! IDX layout: a big-endian `u32` magic (`0x00000803` for u8 images with 3 dimensions,
//! `0x00000801` for u8 labels with 1 dimension), one big-endian `u32` per dimension, then the
//! data bytes, and nothing after them. Every malformed input is reported as an [`Error`] naming
//! the file and what is wrong with it; nothing here panics on bad input.
//!
//! ```no_run
//! # fn main() -> wgnn::Result<()> {
//! let mnist = wgnn::data::Mnist::load_default()?;
//! assert_eq!((mnist.train.n, mnist.train.rows, mnist.train.cols), (60_000, 28, 28));
//! let small = mnist.train.take(1000);
//! assert_eq!(small.labels.len(), 1000);
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use flate2::bufread::MultiGzDecoder;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// One split (train or test) of MNIST.
#[derive(Clone, Debug)]
pub struct MnistSplit {
    /// Pixels, `n * rows * cols` bytes, image-major.
    pub images: Vec<u8>,
    /// Labels 0..=9, `n` bytes.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

/// Both splits.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60,000 training images.
    pub train: MnistSplit,
    /// 10,000 test images.
    pub test: MnistSplit,
}

/// Base name of the training images file (without `.gz`).
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Base name of the training labels file (without `.gz`).
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Base name of the test images file (without `.gz`).
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Base name of the test labels file (without `.gz`).
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Environment variable that overrides [`default_data_dir`].
pub const DATA_DIR_ENV: &str = "WGNN_DATA";

/// IDX magic of a u8 file with 3 dimensions (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// IDX magic of a u8 file with 1 dimension (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Upper bound on what is reserved up front from a (possibly lying) header; more is only
/// allocated as data actually arrives.
const MAX_PREALLOC: usize = 64 << 20;

/// The directory [`Mnist::load_default`] reads: `$WGNN_DATA` if set and non-empty, else the
/// `data/mnist` directory vendored with this crate.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")),
    }
}

/// Reads an IDX image file (magic `0x00000803`, u8 pixels, dimensions n × rows × cols),
/// gzipped or raw, and returns `(pixels, n, rows, cols)` with `pixels.len() == n * rows * cols`.
///
/// Errors (each naming `path`): unreadable file, wrong magic, a file shorter than its header or
/// than the size its header declares, bytes after the declared data, a zero dimension, a
/// declared size that overflows, a corrupt gzip stream.
pub fn read_idx_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize)> {
    let (dims, data) = read_idx(path, IMAGES_MAGIC, 3)?;
    Ok((data, dims[0], dims[1], dims[2]))
}

/// Reads an IDX label file (magic `0x00000801`, u8 labels, one dimension), gzipped or raw.
///
/// The values are returned as stored; [`Mnist::load`] additionally checks that they are digits.
/// Errors are those of [`read_idx_images`].
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let (_, data) = read_idx(path, LABELS_MAGIC, 1)?;
    Ok(data)
}

/// What a known IDX magic denotes, for error messages.
fn describe_magic(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => "an IDX image file",
        LABELS_MAGIC => "an IDX label file",
        m if m >> 16 == 0 && matches!((m >> 8) & 0xff, 0x08 | 0x09 | 0x0b | 0x0c | 0x0d | 0x0e) => {
            "an IDX file of another element type or rank"
        }
        _ => "not an IDX file",
    }
}

/// Reads `path` (gzipped or raw) and parses it as IDX with the given magic and rank.
fn read_idx(path: &Path, magic: u32, rank: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if file.starts_with(&GZIP_MAGIC) {
        parse_idx(path, &mut MultiGzDecoder::new(&file[..]), true, magic, rank)
    } else {
        parse_idx(path, &mut &file[..], false, magic, rank)
    }
}

/// Reads at most `limit` more bytes from `r` into `buf`.
fn read_limited(
    path: &Path,
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    limit: usize,
    gz: bool,
) -> Result<()> {
    r.take(limit as u64)
        .read_to_end(buf)
        .map(|_| ())
        .map_err(|e| stream_error(path, e, gz))
}

/// A read error: for gzip input, a corrupt or truncated stream.
fn stream_error(path: &Path, e: io::Error, gz: bool) -> Error {
    if gz {
        Error::data(path, format!("corrupt or truncated gzip stream: {e}"))
    } else {
        Error::io(path, e)
    }
}

/// Parses an IDX stream: checks magic and header, reads exactly the declared data, and rejects
/// short files and trailing bytes.
fn parse_idx(
    path: &Path,
    r: &mut impl Read,
    gz: bool,
    magic: u32,
    rank: usize,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let what = describe_magic(magic);
    let unzipped = if gz { " (after gunzip)" } else { "" };
    let header_len = 4 + 4 * rank;
    let mut header = Vec::with_capacity(header_len);
    read_limited(path, r, &mut header, header_len, gz)?;
    if header.len() < 4 {
        return Err(Error::data(
            path,
            format!(
                "truncated: {} bytes{unzipped}, shorter than the {header_len}-byte header of {what}",
                header.len()
            ),
        ));
    }
    let be_u32 =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let got_magic = be_u32(0);
    if got_magic != magic {
        return Err(Error::data(
            path,
            format!(
                "wrong magic 0x{got_magic:08x}, expected 0x{magic:08x} ({what}); this is {}",
                describe_magic(got_magic)
            ),
        ));
    }
    if header.len() < header_len {
        return Err(Error::data(
            path,
            format!(
                "truncated: {} bytes{unzipped}, shorter than the {header_len}-byte header of {what}",
                header.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..rank).map(|d| be_u32(4 + 4 * d) as usize).collect();
    let dims_str = dims
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×");
    if let Some(d) = dims.iter().position(|&x| x == 0) {
        return Err(Error::data(
            path,
            format!("dimension {d} is 0 (header declares {dims_str}); the file holds no data"),
        ));
    }
    let data_len = dims
        .iter()
        .try_fold(1usize, |acc, &x| acc.checked_mul(x))
        .and_then(|n| n.checked_add(header_len).map(|_| n))
        .ok_or_else(|| {
            Error::data(
                path,
                format!("header declares {dims_str} bytes of data, which overflows usize; the header is corrupt"),
            )
        })?;
    let total = header_len + data_len;

    let mut data = Vec::with_capacity(data_len.min(MAX_PREALLOC));
    // One byte more than declared, to detect trailing data without reading it all.
    read_limited(path, r, &mut data, data_len.saturating_add(1), gz)?;
    if data.len() < data_len {
        return Err(Error::data(
            path,
            format!(
                "truncated: expected {total} bytes (header {header_len} + {dims_str}), got {}{unzipped}",
                header_len + data.len()
            ),
        ));
    }
    if data.len() > data_len {
        let rest = io::copy(r, &mut io::sink()).map_err(|e| stream_error(path, e, gz))?;
        let extra = 1 + rest;
        return Err(Error::data(
            path,
            format!(
                "{extra} trailing byte{} after the data: expected {total} bytes (header {header_len} + {dims_str}), got {}{unzipped}",
                if extra == 1 { "" } else { "s" },
                total as u64 + extra
            ),
        ));
    }
    Ok((dims, data))
}

/// `dir/<name>.gz` if it exists, else `dir/<name>`, else an error naming both.
fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.exists() {
        return Ok(gz);
    }
    let raw = dir.join(name);
    if raw.exists() {
        return Ok(raw);
    }
    Err(Error::data(
        &raw,
        format!(
            "MNIST file missing: neither {name}.gz nor {name} is in {}; pass --data-dir DIR or set \
             {DATA_DIR_ENV} to a directory holding the four MNIST IDX files",
            dir.display()
        ),
    ))
}

/// Loads one split and checks its internal consistency.
fn load_split(dir: &Path, images_name: &str, labels_name: &str) -> Result<(MnistSplit, PathBuf)> {
    let images_path = locate(dir, images_name)?;
    let labels_path = locate(dir, labels_name)?;
    let (images, n, rows, cols) = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != n {
        return Err(Error::data(
            &images_path,
            format!(
                "{n} images but {} labels in {}",
                labels.len(),
                labels_path.display()
            ),
        ));
    }
    if let Some(i) = labels.iter().position(|&l| l > 9) {
        return Err(Error::data(
            &labels_path,
            format!("label {} at index {i} is not a digit 0..=9", labels[i]),
        ));
    }
    Ok((
        MnistSplit {
            images,
            labels,
            n,
            rows,
            cols,
        },
        images_path,
    ))
}

impl Mnist {
    /// Loads the four MNIST files from `dir`, each as `<name>.gz` if present, else the raw
    /// `<name>`.
    ///
    /// Besides the per-file checks of [`read_idx_images`] and [`read_idx_labels`], it checks
    /// that each split has as many labels as images, that every label is a digit 0..=9, and that
    /// train and test images have the same size. A missing directory or file is an error that
    /// says how to point wgnn at the data (`--data-dir`, `WGNN_DATA`).
    pub fn load(dir: &Path) -> Result<Mnist> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::data(
                    dir,
                    format!(
                        "not a directory; the MNIST data directory must hold the four IDX files \
                         (pass --data-dir DIR or set {DATA_DIR_ENV})"
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::data(
                    dir,
                    format!(
                        "MNIST data directory not found; pass --data-dir DIR or set {DATA_DIR_ENV} \
                         to a directory holding {TRAIN_IMAGES}[.gz], {TRAIN_LABELS}[.gz], \
                         {TEST_IMAGES}[.gz] and {TEST_LABELS}[.gz]"
                    ),
                ));
            }
            Err(e) => return Err(Error::io(dir, e)),
        }
        let (train, train_path) = load_split(dir, TRAIN_IMAGES, TRAIN_LABELS)?;
        let (test, test_path) = load_split(dir, TEST_IMAGES, TEST_LABELS)?;
        if (train.rows, train.cols) != (test.rows, test.cols) {
            return Err(Error::data(
                &test_path,
                format!(
                    "images are {}×{} but the training images in {} are {}×{}",
                    test.rows,
                    test.cols,
                    train_path.display(),
                    train.rows,
                    train.cols
                ),
            ));
        }
        Ok(Mnist { train, test })
    }

    /// [`Mnist::load`] from [`default_data_dir`] (`$WGNN_DATA`, else the vendored `data/mnist`).
    pub fn load_default() -> Result<Mnist> {
        Self::load(&default_data_dir())
    }
}

impl MnistSplit {
    /// A seeded random `n` of the images held out: `(the rest, the n held out)`, each in the
    /// original order. The same `seed` holds out the same images on every machine — a
    /// validation split that never touches the test set.
    pub fn split_off_seeded(&self, n: usize, seed: u64) -> Result<(MnistSplit, MnistSplit)> {
        if n == 0 || n >= self.n {
            return Err(Error::invalid(
                "--val-split",
                format!(
                    "{n} of {} images: hold out at least 1 and leave some to train on",
                    self.n
                ),
            ));
        }
        let order = crate::data::epoch_permutation(self.n, seed ^ 0x5EED_0F7A_11D0, 0);
        let mut held = vec![false; self.n];
        for &i in &order[..n] {
            held[i as usize] = true;
        }
        let px = self.rows * self.cols;
        let pick = |keep: bool| {
            let idx: Vec<usize> = (0..self.n).filter(|&i| held[i] != keep).collect();
            MnistSplit {
                images: idx
                    .iter()
                    .flat_map(|&i| &self.images[i * px..(i + 1) * px])
                    .copied()
                    .collect(),
                labels: idx.iter().map(|&i| self.labels[i]).collect(),
                n: idx.len(),
                rows: self.rows,
                cols: self.cols,
            }
        };
        Ok((pick(true), pick(false)))
    }

    /// The first `min(n, self.n)` examples, as a new split (for `--train-limit`).
    pub fn take(&self, n: usize) -> MnistSplit {
        let k = n.min(self.n);
        let pixels = k.saturating_mul(self.rows.saturating_mul(self.cols));
        MnistSplit {
            images: self.images[..pixels.min(self.images.len())].to_vec(),
            labels: self.labels[..k.min(self.labels.len())].to_vec(),
            n: k,
            rows: self.rows,
            cols: self.cols,
        }
    }
}
