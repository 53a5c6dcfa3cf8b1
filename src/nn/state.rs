//! State dicts: a module's parameters and buffers by dotted name, as PyTorch's
//! `module.state_dict()` and `load_state_dict(dict, strict)`, and their safetensors files.
//!
//! A state dict holds weights only; a training checkpoint that also keeps the optimizer's
//! state and the epoch is [`crate::train::checkpoint`] (the same file format, read and written
//! by the same code).

use super::{Module, Param, Part, flatten};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Name → tensor, in insertion order (a module's: declaration order, parameters and buffers
/// interleaved as its fields are), as PyTorch's `OrderedDict` state dict.
///
/// The tensors of [`ModuleExt::state_dict`](super::ModuleExt::state_dict) share the module's
/// storage (no copy): reading them is free, and the module's later in-place updates do not
/// show through them (in-place ops copy shared storage first).
#[derive(Clone, Default)]
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> StateDict {
        StateDict::default()
    }

    /// Sets `name` to `tensor`; an existing entry keeps its place and its old tensor is
    /// returned.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => Some(std::mem::replace(&mut self.entries[i].1, tensor)),
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, tensor));
                None
            }
        }
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    /// Removes `name` (e.g. a classifier head before fine-tuning), returning its tensor.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        let i = self.index.remove(name)?;
        let (_, t) = self.entries.remove(i);
        for v in self.index.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        Some(t)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// `(name, tensor)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Writes the tensors, each in its dtype, to a safetensors file at `path` (atomically: a
    /// temporary file renamed into place). The file has no wgnn-specific metadata, so other
    /// safetensors readers (PyTorch's `safetensors.torch.load_file`) read it as it is.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let tensors: Vec<(String, Tensor)> = self
            .entries
            .iter()
            .map(|(n, t)| (n.clone(), t.detach()))
            .collect();
        crate::train::checkpoint::write_safetensors(path.as_ref(), &tensors, meta)
    }

    /// Reads every tensor of a safetensors file (F32, F16 or U32) onto the CPU, in the order
    /// of their data in the file. Any safetensors file will do, a wgnn training checkpoint
    /// included (its optimizer state is then under `optim.`).
    pub fn load(path: impl AsRef<Path>) -> Result<StateDict> {
        let (_, tensors) = crate::train::checkpoint::read_safetensors(path.as_ref())?;
        Ok(tensors.into_iter().collect())
    }
}

impl FromIterator<(String, Tensor)> for StateDict {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> StateDict {
        let mut d = StateDict::new();
        for (n, t) in iter {
            d.insert(n, t);
        }
        d
    }
}

impl IntoIterator for StateDict {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl std::fmt::Debug for StateDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(n, t)| (n, t.shape().to_string())))
            .finish()
    }
}

/// What [`ModuleExt::load_state_dict`](super::ModuleExt::load_state_dict) did not load (PyTorch's
/// `_IncompatibleKeys`): both lists are empty after a strict load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The module's parameters and buffers that the state dict does not have (they keep their
    /// values).
    pub missing: Vec<String>,
    /// The state dict's names that the module does not have (ignored).
    pub unexpected: Vec<String>,
}

impl LoadReport {
    /// True when every name matched.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

/// A parameter or a buffer of the module being loaded.
enum Slot<'a> {
    Param(&'a mut Param),
    Buffer(&'a mut Tensor),
}

impl Slot<'_> {
    fn tensor(&self) -> &Tensor {
        match self {
            Slot::Param(p) => p.value(),
            Slot::Buffer(t) => t,
        }
    }
}

/// The module's parameters and buffers, in order, with their dotted names.
pub(crate) fn state_dict(m: &mut dyn Module) -> StateDict {
    let mut parts = Vec::new();
    flatten(m, "", &mut parts);
    parts
        .into_iter()
        .filter_map(|(n, p)| match p {
            Part::Param(p) => Some((n, p.value().detach())),
            Part::Buffer(t) => Some((n, t.clone())),
            _ => None,
        })
        .collect()
}

/// An error naming every float tensor of `dict` (read from `path`) that holds NaN or
/// infinite values, with how many.
pub(crate) fn refuse_non_finite(dict: &StateDict, path: &Path) -> Result<()> {
    let mut bad = Vec::new();
    for (name, t) in dict.iter() {
        if !t.dtype().is_float() {
            continue;
        }
        let values = t.to_dtype(crate::dtype::DType::F32)?.to_vec::<f32>()?;
        let n = values.iter().filter(|v| !v.is_finite()).count();
        if n > 0 {
            bad.push(format!("\"{name}\" ({n} of {})", values.len()));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err(crate::error::Error::Checkpoint {
        path: path.display().to_string(),
        msg: format!(
            "NaN or infinite values in {}; read it with StateDict::load to inspect them",
            bad.join(", ")
        ),
    })
}

/// Up to 20 quoted names, then how many more ("none" for none).
fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<String> = names.iter().take(20).map(|n| format!("\"{n}\"")).collect();
    match names.len().saturating_sub(20) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Loads `dict` into `m`; see [`ModuleExt::load_state_dict`](super::ModuleExt::load_state_dict).
pub(crate) fn load_state_dict(
    m: &mut dyn Module,
    dict: &StateDict,
    strict: bool,
) -> Result<LoadReport> {
    let mut parts = Vec::new();
    flatten(m, "", &mut parts);
    let slots: Vec<(String, Slot<'_>)> = parts
        .into_iter()
        .filter_map(|(n, p)| match p {
            Part::Param(p) => Some((n, Slot::Param(p))),
            Part::Buffer(t) => Some((n, Slot::Buffer(t))),
            _ => None,
        })
        .collect();
    let own: HashSet<&str> = slots.iter().map(|(n, _)| n.as_str()).collect();
    let mut report = LoadReport::default();
    let mut mismatched = Vec::new();
    for (name, slot) in &slots {
        let cur = slot.tensor();
        match dict.get(name) {
            None => report.missing.push(name.clone()),
            Some(src) if src.dims() != cur.dims() => mismatched.push(format!(
                "\"{name}\": {} in the state dict, {} in the module",
                src.shape(),
                cur.shape()
            )),
            Some(src)
                if src.dtype() != cur.dtype()
                    && !(src.dtype().is_float() && cur.dtype().is_float()) =>
            {
                mismatched.push(format!(
                    "\"{name}\": dtype {} in the state dict, {} in the module",
                    src.dtype(),
                    cur.dtype()
                ))
            }
            Some(_) => {}
        }
    }
    report.unexpected = dict
        .keys()
        .filter(|n| !own.contains(n))
        .map(String::from)
        .collect();
    let incompatible = strict && !report.is_exact();
    if !mismatched.is_empty() || incompatible {
        let mut msg = Vec::new();
        if !mismatched.is_empty() {
            msg.push(format!(
                "{} tensor(s) do not fit: {}",
                mismatched.len(),
                mismatched.join("; ")
            ));
        }
        if strict && !report.missing.is_empty() {
            msg.push(format!(
                "missing from the state dict: {}",
                list(&report.missing)
            ));
        }
        if strict && !report.unexpected.is_empty() {
            msg.push(format!("not in the module: {}", list(&report.unexpected)));
        }
        return Err(Error::invalid(
            "load_state_dict",
            format!("{}; nothing was loaded", msg.join("; ")),
        ));
    }
    // Convert everything before changing anything, so a failure leaves the module as it was.
    let mut values = Vec::with_capacity(slots.len());
    for (name, slot) in &slots {
        let cur = slot.tensor();
        values.push(match dict.get(name) {
            None => None,
            Some(src) => Some(
                src.detach()
                    .to_dtype(cur.dtype())
                    .and_then(|t| t.to_device(&cur.device()))
                    .map_err(|e| Error::invalid("load_state_dict", format!("\"{name}\": {e}")))?,
            ),
        });
    }
    for ((_, slot), value) in slots.into_iter().zip(values) {
        match (slot, value) {
            (Slot::Param(p), Some(v)) => p.set_value(v)?,
            (Slot::Buffer(t), Some(v)) => *t = v,
            (_, None) => {}
        }
    }
    Ok(report)
}

/// The parameter named `name`, or an error listing what there is.
pub(crate) fn get_parameter<'a>(m: &'a mut dyn Module, name: &str) -> Result<&'a mut Param> {
    let mut parts = Vec::new();
    flatten(m, "", &mut parts);
    let mut names = Vec::new();
    for (n, p) in parts {
        if let Part::Param(p) = p {
            if n == name {
                return Ok(p);
            }
            names.push(n);
        }
    }
    Err(Error::invalid(
        "get_parameter",
        format!("no parameter \"{name}\"; the module has {}", list(&names)),
    ))
}

/// The buffer named `name`, or an error listing what there is.
pub(crate) fn get_buffer<'a>(m: &'a mut dyn Module, name: &str) -> Result<&'a mut Tensor> {
    let mut parts = Vec::new();
    flatten(m, "", &mut parts);
    let mut names = Vec::new();
    for (n, p) in parts {
        if let Part::Buffer(t) = p {
            if n == name {
                return Ok(t);
            }
            names.push(n);
        }
    }
    Err(Error::invalid(
        "get_buffer",
        format!("no buffer \"{name}\"; the module has {}", list(&names)),
    ))
}
