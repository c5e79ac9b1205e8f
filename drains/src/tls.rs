//! TLS to drains: rustls with certificate and hostname verification on, trusting the Mozilla
//! roots (webpki-roots) and any CA the operator adds (`--drain-ca FILE`).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why the trust store could not be made.
#[derive(Debug, thiserror::Error)]
#[error("drain CA {path}: {reason}")]
pub struct CaError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// A client configuration trusting the public roots and the certificates in `extra_ca` files.
pub fn client_config(
    extra_ca: &[&Path],
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, CaError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_ca {
        let err = |reason: String| CaError {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?;
        let mut n = 0;
        for cert in certs {
            roots
                .add(cert.map_err(|e| err(e.to_string()))?)
                .map_err(|e| err(e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(err("no certificate in the file".into()));
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(logplex::tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError {
            path: String::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Whether a connection error is a certificate verification failure (Heroku's L14).
pub fn is_certificate_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate)
                    | rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA)
            )
        })
}
