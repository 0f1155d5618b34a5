//! Where weights come from: a HuggingFace folder's safetensors (one file or a sharded index,
//! memory-mapped) or seeded random values for presets. Every lookup checks presence and shape
//! so a bad checkpoint fails at load with the tensor's name and both shapes, never mid-request.
//! Must not know the model's structure beyond "name and expected shape".

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use super::error::EngineError;

/// A source of named tensors.
pub enum WeightSource {
    Safetensors {
        files: MmapedSafetensors,
        folder: PathBuf,
    },
    /// HF's initialisation (normal(0, 0.02) matrices, zero biases, unit LayerNorm scales), each
    /// tensor seeded from `seed` and its name so values do not depend on load order. On the
    /// CPU the values come from a portable generator; on a GPU from the device's own (curand),
    /// because drawing 7B values on one host thread takes minutes: the same seed then gives
    /// different (but still seeded) weights on the two devices.
    Random { seed: u64 },
}

impl WeightSource {
    /// Opens `model.safetensors`, or every shard named by `model.safetensors.index.json`.
    pub fn open_folder(folder: &Path) -> Result<Self, EngineError> {
        let single = folder.join("model.safetensors");
        let index = folder.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.exists() {
            vec![single]
        } else if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| EngineError::io(&index, e))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| EngineError::Config(format!("{}: {e}", index.display())))?;
            let map = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| {
                    EngineError::Config(format!("{} has no `weight_map` object", index.display()))
                })?;
            let names: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
            names.into_iter().map(|n| folder.join(n)).collect()
        } else {
            return Err(EngineError::Config(format!(
                "{} has neither model.safetensors nor model.safetensors.index.json \
                 (convert .bin checkpoints to safetensors first)",
                folder.display()
            )));
        };
        // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on
        // nobody truncating them while the server runs.
        let files = unsafe { MmapedSafetensors::multi(&files) }?;
        Ok(Self::Safetensors {
            files,
            folder: folder.to_path_buf(),
        })
    }

    /// The tensor `name`, checked against `shape`, converted to `dtype` on `device`.
    pub fn get(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor, EngineError> {
        match self {
            Self::Safetensors { files, folder } => {
                let view = files.get(name).map_err(|_| EngineError::MissingTensor {
                    name: name.to_string(),
                    folder: folder.display().to_string(),
                })?;
                if view.shape() != shape {
                    return Err(EngineError::ShapeMismatch {
                        name: name.to_string(),
                        expected: shape.to_vec(),
                        found: view.shape().to_vec(),
                    });
                }
                Ok(files
                    .load(name, &Device::Cpu)?
                    .to_dtype(dtype)?
                    .to_device(device)?)
            }
            Self::Random { seed } if !device.is_cpu() && is_matrix(name) => {
                device.set_seed(*seed ^ name_hash(name))?;
                Ok(Tensor::randn(0f32, 0.02, shape, device)?.to_dtype(dtype)?)
            }
            Self::Random { seed } => Ok(random_tensor(*seed, name, shape)?
                .to_dtype(dtype)?
                .to_device(device)?),
        }
    }
}

fn is_norm(name: &str) -> bool {
    name.contains("layernorm") || name.contains("layer_norm")
}

/// Drawn from normal(0, 0.02), as opposed to constant biases and LayerNorm parameters.
fn is_matrix(name: &str) -> bool {
    !name.ends_with(".bias") && !is_norm(name)
}

/// FNV-1a of the name: stable across runs and platforms.
fn name_hash(name: &str) -> u64 {
    crate::fnv::fnv1a(name.bytes())
}

fn random_tensor(seed: u64, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
    let count: usize = shape.iter().product();
    let values = if name.ends_with(".bias") {
        vec![0f32; count]
    } else if is_norm(name) {
        vec![1f32; count]
    } else {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ name_hash(name));
        // Unwrap is safe: 0.02 is a valid standard deviation.
        let normal = Normal::new(0f32, 0.02).expect("valid normal");
        (0..count).map(|_| normal.sample(&mut rng)).collect()
    };
    Tensor::from_vec(values, shape, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_are_seeded_by_name() {
        let src = WeightSource::Random { seed: 7 };
        let get = |n: &str| {
            src.get(n, &[4, 3], DType::F32, &Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(get("a.weight"), get("a.weight"));
        assert_ne!(get("a.weight"), get("b.weight"));
        assert!(get("x.bias").iter().all(|&v| v == 0.0));
        assert!(get("x.input_layernorm.weight").iter().all(|&v| v == 1.0));
    }
}
