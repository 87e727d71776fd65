//! HTTPS and mutual TLS on the webhook listener: per-source client certificate requirements,
//! accepted names, untrusted certificates refused, certificates reloaded without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::common::fixture;
use crate::helpers::{spawn_app, TestApp};

type Authority = CertifiedIssuer<'static, KeyPair>;

fn authority(name: &str) -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// (certificate PEM, key PEM) signed by `authority`.
fn leaf(
    authority: &Authority,
    common_name: &str,
    names: &[&str],
    client: bool,
) -> (String, String) {
    let mut params = CertificateParams::new(
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, authority).unwrap();
    (certificate.pem(), key.serialize_pem())
}

fn write_server_files(directory: &Path, authority: &Authority) {
    let (certificate, key) = leaf(authority, "finhook", &["localhost"], false);
    std::fs::write(directory.join("tls.crt"), certificate).unwrap();
    std::fs::write(directory.join("tls.key"), key).unwrap();
}

fn client(
    trusted: &Authority,
    identity: Option<&(String, String)>,
    address: &str,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(trusted.pem().as_bytes()).unwrap())
        .resolve("localhost", address.parse().unwrap());
    if let Some((certificate, key)) = identity {
        builder = builder.identity(
            reqwest::Identity::from_pem(format!("{certificate}{key}").as_bytes()).unwrap(),
        );
    }
    builder.build().unwrap()
}

struct TlsApp {
    app: TestApp,
    address: String,
    server_ca: Authority,
    client_ca: Authority,
    directory: tempfile::TempDir,
}

impl TlsApp {
    async fn start() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let server_ca = authority("server CA");
        let client_ca = authority("client CA");
        write_server_files(directory.path(), &server_ca);
        std::fs::write(directory.path().join("clients.pem"), client_ca.pem()).unwrap();
        let path = |name: &str| directory.path().join(name);
        let app = spawn_app(&format!(
            r#"
            [server.tls]
            cert_file = {:?}
            key_file = {:?}
            client_ca_file = {:?}
            reload_interval = "100ms"
            [sources.linxo_mtls]
            kind = "linxo"
            auth = "none"
            client_cert_required = true
            client_cert_names = ["webhooks.linxo.com"]
            [sources.linxo_names_only]
            kind = "linxo"
            auth = "none"
            client_cert_names = ["webhooks.linxo.com"]
            "#,
            path("tls.crt"),
            path("tls.key"),
            path("clients.pem"),
        ))
        .await;
        let address = app.webhook_url.trim_start_matches("http://").to_owned();
        Self {
            app,
            address,
            server_ca,
            client_ca,
            directory,
        }
    }

    fn url(&self, source: &str) -> String {
        let port = self.address.rsplit(':').next().unwrap();
        format!("https://localhost:{port}/webhooks/{source}")
    }
}

#[tokio::test]
async fn https_serves_bridge_without_a_client_certificate() {
    let tls = TlsApp::start().await;
    let body = fixture("bridge/test-event.json");
    let signature = crate::helpers::bridge_signature(&body);
    let response = client(&tls.server_ca, None, &tls.address)
        .post(tls.url("bridge"))
        .header("BridgeApi-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .post(format!("http://{}/webhooks/bridge", tls.address))
        .body("{}")
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn mutual_tls_source_takes_only_trusted_certificates_with_an_accepted_name() {
    let tls = TlsApp::start().await;
    let body = fixture("linxo/connection-updated-2-accounts.json");
    let linxo = leaf(&tls.client_ca, "webhooks.linxo.com", &[], true);
    let accepted = client(&tls.server_ca, Some(&linxo), &tls.address)
        .post(tls.url("linxo_mtls"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200, "{}", accepted.text().await.unwrap());

    let by_san = leaf(&tls.client_ca, "someone", &["webhooks.linxo.com"], true);
    let accepted = client(&tls.server_ca, Some(&by_san), &tls.address)
        .post(tls.url("linxo_mtls"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        accepted.status(),
        200,
        "a DNS subject alternative name counts"
    );

    let without = client(&tls.server_ca, None, &tls.address)
        .post(tls.url("linxo_mtls"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 401);

    // Names to accept alone require a certificate too.
    let without = client(&tls.server_ca, None, &tls.address)
        .post(tls.url("linxo_names_only"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 401, "no certificate, names required");

    // A certificate with alternative names is judged by them, not by its CN.
    let cn_only_matches = leaf(
        &tls.client_ca,
        "webhooks.linxo.com",
        &["intruder.example"],
        true,
    );
    let refused = client(&tls.server_ca, Some(&cn_only_matches), &tls.address)
        .post(tls.url("linxo_mtls"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the CN does not count beside SANs");

    let other_name = leaf(&tls.client_ca, "intruder.example", &[], true);
    let refused = client(&tls.server_ca, Some(&other_name), &tls.address)
        .post(tls.url("linxo_mtls"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Signed by an authority finhook does not trust: the handshake itself fails.
    let rogue_ca = authority("rogue CA");
    let rogue = leaf(&rogue_ca, "webhooks.linxo.com", &[], true);
    let handshake = client(&tls.server_ca, Some(&rogue), &tls.address)
        .post(tls.url("linxo_mtls"))
        .body(body)
        .send()
        .await;
    assert!(
        handshake.is_err(),
        "an untrusted client certificate is refused"
    );
    assert_eq!(tls.app.get_ops("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_restart() {
    let tls = TlsApp::start().await;
    let new_ca = authority("next server CA");
    // Written to the side, then renamed, as Kubernetes updates a mounted secret.
    let staging = tls.directory.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    write_server_files(&staging, &new_ca);
    std::fs::rename(
        staging.join("tls.key"),
        tls.directory.path().join("tls.key"),
    )
    .unwrap();
    std::fs::rename(
        staging.join("tls.crt"),
        tls.directory.path().join("tls.crt"),
    )
    .unwrap();
    let body = fixture("bridge/test-event.json");
    let signature = crate::helpers::bridge_signature(&body);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = client(&new_ca, None, &tls.address)
            .post(tls.url("bridge"))
            .header("BridgeApi-Signature", &signature)
            .body(body.clone())
            .send()
            .await;
        if response.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the old one no longer is.
    let old = client(&tls.server_ca, None, &tls.address)
        .post(tls.url("bridge"))
        .body(body)
        .send()
        .await;
    assert!(old.is_err());
}
