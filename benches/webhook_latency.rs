//! A first latency figure: signed Bridge webhooks answered by finhook on the embedded Kafka
//! default, closed loop, one connection and then 16. Prints percentiles; asserts nothing.
//!
//! `cargo bench --bench webhook_latency [-- REQUESTS]` (default 3000 per run).
//! The load generator runs in the same process as finhook (the same 2 cores): the figures are
//! an upper bound on what finhook alone costs. Issue "Benchmarks" builds the full harness.

use std::time::{Duration, Instant};

use figment::providers::{Format, Toml};
use figment::Figment;
use finhook::app::App;
use finhook::config::{Config, DEFAULT_TOML};
use finhook::providers::bridge;
use finhook::secret::Secret;
use tokio::net::TcpListener;

const SECRET: &str = "bench-secret";

fn config() -> Config {
    let toml = r#"
        [log]
        format = "text"
        level = "warn"
        [kafka]
        embedded = true
        health_interval = "200ms"
        [sources.bridge]
        kind = "bridge"
        secret = "bench-secret"
    "#;
    Config::from_figment(Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(toml)))
        .unwrap()
}

fn body(sequence: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"item.refreshed","timestamp":{},"content":{{"item_id":{},"user_uuid":"3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a","status_code":0,"status_code_info":"ok","full_refresh":false,"refresh_trigger":"scheduler"}}}}"#,
        1_612_782_590_112u64 + sequence as u64,
        1_000 + sequence % 500
    )
    .into_bytes()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

async fn run(url: &str, requests: usize, concurrency: usize, offset: usize) {
    let client = reqwest::Client::new();
    let secret = Secret::new(SECRET);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        let secret = secret.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sequence = offset + worker;
            while sequence < offset + requests {
                let body = body(sequence);
                let signature = bridge::sign(&secret, &body);
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("BridgeApi-Signature", signature)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
                latencies.push(sent.elapsed());
                sequence += concurrency;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "concurrency {concurrency:>3}: {} requests in {:.2}s = {:.0}/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::args()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(3000);
    let config = config();
    finhook::telemetry::init(&config.log);
    let app = App::build(&config).unwrap();
    let webhooks = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let operations = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/bridge", webhooks.local_addr().unwrap());
    let ready_url = format!("http://{}/readyz", operations.local_addr().unwrap());
    tokio::spawn(app.serve(webhooks, operations, std::future::pending()));
    let client = reqwest::Client::new();
    while !client
        .get(&ready_url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run(&url, 200, 1, 1_000_000).await; // warm-up
    run(&url, requests, 1, 0).await;
    run(&url, requests, 16, requests).await;
}
