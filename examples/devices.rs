//! Lists every GPU adapter wgpu can see, what each supports, and checks a matmul on each
//! against the CPU backend.
//!
//! ```text
//! cargo run --release --example devices -- --size 256
//! ```

use clap::Parser;
use std::time::Instant;
use wgnn::{Device, Tensor};

/// List adapters and cross-check a matmul on each.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Square matrix size for the check.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> wgnn::Result<()> {
    let n = args.size;
    let cpu = Device::cpu();
    let a = Tensor::randn([n, n], 0.0, 1.0, args.seed, &cpu)?;
    let b = Tensor::randn([n, n], 0.0, 1.0, args.seed + 1, &cpu)?;
    let t = Instant::now();
    let reference = a.matmul_t(&b, false, false)?.to_vec::<f32>()?;
    println!(
        "cpu (ndarray): {n}x{n}x{n} matmul in {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    let adapters = Device::list();
    if adapters.is_empty() {
        println!("no GPU adapters found; {}", wgnn::device::INSTALL_HINT);
    }
    let auto = Device::auto()?;
    println!("Device::auto() picks: {auto}");
    for s in adapters {
        println!();
        println!("gpu:{} {}", s.index, s.name);
        println!(
            "  backend {}, type {:?}, driver {}",
            s.backend, s.device_type, s.driver
        );
        println!(
            "  SHADER_F16 {}, max storage binding {} MiB, max buffer {} MiB, subgroup {}..{}, \
             max workgroup {} invocations, {} workgroups/dim",
            s.shader_f16,
            s.max_storage_buffer_binding_size >> 20,
            s.max_buffer_size >> 20,
            s.subgroup_sizes.0,
            s.subgroup_sizes.1,
            s.max_compute_invocations_per_workgroup,
            s.max_compute_workgroups_per_dimension
        );
        let dev = match Device::gpu_by_index(s.index) {
            Ok(d) => d,
            Err(e) => {
                println!("  could not open: {e}");
                continue;
            }
        };
        let ga = a.to_device(&dev)?;
        let gb = b.to_device(&dev)?;
        let t = Instant::now();
        let got = ga.matmul_t(&gb, false, false)?.to_vec::<f32>()?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let max_diff = got
            .iter()
            .zip(&reference)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        let kernel = dev.gpu_context().map(|c| c.matmul_kernel());
        println!(
            "  matmul {n}x{n}x{n} ({kernel:?} kernel, first run incl. pipeline build): {ms:.1} ms, \
             max |gpu - cpu| = {max_diff:.3e} {}",
            if max_diff < 1e-3 {
                "(match)"
            } else {
                "(MISMATCH)"
            }
        );
    }
    Ok(())
}
