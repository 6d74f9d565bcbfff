//! From a policy file to a component that implements the contract: the file
//! is read within its size limit, core modules are made into components, and
//! the exports are checked before any decision is asked for.

use super::bindings::CONTRACTS;
use super::limits::MAX_POLICY_FILE_BYTES;
use super::PolicyError;
use std::borrow::Cow;
use std::path::Path;

/// `bytes` as a component: returned as is when it already is one, encoded
/// with `wit-component` when it is a core module carrying wit-bindgen's
/// embedded contract (what `wasm32-unknown-unknown` builds produce).
pub fn to_component<'a>(path: &Path, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, PolicyError> {
    if wasmparser::Parser::is_component(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    if !wasmparser::Parser::is_core_wasm(bytes) {
        return Err(PolicyError::NotWasm { path: path.into() });
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(bytes)
        .and_then(|mut encoder| encoder.encode())
        .map(Cow::Owned)
        .map_err(|err| PolicyError::Componentize {
            path: path.into(),
            message: format!("{err:#}"),
        })
}

/// Fails unless `component` exports the `decider` interface of a contract
/// version this host loads.
pub fn check_contract(
    path: &Path,
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Result<(), PolicyError> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    if CONTRACTS
        .iter()
        .any(|(_, decider)| exports.iter().any(|name| name == decider))
    {
        return Ok(());
    }
    Err(PolicyError::WrongContract {
        path: path.into(),
        expected: CONTRACTS
            .iter()
            .map(|(_, decider)| *decider)
            .collect::<Vec<_>>()
            .join(" or "),
        found: if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        },
    })
}

/// Reads the policy file at `path` (a regular file, opened without
/// blocking), refusing one over [`MAX_POLICY_FILE_BYTES`] without reading
/// more than that.
pub fn read_policy_file(path: &Path) -> Result<Vec<u8>, PolicyError> {
    crate::input_file::read(path, MAX_POLICY_FILE_BYTES).map_err(|error| match error {
        crate::input_file::ReadError::TooLarge { limit, .. } => PolicyError::TooLarge {
            path: path.into(),
            limit,
        },
        error => PolicyError::Read {
            path: path.into(),
            error,
        },
    })
}
