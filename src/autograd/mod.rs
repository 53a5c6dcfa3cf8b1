//! Reverse-mode automatic differentiation, define-by-run (as PyTorch, candle, burn, tinygrad).
//!
//! This is the book's ch.5 made general. There each layer is a node with a `forward` that
//! keeps what it needs and a `backward` that turns the upstream gradient into the gradients of
//! its inputs; `MultiLayerNet.gradient` calls the backwards in reverse layer order. Here every
//! differentiable op on [`Tensor`] is such a node: when an operand requires a gradient (and
//! gradients are enabled), the op attaches to its output a [`Node`] holding the op's backward
//! rule — a closure over what it saved — and links to its operands' nodes. `loss.backward()`
//! orders the graph (reverse topological order of a depth-first walk from the loss, so any
//! graph, not only a chain: a weight used twice, a residual add, a branch and concat), runs
//! each rule once with the sum of its output's upstream gradients, and **adds** what reaches a
//! leaf into the leaf's gradient, as PyTorch does (so [`Tensor::zero_grad`] between steps).
//!
//! Each op's backward rule lives beside its forward in `tensor_ops.rs`, one screen each, and is
//! built from the same checked ops (matmul with transpose flags, `sum_to` for broadcasting,
//! the fused conv, pool and softmax-CE backward kernels), so it runs on the CPU and on every
//! GPU alike, recorded into the same command encoder as the forward: a training step stays one
//! submit. A rule runs once: it is taken out of its node when used, which frees what it saved
//! (activations, masks, indices) as the walk goes, and the rest of the graph is freed when the
//! loss tensor is dropped.
//!
//! Gradients are not themselves differentiated (backward runs with gradients disabled).
//! [`no_grad`] disables recording for evaluation; [`Tensor::detach`] cuts a tensor out of the
//! graph; [`Tensor::backward_with`] starts from a given upstream gradient of any shape (a GAN's
//! generator step feeds the discriminator's input gradient back this way).

use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// A backward rule: from the gradient of the op's output and which inputs need a gradient
/// (decided by the walk: an input in the graph), the gradients of its inputs — one entry per
/// input, in the order the inputs were recorded, `None` for an input that needs none.
pub(crate) type BackwardFn =
    Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send>;

/// One vertex of the graph: a leaf (a tensor the user asked gradients for) or an op's output.
pub struct Node {
    kind: Kind,
}

enum Kind {
    Leaf {
        grad: Mutex<Option<Tensor>>,
    },
    Op {
        name: &'static str,
        inputs: Vec<(Option<Arc<Node>>, Shape)>,
        backward: Mutex<Option<BackwardFn>>,
    },
}

impl Node {
    pub(crate) fn leaf() -> Arc<Node> {
        Arc::new(Node {
            kind: Kind::Leaf {
                grad: Mutex::new(None),
            },
        })
    }

    pub(crate) fn is_leaf(&self) -> bool {
        matches!(self.kind, Kind::Leaf { .. })
    }

    /// The accumulated gradient of a leaf (`None` for op nodes and leaves without one).
    pub(crate) fn grad(&self) -> Option<Tensor> {
        match &self.kind {
            Kind::Leaf { grad } => lock(grad).clone(),
            Kind::Op { .. } => None,
        }
    }

    /// Replaces a leaf's gradient (no-op on op nodes).
    pub(crate) fn set_grad(&self, g: Option<Tensor>) {
        if let Kind::Leaf { grad } = &self.kind {
            *lock(grad) = g;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record the graph on this thread (true unless inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    ENABLED.with(|e| e.get())
}

/// Disables recording on this thread until the guard is dropped (PyTorch's `torch.no_grad()`):
/// evaluation, optimizer updates, anything whose gradient is not wanted.
///
/// ```
/// let _guard = wgnn::autograd::no_grad();
/// assert!(!wgnn::autograd::is_grad_enabled());
/// ```
pub fn no_grad() -> NoGradGuard {
    let prev = ENABLED.with(|e| e.replace(false));
    NoGradGuard { prev }
}

/// Restores the previous recording state when dropped; see [`no_grad`].
#[must_use = "recording resumes as soon as the guard is dropped"]
pub struct NoGradGuard {
    prev: bool,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        ENABLED.with(|e| e.set(self.prev));
    }
}

/// Attaches a node with `backward` to `out` when any of `inputs` is in a graph and recording
/// is on; otherwise returns `out` as it is (and `backward` is never built into a node).
pub(crate) fn record<F>(out: Tensor, name: &'static str, inputs: &[&Tensor], backward: F) -> Tensor
where
    F: FnOnce(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + 'static,
{
    record_needs(out, name, inputs, move |g, _| backward(g))
}

/// [`record`] for a rule that reads which inputs need a gradient (`needs[i]`: input `i` is in
/// the graph), so that it computes only those.
pub(crate) fn record_needs<F>(
    out: Tensor,
    name: &'static str,
    inputs: &[&Tensor],
    backward: F,
) -> Tensor
where
    F: FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + 'static,
{
    if !is_grad_enabled() || inputs.iter().all(|t| t.node.is_none()) {
        return out;
    }
    let node = Node {
        kind: Kind::Op {
            name,
            inputs: inputs
                .iter()
                .map(|t| (t.node.clone(), t.shape().clone()))
                .collect(),
            backward: Mutex::new(Some(Box::new(backward))),
        },
    };
    out.with_node(Some(Arc::new(node)))
}

/// True when recording and any of `inputs` is in a graph: ops use it to skip saving what only
/// a backward would need.
pub(crate) fn wants_grad(inputs: &[&Tensor]) -> bool {
    is_grad_enabled() && inputs.iter().any(|t| t.node.is_some())
}

/// Nodes reachable from `root`, each after every node it reads (inputs first).
fn topological(root: &Arc<Node>) -> Vec<Arc<Node>> {
    let mut order = Vec::new();
    let mut seen: HashSet<*const Node> = HashSet::new();
    // (node, whether its inputs have been pushed): an explicit stack, so a graph thousands
    // of ops deep (an RNN unrolled over time) cannot overflow the thread's stack.
    let mut stack = vec![(root.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !seen.insert(Arc::as_ptr(&node)) {
            continue;
        }
        stack.push((node.clone(), true));
        if let Kind::Op { inputs, .. } = &node.kind {
            for (input, _) in inputs.iter().rev() {
                if let Some(n) = input
                    && !seen.contains(&Arc::as_ptr(n))
                {
                    stack.push((n.clone(), false));
                }
            }
        }
    }
    order
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> Result<()> {
    *slot = Some(match slot.take() {
        Some(old) => old.add(&g)?,
        None => g,
    });
    Ok(())
}

/// Runs the backward walk from `root` with upstream gradient `seed` (same shape as `root`).
pub(crate) fn backward(root: &Tensor, seed: Tensor) -> Result<()> {
    let Some(root_node) = &root.node else {
        return Err(Error::invalid(
            "backward",
            "this tensor does not require a gradient: no operand of the ops that made it was a \
             parameter or a tensor marked with set_requires_grad(true)",
        ));
    };
    if seed.shape() != root.shape() || seed.dtype() != root.dtype() {
        return Err(Error::invalid(
            "backward_with",
            format!(
                "the gradient is {} {}, the tensor {} {}",
                seed.dtype(),
                seed.shape(),
                root.dtype(),
                root.shape()
            ),
        ));
    }
    let _guard = no_grad();
    let order = topological(root_node);
    let mut grads: HashMap<*const Node, Tensor> = HashMap::new();
    grads.insert(Arc::as_ptr(root_node), seed);
    for node in order.iter().rev() {
        let Some(g) = grads.remove(&Arc::as_ptr(node)) else {
            continue;
        };
        match &node.kind {
            Kind::Leaf { grad } => accumulate(&mut lock(grad), g)?,
            Kind::Op {
                name,
                inputs,
                backward,
            } => {
                let rule = lock(backward).take().ok_or_else(|| {
                    Error::invalid(
                        "backward",
                        format!(
                            "{name}: this part of the graph was already walked and freed by an \
                             earlier backward; run the forward again"
                        ),
                    )
                })?;
                let needs: Vec<bool> = inputs.iter().map(|(n, _)| n.is_some()).collect();
                let input_grads = rule(&g, &needs)?;
                if input_grads.len() != inputs.len() {
                    return Err(Error::invalid(
                        "backward",
                        format!(
                            "{name}: its backward rule gave {} gradients for {} inputs (a bug \
                             of the rule)",
                            input_grads.len(),
                            inputs.len()
                        ),
                    ));
                }
                for ((input, shape), gi) in inputs.iter().zip(input_grads) {
                    let (Some(n), Some(gi)) = (input, gi) else {
                        continue;
                    };
                    if gi.shape() != shape {
                        return Err(Error::invalid(
                            "backward",
                            format!(
                                "{name}: its backward rule gave a {} gradient for a {shape} \
                                 input (a bug of the rule)",
                                gi.shape()
                            ),
                        ));
                    }
                    let key = Arc::as_ptr(n);
                    let mut slot = grads.remove(&key);
                    accumulate(&mut slot, gi)?;
                    if let Some(s) = slot {
                        grads.insert(key, s);
                    }
                }
            }
        }
    }
    Ok(())
}
