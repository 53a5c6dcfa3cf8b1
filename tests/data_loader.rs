//! `TensorDataset` + `DataLoader`: every sample once per epoch, a seeded order that changes per
//! epoch and repeats per seed, `drop_last`, float and u32 tensors of any shape, on every device.

mod common;

use wgnn::data::{DataLoader, TensorDataset};
use wgnn::{DType, Tensor};

#[test]
fn batches_cover_every_sample_once_in_a_seeded_order() -> wgnn::Result<()> {
    for dev in common::all_devices() {
        // Sample i holds the values 10·i .. 10·i + 5 as a [2, 3] image, and the label i.
        let x: Vec<f32> = (0..10 * 6).map(|v| (v / 6 * 10 + v % 6) as f32).collect();
        let labels: Vec<u32> = (0..10).collect();
        let ds = TensorDataset::new(vec![
            Tensor::from_vec(x, [10, 2, 3], &dev)?,
            Tensor::from_vec(labels, [10], &dev)?,
        ])?;
        assert_eq!(ds.len(), 10);
        let mut loader = DataLoader::new(&ds, 4)?.shuffle(7);
        assert_eq!(
            loader.len(),
            3,
            "10 samples in batches of 4, the last short"
        );
        let mut orders = Vec::new();
        for _ in 0..2 {
            let mut seen = Vec::new();
            for batch in loader.epoch() {
                let batch = batch?;
                assert_eq!(batch[0].dims()[1..], [2, 3], "{dev}");
                assert_eq!(batch[1].dtype(), DType::U32);
                let ids = batch[1].to_vec::<u32>()?;
                let firsts: Vec<f32> = batch[0].to_vec::<f32>()?.chunks(6).map(|c| c[0]).collect();
                let want: Vec<f32> = ids.iter().map(|&i| (i * 10) as f32).collect();
                assert_eq!(firsts, want, "{dev}: images and labels stay paired");
                seen.extend(ids);
            }
            let mut sorted = seen.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..10).collect::<Vec<u32>>(),
                "{dev}: each sample once"
            );
            orders.push(seen);
        }
        assert_ne!(orders[0], orders[1], "{dev}: a new order each epoch");
        let again: Vec<u32> = DataLoader::new(&ds, 4)?
            .shuffle(7)
            .epoch()
            .map(|b| b.and_then(|b| b[1].to_vec::<u32>()))
            .collect::<wgnn::Result<Vec<_>>>()?
            .concat();
        assert_eq!(again, orders[0], "{dev}: the same seed, the same order");
        let mut dropping = DataLoader::new(&ds, 4)?.drop_last(true);
        let sizes: Vec<usize> = dropping
            .epoch()
            .map(|b| b.map(|b| b[0].dims()[0]))
            .collect::<wgnn::Result<_>>()?;
        assert_eq!(sizes, [4, 4], "{dev}: drop_last leaves the short batch out");
    }
    Ok(())
}

#[test]
fn bad_datasets_are_clear_errors() -> wgnn::Result<()> {
    let dev = wgnn::Device::cpu();
    let a = Tensor::zeros([5, 2], DType::F32, &dev)?;
    let b = Tensor::zeros([4], DType::F32, &dev)?;
    let e = TensorDataset::new(vec![a.clone(), b])
        .unwrap_err()
        .to_string();
    assert!(e.contains("tensor 1") && e.contains("5 samples"), "{e}");
    let ds = TensorDataset::new(vec![a])?;
    assert!(DataLoader::new(&ds, 0).is_err());
    let e = ds.get(&[5]).unwrap_err().to_string();
    assert!(e.contains("index 5"), "{e}");
    Ok(())
}
