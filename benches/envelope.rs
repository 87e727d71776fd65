//! Micro-benchmark of the webhook path's CPU work without HTTP or Kafka: normalize + envelope +
//! encode, on every provider fixture and on the 110-account Linxo body, so a regression shows
//! without the full bench (`cargo bench --bench envelope`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use finhook::envelope::Origin;
use finhook::ingest;
use finhook::vocabulary::Ingress;
use finhook::vocabulary::ProviderKind;

fn bodies() -> Vec<(String, ProviderKind, Vec<u8>)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut bodies = Vec::new();
    for (provider, folder) in [
        (ProviderKind::new("bridge"), "bridge"),
        (ProviderKind::new("linxo"), "linxo"),
    ] {
        let mut files: Vec<_> = std::fs::read_dir(format!("{root}/tests/fixtures/{folder}"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.extension().is_some_and(|ext| ext == "json")
                    && !path.to_string_lossy().contains("signature-")
            })
            .collect();
        files.sort();
        for path in files {
            let name = format!("{folder}/{}", path.file_stem().unwrap().to_string_lossy());
            bodies.push((name, provider, std::fs::read(&path).unwrap()));
        }
    }
    bodies.push((
        "linxo/110-accounts".to_owned(),
        ProviderKind::new("linxo"),
        std::fs::read(format!("{root}/benches/bodies/linxo-110-accounts.json")).unwrap(),
    ));
    bodies
}

fn normalize_and_encode(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("normalize+encode");
    for (name, provider, body) in bodies() {
        let origin = Origin {
            provider,
            source_name: "bench",
            ingress: Ingress::Webhook,
            received_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let headers = http::HeaderMap::new();
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(&name, |bencher| {
            bencher.iter(|| {
                let envelope =
                    ingest::envelope_with_defaults(&origin, black_box(&body), &headers).unwrap();
                black_box(envelope.to_json())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, normalize_and_encode);
criterion_main!(benches);
