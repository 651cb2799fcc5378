//! Small byte-level helpers shared by every parser. Parsers are pure functions from the bytes of one
//! file to a typed struct; they never panic and report malformed input as a [`ParseError`] with the
//! 1-based line number. The reader that read the bytes adds the path (see [`crate::Error`]).

use std::fmt;

/// A parse failure inside one file's text. `line` is 1-based; 0 means "the file as a whole".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl ParseError {
    pub fn new(line: usize, msg: impl Into<String>) -> Self {
        ParseError { line, msg: msg.into() }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

pub type ParseResult<T> = Result<T, ParseError>;

/// Lines of `buf` with their 1-based numbers; a trailing newline does not make an empty last line.
pub fn lines(buf: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let buf = buf.strip_suffix(b"\n").unwrap_or(buf);
    let mut it = buf.split(|&b| b == b'\n').enumerate().map(|(i, l)| (i + 1, l));
    // An empty file has no lines at all (split would yield one empty slice).
    let empty = buf.is_empty();
    std::iter::from_fn(move || if empty { None } else { it.next() })
}

/// Whitespace-separated fields of one line (spaces and tabs; runs count once).
pub fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ' || b == b'\t').filter(|f| !f.is_empty())
}

/// Unsigned decimal; no sign, no spaces, no overflow.
pub fn u64_of(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in field {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// Signed decimal (hwmon and thermal temperatures can be negative).
pub fn i64_of(field: &[u8]) -> Option<i64> {
    match field.split_first() {
        Some((b'-', rest)) => u64_of(rest).and_then(|v| 0i64.checked_sub_unsigned(v)),
        _ => u64_of(field).and_then(|v| i64::try_from(v).ok()),
    }
}

/// Decimal with an optional fraction, as in /proc/loadavg, /proc/uptime and PSI averages.
pub fn f64_of(field: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(field).ok()?;
    // Only plain decimals: reject "inf", "nan", exponents and signs that str::parse would take.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    s.parse().ok()
}

/// A file that holds one unsigned number and a newline (sysfs attributes, cgroup single values).
pub fn single_u64(buf: &[u8]) -> ParseResult<u64> {
    let text = buf.strip_suffix(b"\n").unwrap_or(buf);
    u64_of(text.trim_ascii()).ok_or_else(|| ParseError::new(1, format!("expected one number, got {:?}", lossy(text))))
}

/// A short printable rendering of bad input for error messages (at most 60 bytes).
pub fn lossy(b: &[u8]) -> String {
    let cut = &b[..b.len().min(60)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if b.len() > 60 {
        s.push('…');
    }
    s
}

/// A required unsigned field: the number, or an error naming `what` and quoting the bad text.
pub fn u64_field(line: usize, field: Option<&[u8]>, what: &str) -> ParseResult<u64> {
    match field {
        Some(f) => u64_of(f).ok_or_else(|| ParseError::new(line, format!("{what}: not a number: {:?}", lossy(f)))),
        None => Err(ParseError::new(line, format!("{what}: missing"))),
    }
}

/// As [`u64_field`] for a 32-bit value (device major and minor numbers, CPU indices).
pub fn u32_field(line: usize, field: Option<&[u8]>, what: &str) -> ParseResult<u32> {
    let v = u64_field(line, field, what)?;
    u32::try_from(v).map_err(|_| ParseError::new(line, format!("{what}: out of range: {v}")))
}

/// A required decimal with an optional fraction ([`f64_of`]); infinities (a run of digits too long
/// for an f64) are refused too, so a parsed value is always finite.
pub fn f64_field(line: usize, field: Option<&[u8]>, what: &str) -> ParseResult<f64> {
    match field {
        Some(f) => f64_of(f)
            .filter(|v| v.is_finite())
            .ok_or_else(|| ParseError::new(line, format!("{what}: not a decimal: {:?}", lossy(f)))),
        None => Err(ParseError::new(line, format!("{what}: missing"))),
    }
}

/// `buf` split at the first `sep`, without the separator.
pub fn split_once(buf: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = buf.iter().position(|&b| b == sep)?;
    Some((buf.get(..i)?, buf.get(i + 1..)?))
}

/// A name taken from the kernel (device, interface, path) as a `String`. The kernel allows any bytes
/// but NUL and `/` in most names; bytes that are not UTF-8 become U+FFFD rather than failing the
/// whole file for one oddly named device.
pub fn name_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The only line of a one-line file (loadavg, uptime, sysfs attributes), without its newline.
/// An empty file or a second line is an error.
pub fn only_line(buf: &[u8]) -> ParseResult<&[u8]> {
    let mut it = lines(buf);
    let first = match it.next() {
        Some((_, l)) => l,
        None => return Err(ParseError::new(0, "empty file")),
    };
    match it.next() {
        Some((n, l)) => Err(ParseError::new(n, format!("expected one line, got another: {:?}", lossy(l)))),
        None => Ok(first),
    }
}

/// The one value of a one-line file (cgroup limits such as `max` or `134217728`, cfs_quota_us): the
/// line must hold exactly one whitespace-separated field.
pub fn single_field(buf: &[u8]) -> ParseResult<&[u8]> {
    let line = only_line(buf)?;
    let mut f = fields(line);
    match (f.next(), f.next()) {
        (Some(v), None) => Ok(v),
        _ => Err(ParseError::new(1, format!("expected one value, got {:?}", lossy(line)))),
    }
}

/// A block device as the cgroup files write it, `MAJ:MIN` (`254:0`).
pub fn dev_field(line: usize, field: &[u8]) -> ParseResult<(u32, u32)> {
    let Some((major, minor)) = split_once(field, b':') else {
        return Err(ParseError::new(line, format!("expected major:minor, got {:?}", lossy(field))));
    };
    Ok((u32_field(line, Some(major), "major")?, u32_field(line, Some(minor), "minor")?))
}

/// The lines of a flat-keyed file (cgroup-v2.rst "Interface Files": `KEY VALUE` per line; the same shape
/// in v1 memory.stat, cpuacct.stat, cpu.stat, memory.oom_control, and /proc/<pid>/io with `key:`
/// keys) as (line number, key, the rest of the line after the key). A line without a key is an error.
pub fn keyed_lines(buf: &[u8]) -> impl Iterator<Item = ParseResult<(usize, &[u8], &[u8])>> {
    lines(buf).map(|(n, line)| {
        let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
        let start = line.iter().position(|b| !is_blank(b)).unwrap_or(line.len());
        let line = line.get(start..).unwrap_or_default();
        let end = line.iter().position(is_blank).unwrap_or(line.len());
        match (line.get(..end), line.get(end..)) {
            (Some(key), Some(rest)) if !key.is_empty() => Ok((n, key, rest)),
            _ => Err(ParseError::new(n, "empty line")),
        }
    })
}

/// Stores the value of a kept key of a flat-keyed file: `rest` (the line after the key) must be exactly
/// one unsigned number, and the key must not have been seen before in the file.
pub fn store_once(n: usize, key: &[u8], rest: &[u8], slot: &mut Option<u64>) -> ParseResult<()> {
    if slot.is_some() {
        return Err(ParseError::new(n, format!("repeated key {:?}", lossy(key))));
    }
    let mut f = fields(rest);
    // The key's name is built only for an error: this runs for every kept key of every cgroup.
    let field = f.next();
    let Some(v) = field.and_then(u64_of) else {
        // Not a number (or missing): u64_field on the same field builds that error.
        return u64_field(n, field, &lossy(key)).map(drop);
    };
    if let Some(extra) = f.next() {
        return Err(ParseError::new(n, format!("{}: unexpected {:?} after the value", lossy(key), lossy(extra))));
    }
    *slot = Some(v);
    Ok(())
}

/// Parses a whole flat-keyed file into `out`: `slot(out, key)` names the field a key is stored in, or
/// `None` for a key to skip without looking at its value, so that whatever a kernel adds cannot break
/// the parse. A kept key needs exactly one unsigned number and may appear once ([`store_once`]). An
/// empty file is an error: every file of this shape has at least one key.
pub fn flat_keyed<T>(
    buf: &[u8],
    out: &mut T,
    slot: impl for<'a> Fn(&'a mut T, &[u8]) -> Option<&'a mut Option<u64>>,
) -> ParseResult<()> {
    let mut any = false;
    for item in keyed_lines(buf) {
        let (n, key, rest) = item?;
        any = true;
        if let Some(s) = slot(out, key) {
            store_once(n, key, rest, s)?;
        }
    }
    if !any {
        return Err(ParseError::new(0, "empty file"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(u64_of(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(u64_of(b"18446744073709551616"), None);
        assert_eq!(u64_of(b"-1"), None);
        assert_eq!(u64_of(b""), None);
        assert_eq!(i64_of(b"-42000"), Some(-42000));
        assert_eq!(i64_of(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(i64_of(b"9223372036854775808"), None);
        assert_eq!(f64_of(b"0.25"), Some(0.25));
        assert_eq!(f64_of(b"nan"), None);
        assert_eq!(f64_of(b"1e9"), None);
    }

    #[test]
    fn line_numbers() {
        let l: Vec<_> = lines(b"a\nb\n").collect();
        assert_eq!(l, vec![(1, &b"a"[..]), (2, &b"b"[..])]);
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(lines(b"x\n\ny").count(), 3);
    }

    #[test]
    fn single() {
        assert_eq!(single_u64(b"123\n"), Ok(123));
        assert!(single_u64(b"x\n").is_err());
    }

    #[test]
    fn field_helpers() {
        assert_eq!(u64_field(3, Some(b"12"), "x"), Ok(12));
        assert_eq!(u64_field(3, Some(b"1x"), "x").unwrap_err(), ParseError::new(3, "x: not a number: \"1x\""));
        assert_eq!(u64_field(3, None, "x").unwrap_err(), ParseError::new(3, "x: missing"));
        assert_eq!(u32_field(1, Some(b"4294967295"), "m"), Ok(u32::MAX));
        assert!(u32_field(1, Some(b"4294967296"), "m").is_err());
        assert_eq!(f64_field(1, Some(b"0.5"), "a"), Ok(0.5));
        let huge = vec![b'9'; 400];
        assert!(f64_field(1, Some(&huge), "a").is_err(), "an infinity is not a value");
        assert_eq!(split_once(b"a:b:c", b':'), Some((&b"a"[..], &b"b:c"[..])));
        assert_eq!(split_once(b"abc", b':'), None);
        assert_eq!(name_of(b"eth\xff0"), "eth\u{fffd}0");
        assert_eq!(only_line(b"x y\n"), Ok(&b"x y"[..]));
        assert_eq!(only_line(b"").unwrap_err().line, 0);
        assert_eq!(only_line(b"a\nb\n").unwrap_err().line, 2);
    }

    #[test]
    fn single_values_and_devices() {
        assert_eq!(single_field(b"max\n"), Ok(&b"max"[..]));
        assert_eq!(single_field(b"  -1 \n"), Ok(&b"-1"[..]));
        assert_eq!(single_field(b"1 2\n").unwrap_err(), ParseError::new(1, "expected one value, got \"1 2\""));
        assert_eq!(single_field(b"\n").unwrap_err().line, 0);
        assert_eq!(single_field(b" \n").unwrap_err().line, 1);
        assert_eq!(dev_field(2, b"254:16"), Ok((254, 16)));
        assert_eq!(dev_field(2, b"254").unwrap_err(), ParseError::new(2, "expected major:minor, got \"254\""));
        assert_eq!(dev_field(2, b"8:x").unwrap_err(), ParseError::new(2, "minor: not a number: \"x\""));
    }

    #[test]
    fn flat_keyed_files() {
        let got: Vec<_> = keyed_lines(b"a 1\n\tb  2 3\nc\n").map(Result::unwrap).collect();
        assert_eq!(got, vec![(1, &b"a"[..], &b" 1"[..]), (2, &b"b"[..], &b"  2 3"[..]), (3, &b"c"[..], &b""[..])]);
        assert_eq!(keyed_lines(b"a 1\n \n").nth(1).unwrap().unwrap_err(), ParseError::new(2, "empty line"));

        let mut slot = None;
        assert_eq!(store_once(4, b"k", b" 7", &mut slot), Ok(()));
        assert_eq!(slot, Some(7));
        assert_eq!(store_once(5, b"k", b" 7", &mut slot).unwrap_err(), ParseError::new(5, "repeated key \"k\""));
        let mut slot = None;
        assert_eq!(
            store_once(1, b"k", b" 7 8", &mut slot).unwrap_err(),
            ParseError::new(1, "k: unexpected \"8\" after the value")
        );
        assert_eq!(store_once(1, b"k", b"", &mut slot).unwrap_err(), ParseError::new(1, "k: missing"));

        fn xy_slot<'a>(v: &'a mut [Option<u64>; 2], key: &[u8]) -> Option<&'a mut Option<u64>> {
            match key {
                b"x" => Some(&mut v[0]),
                b"y" => Some(&mut v[1]),
                _ => None,
            }
        }
        let mut v = [None; 2];
        flat_keyed(b"x 1\nnew 1.5 kB\ny 2\n", &mut v, xy_slot).unwrap();
        assert_eq!(v, [Some(1), Some(2)], "an unknown key is skipped unread");
        assert_eq!(flat_keyed(b"", &mut [None; 2], xy_slot).unwrap_err(), ParseError::new(0, "empty file"));
        assert_eq!(
            flat_keyed(b"x -1\n", &mut [None; 2], xy_slot).unwrap_err(),
            ParseError::new(1, "x: not a number: \"-1\"")
        );
    }
}
