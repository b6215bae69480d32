//! LoRA adapters on the language decoder's linear layers, in PEFT's format.
//!
//! A projection `y = x·W + b` with an adapter becomes
//! `y = x·W + b + s · dropout(x)·A·B`, with `A` `[in, r]`, `B` `[r, out]`
//! (Burn's row-vector orientation; PEFT stores `lora_A.weight` `[r, in]`
//! and `lora_B.weight` `[out, r]`, the transposes), `s = α / r`, or
//! `α / √r` with rsLoRA. PEFT's initialisation: `A` Kaiming-uniform
//! (bound `1/√in`), `B` zero, so a fresh adapter leaves the model unchanged.
//!
//! Only the decoder's `q,k,v,o,gate,up,down` projections take adapters (by
//! default all seven, as LCO-Emb's released code); the vision tower, merger
//! and embeddings stay frozen. Saved adapters are PEFT folders
//! (`adapter_config.json`, `adapter_model.safetensors`, keys
//! `base_model.model.model.language_model.layers.N.self_attn.q_proj.lora_A.weight`,
//! transformers ≥ 4.52's module tree); the older tree
//! (`base_model.model.model.layers.N…`) loads as well.

use std::collections::BTreeMap;
use std::path::Path;

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::checkpoint::load::canonical_key;
use super::decoder::TextModel;
use crate::error::{GeomError, Result};

/// The projections LCO-Emb adapts (every linear layer of the decoder).
pub const DEFAULT_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Rank, scaling, dropout and targets of the adapters.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank r.
    pub r: usize,
    /// α: the update is scaled by α / r (α / √r with rsLoRA).
    pub alpha: f64,
    /// Dropout on the adapter's input while training.
    pub dropout: f64,
    /// Projection names to adapt (`q_proj`, ..., `down_proj`).
    pub targets: Vec<String>,
    /// rsLoRA scaling α / √r.
    pub rslora: bool,
}

impl Default for LoraConfig {
    /// LCO-Emb's released training code: r 64, α 128, dropout 0.05, every
    /// decoder projection.
    fn default() -> Self {
        Self {
            r: 64,
            alpha: 128.0,
            dropout: 0.05,
            targets: DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect(),
            rslora: false,
        }
    }
}

impl LoraConfig {
    /// The factor on `x·A·B`.
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// Checks the values and the target names.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(GeomError::invalid("LoRA rank r must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(GeomError::invalid(format!(
                "LoRA dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        if self.targets.is_empty() {
            return Err(GeomError::invalid("no LoRA target modules"));
        }
        for t in &self.targets {
            if !DEFAULT_TARGETS.contains(&t.as_str()) {
                return Err(GeomError::invalid(format!(
                    "LoRA target '{t}': the decoder's projections are {}",
                    DEFAULT_TARGETS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// One adapter: `s · dropout(x)·A·B`.
#[derive(Debug, Clone)]
pub struct Lora<B: Backend> {
    /// `[in, r]`.
    pub a: Tensor<B, 2>,
    /// `[r, out]`.
    pub b: Tensor<B, 2>,
    /// The factor `s`.
    pub scale: f64,
    /// Dropout probability on the input, applied only while `training`.
    pub dropout: f64,
    /// Training mode (dropout on).
    pub training: bool,
}

impl<B: Backend> Lora<B> {
    /// `[rows, in]` → `[rows, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = if self.training && self.dropout > 0.0 {
            let keep = 1.0 - self.dropout;
            let mask = x.random_like(Distribution::Bernoulli(keep));
            x * mask / keep
        } else {
            x
        };
        x.matmul(self.a.clone()).matmul(self.b.clone()) * self.scale
    }
}

/// A linear projection with an optional LoRA adapter.
#[derive(Debug)]
pub struct Proj<B: Backend> {
    /// The frozen base layer (`[in, out]` weight).
    pub linear: Linear<B>,
    /// The adapter, when one is attached.
    pub lora: Option<Lora<B>>,
}

impl<B: Backend> Proj<B> {
    /// A projection without adapter.
    pub fn new(linear: Linear<B>) -> Self {
        Self { linear, lora: None }
    }

    /// `[rows, in]` → `[rows, out]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.lora {
            None => self.linear.forward(x),
            Some(l) => self.linear.forward(x.clone()) + l.forward(x),
        }
    }

    /// `(in, out)`.
    pub fn dims(&self) -> (usize, usize) {
        let [i, o] = self.linear.weight.val().dims();
        (i, o)
    }
}

impl<B: Backend> TextModel<B> {
    /// Every projection that can take an adapter, with its module path
    /// (`model.layers.3.mlp.up_proj`, the canonical checkpoint naming).
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Proj<B>)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let a = &mut layer.self_attn;
            let p = format!("model.layers.{i}.self_attn");
            out.push((format!("{p}.q_proj"), &mut a.q_proj));
            out.push((format!("{p}.k_proj"), &mut a.k_proj));
            out.push((format!("{p}.v_proj"), &mut a.v_proj));
            out.push((format!("{p}.o_proj"), &mut a.o_proj));
            let m = &mut layer.mlp;
            let p = format!("model.layers.{i}.mlp");
            out.push((format!("{p}.gate_proj"), &mut m.gate_proj));
            out.push((format!("{p}.up_proj"), &mut m.up_proj));
            out.push((format!("{p}.down_proj"), &mut m.down_proj));
        }
        out
    }

    /// Attaches fresh adapters (PEFT's initialisation, seeded through the
    /// backend's RNG: `B::seed` first for reproducibility) to the targets;
    /// returns how many.
    pub fn attach_lora(&mut self, cfg: &LoraConfig, device: &B::Device) -> Result<usize> {
        cfg.validate()?;
        let mut n = 0;
        for (name, proj) in self.projections_mut() {
            if !targeted(cfg, &name) {
                continue;
            }
            let (d_in, d_out) = proj.dims();
            let bound = 1.0 / (d_in as f64).sqrt();
            let a =
                Tensor::<B, 2>::random([d_in, cfg.r], Distribution::Uniform(-bound, bound), device);
            let b = Tensor::<B, 2>::zeros([cfg.r, d_out], device);
            proj.lora = Some(Lora {
                a,
                b,
                scale: cfg.scale(),
                dropout: cfg.dropout,
                training: false,
            });
            n += 1;
        }
        Ok(n)
    }

    /// Attaches the adapters of a loaded PEFT adapter (every adapter must
    /// find its projection, with matching shapes).
    pub fn attach_adapter(&mut self, adapter: &Adapter, device: &B::Device) -> Result<usize> {
        let mut by_name: BTreeMap<String, &mut Proj<B>> =
            self.projections_mut().into_iter().collect();
        for (module, w) in &adapter.modules {
            let proj = by_name.get_mut(module).ok_or_else(|| {
                GeomError::invalid(format!(
                    "{}: adapter for '{module}', which is not a decoder projection of this model",
                    adapter.source
                ))
            })?;
            let (d_in, d_out) = proj.dims();
            if w.d_in != d_in || w.d_out != d_out {
                return Err(GeomError::invalid(format!(
                    "{}: '{module}' adapts [{} → {}] but the model's projection is [{d_in} → {d_out}]",
                    adapter.source, w.d_in, w.d_out
                )));
            }
            // PEFT's [r, in] and [out, r] → Burn's [in, r] and [r, out].
            let a = transpose(&w.a, w.r, w.d_in);
            let b = transpose(&w.b, w.d_out, w.r);
            proj.lora = Some(Lora {
                a: Tensor::from_data(TensorData::new(a, [w.d_in, w.r]), device),
                b: Tensor::from_data(TensorData::new(b, [w.r, w.d_out]), device),
                scale: adapter.scale_of(w.r),
                dropout: adapter.config.lora_dropout,
                training: false,
            });
        }
        Ok(adapter.modules.len())
    }

    /// Turns adapter dropout on (training) or off.
    pub fn set_lora_training(&mut self, training: bool) {
        for (_, p) in self.projections_mut() {
            if let Some(l) = p.lora.as_mut() {
                l.training = training;
            }
        }
    }

    /// The attached adapters as a host-side [`Adapter`] (PEFT layout).
    pub fn adapter(&mut self, cfg: &LoraConfig, base_model: &str) -> Result<Adapter> {
        let mut modules = BTreeMap::new();
        for (name, p) in self.projections_mut() {
            let Some(l) = &p.lora else { continue };
            let [d_in, r] = l.a.dims();
            let [_, d_out] = l.b.dims();
            let a = host(l.a.clone())?;
            let b = host(l.b.clone())?;
            modules.insert(
                name,
                AdapterWeights {
                    r,
                    d_in,
                    d_out,
                    a: transpose(&a, d_in, r),
                    b: transpose(&b, r, d_out),
                },
            );
        }
        Ok(Adapter {
            config: AdapterConfig::from_lora(cfg, base_model),
            modules,
            source: "(in memory)".into(),
            tree: ModuleTree::default(),
        })
    }
}

fn targeted(cfg: &LoraConfig, module: &str) -> bool {
    let last = module.rsplit('.').next().unwrap_or(module);
    cfg.targets.iter().any(|t| t == last)
}

fn host<B: Backend>(t: Tensor<B, 2>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| GeomError::invalid(format!("cannot read an adapter back: {e:?}")))
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
pub(crate) fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; x.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = x[i * cols + j];
        }
    }
    t
}

/// `adapter_config.json`: the PEFT fields geom reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// Always `LORA`.
    #[serde(default = "lora_type")]
    pub peft_type: String,
    /// Rank.
    pub r: usize,
    /// α.
    pub lora_alpha: f64,
    /// Dropout.
    #[serde(default)]
    pub lora_dropout: f64,
    /// rsLoRA scaling.
    #[serde(default)]
    pub use_rslora: bool,
    /// Target modules: a list of names, or a regex string.
    #[serde(default)]
    pub target_modules: serde_json::Value,
    /// Base checkpoint the adapter was trained on.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Must be `none`.
    #[serde(default = "none")]
    pub bias: String,
    /// Must be false (Conv1D-style weights are not used by Qwen2).
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// DoRA: not supported.
    #[serde(default)]
    pub use_dora: bool,
    /// Per-module ranks (read from the tensors' shapes instead).
    #[serde(default)]
    pub rank_pattern: serde_json::Map<String, serde_json::Value>,
    /// Per-module α: not supported when non-empty.
    #[serde(default)]
    pub alpha_pattern: serde_json::Map<String, serde_json::Value>,
    /// `FEATURE_EXTRACTION` for geom's adapters.
    #[serde(default)]
    pub task_type: Option<String>,
}

fn lora_type() -> String {
    "LORA".into()
}
fn none() -> String {
    "none".into()
}

impl AdapterConfig {
    fn from_lora(cfg: &LoraConfig, base_model: &str) -> Self {
        Self {
            peft_type: "LORA".into(),
            r: cfg.r,
            lora_alpha: cfg.alpha,
            lora_dropout: cfg.dropout,
            use_rslora: cfg.rslora,
            target_modules: json!(cfg.targets),
            base_model_name_or_path: Some(base_model.to_string()),
            bias: "none".into(),
            fan_in_fan_out: false,
            use_dora: false,
            rank_pattern: Default::default(),
            alpha_pattern: Default::default(),
            task_type: Some("FEATURE_EXTRACTION".into()),
        }
    }
}

/// The weights of one adapted projection, PEFT orientation.
#[derive(Debug, Clone)]
pub struct AdapterWeights {
    /// Rank.
    pub r: usize,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
    /// `lora_A.weight`, `[r, in]` row-major.
    pub a: Vec<f32>,
    /// `lora_B.weight`, `[out, r]` row-major.
    pub b: Vec<f32>,
}

impl AdapterWeights {
    /// `scale · B·A`, `[out, in]` row-major: what merging adds to the weight.
    pub fn delta(&self, scale: f64) -> Vec<f32> {
        let (r, n_in, n_out) = (self.r, self.d_in, self.d_out);
        let mut d = vec![0f32; n_out * n_in];
        for o in 0..n_out {
            let row = &mut d[o * n_in..(o + 1) * n_in];
            for k in 0..r {
                let bk = self.b[o * r + k] as f64 * scale;
                let a = &self.a[k * n_in..(k + 1) * n_in];
                for (x, &y) in row.iter_mut().zip(a) {
                    *x += (bk * y as f64) as f32;
                }
            }
        }
        d
    }
}

/// How PEFT names the decoder's modules, which depends on the model class
/// it wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModuleTree {
    /// `model.language_model.layers.N…`: Qwen2.5-VL in transformers ≥ 4.52.
    #[default]
    LanguageModel,
    /// `model.layers.N…`: Qwen2.5-Omni's thinker (LCO-Embedding-Omni's
    /// adapters, `Qwen2_5OmniThinkerForConditionalGeneration` wrapped), and
    /// Qwen2.5-VL before transformers 4.52.
    Model,
}

/// A LoRA adapter on the host: config and per-module weights, keyed by the
/// module's canonical path (`model.layers.0.self_attn.q_proj`).
#[derive(Debug, Clone)]
pub struct Adapter {
    /// `adapter_config.json`.
    pub config: AdapterConfig,
    /// Module path → weights.
    pub modules: BTreeMap<String, AdapterWeights>,
    /// Where it was read from (for messages).
    pub source: String,
    /// The PEFT module tree its keys are written in (read from the keys of a
    /// loaded adapter).
    pub tree: ModuleTree,
}

impl Adapter {
    /// The scale of a module of rank `r`.
    pub fn scale_of(&self, r: usize) -> f64 {
        if self.config.use_rslora {
            self.config.lora_alpha / (r as f64).sqrt()
        } else {
            self.config.lora_alpha / r as f64
        }
    }

    /// Reads a PEFT adapter folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| GeomError::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let config: AdapterConfig = serde_json::from_str(&text).map_err(|e| {
            GeomError::invalid(format!(
                "{}: not a PEFT adapter config: {e}",
                cfg_path.display()
            ))
        })?;
        let what = cfg_path.display();
        if config.peft_type != "LORA" {
            return Err(GeomError::invalid(format!(
                "{what}: peft_type is {} (geom reads LORA adapters)",
                config.peft_type
            )));
        }
        if config.use_dora || config.fan_in_fan_out || config.bias != "none" {
            return Err(GeomError::invalid(format!(
                "{what}: DoRA, fan_in_fan_out and trained biases are not supported (use_dora = {}, fan_in_fan_out = {}, bias = {})",
                config.use_dora, config.fan_in_fan_out, config.bias
            )));
        }
        if !config.alpha_pattern.is_empty() {
            return Err(GeomError::invalid(format!(
                "{what}: per-module alpha_pattern is not supported"
            )));
        }
        let st_path = dir.join("adapter_model.safetensors");
        let bytes = std::fs::read(&st_path).map_err(|source| GeomError::Io {
            path: st_path.clone(),
            source,
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| {
            GeomError::invalid(format!(
                "{}: not a safetensors file: {e}",
                st_path.display()
            ))
        })?;
        let mut halves: BTreeMap<String, [Option<Half>; 2]> = BTreeMap::new();
        let tree = if st.names().iter().any(|n| n.contains(".language_model.")) {
            ModuleTree::LanguageModel
        } else {
            ModuleTree::Model
        };
        for name in st.names() {
            let (module, which) = if let Some(m) = name.strip_suffix(".lora_A.weight") {
                (m, 0)
            } else if let Some(m) = name.strip_suffix(".lora_B.weight") {
                (m, 1)
            } else {
                return Err(GeomError::invalid(format!(
                    "{}: unexpected tensor '{name}' (expected …lora_A.weight / …lora_B.weight)",
                    st_path.display()
                )));
            };
            let module = module.strip_prefix("base_model.model.").unwrap_or(module);
            let module = canonical_key(&format!("{module}.weight"));
            let module = module.trim_end_matches(".weight").to_string();
            let view = st
                .tensor(name)
                .map_err(|e| GeomError::invalid(format!("{}: {name}: {e}", st_path.display())))?;
            halves.entry(module).or_default()[which] = Some((
                to_f32(view.dtype(), view.data(), name)?,
                view.shape().to_vec(),
            ));
        }
        let mut modules = BTreeMap::new();
        for (module, [a, b]) in halves {
            let (Some((a, sa)), Some((b, sb))) = (a, b) else {
                return Err(GeomError::invalid(format!(
                    "{}: '{module}' has only one of lora_A / lora_B",
                    st_path.display()
                )));
            };
            if sa.len() != 2 || sb.len() != 2 || sa[0] != sb[1] {
                return Err(GeomError::invalid(format!(
                    "{}: '{module}': lora_A {sa:?} and lora_B {sb:?} do not make [out, r]·[r, in]",
                    st_path.display()
                )));
            }
            modules.insert(
                module,
                AdapterWeights {
                    r: sa[0],
                    d_in: sa[1],
                    d_out: sb[0],
                    a,
                    b,
                },
            );
        }
        if modules.is_empty() {
            return Err(GeomError::invalid(format!(
                "{}: no LoRA tensors",
                st_path.display()
            )));
        }
        Ok(Self {
            config,
            modules,
            source: dir.display().to_string(),
            tree,
        })
    }

    /// Writes a PEFT adapter folder (`adapter_config.json`,
    /// `adapter_model.safetensors`, transformers ≥ 4.52 key names).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| GeomError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
        for (module, w) in &self.modules {
            let key = peft_key(module, self.tree);
            tensors.push((
                format!("{key}.lora_A.weight"),
                le_bytes(&w.a),
                vec![w.r, w.d_in],
            ));
            tensors.push((
                format!("{key}.lora_B.weight"),
                le_bytes(&w.b),
                vec![w.d_out, w.r],
            ));
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(k, bytes, shape)| {
                let v = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .expect("shape matches the data");
                (k.clone(), v)
            })
            .collect();
        let meta = Some(std::collections::HashMap::from([(
            "format".to_string(),
            "pt".to_string(),
        )]));
        let st = dir.join("adapter_model.safetensors");
        let tmp = dir.join("adapter_model.safetensors.tmp");
        safetensors::serialize_to_file(views, meta, &tmp)
            .map_err(|e| GeomError::invalid(format!("{}: {e}", st.display())))?;
        std::fs::rename(&tmp, &st).map_err(|source| GeomError::Io {
            path: st.clone(),
            source,
        })?;
        // Full module names in `target_modules`: short names (`q_proj`) would
        // also make PEFT wrap the vision tower's MLP and the audio encoder's
        // attention, which geom never adapts.
        let mut config = self.config.clone();
        config.target_modules = json!(self
            .modules
            .keys()
            .map(|m| peft_module(m, self.tree))
            .collect::<Vec<_>>());
        let cfg = dir.join("adapter_config.json");
        std::fs::write(
            &cfg,
            serde_json::to_string_pretty(&config).expect("serialisable"),
        )
        .map_err(|source| GeomError::Io { path: cfg, source })
    }
}

/// Writes `base` with the adapter merged into its weights
/// (`W + s·B·A`, PEFT's `merge_and_unload`) as a full checkpoint folder at
/// `out`: the base's shards, dtypes and other files (config, tokenizer,
/// templates), which geom and transformers both load. Every adapted module
/// must exist in the base with the adapter's shape.
pub fn merge_adapter(
    base: &Path,
    adapter: &Adapter,
    out: &Path,
    progress: bool,
) -> Result<crate::checkpoint::rewrite::RewriteReport> {
    let mut used = std::collections::BTreeSet::new();
    let report = crate::checkpoint::rewrite::rewrite_checkpoint_with(
        base,
        out,
        |key, shape, values| {
            let canon = canonical_key(key);
            let Some(module) = canon.strip_suffix(".weight") else {
                return Ok(None);
            };
            let Some(w) = adapter.modules.get(module) else {
                return Ok(None);
            };
            if shape != [w.d_out, w.d_in] {
                return Err(GeomError::invalid(format!(
                    "{}: '{module}' adapts [{}, {}] but {} holds {key} as {shape:?}",
                    adapter.source,
                    w.d_out,
                    w.d_in,
                    base.display()
                )));
            }
            used.insert(module.to_string());
            let delta = w.delta(adapter.scale_of(w.r));
            Ok(Some(
                values.iter().zip(&delta).map(|(a, d)| a + d).collect(),
            ))
        },
        progress,
    )?;
    if let Some(missing) = adapter.modules.keys().find(|m| !used.contains(*m)) {
        let _ = std::fs::remove_dir_all(out);
        return Err(GeomError::invalid(format!(
            "{}: adapted module '{missing}' is not in {} (was the adapter trained on another model?)",
            adapter.source,
            base.display()
        )));
    }
    Ok(report)
}

/// One of lora_A / lora_B: values and shape.
type Half = (Vec<f32>, Vec<usize>);

/// PEFT's key of a module path (`model.layers.0.mlp.up_proj` →
/// `base_model.model.model.language_model.layers.0.mlp.up_proj` in the
/// language-model tree).
fn peft_key(module: &str, tree: ModuleTree) -> String {
    format!("base_model.model.{}", peft_module(module, tree))
}

/// A canonical module path as PEFT names it inside the model
/// (`model.language_model.layers.0.self_attn.q_proj`, or unchanged in the
/// flat tree): the names `rank_pattern` and `target_modules` match.
pub(crate) fn peft_module(module: &str, tree: ModuleTree) -> String {
    match tree {
        ModuleTree::LanguageModel => module
            .strip_prefix("model.")
            .map(|rest| format!("model.language_model.{rest}"))
            .unwrap_or_else(|| module.to_string()),
        ModuleTree::Model => module.to_string(),
    }
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn to_f32(dtype: Dtype, bytes: &[u8], name: &str) -> Result<Vec<f32>> {
    crate::checkpoint::load::decode_f32(dtype, bytes).ok_or_else(|| {
        GeomError::invalid(format!(
            "adapter tensor '{name}' has dtype {dtype:?} (expected F32, BF16 or F16)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_keys_round_trip_through_the_canonical_names() {
        assert_eq!(
            peft_key("model.layers.3.self_attn.q_proj", ModuleTree::Model),
            "base_model.model.model.layers.3.self_attn.q_proj"
        );
        let k = peft_key("model.layers.3.self_attn.q_proj", ModuleTree::LanguageModel);
        assert_eq!(
            k,
            "base_model.model.model.language_model.layers.3.self_attn.q_proj"
        );
        let back = canonical_key(&format!(
            "{}.weight",
            k.strip_prefix("base_model.model.").unwrap()
        ));
        assert_eq!(back, "model.layers.3.self_attn.q_proj.weight");
        // The pre-4.52 tree names the same module.
        assert_eq!(
            canonical_key("model.layers.3.self_attn.q_proj.weight"),
            "model.layers.3.self_attn.q_proj.weight"
        );
    }

    #[test]
    fn delta_is_scaled_b_times_a() {
        let w = AdapterWeights {
            r: 1,
            d_in: 2,
            d_out: 2,
            a: vec![1.0, 2.0],
            b: vec![3.0, 4.0],
        };
        assert_eq!(w.delta(0.5), vec![1.5, 3.0, 2.0, 4.0]);
        let cfg = LoraConfig {
            r: 4,
            alpha: 8.0,
            rslora: true,
            ..Default::default()
        };
        assert_eq!(cfg.scale(), 4.0);
        assert!(LoraConfig {
            targets: vec!["qkv".into()],
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
