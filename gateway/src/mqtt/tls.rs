//! Optional TLS for the device listeners (rustls, ring provider).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the TLS certificate chain {path}: {message}")]
    Certificates { path: PathBuf, message: String },
    #[error("reading the TLS private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let certificates = CertificateDer::pem_file_iter(&config.cert_file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates {
            path: config.cert_file.clone(),
            message: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Certificates {
            path: config.cert_file.clone(),
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&config.key_file).map_err(|e| TlsError::Key {
        path: config.key_file.clone(),
        message: e.to_string(),
    })?;
    let server =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
