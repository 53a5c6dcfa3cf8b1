//! Pictures: the PNG encoder writes what a decoder reads back, grids place images where they
//! say, charts draw their series, and a run's `--save-augmented`, `--plots` and
//! `--tensorboard` write what they promise (TensorBoard's records read back, CRCs checked).

use clap::Parser;
use flate2::read::ZlibDecoder;
use std::io::Read;
use wgnn::cli::{TrainArgs, augment_overrides, augment_recipe, run_mnist};
use wgnn::data::Dataset;
use wgnn::image::Image;
use wgnn::{Device, Tensor};

/// A minimal PNG reader for 8-bit grey/RGB files without interlace, checking every CRC.
fn decode(png: &[u8]) -> Image {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "signature");
    let (mut pos, mut width, mut height, mut channels) = (8, 0, 0, 0);
    let mut idat = Vec::new();
    loop {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        let crc = u32::from_be_bytes(png[pos + 8 + len..pos + 12 + len].try_into().unwrap());
        let mut want = flate2::Crc::new();
        want.update(kind);
        want.update(data);
        assert_eq!(crc, want.sum(), "CRC of {}", String::from_utf8_lossy(kind));
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "bit depth");
                channels = match data[9] {
                    0 => 1,
                    2 => 3,
                    t => panic!("colour type {t}"),
                };
                assert_eq!(&data[10..13], &[0, 0, 0]);
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            other => panic!("unexpected chunk {other:?}"),
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1));
    let mut pixels = Vec::new();
    for row in raw.chunks(stride + 1) {
        assert_eq!(row[0], 0, "filter type");
        pixels.extend_from_slice(&row[1..]);
    }
    Image {
        width,
        height,
        channels,
        pixels,
    }
}

#[test]
fn png_reads_back() -> wgnn::Result<()> {
    let grey = Image {
        width: 3,
        height: 2,
        channels: 1,
        pixels: vec![0, 10, 20, 30, 40, 255],
    };
    assert_eq!(decode(&grey.png_bytes()?), grey);
    let rgb = Image {
        width: 2,
        height: 2,
        channels: 3,
        pixels: (0..12).map(|v| v * 20).collect(),
    };
    assert_eq!(decode(&rgb.png_bytes()?), rgb);
    let bad = Image {
        pixels: vec![0; 5],
        ..grey
    };
    let e = bad
        .png_bytes()
        .expect_err("5 bytes for 6 pixels")
        .to_string();
    assert!(e.contains("png_bytes") && e.contains("not 6"), "{e}");
    Ok(())
}

#[test]
fn grid_places_images_row_by_row() -> wgnn::Result<()> {
    // Three 2×2 images, values 0, 0.5 and 1 (the last with one pixel over 1: clamped).
    let mut v = vec![0.0f32; 4];
    v.extend([0.5; 4]);
    v.extend([1.0, 1.0, 1.0, 7.0]);
    let batch = Tensor::from_vec(v, [3, 1, 2, 2], &Device::cpu())?;
    let g = Image::grid(&batch, 2, 1)?;
    assert_eq!((g.width, g.height, g.channels), (7, 7, 1));
    let at = |x: usize, y: usize| g.pixels[y * g.width + x];
    assert_eq!(at(0, 0), 128, "padding is grey");
    assert_eq!((at(1, 1), at(2, 2)), (0, 0), "image 0 at the top left");
    assert_eq!(
        (at(4, 1), at(5, 2)),
        (128, 128),
        "image 1 at the top right (0.5)"
    );
    assert_eq!(
        (at(1, 4), at(2, 5)),
        (255, 255),
        "image 2 below image 0, clamped"
    );
    assert_eq!(at(4, 4), 128, "the empty slot stays grey");
    let e = Image::grid(
        &Tensor::zeros([2, 2], wgnn::DType::F32, &Device::cpu())?,
        2,
        1,
    )
    .expect_err("not NCHW")
    .to_string();
    assert!(e.contains("Image::grid") && e.contains("NCHW"), "{e}");
    Ok(())
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    train: TrainArgs,
}

#[test]
fn save_augmented_plots_and_tensorboard_from_a_run() -> wgnn::Result<()> {
    let dir = std::env::temp_dir().join(format!("wgnn-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("augmented.png");
    let args = |extra: &[&str]| {
        let mut argv = vec![
            "test",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--train-limit",
            "20",
            "--test-limit",
            "20",
            "--batch-size",
            "10",
            "--no-progress",
        ];
        argv.extend_from_slice(extra);
        Args::parse_from(argv).train
    };
    let p = path.to_str().unwrap();
    let plots = dir.join("plots");
    run_mnist(
        &args(&[
            "--augment",
            "--save-augmented",
            p,
            "--plots",
            plots.to_str().unwrap(),
            "--val-split",
            "10",
            "--metrics-out",
            dir.join("m.json").to_str().unwrap(),
            "--tensorboard",
            dir.join("tb").to_str().unwrap(),
            "--log-every",
            "1",
        ]),
        "lenet",
        wgnn::models::lenet,
    )?;
    // --plots: the curves, the errors of an untrained-ish LeNet, and its 6 first filters
    // (5×5, enlarged 9× with 1 px borders: 6 columns of 46 px and 1 more).
    for name in [
        "loss.png",
        "accuracy.png",
        "misclassified.png",
        "confident_errors.png",
    ] {
        let img = decode(&std::fs::read(plots.join(name)).unwrap());
        assert!(
            img.width >= 200 && img.height >= 100,
            "{name}: {}×{}",
            img.width,
            img.height
        );
    }
    // --tensorboard: the scalars of the run (two logged steps of 10 images, one epoch) in one
    // event file, the five pictures in another.
    let mut tags = Vec::new();
    for entry in std::fs::read_dir(dir.join("tb")).unwrap() {
        for e in wgnn::tensorboard::read_events(entry.unwrap().path())? {
            tags.push((e.tag, e.step));
        }
    }
    tags.sort();
    for want in [
        ("train/loss_running", 1),
        ("train/loss_running", 2),
        ("train/accuracy", 2),
        ("val/loss", 2),
        ("test/accuracy", 2),
        ("plots/misclassified", 1),
        ("plots/confident_errors", 1),
        ("plots/filters_after", 1),
    ] {
        assert!(
            tags.iter().any(|(t, s)| (t.as_str(), *s) == want),
            "{want:?} not in {tags:?}"
        );
    }
    // The metrics file reads back (what the `plot` example draws from).
    let m = wgnn::train::Metrics::read_json(&dir.join("m.json"))?;
    assert_eq!(
        (m.epochs.len(), m.epochs[0].val_accuracy.is_some()),
        (1, true)
    );
    let again = wgnn::plot::learning_curves(&m, "again", dir.join("again"))?;
    assert_eq!(again.len(), 2);
    let f = decode(&std::fs::read(plots.join("filters_after.png")).unwrap());
    assert_eq!((f.width, f.height), ((6 * 6 + 1) * 9, 7 * 9));
    assert_ne!(
        std::fs::read(plots.join("filters_before.png")).unwrap(),
        std::fs::read(plots.join("filters_after.png")).unwrap(),
        "training changed the filters"
    );
    let img = decode(&std::fs::read(&path).unwrap());
    // 8 columns and 8 rows of 28-px images with 2 px between and around them.
    assert_eq!((img.width, img.height, img.channels), (242, 242, 1));
    let tile = |row: usize, col: usize| -> Vec<u8> {
        let (top, left) = (2 + row * 30, 2 + col * 30);
        (0..28)
            .flat_map(|y| img.pixels[(top + y) * 242 + left..][..28].to_vec())
            .collect()
    };
    let mnist = wgnn::data::Mnist::load_default()?;
    assert_eq!(
        tile(0, 3),
        mnist.train.images[3 * 784..4 * 784],
        "top row: the originals"
    );
    assert!(
        tile(1, 3) != tile(0, 3) && tile(2, 3) != tile(1, 3),
        "epochs differ"
    );

    let e = run_mnist(
        &args(&["--save-augmented", p]),
        "lenet",
        wgnn::models::lenet,
    )
    .expect_err("nothing to show")
    .to_string();
    assert!(
        e.contains("--save-augmented") && e.contains("--augment"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

#[test]
fn augment_with_overrides_the_recipe() -> wgnn::Result<()> {
    let base = augment_recipe(Dataset::Mnist);
    let s = augment_overrides(base, "elastic-alpha=0, rotate=15,flip=true")?;
    assert_eq!((s.elastic_alpha, s.rotate, s.flip), (0.0, 15.0, true));
    assert_eq!((s.scale, s.shift), (base.scale, base.shift));
    for (bad, names) in [
        ("rotate", "KEY=VALUE"),
        ("tilt=3", "tilt"),
        ("scale=big", "big"),
        ("flip=maybe", "maybe"),
    ] {
        let e = augment_overrides(base, bad).expect_err(bad).to_string();
        assert!(e.contains("--augment-with") && e.contains(names), "{e}");
    }
    Ok(())
}

#[test]
fn line_charts_draw_their_series_and_refuse_nothing_to_draw() -> wgnn::Result<()> {
    use wgnn::plot::{LineChart, PALETTE, Series};
    let chart = LineChart {
        title: "loss".into(),
        x_label: "epoch".into(),
        y_label: "loss".into(),
        series: vec![
            Series::new("train", vec![(1.0, 2.0), (2.0, 1.0), (3.0, 0.5)]),
            Series::new("validation", vec![(1.0, 2.2), (2.0, f64::NAN), (3.0, 0.9)]),
        ],
        y_range: None,
    };
    let img = decode(&chart.render(400, 300)?.png_bytes()?);
    assert_eq!((img.width, img.height, img.channels), (400, 300, 3));
    let count = |c: [u8; 3]| img.pixels.chunks_exact(3).filter(|p| *p == c).count();
    // Each series' colour is drawn (line, dots, legend swatch), and text is dark.
    assert!(count(PALETTE[0]) > 100, "train: {}", count(PALETTE[0]));
    assert!(count(PALETTE[1]) > 40, "validation: {}", count(PALETTE[1]));
    assert!(
        img.pixels
            .chunks_exact(3)
            .any(|p| p.iter().all(|&v| v < 60)),
        "no text"
    );
    let empty = LineChart {
        title: "nothing".into(),
        series: vec![Series::new("nan", vec![(f64::NAN, 1.0)])],
        ..LineChart::default()
    };
    let e = empty
        .render(400, 300)
        .expect_err("no finite point")
        .to_string();
    assert!(
        e.contains("nothing") && e.contains("no finite point"),
        "{e}"
    );
    let e = chart.render(50, 50).expect_err("too small").to_string();
    assert!(e.contains("too small"), "{e}");
    // Small multiples: three 300×200 panels two to a row.
    let p = chart.render(300, 200)?;
    let t = wgnn::plot::tile(&[p.clone(), p.clone(), p.clone()], 2)?;
    assert_eq!((t.width, t.height), (600, 400));
    assert_eq!(
        &t.pixels[..300 * 3],
        &p.pixels[..300 * 3],
        "panel 0 at the top left"
    );
    let other = chart.render(320, 200)?;
    let e = wgnn::plot::tile(&[p, other], 2)
        .expect_err("sizes differ")
        .to_string();
    assert!(e.contains("plot::tile"), "{e}");
    Ok(())
}

/// The ch.6 experiment loop: the same batches for every contender, one row per block, the
/// chart has one line per contender, bad settings are refused by name.
#[test]
fn comparisons_tabulate_and_draw() -> wgnn::Result<()> {
    use wgnn::cli::{Contender, compare_runs};
    use wgnn::data::{DeviceDataset, Mnist};
    use wgnn::models::{MlpConfig, mlp};
    use wgnn::optim::Optimizer;
    let mnist = Mnist::load_default()?;
    let dev = Device::cpu();
    let train = DeviceDataset::from_mnist(&mnist.train.take(600), &dev)?;
    let test = DeviceDataset::from_mnist(&mnist.test.take(100), &dev)?;
    let make = |name: &str, lr: f32| -> wgnn::Result<Contender> {
        Ok(Contender {
            name: name.into(),
            model: mlp(&MlpConfig::new(&[784, 30, 10]), &dev, 1)?,
            opt: Optimizer::by_name("sgd", Some(lr))?,
        })
    };
    let cmp = compare_runs(
        vec![make("still", 0.0)?, make("moving", 0.1)?],
        &train,
        &test,
        25,
        50,
        10,
        0,
    )?;
    assert_eq!(cmp.mean_loss.len(), 3, "blocks of 10, 10 and 5 iterations");
    // lr 0 never changes the weights: its accuracy is the untrained net's; lr 0.1 learns.
    assert!(
        cmp.mean_loss[2][1] < cmp.mean_loss[2][0],
        "{:?}",
        cmp.mean_loss
    );
    let table = cmp.table();
    assert!(
        table.contains("| 21–25 |") && table.contains("| still | moving |"),
        "{table}"
    );
    let chart = cmp.chart("t");
    assert_eq!(chart.series.len(), 2);
    assert_eq!(
        chart.series[1].points.last(),
        Some(&(25.0, cmp.mean_loss[2][1]))
    );
    let e = compare_runs(vec![make("x", 0.1)?], &train, &test, 10, 1000, 5, 0)
        .expect_err("batch larger than the data")
        .to_string();
    assert!(e.contains("compare_runs") && e.contains("600"), "{e}");
    Ok(())
}

/// TensorBoard event files: what the writer writes reads back, CRCs included, and a flipped
/// byte is caught.
#[test]
fn tensorboard_events_read_back() -> wgnn::Result<()> {
    use wgnn::tensorboard::{SummaryWriter, Value, read_events};
    let dir = std::env::temp_dir().join(format!("wgnn-tb-{}", std::process::id()));
    let mut w = SummaryWriter::new(&dir)?;
    w.add_scalar("train/loss", 2.5, 10)?;
    w.add_scalar("test/accuracy", 0.875, 20)?;
    let img = Image {
        width: 2,
        height: 1,
        channels: 1,
        pixels: vec![0, 255],
    };
    w.add_image("plots/tiny", &img, 20)?;
    let path = w.path().to_path_buf();
    drop(w);
    let events = read_events(&path)?;
    assert_eq!(events.len(), 3);
    assert_eq!((events[0].tag.as_str(), events[0].step), ("train/loss", 10));
    assert_eq!(events[0].value, Value::Scalar(2.5));
    assert_eq!(events[1].value, Value::Scalar(0.875));
    match &events[2].value {
        Value::Png {
            height,
            width,
            channels,
            png,
        } => {
            assert_eq!((*height, *width, *channels), (1, 2, 1));
            assert_eq!(decode(png), img);
        }
        other => panic!("not an image: {other:?}"),
    }
    assert!(
        events[0].wall_time > 1.7e9,
        "wall time in seconds since 1970"
    );
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = read_events(&path).expect_err("corrupted").to_string();
    assert!(e.contains("CRC mismatch"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}
