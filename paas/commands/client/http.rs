//! A minimal HTTP/1.1 client on hyper: one connection per request, TLS by rustls with
//! certificate verification against `PAAS_API_CA` (the API is usually local or on a private
//! CA; this program carries no public root store).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A fixed-size response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

/// An API client.
#[derive(Clone, Debug)]
pub struct Client {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    base_path: String,
    key: String,
}

impl Client {
    pub fn new(url: &str, key: String, ca: Option<&Path>) -> anyhow::Result<Client> {
        let uri: hyper::Uri = url.parse().context("not a URL")?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => bail!("the API URL must start with http:// or https://"),
        };
        let host = uri
            .host()
            .context("no host in the URL")?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let mut roots = rustls::RootCertStore::empty();
            if let Some(ca) = ca {
                for cert in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("reading {}", ca.display()))?
                {
                    roots.add(cert?)?;
                }
            } else {
                bail!(
                    "https API URLs need PAAS_API_CA (the CA that signed the router's certificate)"
                );
            }
            let config = rustls::ClientConfig::builder_with_provider(logplex::tls_provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Client {
            host,
            port,
            tls,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<serde_json::Value>,
        accept: &str,
        authorize: bool,
    ) -> anyhow::Result<hyper::Response<Incoming>> {
        // A log-session URL names this same router (the API builds it from our Host
        // header); it carries its own secret, so no key is sent with it.
        let path = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            let uri: hyper::Uri = path_or_url.parse().context("bad URL from the API")?;
            uri.path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default()
        } else {
            format!("{}{}", self.base_path, path_or_url)
        };
        let client = self;
        let tcp = TcpStream::connect((client.host.as_str(), client.port))
            .await
            .with_context(|| {
                format!(
                    "cannot reach the API at {}:{} (is `paas logplex` running?)",
                    client.host, client.port
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let mut builder = Request::builder()
            .method(method)
            .uri(&path)
            .header(
                hyper::header::HOST,
                format!("{}:{}", client.host, client.port),
            )
            .header(hyper::header::ACCEPT, accept)
            .header(
                hyper::header::USER_AGENT,
                concat!("paas/", env!("CARGO_PKG_VERSION")),
            );
        if authorize {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.key));
        }
        let body = match body {
            Some(v) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body)?;
        match &client.tls {
            None => send_on(TokioIo::new(tcp), request).await,
            Some(config) => {
                let name = ServerName::try_from(client.host.clone())?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake with the API")?;
                send_on(TokioIo::new(tls), request).await
            }
        }
    }

    /// Sends a JSON request and reads the whole response.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Response> {
        let response = self
            .send(
                method,
                path,
                body,
                "application/vnd.heroku+json; version=3",
                true,
            )
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Response { status, body })
    }
}

async fn send_on<S>(
    io: TokioIo<S>,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<hyper::Response<Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(request).await?)
}
