//! The derives of `runner-scaler-policy`: `#[derive(Params)]` turns a struct
//! into the parser of a pool's params, `#[derive(State)]` into a compact state
//! that fits the host's 256 bytes. Use them through `runner_scaler_policy`,
//! which re-exports them and documents what they generate.

use proc_macro::TokenStream;
use proc_macro2::{TokenStream as Tokens, TokenTree};
use quote::{format_ident, quote};
use syn::parse::ParseStream;
use syn::{parse_macro_input, Attribute, Data, DeriveInput, Fields, Ident, LitStr, Type};

/// `impl FromParams`: one field per param, named as the param, with
/// `#[param(default = "...")]` and optionally `example = "..."`,
/// `expected = "..."` and `check = <closure>`.
#[proc_macro_derive(Params, attributes(param))]
pub fn derive_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    params(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// `impl CompactState`: the fields as `name=value` pairs, and a compile-time
/// check that the longest encoding fits the host's limit.
#[proc_macro_derive(State)]
pub fn derive_state(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    state(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The named fields of a struct, or an error that says the derive needs them.
fn named_fields<'a>(input: &'a DeriveInput, derive: &str) -> syn::Result<Vec<&'a syn::Field>> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            format!("#[derive({derive})] takes a struct without generic parameters"),
        ));
    }
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(fields) => Some(fields.named.iter().collect()),
            Fields::Unit => Some(Vec::new()),
            Fields::Unnamed(_) => None,
        },
        _ => None,
    };
    fields.ok_or_else(|| {
        syn::Error::new_spanned(
            &input.ident,
            format!(
                "#[derive({derive})] needs a struct with named fields: each field names a {}",
                derive.to_lowercase()
            ),
        )
    })
}

/// What `#[param(...)]` says about one field.
struct ParamAttr {
    default: Option<LitStr>,
    example: Option<LitStr>,
    expected: Option<LitStr>,
    check: Option<Tokens>,
}

fn param_attr(field: &syn::Field) -> syn::Result<ParamAttr> {
    let mut attr = ParamAttr {
        default: None,
        example: None,
        expected: None,
        check: None,
    };
    for a in field.attrs.iter().filter(|a| a.path().is_ident("param")) {
        a.parse_nested_meta(|meta| {
            if meta.path.is_ident("default") {
                attr.default = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("example") {
                attr.example = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("expected") {
                attr.expected = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("check") {
                attr.check = Some(tokens_to_comma(meta.value()?)?);
            } else {
                return Err(meta.error(
                    "unknown key: #[param(...)] takes `default`, `example`, `expected` and `check`",
                ));
            }
            Ok(())
        })?;
    }
    if attr.example.is_some() && attr.expected.is_some() {
        return Err(syn::Error::new_spanned(
            field,
            "give `example` or `expected`, not both: `expected` is the whole phrase, examples included",
        ));
    }
    Ok(attr)
}

/// The tokens of an attribute value up to the next top-level comma: an
/// expression such as a closure, read without a full Rust parser.
fn tokens_to_comma(input: ParseStream) -> syn::Result<Tokens> {
    let mut tokens = Tokens::new();
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        tokens.extend([input.parse::<TokenTree>()?]);
    }
    if tokens.is_empty() {
        return Err(input.error("expected an expression, e.g. `check = |n| *n >= 1`"));
    }
    Ok(tokens)
}

/// The doc comment of a field, its lines joined into one.
fn doc(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join(" ").trim().to_string()
}

fn params(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let fields = named_fields(input, "Params")?;
    let krate = quote!(::runner_scaler_policy);

    let mut names = Vec::new();
    let mut infos = Vec::new();
    let mut parsers = Vec::new();
    let mut arms = Vec::new();
    let mut inits = Vec::new();
    for field in &fields {
        let ident = field.ident.as_ref().expect("named");
        let ty = &field.ty;
        let param = ident.to_string();
        let param = param.strip_prefix("r#").unwrap_or(&param).to_string();
        let attr = param_attr(field)?;
        let default = attr.default.ok_or_else(|| {
            syn::Error::new_spanned(
                ident,
                format!(
                    "param `{param}` has no default: add #[param(default = \"...\")], the value a pool gets when it does not set `{param}`"
                ),
            )
        })?;
        let expected = match (&attr.example, &attr.expected) {
            (Some(example), _) => quote!(#krate::params::Expected::Example(#example)),
            (_, Some(expected)) => quote!(#krate::params::Expected::Text(#expected)),
            _ => quote!(#krate::params::Expected::Type),
        };
        let check = attr.check.unwrap_or_else(|| quote!(|_| true));
        let doc = doc(&field.attrs);
        let parser = format_ident!("parse_{}", param);
        parsers.push(quote! {
            fn #parser(value: &str) -> ::core::result::Result<#ty, ::std::string::String> {
                #krate::params::parse::<#ty>(#param, value, #expected, #check)
            }
        });
        arms.push(quote!(#param => #ident = ::core::option::Option::Some(#parser(value)?),));
        inits.push(quote! {
            #ident: match #ident {
                ::core::option::Option::Some(value) => value,
                ::core::option::Option::None => #parser(#default)?,
            },
        });
        infos.push(quote! {
            #krate::params::ParamInfo { name: #param, default: #default, doc: #doc },
        });
        names.push(param);
    }
    let idents: Vec<&Ident> = fields.iter().filter_map(|f| f.ident.as_ref()).collect();
    let test = format_ident!("{}_defaults_are_valid", snake(&name.to_string()));
    // A default that does not parse is a bug of the policy: its own
    // `cargo test` says so, rather than every tick of every pool.
    let test = quote! {
        #[cfg(test)]
        #[test]
        fn #test() {
            if let ::core::result::Result::Err(error) = <#name as #krate::FromParams>::from_params(&[]) {
                panic!("a default of {} is not valid: {}", ::core::stringify!(#name), error);
            }
        }
    };
    Ok(quote! {
        impl #krate::FromParams for #name {
            const NAMES: &'static [&'static str] = &[#(#names),*];
            const PARAMS: &'static [#krate::params::ParamInfo] = &[#(#infos)*];

            fn from_params(
                params: &[(::std::string::String, ::std::string::String)],
            ) -> ::core::result::Result<Self, ::std::string::String> {
                #(#parsers)*
                #(let mut #idents = ::core::option::Option::None;)*
                for (name, value) in params {
                    match name.as_str() {
                        #(#arms)*
                        _ => return ::core::result::Result::Err(
                            #krate::params::unknown(name, <Self as #krate::FromParams>::NAMES),
                        ),
                    }
                }
                ::core::result::Result::Ok(#name { #(#inits)* })
            }
        }
        #test
    })
}

fn state(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let fields = named_fields(input, "State")?;
    let krate = quote!(::runner_scaler_policy);

    let idents: Vec<&Ident> = fields.iter().filter_map(|f| f.ident.as_ref()).collect();
    let types: Vec<&Type> = fields.iter().map(|f| &f.ty).collect();
    let keys: Vec<String> = idents
        .iter()
        .map(|i| {
            let key = i.to_string();
            key.strip_prefix("r#").unwrap_or(&key).to_string()
        })
        .collect();
    let key_lens: Vec<usize> = keys.iter().map(String::len).collect();
    let separators = fields.len().saturating_sub(1);
    let count = fields.len();
    let indexes = 0..count;
    // Checked when the policy compiles: a state that could outgrow the
    // host's tag is refused before it is ever built, not on a tick.
    let fits = quote! {
        const _: () = #krate::state::assert_fits(<#name as #krate::CompactState>::MAX_LEN);
    };
    Ok(quote! {
        impl #krate::CompactState for #name {
            const MAX_LEN: usize = #separators #(+ #key_lens + 1 + <#types as #krate::StateField>::MAX_LEN)*;

            fn encode(&self) -> ::std::string::String {
                let mut out = ::std::string::String::new();
                #(#krate::state::write_field(&mut out, #keys, &self.#idents);)*
                out
            }

            fn decode(text: &str) -> ::core::option::Option<Self> {
                let mut values = [::core::option::Option::None; #count];
                if !#krate::state::split(text, &[#(#keys),*], &mut values) {
                    return ::core::option::Option::None;
                }
                ::core::option::Option::Some(#name {
                    #(#idents: #krate::state::field(values[#indexes])?,)*
                })
            }
        }
        #fits
    })
}

/// `BusinessHours` → `business_hours`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
