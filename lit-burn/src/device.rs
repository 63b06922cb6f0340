//! Choosing the Burn device to run on: Flex (the default CPU backend), NdArray, or CUDA.
//!
//! Burn's `Device::default()` returns CUDA whenever the `cuda` feature is compiled in, without
//! looking at the machine, and the first operation on a CUDA device *panics* when libcuda or
//! nvrtc is missing. [`LitDevice::open`] therefore probes CUDA before handing it out: it lists
//! the CUDA devices (which checks for libcuda without panicking) and runs one tiny operation
//! inside `catch_unwind`, so a missing driver becomes an [`Error::DeviceUnavailable`].

use crate::error::{Error, Result};
use burn::tensor::Device;
use std::fmt;
use std::str::FromStr;

/// Which backend to run on, as named on a command line (`cpu`, `ndarray`, `cuda`, `cuda:1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    /// Burn's Flex backend: pure-Rust CPU, zero-copy weights, F16/BF16 support. The default.
    #[default]
    Cpu,
    /// Burn's NdArray CPU backend (deprecated upstream; no F16/BF16). Needs the `ndarray` feature.
    NdArray,
    /// CUDA GPU number `n`. Needs the `cuda` feature and a working driver.
    Cuda(usize),
}

impl FromStr for DeviceKind {
    type Err = Error;

    /// Parses `cpu` (or `flex`), `ndarray`, `cuda` (GPU 0) and `cuda:N`, case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" | "flex" => Ok(DeviceKind::Cpu),
            "ndarray" => Ok(DeviceKind::NdArray),
            "cuda" | "gpu" => Ok(DeviceKind::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceKind::Cuda(n)),
                _ => Err(Error::InvalidArgument(format!(
                    "unknown device `{s}` (expected cpu, ndarray, cuda or cuda:N)"
                ))),
            },
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::NdArray => f.write_str("ndarray"),
            DeviceKind::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// A Burn device that has been checked to work, with the name it was chosen by.
#[derive(Debug, Clone)]
pub struct LitDevice {
    kind: DeviceKind,
    device: Device,
}

impl Default for LitDevice {
    fn default() -> Self {
        Self::cpu()
    }
}

impl LitDevice {
    /// The Flex CPU device (always available).
    pub fn cpu() -> Self {
        LitDevice {
            kind: DeviceKind::Cpu,
            device: Device::flex(),
        }
    }

    /// Parses `name` (see [`DeviceKind`]) and opens it with [`LitDevice::open`].
    pub fn parse(name: &str) -> Result<Self> {
        Self::open(name.parse()?)
    }

    /// Opens `kind`, probing CUDA first; never panics.
    pub fn open(kind: DeviceKind) -> Result<Self> {
        let device = match kind {
            DeviceKind::Cpu => Device::flex(),
            DeviceKind::NdArray => ndarray_device()?,
            DeviceKind::Cuda(index) => cuda_device(index)?,
        };
        Ok(LitDevice { kind, device })
    }

    /// Which backend this is.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// The Burn device, to build skeletons and inputs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The Burn device, by value.
    pub fn into_device(self) -> Device {
        self.device
    }
}

impl fmt::Display for LitDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

#[cfg(feature = "ndarray")]
fn ndarray_device() -> Result<Device> {
    #[allow(deprecated)]
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Device> {
    Err(Error::DeviceUnavailable {
        device: "ndarray".into(),
        reason: "this build has no NdArray backend (rebuild with the `ndarray` feature)".into(),
    })
}

/// Whether CUDA GPU `index` works: lists CUDA devices, then runs one tiny operation on it inside
/// `catch_unwind`. A missing driver or nvrtc yields an explanation instead of a panic (Burn may
/// still print its panic message to stderr).
#[cfg(feature = "cuda")]
pub fn probe_cuda(index: usize) -> std::result::Result<(), String> {
    use burn::tensor::{DeviceType, Tensor};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    let count = catch_unwind(|| Device::enumerate(DeviceType::Cuda).len())
        .map_err(|p| format!("listing CUDA devices panicked: {}", panic_message(&*p)))?;
    if count == 0 {
        return Err("no CUDA device found (is the NVIDIA driver, libcuda.so, installed?)".into());
    }
    if index >= count {
        return Err(format!(
            "CUDA device {index} does not exist ({count} found)"
        ));
    }
    let device = Device::cuda(index);
    catch_unwind(AssertUnwindSafe(|| {
        Tensor::<1>::zeros([1], &device).into_data();
    }))
    .map_err(|p| {
        format!(
            "a test operation failed ({}); is nvrtc (libnvrtc.so, CUDA toolkit) installed?",
            panic_message(&*p)
        )
    })
}

/// Without the `cuda` feature CUDA is never available.
#[cfg(not(feature = "cuda"))]
pub fn probe_cuda(_index: usize) -> std::result::Result<(), String> {
    Err("this build has no CUDA support (rebuild with the `cuda` feature)".into())
}

#[cfg(feature = "cuda")]
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn cuda_device(index: usize) -> Result<Device> {
    probe_cuda(index).map_err(|reason| Error::DeviceUnavailable {
        device: format!("cuda:{index}"),
        reason,
    })?;
    #[cfg(feature = "cuda")]
    {
        Ok(Device::cuda(index))
    }
    #[cfg(not(feature = "cuda"))]
    unreachable!("probe_cuda always fails without the cuda feature")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("cpu".parse::<DeviceKind>().unwrap(), DeviceKind::Cpu);
        assert_eq!("Flex".parse::<DeviceKind>().unwrap(), DeviceKind::Cpu);
        assert_eq!(
            "ndarray".parse::<DeviceKind>().unwrap(),
            DeviceKind::NdArray
        );
        assert_eq!("cuda".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(3));
        let err = "tpu".parse::<DeviceKind>().unwrap_err().to_string();
        assert!(err.contains("tpu"), "{err}");
        assert!("cuda:x".parse::<DeviceKind>().is_err());
        for k in [DeviceKind::Cpu, DeviceKind::NdArray, DeviceKind::Cuda(2)] {
            assert_eq!(k.to_string().parse::<DeviceKind>().unwrap(), k);
        }
    }

    #[test]
    fn cpu_is_flex_and_works() {
        let d = LitDevice::parse("cpu").unwrap();
        assert_eq!(d.kind(), DeviceKind::Cpu);
        let t = burn::tensor::Tensor::<1>::ones([3], d.device());
        assert_eq!(t.into_data().try_to_vec::<f32>().unwrap(), vec![1.0; 3]);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_a_clear_error() {
        let err = LitDevice::parse("cuda").unwrap_err().to_string();
        assert!(err.contains("cuda:0") && err.contains("feature"), "{err}");
    }

    /// On a machine without a GPU this must be an error, not a panic; with one it must work.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_probe_never_panics() {
        match LitDevice::parse("cuda") {
            Ok(d) => assert_eq!(d.kind(), DeviceKind::Cuda(0)),
            Err(e) => assert!(e.to_string().contains("cuda:0"), "{e}"),
        }
    }

    #[cfg(not(feature = "ndarray"))]
    #[test]
    fn ndarray_without_feature_is_a_clear_error() {
        let err = LitDevice::parse("ndarray").unwrap_err().to_string();
        assert!(err.contains("ndarray") && err.contains("feature"), "{err}");
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_works() {
        let d = LitDevice::parse("ndarray").unwrap();
        let t = burn::tensor::Tensor::<1>::ones([2], d.device());
        assert_eq!(t.into_data().try_to_vec::<f32>().unwrap(), vec![1.0; 2]);
    }
}
