//! The CA certificates AWS's TLS trusts: the system's bundle, read once.
//!
//! The AWS SDK's client reads the system's store through
//! `rustls-native-certs`, which reads *everything* OpenSSL would consult:
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` when set, else the distribution's
//! bundle and each of its certificate directories. OpenSSL looks a
//! directory entry up by hash only when a chain needs it; rustls cannot, so
//! every file is opened and parsed. On Debian and Ubuntu the directory
//! (`/etc/ssl/certs`) holds a link per certificate of the bundle, made by
//! the same `update-ca-certificates` run: the store is read twice, 2 ms of
//! the 7.5 ms of CPU of a cold `once` (docs/running.md, "Cold starts").
//!
//! So when neither variable is set and the system has a bundle, the scaler
//! names that bundle in `SSL_CERT_FILE` before it starts any thread, and
//! the SDK reads it alone. A certificate authority present only in the
//! directory (added there by hand, without regenerating the bundle) is then
//! not trusted; setting `SSL_CERT_DIR` (or `SSL_CERT_FILE`) restores the
//! library's own choice, and [`UNKNOWN_ISSUER_HINT`] says so where a call
//! fails on it.

use std::path::PathBuf;

/// What a failed AWS call whose certificate chain no trusted authority
/// signed adds to its error.
pub const UNKNOWN_ISSUER_HINT: &str = "the scaler trusts the system's CA bundle alone unless \
     SSL_CERT_FILE or SSL_CERT_DIR is set: if the authority that signed this certificate is only in \
     a certificate directory, set SSL_CERT_DIR to that directory (or add it to the bundle)";

/// The bundle that AWS's TLS will read alone, if the environment names no
/// store and the system has one this process can open (the first of
/// OpenSSL's usual bundle paths that exists, as `rustls-native-certs` would
/// find it; one it cannot read leaves the library's own choice, the
/// directory included).
pub fn bundle_to_read_alone() -> Option<PathBuf> {
    if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some() {
        return None;
    }
    let bundle = openssl_probe::probe().cert_file?;
    std::fs::File::open(&bundle).ok()?;
    Some(bundle)
}

/// Make AWS's TLS read the system's bundle alone
/// ([`bundle_to_read_alone`]); the bundle chosen, if any.
///
/// # Safety
///
/// Sets an environment variable of the process: call it before any other
/// thread exists (at the start of `main`), as `std::env::set_var` requires.
pub unsafe fn read_the_bundle_alone() -> Option<PathBuf> {
    let bundle = bundle_to_read_alone()?;
    // SAFETY: the caller guarantees no other thread runs, so none reads the
    // environment while it changes.
    unsafe { std::env::set_var("SSL_CERT_FILE", &bundle) };
    Some(bundle)
}
