//! `finhook-bench pace`: an open-loop load generator light enough to measure a tail with,
//! in the manner of wrk2. Requests are due on a fixed schedule (`rate` per second) whatever
//! the answers; each is one pre-built byte string written on a kept-alive HTTP/1.1 connection,
//! and the answer is parsed only as far as its status and length. One thread, no allocation
//! per request, so the generator stays a small share of the machine it measures.
//!
//! Each request is written within about a millisecond of its due time (tokio's timer
//! granularity). One written later (every connection was busy, or this thread fell behind) is
//! timed from when it was due: that wait is the queueing a real sender would have seen (no
//! "coordinated omission"), and it is counted as a late send. One written on time is timed from
//! its write, so the timer's granularity does not add to every figure.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Past this much after its due time, a request counts as sent late.
const LATE: Duration = Duration::from_millis(1);
/// The granularity of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);
/// An answer slower than this counts as a failure (status 0) and its connection is replaced.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Microseconds from due (or written) to the answer's last byte, for every answer.
    latencies_us: Vec<u32>,
    /// Answers by status; 0 counts broken, timed-out or unreadable exchanges.
    statuses: std::collections::BTreeMap<u16, u64>,
    /// Requests written more than [`LATE`] after they were due.
    late: u64,
    /// Requests of the schedule never sent (every sender lost its connection for good).
    unsent: u64,
}

/// Runs the plan on a single-threaded runtime of its own and returns the figures as JSON.
pub fn run(plan: PacePlan) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        plan.url.scheme_str().is_none_or(|scheme| scheme == "http"),
        "pace speaks plain HTTP/1.1 only"
    );
    anyhow::ensure!(
        plan.rate.is_finite() && plan.rate > 0.0,
        "the rate must be a positive number"
    );
    anyhow::ensure!(plan.connections > 0, "at least one connection is needed");
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
    Ok(serde_json::json!({
        "mode": "open",
        "rate": plan.rate,
        "connections": plan.connections,
        "seconds": elapsed.as_secs_f64(),
        "due": scheduled(&plan),
        "answered": latencies.len(),
        "answered_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
        "late_sends": tally.late,
        "unsent": tally.unsent,
        "latency_ms": {
            "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p999": at(0.999),
            "max": at(1.0),
        },
        "statuses": tally.statuses,
        "generator_cpu_seconds": (generator_cpu * 100.0).round() / 100.0,
    }))
}

/// Requests the schedule holds.
fn scheduled(plan: &PacePlan) -> u64 {
    (plan.rate * plan.duration.as_secs_f64()).round() as u64
}

async fn drive(plan: &PacePlan) -> anyhow::Result<(Tally, Duration)> {
    let host = plan.url.host().context("the URL has no host")?;
    let port = plan.url.port_u16().unwrap_or(80);
    let address: Rc<str> = format!("{host}:{port}").into();
    let request: Rc<[u8]> = request_bytes(plan).into();
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        connections.push(Connection::open(&address).await?);
    }
    let total = scheduled(plan);
    let interval = Duration::from_secs_f64(1.0 / plan.rate);
    let next_ticket = Rc::new(Cell::new(0u64));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let started = Instant::now();
    let local = tokio::task::LocalSet::new();
    for connection in connections {
        let sender = Sender {
            connection,
            address: Rc::clone(&address),
            request: Rc::clone(&request),
            next_ticket: Rc::clone(&next_ticket),
            tally: Rc::clone(&tally),
        };
        local.spawn_local(sender.run(started, interval, total));
    }
    local.await;
    let elapsed = started.elapsed();
    let mut tally = Rc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("a sender outlived the run"))?
        .into_inner();
    tally.unsent = total.saturating_sub(next_ticket.get());
    Ok((tally, elapsed))
}

/// One connection's loop: take the next ticket of the schedule, wait for its time, send.
struct Sender {
    connection: Connection,
    address: Rc<str>,
    request: Rc<[u8]>,
    next_ticket: Rc<Cell<u64>>,
    tally: Rc<RefCell<Tally>>,
}

impl Sender {
    async fn run(mut self, started: Instant, interval: Duration, total: u64) {
        loop {
            let ticket = self.next_ticket.get();
            if ticket >= total {
                return;
            }
            self.next_ticket.set(ticket + 1);
            let due = started + interval.mul_f64(ticket as f64);
            // tokio's timer ticks in milliseconds and wakes at the first tick after the
            // deadline: aim a tick early, so a send is within a millisecond either side of its
            // time, and only real lateness (busy connections, a starved thread) exceeds LATE.
            let wake = due.checked_sub(TIMER_TICK).unwrap_or(due);
            if Instant::now() < wake {
                tokio::time::sleep_until(wake.into()).await;
            }
            let now = Instant::now();
            let counted_from = if now.saturating_duration_since(due) > LATE {
                self.tally.borrow_mut().late += 1;
                due
            } else {
                now
            };
            let answer =
                tokio::time::timeout(ANSWER_TIMEOUT, self.connection.exchange(&self.request))
                    .await
                    .ok()
                    .flatten();
            let latency = counted_from.elapsed();
            let keep_connection = {
                let mut tally = self.tally.borrow_mut();
                let status = answer.as_ref().map_or(0, |answer| answer.status);
                *tally.statuses.entry(status).or_default() += 1;
                if answer.is_some() {
                    tally
                        .latencies_us
                        .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                }
                answer.is_some_and(|answer| answer.keep_alive)
            };
            // A closed, broken or confused connection is replaced, so that the schedule keeps
            // its capacity; a sender that cannot reconnect stops, and its tickets go to the
            // others (or, with none left, are reported unsent).
            if !keep_connection {
                match Connection::open(&self.address).await {
                    Ok(fresh) => self.connection = fresh,
                    Err(_) => return,
                }
            }
        }
    }
}

/// The whole request, built once: every request of the run is these bytes. `Host` is the URL's
/// host and port, without any `user:password@` (RFC 9110 §7.2).
fn request_bytes(plan: &PacePlan) -> Vec<u8> {
    let path = plan.url.path_and_query().map_or("/", |path| path.as_str());
    let host = plan.url.authority().map_or("", |authority| {
        let text = authority.as_str();
        text.rsplit_once('@').map_or(text, |(_userinfo, host)| host)
    });
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

/// What came back for one request.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    /// False when the server said `Connection: close`.
    keep_alive: bool,
}

impl Connection {
    async fn open(address: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Writes `request` and reads one answer; `None` if the connection broke or the answer is
    /// not one pace can frame.
    async fn exchange(&mut self, request: &[u8]) -> Option<Answer> {
        self.stream.write_all(request).await.ok()?;
        self.buffer.clear();
        loop {
            match parse_answer(&self.buffer) {
                // One request at a time: bytes past the answer mean a confused exchange.
                Parsed::Complete(answer, length) => {
                    return (length == self.buffer.len()).then_some(answer)
                }
                Parsed::Invalid => return None,
                Parsed::Partial => {}
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

/// How far the bytes of an answer have come.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Partial,
    /// The answer and its total length in bytes.
    Complete(Answer, usize),
    /// Not HTTP/1.1, or a body framed other than by `Content-Length` (chunked): pace reads
    /// only what finhook and the ceilings send.
    Invalid,
}

fn parse_answer(buffer: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_length = match response.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| std::str::from_utf8(header.value).map(str::trim))
    };
    if header("transfer-encoding").is_some() {
        return Parsed::Invalid;
    }
    let body_length = match header("content-length") {
        None => 0,
        Some(Ok(value)) => match value.parse::<usize>() {
            Ok(length) => length,
            Err(_) => return Parsed::Invalid,
        },
        Some(Err(_)) => return Parsed::Invalid,
    };
    let keep_alive =
        !matches!(header("connection"), Some(Ok(value)) if value.eq_ignore_ascii_case("close"));
    let Some(status) = response.code else {
        return Parsed::Invalid;
    };
    let length = head_length + body_length;
    if buffer.len() < length {
        return Parsed::Partial;
    }
    Parsed::Complete(Answer { status, keep_alive }, length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_complete_only_with_its_whole_body() {
        let head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\n";
        let mut buffer = head.to_vec();
        assert_eq!(parse_answer(&buffer), Parsed::Partial);
        buffer.extend_from_slice(b"abc");
        assert_eq!(parse_answer(&buffer), Parsed::Partial);
        buffer.extend_from_slice(b"de");
        let answer = Answer {
            status: 503,
            keep_alive: true,
        };
        assert_eq!(
            parse_answer(&buffer),
            Parsed::Complete(answer, head.len() + 5)
        );
        assert_eq!(parse_answer(b"HTTP/1.1 200 OK\r\n"), Parsed::Partial);
    }

    #[test]
    fn answers_pace_cannot_frame_are_refused() {
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked), Parsed::Invalid);
        assert_eq!(parse_answer(b"garbage\r\n\r\n"), Parsed::Invalid);
        let bad_length = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        assert_eq!(parse_answer(bad_length), Parsed::Invalid);
    }

    #[test]
    fn connection_close_is_noticed() {
        let closing = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let answer = Answer {
            status: 200,
            keep_alive: false,
        };
        assert_eq!(
            parse_answer(closing),
            Parsed::Complete(answer, closing.len())
        );
    }

    /// Against a server that answers after a pause: every scheduled request is answered, and
    /// those sent on time are timed from their write, so the figures hold the pause and little
    /// else; with one connection and a rate it cannot keep, sends are late and timed from due.
    #[test]
    fn the_schedule_is_kept_and_queueing_is_counted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut buffer = [0u8; 4096];
                    let mut pending = Vec::new();
                    loop {
                        let Ok(read) = stream.read(&mut buffer) else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        pending.extend_from_slice(&buffer[..read]);
                        // Each request is a head and a 2-byte body.
                        while let Some(end) =
                            pending.windows(4).position(|window| window == b"\r\n\r\n")
                        {
                            if pending.len() < end + 4 + 2 {
                                break;
                            }
                            pending.drain(..end + 4 + 2);
                            std::thread::sleep(Duration::from_millis(5));
                            let answer = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok";
                            if stream.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let plan = |rate: f64, connections: usize| PacePlan {
            url: format!("http://{address}/webhooks/x").parse().unwrap(),
            body: b"{}".to_vec(),
            headers: vec!["X-Test: 1".to_owned()],
            rate,
            connections,
            duration: Duration::from_secs(1),
        };
        let relaxed = run(plan(100.0, 4)).unwrap();
        assert_eq!(relaxed["answered"], 100);
        assert_eq!(relaxed["statuses"]["202"], 100);
        assert_eq!(relaxed["unsent"], 0);
        assert_eq!(relaxed["due"], 100);
        assert!(relaxed["latency_ms"]["p50"].as_f64().unwrap() >= 5.0);

        // One connection answering every 5 ms cannot carry 400/s: requests queue behind it.
        let overloaded = run(plan(400.0, 1)).unwrap();
        assert!(overloaded["late_sends"].as_u64().unwrap() > 100);
        assert!(overloaded["latency_ms"]["p99"].as_f64().unwrap() > 100.0);
    }

    /// A server that hangs up on every connection and stops listening: each exchange counts as
    /// status 0, no sender can reconnect, and the rest of the schedule is reported unsent.
    #[test]
    fn failures_and_unsent_requests_are_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let accepted: Vec<_> = listener.incoming().take(2).map(Result::unwrap).collect();
            drop(listener);
            for mut stream in accepted {
                use std::io::Read;
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer);
            }
        });
        let figures = run(PacePlan {
            url: format!("http://{address}/").parse().unwrap(),
            body: b"{}".to_vec(),
            headers: Vec::new(),
            rate: 100.0,
            connections: 2,
            duration: Duration::from_secs(1),
        })
        .unwrap();
        assert_eq!(figures["answered"], 0);
        assert_eq!(figures["statuses"]["0"], 2);
        assert_eq!(figures["unsent"], 98);
    }

    #[test]
    fn plans_it_cannot_run_are_refused() {
        let plan = |url: &str, rate: f64, connections: usize| PacePlan {
            url: url.parse().unwrap(),
            body: Vec::new(),
            headers: Vec::new(),
            rate,
            connections,
            duration: Duration::from_secs(1),
        };
        // A server that is there, so only the plan can be what is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let http = format!("http://{}/", listener.local_addr().unwrap());
        let https = http.replace("http:", "https:");
        for (url, rate, connections) in [
            (https.as_str(), 10.0, 1),
            (http.as_str(), 0.0, 1),
            (http.as_str(), f64::NAN, 1),
            (http.as_str(), 10.0, 0),
        ] {
            let error = run(plan(url, rate, connections)).unwrap_err().to_string();
            assert!(
                !error.contains("connecting"),
                "{url} {rate} {connections}: {error}"
            );
        }
    }

    #[test]
    fn the_request_names_host_and_port_and_carries_the_body() {
        let plan = PacePlan {
            url: "http://user:pass@127.0.0.1:18080/webhooks/linxo?x=1"
                .parse()
                .unwrap(),
            body: b"{\"a\":1}".to_vec(),
            headers: vec!["Authorization: Basic eA==".to_owned()],
            rate: 1.0,
            connections: 1,
            duration: Duration::from_secs(1),
        };
        let request = String::from_utf8(request_bytes(&plan)).unwrap();
        assert!(
            request.starts_with("POST /webhooks/linxo?x=1 HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nContent-Length: 7\r\n"), "{request}");
        assert!(
            request.contains("\r\nAuthorization: Basic eA==\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
    }
}
