//! Per-process files: /proc/<pid>/{stat,status,statm,io,schedstat,cgroup}, /proc/<pid>/task/<tid>/stat,
//! cgroup.procs, and the namespace link text `net:[4026531840]`. proc(5).

use crate::parse::{
    fields, flat_keyed, lines, lossy, name_of, only_line, split_once, u32_field, u64_field, u64_of, ParseError,
    ParseResult,
};

/// /proc/<pid>/stat (and task/<tid>/stat). `comm` may contain spaces and parentheses, so it is
/// everything between the first `(` and the LAST `)`. Times in USER_HZ ticks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidStat {
    pub pid: u32,
    pub comm: String,
    /// One letter: R, S, D, Z, T, t, X, I, ...
    pub state: char,
    pub ppid: u32,
    pub minflt: u64,
    pub majflt: u64,
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub num_threads: u64,
    /// Ticks after boot.
    pub starttime_ticks: u64,
    pub vsize_bytes: u64,
    /// Resident pages.
    pub rss_pages: u64,
    /// Field 39, since Linux 2.2.8.
    pub processor: Option<u32>,
    /// Field 42 (ticks), since Linux 2.6.18.
    pub delayacct_blkio_ticks: Option<u64>,
    /// Field 43 (ticks), since Linux 2.6.24.
    pub guest_time_ticks: Option<u64>,
}

/// Parses the whole file: `pid (comm) state ppid ...`, fields numbered as in proc(5). The command name
/// may hold any byte but NUL, including `)`, spaces and newlines (`prctl(PR_SET_NAME)`, or an
/// executable named so), so it runs from the first `(` to the last `)` and may span lines; the fields
/// after it are one line. Fields 3 to 24 (state to rss) are required, later ones optional; fields the
/// struct does not keep are not looked at (some are signed: priority, nice, cutime, cstime).
pub fn parse_stat(buf: &[u8]) -> ParseResult<PidStat> {
    let text = buf.strip_suffix(b"\n").unwrap_or(buf);
    let (Some(open), Some(close)) = (text.iter().position(|&b| b == b'('), text.iter().rposition(|&b| b == b')'))
    else {
        return Err(ParseError::new(1, format!("no \"(comm)\": {:?}", lossy(text))));
    };
    let (Some(head), Some(comm), Some(tail)) = (text.get(..open), text.get(open + 1..close), text.get(close + 1..))
    else {
        return Err(ParseError::new(1, format!("no \"(comm)\": {:?}", lossy(text))));
    };
    let mut h = fields(head);
    let pid = u32_field(1, h.next(), "pid")?;
    if let Some(extra) = h.next() {
        return Err(ParseError::new(1, format!("unexpected {:?} between the pid and \"(\"", lossy(extra))));
    }
    // The line of the fields after the command name: one past the newlines before it.
    let n = 1 + comm.iter().filter(|&&b| b == b'\n').count();
    if let Some(i) = tail.iter().position(|&b| b == b'\n') {
        let rest = tail.get(i + 1..).unwrap_or_default();
        return Err(ParseError::new(n + 1, format!("unexpected line after the fields: {:?}", lossy(rest))));
    }
    // f[k] is field k + 3 of proc(5): f[0] is the state. Fields past 43 are not needed.
    let mut f: [&[u8]; 41] = [&[]; 41];
    let mut count = 0usize;
    for (slot, field) in f.iter_mut().zip(fields(tail)) {
        *slot = field;
        count += 1;
    }
    if count < 22 {
        return Err(ParseError::new(n, format!("expected at least 24 fields, got {}: {:?}", count + 2, lossy(tail))));
    }
    let field = |no: usize| f.get(no.wrapping_sub(3)).copied();
    let num = |no: usize, what: &str| u64_field(n, field(no), what);
    let opt = |no: usize, what: &str| -> ParseResult<Option<u64>> {
        if no.wrapping_sub(3) < count {
            num(no, what).map(Some)
        } else {
            Ok(None)
        }
    };
    let state = match field(3) {
        Some(&[c]) if c.is_ascii_alphabetic() => char::from(c),
        other => {
            return Err(ParseError::new(
                n,
                format!("state: expected one letter, got {:?}", lossy(other.unwrap_or_default())),
            ))
        }
    };
    let processor = match opt(39, "processor")? {
        Some(p) => Some(u32::try_from(p).map_err(|_| ParseError::new(n, format!("processor: out of range: {p}")))?),
        None => None,
    };
    Ok(PidStat {
        pid,
        comm: name_of(comm),
        state,
        ppid: u32_field(n, field(4), "ppid")?,
        minflt: num(10, "minflt")?,
        majflt: num(12, "majflt")?,
        utime_ticks: num(14, "utime")?,
        stime_ticks: num(15, "stime")?,
        num_threads: num(20, "num_threads")?,
        starttime_ticks: num(22, "starttime")?,
        vsize_bytes: num(23, "vsize")?,
        rss_pages: num(24, "rss")?,
        processor,
        delayacct_blkio_ticks: opt(42, "delayacct_blkio_ticks")?,
        guest_time_ticks: opt(43, "guest_time")?,
    })
}

/// The fields of /proc/<pid>/stat a process sampler needs each tick (2 to 24), the command name
/// borrowed from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatHead<'a> {
    pub pid: u32,
    /// The raw bytes between the first `(` and the last `)`.
    pub comm: &'a [u8],
    pub state: u8,
    pub ppid: u32,
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub num_threads: u64,
    pub starttime_ticks: u64,
    pub rss_pages: u64,
}

/// [`parse_stat`]'s fields 1 to 24 in one pass that allocates nothing and stops at field 24 (a
/// process sampler's hot path reads this file for every process every tick). `None` where
/// [`parse_stat`] would fail on these fields; it is laxer only past field 24 and on what follows,
/// so a caller wanting the reason parses again with [`parse_stat`].
pub fn parse_stat_head(buf: &[u8]) -> Option<StatHead<'_>> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    let comm = buf.get(open + 1..close)?;
    let mut head = fields(buf.get(..open)?);
    let pid = u32::try_from(crate::parse::u64_of(head.next()?)?).ok()?;
    if head.next().is_some() {
        return None;
    }
    let mut tail = buf.get(close + 1..)?;
    if let Some(stripped) = tail.strip_suffix(b"\n") {
        tail = stripped;
    }
    // Fields 3..=24, in order; a newline among them means a malformed file.
    let mut values = [0u64; 22];
    let mut state = 0u8;
    let mut it = tail.split(|&b| b == b' ' || b == b'\t').filter(|f| !f.is_empty());
    for (k, slot) in values.iter_mut().enumerate() {
        let f = it.next()?;
        if k == 0 {
            match f {
                [c] if c.is_ascii_alphabetic() => state = *c,
                _ => return None,
            }
        } else if matches!(k + 3, 4 | 10 | 12 | 14 | 15 | 20 | 22 | 23 | 24) {
            *slot = crate::parse::u64_of(f)?;
        } else if f.contains(&b'\n') {
            return None;
        }
    }
    Some(StatHead {
        pid,
        comm,
        state,
        ppid: u32::try_from(values[1]).ok()?,
        utime_ticks: values[11],
        stime_ticks: values[12],
        num_threads: values[17],
        starttime_ticks: values[19],
        rss_pages: values[21],
    })
}

/// The keys of /proc/<pid>/status hvstat uses; `kB` values converted to bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidStatus {
    pub name: Option<String>,
    pub tgid: Option<u32>,
    pub vm_rss_bytes: Option<u64>,
    pub vm_hwm_bytes: Option<u64>,
    pub vm_swap_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    pub rss_shmem_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub voluntary_ctxt_switches: Option<u64>,
    pub nonvoluntary_ctxt_switches: Option<u64>,
}

/// Parses the whole file: `Key:\tvalue` lines; keys the struct does not keep are skipped unread. Kernel
/// threads have no `Vm*`/`Rss*` lines (those stay `None`), `RssAnon`, `RssFile` and `RssShmem` arrived
/// in Linux 4.5, `VmSwap` in 2.6.34. `Name` is the command name with the kernel's escapes undone
/// (`\n` and `\\`: proc_task_name() in fs/proc/array.c escapes them so that the file stays one
/// key per line).
pub fn parse_status(buf: &[u8]) -> ParseResult<PidStatus> {
    let mut s = PidStatus::default();
    let mut any = false;
    for (n, line) in lines(buf) {
        any = true;
        let Some((key, rest)) = split_once(line, b':') else {
            return Err(ParseError::new(n, format!("expected \"Key: value\", got {:?}", lossy(line))));
        };
        let (slot, kb) = match key {
            b"Name" => {
                if s.name.is_some() {
                    return Err(ParseError::new(n, "repeated key \"Name\""));
                }
                // The kernel writes "Name:\t"; anything after that tab belongs to the name.
                s.name = Some(name_of(&unescape_name(rest.strip_prefix(b"\t").unwrap_or(rest))));
                continue;
            }
            b"Tgid" => {
                if s.tgid.is_some() {
                    return Err(ParseError::new(n, "repeated key \"Tgid\""));
                }
                let v = status_number(n, key, rest, &mut None, false)?;
                s.tgid = Some(u32::try_from(v).map_err(|_| ParseError::new(n, format!("Tgid: out of range: {v}")))?);
                continue;
            }
            b"VmRSS" => (&mut s.vm_rss_bytes, true),
            b"VmHWM" => (&mut s.vm_hwm_bytes, true),
            b"VmSwap" => (&mut s.vm_swap_bytes, true),
            b"RssAnon" => (&mut s.rss_anon_bytes, true),
            b"RssFile" => (&mut s.rss_file_bytes, true),
            b"RssShmem" => (&mut s.rss_shmem_bytes, true),
            b"Threads" => (&mut s.threads, false),
            b"voluntary_ctxt_switches" => (&mut s.voluntary_ctxt_switches, false),
            b"nonvoluntary_ctxt_switches" => (&mut s.nonvoluntary_ctxt_switches, false),
            _ => continue,
        };
        status_number(n, key, rest, slot, kb)?;
    }
    if !any {
        return Err(ParseError::new(0, "empty file"));
    }
    Ok(s)
}

/// The value of a numeric status line, `N` or (with `kb`) `N kB` converted to bytes; stored in `slot`,
/// which must still be empty. Returns the value.
fn status_number(n: usize, key: &[u8], rest: &[u8], slot: &mut Option<u64>, kb: bool) -> ParseResult<u64> {
    let what = lossy(key);
    if slot.is_some() {
        return Err(ParseError::new(n, format!("repeated key {what:?}")));
    }
    let bad = || {
        ParseError::new(
            n,
            format!("{what}: expected {}, got {:?}", if kb { "\"N kB\"" } else { "a number" }, lossy(rest)),
        )
    };
    let mut f = fields(rest);
    let v = f.next().and_then(u64_of).ok_or_else(bad)?;
    let v = if kb {
        match f.next() {
            Some(b"kB") => {
                v.checked_mul(1024).ok_or_else(|| ParseError::new(n, format!("{what}: {v} kB overflows")))?
            }
            _ => return Err(bad()),
        }
    } else {
        v
    };
    if f.next().is_some() {
        return Err(bad());
    }
    *slot = Some(v);
    Ok(v)
}

/// Undoes the escaping of the `Name:` value: `\n` is a newline, `\\` a backslash; any other byte,
/// and a backslash before anything else, stays as written.
fn unescape_name(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut it = b.iter().copied().peekable();
    while let Some(c) = it.next() {
        match (c, it.peek()) {
            (b'\\', Some(b'n')) => {
                out.push(b'\n');
                it.next();
            }
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                it.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// /proc/<pid>/statm: memory sizes in pages (proc_pid_statm() in fs/proc/array.c, task_statm() in
/// fs/proc/task_mmu.c). `resident_pages` is the sum of the mm's anon, file and shmem counters, the
/// same sum /proc/<pid>/status prints as VmRSS (task_mem(), in kB), at a fraction of the cost: seven
/// numbers instead of ~1.4 KB of text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidStatm {
    /// Total program size (VmSize).
    pub size_pages: u64,
    /// Resident set (VmRSS): anonymous + file + shmem pages.
    pub resident_pages: u64,
    /// Resident file-backed and shmem pages (RssFile + RssShmem).
    pub shared_pages: u64,
    /// Text (code).
    pub text_pages: u64,
    /// Data + stack.
    pub data_pages: u64,
}

/// Parses the one line of exactly seven numbers: `size resident shared text lib data dt`. `lib` and
/// `dt` have been written as 0 since Linux 2.6 and are checked to be numbers but not kept. A process
/// without a memory map (a kernel thread, or one past exit_mm() while it exits) shows seven zeros,
/// which parse as such: telling that apart from a real size is the caller's business.
pub fn parse_statm(buf: &[u8]) -> ParseResult<PidStatm> {
    let line = only_line(buf)?;
    let mut f = fields(line);
    let mut next = |what: &str| u64_field(1, f.next(), what);
    let (size_pages, resident_pages, shared_pages, text_pages) = (next("size")?, next("resident")?, next("shared")?, next("text")?);
    next("lib")?;
    let data_pages = next("data")?;
    next("dt")?;
    if let Some(extra) = f.next() {
        return Err(ParseError::new(1, format!("unexpected {:?} after the seven values", lossy(extra))));
    }
    Ok(PidStatm { size_pages, resident_pages, shared_pages, text_pages, data_pages })
}

/// /proc/<pid>/io (needs ptrace access; root reads all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidIo {
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub cancelled_write_bytes: u64,
}

/// Parses the whole file: `key: N` lines, all seven keys required (they have been there together since
/// the file appeared in Linux 2.6.20), unknown keys skipped.
pub fn parse_io(buf: &[u8]) -> ParseResult<PidIo> {
    let mut v = [None; 7];
    flat_keyed(buf, &mut v, |v, key| {
        let i = IO_KEYS.iter().position(|&k| k == key)?;
        v.get_mut(i)
    })?;
    let get = |i: usize| {
        v.get(i).copied().flatten().ok_or_else(|| {
            let key = IO_KEYS.get(i).copied().unwrap_or_default();
            ParseError::new(0, format!("{} missing", lossy(key)))
        })
    };
    Ok(PidIo {
        rchar: get(0)?,
        wchar: get(1)?,
        syscr: get(2)?,
        syscw: get(3)?,
        read_bytes: get(4)?,
        write_bytes: get(5)?,
        cancelled_write_bytes: get(6)?,
    })
}

const IO_KEYS: [&[u8]; 7] =
    [b"rchar:", b"wchar:", b"syscr:", b"syscw:", b"read_bytes:", b"write_bytes:", b"cancelled_write_bytes:"];

/// /proc/<pid>/schedstat and task/<tid>/schedstat: `run_ns wait_ns timeslices` (Documentation/
/// scheduler/sched-stats.rst). Wait time is the run-queue delay: for a vCPU thread, the host's view
/// of steal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedStat {
    pub run_ns: u64,
    pub wait_ns: u64,
    pub timeslices: u64,
}

/// Parses the one line of exactly three numbers.
pub fn parse_schedstat(buf: &[u8]) -> ParseResult<SchedStat> {
    let line = only_line(buf)?;
    let mut f = fields(line);
    let s = SchedStat {
        run_ns: u64_field(1, f.next(), "run time")?,
        wait_ns: u64_field(1, f.next(), "wait time")?,
        timeslices: u64_field(1, f.next(), "timeslices")?,
    };
    if let Some(extra) = f.next() {
        return Err(ParseError::new(1, format!("unexpected {:?} after the three values", lossy(extra))));
    }
    Ok(s)
}

/// cgroup.procs / cgroup.threads / tasks: one pid per line (possibly empty).
/// An empty file (an empty cgroup) is an empty list; each line must hold exactly one number.
pub fn parse_pid_list(buf: &[u8]) -> ParseResult<Vec<u32>> {
    let mut out = Vec::new();
    for (n, line) in lines(buf) {
        let mut f = fields(line);
        out.push(u32_field(n, f.next(), "pid")?);
        if let Some(extra) = f.next() {
            return Err(ParseError::new(n, format!("pid: unexpected {:?} after the value", lossy(extra))));
        }
    }
    Ok(out)
}

/// One line of /proc/<pid>/cgroup: `hierarchy-ID:controller-list:cgroup-path`. v2 is `0::/path`;
/// v1 lines list controllers (`4:memory:/docker/abc`, `1:name=systemd:/init.scope`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMembership {
    pub hierarchy_id: u32,
    /// Empty for v2.
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parses the whole file, one entry per line in file order. The path is everything after the second
/// `:` (it may contain colons, but never a newline: cgroup_mkdir() refuses names with one so that this
/// file stays parsable). It starts with `/`; outside the reader's cgroup namespace it starts with
/// `/..`, and for a removed v2 cgroup the kernel appends ` (deleted)`, which is kept here. An empty
/// file is an empty list.
pub fn parse_cgroup(buf: &[u8]) -> ParseResult<Vec<CgroupMembership>> {
    let mut out = Vec::new();
    for (n, line) in lines(buf) {
        let bad = || ParseError::new(n, format!("expected \"id:controllers:path\", got {:?}", lossy(line)));
        let (id, rest) = split_once(line, b':').ok_or_else(bad)?;
        let (controllers, path) = split_once(rest, b':').ok_or_else(bad)?;
        if !path.starts_with(b"/") {
            return Err(ParseError::new(n, format!("path does not start with \"/\": {:?}", lossy(path))));
        }
        let controllers = if controllers.is_empty() {
            Vec::new()
        } else {
            let mut v = Vec::new();
            for c in controllers.split(|&b| b == b',') {
                if c.is_empty() {
                    return Err(ParseError::new(n, format!("empty controller name in {:?}", lossy(controllers))));
                }
                v.push(name_of(c));
            }
            v
        };
        out.push(CgroupMembership {
            hierarchy_id: u32_field(n, Some(id), "hierarchy id")?,
            controllers,
            path: name_of(path),
        });
    }
    Ok(out)
}

/// The target of a /proc/<pid>/ns/<kind> link, `net:[4026531840]` -> 4026531840 (the inode).
/// `None` unless the text is exactly `kind:[N]` with a kind of lowercase letters and `_`
/// (`pid_for_children`).
pub fn parse_ns_link(text: &str) -> Option<u64> {
    let (kind, rest) = text.split_once(':')?;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return None;
    }
    u64_of(rest.strip_prefix('[')?.strip_suffix(']')?.as_bytes())
}

/// The `Uid:` line of /proc/<pid>/status: the real, effective, saved set and filesystem user ids
/// (proc(5); the line has had these four since Linux 2.2). The process sampler reads it once per
/// process (and again after an exec), so the rest of the file is skipped unread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusUids {
    pub real: u32,
    /// What `ps -o uid`, top and htop show as the process's user.
    pub effective: u32,
    pub saved: u32,
    pub fs: u32,
}

/// Finds the one `Uid:` line and parses its four numbers; a file without it, or with two, is an error.
pub fn parse_status_uids(buf: &[u8]) -> ParseResult<StatusUids> {
    let mut found: Option<(usize, StatusUids)> = None;
    for (n, line) in lines(buf) {
        let Some(rest) = line.strip_prefix(b"Uid:") else { continue };
        if found.is_some() {
            return Err(ParseError::new(n, "repeated key \"Uid\""));
        }
        let mut f = fields(rest);
        let mut next = |what: &str| u32_field(n, f.next(), what);
        let ids = StatusUids { real: next("real uid")?, effective: next("effective uid")?, saved: next("saved uid")?, fs: next("fs uid")? };
        if let Some(extra) = f.next() {
            return Err(ParseError::new(n, format!("Uid: unexpected {:?} after the four ids", lossy(extra))));
        }
        found = Some((n, ids));
    }
    found.map(|(_, ids)| ids).ok_or_else(|| ParseError::new(0, "no \"Uid:\" line"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// /proc/<pid>/stat of the fixture's workload (python3 in a docker cgroup), Linux 6.18: 52 fields.
    const STAT_6_18: &str = "15686 (python3) R 15684 15684 10425 0 -1 4194304 17818 0 6 0 143 4 0 0 20 0 1 0 220182 82481152 18758 18446744073709551615 4321280 7148169 140725730865936 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0 9723336 11027064 890433536 140725730867872 140725730867936 140725730867936 140725730869223 0\n";

    #[test]
    fn stat_6_18() {
        let s = parse_stat(STAT_6_18.as_bytes()).unwrap();
        assert_eq!(
            s,
            PidStat {
                pid: 15686,
                comm: "python3".into(),
                state: 'R',
                ppid: 15684,
                minflt: 17818,
                majflt: 6,
                utime_ticks: 143,
                stime_ticks: 4,
                num_threads: 1,
                starttime_ticks: 220182,
                vsize_bytes: 82481152,
                rss_pages: 18758,
                processor: Some(1),
                delayacct_blkio_ticks: Some(0),
                guest_time_ticks: Some(0),
            }
        );
        // PID 1 of the test VM: a negative nice value (field 19), which is not kept.
        let s = parse_stat(b"1 (process_api) S 0 0 0 0 -1 4194560 32990 23932059 0 4805 44 90 138544 32788 10 -10 11 0 14 35475456 2182 18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n").unwrap();
        assert_eq!((s.pid, s.ppid, s.num_threads, s.minflt, s.majflt, s.stime_ticks), (1, 0, 11, 32990, 0, 90));
        // A kernel thread: no memory.
        let s = parse_stat(b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 14 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n").unwrap();
        assert_eq!((s.comm.as_str(), s.vsize_bytes, s.rss_pages, s.processor), ("kthreadd", 0, 0, Some(1)));
    }

    #[test]
    fn stat_hostile_comm() {
        // Real files of the 6.18 VM: /bin/sleep copied to "a) b (c" and to "x\ny) S 1", then run.
        let s = parse_stat(b"22962 (a) b (c) S 22956 22956 10425 0 -1 4194304 133 0 0 0 0 0 0 0 20 0 1 0 247145 2990080 415 18446744073709551615 94734015512576 94734015530505 140736974145152 0 0 0 0 6 0 1 0 0 17 0 0 0 0 0 0 94734015544592 94734015545856 94734531796992 140736974150369 140736974150382 140736974150382 140736974151662 0\n").unwrap();
        assert_eq!((s.pid, s.comm.as_str(), s.state, s.ppid), (22962, "a) b (c", 'S', 22956));
        assert_eq!((s.minflt, s.vsize_bytes, s.rss_pages), (133, 2990080, 415));
        let s = parse_stat(b"22963 (x\ny) S 1) S 22956 22956 10425 0 -1 4194304 170 70 0 0 0 0 0 0 20 0 1 0 247145 2990080 415 18446744073709551615 94164199661568 94164199679497 140727145502640 0 0 0 0 6 0 1 0 0 17 0 0 0 0 0 0 94164199693584 94164199694848 94164570341376 140727145507550 140727145507564 140727145507564 140727145508845 0\n").unwrap();
        assert_eq!(
            (s.comm.as_str(), s.state, s.ppid, s.minflt, s.starttime_ticks),
            ("x\ny) S 1", 'S', 22956, 170, 247145)
        );
        // An error after such a name is reported on the line where the fields are.
        let e = parse_stat(b"7 (x\ny) S 1 1 1 1 1 1 x 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "minflt: not a number: \"x\""));
    }

    #[test]
    fn stat_older_kernels() {
        // Linux 2.6.32 (RHEL 6): 44 fields, up to cguest_time.
        let s = parse_stat(b"2403 (qemu-kvm) S 1 2402 2402 0 -1 4202816 1385231 0 1 0 2831425 812371 0 0 20 0 4 0 5123 4405006336 1060436 18446744073709551615 1 1 0 0 0 0 2147220031 4096 16963 18446744073709551615 0 0 17 5 0 0 0 2791321 0\n").unwrap();
        assert_eq!((s.processor, s.delayacct_blkio_ticks, s.guest_time_ticks), (Some(5), Some(0), Some(2791321)));
        assert_eq!(s.rss_pages, 1060436);
        // Linux 2.6.18 (RHEL 5): 42 fields, no guest_time (2.6.24).
        let s = parse_stat(b"1 (init) S 0 1 1 0 -1 4194560 634 1185420 9 1041 1 54 2311 5093 15 0 1 0 0 10375168 172 18446744073709551615 4194304 4228028 140737232040464 18446744073709551615 249581457739 0 0 4096 536962595 0 0 0 0 2 0 0 3\n").unwrap();
        assert_eq!((s.processor, s.delayacct_blkio_ticks, s.guest_time_ticks), (Some(2), Some(3), None));
        // Only the required 24 fields.
        let s = parse_stat(b"9 (a) R 1 0 0 0 0 0 5 0 6 0 7 8 0 0 0 0 3 0 100 4096 2\n").unwrap();
        assert_eq!(
            (s.minflt, s.majflt, s.utime_ticks, s.stime_ticks, s.num_threads, s.starttime_ticks),
            (5, 6, 7, 8, 3, 100)
        );
        assert_eq!((s.rss_pages, s.processor, s.guest_time_ticks), (2, None, None));
    }

    #[test]
    fn stat_errors() {
        let short = parse_stat(b"9 (a) R 1 0 0 0 0 0 5 0 6 0 7 8 0 0 0 0 3 0 100 4096\n").unwrap_err();
        assert_eq!(short.line, 1);
        assert!(short.msg.starts_with("expected at least 24 fields, got 23"), "{short}");
        assert_eq!(parse_stat(b"").unwrap_err(), ParseError::new(1, "no \"(comm)\": \"\""));
        assert_eq!(parse_stat(b"1 a) R (\n").unwrap_err().line, 1);
        assert_eq!(parse_stat(b"x (a) R 1\n").unwrap_err(), ParseError::new(1, "pid: not a number: \"x\""));
        assert_eq!(parse_stat(b"(a) R 1\n").unwrap_err(), ParseError::new(1, "pid: missing"));
        let e = parse_stat(b"1 2 (a) R 1 0 0 0 0 0 5 0 6 0 7 8 0 0 0 0 3 0 100 4096 2\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "unexpected \"2\" between the pid and \"(\""));
        let e = parse_stat(b"9 (a) RR 1 0 0 0 0 0 5 0 6 0 7 8 0 0 0 0 3 0 100 4096 2\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "state: expected one letter, got \"RR\""));
        let e = parse_stat(b"9 (a) R 1 0 0 0 0 0 5 0 6 0 7 8 0 0 0 0 3 0 100 4096 2\nmore\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "unexpected line after the fields: \"more\""));
        let e = parse_stat(b"9 (a) R -1 0 0 0 0 0 5 0 6 0 7 8 0 0 0 0 3 0 100 4096 2\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "ppid: not a number: \"-1\""));
    }

    /// /proc/<pid>/status of the fixture's workload, Linux 6.18.
    const STATUS_6_18: &str = "Name:\tpython3
Umask:\t0022
State:\tR (running)
Tgid:\t15686
Ngid:\t0
Pid:\t15686
PPid:\t15684
TracerPid:\t0
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
FDSize:\t256
Groups:\t 
NStgid:\t15686
NSpid:\t15686
NSpgid:\t15684
NSsid:\t10425
Kthread:\t0
VmPeak:\t   81576 kB
VmSize:\t   80548 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t   75776 kB
VmRSS:\t   75096 kB
RssAnon:\t   68352 kB
RssFile:\t    5720 kB
RssShmem:\t    1024 kB
VmData:\t   70300 kB
VmStk:\t     132 kB
VmExe:\t    2764 kB
VmLib:\t    2192 kB
VmPTE:\t     196 kB
VmSwap:\t       0 kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
THP_enabled:\t1
untag_mask:\t0xffffffffffffffff
Threads:\t1
SigQ:\t1/96365
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000000000000
SigIgn:\t0000000001001000
SigCgt:\t0000000000000002
CapInh:\t0000000000000000
CapPrm:\t000001fffeffffff
CapEff:\t000001fffeffffff
CapBnd:\t000001fffeffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
Seccomp:\t0
Seccomp_filters:\t0
Speculation_Store_Bypass:\tthread vulnerable
SpeculationIndirectBranch:\tconditional enabled
Cpus_allowed:\t3
Cpus_allowed_list:\t0-1
Mems_allowed:\t00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t86
nonvoluntary_ctxt_switches:\t43
";

    /// Linux 3.10 (CentOS 7 style), hand-written in the format of fs/proc/array.c and task_mmu.c at
    /// v3.10: no Umask (4.7), Ngid (3.13), RssAnon/RssFile/RssShmem (4.5), HugetlbPages (4.4).
    const STATUS_3_10: &str = "Name:\tqemu-kvm
State:\tS (sleeping)
Tgid:\t2403
Pid:\t2403
PPid:\t1
TracerPid:\t0
Uid:\t107\t107\t107\t107
Gid:\t107\t107\t107\t107
FDSize:\t128
Groups:\t11 36 107 
VmPeak:\t 5128840 kB
VmSize:\t 5063304 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t 4263968 kB
VmRSS:\t 4232552 kB
VmData:\t 4751364 kB
VmStk:\t     136 kB
VmExe:\t    5900 kB
VmLib:\t   24364 kB
VmPTE:\t    8768 kB
VmSwap:\t       0 kB
Threads:\t6
SigQ:\t0/256741
SigPnd:\t0000000000000000
ShdPnd:\t0000000000000000
SigBlk:\t0000000010002240
SigIgn:\t0000000000001000
SigCgt:\t0000000180004243
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t0000001fffffffff
Seccomp:\t0
Cpus_allowed:\tff
Cpus_allowed_list:\t0-7
Mems_allowed:\t00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t1234567
nonvoluntary_ctxt_switches:\t89012
";

    #[test]
    fn status_uids() {
        let u = parse_status_uids(STATUS_6_18.as_bytes()).unwrap();
        assert_eq!((u.real, u.effective, u.saved, u.fs), (0, 0, 0, 0));
        assert_eq!(parse_status_uids(STATUS_3_10.as_bytes()).unwrap().effective, 107);
        let su = b"Name:\tsudo\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(parse_status_uids(su).unwrap(), StatusUids { real: 1000, effective: 0, saved: 0, fs: 0 });
        assert_eq!(parse_status_uids(b"Name:\tx\n").unwrap_err().line, 0);
        assert_eq!(parse_status_uids(b"Uid:\t1\t2\t3\n").unwrap_err().line, 1);
        assert_eq!(parse_status_uids(b"Uid:\t1\t2\t3\t4\nUid:\t1\t2\t3\t4\n").unwrap_err().line, 2);
    }

    #[test]
    fn status() {
        let s = parse_status(STATUS_6_18.as_bytes()).unwrap();
        assert_eq!(
            s,
            PidStatus {
                name: Some("python3".into()),
                tgid: Some(15686),
                vm_rss_bytes: Some(75096 * 1024),
                vm_hwm_bytes: Some(75776 * 1024),
                vm_swap_bytes: Some(0),
                rss_anon_bytes: Some(68352 * 1024),
                rss_file_bytes: Some(5720 * 1024),
                rss_shmem_bytes: Some(1024 * 1024),
                threads: Some(1),
                voluntary_ctxt_switches: Some(86),
                nonvoluntary_ctxt_switches: Some(43),
            }
        );
        let s = parse_status(STATUS_3_10.as_bytes()).unwrap();
        assert_eq!((s.rss_anon_bytes, s.rss_file_bytes, s.rss_shmem_bytes), (None, None, None), "Rss* since 4.5");
        assert_eq!(s.vm_rss_bytes, Some(4232552 * 1024));
        assert_eq!((s.threads, s.nonvoluntary_ctxt_switches), (Some(6), Some(89012)));
    }

    #[test]
    fn status_kernel_thread_and_odd_names() {
        // kthreadd on 6.18: no Vm* or Rss* lines.
        let s = parse_status(b"Name:\tkthreadd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t2\nNgid:\t0\nPid:\t2\nPPid:\t0\nKthread:\t1\nThreads:\t1\nvoluntary_ctxt_switches:\t64\nnonvoluntary_ctxt_switches:\t0\n").unwrap();
        assert_eq!((s.name.as_deref(), s.tgid, s.threads), (Some("kthreadd"), Some(2), Some(1)));
        assert_eq!((s.vm_rss_bytes, s.vm_hwm_bytes, s.vm_swap_bytes, s.rss_anon_bytes), (None, None, None, None));
        // Real first lines of the hostile names above: the newline is escaped, ")" and "(" are not.
        assert_eq!(parse_status(b"Name:\tx\\ny) S 1\n").unwrap().name.as_deref(), Some("x\ny) S 1"));
        assert_eq!(parse_status(b"Name:\ta) b (c\n").unwrap().name.as_deref(), Some("a) b (c"));
        // A backslash is escaped as two; leading spaces and a colon belong to the name.
        assert_eq!(parse_status(b"Name:\t a\\\\b:c \n").unwrap().name.as_deref(), Some(" a\\b:c "));
    }

    #[test]
    fn status_errors() {
        assert_eq!(parse_status(b"").unwrap_err(), ParseError::new(0, "empty file"));
        let e = parse_status(b"Name:\tx\nVmRSS:\t 12\n").unwrap_err();
        assert_eq!(e, ParseError::new(2, "VmRSS: expected \"N kB\", got \"\\t 12\""));
        let e = parse_status(b"Threads:\t1 kB\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "Threads: expected a number, got \"\\t1 kB\""));
        assert_eq!(
            parse_status(b"Name:\tx\nno colon\n").unwrap_err(),
            ParseError::new(2, "expected \"Key: value\", got \"no colon\"")
        );
        assert_eq!(parse_status(b"Tgid:\t1\nTgid:\t1\n").unwrap_err(), ParseError::new(2, "repeated key \"Tgid\""));
        assert_eq!(
            parse_status(b"Tgid:\t4294967296\n").unwrap_err(),
            ParseError::new(1, "Tgid: out of range: 4294967296")
        );
        assert_eq!(
            parse_status(b"VmRSS:\t1 kB\nVmRSS:\t1 kB\n").unwrap_err(),
            ParseError::new(2, "repeated key \"VmRSS\"")
        );
        let e = parse_status(b"VmRSS:\t18446744073709551615 kB\n").unwrap_err();
        assert_eq!(e, ParseError::new(1, "VmRSS: 18446744073709551615 kB overflows"));
    }

    #[test]
    fn io() {
        // The fixture's workload (O_DIRECT I/O), Linux 6.18; the format dates from 2.6.20.
        let s = parse_io(b"rchar: 16827934\nwchar: 16777252\nsyscr: 62\nsyscw: 22\nread_bytes: 25321472\nwrite_bytes: 16842752\ncancelled_write_bytes: 0\n").unwrap();
        assert_eq!(
            s,
            PidIo {
                rchar: 16827934,
                wchar: 16777252,
                syscr: 62,
                syscw: 22,
                read_bytes: 25321472,
                write_bytes: 16842752,
                cancelled_write_bytes: 0
            }
        );
        assert_eq!(parse_io(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse_io(b"rchar: 1\nwchar: 2\n").unwrap_err(), ParseError::new(0, "syscr: missing"));
        assert_eq!(parse_io(b"rchar: -1\n").unwrap_err(), ParseError::new(1, "rchar:: not a number: \"-1\""));
    }

    #[test]
    fn statm() {
        // This machine (Linux 6.18, 4 KiB pages): pid 1 (VmRSS 11148 kB = 2787 pages), cat's
        // own statm, and kthreadd (no memory map: seven zeros).
        assert_eq!(
            parse_statm(b"12543 2787 1904 1559 0 10260 0\n"),
            Ok(PidStatm { size_pages: 12543, resident_pages: 2787, shared_pages: 1904, text_pages: 1559, data_pages: 10260 })
        );
        assert_eq!(parse_statm(b"765 435 407 5 0 123 0\n").unwrap().resident_pages, 435);
        assert_eq!(parse_statm(b"0 0 0 0 0 0 0\n"), Ok(PidStatm::default()));
        // Without the newline; and the largest values the kernel's unsigned long can print.
        assert_eq!(parse_statm(b"1 2 3 4 0 5 0").unwrap().data_pages, 5);
        let max = u64::MAX;
        let s = parse_statm(format!("{max} {max} {max} {max} {max} {max} {max}\n").as_bytes()).unwrap();
        assert_eq!((s.size_pages, s.resident_pages, s.data_pages), (max, max, max));
    }

    #[test]
    fn statm_errors() {
        assert_eq!(parse_statm(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse_statm(b"\n").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse_statm(b" \n").unwrap_err(), ParseError::new(1, "size: missing"));
        // Truncated: a short read or a cut copy.
        assert_eq!(parse_statm(b"12543 2787\n").unwrap_err(), ParseError::new(1, "shared: missing"));
        assert_eq!(parse_statm(b"12543 2787 1904 1559 0 10260").unwrap_err(), ParseError::new(1, "dt: missing"));
        assert_eq!(parse_statm(b"1 2 3 4 0 5 0 9\n").unwrap_err(), ParseError::new(1, "unexpected \"9\" after the seven values"));
        assert_eq!(parse_statm(b"1 2 3 4 0 5 0\n1 2 3 4 0 5 0\n").unwrap_err().line, 2);
        // Garbage, signs and a value past u64.
        assert_eq!(parse_statm(b"Name:\tqemu\n").unwrap_err(), ParseError::new(1, "size: not a number: \"Name:\""));
        assert_eq!(parse_statm(b"1 -2 3 4 0 5 0\n").unwrap_err(), ParseError::new(1, "resident: not a number: \"-2\""));
        assert_eq!(parse_statm(b"1 2 3 4 x 5 0\n").unwrap_err(), ParseError::new(1, "lib: not a number: \"x\""));
        assert_eq!(
            parse_statm(b"1 18446744073709551616 3 4 0 5 0\n").unwrap_err(),
            ParseError::new(1, "resident: not a number: \"18446744073709551616\"")
        );
        assert!(parse_statm(b"1 2 3 4 0 5 0\0").is_err());
    }

    #[test]
    fn schedstat() {
        // The fixture's workload and kthreadd, Linux 6.18.
        assert_eq!(
            parse_schedstat(b"1484443569 1350210502 130\n"),
            Ok(SchedStat { run_ns: 1484443569, wait_ns: 1350210502, timeslices: 130 })
        );
        assert_eq!(parse_schedstat(b"5336392 4725424 64\n").unwrap().timeslices, 64);
        assert_eq!(parse_schedstat(b"").unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(parse_schedstat(b"1 2\n").unwrap_err(), ParseError::new(1, "timeslices: missing"));
        assert_eq!(
            parse_schedstat(b"1 2 3 4\n").unwrap_err(),
            ParseError::new(1, "unexpected \"4\" after the three values")
        );
    }

    #[test]
    fn pid_list() {
        assert_eq!(parse_pid_list(b"15686\n"), Ok(vec![15686]));
        assert_eq!(parse_pid_list(b"1\n59\n60\n"), Ok(vec![1, 59, 60]));
        assert_eq!(parse_pid_list(b""), Ok(vec![]), "an empty cgroup");
        assert_eq!(parse_pid_list(b"1\n\n2\n").unwrap_err(), ParseError::new(2, "pid: missing"));
        assert_eq!(parse_pid_list(b"1 2\n").unwrap_err(), ParseError::new(1, "pid: unexpected \"2\" after the value"));
        assert_eq!(parse_pid_list(b"4294967296\n").unwrap_err(), ParseError::new(1, "pid: out of range: 4294967296"));
    }

    #[test]
    fn cgroup_hybrid_6_18() {
        // The fixture's workload: v1 hierarchies (cpu and cpuacct separate here) and the v2 line.
        let text = "9:name=systemd:/
8:pids:/docker/5196071ee165475bd9ff7cb99eae4be48c6d6a3e49c8392b88fe512e643e32ce
4:memory:/docker/5196071ee165475bd9ff7cb99eae4be48c6d6a3e49c8392b88fe512e643e32ce
3:cpuset:/
1:cpu:/docker/5196071ee165475bd9ff7cb99eae4be48c6d6a3e49c8392b88fe512e643e32ce
0::/docker/5196071ee165475bd9ff7cb99eae4be48c6d6a3e49c8392b88fe512e643e32ce
";
        let c = parse_cgroup(text.as_bytes()).unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!(
            c[0],
            CgroupMembership { hierarchy_id: 9, controllers: vec!["name=systemd".into()], path: "/".into() }
        );
        assert_eq!(c[4].controllers, ["cpu"]);
        assert_eq!(
            c[5],
            CgroupMembership {
                hierarchy_id: 0,
                controllers: vec![],
                path: "/docker/5196071ee165475bd9ff7cb99eae4be48c6d6a3e49c8392b88fe512e643e32ce".into()
            }
        );
    }

    #[test]
    fn cgroup_other_layouts() {
        // A co-mounted v1 hierarchy (Debian 10, CentOS 7: "cpu,cpuacct").
        let c = parse_cgroup(b"4:cpu,cpuacct:/system.slice/docker-0a1b.scope\n2:net_cls,net_prio:/\n").unwrap();
        assert_eq!(c[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(c[0].path, "/system.slice/docker-0a1b.scope");
        // Pure v2, a path with a colon, a path outside the cgroup namespace, a removed v2 cgroup.
        assert_eq!(parse_cgroup(b"0::/system.slice/a:b.service\n").unwrap()[0].path, "/system.slice/a:b.service");
        assert_eq!(parse_cgroup(b"0::/../../user.slice\n").unwrap()[0].path, "/../../user.slice");
        assert_eq!(parse_cgroup(b"0::/gone (deleted)\n").unwrap()[0].path, "/gone (deleted)");
        assert_eq!(parse_cgroup(b""), Ok(vec![]));
    }

    #[test]
    fn cgroup_errors() {
        assert_eq!(
            parse_cgroup(b"0:/x\n").unwrap_err(),
            ParseError::new(1, "expected \"id:controllers:path\", got \"0:/x\"")
        );
        assert_eq!(parse_cgroup(b"x::/\n").unwrap_err(), ParseError::new(1, "hierarchy id: not a number: \"x\""));
        assert_eq!(
            parse_cgroup(b"0::/\n0::x\n").unwrap_err(),
            ParseError::new(2, "path does not start with \"/\": \"x\"")
        );
        assert_eq!(parse_cgroup(b"4:cpu,:/\n").unwrap_err(), ParseError::new(1, "empty controller name in \"cpu,\""));
        assert_eq!(parse_cgroup(b"0::/\n\n").unwrap_err().line, 2);
    }

    #[test]
    fn ns_link() {
        // readlink /proc/self/ns/* on the 6.18 VM.
        assert_eq!(parse_ns_link("net:[4026531833]"), Some(4026531833));
        assert_eq!(parse_ns_link("pid_for_children:[4026531836]"), Some(4026531836));
        assert_eq!(parse_ns_link("cgroup:[4026531835]"), Some(4026531835));
        for bad in [
            "",
            "net:",
            "net:[]",
            "net:[x]",
            "net:4026531833",
            "net:[1] ",
            ":[1]",
            "Net:[1]",
            "net:[-1]",
            "/proc/1/ns/net",
        ] {
            assert_eq!(parse_ns_link(bad), None, "{bad:?}");
        }
    }

    fn render_stat(pid: u32, comm: &str, state: char, v: &[u64; 12], extra: usize) -> String {
        // Fields 4.. with the kept ones at their places and junk (negative values) elsewhere.
        let mut f: Vec<String> = (4..=52).map(|i| format!("-{i}")).collect();
        for (no, val) in [
            (4, v[0]),
            (10, v[1]),
            (12, v[2]),
            (14, v[3]),
            (15, v[4]),
            (20, v[5]),
            (22, v[6]),
            (23, v[7]),
            (24, v[8]),
            (39, v[9]),
            (42, v[10]),
            (43, v[11]),
        ] {
            f[no - 4] = val.to_string();
        }
        f.truncate(21 + extra);
        format!("{pid} ({comm}) {state} {}\n", f.join(" "))
    }

    proptest! {
        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_stat(&buf);
            let _ = parse_status(&buf);
            let _ = parse_statm(&buf);
            let _ = parse_io(&buf);
            let _ = parse_schedstat(&buf);
            let _ = parse_pid_list(&buf);
            let _ = parse_cgroup(&buf);
            if let Ok(s) = std::str::from_utf8(&buf) {
                let _ = parse_ns_link(s);
            }
        }

        #[test]
        fn never_panics_on_plausible_stat(parts in proptest::collection::vec(prop::sample::select(vec!["1", "(", ")", "a", "R", " ", "\n", "-1", "18446744073709551616", ") R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21"]), 0..40)) {
            let _ = parse_stat(parts.concat().as_bytes());
        }

        /// Any command name (parentheses, newlines, spaces included) and field count from 24 to 52.
        #[test]
        fn stat_round_trip(pid in any::<u32>(), comm in "[^\u{0}]{0,24}", state in "[A-Za-z]", v in proptest::array::uniform12(any::<u32>()), extra in 0usize..29) {
            let v = v.map(u64::from);
            let state = state.chars().next().unwrap();
            let s = parse_stat(render_stat(pid, &comm, state, &v, extra).as_bytes()).unwrap();
            prop_assert_eq!(&s.comm, &comm);
            prop_assert_eq!((s.pid, s.state, s.ppid as u64), (pid, state, v[0]));
            prop_assert_eq!([s.minflt, s.majflt, s.utime_ticks, s.stime_ticks, s.num_threads, s.starttime_ticks, s.vsize_bytes, s.rss_pages], [v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]]);
            let fields = 24 + extra;
            prop_assert_eq!(s.processor.map(u64::from), (fields >= 39).then_some(v[9]));
            prop_assert_eq!(s.delayacct_blkio_ticks, (fields >= 42).then_some(v[10]));
            prop_assert_eq!(s.guest_time_ticks, (fields >= 43).then_some(v[11]));
        }

        #[test]
        fn stat_head_agrees_with_the_full_parse(pid in any::<u32>(), comm in "[^\u{0}]{0,24}", state in "[A-Za-z]", v in proptest::array::uniform12(any::<u32>()), extra in 0usize..29, cut in any::<prop::sample::Index>(), noise in any::<u8>()) {
            let v = v.map(u64::from);
            let text = render_stat(pid, &comm, state.chars().next().unwrap(), &v, extra);
            // The whole line, a cut of it and a one-byte change of it: wherever the full parse
            // succeeds the head has the same fields.
            let mut bytes = text.clone().into_bytes();
            let at = cut.index(bytes.len());
            bytes[at] = noise;
            for b in [text.as_bytes(), &text.as_bytes()[..at], &bytes] {
                if let Ok(s) = parse_stat(b) {
                    let h = parse_stat_head(b).expect("the head parses wherever the whole file does");
                    prop_assert_eq!(String::from_utf8_lossy(h.comm), s.comm.as_str());
                    prop_assert_eq!((h.pid, char::from(h.state), h.ppid), (s.pid, s.state, s.ppid));
                    prop_assert_eq!([h.utime_ticks, h.stime_ticks, h.num_threads, h.starttime_ticks, h.rss_pages], [s.utime_ticks, s.stime_ticks, s.num_threads, s.starttime_ticks, s.rss_pages]);
                }
            }
        }

        #[test]
        fn status_round_trip(name in "[^\u{0}\n]{0,20}", tgid in any::<u32>(), rss_kb in any::<u32>(), anon in proptest::option::of(any::<u32>()), threads in any::<u64>()) {
            let escaped = name.replace('\\', "\\\\");
            let mut text = format!("Name:\t{escaped}\nTgid:\t{tgid}\nVmRSS:\t{rss_kb:>8} kB\n");
            if let Some(a) = anon {
                text += &format!("RssAnon:\t{a:>8} kB\n");
            }
            text += &format!("Threads:\t{threads}\nSigQ:\t0/1\n");
            let s = parse_status(text.as_bytes()).unwrap();
            prop_assert_eq!(s.name.as_deref(), Some(name.as_str()));
            prop_assert_eq!((s.tgid, s.vm_rss_bytes, s.threads), (Some(tgid), Some(u64::from(rss_kb) * 1024), Some(threads)));
            prop_assert_eq!(s.rss_anon_bytes, anon.map(|a| u64::from(a) * 1024));
        }

        #[test]
        fn statm_round_trip(v in proptest::array::uniform7(any::<u64>()), sep in "[ \t]{1,2}") {
            let text = v.map(|x| x.to_string()).join(&sep) + "\n";
            let s = parse_statm(text.as_bytes()).unwrap();
            prop_assert_eq!([s.size_pages, s.resident_pages, s.shared_pages, s.text_pages, s.data_pages], [v[0], v[1], v[2], v[3], v[5]]);
            // A truncated line is an error; only a cut inside the last field (dt, not kept) parses.
            for cut in 0..text.len() - 1 {
                if let Ok(t) = parse_statm(&text.as_bytes()[..cut]) {
                    prop_assert_eq!(t, s, "{:?}", &text[..cut]);
                }
            }
        }

        #[test]
        fn small_files_round_trip(io in proptest::array::uniform7(any::<u64>()), sched in proptest::array::uniform3(any::<u64>()), pids in proptest::collection::vec(any::<u32>(), 0..10), ns in any::<u64>()) {
            let keys = ["rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes"];
            let text: String = keys.iter().zip(io).map(|(k, v)| format!("{k}: {v}\n")).collect();
            let p = parse_io(text.as_bytes()).unwrap();
            prop_assert_eq!([p.rchar, p.wchar, p.syscr, p.syscw, p.read_bytes, p.write_bytes, p.cancelled_write_bytes], io);
            let s = parse_schedstat(format!("{} {} {}\n", sched[0], sched[1], sched[2]).as_bytes()).unwrap();
            prop_assert_eq!([s.run_ns, s.wait_ns, s.timeslices], sched);
            let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
            prop_assert_eq!(parse_pid_list(text.as_bytes()).unwrap(), pids);
            prop_assert_eq!(parse_ns_link(&format!("net:[{ns}]")), Some(ns));
        }

        #[test]
        fn cgroup_round_trip(entries in proptest::collection::vec((any::<u32>(), proptest::collection::vec("[a-z_=]{1,12}", 0..3), "/[^\n]{0,30}"), 0..8)) {
            let text: String = entries.iter().map(|(id, c, p)| format!("{id}:{}:{p}\n", c.join(","))).collect();
            let got = parse_cgroup(text.as_bytes()).unwrap();
            let want: Vec<CgroupMembership> = entries.iter().map(|(id, c, p)| CgroupMembership { hierarchy_id: *id, controllers: c.clone(), path: p.clone() }).collect();
            prop_assert_eq!(got, want);
        }
    }
}
