//! How good a generator's samples are, measured with a classifier trained on the same data:
//! the share it labels with confidence (max softmax ≥ 0.9), the histogram of its labels, and
//! the Fréchet distance between the Gaussians fitted to its penultimate features of generated
//! and of real images — FID's formula (Heusel et al.) in this classifier's feature space, not
//! Inception's, so its values compare only runs scored by the same classifier.

use crate::autograd::no_grad;
use crate::error::{Error, Result};
use crate::nn::{Module, ModuleExt, Sequential};
use crate::tensor::Tensor;

/// The eigenvalues and eigenvectors of the symmetric `n × n` matrix `a` (row-major) by cyclic
/// Jacobi rotations: `(values, vectors)` with eigenvector `k` in column `k` of `vectors`.
/// Converges to f64 precision in a few sweeps for the sizes of feature covariances (≤ ~1000).
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    const OP: &str = "symmetric_eigen";
    if a.len() != n * n {
        return Err(Error::invalid(
            OP,
            format!("{} values for a {n}×{n} matrix", a.len()),
        ));
    }
    if let Some(k) = a.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(OP, format!("element {k} is {}", a[k])));
    }
    let mut m = a.to_vec();
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = m
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                // The rotation in the (p, q) plane that zeroes a_pq: t = tan φ, the smaller
                // root of t² + 2θt − 1 = 0.
                let theta = (aqq - app) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    Ok(((0..n).map(|i| m[i * n + i]).collect(), v))
}

/// The mean `[d]` and covariance `[d, d]` (divided by n − 1) of `n` feature rows `[n, d]`, in
/// f64.
pub fn mean_cov(features: &[f32], n: usize, d: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if n < 2 || features.len() != n * d {
        return Err(Error::invalid(
            "mean_cov",
            format!(
                "{} values as {n} rows of {d} (needs ≥ 2 rows)",
                features.len()
            ),
        ));
    }
    let mut mu = vec![0f64; d];
    for row in features.chunks_exact(d) {
        mu.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
    }
    mu.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0f64; d * d];
    let mut c = vec![0f64; d];
    for row in features.chunks_exact(d) {
        c.iter_mut()
            .zip(row)
            .zip(&mu)
            .for_each(|((c, &x), m)| *c = x as f64 - m);
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += c[i] * c[j];
            }
        }
    }
    cov.iter_mut().for_each(|v| *v /= (n - 1) as f64);
    Ok((mu, cov))
}

/// `‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½)`, the Fréchet (2-Wasserstein) distance
/// between N(μ1, Σ1) and N(μ2, Σ2) (`d`-dimensional, covariances row-major). Eigenvalues
/// that rounding leaves slightly negative count as 0.
pub fn frechet_distance(mu1: &[f64], s1: &[f64], mu2: &[f64], s2: &[f64]) -> Result<f64> {
    let d = mu1.len();
    if mu2.len() != d || s1.len() != d * d || s2.len() != d * d {
        return Err(Error::invalid(
            "frechet_distance",
            format!(
                "means of {d} and {}, covariances of {} and {} values",
                mu2.len(),
                s1.len(),
                s2.len()
            ),
        ));
    }
    // Σ1^½ from Σ1's eigendecomposition, then the eigenvalues of Σ1^½ Σ2 Σ1^½ (symmetric).
    let (l1, v1) = symmetric_eigen(s1, d)?;
    let mut root = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..d {
            root[i * d + j] = (0..d)
                .map(|k| v1[i * d + k] * l1[k].max(0.0).sqrt() * v1[j * d + k])
                .sum();
        }
    }
    let prod = |a: &[f64], b: &[f64]| -> Vec<f64> {
        let mut c = vec![0f64; d * d];
        for i in 0..d {
            for k in 0..d {
                let aik = a[i * d + k];
                for j in 0..d {
                    c[i * d + j] += aik * b[k * d + j];
                }
            }
        }
        c
    };
    let mut m = prod(&prod(&root, s2), &root);
    // Symmetrise what rounding broke.
    for i in 0..d {
        for j in i + 1..d {
            let avg = 0.5 * (m[i * d + j] + m[j * d + i]);
            (m[i * d + j], m[j * d + i]) = (avg, avg);
        }
    }
    let (l, _) = symmetric_eigen(&m, d)?;
    let tr_root: f64 = l.iter().map(|&x| x.max(0.0).sqrt()).sum();
    let trace = |s: &[f64]| (0..d).map(|i| s[i * d + i]).sum::<f64>();
    let dmu: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    Ok(dmu + trace(s1) + trace(s2) - 2.0 * tr_root)
}

/// A classifier's verdict on a set of images.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The share labelled with a softmax probability ≥ 0.9.
    pub confident: f64,
    /// The share given each label.
    pub histogram: Vec<f64>,
    /// The penultimate features' mean and covariance.
    pub mean: Vec<f64>,
    /// See `mean`.
    pub cov: Vec<f64>,
}

/// Runs `classifier` (in evaluation mode) over `images` `[N, C, H, W]` in batches of `batch`,
/// taking the output of the module `feature_layer` as the features and the last module's as
/// the logits.
pub fn judge(
    classifier: &mut Sequential,
    feature_layer: &str,
    images: &Tensor,
    batch: usize,
) -> Result<Verdict> {
    const OP: &str = "judge";
    let n = images.dims().first().copied().unwrap_or(0);
    if n < 2 || batch == 0 {
        return Err(Error::invalid(
            OP,
            format!("{n} images in batches of {batch}"),
        ));
    }
    classifier.eval();
    let _guard = no_grad();
    let (mut features, mut confident, mut histogram, mut d) = (Vec::new(), 0usize, Vec::new(), 0);
    for start in (0..n).step_by(batch) {
        let x = images.narrow(0, start, batch.min(n - start))?;
        let f = classifier.forward_through(&x, feature_layer)?;
        let logits = classifier.forward(&x)?;
        let b = x.dims()[0];
        d = f.numel() / b;
        features.extend(f.to_vec::<f32>()?);
        let probs = logits
            .reshape([b as isize, -1])?
            .softmax(-1)?
            .to_vec::<f32>()?;
        let classes = probs.len() / b;
        histogram.resize(classes, 0usize);
        for row in probs.chunks_exact(classes) {
            let (best, p) = row
                .iter()
                .copied()
                .enumerate()
                .fold((0, f32::MIN), |a, (i, p)| if p > a.1 { (i, p) } else { a });
            histogram[best] += 1;
            confident += usize::from(p >= 0.9);
        }
    }
    let (mean, cov) = mean_cov(&features, n, d)?;
    Ok(Verdict {
        confident: confident as f64 / n as f64,
        histogram: histogram.iter().map(|&c| c as f64 / n as f64).collect(),
        mean,
        cov,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random symmetric matrix is rebuilt from its eigenpairs (V Λ Vᵀ), V orthonormal.
    #[test]
    fn eigen_rebuilds_the_matrix() {
        let n = 7;
        let mut seed = 3u32;
        let mut a = vec![0f64; n * n];
        for i in 0..n {
            for j in i..n {
                seed = crate::rng::hash_u32(seed);
                let v = (seed >> 8) as f64 / 16_777_216.0 - 0.5;
                (a[i * n + j], a[j * n + i]) = (v, v);
            }
        }
        let (l, v) = symmetric_eigen(&a, n).unwrap();
        for i in 0..n {
            for j in 0..n {
                let back: f64 = (0..n).map(|k| v[i * n + k] * l[k] * v[j * n + k]).sum();
                assert!(
                    (back - a[i * n + j]).abs() < 1e-12,
                    "({i}, {j}): {back} vs {}",
                    a[i * n + j]
                );
                let dot: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-12, "columns {i}, {j}: {dot}");
            }
        }
    }

    /// The closed forms: 0 between a Gaussian and itself; for diagonal covariances
    /// `‖Δμ‖² + Σ (√a − √b)²`; and the same value whatever the basis (a rotated pair).
    #[test]
    fn frechet_distance_closed_forms() {
        let s = vec![2.0, 0.5, 0.5, 1.0];
        let mu = vec![1.0, -1.0];
        assert!(frechet_distance(&mu, &s, &mu, &s).unwrap().abs() < 1e-12);
        let (a, b) = (vec![4.0, 0.0, 0.0, 9.0], vec![1.0, 0.0, 0.0, 16.0]);
        let want = (1.0f64 + 4.0) + (2.0f64 - 1.0).powi(2) + (3.0f64 - 4.0).powi(2);
        let got = frechet_distance(&[0.0, 0.0], &a, &[1.0, 2.0], &b).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Rotate both by 30°: the distance stays.
        let (c, sn) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let r = [c, -sn, sn, c];
        let rot = |m: &[f64]| -> Vec<f64> {
            let mut out = vec![0f64; 4];
            for i in 0..2 {
                for j in 0..2 {
                    out[i * 2 + j] = (0..2)
                        .flat_map(|k| (0..2).map(move |l| (k, l)))
                        .map(|(k, l)| r[i * 2 + k] * m[k * 2 + l] * r[j * 2 + l])
                        .sum();
                }
            }
            out
        };
        let mu2 = [c * 1.0 - sn * 2.0, sn * 1.0 + c * 2.0];
        let got = frechet_distance(&[0.0, 0.0], &rot(&a), &mu2, &rot(&b)).unwrap();
        assert!((got - want).abs() < 1e-9, "rotated: {got} vs {want}");
        assert!(frechet_distance(&[0.0], &a, &[0.0, 0.0], &b).is_err());
        assert!(symmetric_eigen(&[f64::NAN, 0.0, 0.0, 1.0], 2).is_err());
    }

    /// The sample mean and covariance of a few rows, by hand.
    #[test]
    fn mean_and_covariance() {
        let (mu, cov) = mean_cov(&[1.0, 2.0, 3.0, 6.0, 5.0, 10.0], 3, 2).unwrap();
        assert_eq!(mu, [3.0, 6.0]);
        assert_eq!(cov, [4.0, 8.0, 8.0, 16.0]);
        assert!(mean_cov(&[1.0, 2.0], 1, 2).is_err());
    }
}
