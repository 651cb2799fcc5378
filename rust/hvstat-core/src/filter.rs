//! Include/exclude name filters with shell-style globs (`*`, `?`, `[abc]`, `[a-z]`, `[!0-9]`), for
//! disks, interfaces, filesystem types and mount points. Globs rather than regexes because they are
//! what operators write for device names, and a bad one cannot hang or blow up.

/// A compiled shell glob. Matching is on bytes; names in /proc are bytes anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<u8>);

impl Glob {
    /// Rejects an unterminated `[` so that a typo in the config is reported instead of matching
    /// nothing.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let p = pattern.as_bytes();
        let mut i = 0;
        while i < p.len() {
            if p[i] == b'[' {
                match class_end(p, i) {
                    Some(end) => i = end,
                    None => return Err(format!("glob {pattern:?}: '[' without a closing ']'")),
                }
            }
            i += 1;
        }
        Ok(Glob(p.to_vec()))
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(&self.0, name.as_bytes())
    }
}

/// Index of the `]` closing the class that opens at `open`; a `]` right after `[` or `[!` is literal.
fn class_end(p: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if p.get(i) == Some(&b'!') {
        i += 1;
    }
    if p.get(i) == Some(&b']') {
        i += 1;
    }
    while i < p.len() {
        if p[i] == b']' {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn class_matches(class: &[u8], c: u8) -> bool {
    let (negate, body) = match class.split_first() {
        Some((b'!', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut hit = false;
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == b'-' {
            hit |= body[i] <= c && c <= body[i + 2];
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    hit != negate
}

/// Iterative matcher with single-star backtracking: linear in practice, no recursion.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                b'[' => {
                    if let Some(end) = class_end(p, pi) {
                        if class_matches(&p[pi + 1..end], s[si]) {
                            pi = end + 1;
                            si += 1;
                            continue;
                        }
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A name passes when it matches some include glob (an empty include list means all) and no exclude.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl NameFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let compile = |v: &[String]| v.iter().map(|p| Glob::new(p)).collect::<Result<Vec<_>, _>>();
        Ok(NameFilter { include: compile(include)?, exclude: compile(exclude)? })
    }

    pub fn allows(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.matches(name)))
            && !self.exclude.iter().any(|g| g.matches(name))
    }

    /// True when any include glob matches (used for "is this one of the virtual interfaces").
    pub fn any_include_matches(&self, name: &str) -> bool {
        self.include.iter().any(|g| g.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn globs() {
        assert!(m("loop*", "loop0"));
        assert!(!m("loop*", "xloop0"));
        assert!(m("*", ""));
        assert!(m("sd?", "sda"));
        assert!(!m("sd?", "sda1"));
        assert!(m("nvme[0-9]n[0-9]", "nvme0n1"));
        assert!(m("eth[!0]", "eth1"));
        assert!(!m("eth[!0]", "eth0"));
        assert!(m("*tap*", "fwtap100i0"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("[]]", "]"));
        assert!(Glob::new("sd[a").is_err());
    }

    #[test]
    fn filters() {
        let f = NameFilter::new(&[], &["loop*".into(), "ram*".into()]).unwrap();
        assert!(f.allows("sda"));
        assert!(!f.allows("loop3"));
        let f = NameFilter::new(&["eth*".into()], &["eth9".into()]).unwrap();
        assert!(f.allows("eth0") && !f.allows("eth9") && !f.allows("wlan0"));
    }

    proptest! {
        #[test]
        fn literal_patterns_match_only_themselves(s in "[a-z0-9]{0,12}", t in "[a-z0-9]{0,12}") {
            prop_assert_eq!(m(&s, &t), s == t);
            prop_assert!(m("*", &t));
        }

        #[test]
        fn never_panics(p in ".{0,16}", s in ".{0,16}") {
            if let Ok(g) = Glob::new(&p) { let _ = g.matches(&s); }
        }
    }
}
