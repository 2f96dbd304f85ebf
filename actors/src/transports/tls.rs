//! TLS to a provider's server (an SMSC, an IRC server, an XMPP server after STARTTLS): rustls
//! through tokio-rustls (the TLS stack reqwest already brings), trusting the system's CA
//! certificates plus those of the channel's CA file. Shared by every channel type that dials
//! out over TLS.
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// How to speak TLS to the server.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    /// Extra CA certificates (PEM), besides the system's.
    pub ca_file: Option<String>,
    /// The name to verify the certificate against.
    pub server_name: String,
}

/// `name` as the server name TLS verifies, if it is one.
pub fn rustls_pki_name(name: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(name.to_owned()).ok()
}

/// Speaks TLS over `io` (a TCP stream, or one that said STARTTLS), verifying the server's
/// certificate. The error says why not.
pub async fn connect<S>(io: S, tls: &TlsSettings) -> Result<TlsStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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
        return Err("no CA certificates to verify the server with".into());
    }
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_name(&tls.server_name)
        .ok_or_else(|| format!("{:?} is not a server name", tls.server_name))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, io)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

/// A plain or TLS connection to a provider's server.
pub trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Connection for T {}

/// Connects to `host:port` (TCP, no Nagle delay), then speaks TLS when `tls` says so; each
/// step within `timeout`. The error says which step failed and why.
pub async fn dial(
    host: &str,
    port: u16,
    tls: Option<&TlsSettings>,
    timeout: std::time::Duration,
) -> Result<Box<dyn Connection>, String> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    Ok(match tls {
        None => Box::new(tcp),
        Some(tls) => Box::new(
            tokio::time::timeout(timeout, connect(tcp, tls))
                .await
                .map_err(|_| "the TLS handshake timed out".to_owned())??,
        ),
    })
}
