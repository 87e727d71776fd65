//! Times one read of each body given on the command line with serde_json, sonic-rs and
//! simd-json: a full validation (`IgnoredAny`, a tape) and a typed read shaped like finhook's
//! Linxo reader (a few fields, the accounts only counted). Prints nanoseconds per read.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

use serde::de::IgnoredAny;
use serde::Deserialize;

/// The fields finhook's Linxo reader looks at; everything else is skipped. (Read by the parsers
/// only: the point is what reading them costs.)
#[allow(dead_code)]
#[derive(Deserialize)]
struct Event<'a> {
    id: Option<String>,
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resource_type: Option<Cow<'a, str>>,
    creation_date: Option<f64>,
    channel_definition_id: Option<String>,
    #[serde(borrow)]
    resource: Option<Resource<'a>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct Resource<'a> {
    id: Option<String>,
    user_id: Option<String>,
    accounts: Option<Vec<IgnoredAny>>,
    #[serde(borrow)]
    channels: Option<Vec<Channel<'a>>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct Channel<'a> {
    #[serde(borrow)]
    channel_definition_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
}

fn accounts(event: &Event<'_>) -> usize {
    let resource = event.resource.as_ref();
    resource.and_then(|resource| resource.accounts.as_ref()).map_or(0, Vec::len)
}

/// Runs `read` about 200,000 times per 2.7 KB (a tenth first, to warm up) and prints ns/read.
fn time(name: &str, body_len: usize, mut read: impl FnMut() -> usize) {
    let rounds = 200_000 * 2_700 / body_len;
    for _ in 0..rounds / 10 {
        black_box(read());
    }
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(read());
    }
    let nanos = start.elapsed().as_nanos() as f64 / rounds as f64;
    println!("  {name:<34} {nanos:>9.0} ns");
}

fn main() {
    for path in std::env::args().skip(1) {
        let body = std::fs::read(&path).expect("a readable body");
        let text = std::str::from_utf8(&body).expect("UTF-8");
        println!("{path} ({} bytes)", body.len());
        let len = body.len();
        time("UTF-8 check", len, || std::str::from_utf8(&body).map_or(0, str::len));
        time("serde_json validate (IgnoredAny)", len, || {
            serde_json::from_str::<IgnoredAny>(text).is_ok() as usize
        });
        time("serde_json typed", len, || {
            serde_json::from_str::<Event>(text).map_or(0, |event| accounts(&event))
        });
        time("sonic-rs validate (IgnoredAny)", len, || {
            sonic_rs::from_str::<IgnoredAny>(text).is_ok() as usize
        });
        time("sonic-rs typed", len, || {
            sonic_rs::from_str::<Event>(text).map_or(0, |event| accounts(&event))
        });
        // simd-json parses in place: each read gets its own copy, as finhook's would.
        time("simd-json validate (tape, copy)", len, || {
            let mut copy = body.clone();
            simd_json::to_tape(&mut copy).is_ok() as usize
        });
        time("simd-json typed (copy)", len, || {
            let mut copy = body.clone();
            simd_json::serde::from_slice::<Event>(&mut copy).map_or(0, |event| accounts(&event))
        });
    }
}
