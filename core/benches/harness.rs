//! A minimal benchmark harness (no dependencies): warm up, then time `SAMPLES` samples of a
//! calibrated number of iterations each and report the median time per iteration, the
//! spread (min..max of the samples) and the throughput per core (units / s on one thread).
//!
//! Output: one human line per benchmark, and one `BENCH {json}` line that
//! `localstack/run-benchmarks.sh` collects. Filter benchmarks with a substring argument,
//! as with `cargo bench -- <filter>`; `BENCH_SAMPLES` sets the number of samples.
//! `BENCH_ITERS=n` fixes the iterations per sample (and of the warm-up) instead of
//! calibrating them by time: the work is then the same in every run, so counters such as
//! `perf stat -e instructions:u` compare two builds even on a busy machine.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

pub struct Bench {
    filter: Option<String>,
    samples: usize,
    target: Duration,
    fixed_iters: Option<u64>,
}

impl Bench {
    pub fn from_args() -> Bench {
        let filter = std::env::args()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .filter(|a| !a.is_empty());
        let samples = std::env::var("BENCH_SAMPLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(21usize)
            .max(3);
        let fixed_iters = std::env::var("BENCH_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0);
        Bench {
            filter,
            samples,
            target: Duration::from_millis(40),
            fixed_iters,
        }
    }

    /// Time `f`, which does `units` units of work (events, messages, ...) per call.
    pub fn run<R>(&self, name: &str, units: u64, unit: &str, mut f: impl FnMut() -> R) {
        if let Some(flt) = &self.filter {
            if !name.contains(flt.as_str()) {
                return;
            }
        }
        // Warm up and calibrate: iterations per sample so a sample takes ~target.
        let start = Instant::now();
        let mut iters = 0u64;
        while iters < self.fixed_iters.unwrap_or(2)
            || (self.fixed_iters.is_none() && start.elapsed() < self.target)
        {
            black_box(f());
            iters += 1;
        }
        let per = start.elapsed().as_secs_f64() / iters as f64;
        let n = self
            .fixed_iters
            .unwrap_or(((self.target.as_secs_f64() / per) as u64).max(1));
        let mut samples: Vec<f64> = (0..self.samples)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    black_box(f());
                }
                t.elapsed().as_secs_f64() / n as f64
            })
            .collect();
        samples.sort_by(|a, b| a.total_cmp(b));
        let median = samples[samples.len() / 2];
        let (lo, hi) = (samples[0], samples[samples.len() - 1]);
        let per_sec = units as f64 / median;
        println!(
            "{name:<48} {:>12} /iter  [{} .. {}]  {:>12.0} {unit}/s per core",
            fmt(median),
            fmt(lo),
            fmt(hi),
            per_sec
        );
        println!(
            "BENCH {{\"name\":\"{name}\",\"median_ns\":{:.0},\"min_ns\":{:.0},\"max_ns\":{:.0},\"units\":{units},\"unit\":\"{unit}\",\"per_sec\":{per_sec:.0},\"samples\":{},\"iters_per_sample\":{n}}}",
            median * 1e9,
            lo * 1e9,
            hi * 1e9,
            self.samples
        );
    }
}

fn fmt(secs: f64) -> String {
    if secs >= 1e-3 {
        format!("{:.3} ms", secs * 1e3)
    } else if secs >= 1e-6 {
        format!("{:.2} µs", secs * 1e6)
    } else {
        format!("{:.0} ns", secs * 1e9)
    }
}
