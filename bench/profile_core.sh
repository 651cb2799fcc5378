#!/usr/bin/env bash
# Diagnostics behind bench/README.md's "where the time goes": builds bench/profile_core.rs against
# rust/hvstat-core in a throwaway cargo project under bench/out/ and runs it.
#
#   bench/profile_core.sh             phase and per-file timings (no Python, no PyO3)
#   bench/profile_core.sh callgrind   + instruction counts of 2000 samples by source file
#   bench/profile_core.sh strace      + syscall counts of 2000 samples (compare with the floor)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
proj=$here/out/core_profile
mkdir -p "$proj/src"
cp "$here/profile_core.rs" "$proj/src/main.rs"
# Same dependency versions as the workspace.
cp "$repo/Cargo.lock" "$proj/Cargo.lock"
cat > "$proj/Cargo.toml" <<EOF
[package]
name = "core_profile"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
hvstat-core = { path = "$repo/rust/hvstat-core" }
serde_json = "1"

[workspace]

[profile.release]
lto = true
codegen-units = 1
debug = "line-tables-only"
EOF
(cd "$proj" && cargo build --release -q 2>&1 | grep -v '^$' || true)
bin=$proj/target/release/core_profile
[[ -x $bin ]] || { echo "build failed" >&2; exit 1; }

"$bin" phases "${N:-5000}" "${R:-7}"

case "${1:-}" in
callgrind)
    out=$here/out/callgrind.core
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" loop 2000 2>&1 | grep -E 'refs|samples' || true
    echo
    echo "user-space instructions per sample, exclusive, grouped (2000 samples):"
    callgrind_annotate --auto=no --inclusive=no --threshold=100 "$out" 2>/dev/null \
        | sed -n '/file:function/,$p' | python3 -c '
import collections, re, sys
groups = [
    ("vmstat::parse", "vmstat::parse"), ("meminfo::parse", "meminfo::parse"),
    ("mountinfo", "mountinfo::parse + unescape"), ("diskstats::parse", "diskstats::parse"),
    ("net_dev::parse", "net_dev::parse"), ("stat::", "stat::parse"), ("pressure::parse", "pressure::parse"),
    ("serde", "serde_json::to_vec"), ("zmij", "serde_json::to_vec"), ("itoa", "serde_json::to_vec"),
    ("malloc", "malloc/free/realloc"), ("free", "malloc/free/realloc"), ("unlink_chunk", "malloc/free/realloc"),
    ("realloc", "malloc/free/realloc"), ("memcpy", "memcpy/memmove"), ("memmove", "memcpy/memmove"),
    ("model::", "model::build"), ("rate::", "model::build"), ("Glob", "name filters (Glob)"),
    ("sip", "HashMap (SipHash, hashbrown)"), ("hash_one", "HashMap (SipHash, hashbrown)"),
    ("hashbrown", "HashMap (SipHash, hashbrown)"),
    ("lossy", "String::from_utf8_lossy (name_of)"), ("Utf8Chunks", "String::from_utf8_lossy (name_of)"),
    ("name_of", "String::from_utf8_lossy (name_of)"), ("read_raw", "read_raw (inlined rest)"),
]
tot = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
    if not m:
        continue
    n = int(m.group(1).replace(",", ""))
    fn = re.sub(r" \[.*\]$", "", m.group(2))
    fn = fn.split(":", 1)[1] if ":" in fn and not fn.startswith("???") else fn
    tot[next((label for key, label in groups if key in fn), "other")] += n
total = sum(tot.values())
for k, v in tot.most_common():
    print(f"{v / 2000:9.0f} {100 * v / total:5.1f}%  {k}")
print(f"{total / 2000:9.0f} 100.0%  total")
'
    echo
    echo "heap allocations (valgrind memcheck, 1000 vs 2000 samples):"
    for n in 1000 2000; do valgrind "$bin" loop $n 2>&1 | grep 'total heap usage' || true; done
    ;;
strace)
    strace -c -o "$here/out/strace.core_profile" "$bin" loop 2000 >/dev/null
    echo "syscalls of 2000 samples (plus the driver's own startup):"
    head -14 "$here/out/strace.core_profile"
    ;;
esac
