//! Draws the learning curves of a finished run from its metrics JSON (`--metrics-out` of the
//! training examples): `loss.png` and `accuracy.png` in the output directory.
//!
//! ```text
//! cargo run --release --example vgg_like -- --epochs 2 --metrics-out run.json
//! cargo run --release --example plot -- run.json --out plots/
//! ```

use clap::Parser;
use std::path::PathBuf;
use wgnn::train::Metrics;

/// Learning curves from a metrics file.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// The metrics JSON.
    metrics: PathBuf,
    /// Directory for the PNG files.
    #[arg(long, default_value = "plots")]
    out: PathBuf,
    /// Chart title (default: the file's name).
    #[arg(long)]
    title: Option<String>,
}

fn main() {
    let args = Args::parse();
    let title = args.title.clone().unwrap_or_else(|| {
        args.metrics
            .file_stem()
            .map_or("run".into(), |s| s.to_string_lossy().into_owned())
    });
    let run = || -> wgnn::Result<()> {
        let metrics = Metrics::read_json(&args.metrics)?;
        for path in wgnn::plot::learning_curves(&metrics, &title, &args.out)? {
            println!("{}", path.display());
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
