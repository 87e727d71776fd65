//! `finhook-bench pace`: an open-loop load generator light enough to measure a tail with,
//! in the manner of wrk2. Requests are due on a fixed schedule (`rate` per second) whatever
//! the answers; each is one pre-built byte string written on a kept-alive HTTP/1.1 connection,
//! and the answer is parsed only as far as its status and length. One thread, no allocation
//! per request, so the generator stays a small share of the machine it measures.
//!
//! Latency is counted from when the request was due, not from when it was written, whenever
//! no connection was free at that moment: waiting for a connection is the queueing a real
//! sender would have seen (no "coordinated omission"). A request sent on time is counted from
//! its write, so the timer's millisecond granularity does not add to every figure.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to send, how fast and for how long.
pub struct PacePlan {
    pub url: http::Uri,
    pub body: Vec<u8>,
    /// Extra request headers, `Name: value`.
    pub headers: Vec<String>,
    pub rate: f64,
    pub connections: usize,
    pub duration: Duration,
}

#[derive(Default)]
struct Tally {
    /// Microseconds from due (or written) to the answer's last byte.
    latencies_us: Vec<u32>,
    /// Answers by status; 0 counts broken connections.
    statuses: std::collections::BTreeMap<u16, u64>,
    /// Requests written more than a millisecond after they were due (no free connection).
    late: u64,
}

/// Runs the plan on a single-threaded runtime of its own and returns the figures as JSON.
pub fn run(plan: PacePlan) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cpu_before = super::process_cpu_seconds();
    let (tally, elapsed) = runtime.block_on(drive(&plan))?;
    let generator_cpu = super::process_cpu_seconds() - cpu_before;
    let mut latencies = tally.latencies_us;
    latencies.sort_unstable();
    let at = |fraction: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() - 1) as f64 * fraction).round() as usize;
        f64::from(latencies[index]) / 1000.0
    };
    let due = (plan.rate * plan.duration.as_secs_f64()).round();
    Ok(serde_json::json!({
        "mode": "open",
        "rate": plan.rate,
        "connections": plan.connections,
        "seconds": elapsed.as_secs_f64(),
        "due": due,
        "answered": latencies.len(),
        "answered_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
        "late_sends": tally.late,
        "latency_ms": {
            "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p999": at(0.999),
            "max": at(1.0),
        },
        "statuses": tally.statuses,
        "generator_cpu_seconds": (generator_cpu * 100.0).round() / 100.0,
    }))
}

async fn drive(plan: &PacePlan) -> anyhow::Result<(Tally, Duration)> {
    let host = plan.url.host().context("the URL has no host")?;
    let port = plan.url.port_u16().unwrap_or(80);
    let address = format!("{host}:{port}");
    let request: Rc<[u8]> = request_bytes(plan, host).into();
    let mut streams = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        let stream = TcpStream::connect(&address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    let next_ticket = Rc::new(Cell::new(0u64));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let started = Instant::now();
    let local = tokio::task::LocalSet::new();
    for stream in streams {
        let (request, next_ticket, tally) = (
            Rc::clone(&request),
            Rc::clone(&next_ticket),
            Rc::clone(&tally),
        );
        local.spawn_local(async move {
            let mut connection = Connection::new(stream);
            loop {
                let ticket = next_ticket.get();
                if ticket >= total {
                    break;
                }
                next_ticket.set(ticket + 1);
                let due = started + interval.mul_f64(ticket as f64);
                let now = Instant::now();
                let counted_from = if now < due {
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                } else {
                    if now - due > Duration::from_millis(1) {
                        tally.borrow_mut().late += 1;
                    }
                    due
                };
                let status = connection.exchange(&request).await;
                let latency = counted_from.elapsed();
                let mut tally = tally.borrow_mut();
                *tally.statuses.entry(status.unwrap_or(0)).or_default() += 1;
                if status.is_none() {
                    // A broken connection ends this sender; the others carry on.
                    break;
                }
                tally
                    .latencies_us
                    .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            }
        });
    }
    local.await;
    let elapsed = started.elapsed();
    let tally = Rc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("a sender outlived the run"))?
        .into_inner();
    Ok((tally, elapsed))
}

/// The whole request, built once: every request of the run is these bytes.
fn request_bytes(plan: &PacePlan, host: &str) -> Vec<u8> {
    let path = plan.url.path_and_query().map_or("/", |path| path.as_str());
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        plan.body.len()
    );
    for header in &plan.headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&plan.body);
    bytes
}

/// One kept-alive connection and its read buffer.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// Writes `request` and reads one answer; its status, or `None` if the connection broke.
    async fn exchange(&mut self, request: &[u8]) -> Option<u16> {
        self.stream.write_all(request).await.ok()?;
        self.buffer.clear();
        loop {
            if let Some((status, length)) = complete_answer(&self.buffer) {
                // Anything past this answer would be a pipelining bug on the server's side.
                self.buffer.drain(..length);
                return Some(status);
            }
            if self.buffer.capacity() - self.buffer.len() < 1024 {
                self.buffer.reserve(4096);
            }
            let read = self.stream.read_buf(&mut self.buffer).await.ok()?;
            if read == 0 {
                return None;
            }
        }
    }
}

/// The status and total length of the answer at the start of `buffer`, once all of it is there.
fn complete_answer(buffer: &[u8]) -> Option<(u16, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_length) = response.parse(buffer).ok()? else {
        return None;
    };
    let body_length = response
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("content-length"))
        .and_then(|header| std::str::from_utf8(header.value).ok()?.trim().parse().ok())
        .unwrap_or(0usize);
    let length = head_length + body_length;
    (buffer.len() >= length).then_some((response.code?, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_complete_only_with_its_whole_body() {
        let head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\n";
        let mut buffer = head.to_vec();
        assert_eq!(complete_answer(&buffer), None);
        buffer.extend_from_slice(b"abc");
        assert_eq!(complete_answer(&buffer), None);
        buffer.extend_from_slice(b"de");
        assert_eq!(complete_answer(&buffer), Some((503, head.len() + 5)));
        assert_eq!(complete_answer(b"HTTP/1.1 200 OK\r\n"), None);
    }
}
