//! A dataset resident on its device and the per-epoch shuffle.
//!
//! Images and labels are uploaded once, as bytes packed four to a u32 (MNIST's 47 MB of
//! training pixels stay 47 MB on the GPU). Each epoch uploads one permutation of the indices;
//! each step gathers its batch from it with a kernel (`shaders/data.wgsl`), converting to f32
//! in [0, 1] on the device. A training step therefore uploads nothing.

use super::mnist::MnistSplit;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use crate::tensor::Tensor;

/// Packs bytes little-endian into u32 words (the layout `gather_bytes` reads).
pub fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

/// A labelled image dataset on a device.
pub struct DeviceDataset {
    images: Tensor,
    labels: Tensor,
    n: usize,
    image_shape: [usize; 3],
    classes: usize,
    resize: Option<(usize, usize)>,
}

impl DeviceDataset {
    /// Uploads an MNIST split to `device` (one upload; images `[1, rows, cols]`).
    pub fn from_mnist(split: &MnistSplit, device: &Device) -> Result<DeviceDataset> {
        DeviceDataset::from_bytes(
            &split.images,
            &split.labels,
            [1, split.rows, split.cols],
            10,
            device,
        )
    }

    /// From raw pixel bytes (`n · C·H·W`) and label bytes (`n`), each label a class index in
    /// `0..classes`. Labels are checked here, on the host, because the loss kernels cannot
    /// check them without a readback: on a GPU a label past the class count would give a NaN
    /// loss many steps later instead of an error naming the example.
    pub fn from_bytes(
        images: &[u8],
        labels: &[u8],
        image_shape: [usize; 3],
        classes: usize,
        device: &Device,
    ) -> Result<DeviceDataset> {
        if classes == 0 || classes > 256 {
            return Err(Error::invalid(
                "DeviceDataset",
                format!("{classes} classes: u8 labels need 1..=256 classes"),
            ));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes) {
            return Err(Error::invalid(
                "DeviceDataset",
                format!(
                    "label {} at index {i} is outside the {classes} classes 0..={}",
                    labels[i],
                    classes - 1
                ),
            ));
        }
        let row: usize = image_shape.iter().product();
        let n = labels.len();
        if row == 0 || images.len() != n * row {
            return Err(Error::invalid(
                "DeviceDataset",
                format!(
                    "{} pixel bytes do not make {n} images of {image_shape:?}",
                    images.len()
                ),
            ));
        }
        let words = pack_bytes(images);
        let lwords = pack_bytes(labels);
        Ok(DeviceDataset {
            images: Tensor::from_vec(words.clone(), [words.len()], device)?,
            labels: Tensor::from_vec(lwords.clone(), [lwords.len()], device)?,
            n,
            image_shape,
            classes,
            resize: None,
        })
    }

    /// Every batch resized on the device to `h`×`w` (bilinear; d2l feeds Fashion-MNIST to
    /// AlexNet at 224 and to ResNet at 96 pixels). The stored images keep their size.
    pub fn with_resize(mut self, h: usize, w: usize) -> Result<DeviceDataset> {
        if h == 0 || w == 0 {
            return Err(Error::invalid("--resize", format!("{h}x{w} has no pixels")));
        }
        self.resize = Some((h, w));
        Ok(self)
    }

    /// The `[C, H, W]` of a batch's images (after any resize).
    pub fn batch_image_shape(&self) -> [usize; 3] {
        match self.resize {
            Some((h, w)) => [self.image_shape[0], h, w],
            None => self.image_shape,
        }
    }

    /// Number of classes; every label is below it.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The device the data lives on.
    pub fn device(&self) -> Device {
        self.images.device()
    }

    /// The identity order `0..n` as a device tensor (for evaluation).
    pub fn ordered(&self) -> Result<Tensor> {
        Tensor::from_vec(
            (0..self.n as u32).collect::<Vec<_>>(),
            [self.n],
            &self.device(),
        )
    }

    /// The shuffled order of `epoch` as a device tensor (one upload per epoch).
    pub fn shuffled(&self, seed: u64, epoch: usize) -> Result<Tensor> {
        Tensor::from_vec(
            epoch_permutation(self.n, seed, epoch),
            [self.n],
            &self.device(),
        )
    }

    /// The batch at positions `offset..offset + count` of `order`: images `[count, C, H, W]`
    /// f32 in [0, 1] and labels u32 `[count]`, gathered on the device.
    pub fn batch(&self, order: &Tensor, offset: usize, count: usize) -> Result<(Tensor, Tensor)> {
        let row: usize = self.image_shape.iter().product();
        let [c, h, w] = self.image_shape;
        let x = self
            .images
            .gather_bytes(order, offset, count, row, 1.0 / 255.0, DType::F32)?
            .reshape([count, c, h, w])?;
        let x = match self.resize {
            Some((rh, rw)) => x.resize_bilinear(rh, rw)?,
            None => x,
        };
        let t = self
            .labels
            .gather_bytes(order, offset, count, 1, 1.0, DType::U32)?
            .reshape([count])?;
        Ok((x, t))
    }
}

impl std::fmt::Debug for DeviceDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceDataset")
            .field("len", &self.n)
            .field("image_shape", &self.image_shape)
            .field("classes", &self.classes)
            .field("device", &self.device())
            .finish()
    }
}

/// A Fisher–Yates shuffle of `0..n` determined by `(seed, epoch)`.
pub fn epoch_permutation(n: usize, seed: u64, epoch: usize) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed ^ (epoch as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut p: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}
