//! TLS to the SMSC: rustls through tokio-rustls (the TLS stack reqwest already brings), trusting
//! the system's CA certificates plus those of the channel's `tls_ca_file`.
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::config::{rustls_pki_name, TlsSettings};

/// Speaks TLS over `tcp`, verifying the SMSC's certificate. The error says why not.
pub async fn connect(tcp: TcpStream, tls: &TlsSettings) -> Result<TlsStream<TcpStream>, String> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: a private CA file may be all we need.
    let (system, _) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = &tls.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read tls_ca_file {path}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("bad certificate in tls_ca_file {path}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("bad certificate in tls_ca_file {path}: {e}"))?;
        }
    } else if system == 0 {
        return Err("no CA certificates to verify the SMSC with".into());
    }
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_name(&tls.server_name)
        .ok_or_else(|| format!("{:?} is not a server name", tls.server_name))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}
