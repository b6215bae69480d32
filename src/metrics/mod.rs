//! Metrics over one layer's pooled hidden states.
//!
//! * [`anisotropy`] — mean cosine between distinct embeddings (exact, centred, sampled);
//! * [`knn`] — exact inner-product / cosine k-nearest neighbours, blocked GEMM + partial selection;
//! * [`alignment`] — kernel alignment between two paired sets: the kNN family
//!   (mutual, cycle, LCS, edit distance, Jaccard), the CKA family (linear, RBF,
//!   unbiased, CKNNA) and SVCCA, following minyoungg/platonic-rep `metrics.py`;
//! * [`modes`] — layerwise and all-pairs comparison over layers, with statistics;
//! * [`stats`] — chance levels, permutation tests, bootstrap confidence intervals;
//! * [`projection`] — PCA to a plane and the trustworthiness of a projection.
//!
//! Inputs are `[N, D]` `f32` matrices (one row per item, rows of two matrices
//! with the same index are a pair); reductions are accumulated in `f64`.

pub mod alignment;
pub mod anisotropy;
pub mod cka;
pub mod kernels;
pub mod knn;
pub mod modes;
pub mod prep;
pub mod projection;
pub mod stats;
pub mod svcca;

pub use alignment::{align, AlignOptions, Metric};
pub use anisotropy::{anisotropy, anisotropy_centered, anisotropy_sampled, ZeroNorm};
pub use knn::{knn, KnnGraph};
