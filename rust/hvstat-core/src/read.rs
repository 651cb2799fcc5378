//! Readers that keep a file open and re-read it with `pread` at offset 0.
//!
//! procfs and kernfs files regenerate their content on a read at offset 0, so keeping the fd open
//! saves the open/close pair, which costs more than the read itself for small files (4-10 µs per
//! file against 1-8 µs for the read on the test machines, see bench/README.md).
//!
//! Two kinds of file need different loops:
//! - [`Shape::Whole`]: files made in one go (`single_open` in the kernel: /proc/stat, /proc/meminfo,
//!   /proc/loadavg, /proc/pressure/*, and every sysfs or cgroup attribute). One read with a big enough
//!   buffer returns all of it, so a read that does not fill the buffer is complete and no extra read
//!   for end-of-file is needed. A read that fills the buffer is retried with a bigger one.
//! - [`Shape::Records`]: seq_file files made of many records (/proc/diskstats, /proc/net/dev,
//!   /proc/vmstat, mountinfo). `seq_read_iter` returns at most about one page per call whatever the
//!   buffer size, so a short read proves nothing; these are read until a read returns 0.
//!
//! A file that disappeared (ENOENT, ENODEV, ESRCH) yields [`Error::Gone`] and its fd is closed; the
//! next read tries to open it again, so a file that comes back (a re-created cgroup) is picked up.
//!
//! Kept fds come out of one budget for the whole process ([`reserve_kept_fd`]): the soft
//! RLIMIT_NOFILE less a reserve for everything else (the listening socket, clients, the history
//! database, the output files). Past it a reader opens its file for each read and closes it after:
//! slower, never wrong. Without it a host with enough containers and processes took every fd at
//! start, and the service's listening socket could not be made (asyncio then serves on no socket,
//! silently).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::parse::ParseResult;

/// Fds kept open by this process's readers (every FileReader and the process sampler's files).
static KEPT_FDS: AtomicUsize = AtomicUsize::new(0);

/// The soft RLIMIT_NOFILE (0 when it cannot be read).
pub fn soft_nofile() -> usize {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 0;
    }
    usize::try_from(r.rlim_cur).unwrap_or(usize::MAX)
}

/// Fds readers may keep open: the soft limit less a reserve of an eighth of it, at least 256, that
/// is never taken by a kept file.
pub fn keep_limit() -> usize {
    let soft = soft_nofile();
    soft.saturating_sub((soft / 8).max(256))
}

/// Takes one fd of the keep budget; false when it is spent (the caller then reads by opening the
/// file each time). Every `true` is matched by one [`release_kept_fd`] when the fd closes.
pub fn reserve_kept_fd() -> bool {
    let limit = keep_limit();
    KEPT_FDS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < limit).then_some(n + 1)).is_ok()
}

pub fn release_kept_fd() {
    let _ = KEPT_FDS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// Fds the readers of this process keep open now.
pub fn kept_fds() -> usize {
    KEPT_FDS.load(Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Whole,
    Records,
}

/// Most files a sampler keeps open per guest or process are a few hundred bytes (cgroup.procs,
/// cpu.stat, the pressure files, /proc/<pid>/stat): a page each was ~80 KB of buffers per container
/// (~80 MB with 1000 of them). A bigger file grows its buffer on its first reads and keeps it.
const INITIAL_CAPACITY: usize = 512;
/// No file hvstat reads is near this; past it something is wrong and we stop growing.
const MAX_CAPACITY: usize = 64 << 20;

#[derive(Debug)]
pub struct FileReader {
    /// Candidates in order of preference; `path` is the one open (or the first, before any open).
    candidates: Vec<PathBuf>,
    path: PathBuf,
    shape: Shape,
    file: Option<File>,
    /// The open file is on procfs, where poll() reports changes of the mount table.
    on_procfs: bool,
    /// Close after each read, for files whose content is tied to the open file (v1 cgroup.procs).
    reopen: bool,
    /// The open file holds one fd of the keep budget; an open file that does not is closed after
    /// its read.
    counted: bool,
    /// A read has succeeded at least once: the file exists (or existed) here.
    has_read: bool,
    buf: Vec<u8>,
    len: usize,
}

impl FileReader {
    pub fn new(path: impl Into<PathBuf>, shape: Shape) -> Self {
        Self::first_of(vec![path.into()], shape)
    }

    /// Reads the first of `candidates` that can be opened, trying again in order after it fails.
    /// For files with a preferred and a fallback location (pid 1's view of the host, else ours).
    pub fn first_of(candidates: Vec<PathBuf>, shape: Shape) -> Self {
        let path = candidates.first().cloned().unwrap_or_default();
        FileReader { candidates, path, shape, file: None, on_procfs: false, reopen: false, counted: false, has_read: false, buf: vec![0; INITIAL_CAPACITY], len: 0 }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a read has ever succeeded: tells a file that is not there at all from one that
    /// went away (a removed cgroup, or one removed and made again).
    pub fn has_read(&self) -> bool {
        self.has_read
    }

    /// Open the file for every read instead of keeping it open: cgroup v1 caches a pid list per
    /// open file of cgroup.procs for a second (kernel/cgroup/cgroup-v1.c, pidlist), so a kept fd
    /// read more often than that shows a stale list.
    pub fn reopened_each_read(mut self) -> Self {
        self.reopen = true;
        self
    }

    fn open(&self) -> io::Result<(File, PathBuf)> {
        let mut last = io::Error::from(io::ErrorKind::NotFound);
        for c in &self.candidates {
            match File::open(c) {
                Ok(f) => return Ok((f, c.clone())),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Re-read the file from offset 0 and return its whole content.
    pub fn read(&mut self) -> Result<&[u8]> {
        match self.read_inner() {
            Ok(n) => {
                self.len = n;
                self.has_read = true;
                if !self.counted {
                    self.close();
                }
                Ok(&self.buf[..n])
            }
            Err(e) => {
                // Closing on any error means the next tick re-opens: a vanished file stays
                // "gone" until it comes back, a transient EIO does not poison the fd forever.
                self.close();
                Err(Error::io(&self.path, e))
            }
        }
    }

    /// Read and parse in one step; a parse error names this reader's path.
    pub fn parse<T>(&mut self, parser: impl FnOnce(&[u8]) -> ParseResult<T>) -> Result<T> {
        self.read()?;
        parser(&self.buf[..self.len]).map_err(|e| Error::parse(&self.path, e))
    }

    fn read_inner(&mut self) -> io::Result<usize> {
        if self.file.is_none() {
            let (file, path) = self.open()?;
            self.on_procfs = is_procfs(&file);
            self.file = Some(file);
            self.path = path;
            self.counted = !self.reopen && reserve_kept_fd();
        }
        let Some(file) = self.file.as_ref() else { return Err(io::ErrorKind::NotFound.into()) };
        match self.shape {
            Shape::Whole => loop {
                let n = read_at_retrying(file, &mut self.buf, 0)?;
                if n < self.buf.len() {
                    return Ok(n);
                }
                if self.buf.len() >= MAX_CAPACITY {
                    return Err(too_big());
                }
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            },
            Shape::Records => {
                let mut total = 0;
                loop {
                    if total == self.buf.len() {
                        if self.buf.len() >= MAX_CAPACITY {
                            return Err(too_big());
                        }
                        let grown = self.buf.len() * 2;
                        self.buf.resize(grown, 0);
                    }
                    let n = read_at_retrying(file, &mut self.buf[total..], total as u64)?;
                    if n == 0 {
                        return Ok(total);
                    }
                    total += n;
                }
            }
        }
    }

    /// For /proc/<pid>/mountinfo (and mounts): true when the mount table has not changed since
    /// the file was opened or last reported as changed, so its last content is still right.
    /// The kernel's mounts_poll() flags POLLPRI|POLLERR once per change of the namespace's mount
    /// table (proc(5), "/proc/pid/mounts"). Anything not open or not on procfs counts as changed.
    pub fn mounts_unchanged(&self) -> bool {
        use std::os::fd::AsRawFd;
        let Some(f) = self.file.as_ref().filter(|_| self.on_procfs) else { return false };
        let mut p = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLPRI, revents: 0 };
        // SAFETY: one valid pollfd, zero timeout.
        let rc = unsafe { libc::poll(&mut p, 1, 0) };
        rc == 0
    }

    /// The content of the last successful read.
    pub fn last(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether the file is kept open between reads now.
    pub fn is_kept(&self) -> bool {
        self.file.is_some() && self.counted
    }

    fn close(&mut self) {
        if self.file.take().is_some() && self.counted {
            release_kept_fd();
        }
        self.counted = false;
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        self.close();
    }
}

fn is_procfs(f: &File) -> bool {
    use std::os::fd::AsRawFd;
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a valid out-pointer.
    let rc = unsafe { libc::fstatfs(f.as_raw_fd(), &mut s) };
    rc == 0 && s.f_type == libc::PROC_SUPER_MAGIC
}

/// Reported rather than silently truncating the content.
fn too_big() -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, format!("larger than {} MiB", MAX_CAPACITY >> 20))
}

fn read_at_retrying(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Filesystem capacity from statvfs(3), in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStat {
    pub size_bytes: u64,
    pub free_bytes: u64,
    /// Free to unprivileged users (`df`'s "Avail"); `size - free` is what `df` calls "Used".
    pub avail_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
    /// ST_RDONLY: the mount or its superblock is read-only (an ext4 remounted ro after errors).
    pub read_only: bool,
}

pub fn statvfs(path: &Path) -> Result<FsStat> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::io(path, io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `s` a valid out-pointer for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return Err(Error::io(path, io::Error::last_os_error()));
    }
    let frsize = s.f_frsize as u64;
    Ok(FsStat {
        size_bytes: (s.f_blocks as u64).saturating_mul(frsize),
        free_bytes: (s.f_bfree as u64).saturating_mul(frsize),
        avail_bytes: (s.f_bavail as u64).saturating_mul(frsize),
        inodes: s.f_files as u64,
        inodes_free: s.f_ffree as u64,
        read_only: s.f_flag & libc::ST_RDONLY != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rereads_changed_content_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"one\n").unwrap();
        let mut r = FileReader::new(&p, Shape::Whole);
        assert_eq!(r.read().unwrap(), b"one\n");
        let big = vec![b'x'; 3 * INITIAL_CAPACITY + 7];
        std::fs::File::create(&p).unwrap().write_all(&big).unwrap();
        // The fd stays open on the replaced inode only if it was not re-created; File::create
        // truncates in place, so the same inode shows the new content.
        assert_eq!(r.read().unwrap().len(), big.len());
        let mut r = FileReader::new(&p, Shape::Records);
        assert_eq!(r.read().unwrap().len(), big.len());
    }

    #[test]
    fn vanished_file_is_gone_then_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut r = FileReader::new(&p, Shape::Whole);
        assert!(r.read().unwrap_err().is_gone());
        std::fs::write(&p, b"42\n").unwrap();
        assert_eq!(r.read().unwrap(), b"42\n");
    }

    #[test]
    fn first_of_falls_back_and_prefers_the_first_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&b, b"fallback").unwrap();
        let mut r = FileReader::first_of(vec![a.clone(), b.clone()], Shape::Whole);
        assert_eq!(r.read().unwrap(), b"fallback");
        assert_eq!(r.path(), b);
        std::fs::remove_file(&b).unwrap();
        assert!(r.read().is_ok(), "the open fd still reads the unlinked file");
        std::fs::write(&a, b"preferred").unwrap();
        let mut r = FileReader::first_of(vec![a.clone(), b], Shape::Whole);
        assert_eq!(r.read().unwrap(), b"preferred");
    }

    #[test]
    fn mount_table_changes_are_polled_only_on_procfs() {
        let mut r = FileReader::new("/proc/self/mountinfo", Shape::Records);
        assert!(!r.mounts_unchanged(), "not read yet");
        r.read().unwrap();
        assert!(r.mounts_unchanged(), "nothing was mounted since the open");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mountinfo");
        std::fs::write(&p, b"x").unwrap();
        let mut r = FileReader::new(&p, Shape::Records);
        r.read().unwrap();
        assert!(!r.mounts_unchanged(), "a regular file can change without telling");
    }

    #[test]
    fn records_from_real_proc() {
        // /proc/self/mountinfo is a multi-record seq_file on every Linux: it must read to the end.
        let mut r = FileReader::new("/proc/self/mountinfo", Shape::Records);
        let a = r.read().unwrap().to_vec();
        let b = std::fs::read("/proc/self/mountinfo").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn statvfs_root() {
        let s = statvfs(Path::new("/")).unwrap();
        assert!(s.size_bytes > 0 && s.free_bytes <= s.size_bytes);
        assert!(statvfs(Path::new("/no/such/dir")).unwrap_err().is_gone());
    }
}
