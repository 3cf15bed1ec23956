//! spiffile against its floor (raw `ring` sign/verify of the same signing
//! inputs) and its peers (`jsonwebtoken`, the `spiffe` crate), in one run.
//!
//! Benchmark IDs are `<group>/<name>`; `cargo xtask bench` reads criterion's
//! estimates back and prints ratios. Settings are short on purpose (the
//! whole run stays under a few minutes on 2 cores); ratios between
//! benchmarks of one group are what matters, not the absolute figures.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group};
use ring::rand::SystemRandom;
use spiffile::Identity;
use spiffile_bench::{
    BILLING, ORDERS, Pair, SPIRE_BILLING, id, output_dir, ring_verify, signing_input_and_signature,
};
use spiffile_bundle::Bundle;
use spiffile_id::SpiffeId;
use spiffile_svid::{UnixTime, Verifier, VerifyOptions, danger};

/// The bundle sizes of the scaling benchmarks.
const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];

fn mint(c: &mut Criterion, pair: &Pair) {
    let billing = id(BILLING);
    let now = UnixTime::now().expect("clock");
    let token = danger::mint_at(
        &pair.orders,
        &billing,
        now,
        now.saturating_add(Duration::from_secs(60)),
    )
    .expect("mint");
    let (input, _) = signing_input_and_signature(&token);
    let rng = SystemRandom::new();
    let dir = output_dir().join("mint");
    pair.write_orders_dir(&dir, 10);
    let fresh = Identity::builder()
        .token_reuse_fraction(0.0)
        .from_dir(&dir)
        .expect("identity");
    let cached = Identity::builder().from_dir(&dir).expect("identity");

    let mut g = c.benchmark_group("mint");
    g.bench_function("raw_ring_sign", |b| {
        b.iter(|| {
            pair.orders_ring
                .sign(&rng, black_box(&input))
                .expect("sign")
        })
    });
    g.bench_function("signer_mint_at", |b| {
        b.iter(|| {
            danger::mint_at(
                &pair.orders,
                black_box(&billing),
                now,
                now.saturating_add(Duration::from_secs(60)),
            )
        })
    });
    g.bench_function("identity_token_fresh", |b| {
        b.iter(|| fresh.token(black_box(&billing)).expect("token"))
    });
    g.bench_function("identity_token_cached", |b| {
        b.iter(|| cached.token(black_box(&billing)).expect("token"))
    });
    g.finish();
}

/// Fresh tokens, minted outside the timed loop: every verification checks a
/// signature it has never seen (so no cache can help).
fn fresh_tokens(pair: &Pair) -> impl FnMut() -> String + '_ {
    move || pair.token()
}

fn verify(c: &mut Criterion, pair: &Pair) {
    let billing = id(BILLING);
    let orders_sec1 = pair.orders.public_key().to_sec1();
    let bundle = pair.bundle(10);
    let verifier = Verifier::new(&bundle);
    let options = VerifyOptions::default();
    let dir = output_dir().join("verify");
    pair.write_billing_dir(&dir, 10);
    let identity = Identity::builder().from_dir(&dir).expect("identity");
    let uncached = Identity::builder()
        .verify_cache_capacity(0)
        .from_dir(&dir)
        .expect("identity");

    let (jwt_key, jwt_validation, spiffe_set) = peers(pair);

    // Every contender must accept the fixture token before it is timed.
    let probe = pair.token();
    assert_eq!(
        identity.verify(&probe).expect("spiffile").id().as_str(),
        ORDERS
    );
    jsonwebtoken::decode::<JwtClaims>(&probe, &jwt_key, &jwt_validation).expect("jsonwebtoken");
    spiffe::JwtSvid::parse_and_validate(&probe, &spiffe_set, &[BILLING]).expect("spiffe");

    let mut g = c.benchmark_group("verify");
    g.bench_function("raw_ring_verify", |b| {
        b.iter_batched(
            || signing_input_and_signature(&pair.token()),
            |(input, sig)| assert!(ring_verify(&orders_sec1, &input, &sig)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("verifier", |b| {
        b.iter_batched(
            fresh_tokens(pair),
            |t| verifier.verify(&t, &billing, &options).expect("verify"),
            BatchSize::SmallInput,
        )
    });
    let federated = pair.federated_verifier(10);
    g.bench_function("verifier_federated", |b| {
        b.iter_batched(
            fresh_tokens(pair),
            |t| federated.verify(&t, &billing, &options).expect("verify"),
            BatchSize::SmallInput,
        )
    });
    let spire_billing = id(SPIRE_BILLING);
    g.bench_function("verifier_per_domain", |b| {
        b.iter_batched(
            || pair.spire_token(),
            |t| {
                federated
                    .verify(&t, &spire_billing, &options)
                    .expect("verify")
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("identity_fresh", |b| {
        b.iter_batched(
            fresh_tokens(pair),
            |t| identity.verify(&t).expect("verify"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("identity_uncached_fresh", |b| {
        b.iter_batched(
            fresh_tokens(pair),
            |t| uncached.verify(&t).expect("verify"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("jsonwebtoken", |b| {
        b.iter_batched(
            fresh_tokens(pair),
            |t| jsonwebtoken::decode::<JwtClaims>(&t, &jwt_key, &jwt_validation).expect("decode"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("spiffe", |b| {
        b.iter_batched(
            fresh_tokens(pair),
            |t| spiffe::JwtSvid::parse_and_validate(&t, &spiffe_set, &[BILLING]).expect("spiffe"),
            BatchSize::SmallInput,
        )
    });
    let repeated = pair.token();
    g.bench_function("identity_cached", |b| {
        b.iter(|| identity.verify(black_box(&repeated)).expect("verify"))
    });
    g.finish();

    // The same token and key for the Python reference (`cargo xtask bench`).
    let peer = output_dir().join("peer");
    pair.write_billing_dir(&peer, 10);
    std::fs::write(peer.join("token"), pair.token()).expect("write token");
    let orders_dir = output_dir().join("peer-orders");
    pair.write_orders_dir(&orders_dir, 10);
}

fn bundle_size(c: &mut Criterion, pair: &Pair) {
    let billing = id(BILLING);
    let options = VerifyOptions::default();
    let mut g = c.benchmark_group("verify_bundle_size");
    for size in SIZES {
        let verifier = Verifier::new(&pair.bundle(size));
        g.bench_function(size.to_string(), |b| {
            b.iter_batched(
                fresh_tokens(pair),
                |t| verifier.verify(&t, &billing, &options).expect("verify"),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    let mut g = c.benchmark_group("bundle_load");
    g.sample_size(10);
    for size in SIZES {
        let json = pair.bundle(size).to_json();
        g.bench_function(size.to_string(), |b| {
            b.iter(|| {
                Verifier::new(&Bundle::from_json(black_box(json.as_bytes())).expect("bundle"))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("reload");
    g.sample_size(10);
    for size in SIZES {
        let dir = output_dir().join(format!("reload-{size}"));
        pair.write_billing_dir(&dir, size);
        // Manual reload: every call reads, parses and swaps (a watched
        // identity would skip the parse of unchanged content).
        let identity = Identity::builder()
            .hot_reload(false)
            .from_dir(&dir)
            .expect("identity");
        g.bench_function(size.to_string(), |b| {
            b.iter(|| identity.reload().expect("reload"))
        });
    }
    g.finish();
}

/// Throughput on one shared `Identity` from 1 and 2 threads: the time
/// reported is wall time divided by the verifications of ONE thread, so equal
/// figures for `1` and `2` mean throughput doubled.
fn threads(c: &mut Criterion, pair: &Pair) {
    let dir = output_dir().join("threads");
    pair.write_billing_dir(&dir, 1_000);
    let identity = Identity::builder().from_dir(&dir).expect("identity");
    let run = |threads: usize, iters: u64, tokens: &[Vec<String>]| -> Duration {
        let barrier = Barrier::new(threads + 1);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let identity = identity.clone();
                    let barrier = &barrier;
                    let mine = &tokens[t];
                    s.spawn(move || {
                        barrier.wait();
                        for i in 0..iters as usize {
                            black_box(identity.verify(&mine[i % mine.len()]).expect("verify"));
                        }
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            for h in handles {
                h.join().expect("thread");
            }
            start.elapsed()
        })
    };
    for (group, distinct) in [("threads_fresh", true), ("threads_cached", false)] {
        let mut g = c.benchmark_group(group);
        for threads in [1usize, 2] {
            g.bench_function(threads.to_string(), |b| {
                b.iter_custom(|iters| {
                    let per_thread = if distinct { iters as usize } else { 1 };
                    let tokens: Vec<Vec<String>> = (0..threads)
                        .map(|_| (0..per_thread).map(|_| pair.token()).collect())
                        .collect();
                    run(threads, iters, &tokens)
                })
            });
        }
        g.finish();
    }
}

/// The read path with the hot-reload watcher running against a static
/// snapshot: `verify` of a repeated token and `token` with reuse (the two
/// cheapest calls, ~100 ns, where any per-call cost of watching would show).
fn read_path(c: &mut Criterion, pair: &Pair) {
    let dir = output_dir().join("read-path");
    pair.write_billing_dir(&dir, 1_000);
    let orders_dir = output_dir().join("read-path-orders");
    pair.write_orders_dir(&orders_dir, 1_000);
    let token = pair.token();
    let billing = id(BILLING);
    let mut g = c.benchmark_group("read_path");
    for (name, hot_reload) in [("static", false), ("watched", true)] {
        let verifier = Identity::builder()
            .hot_reload(hot_reload)
            .from_dir(&dir)
            .expect("identity");
        verifier.verify(&token).expect("verify");
        g.bench_function(format!("verify_{name}"), |b| {
            b.iter(|| verifier.verify(black_box(&token)).expect("verify"))
        });
        let signer = Identity::builder()
            .hot_reload(hot_reload)
            .from_dir(&orders_dir)
            .expect("identity");
        g.bench_function(format!("token_{name}"), |b| {
            b.iter(|| signer.token(black_box(&billing)).expect("token"))
        });
    }
    g.finish();
}

fn all(c: &mut Criterion) {
    let pair = Pair::new();
    mint(c, &pair);
    verify(c, &pair);
    read_path(c, &pair);
    bundle_size(c, &pair);
    threads(c, &pair);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = all
}

/// With `SPIFFILE_ICOUNT=<op>:<n>` set, performs `op` on `n` fresh tokens
/// (minted first, whatever `op` is) instead of benchmarking, so that
/// `valgrind --tool=callgrind` can count the instructions of `op`:
/// `(count(op) - count(none)) / n`. `cargo xtask bench` does this.
/// `bundle_load` (one bundle of `50 n` identities) and
/// `bundle_load_10000x20` are there for profiling bundle loading (with
/// callgrind or `perf record`).
fn instruction_count_run(spec: &str) {
    let (op, n) = spec.split_once(':').expect("SPIFFILE_ICOUNT=<op>:<n>");
    let n: usize = n.parse().expect("n");
    let pair = Pair::new();
    let billing = id(BILLING);
    let tokens: Vec<String> = (0..n).map(|_| pair.token()).collect();
    let split: Vec<(Vec<u8>, Vec<u8>)> = tokens
        .iter()
        .map(|t| signing_input_and_signature(t))
        .collect();
    let verifier = Verifier::new(&pair.bundle(10));
    let options = VerifyOptions::default();
    // The trust set of two domains, and SPIRE-shaped tokens for its
    // per-domain authority (made for every op, so "none" subtracts them).
    let federated = pair.federated_verifier(10);
    let spire_billing = spiffile_bench::id(spiffile_bench::SPIRE_BILLING);
    let spire_tokens: Vec<String> = (0..n).map(|_| pair.spire_token()).collect();
    let dir = output_dir().join(format!("icount-{}", std::process::id()));
    pair.write_billing_dir(&dir, 10);
    let identity = Identity::builder().from_dir(&dir).expect("identity");
    let orders_dir = dir.join("orders");
    pair.write_orders_dir(&orders_dir, 10);
    let orders = Identity::builder().from_dir(&orders_dir).expect("identity");
    let sec1 = pair.orders.public_key().to_sec1();
    let rng = SystemRandom::new();
    let now = UnixTime::now().expect("clock");
    identity.verify(&tokens[0]).expect("verify");
    orders.token(&billing).expect("token");
    let audiences = distinct_audiences();
    let bundle_json = if op == "bundle_load_10000x20" {
        pair.bundle(10_000).to_json()
    } else if op == "bundle_load" {
        pair.bundle(n * 50).to_json()
    } else {
        String::new()
    };
    match op {
        "none" => {}
        "bundle_load_10000x20" => {
            for _ in 0..20 {
                black_box(Verifier::new(
                    &Bundle::from_json(bundle_json.as_bytes()).expect("bundle"),
                ));
            }
        }
        "bundle_load" => {
            black_box(Verifier::new(
                &Bundle::from_json(bundle_json.as_bytes()).expect("bundle"),
            ));
        }
        "ring_verify" => {
            for (input, sig) in &split {
                assert!(ring_verify(&sec1, input, sig));
            }
        }
        "verifier" => {
            for t in &tokens {
                black_box(verifier.verify(t, &billing, &options).expect("verify"));
            }
        }
        "verifier_federated" => {
            for t in &tokens {
                black_box(federated.verify(t, &billing, &options).expect("verify"));
            }
        }
        "verifier_per_domain" => {
            for t in &spire_tokens {
                black_box(
                    federated
                        .verify(t, &spire_billing, &options)
                        .expect("verify"),
                );
            }
        }
        "identity_fresh" => {
            for t in &tokens[1..] {
                black_box(identity.verify(t).expect("verify"));
            }
            black_box(identity.verify(&tokens[0]).expect("verify"));
        }
        "identity_cached" => {
            for _ in &tokens {
                black_box(identity.verify(&tokens[0]).expect("verify"));
            }
        }
        "ring_sign" => {
            for (input, _) in &split {
                black_box(pair.orders_ring.sign(&rng, input).expect("sign"));
            }
        }
        "signer_mint_at" => {
            for _ in &tokens {
                black_box(
                    danger::mint_at(
                        &pair.orders,
                        &billing,
                        now,
                        now.saturating_add(Duration::from_secs(60)),
                    )
                    .expect("mint"),
                );
            }
        }
        "identity_token_cached" => {
            for _ in &tokens {
                black_box(orders.token(&billing).expect("token"));
            }
        }
        "identity_token_distinct" => {
            for a in audiences.iter().take(tokens.len()) {
                black_box(orders.token(a).expect("token"));
            }
        }
        other => panic!("unknown op {other}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `SPIFFILE_PAIRED=<rounds>` set: interleaved, paired timing. Each
/// round times a block of operations of the baseline and of every contender
/// back to back (in rotating order) on the same fresh tokens, and the ratio
/// to the baseline is taken within the round; the median over rounds is
/// printed as `paired <id> <median> <p25> <p75>`. Load that comes and goes
/// on the machine hits both sides of a round alike, so these ratios hold
/// still where sequential benchmarks drift.
fn paired_run(rounds: usize) {
    type Op<'a> = Box<dyn Fn(&str, &(Vec<u8>, Vec<u8>)) + 'a>;
    let pair = Pair::new();
    let billing = id(BILLING);
    let sec1 = pair.orders.public_key().to_sec1();
    let verifier = Verifier::new(&pair.bundle(10));
    let federated = pair.federated_verifier(10);
    let spire_billing = id(SPIRE_BILLING);
    // The per-domain contender verifies its own tokens (the same cost: one
    // signature check), taken in turn from a pool; no cache is involved.
    let spire_tokens: Vec<String> = (0..64).map(|_| pair.spire_token()).collect();
    let next_spire = std::cell::Cell::new(0usize);
    assert_eq!(
        federated
            .verify(&spire_tokens[0], &spire_billing, &VerifyOptions::default())
            .expect("per-domain token")
            .id()
            .as_str(),
        "spiffe://spire.test/orders"
    );
    let options = VerifyOptions::default();
    let dir = output_dir().join(format!("paired-{}", std::process::id()));
    pair.write_billing_dir(&dir, 10);
    let identity = Identity::builder().from_dir(&dir).expect("identity");
    let uncached = Identity::builder()
        .verify_cache_capacity(0)
        .from_dir(&dir)
        .expect("identity");
    let orders_dir = dir.join("orders");
    pair.write_orders_dir(&orders_dir, 10);
    let orders = Identity::builder()
        .token_reuse_fraction(0.0)
        .from_dir(&orders_dir)
        .expect("identity");
    // The facade's default (reuse on), minting for a new audience on every
    // call: the reuse cache's lookup, insert and eviction on top of a mint.
    let orders_reuse = Identity::builder().from_dir(&orders_dir).expect("identity");
    let audiences = distinct_audiences();
    let next_audience = std::cell::Cell::new(0usize);
    let (jwt_key, jwt_validation, spiffe_set) = peers(&pair);
    let rng = SystemRandom::new();
    let now = UnixTime::now().expect("clock");

    let verify_ops: Vec<(&str, Op<'_>)> = vec![
        (
            "verify/raw_ring_verify",
            Box::new(|_, (input, sig)| {
                assert!(ring_verify(&sec1, input, sig));
            }),
        ),
        (
            "verify/verifier",
            Box::new(|t, _| {
                black_box(verifier.verify(t, &billing, &options).expect("verify"));
            }),
        ),
        (
            "verify/verifier_federated",
            Box::new(|t, _| {
                black_box(federated.verify(t, &billing, &options).expect("verify"));
            }),
        ),
        (
            "verify/verifier_per_domain",
            Box::new(|_, _| {
                let n = next_spire.get();
                next_spire.set((n + 1) % spire_tokens.len());
                black_box(
                    federated
                        .verify(&spire_tokens[n], &spire_billing, &options)
                        .expect("verify"),
                );
            }),
        ),
        (
            "verify/identity_fresh",
            Box::new(|t, _| {
                black_box(identity.verify(t).expect("verify"));
            }),
        ),
        (
            "verify/identity_uncached_fresh",
            Box::new(|t, _| {
                black_box(uncached.verify(t).expect("verify"));
            }),
        ),
        (
            "verify/jsonwebtoken",
            Box::new(|t, _| {
                black_box(
                    jsonwebtoken::decode::<JwtClaims>(t, &jwt_key, &jwt_validation)
                        .expect("decode"),
                );
            }),
        ),
        (
            "verify/spiffe",
            Box::new(|t, _| {
                black_box(
                    spiffe::JwtSvid::parse_and_validate(t, &spiffe_set, &[BILLING])
                        .expect("spiffe"),
                );
            }),
        ),
    ];
    let mint_ops: Vec<(&str, Op<'_>)> = vec![
        (
            "mint/raw_ring_sign",
            Box::new(|_, (input, _)| {
                black_box(pair.orders_ring.sign(&rng, input).expect("sign"));
            }),
        ),
        (
            "mint/signer_mint_at",
            Box::new(|_, _| {
                black_box(
                    danger::mint_at(
                        &pair.orders,
                        &billing,
                        now,
                        now.saturating_add(Duration::from_secs(60)),
                    )
                    .expect("mint"),
                );
            }),
        ),
        (
            "mint/identity_token_fresh",
            Box::new(|_, _| {
                black_box(orders.token(&billing).expect("token"));
            }),
        ),
        (
            // The same audiences without the facade and its reuse cache:
            // what reading a different (cold) audience per call costs alone.
            "mint/signer_mint_distinct_audiences",
            Box::new(|_, _| {
                let i = next_audience.get();
                next_audience.set((i + 1) % audiences.len());
                let aud = &audiences[i];
                black_box(
                    danger::mint_at(
                        &pair.orders,
                        aud,
                        now,
                        now.saturating_add(Duration::from_secs(60)),
                    )
                    .expect("mint"),
                );
            }),
        ),
        (
            "mint/identity_token_distinct_audiences",
            Box::new(|_, _| {
                let i = next_audience.get();
                next_audience.set((i + 1) % audiences.len());
                black_box(orders_reuse.token(&audiences[i]).expect("token"));
            }),
        ),
    ];
    for (ops, block) in [(&verify_ops, 16usize), (&mint_ops, 48)] {
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); ops.len()];
        for round in 0..rounds {
            let tokens: Vec<String> = (0..block).map(|_| pair.token()).collect();
            let split: Vec<_> = tokens
                .iter()
                .map(|t| signing_input_and_signature(t))
                .collect();
            let mut times = vec![0f64; ops.len()];
            for k in 0..ops.len() {
                let i = (k + round) % ops.len();
                let start = Instant::now();
                for (t, s) in tokens.iter().zip(&split) {
                    (ops[i].1)(t, s);
                }
                times[i] = start.elapsed().as_secs_f64();
            }
            for i in 0..ops.len() {
                ratios[i].push(times[i] / times[0]);
            }
        }
        for (i, (name, _)) in ops.iter().enumerate() {
            let r = &mut ratios[i];
            r.sort_by(f64::total_cmp);
            let q = |f: f64| r[((r.len() - 1) as f64 * f).round() as usize];
            println!("paired {name} {:.4} {:.4} {:.4}", q(0.5), q(0.25), q(0.75));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// 50 000 distinct audiences: cycled through, each is seen again only long
/// after the reuse cache (1024 entries) has forgotten it.
fn distinct_audiences() -> Vec<SpiffeId> {
    (0..50_000)
        .map(|i| id(&format!("spiffe://example.org/svc-{i}")))
        .collect()
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct JwtClaims {
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
}

/// The peers, prepared once: jsonwebtoken's key and validation (ES256, the
/// same claims required) and the `spiffe` crate's JWT bundle set holding
/// `orders`' key under its kid.
fn peers(
    pair: &Pair,
) -> (
    jsonwebtoken::DecodingKey,
    jsonwebtoken::Validation,
    spiffe::JwtBundleSet,
) {
    let jwt_key = jsonwebtoken::DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(pair.orders.public_key().x()),
        &URL_SAFE_NO_PAD.encode(pair.orders.public_key().y()),
    )
    .expect("jsonwebtoken key");
    let mut jwt_validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    jwt_validation.set_audience(&[BILLING]);
    jwt_validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    let mut jwk = pair.orders.public_key().to_jwk();
    if let Some(m) = jwk.as_object_mut() {
        m.remove("use");
        m.remove("alg");
    }
    let authority = spiffe::bundle::jwt::JwtAuthority::from_jwk_json(
        serde_json::to_string(&jwk).expect("jwk").as_bytes(),
    )
    .expect("spiffe authority");
    let mut spiffe_bundle =
        spiffe::JwtBundle::new(spiffe::TrustDomain::new("example.org").expect("td"));
    spiffe_bundle.add_jwt_authority(authority);
    let mut spiffe_set = spiffe::JwtBundleSet::default();
    spiffe_set.add_bundle(spiffe_bundle);
    (jwt_key, jwt_validation, spiffe_set)
}

fn main() {
    if let Ok(rounds) = std::env::var("SPIFFILE_PAIRED") {
        paired_run(rounds.parse().expect("SPIFFILE_PAIRED=<rounds>"));
        return;
    }
    if let Ok(spec) = std::env::var("SPIFFILE_ICOUNT") {
        instruction_count_run(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
