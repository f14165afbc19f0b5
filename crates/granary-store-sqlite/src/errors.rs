//! Maps SQLite's errors onto [`granary_store::Error`] with messages that say what to do.

use std::path::Path;

use granary_store::Error;
use rusqlite::ErrorCode;

/// The store error for a SQLite failure while `doing` something with the file at `path`.
pub(crate) fn map(error: rusqlite::Error, doing: &str, path: &Path) -> Error {
    let path = path.display();
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::corrupt(format!(
            "{path} is not a granary database (it is not a SQLite file, or its header is damaged): \
             move it away or point the data directory elsewhere"
        )),
        Some(ErrorCode::DatabaseCorrupt) => Error::corrupt(format!(
            "{path} is damaged ({error}) while {doing}: restore it from a backup, or move it away \
             and authorize the instances again"
        )),
        Some(ErrorCode::DiskFull) => Error::backend(
            format!(
                "the disk holding {path} is full (or the database reached its max_page_count), {doing} \
                 was not written: free some space and retry"
            ),
            error,
        ),
        Some(ErrorCode::ReadOnly) => Error::backend(
            format!(
                "{path} is read-only, {doing} failed: make the file, its -wal and -shm files and its folder writable"
            ),
            error,
        ),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => Error::backend(
            format!(
                "cannot open {path} while {doing}: check that its folder exists and that granary may \
                 create and write files there"
            ),
            error,
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::backend(
            format!(
                "{path} stayed locked by another connection for longer than the busy timeout while \
                 {doing}: retry, or find the process that holds a long transaction"
            ),
            error,
        ),
        Some(ErrorCode::SystemIoFailure) => Error::backend(
            format!(
                "an I/O error hit {path} while {doing}: check the disk and the file system, then retry"
            ),
            error,
        ),
        _ => Error::backend(format!("SQLite failed while {doing} on {path}"), error),
    }
}
