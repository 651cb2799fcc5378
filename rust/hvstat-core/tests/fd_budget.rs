//! The keep budget of read.rs against a real, lowered RLIMIT_NOFILE. Its own test binary (one
//! process): the limit and the budget's counter are process-wide.

use std::fs::File;

use hvstat_core::read::{keep_limit, kept_fds, FileReader, Shape};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn readers_past_the_budget_read_by_opening_and_leave_the_reserve_free() {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid out-pointers; the limit is lowered for this test process only.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        let lowered = libc::rlimit { rlim_cur: 600, rlim_max: r.rlim_max };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lowered), 0);
    }
    // 600 less a reserve of 256.
    assert_eq!(keep_limit(), 344);
    let before = open_fds();
    let mut readers: Vec<FileReader> = (0..500).map(|_| FileReader::new("/proc/self/stat", Shape::Whole)).collect();
    for r in &mut readers {
        // Every read works, kept or not.
        assert!(!r.read().expect("read /proc/self/stat").is_empty());
    }
    assert_eq!(kept_fds(), 344);
    assert_eq!(readers.iter().filter(|r| r.is_kept()).count(), 344);
    assert_eq!(open_fds() - before, 344, "the readers past the budget closed their files");
    // The reserve is there: the process can still open 200 more files.
    let extra: Vec<File> = (0..200).map(|_| File::open("/proc/self/stat").expect("an fd of the reserve")).collect();
    drop(extra);
    // Read again: the same ones are kept, the others open and close again.
    for r in &mut readers {
        r.read().expect("read again");
    }
    assert_eq!(kept_fds(), 344);
    // Dropping a kept reader gives its fd back to the budget, for a reader that had none.
    let kept_at = readers.iter().position(FileReader::is_kept).expect("a kept reader");
    readers.remove(kept_at);
    assert_eq!(kept_fds(), 343);
    let unkept_at = readers.iter().position(|r| !r.is_kept()).expect("an unkept reader");
    readers[unkept_at].read().expect("read");
    assert!(readers[unkept_at].is_kept());
    assert_eq!(kept_fds(), 344);
    drop(readers);
    assert_eq!(kept_fds(), 0);
    assert_eq!(open_fds(), before);
}
