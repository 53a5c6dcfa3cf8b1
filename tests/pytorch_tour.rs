//! `examples/pytorch_tour.rs` — a program written as a PyTorch user writes one — run on the
//! CPU and on every GPU adapter: shapes as PyTorch gives them, the loss falls, the held-out
//! points are classified, and a state dict loaded into a fresh model reproduces its outputs.

mod common;

#[path = "../examples/pytorch_tour.rs"]
mod tour;

#[test]
fn the_tour_runs_and_learns_on_every_device() -> wgnn::Result<()> {
    for dev in common::all_devices() {
        let r = tour::tour(&dev, 40, false)?;
        assert_eq!(
            r.shapes,
            vec![
                vec![4, 3],
                vec![4, 3],
                vec![8, 3, 4, 2],
                vec![8, 4, 6],
                vec![8, 4],
                vec![8, 1, 1],
            ],
            "{dev}"
        );
        assert!(
            r.last_loss < 0.5 * r.first_loss,
            "{dev}: loss {} -> {}",
            r.first_loss,
            r.last_loss
        );
        assert!(
            r.val_accuracy >= 0.9,
            "{dev}: held-out accuracy {}",
            r.val_accuracy
        );
        assert_eq!(r.reload_max_diff, 0.0, "{dev}: outputs after reload differ");
    }
    Ok(())
}
