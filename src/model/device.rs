//! Device selection: `--device cpu | cpu:flex | cpu:ndarray | cuda | cuda:N`.
//!
//! The model code is generic over the Burn backend; the CPU backend
//! ([`super::Cpu`], Burn's `flex`) is always built, the CUDA backend
//! (`Gpu`) with the cargo feature `cuda`. `geom::with_backend!` runs one
//! generic function on the backend a [`DeviceSpec`] names.

use std::fmt;
use std::str::FromStr;

use crate::error::GeomError;

/// The CUDA backend (cargo feature `cuda`).
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU with the default backend ([`super::Cpu`]), all cores
    /// (`RAYON_NUM_THREADS` limits them).
    #[default]
    Cpu,
    /// The CPU with Burn's `flex` backend (`cpu:flex`).
    CpuFlex,
    /// The CPU with Burn's `ndarray` backend, GEMMs in the system OpenBLAS (`cpu:ndarray`).
    CpuNdarray,
    /// CUDA device `N` (needs the `cuda` feature).
    Cuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::CpuFlex => f.write_str("cpu:flex"),
            DeviceSpec::CpuNdarray => f.write_str("cpu:ndarray"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = GeomError;
    fn from_str(s: &str) -> Result<Self, GeomError> {
        let spec = match s {
            "cpu" => DeviceSpec::Cpu,
            "cpu:flex" => DeviceSpec::CpuFlex,
            "cpu:ndarray" => DeviceSpec::CpuNdarray,
            "cuda" | "gpu" => DeviceSpec::Cuda(0),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => DeviceSpec::Cuda(n),
                _ => {
                    return Err(GeomError::invalid(format!(
                        "unknown device '{s}' (expected cpu, cpu:flex, cpu:ndarray, cuda or cuda:N)"
                    )))
                }
            },
        };
        if matches!(spec, DeviceSpec::Cuda(_)) && !cfg!(feature = "cuda") {
            return Err(GeomError::invalid(format!(
                "device '{s}' needs the CUDA backend: build geom with `cargo build --release --features cuda`"
            )));
        }
        Ok(spec)
    }
}

/// Runs `$body` with the type alias `$B` bound to the backend of `$spec`
/// and `$device` to its device:
///
/// ```ignore
/// with_backend!(spec, |B, device| run::<B>(&device))
/// ```
#[macro_export]
macro_rules! with_backend {
    ($spec:expr, |$b:ident, $device:ident| $body:expr) => {{
        match $spec {
            $crate::model::device::DeviceSpec::Cpu => {
                type $b = $crate::model::Cpu;
                let $device: burn::tensor::Device<$b> = Default::default();
                $body
            }
            $crate::model::device::DeviceSpec::CpuFlex => {
                type $b = $crate::model::Flex;
                let $device: burn::tensor::Device<$b> = Default::default();
                $body
            }
            $crate::model::device::DeviceSpec::CpuNdarray => {
                type $b = $crate::model::NdArray;
                let $device: burn::tensor::Device<$b> = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::model::device::DeviceSpec::Cuda(n) => {
                type $b = $crate::model::device::Gpu;
                let $device = burn::backend::cuda::CudaDevice::new(n);
                $body
            }
            #[cfg(not(feature = "cuda"))]
            $crate::model::device::DeviceSpec::Cuda(_) => unreachable!("rejected when parsed"),
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        if cfg!(feature = "cuda") {
            assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        } else {
            let e = "cuda:1".parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
