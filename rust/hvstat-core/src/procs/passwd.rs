//! /etc/passwd (passwd(5)): `name:password:UID:GID:GECOS:directory:shell`, for the user names of the
//! per-user view. Read from the node's rootfs, again only when the file changed (its inode, size or
//! mtime), so a user added while hvstat runs gets its name on the next tick.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::parse::{lines, lossy, name_of, u32_field, ParseError, ParseResult};

/// One account: its name and uid (the other fields are not needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
}

/// Parses the whole file, one entry per account line in file order. Empty lines, `#` comments
/// (glibc's files backend skips them) and NIS compat lines (`+name`, `-name`, `+::::::`; nsswitch.conf
/// `passwd: compat`, which name no uid of their own) are skipped; any other line needs at least the
/// name, password and uid fields, a non-empty name and a decimal uid.
pub fn parse(buf: &[u8]) -> ParseResult<Vec<PasswdEntry>> {
    let mut out = Vec::new();
    for (n, line) in lines(buf) {
        if line.is_empty() || matches!(line.first(), Some(b'#' | b'+' | b'-')) {
            continue;
        }
        let mut f = line.split(|&b| b == b':');
        let name = f.next().unwrap_or_default();
        let _password = f.next();
        let uid = f.next();
        if name.is_empty() || uid.is_none() {
            return Err(ParseError::new(n, format!("expected \"name:password:uid:...\", got {:?}", lossy(line))));
        }
        out.push(PasswdEntry { name: name_of(name), uid: u32_field(n, uid, "uid")? });
    }
    Ok(out)
}

/// uid -> name, from a passwd file re-read when it changes. The first entry of a uid wins, as
/// getpwuid(3) returns it.
#[derive(Debug)]
pub struct UserNames {
    path: PathBuf,
    /// (inode, size, mtime in ns) of the file as last parsed.
    seen: Option<(u64, u64, i128)>,
    names: HashMap<u32, String>,
}

impl UserNames {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        UserNames { path: path.into(), seen: None, names: HashMap::new() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-read the file if it changed since the last read. On an error the names read before are
    /// kept (a passwd being rewritten by `useradd` is briefly absent or half written).
    pub fn refresh(&mut self) -> Result<()> {
        let meta = std::fs::metadata(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let key = (meta.ino(), meta.size(), i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()));
        if self.seen == Some(key) {
            return Ok(());
        }
        let buf = std::fs::read(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let entries = parse(&buf).map_err(|e| Error::parse(&self.path, e))?;
        let mut names = HashMap::with_capacity(entries.len());
        for e in entries {
            names.entry(e.uid).or_insert(e.name);
        }
        self.names = names;
        self.seen = Some(key);
        Ok(())
    }

    pub fn name(&self, uid: u32) -> Option<&str> {
        self.names.get(&uid).map(String::as_str)
    }

    /// The uid of a user name (for the per-user thresholds and exclusions, which name users).
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        self.names.iter().find(|(_, n)| n.as_str() == name).map(|(u, _)| *u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debian 12, trimmed; with the NIS and comment lines some hosts carry.
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
libvirt-qemu:x:64055:108:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin
# a comment
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
toor:x:0:0::/root:/bin/sh
+@netadmins::::::
+::::::
";

    #[test]
    fn debian_passwd() {
        let e = parse(PASSWD.as_bytes()).unwrap();
        let got: Vec<(&str, u32)> = e.iter().map(|e| (e.name.as_str(), e.uid)).collect();
        assert_eq!(got, [("root", 0), ("daemon", 1), ("nobody", 65534), ("libvirt-qemu", 64055), ("alice", 1000), ("toor", 0)]);
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert_eq!(parse(b"root:x:0:0::/:/bin/sh\nbroken\n").unwrap_err().line, 2);
        assert_eq!(parse(b"a:x:-1:0::/:/bin/sh\n").unwrap_err().line, 1);
        assert_eq!(parse(b":x:5:0::/:/bin/sh\n").unwrap_err().line, 1);
        assert!(parse(b"").unwrap().is_empty());
    }

    #[test]
    fn names_follow_the_file_and_the_first_uid_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        std::fs::write(&p, PASSWD).unwrap();
        let mut u = UserNames::new(&p);
        u.refresh().unwrap();
        assert_eq!(u.name(0), Some("root"), "toor shares uid 0; getpwuid returns the first");
        assert_eq!(u.name(1000), Some("alice"));
        assert_eq!(u.uid_of("libvirt-qemu"), Some(64055));
        assert_eq!(u.name(1001), None);
        // A user added: the file changed size, so the next refresh re-reads it.
        std::fs::write(&p, format!("{PASSWD}bob:x:1001:1001::/home/bob:/bin/sh\n")).unwrap();
        u.refresh().unwrap();
        assert_eq!(u.name(1001), Some("bob"));
        std::fs::write(&p, "garbage\n").unwrap();
        assert!(u.refresh().is_err());
        assert_eq!(u.name(1001), Some("bob"), "the names read before stay on an error");
    }
}
