//! The crate's one error type. Every variant carries the path it is about, so a message read in a
//! log or an API response says which file failed and, for parse errors, on which line.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::parse::ParseError;

#[derive(Debug)]
pub enum Error {
    /// The file is not there (ENOENT), its device or process went away (ENODEV, ESRCH): a cgroup
    /// removed mid-read, a pid that exited, PSI disabled at boot. Callers usually map this to "absent".
    Gone { path: PathBuf },
    /// Reading failed for another reason (EACCES, EIO, ...).
    Io { path: PathBuf, source: io::Error },
    /// The bytes were read but do not have the expected format.
    Parse { path: PathBuf, line: usize, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: &Path, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ESRCH) | Some(libc::ENOTDIR) => {
                Error::Gone { path: path.to_owned() }
            }
            _ => Error::Io { path: path.to_owned(), source },
        }
    }

    pub fn parse(path: &Path, e: ParseError) -> Self {
        Error::Parse { path: path.to_owned(), line: e.line, msg: e.msg }
    }

    pub fn path(&self) -> &Path {
        match self {
            Error::Gone { path } | Error::Io { path, .. } | Error::Parse { path, .. } => path,
        }
    }

    pub fn is_gone(&self) -> bool {
        matches!(self, Error::Gone { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Gone { path } => write!(f, "{}: not present", path.display()),
            Error::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            Error::Parse { path, line: 0, msg } => write!(f, "{}: {}", path.display(), msg),
            Error::Parse { path, line, msg } => write!(f, "{}:{}: {}", path.display(), line, msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
