//! Where does one hvstat node sample spend its time beyond the syscalls? A Rust driver over
//! hvstat-core (no Python, no PyO3) that times each phase of a sample on its own.
//!
//! Built and run by bench/profile_core.sh (a throwaway cargo project in bench/out/core_profile,
//! same release profile as the workspace: lto, codegen-units = 1, plus debug line tables so
//! callgrind can attribute inlined code to its source file).
//!
//!   core_profile phases [N] [R]   per phase µs (best / median of R repeats of N iterations)
//!   core_profile loop N           N x serde_json::to_vec(&sampler.sample()), for callgrind / strace

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use hvstat_core::node::{NodeConfig, NodeSampler};
use hvstat_core::parse::{single_u64, ParseResult};
use hvstat_core::procfs::{diskstats, loadavg, meminfo, mountinfo, net_dev, pressure, stat, uptime, vmstat};
use hvstat_core::read::{statvfs, FileReader, Shape};

fn time<F: FnMut()>(n: usize, r: usize, mut f: F) -> (f64, f64) {
    for _ in 0..(n / 10).max(1) {
        f();
    }
    let mut per: Vec<f64> = (0..r)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .collect();
    per.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (per[0], per[per.len() / 2])
}

type Parser = fn(&[u8]) -> bool;

fn ok<T>(r: ParseResult<T>) -> bool {
    black_box(r).is_ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("phases");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let r: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(7);

    let mut sampler = NodeSampler::new(NodeConfig::default()).expect("default config");
    sampler.prime();

    if mode == "loop" {
        let mut bytes = 0;
        for _ in 0..n {
            bytes += serde_json::to_vec(&sampler.sample()).unwrap().len();
        }
        println!("{n} samples, {} bytes each", bytes / n.max(1));
        return;
    }

    let row = |name: &str, (b, m): (f64, f64)| println!("{name:<44} {b:8.2} {m:8.2}");
    println!("{:<44} {:>8} {:>8}   (µs, best / median of {r} x {n})", "phase", "best", "median");

    row("sample + serde_json::to_vec (= core minus PyO3)", time(n, r, || {
        black_box(serde_json::to_vec(&sampler.sample()).unwrap());
    }));
    row("sample (read_raw + model::build)", time(n, r, || {
        black_box(sampler.sample());
    }));
    row("read_raw (read + parse + statvfs)", time(n, r, || {
        black_box(sampler.read_raw());
    }));
    let one = sampler.sample();
    row("serde_json::to_vec of one sample", time(n, r, || {
        black_box(serde_json::to_vec(&one).unwrap());
    }));
    println!();

    // Each file on its own: a kept-open FileReader (the core's reader), read only, then read+parse.
    // The sampler's own files (paths() order), each with the parser the sampler uses for it.
    let parsers: Vec<(String, Shape, Parser)> = sampler
        .paths()
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.contains("/ksm/") || p.ends_with("/run"))
        .filter_map(|p| {
            let name = p.rsplit('/').next().unwrap_or("").to_owned();
            let records = Shape::Records;
            let (shape, parse): (Shape, Parser) = match name.as_str() {
                "stat" => (Shape::Whole, |b| ok(stat::parse(b))),
                "meminfo" => (Shape::Whole, |b| ok(meminfo::parse(b))),
                "loadavg" => (Shape::Whole, |b| ok(loadavg::parse(b))),
                "uptime" => (Shape::Whole, |b| ok(uptime::parse(b))),
                "vmstat" => (records, |b| ok(vmstat::parse(b))),
                "diskstats" => (records, |b| ok(diskstats::parse(b))),
                "dev" => (records, |b| ok(net_dev::parse(b))),
                "mountinfo" => (records, |b| ok(mountinfo::parse(b))),
                "cpu" | "memory" | "io" => (Shape::Whole, |b| ok(pressure::parse(b))),
                "run" => (Shape::Whole, |b| ok(single_u64(b))),
                _ => return None,
            };
            Some((p, shape, parse))
        })
        .collect();
    println!("{:<28} {:>9} {:>9} {:>9} {:>8}   (µs, best of {r} x {n})", "file", "read", "read+parse", "parse", "bytes");
    let (mut sr, mut sp) = (0.0, 0.0);
    for (path, shape, parse) in &parsers {
        let path = path.as_str();
        let mut fr = FileReader::new(path, *shape);
        let bytes = match fr.read() {
            Ok(b) => b.len(),
            Err(e) => {
                println!("{path:<28} skipped: {e}");
                continue;
            }
        };
        let (rd, _) = time(n, r, || {
            black_box(fr.read().unwrap());
        });
        let (rp, _) = time(n, r, || {
            let b = fr.read().unwrap();
            black_box(parse(b));
        });
        let buf = fr.read().unwrap().to_vec();
        let (p, _) = time(n, r, || {
            black_box(parse(black_box(&buf)));
        });
        sr += rd;
        sp += p;
        println!("{path:<28} {rd:9.2} {rp:9.2} {p:9.2} {bytes:8}");
    }
    println!("{:<28} {sr:9.2} {:>9} {sp:9.2}   (ksm: 1 of 6 files shown)", "sum", "");
    println!();
    row("statvfs(\"/\")", time(n, r, || {
        black_box(statvfs(Path::new("/")).unwrap());
    }));
    let mi = std::fs::read("/proc/1/mountinfo").or_else(|_| std::fs::read("/proc/self/mountinfo")).unwrap();
    row("mountinfo::parse alone (allocations)", time(n, r, || {
        black_box(mountinfo::parse(black_box(&mi)).unwrap());
    }));
}
