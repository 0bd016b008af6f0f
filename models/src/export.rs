//! Exporting a global model for use outside the federation: a safetensors file a notebook
//! (PyTorch, NumPy, JAX) can load without fedsoc, and burn's own record format for Rust
//! consumers, both labelled with everything needed to use the weights correctly.
//!
//! The flat vector (see [`crate::flat`]) does not say which architecture it belongs to, nor how
//! features were encoded; an export that dropped either would be a pile of numbers. So every
//! export carries the model kind, widths, activation, the round and hash it came from and the
//! federation's encoder JSON.
//!
//! # safetensors
//!
//! One `F32` tensor per layer weight and bias, named after the layer's role:
//!
//! - autoencoder: `encoder.{i}.weight` / `encoder.{i}.bias` for the encoder layers, then
//!   `decoder.{i}.*` for the mirrored decoder;
//! - classifier: `hidden.{i}.*` for the hidden layers, then `output.*` for the logit.
//!
//! `i` counts linear layers only (no ReLU slots), so in PyTorch load them into an
//! `nn.ModuleList` of `nn.Linear` (or remap the indices for an `nn.Sequential`). Weights are
//! stored **`[out, in]` as `nn.Linear` expects** (`y = x · Wᵀ + b`): burn keeps them `[in, out]`,
//! so [`export_safetensors`] transposes and [`read_safetensors`] transposes back, moving the
//! values without touching their bits. The `__metadata__` map (strings only, as safetensors
//! requires) holds the keys of [`MetaKey`]: `format`, `format_version`, `kind`, `input_dim`,
//! `hidden` (JSON list), `activation`, `output`, `score`, `layers` (JSON list, forward order),
//! `weight_layout`, `round`, `model_sha256`, `federation` and `encoder` (the encoder JSON).
//!
//! # burn
//!
//! [`export_burn`] writes burn's record format (burnpack, what `Module::save_file` writes) of
//! the model module, tensors named as burn names them (`layers.{i}.weight`, `[in, out]`);
//! [`burn_sidecar_json`] renders the same metadata as a JSON document to store beside it.

use std::collections::HashMap;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::autoencoder::AutoencoderConfig;
use crate::classifier::ClassifierConfig;
use crate::error::ModelError;
use crate::flat::{self, ParamSpan};
use crate::input::check_weights;
use crate::model::ModelConfig;

/// The `format` value of every fedsoc export.
pub const FORMAT: &str = "fedsoc-model";

/// Version of the export layout; readers refuse newer versions rather than misread them.
pub const FORMAT_VERSION: u32 = 1;

/// The activation between layers (the last layer is linear).
pub const ACTIVATION: &str = "relu";

/// The metadata keys of a safetensors export, in one place so writer, reader and docs agree.
pub struct MetaKey;

impl MetaKey {
    pub const FORMAT: &'static str = "format";
    pub const FORMAT_VERSION: &'static str = "format_version";
    pub const KIND: &'static str = "kind";
    pub const INPUT_DIM: &'static str = "input_dim";
    pub const HIDDEN: &'static str = "hidden";
    pub const ACTIVATION: &'static str = "activation";
    pub const OUTPUT: &'static str = "output";
    pub const SCORE: &'static str = "score";
    pub const LAYERS: &'static str = "layers";
    pub const WEIGHT_LAYOUT: &'static str = "weight_layout";
    pub const ROUND: &'static str = "round";
    pub const MODEL_SHA256: &'static str = "model_sha256";
    pub const FEDERATION: &'static str = "federation";
    pub const ENCODER: &'static str = "encoder";
}

/// What an export says about where the weights came from, beyond the architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportMeta {
    /// The federation's name.
    pub federation: String,
    /// The round whose global model this is (0: the initial model).
    pub round: u64,
    /// SHA-256 (hex) of the flat vector's little-endian bytes, as the coordinator records it.
    pub model_sha256: String,
    /// The federation's feature encoder (a `fedsoc_datasets::EncoderSpec` as JSON), so rows are
    /// encoded exactly as the participants encoded them.
    pub encoder_json: String,
}

/// SHA-256 (hex) of a flat vector's little-endian bytes: the coordinator's `model_sha256`.
pub fn flat_sha256(flat: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in flat {
        h.update(v.to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// The exported layer names (without `.weight`/`.bias`), in forward order.
pub fn layer_names(config: &ModelConfig) -> Vec<String> {
    match config {
        ModelConfig::Autoencoder(c) => {
            let k = c.hidden.len();
            (0..k)
                .map(|i| format!("encoder.{i}"))
                .chain((0..k).map(|i| format!("decoder.{i}")))
                .collect()
        }
        ModelConfig::Classifier(c) => (0..c.hidden.len())
            .map(|i| format!("hidden.{i}"))
            .chain(std::iter::once("output".to_string()))
            .collect(),
    }
}

/// How a model's output becomes an anomaly score (see [`crate::score`]).
fn score_name(config: &ModelConfig) -> &'static str {
    match config {
        ModelConfig::Autoencoder(_) => "reconstruction_mse",
        ModelConfig::Classifier(_) => "logit",
    }
}

fn hidden(config: &ModelConfig) -> &[usize] {
    match config {
        ModelConfig::Autoencoder(c) => &c.hidden,
        ModelConfig::Classifier(c) => &c.hidden,
    }
}

fn file_error(reason: impl Into<String>) -> ModelError {
    ModelError::ModelFile {
        reason: reason.into(),
    }
}

/// One linear layer: its export name and its weight and bias spans in the flat vector.
struct Layer<'a> {
    name: String,
    weight: &'a ParamSpan,
    bias: &'a ParamSpan,
    d_in: usize,
    d_out: usize,
}

/// Pairs the flat layout's spans (weight then bias per layer, see [`crate::flat`]) with the
/// export names.
fn layers<'a>(config: &ModelConfig, spans: &'a [ParamSpan]) -> Result<Vec<Layer<'a>>, ModelError> {
    let names = layer_names(config);
    if spans.len() != 2 * names.len() {
        return Err(ModelError::Backend(format!(
            "the flat layout has {} tensors for {} layers",
            spans.len(),
            names.len()
        )));
    }
    names
        .into_iter()
        .zip(spans.chunks_exact(2))
        .map(
            |(name, pair)| match (&pair[0].shape[..], &pair[1].shape[..]) {
                (&[d_in, d_out], &[b]) if b == d_out => Ok(Layer {
                    name,
                    weight: &pair[0],
                    bias: &pair[1],
                    d_in,
                    d_out,
                }),
                _ => Err(ModelError::Backend(format!(
                    "unexpected flat layout at {}: {:?} then {:?}",
                    pair[0].name, pair[0].shape, pair[1].shape
                ))),
            },
        )
        .collect()
}

/// Checks the weights, and that `meta` describes them, before anything is written.
fn check_export(config: &ModelConfig, flat: &[f32], meta: &ExportMeta) -> Result<(), ModelError> {
    check_weights(config, flat)?;
    let actual = flat_sha256(flat);
    if meta.model_sha256 != actual {
        return Err(file_error(format!(
            "the metadata names model_sha256 {} but the weights hash to {actual}; \
             export the round's model with the hash recorded for it",
            meta.model_sha256
        )));
    }
    serde_json::from_str::<serde_json::Value>(&meta.encoder_json).map_err(|e| {
        file_error(format!(
            "the encoder is not JSON ({e}); pass the federation's encoder JSON"
        ))
    })?;
    Ok(())
}

/// Serialises `flat` as a safetensors file (see the module docs for names, layout and
/// metadata). Fails on weights that do not fit `config`, non-finite weights, or a
/// `meta.model_sha256` that is not the hash of `flat`.
pub fn export_safetensors(
    config: &ModelConfig,
    flat: &[f32],
    meta: &ExportMeta,
) -> Result<Vec<u8>, ModelError> {
    check_export(config, flat, meta)?;
    let spans = flat::layout(config)?;
    let layers = layers(config, &spans)?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(spans.len());
    for layer in &layers {
        let w = &flat[layer.weight.offset..layer.weight.offset + layer.weight.len];
        tensors.push((
            format!("{}.weight", layer.name),
            vec![layer.d_out, layer.d_in],
            le_bytes(transpose(w, layer.d_in, layer.d_out)),
        ));
        let b = &flat[layer.bias.offset..layer.bias.offset + layer.bias.len];
        tensors.push((
            format!("{}.bias", layer.name),
            vec![layer.d_out],
            le_bytes(b.iter().copied()),
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| ModelError::Backend(format!("safetensors view of {name}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = layers.iter().map(|l| l.name.clone()).collect();
    safetensors::serialize(views, Some(safetensors_metadata(config, &names, meta)))
        .map_err(|e| ModelError::Backend(format!("writing safetensors: {e}")))
}

fn safetensors_metadata(
    config: &ModelConfig,
    layer_names: &[String],
    meta: &ExportMeta,
) -> HashMap<String, String> {
    // Lists of numbers or strings always serialise.
    let hidden_json = serde_json::to_string(hidden(config)).unwrap_or_default();
    let layers_json = serde_json::to_string(layer_names).unwrap_or_default();
    [
        (MetaKey::FORMAT, FORMAT.to_string()),
        (MetaKey::FORMAT_VERSION, FORMAT_VERSION.to_string()),
        (MetaKey::KIND, config.kind().to_string()),
        (MetaKey::INPUT_DIM, config.input_dim().to_string()),
        (MetaKey::HIDDEN, hidden_json),
        (MetaKey::ACTIVATION, ACTIVATION.to_string()),
        (MetaKey::OUTPUT, "linear".to_string()),
        (MetaKey::SCORE, score_name(config).to_string()),
        (MetaKey::LAYERS, layers_json),
        (MetaKey::WEIGHT_LAYOUT, "out_in".to_string()),
        (MetaKey::ROUND, meta.round.to_string()),
        (MetaKey::MODEL_SHA256, meta.model_sha256.clone()),
        (MetaKey::FEDERATION, meta.federation.clone()),
        (MetaKey::ENCODER, meta.encoder_json.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Reads a safetensors export back: the architecture, the flat vector (bit for bit what was
/// exported) and the metadata. Every problem (not safetensors, truncated, not a fedsoc export,
/// an unknown kind, a missing or misshapen tensor, weights that do not match their hash) is a
/// [`ModelError::ModelFile`] naming it.
pub fn read_safetensors(bytes: &[u8]) -> Result<(ModelConfig, Vec<f32>, ExportMeta), ModelError> {
    let (config, flat, meta) = read_safetensors_unverified(bytes)?;
    let actual = flat_sha256(&flat);
    if actual != meta.model_sha256 {
        return Err(file_error(format!(
            "the weights hash to {actual} but __metadata__ records model_sha256 {}; \
             the file was altered after export, export it again",
            meta.model_sha256
        )));
    }
    Ok((config, flat, meta))
}

/// [`read_safetensors`] without comparing the weights with the `model_sha256` the file itself
/// records, for a caller that checks them against a record it trusts more (a model bundle
/// checks the hash signed in the audit log, and names that record when they differ).
pub fn read_safetensors_unverified(
    bytes: &[u8],
) -> Result<(ModelConfig, Vec<f32>, ExportMeta), ModelError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| {
        file_error(format!(
            "not a readable safetensors file ({e}); it is truncated or corrupt, export it again"
        ))
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| file_error(format!("unreadable safetensors header ({e})")))?;
    let map = header.metadata().as_ref().ok_or_else(|| {
        file_error("the file has no __metadata__; it was not written by `fedsoc model export`")
    })?;
    let get = |key: &str| {
        map.get(key).map(String::as_str).ok_or_else(|| {
            file_error(format!(
                "no `{key}` in __metadata__; it was not written by `fedsoc model export`, \
                 or by an older version: export it again"
            ))
        })
    };
    let format = get(MetaKey::FORMAT)?;
    if format != FORMAT {
        return Err(file_error(format!(
            "__metadata__ format is {format:?}, not {FORMAT:?}; this is not a fedsoc export"
        )));
    }
    let version: u32 = parse(MetaKey::FORMAT_VERSION, get(MetaKey::FORMAT_VERSION)?)?;
    if version > FORMAT_VERSION {
        return Err(file_error(format!(
            "format_version {version} is newer than this fedsoc reads ({FORMAT_VERSION}); upgrade fedsoc"
        )));
    }
    let input_dim: usize = parse(MetaKey::INPUT_DIM, get(MetaKey::INPUT_DIM)?)?;
    let hidden: Vec<usize> = serde_json::from_str(get(MetaKey::HIDDEN)?).map_err(|e| {
        file_error(format!(
            "`hidden` in __metadata__ is not a list of widths ({e})"
        ))
    })?;
    let config = model_config(get(MetaKey::KIND)?, input_dim, hidden)?;
    let meta = ExportMeta {
        federation: get(MetaKey::FEDERATION)?.to_string(),
        round: parse(MetaKey::ROUND, get(MetaKey::ROUND)?)?,
        model_sha256: get(MetaKey::MODEL_SHA256)?.to_string(),
        encoder_json: get(MetaKey::ENCODER)?.to_string(),
    };
    let flat = read_tensors(&config, &file)?;
    Ok((config, flat, meta))
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ModelError> {
    value.parse().map_err(|_| {
        file_error(format!(
            "`{key}` in __metadata__ is {value:?}, not a number"
        ))
    })
}

/// The architecture named by a kind (`"autoencoder"` or `"classifier"`) and widths, as exports
/// and the audit log's `federation.created` record it; validated.
pub fn model_config(
    kind: &str,
    input_dim: usize,
    hidden: Vec<usize>,
) -> Result<ModelConfig, ModelError> {
    let config = match kind {
        "autoencoder" => ModelConfig::Autoencoder(AutoencoderConfig { input_dim, hidden }),
        "classifier" => ModelConfig::Classifier(ClassifierConfig { input_dim, hidden }),
        other => {
            return Err(file_error(format!(
                "unknown model kind {other:?} in __metadata__; this fedsoc reads \
                 \"autoencoder\" and \"classifier\" exports"
            )));
        }
    };
    config.validate()?;
    Ok(config)
}

/// The flat vector from the file's tensors, each checked by name, dtype and shape.
fn read_tensors(config: &ModelConfig, file: &SafeTensors) -> Result<Vec<f32>, ModelError> {
    let spans = flat::layout(config)?;
    let layers = layers(config, &spans)?;
    let expected = 2 * layers.len();
    if file.len() != expected {
        let known: Vec<String> = layers
            .iter()
            .flat_map(|l| [format!("{}.weight", l.name), format!("{}.bias", l.name)])
            .collect();
        let mut extra: Vec<&str> = file
            .names()
            .into_iter()
            .filter(|n| !known.iter().any(|k| k == n))
            .collect();
        extra.sort_unstable();
        return Err(file_error(format!(
            "the file holds {} tensors but a {} of these widths has {expected}{}; \
             the metadata and the tensors disagree, export it again",
            file.len(),
            config.kind(),
            if extra.is_empty() {
                String::new()
            } else {
                format!(" (unexpected: {})", extra.join(", "))
            }
        )));
    }
    let mut flat = Vec::new();
    for layer in &layers {
        let weight = tensor(
            file,
            &format!("{}.weight", layer.name),
            &[layer.d_out, layer.d_in],
        )?;
        flat.extend(transpose(&weight, layer.d_out, layer.d_in));
        flat.extend(tensor(
            file,
            &format!("{}.bias", layer.name),
            &[layer.d_out],
        )?);
    }
    check_weights(config, &flat)?;
    Ok(flat)
}

/// One tensor's values, after checking its dtype and shape.
fn tensor(file: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
    let view = file.tensor(name).map_err(|_| {
        file_error(format!(
            "tensor `{name}` is missing; the metadata and the tensors disagree, export it again"
        ))
    })?;
    if view.dtype() != Dtype::F32 {
        return Err(file_error(format!(
            "tensor `{name}` is {:?}, expected F32; do not convert the export's precision",
            view.dtype()
        )));
    }
    if view.shape() != shape {
        return Err(file_error(format!(
            "tensor `{name}` has shape {:?}, the metadata's architecture needs {shape:?}",
            view.shape()
        )));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// `[rows, cols]` row-major → `[cols, rows]` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

fn le_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// The model as burn's record (burnpack bytes): what `Module::save_file` would write, tensors
/// named `layers.{i}.weight` (`[in, out]`) and `layers.{i}.bias`.
pub fn export_burn(config: &ModelConfig, flat: &[f32]) -> Result<Vec<u8>, ModelError> {
    let model = flat::load(config, flat, &Device::flex())?;
    let bytes = model
        .into_record()
        .into_bytes()
        .map_err(|e| ModelError::Backend(format!("writing the burn record: {e}")))?;
    Ok(bytes.to_vec())
}

/// Reads a burn record written by [`export_burn`] into the flat vector, for `config` (take it
/// from the sidecar, see [`read_burn_sidecar`]).
pub fn read_burn(config: &ModelConfig, bytes: &[u8]) -> Result<Vec<f32>, ModelError> {
    config.validate()?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| {
        file_error(format!(
            "not a readable burn record ({e}); it is truncated or corrupt, export it again"
        ))
    })?;
    let model = config
        .skeleton(&Device::flex())
        .try_load_record(record)
        .map_err(|e| {
            file_error(format!(
                "the burn record does not fit a {} of these widths ({e}); \
                 use the sidecar JSON written with it",
                config.kind()
            ))
        })?;
    let flat = flat::to_flat(&model)?;
    check_weights(config, &flat)?;
    Ok(flat)
}

/// The sidecar of a burn export: the same facts as the safetensors metadata, as typed JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BurnSidecar {
    pub format: String,
    pub format_version: u32,
    /// Always `"burnpack"`: burn's record container.
    pub container: String,
    pub kind: String,
    pub input_dim: usize,
    pub hidden: Vec<usize>,
    pub activation: String,
    pub output: String,
    pub score: String,
    /// The record's tensors as burn names them, with their `[in, out]` / `[out]` shapes.
    pub tensors: Vec<SidecarTensor>,
    pub weight_layout: String,
    pub round: u64,
    pub model_sha256: String,
    pub federation: String,
    /// The encoder spec itself (not a string), for readability.
    pub encoder: serde_json::Value,
}

/// A tensor of the burn record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarTensor {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Renders the sidecar JSON of a burn export (pretty-printed).
pub fn burn_sidecar_json(
    config: &ModelConfig,
    flat: &[f32],
    meta: &ExportMeta,
) -> Result<String, ModelError> {
    check_export(config, flat, meta)?;
    let encoder = serde_json::from_str(&meta.encoder_json)
        .map_err(|e| file_error(format!("the encoder is not JSON ({e})")))?;
    let sidecar = BurnSidecar {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        container: "burnpack".into(),
        kind: config.kind().into(),
        input_dim: config.input_dim(),
        hidden: hidden(config).to_vec(),
        activation: ACTIVATION.into(),
        output: "linear".into(),
        score: score_name(config).into(),
        tensors: flat::layout(config)?
            .into_iter()
            .map(|s| SidecarTensor {
                name: s.name,
                shape: s.shape,
            })
            .collect(),
        weight_layout: "in_out".into(),
        round: meta.round,
        model_sha256: meta.model_sha256.clone(),
        federation: meta.federation.clone(),
        encoder,
    };
    serde_json::to_string_pretty(&sidecar)
        .map_err(|e| ModelError::Backend(format!("sidecar to JSON: {e}")))
}

/// Reads a burn export's sidecar: the architecture to load the record into, and the metadata
/// (the encoder re-serialised compactly).
pub fn read_burn_sidecar(text: &str) -> Result<(ModelConfig, ExportMeta), ModelError> {
    let sidecar: BurnSidecar = serde_json::from_str(text)
        .map_err(|e| file_error(format!("the sidecar JSON is unreadable ({e})")))?;
    if sidecar.format != FORMAT || sidecar.format_version > FORMAT_VERSION {
        return Err(file_error(format!(
            "the sidecar is {:?} version {}, this fedsoc reads {FORMAT:?} up to version {FORMAT_VERSION}",
            sidecar.format, sidecar.format_version
        )));
    }
    let config = model_config(&sidecar.kind, sidecar.input_dim, sidecar.hidden)?;
    let meta = ExportMeta {
        federation: sidecar.federation,
        round: sidecar.round,
        model_sha256: sidecar.model_sha256,
        encoder_json: sidecar.encoder.to_string(),
    };
    Ok((config, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flat::initial_weights;

    fn autoencoder() -> ModelConfig {
        AutoencoderConfig {
            input_dim: 5,
            hidden: vec![4, 2],
        }
        .into()
    }

    fn classifier() -> ModelConfig {
        ClassifierConfig {
            input_dim: 5,
            hidden: vec![3],
        }
        .into()
    }

    fn meta(flat: &[f32]) -> ExportMeta {
        ExportMeta {
            federation: "eu-soc".into(),
            round: 7,
            model_sha256: flat_sha256(flat),
            encoder_json: r#"{"numeric":[],"categorical":[]}"#.into(),
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Weights with awkward values, so "exact" means bit for bit.
    fn awkward(config: &ModelConfig) -> Vec<f32> {
        let mut flat = initial_weights(config, 11).unwrap();
        flat[0] = -0.0;
        flat[1] = f32::MIN_POSITIVE / 2.0;
        flat[2] = f32::MAX;
        flat
    }

    #[test]
    fn safetensors_round_trip_is_bit_exact() {
        for config in [autoencoder(), classifier()] {
            let flat = awkward(&config);
            let bytes = export_safetensors(&config, &flat, &meta(&flat)).unwrap();
            let (back_config, back, back_meta) = read_safetensors(&bytes).unwrap();
            assert_eq!(back_config, config);
            assert_eq!(bits(&back), bits(&flat));
            assert_eq!(back_meta, meta(&flat));
        }
    }

    #[test]
    fn safetensors_tensors_are_pytorch_shaped_and_transposed() {
        let config = autoencoder();
        let flat = awkward(&config);
        let bytes = export_safetensors(&config, &flat, &meta(&flat)).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "decoder.0.bias",
                "decoder.0.weight",
                "decoder.1.bias",
                "decoder.1.weight",
                "encoder.0.bias",
                "encoder.0.weight",
                "encoder.1.bias",
                "encoder.1.weight"
            ]
        );
        // encoder.0: burn [5, 4] → PyTorch [4, 5]; W_pt[o][i] = W_burn[i][o].
        let w = file.tensor("encoder.0.weight").unwrap();
        assert_eq!(w.shape(), [4, 5]);
        let at = |o: usize, i: usize| {
            let k = 4 * (o * 5 + i);
            f32::from_le_bytes(w.data()[k..k + 4].try_into().unwrap())
        };
        assert_eq!(at(1, 2).to_bits(), flat[2 * 4 + 1].to_bits());
        assert_eq!(at(3, 4).to_bits(), flat[4 * 4 + 3].to_bits());
        assert_eq!(file.tensor("decoder.1.weight").unwrap().shape(), [5, 4]);
        assert_eq!(file.tensor("decoder.1.bias").unwrap().shape(), [5]);

        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let m = header.metadata().as_ref().unwrap();
        assert_eq!(m["format"], "fedsoc-model");
        assert_eq!(m["kind"], "autoencoder");
        assert_eq!(m["input_dim"], "5");
        assert_eq!(m["hidden"], "[4,2]");
        assert_eq!(m["activation"], "relu");
        assert_eq!(m["round"], "7");
        assert_eq!(
            m["layers"],
            r#"["encoder.0","encoder.1","decoder.0","decoder.1"]"#
        );
    }

    #[test]
    fn classifier_names_end_in_the_output_layer() {
        assert_eq!(layer_names(&classifier()), ["hidden.0", "output"]);
        let logistic: ModelConfig = ClassifierConfig {
            input_dim: 3,
            hidden: vec![],
        }
        .into();
        assert_eq!(layer_names(&logistic), ["output"]);
        let flat = initial_weights(&logistic, 1).unwrap();
        let bytes = export_safetensors(&logistic, &flat, &meta(&flat)).unwrap();
        assert_eq!(bits(&read_safetensors(&bytes).unwrap().1), bits(&flat));
    }

    #[test]
    fn export_refuses_bad_input() {
        let config = autoencoder();
        let flat = awkward(&config);
        let short = &flat[1..];
        assert!(matches!(
            export_safetensors(&config, short, &meta(short)),
            Err(ModelError::WeightLength { .. })
        ));
        let mut wrong = meta(&flat);
        wrong.model_sha256 = "00".into();
        let err = export_safetensors(&config, &flat, &wrong)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model_sha256"), "{err}");
        let mut nan = flat.clone();
        nan[3] = f32::NAN;
        assert!(matches!(
            export_safetensors(&config, &nan, &meta(&nan)),
            Err(ModelError::NonFiniteWeights { index: 3 })
        ));
    }

    #[test]
    fn short_or_corrupt_files_are_errors_naming_the_problem() {
        let config = autoencoder();
        let flat = awkward(&config);
        let bytes = export_safetensors(&config, &flat, &meta(&flat)).unwrap();
        let msg = |b: &[u8]| read_safetensors(b).unwrap_err().to_string();

        for cut in [0, 3, 8, 40, bytes.len() - 1] {
            let m = msg(&bytes[..cut]);
            assert!(m.contains("truncated or corrupt"), "cut {cut}: {m}");
        }
        assert!(msg(b"not a model at all, just text").contains("safetensors"));

        // A flipped weight bit: the file parses, the hash does not match.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        assert!(msg(&flipped).contains("altered after export"));
    }

    /// Rewrites one metadata value of an export (keeping it valid safetensors).
    fn with_meta(bytes: &[u8], key: &str, value: Option<&str>) -> Vec<u8> {
        let file = SafeTensors::deserialize(bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
        let mut m = header.metadata().clone().unwrap();
        match value {
            Some(v) => m.insert(key.to_string(), v.to_string()),
            None => m.remove(key),
        };
        safetensors::serialize(file.tensors(), Some(m)).unwrap()
    }

    #[test]
    fn metadata_problems_are_named() {
        let config = autoencoder();
        let flat = awkward(&config);
        let bytes = export_safetensors(&config, &flat, &meta(&flat)).unwrap();
        let msg = |b: Vec<u8>| read_safetensors(&b).unwrap_err().to_string();
        assert!(
            msg(with_meta(&bytes, "kind", Some("forest")))
                .contains("unknown model kind \"forest\"")
        );
        assert!(msg(with_meta(&bytes, "encoder", None)).contains("no `encoder`"));
        assert!(msg(with_meta(&bytes, "format_version", Some("99"))).contains("newer"));
        assert!(msg(with_meta(&bytes, "input_dim", Some("x"))).contains("not a number"));
        // The classifier reading of an autoencoder's tensors: wrong count.
        assert!(msg(with_meta(&bytes, "kind", Some("classifier"))).contains("tensors"));
        // Wider input than the tensors hold.
        assert!(msg(with_meta(&bytes, "input_dim", Some("6"))).contains("shape"));
        let bare =
            safetensors::serialize(SafeTensors::deserialize(&bytes).unwrap().tensors(), None)
                .unwrap();
        assert!(msg(bare).contains("no __metadata__"));
    }

    #[test]
    fn burn_record_round_trip_is_bit_exact() {
        for config in [autoencoder(), classifier()] {
            let flat = awkward(&config);
            let bytes = export_burn(&config, &flat).unwrap();
            let sidecar = burn_sidecar_json(&config, &flat, &meta(&flat)).unwrap();
            let (back_config, back_meta) = read_burn_sidecar(&sidecar).unwrap();
            assert_eq!(back_config, config);
            assert_eq!(back_meta.model_sha256, flat_sha256(&flat));
            assert_eq!(back_meta.round, 7);
            let back = read_burn(&back_config, &bytes).unwrap();
            assert_eq!(bits(&back), bits(&flat));
        }
    }

    #[test]
    fn burn_record_errors_are_named() {
        let config = autoencoder();
        let flat = awkward(&config);
        let bytes = export_burn(&config, &flat).unwrap();
        let err = read_burn(&config, &bytes[..bytes.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("burn record"), "{err}");
        let err = read_burn(&classifier(), &bytes).unwrap_err().to_string();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn sha_matches_the_coordinators_definition() {
        // SHA-256 of the empty input, and of 1.0f32 little-endian (00 00 80 3f).
        assert_eq!(
            flat_sha256(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Sha256::new();
        h.update([0x00, 0x00, 0x80, 0x3f]);
        assert_eq!(flat_sha256(&[1.0]), hex::encode(h.finalize()));
    }
}
