//! The MNIST IDX reader: the vendored data set, and malformed input reported (not panicked on)
//! with the file and the problem named.

use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::{Path, PathBuf};
use wgnn::data::mnist::{
    Mnist, MnistSplit, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, default_data_dir,
    read_idx_images, read_idx_labels,
};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wgnn-mnist-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` in the directory, gzipped if `gz`, and returns its path.
    fn write(&self, name: &str, bytes: &[u8], gz: bool) -> PathBuf {
        let path = self.0.join(name);
        let bytes = if gz { gzip(bytes) } else { bytes.to_vec() };
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// An IDX file: magic, big-endian dims, data.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// `n` images of `rows`×`cols`, pixel value = (image index * 7 + offset) mod 256.
fn images(n: usize, rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect();
    let file = idx(0x803, &[n as u32, rows as u32, cols as u32], &pixels);
    (file, pixels)
}

fn labels(values: &[u8]) -> Vec<u8> {
    idx(0x801, &[values.len() as u32], values)
}

/// Writes a complete synthetic MNIST directory: `n_train`/`n_test` images of 4×3 pixels, with
/// the given label values (their lengths may disagree with the image counts on purpose).
fn write_mnist(
    dir: &TempDir,
    train_labels: &[u8],
    test_labels: &[u8],
    n: (usize, usize),
    gz: bool,
) {
    let ext = if gz { ".gz" } else { "" };
    dir.write(&format!("{TRAIN_IMAGES}{ext}"), &images(n.0, 4, 3).0, gz);
    dir.write(&format!("{TRAIN_LABELS}{ext}"), &labels(train_labels), gz);
    dir.write(&format!("{TEST_IMAGES}{ext}"), &images(n.1, 4, 3).0, gz);
    dir.write(&format!("{TEST_LABELS}{ext}"), &labels(test_labels), gz);
}

fn err_of<T: std::fmt::Debug>(r: wgnn::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

/// Asserts that `msg` contains every one of `parts`.
fn assert_mentions(msg: &str, parts: &[&str]) {
    for part in parts {
        assert!(msg.contains(part), "error message {msg:?} lacks {part:?}");
    }
}

fn vendored_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

/// The whole vendored data set, checked against facts computed independently with Python's
/// `gzip` + `struct` (the gunzipped files also match the sha256 sums in data/mnist/README.md).
#[test]
fn vendored_mnist_loads() {
    let start = std::time::Instant::now();
    let m = Mnist::load(&vendored_dir()).unwrap();
    eprintln!("loaded MNIST in {:?} (debug build)", start.elapsed());

    for (split, n) in [(&m.train, 60_000), (&m.test, 10_000)] {
        assert_eq!((split.n, split.rows, split.cols), (n, 28, 28));
        assert_eq!(split.images.len(), n * 28 * 28);
        assert_eq!(split.labels.len(), n);
        assert!(split.labels.iter().all(|&l| l <= 9));
    }

    let mut hist = [0usize; 10];
    for &l in &m.train.labels {
        hist[l as usize] += 1;
    }
    for (digit, &count) in hist.iter().enumerate() {
        assert!(
            (5000..=7000).contains(&count),
            "digit {digit}: {count} training examples"
        );
    }
    assert_eq!(
        hist,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );

    assert_eq!(m.train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    assert_eq!(m.test.labels[..10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let sum = |v: &[u8]| v.iter().map(|&x| x as u64).sum::<u64>();
    assert_eq!(sum(&m.train.labels), 267_236);
    assert_eq!(sum(&m.test.labels), 44_434);
    assert_eq!(sum(&m.train.images), 1_567_298_545);
    assert_eq!(sum(&m.test.images), 264_923_200);
    assert_eq!(sum(&m.train.images[..784]), 27_525);
    assert_eq!(sum(&m.test.images[..784]), 18_454);

    let small = m.train.take(1000);
    assert_eq!((small.n, small.rows, small.cols), (1000, 28, 28));
    assert_eq!(small.images[..], m.train.images[..1000 * 784]);
    assert_eq!(small.labels[..], m.train.labels[..1000]);
    let all = m.test.take(usize::MAX);
    assert_eq!(all.n, 10_000);
    assert_eq!(all.images, m.test.images);
}

#[test]
fn read_single_vendored_label_file() {
    let labels = read_idx_labels(&vendored_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(labels.len(), 10_000);
    assert_eq!(labels[..3], [7, 2, 1]);
}

#[test]
fn default_data_dir_is_vendored_unless_overridden() {
    match std::env::var_os("WGNN_DATA") {
        Some(v) if !v.is_empty() => assert_eq!(default_data_dir(), PathBuf::from(v)),
        _ => assert_eq!(default_data_dir(), vendored_dir()),
    }
}

fn assert_split_eq(a: &MnistSplit, b: &MnistSplit) {
    assert_eq!((a.n, a.rows, a.cols), (b.n, b.rows, b.cols));
    assert_eq!(a.images, b.images);
    assert_eq!(a.labels, b.labels);
}

#[test]
fn raw_and_gz_directories_load_the_same() {
    let (gz_dir, raw_dir) = (TempDir::new("same-gz"), TempDir::new("same-raw"));
    let train = [3, 1, 4, 1, 5];
    let test = [9, 2, 6];
    write_mnist(&gz_dir, &train, &test, (5, 3), true);
    write_mnist(&raw_dir, &train, &test, (5, 3), false);
    let a = Mnist::load(gz_dir.path()).unwrap();
    let b = Mnist::load(raw_dir.path()).unwrap();
    assert_split_eq(&a.train, &b.train);
    assert_split_eq(&a.test, &b.test);
    assert_eq!((a.train.n, a.train.rows, a.train.cols), (5, 4, 3));
    assert_eq!(a.train.images, images(5, 4, 3).1);
    assert_eq!(a.train.labels, train);
    assert_eq!(a.test.labels, test);

    let t = a.train.take(2);
    assert_eq!((t.n, t.images.len(), &t.labels[..]), (2, 24, &[3, 1][..]));
    assert_eq!(a.train.take(0).n, 0);
}

#[test]
fn gz_preferred_over_raw_when_both_present() {
    let dir = TempDir::new("prefer-gz");
    write_mnist(&dir, &[1, 2], &[3], (2, 1), true);
    // Garbage raw files next to the good .gz ones must not be read.
    for name in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS] {
        dir.write(name, b"garbage", false);
    }
    let m = Mnist::load(dir.path()).unwrap();
    assert_eq!(m.train.labels, [1, 2]);
}

#[test]
fn gzip_detected_by_magic_not_extension() {
    let dir = TempDir::new("detect");
    let (file, pixels) = images(2, 4, 3);
    let gz_no_ext = dir.write("images", &file, true);
    let raw_gz_ext = dir.write("images.gz", &file, false);
    for path in [gz_no_ext, raw_gz_ext] {
        let (data, n, rows, cols) = read_idx_images(&path).unwrap();
        assert_eq!((n, rows, cols), (2, 4, 3));
        assert_eq!(data, pixels);
    }
}

#[test]
fn count_mismatch_names_both_files() {
    for gz in [true, false] {
        let dir = TempDir::new(&format!("count-{gz}"));
        write_mnist(&dir, &[1, 2, 3], &[4, 5], (3, 3), gz);
        let msg = err_of(Mnist::load(dir.path()));
        let ext = if gz { ".gz" } else { "" };
        let images = dir.path().join(format!("{TEST_IMAGES}{ext}"));
        let labels = dir.path().join(format!("{TEST_LABELS}{ext}"));
        assert_mentions(
            &msg,
            &[
                &images.display().to_string(),
                &format!("3 images but 2 labels in {}", labels.display()),
            ],
        );
    }
}

#[test]
fn label_out_of_range() {
    let dir = TempDir::new("label12");
    write_mnist(&dir, &[0, 1, 2, 3, 4, 12, 6], &[1], (7, 1), true);
    let msg = err_of(Mnist::load(dir.path()));
    let labels = dir.path().join(format!("{TRAIN_LABELS}.gz"));
    assert_mentions(
        &msg,
        &[
            &labels.display().to_string(),
            "label 12 at index 5 is not a digit 0..=9",
        ],
    );
}

#[test]
fn train_test_size_mismatch() {
    let dir = TempDir::new("size");
    write_mnist(&dir, &[1], &[1], (1, 1), false);
    dir.write(TEST_IMAGES, &images(1, 3, 4).0, false);
    let msg = err_of(Mnist::load(dir.path()));
    assert_mentions(
        &msg,
        &[
            &dir.path().join(TEST_IMAGES).display().to_string(),
            "3×4",
            "4×3",
        ],
    );
}

#[test]
fn truncated_data() {
    let dir = TempDir::new("truncated");
    let (file, _) = images(60_000, 28, 28);
    for gz in [false, true] {
        let path = dir.write(&format!("short-{gz}"), &file[..1000], gz);
        let msg = err_of(read_idx_images(&path));
        assert_mentions(
            &msg,
            &[
                &path.display().to_string(),
                "truncated: expected 47040016 bytes (header 16 + 60000×28×28), got 1000",
            ],
        );
    }
    let path = dir.write("short-labels", &labels(&[1, 2, 3])[..9], false);
    let msg = err_of(read_idx_labels(&path));
    assert_mentions(
        &msg,
        &[
            &path.display().to_string(),
            "truncated: expected 11 bytes (header 8 + 3), got 9",
        ],
    );
}

#[test]
fn shorter_than_header() {
    let dir = TempDir::new("header");
    let (file, _) = images(1, 2, 2);
    for len in [0, 2, 10] {
        for gz in [false, true] {
            let path = dir.write(&format!("h-{len}-{gz}"), &file[..len], gz);
            let msg = err_of(read_idx_images(&path));
            assert_mentions(
                &msg,
                &[
                    &path.display().to_string(),
                    &format!("truncated: {len} bytes"),
                    "shorter than the 16-byte header",
                ],
            );
        }
    }
}

#[test]
fn wrong_magic() {
    let dir = TempDir::new("magic");
    let labels_path = dir.write("labels.gz", &labels(&[1, 2, 3]), true);
    let msg = err_of(read_idx_images(&labels_path));
    assert_mentions(
        &msg,
        &[
            &labels_path.display().to_string(),
            "wrong magic 0x00000801, expected 0x00000803 (an IDX image file)",
        ],
    );
    let images_path = dir.write("images", &images(1, 2, 2).0, false);
    let msg = err_of(read_idx_labels(&images_path));
    assert_mentions(
        &msg,
        &[
            &images_path.display().to_string(),
            "wrong magic 0x00000803, expected 0x00000801 (an IDX label file)",
        ],
    );
    let text = dir.write("text", b"hello, world, this is not IDX", false);
    let msg = err_of(read_idx_images(&text));
    assert_mentions(&msg, &["wrong magic 0x68656c6c", "not an IDX file"]);
}

#[test]
fn trailing_garbage() {
    let dir = TempDir::new("trailing");
    let mut file = images(2, 2, 2).0;
    file.extend_from_slice(b"xyz");
    for gz in [false, true] {
        let path = dir.write(&format!("t-{gz}"), &file, gz);
        let msg = err_of(read_idx_images(&path));
        assert_mentions(
            &msg,
            &[
                &path.display().to_string(),
                "3 trailing bytes after the data: expected 24 bytes (header 16 + 2×2×2), got 27",
            ],
        );
    }
    let path = dir.write("labels", &[&labels(&[1])[..], &[0]].concat(), false);
    assert_mentions(
        &err_of(read_idx_labels(&path)),
        &["1 trailing byte after the data"],
    );
}

#[test]
fn zero_and_absurd_dimensions() {
    let dir = TempDir::new("dims");
    let path = dir.write("zero", &idx(0x803, &[5, 0, 28], &[]), false);
    assert_mentions(
        &err_of(read_idx_images(&path)),
        &[&path.display().to_string(), "dimension 1 is 0"],
    );
    let path = dir.write("overflow", &idx(0x803, &[u32::MAX; 3], &[1, 2, 3]), true);
    assert_mentions(
        &err_of(read_idx_images(&path)),
        &[&path.display().to_string(), "overflows"],
    );
    // Huge but representable: must be reported as truncated, not allocated.
    let path = dir.write(
        "huge",
        &idx(0x803, &[u32::MAX, 65535, 65535], &[1, 2]),
        false,
    );
    assert_mentions(
        &err_of(read_idx_images(&path)),
        &[&path.display().to_string(), "truncated: expected", "got 18"],
    );
    let path = dir.write("huge-labels", &idx(0x801, &[u32::MAX], &[1]), true);
    assert_mentions(
        &err_of(read_idx_labels(&path)),
        &["truncated: expected 4294967303 bytes"],
    );
}

#[test]
fn corrupt_gzip_stream() {
    let dir = TempDir::new("gzip");
    let gz = gzip(&images(50, 28, 28).0);
    let path = dir.path().join("cut.gz");
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    assert_mentions(
        &err_of(read_idx_images(&path)),
        &[&path.display().to_string(), "gzip"],
    );
    let path = dir.path().join("noise.gz");
    std::fs::write(
        &path,
        [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff],
    )
    .unwrap();
    assert_mentions(
        &err_of(read_idx_images(&path)),
        &[&path.display().to_string(), "gzip"],
    );
}

#[test]
fn missing_directory_and_files() {
    let dir = TempDir::new("missing");
    let absent = dir.path().join("no-such-dir");
    let msg = err_of(Mnist::load(&absent));
    assert_mentions(
        &msg,
        &[
            &absent.display().to_string(),
            "not found",
            "--data-dir",
            "WGNN_DATA",
        ],
    );

    let file = dir.write("a-file", b"", false);
    assert_mentions(
        &err_of(Mnist::load(&file)),
        &[&file.display().to_string(), "not a directory"],
    );

    write_mnist(&dir, &[1], &[1], (1, 1), true);
    std::fs::remove_file(dir.path().join(format!("{TEST_LABELS}.gz"))).unwrap();
    let msg = err_of(Mnist::load(dir.path()));
    assert_mentions(
        &msg,
        &[
            &dir.path().join(TEST_LABELS).display().to_string(),
            "--data-dir",
            "WGNN_DATA",
        ],
    );

    let nofile = dir.path().join("nope.gz");
    assert_mentions(
        &err_of(read_idx_labels(&nofile)),
        &[&nofile.display().to_string()],
    );
}

/// The vendored Fashion-MNIST: same format and sizes as MNIST, labels 0..=9 in every class.
#[test]
fn vendored_fashion_mnist_loads() {
    use wgnn::data::Dataset;
    let d = Dataset::parse("Fashion-MNIST").expect("parses");
    assert_eq!(d, Dataset::FashionMnist);
    assert_eq!(d.class_names()[7], "Sneaker");
    let data = d.load(None).expect("vendored fashion-mnist");
    assert_eq!(
        (data.train.n, data.test.n, data.train.rows),
        (60_000, 10_000, 28)
    );
    let mut counts = [0usize; 10];
    data.train
        .labels
        .iter()
        .for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts, [6000; 10],
        "Fashion-MNIST's training classes are balanced"
    );
    let e = Dataset::parse("cifar").expect_err("unknown").to_string();
    assert!(e.contains("cifar") && e.contains("fashion-mnist"), "{e}");
}

/// A validation split is a seeded choice: the same seed holds out the same images, the two
/// parts partition the split, and bad sizes are clear errors.
#[test]
fn seeded_validation_split() {
    let (_, img) = images(50, 2, 2);
    let labels: Vec<u8> = (0..50).map(|i| (i % 10) as u8).collect();
    let split = MnistSplit {
        images: img,
        labels,
        n: 50,
        rows: 2,
        cols: 2,
    };
    let (rest, held) = split.split_off_seeded(12, 7).expect("split");
    assert_eq!(
        (rest.n, held.n, rest.labels.len(), held.images.len()),
        (38, 12, 38, 48)
    );
    let (rest2, held2) = split.split_off_seeded(12, 7).expect("split");
    assert_split_eq(&rest, &rest2);
    assert_split_eq(&held, &held2);
    let (_, other) = split.split_off_seeded(12, 8).expect("split");
    assert_ne!(held.images, other.images, "another seed, another choice");
    // Every image lands in exactly one part, with its own label.
    let mut seen: Vec<(Vec<u8>, u8)> = rest
        .images
        .chunks(4)
        .zip(&rest.labels)
        .chain(held.images.chunks(4).zip(&held.labels))
        .map(|(p, &l)| (p.to_vec(), l))
        .collect();
    seen.sort();
    let mut all: Vec<(Vec<u8>, u8)> = split
        .images
        .chunks(4)
        .zip(&split.labels)
        .map(|(p, &l)| (p.to_vec(), l))
        .collect();
    all.sort();
    assert_eq!(seen, all);
    for n in [0, 50, 51] {
        let e = err_of(split.split_off_seeded(n, 1));
        assert!(
            e.contains("--val-split") && e.contains(&format!("{n} of 50")),
            "{e}"
        );
    }
}

/// `predict` gives one class per image, in order, agreeing with `evaluate`; the class report
/// names Fashion-MNIST's classes and counts the confusions.
#[test]
fn predictions_and_the_class_report() -> wgnn::Result<()> {
    use wgnn::cli::class_report;
    use wgnn::data::{Dataset, DeviceDataset, Mnist};
    use wgnn::train::{evaluate, predict};
    let fashion = Mnist::load(&Dataset::FashionMnist.default_dir())?;
    let test = fashion.test.take(130);
    let dev = wgnn::Device::cpu();
    let data = DeviceDataset::from_mnist(&test, &dev)?;
    let mut model = wgnn::models::lenet(&dev, 3)?;
    let preds = predict(&mut model, &data, 50)?;
    assert_eq!(preds.len(), 130);
    assert!(preds.iter().all(|&p| p < 10));
    let right = preds
        .iter()
        .zip(&test.labels)
        .filter(|(p, t)| **p == **t as u32)
        .count();
    let acc = evaluate(&mut model, &data, 50)?;
    assert!(
        (acc - right as f64 / 130.0).abs() < 1e-12,
        "{acc} vs {right}/130"
    );

    // Labels 6 (Shirt) ×3: one right, two taken for 0 (T-shirt/top); 7 (Sneaker) ×1, right.
    let report = class_report(Dataset::FashionMnist, &[6, 0, 0, 7], &[6, 6, 6, 7]);
    assert!(report.contains("Shirt 33.3%"), "{report}");
    assert!(report.contains("Sneaker 100.0%"), "{report}");
    assert!(
        !report.contains("Trouser"),
        "classes without examples are left out: {report}"
    );
    assert!(
        report.contains("Shirt taken for T-shirt/top 2×"),
        "{report}"
    );
    Ok(())
}
