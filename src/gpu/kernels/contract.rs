//! The contract test: every shader of [`Shader::ALL`] parsed and validated with naga, and
//! compared with the kernel table ([`super::ALL`]) and the uniform twins ([`super::Uniform`]).
//! No adapter is needed: this runs on every machine, so a drift between the Rust side and a
//! shader fails `cargo test` wherever it runs.

use super::{ALL, Access, Elem, KernelDef, UniformLayout};
use crate::dtype::DType;
use crate::gpu::pipelines::{Shader, instantiate};
use naga::valid::{Capabilities, GlobalUse, ModuleInfo, ValidationFlags, Validator};
use naga::{AddressSpace, Module, ScalarKind, StorageAccess, TypeInner};
use std::collections::BTreeSet;

/// Shaders whose source includes another's: their copies of the included shader's entry
/// points are dispatched through the included shader's kernels, so they are not dead.
const INCLUDES: &[(Shader, Shader)] = &[(Shader::ReduceSubgroup, Shader::Reduce)];

/// A shader instance parsed and validated.
struct Parsed {
    module: Module,
    info: ModuleInfo,
}

fn parse(shader: Shader, dtype: DType) -> Parsed {
    let src = instantiate(shader, dtype);
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
        panic!(
            "{} ({dtype}) does not parse:\n{}",
            shader.file(),
            e.emit_to_string(&src)
        )
    });
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{} ({dtype}) does not validate:\n{}",
                shader.file(),
                e.emit_to_string(&src)
            )
        });
    Parsed { module, info }
}

/// The element type of a WGSL type as the table writes it (f16 is `T`; arrays, vectors and
/// atomics are looked through).
fn elem_of(m: &Module, ty: naga::Handle<naga::Type>) -> Result<Elem, String> {
    let scalar = match &m.types[ty].inner {
        TypeInner::Scalar(s) | TypeInner::Atomic(s) | TypeInner::Vector { scalar: s, .. } => *s,
        TypeInner::Array { base, .. } => return elem_of(m, *base),
        other => return Err(format!("unsupported type {other:?}")),
    };
    match (scalar.kind, scalar.width) {
        (ScalarKind::Uint, 4) => Ok(Elem::U32),
        (ScalarKind::Float, 2) => Ok(Elem::T),
        // In the f32 instance T and f32 are one type: the f16 instance tells them apart.
        (ScalarKind::Float, 4) => Ok(Elem::F32),
        (k, w) => Err(format!("unsupported scalar {k:?}{}", w * 8)),
    }
}

/// Whether the table's `want` matches WGSL's `got` in an instance (`T` reads as f32 in the
/// f32 one).
fn elem_matches(want: Elem, got: Elem, t_is_f16: bool) -> bool {
    want == got || (!t_is_f16 && want == Elem::T && got == Elem::F32)
}

/// Storage bindings as WGSL declares them: (binding, access, element type).
type Bindings = BTreeSet<(u32, Access, Elem)>;

/// The storage bindings entry point `ep` of `p` uses: (binding, access, elem).
/// Whether it reads the parameters (binding 0) is returned beside.
fn used_bindings(p: &Parsed, ep: usize) -> Result<(bool, Bindings), String> {
    let fi = p.info.get_entry_point(ep);
    let mut uses_params = false;
    let mut out = BTreeSet::new();
    for (h, gv) in p.module.global_variables.iter() {
        if fi[h] == GlobalUse::empty() {
            continue;
        }
        let Some(rb) = gv.binding else { continue };
        if rb.group != 0 {
            return Err(format!("uses group {} (only group 0 is bound)", rb.group));
        }
        match gv.space {
            AddressSpace::Uniform if rb.binding == 0 => uses_params = true,
            AddressSpace::Storage { access } => {
                let access = if access.contains(StorageAccess::STORE) {
                    Access::ReadWrite
                } else {
                    Access::Read
                };
                let elem = elem_of(&p.module, gv.ty)
                    .map_err(|e| format!("binding {}: {e}", rb.binding))?;
                out.insert((rb.binding, access, elem));
            }
            other => {
                return Err(format!(
                    "binding {} in address space {other:?} (the dispatch binds storage buffers \
                     and the parameters at 0)",
                    rb.binding
                ));
            }
        }
    }
    Ok((uses_params, out))
}

/// Checks one kernel against one parsed instance of its shader; `Err` names what differs.
fn check_kernel(k: &KernelDef, p: &Parsed, t_is_f16: bool) -> Result<(), String> {
    let ep = p
        .module
        .entry_points
        .iter()
        .position(|e| e.name == k.entry)
        .ok_or_else(|| format!("{}: no such entry point", k.name()))?;
    let (uses_params, got) = used_bindings(p, ep).map_err(|e| format!("{}: {e}", k.name()))?;
    if !uses_params {
        return Err(format!(
            "{}: does not read the parameters (binding 0), which every dispatch binds: its \
             derived layout would lack them",
            k.name()
        ));
    }
    let table: BTreeSet<u32> = k.slots.iter().map(|s| s.binding).collect();
    let wgsl: BTreeSet<u32> = got.iter().map(|g| g.0).collect();
    if table != wgsl {
        return Err(format!(
            "{}: the table lists slots {table:?}, the entry point uses {wgsl:?} (missing in \
             the table: {:?}; listed but unused: {:?})",
            k.name(),
            wgsl.difference(&table).collect::<Vec<_>>(),
            table.difference(&wgsl).collect::<Vec<_>>()
        ));
    }
    for &(binding, access, elem) in &got {
        let s = k.slot(binding).expect("same sets");
        if s.access != access || !elem_matches(s.elem, elem, t_is_f16) {
            return Err(format!(
                "{}: slot {binding} is {:?} {:?} in the table but {access:?} {elem:?} in WGSL",
                k.name(),
                s.access,
                s.elem
            ));
        }
    }
    Ok(())
}

/// Checks that the shader's `var<uniform> p` (binding 0) is laid out as the Rust twin: the
/// same size and, field by field in order, the same name (padding, `_…`, matches padding),
/// offset, size and scalar.
fn check_params(shader: Shader, p: &Parsed, twin: &UniformLayout) -> Result<(), String> {
    let m = &p.module;
    let gv = m
        .global_variables
        .iter()
        .map(|(_, gv)| gv)
        .find(|gv| {
            gv.space == AddressSpace::Uniform && gv.binding.as_ref().is_some_and(|b| b.binding == 0)
        })
        .ok_or_else(|| format!("{}: no uniform at binding 0", shader.file()))?;
    let TypeInner::Struct { members, span } = &m.types[gv.ty].inner else {
        return Err(format!("{}: the uniform is not a struct", shader.file()));
    };
    let wgsl: Vec<String> = members
        .iter()
        .map(|mem| {
            let size = m.types[mem.ty].inner.size(m.to_ctx());
            let elem = elem_of(m, mem.ty).map_or("?".into(), |e| format!("{e:?}"));
            format!(
                "{}@{}:{size}:{elem}",
                mem.name.as_deref().unwrap_or("?"),
                mem.offset
            )
        })
        .collect();
    let rust: Vec<String> = twin
        .fields
        .iter()
        .map(|f| format!("{}@{}:{}:{:?}", f.name, f.offset, f.size, f.elem))
        .collect();
    let differ = |what: String| {
        Err(format!(
            "{}: struct Params and its Rust twin {} differ: {what}\n  WGSL ({span} bytes): {}\n  \
             Rust ({} bytes): {}",
            shader.file(),
            twin.name,
            wgsl.join(", "),
            twin.size,
            rust.join(", ")
        ))
    };
    if *span as usize != twin.size {
        return differ(format!("{span} bytes in WGSL, {} in Rust", twin.size));
    }
    if members.len() != twin.fields.len() {
        return differ(format!(
            "{} fields in WGSL, {} in Rust",
            members.len(),
            twin.fields.len()
        ));
    }
    for (i, (mem, f)) in members.iter().zip(twin.fields).enumerate() {
        let name = mem.name.as_deref().unwrap_or("");
        let padding = name.starts_with('_') && f.name.starts_with('_');
        let size = m.types[mem.ty].inner.size(m.to_ctx()) as usize;
        let elem = elem_of(m, mem.ty).map_err(|e| format!("{}: {e}", shader.file()))?;
        if (name != f.name && !padding)
            || mem.offset as usize != f.offset
            || size != f.size
            || elem != f.elem
        {
            return differ(format!("field {i}: WGSL {}, Rust {}", wgsl[i], rust[i]));
        }
    }
    Ok(())
}

/// The f32 instance of every shader, and the f16 one (which tells `T` from f32).
fn instances() -> Vec<(Shader, Parsed, Parsed)> {
    Shader::ALL
        .iter()
        .map(|&s| (s, parse(s, DType::F32), parse(s, DType::F16)))
        .collect()
}

#[test]
fn shaders_match_the_kernel_table() {
    let parsed = instances();
    let mut failures = Vec::new();
    for (shader, f32s, f16s) in &parsed {
        let kernels: Vec<&KernelDef> = ALL
            .iter()
            .copied()
            .filter(|k| k.shader == *shader)
            .collect();
        // (a), (b): each kernel's entry point exists and binds what the table says.
        // The f16 instance is checked once the f32 one passes (it tells `T` from f32).
        for k in &kernels {
            if let Err(e) = check_kernel(k, f32s, false)
                .and_then(|()| check_kernel(k, f16s, true).map_err(|e| e + " (f16 instance)"))
            {
                failures.push(e);
            }
        }
        // (c): the uniform struct is laid out as the Rust twin.
        match kernels.first() {
            Some(k) => {
                for other in &kernels {
                    assert!(
                        std::ptr::eq(other.params, k.params),
                        "{}: kernels of one shader name different Params twins",
                        other.name()
                    );
                }
                if let Err(e) = check_params(*shader, f32s, k.params) {
                    failures.push(e);
                }
            }
            None => failures.push(format!("{}: no kernel in the table", shader.file())),
        }
        // (d): every compute entry point is dispatched (no dead kernels).
        for ep in &f32s.module.entry_points {
            let named = |s: Shader| ALL.iter().any(|k| k.shader == s && k.entry == ep.name);
            let included = INCLUDES
                .iter()
                .any(|&(outer, inner)| outer == *shader && named(inner));
            if ep.stage == naga::ShaderStage::Compute && !named(*shader) && !included {
                failures.push(format!(
                    "{}::{}: a @compute entry point no kernel of the table names",
                    shader.file(),
                    ep.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the Rust ↔ WGSL contract is broken:\n{}",
        failures.join("\n")
    );
}

#[test]
fn table_names_each_entry_once() {
    let mut seen = BTreeSet::new();
    for k in ALL {
        assert!(
            seen.insert((k.shader.file(), k.entry)),
            "{} is in the table twice",
            k.name()
        );
    }
}

#[test]
fn dispatch_check_names_the_slot() {
    use super::softmax::SOFTMAX_CE;
    let size = SOFTMAX_CE.params.size;
    assert_eq!(SOFTMAX_CE.check(size, [1, 2, 4, 5]), Ok(()));
    assert_eq!(SOFTMAX_CE.check(size, [5, 4, 2, 1]), Ok(()));
    let e = SOFTMAX_CE.check(size, [1, 2, 3, 5]).unwrap_err();
    assert!(
        e.contains("softmax.wgsl::softmax_ce") && e.contains("binding 3"),
        "{e}"
    );
    let e = SOFTMAX_CE.check(size, [1, 2, 4]).unwrap_err();
    assert!(e.contains("slot 5") && e.contains("unbound"), "{e}");
    let e = SOFTMAX_CE.check(size, [1, 2, 2, 4, 5]).unwrap_err();
    assert!(e.contains("twice"), "{e}");
    let e = SOFTMAX_CE.check(size, [0, 1, 2, 4, 5]).unwrap_err();
    assert!(e.contains("binding 0"), "{e}");
    let e = SOFTMAX_CE.check(16, [1, 2, 4, 5]).unwrap_err();
    assert!(e.contains("16 bytes") && e.contains("RowParams"), "{e}");
}
