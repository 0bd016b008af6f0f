//! Model ⇄ flat `Vec<f32>`: the wire format for federated averaging and secure aggregation.
//!
//! # Order
//!
//! The flat vector is the concatenation of every float parameter **in the order burn's
//! `ModuleVisitor` visits them**, each tensor in row-major order. Both model kinds are the same
//! layer stack, so for each linear layer `i` the vector holds `layers.i.weight`
//! (`[d_in, d_out]`), then `layers.i.bias` (`[d_out]`). The layers are, in order:
//!
//! - autoencoder: the encoder widths, then the mirrored decoder (`d → 64 → 32 → 8 → 32 → 64 → d`);
//! - classifier: the hidden widths, then the logit (`d → 64 → 32 → 1`).
//!
//! [`layout`] reports the exact spans, derived from a real module traversal rather than
//! hard-coded, and the tests pin it down. The vector does not record the model kind: a vector of
//! the right length for the other kind loads without complaint, so parties must agree on the
//! whole [`ModelConfig`], not just its size.
//!
//! Loading goes through `ModuleMapper::map_float` + `Param::transform_for_load`, which keeps each
//! parameter's id and gradient requirement (a fresh `Param` would silently drop `require_grad`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::ModelError;
use crate::input::check_weights;
use crate::mlp::Mlp;
use crate::model::ModelConfig;

/// Where one parameter tensor lives inside the flat vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpan {
    /// Dotted module path, e.g. `layers.0.weight`.
    pub name: String,
    /// Tensor shape (row-major inside the span).
    pub shape: Vec<usize>,
    /// Index of the first value in the flat vector.
    pub offset: usize,
    /// Number of values (`shape.iter().product()`).
    pub len: usize,
}

/// The flat-vector layout for `config`, in visitor order (see the module docs).
pub fn layout(config: &ModelConfig) -> Result<Vec<ParamSpan>, ModelError> {
    config.validate()?;
    // A plain (non-autodiff) device: building the lazy skeleton allocates no tensors.
    let model = config.skeleton(&Device::flex());
    let mut visitor = LayoutVisitor::default();
    model.visit(&mut visitor);
    Ok(visitor.spans)
}

/// Deterministic initial weights: Kaiming-uniform-like `U(-1/√fan_in, 1/√fan_in)` for weights
/// and biases (burn's `Linear` default), drawn from a ChaCha8 stream so the seed alone decides.
pub fn initial_weights(config: &ModelConfig, seed: u64) -> Result<Vec<f32>, ModelError> {
    let spans = layout(config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut flat = Vec::with_capacity(config.num_params());
    let mut fan_in = 1usize;
    for span in &spans {
        // Visitor order puts each weight ([d_in, d_out]) right before its bias.
        if let [d_in, _] = span.shape[..] {
            fan_in = d_in;
        }
        let bound = 1.0 / (fan_in as f32).sqrt();
        flat.extend((0..span.len).map(|_| rng.random_range(-bound..bound)));
    }
    Ok(flat)
}

/// Builds the model on `device` from a checked flat vector.
pub(crate) fn load(config: &ModelConfig, flat: &[f32], device: &Device) -> Result<Mlp, ModelError> {
    check_weights(config, flat)?;
    let skeleton = config.skeleton(device);
    let mut mapper = LoadMapper {
        flat,
        offset: 0,
        device: device.clone(),
    };
    let model = skeleton.map(&mut mapper);
    // Belt and braces: `check_weights` compared against `num_params`, this compares against the
    // module itself, so a drift between the two is caught instead of silently truncating.
    if mapper.offset != flat.len() {
        return Err(ModelError::WeightLength {
            expected: mapper.offset,
            actual: flat.len(),
        });
    }
    Ok(model)
}

/// Reads every parameter back into one vector, in visitor order.
pub(crate) fn to_flat(model: &Mlp) -> Result<Vec<f32>, ModelError> {
    let mut visitor = FlattenVisitor {
        out: Vec::new(),
        error: None,
    };
    model.visit(&mut visitor);
    match visitor.error {
        Some(e) => Err(e),
        None => Ok(visitor.out),
    }
}

/// Copies a float tensor of any rank to host memory as `f32`s in row-major order.
pub(crate) fn read_f32s<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    tensor
        .try_into_data()
        .map_err(|e| ModelError::Backend(format!("reading tensor data: {e:?}")))?
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Backend(format!("tensor is not f32: {e:?}")))
}

#[derive(Default)]
struct LayoutVisitor {
    path: Vec<String>,
    spans: Vec<ParamSpan>,
    offset: usize,
}

impl ModuleVisitor for LayoutVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // `lazy_shape` does not trigger initialisation.
        let shape = param.lazy_shape().to_vec();
        let len = shape.iter().product();
        self.spans.push(ParamSpan {
            name: self.path.join("."),
            shape,
            offset: self.offset,
            len,
        });
        self.offset += len;
    }
}

struct FlattenVisitor {
    out: Vec<f32>,
    error: Option<ModelError>,
}

impl ModuleVisitor for FlattenVisitor {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_some() {
            return;
        }
        match read_f32s(param.val()) {
            Ok(values) => self.out.extend_from_slice(&values),
            Err(e) => self.error = Some(e),
        }
    }
}

struct LoadMapper<'a> {
    flat: &'a [f32],
    offset: usize,
    device: Device,
}

impl ModuleMapper for LoadMapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape = param.lazy_shape();
        let len = shape.num_elements();
        let end = self.offset + len;
        // `load` checked the length against `num_params`, which counts exactly these tensors;
        // should the two ever disagree, keep the (zero) skeleton value and let `load` report it.
        let Some(values) = self.flat.get(self.offset..end) else {
            self.offset = end;
            return param;
        };
        self.offset = end;
        let tensor = Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), &self.device);
        let id = param.id;
        param.transform_for_load(tensor, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoencoder::AutoencoderConfig;
    use crate::classifier::ClassifierConfig;

    fn small() -> ModelConfig {
        ModelConfig::Autoencoder(AutoencoderConfig {
            input_dim: 5,
            hidden: vec![4, 2],
        })
    }

    fn small_classifier() -> ModelConfig {
        ModelConfig::Classifier(ClassifierConfig {
            input_dim: 5,
            hidden: vec![4, 2],
        })
    }

    #[test]
    fn layout_is_weight_then_bias_per_layer() {
        let spans = layout(&small()).unwrap();
        let got: Vec<(&str, Vec<usize>, usize)> = spans
            .iter()
            .map(|s| (s.name.as_str(), s.shape.clone(), s.offset))
            .collect();
        assert_eq!(
            got,
            vec![
                ("layers.0.weight", vec![5, 4], 0),
                ("layers.0.bias", vec![4], 20),
                ("layers.1.weight", vec![4, 2], 24),
                ("layers.1.bias", vec![2], 32),
                ("layers.2.weight", vec![2, 4], 34),
                ("layers.2.bias", vec![4], 42),
                ("layers.3.weight", vec![4, 5], 46),
                ("layers.3.bias", vec![5], 66),
            ]
        );
        let last = spans.last().unwrap();
        assert_eq!(last.offset + last.len, small().num_params());
    }

    #[test]
    fn classifier_layout_ends_in_the_logit() {
        let spans = layout(&small_classifier()).unwrap();
        let got: Vec<(&str, Vec<usize>, usize)> = spans
            .iter()
            .map(|s| (s.name.as_str(), s.shape.clone(), s.offset))
            .collect();
        assert_eq!(
            got,
            vec![
                ("layers.0.weight", vec![5, 4], 0),
                ("layers.0.bias", vec![4], 20),
                ("layers.1.weight", vec![4, 2], 24),
                ("layers.1.bias", vec![2], 32),
                ("layers.2.weight", vec![2, 1], 34),
                ("layers.2.bias", vec![1], 36),
            ]
        );
        assert_eq!(small_classifier().num_params(), 37);
    }

    #[test]
    fn initial_weights_length_and_determinism() {
        let configs = [
            small(),
            AutoencoderConfig::new(40).into(),
            small_classifier(),
            ClassifierConfig::new(40).into(),
        ];
        for config in configs {
            let a = initial_weights(&config, 7).unwrap();
            assert_eq!(a.len(), config.num_params());
            assert_eq!(a, initial_weights(&config, 7).unwrap());
            assert_ne!(a, initial_weights(&config, 8).unwrap());
            assert!(a.iter().all(|w| w.is_finite() && w.abs() <= 1.0));
        }
    }

    #[test]
    fn flatten_unflatten_is_bitwise_identity() {
        let config: ModelConfig = AutoencoderConfig::new(40).into();
        let mut flat = initial_weights(&config, 3).unwrap();
        // Awkward values must survive too.
        flat[0] = f32::MIN_POSITIVE / 2.0; // subnormal
        flat[1] = -0.0;
        flat[2] = f32::MAX;
        for device in [Device::flex(), Device::flex().autodiff()] {
            let model = load(&config, &flat, &device).unwrap();
            let back = to_flat(&model).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back), bits(&flat));
        }
    }

    #[test]
    fn load_keeps_gradient_tracking_on_autodiff() {
        struct GradCheck(Vec<bool>);
        impl ModuleVisitor for GradCheck {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.push(param.val().is_require_grad());
            }
        }
        let config = small();
        let flat = initial_weights(&config, 0).unwrap();
        let model = load(&config, &flat, &Device::flex().autodiff()).unwrap();
        let mut check = GradCheck(Vec::new());
        model.visit(&mut check);
        assert_eq!(check.0.len(), 8);
        assert!(check.0.iter().all(|&g| g));
    }

    #[test]
    fn load_rejects_wrong_length_naming_both() {
        let config = small();
        let flat = vec![0.0; config.num_params() - 1];
        let err = load(&config, &flat, &Device::flex()).unwrap_err();
        assert_eq!(
            err,
            ModelError::WeightLength {
                expected: 71,
                actual: 70
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("70") && msg.contains("71"), "{msg}");
    }

    #[test]
    fn load_rejects_non_finite_weights() {
        let config = small();
        let mut flat = initial_weights(&config, 0).unwrap();
        flat[10] = f32::NAN;
        assert_eq!(
            load(&config, &flat, &Device::flex()).unwrap_err(),
            ModelError::NonFiniteWeights { index: 10 }
        );
    }
}
