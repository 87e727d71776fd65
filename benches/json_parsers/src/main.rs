//! Times one read of each body given on the command line with serde_json, sonic-rs and
//! simd-json: a full validation (`IgnoredAny`, a tape) and a typed read shaped like finhook's
//! Linxo reader (a few fields, the accounts only counted). Prints nanoseconds per read, twice:
//! reading the one body over and over, and reading 64 varied copies of it in turn (other string
//! lengths, other numbers, same shape). A loop over one body lets the CPU's branch predictor
//! learn that body by heart, which flatters branchy parsers; a server never sees the same body
//! twice. Build with `RUSTFLAGS="-C target-cpu=native"` to give sonic-rs its SIMD paths.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

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
    resource
        .and_then(|resource| resource.accounts.as_ref())
        .map_or(0, Vec::len)
}

/// Runs `read` over `bodies` in turn, in 7 timed batches of about 30,000 reads per 2.7 KB (one
/// more first, to warm up), and prints ns/read: the fastest batch and the median. On a shared
/// machine the fastest is the steadier figure: other tenants only ever add time. Every body must
/// read (`Some`) first: a parser that fails early would look fast.
fn time(name: &str, bodies: &[String], mut read: impl FnMut(&str) -> Option<usize>) {
    for (index, body) in bodies.iter().enumerate() {
        assert!(read(body).is_some(), "{name}: body {index} did not read");
    }
    let average = bodies.iter().map(String::len).sum::<usize>() / bodies.len();
    let reads = (30_000 * 2_700 / average).max(bodies.len());
    let mut batch = || {
        let start = Instant::now();
        for index in 0..reads {
            black_box(read(&bodies[index % bodies.len()]));
        }
        start.elapsed().as_nanos() as f64 / reads as f64
    };
    batch();
    let mut nanos: Vec<f64> = (0..7).map(|_| batch()).collect();
    nanos.sort_by(f64::total_cmp);
    println!("  {name:<34} {:>9.0} ns (median {:.0})", nanos[0], nanos[3]);
}

/// `count` copies of `body`, each with every string and number replaced by another of about
/// its size (a fixed-seed xorshift, so every run reads the same copies): pretty-printed with
/// the original's indent when it is (Linxo), on one line when it is (Bridge). Keys come out
/// sorted (serde_json without `preserve_order`), unlike the original's order.
fn varied(body: &str, count: usize) -> Vec<String> {
    let original: Value = serde_json::from_str(body).expect("a JSON body");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    fn vary(value: &Value, next: &mut impl FnMut() -> u64) -> Value {
        const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_";
        match value {
            // Field names are kept: only what a provider would change from one event to the next.
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), vary(value, next)))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|item| vary(item, next)).collect())
            }
            // Upper-case codes (event and resource types, statuses) decide what is read: kept.
            Value::String(text)
                if text
                    .bytes()
                    .all(|byte| byte.is_ascii_uppercase() || byte == b'_') =>
            {
                value.clone()
            }
            Value::String(text) => {
                let length = text.len() / 2 + (next() as usize) % (text.len() + 4);
                let varied = (0..length.max(1))
                    .map(|_| LETTERS[(next() as usize) % LETTERS.len()] as char)
                    .collect();
                Value::String(varied)
            }
            Value::Number(number) if number.is_f64() => {
                let cents = (next() % 100_000_000) as f64 / 100.0;
                serde_json::Number::from_f64(cents).map_or(Value::Null, Value::Number)
            }
            Value::Number(_) => Value::from(next() % 10u64.pow(1 + (next() % 9) as u32)),
            other => other.clone(),
        }
    }
    // The original's indent: what follows its first line break (none: one line).
    let indent: Option<Vec<u8>> = body.trim_end().split_once('\n').map(|(_, rest)| {
        rest.bytes()
            .take_while(|byte| *byte == b' ' || *byte == b'\t')
            .collect()
    });
    (0..count)
        .map(|_| {
            let copy = vary(&original, &mut next);
            let mut text = Vec::new();
            match &indent {
                Some(indent) => {
                    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent);
                    let mut serializer =
                        serde_json::Serializer::with_formatter(&mut text, formatter);
                    serde::Serialize::serialize(&copy, &mut serializer).expect("serializes");
                }
                None => serde_json::to_writer(&mut text, &copy).expect("serializes"),
            }
            String::from_utf8(text).expect("JSON is UTF-8")
        })
        .collect()
}

fn main() {
    for path in std::env::args().skip(1) {
        let body = std::fs::read_to_string(&path).expect("a readable UTF-8 body");
        for (label, bodies) in [
            ("the one body", vec![body.clone()]),
            ("64 varied copies", varied(&body, 64)),
        ] {
            let average = bodies.iter().map(String::len).sum::<usize>() / bodies.len();
            println!("{path}, {label} ({average} bytes on average)");
            time("UTF-8 check", &bodies, |text| {
                std::str::from_utf8(text.as_bytes()).ok().map(str::len)
            });
            time("serde_json validate (IgnoredAny)", &bodies, |text| {
                serde_json::from_str::<IgnoredAny>(text).ok().map(|_| 1)
            });
            time("serde_json typed", &bodies, |text| {
                serde_json::from_str::<Event>(text)
                    .ok()
                    .map(|event| accounts(&event))
            });
            time("sonic-rs validate (IgnoredAny)", &bodies, |text| {
                sonic_rs::from_str::<IgnoredAny>(text).ok().map(|_| 1)
            });
            time("sonic-rs typed", &bodies, |text| {
                sonic_rs::from_str::<Event>(text)
                    .ok()
                    .map(|event| accounts(&event))
            });
            // simd-json parses in place: each read gets its own copy, as finhook's would.
            time("simd-json validate (tape, copy)", &bodies, |text| {
                let mut copy = text.as_bytes().to_vec();
                simd_json::to_tape(&mut copy).ok().map(|_| 1)
            });
            time("simd-json typed (copy)", &bodies, |text| {
                let mut copy = text.as_bytes().to_vec();
                simd_json::serde::from_slice::<Event>(&mut copy)
                    .ok()
                    .map(|event| accounts(&event))
            });
        }
    }
}
