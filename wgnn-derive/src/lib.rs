//! `#[derive(Module)]` for [wgnn](https://docs.rs/wgnn): lists what a module owns from its
//! fields, so a child can never be left out of the optimizer, the state dict or a checkpoint.
//!
//! The derive implements `wgnn::nn::Parts` (the part-walking supertrait of `wgnn::nn::Module`);
//! the user writes `impl Module for X { fn forward(..) }` as in PyTorch. Each field, in
//! declaration order, is named by its field name (tuple structs: `0`, `1`, …) and listed
//! through `wgnn::nn::ModuleField`, which parameters, child modules, `Option`, `Vec`,
//! arrays, `BTreeMap<String, _>` and `Box<dyn Module>` implement, and which plain
//! configuration values (integers, floats, `bool`, `String`, wgnn's config enums) implement as
//! constants that list nothing. A field of any other type is a compile error until it is
//! marked:
//!
//! - `#[module(skip)]`: not listed (a constant, a cache, your own config enum);
//! - `#[module(buffer)]`: a `Tensor` saved in the state dict but not trained (running stats);
//! - `#[module(counter)]`: a `u64` saved in training checkpoints (dropout's step);
//! - `#[module(rename = "name")]`: listed under another name;
//! - `#[module(flatten)]`: the field's parts are listed at this module's level, without the
//!   field's name (a `Vec<M>` field then gives `0.weight`, `1.weight` …).
//!
//! Names must stay unique within a module; a `rename` or `flatten` that makes two parts share
//! a name is the user's mistake (a state dict keeps the later one).
//!
//! This crate is wgnn's; use it through `wgnn::nn::Module` (the trait and the derive share the
//! name, as serde's `Serialize` does).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens, TokenTree};
use quote::{format_ident, quote};
use syn::{
    Data, DeriveInput, Error, Fields, GenericParam, Ident, LitStr, Type, parse_macro_input,
    parse_quote,
};

/// Implements `wgnn::nn::Parts` from the struct's fields; see the crate documentation for the
/// `#[module(...)]` attributes.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// What a field is, from its `#[module(...)]` attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Listed through `ModuleField` (parameters, children, constants).
    Field,
    /// Not listed.
    Skip,
    /// `Part::Buffer`.
    Buffer,
    /// `Part::Counter`.
    Counter,
}

/// One field's attribute, parsed.
struct Attr {
    kind: Kind,
    rename: Option<String>,
    flatten: bool,
}

fn parse_attrs(attrs: &[syn::Attribute]) -> syn::Result<Attr> {
    let mut out = Attr {
        kind: Kind::Field,
        rename: None,
        flatten: false,
    };
    for attr in attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            let set_kind = |out: &mut Attr, kind: Kind| {
                if out.kind != Kind::Field {
                    return Err(meta.error(
                        "a field takes one of `skip`, `buffer` and `counter`, not several",
                    ));
                }
                out.kind = kind;
                Ok(())
            };
            if meta.path.is_ident("skip") {
                set_kind(&mut out, Kind::Skip)
            } else if meta.path.is_ident("buffer") {
                set_kind(&mut out, Kind::Buffer)
            } else if meta.path.is_ident("counter") {
                set_kind(&mut out, Kind::Counter)
            } else if meta.path.is_ident("flatten") {
                out.flatten = true;
                Ok(())
            } else if meta.path.is_ident("rename") {
                let name: LitStr = meta.value()?.parse()?;
                let v = name.value();
                if v.is_empty() || v.contains('.') {
                    return Err(Error::new(
                        name.span(),
                        "a part's name must be non-empty and free of dots (use `flatten` to \
                         list a field's parts without its name)",
                    ));
                }
                out.rename = Some(v);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown module attribute: expected `skip`, `buffer`, `counter`, \
                     `flatten` or `rename = \"...\"`",
                ))
            }
        })?;
    }
    if out.kind == Kind::Skip && (out.flatten || out.rename.is_some()) {
        return Err(Error::new(
            Span::call_site(),
            "a `skip`ped field is not listed, so it takes no `rename` or `flatten`",
        ));
    }
    if out.flatten && out.rename.is_some() {
        return Err(Error::new(
            Span::call_site(),
            "`flatten` lists a field without a name, so it takes no `rename`",
        ));
    }
    if out.flatten && out.kind != Kind::Field {
        return Err(Error::new(
            Span::call_site(),
            "`flatten` applies to children (modules, `Vec`s, `Option`s), not to buffers or \
             counters",
        ));
    }
    Ok(out)
}

/// Whether `ty` mentions one of the struct's type parameters (then its `ModuleField` bound
/// goes into the impl's where clause).
fn mentions(ty: &Type, params: &[Ident]) -> bool {
    fn walk(tokens: Tokens, params: &[Ident]) -> bool {
        tokens.into_iter().any(|t| match t {
            TokenTree::Ident(i) => params.contains(&i),
            TokenTree::Group(g) => walk(g.stream(), params),
            _ => false,
        })
    }
    walk(quote!(#ty), params)
}

fn expand(input: DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let fields = match &input.data {
        Data::Struct(s) => &s.fields,
        _ => {
            return Err(Error::new_spanned(
                &input.ident,
                "#[derive(Module)] needs a struct: its fields are the module's parts",
            ));
        }
    };
    let krate = quote!(::wgnn::nn);
    let type_params: Vec<Ident> = input
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.clone()),
            _ => None,
        })
        .collect();
    let mut generics = input.generics.clone();
    let mut body = Vec::new();
    let parts = format_ident!("parts");
    let members: Vec<(syn::Member, String, &syn::Field)> = match fields {
        Fields::Named(named) => named
            .named
            .iter()
            .filter_map(|f| {
                f.ident.as_ref().map(|i| {
                    let text = i.to_string();
                    let text = text.strip_prefix("r#").unwrap_or(&text).to_string();
                    (syn::Member::Named(i.clone()), text, f)
                })
            })
            .collect(),
        Fields::Unnamed(unnamed) => unnamed
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| (syn::Member::Unnamed(i.into()), i.to_string(), f))
            .collect(),
        Fields::Unit => Vec::new(),
    };
    for (member, field_name, field) in &members {
        let attr = parse_attrs(&field.attrs)?;
        let part_name = if attr.flatten {
            String::new()
        } else {
            attr.rename.clone().unwrap_or_else(|| field_name.clone())
        };
        let ty = &field.ty;
        let span = syn::spanned::Spanned::span(ty);
        match attr.kind {
            Kind::Skip => {}
            Kind::Field => {
                if mentions(ty, &type_params) {
                    generics
                        .make_where_clause()
                        .predicates
                        .push(parse_quote!(#ty: #krate::ModuleField));
                }
                body.push(quote::quote_spanned! {span=>
                    #krate::ModuleField::list_parts(&mut self.#member, #part_name, &mut #parts);
                });
            }
            Kind::Buffer => body.push(quote::quote_spanned! {span=>
                #parts.push((::std::string::String::from(#part_name),
                            #krate::Part::Buffer(&mut self.#member)));
            }),
            Kind::Counter => body.push(quote::quote_spanned! {span=>
                #parts.push((::std::string::String::from(#part_name),
                            #krate::Part::Counter(&mut self.#member)));
            }),
        }
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Parts for #name #ty_generics #where_clause {
            fn parts(&mut self) -> ::std::vec::Vec<(::std::string::String, #krate::Part<'_>)> {
                #[allow(unused_mut)]
                let mut #parts = ::std::vec::Vec::new();
                #(#body)*
                #parts
            }
        }
    })
}
