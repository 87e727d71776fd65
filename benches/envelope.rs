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
        let origin = Origin::new(
            provider,
            "bench",
            Ingress::Webhook,
            time::OffsetDateTime::UNIX_EPOCH,
        );
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

/// What a personal-data policy costs on top: every preset, pseudonymized, plus owner names
/// encrypted, on the Linxo bodies (the ones with IBANs and owners).
fn protect(criterion: &mut Criterion) {
    use finhook::protection::{Action, Policy, Preset};
    let keyring = finhook::keyring::Keyring::new(
        "f1",
        &finhook::secret::Secret::new("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    )
    .unwrap();
    let policy = Policy::new(
        "bench",
        Preset::ALL.to_vec(),
        Action::Pseudonymize,
        vec![(
            "resource.accounts.*.owner.name".parse().unwrap(),
            Action::Encrypt,
        )],
        Some(finhook::secret::Secret::new("bench-key")),
        Some(std::sync::Arc::new(keyring)),
    );
    let mut group = criterion.benchmark_group("protect");
    for (name, _, body) in bodies().into_iter().filter(|(name, _, _)| {
        name.starts_with("linxo/connection-updated-2") || name == "linxo/110-accounts"
    }) {
        let text = String::from_utf8(body).unwrap();
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(&name, |bencher| {
            bencher.iter(|| black_box(policy.apply(black_box(&text)).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, normalize_and_encode, protect);
criterion_main!(benches);
