//! Maps sled's errors (and panics) onto [`granary_store::Error`] with messages that say what
//! to do.

use std::path::Path;

use granary_store::Error;

/// The store error for a sled failure while `doing` something with the folder at `path`.
pub(crate) fn map(error: sled::Error, doing: &str, path: &Path) -> Error {
    let shown = path.display();
    match error {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            Error::unsupported(format!(
                "{shown} is open already (by another process, or another store in this one), and sled 0.34 cannot share a database between \
             processes: stop the other granary, or use the SQLite backend to share a store"
            ))
        }
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => Error::backend(
            format!(
                "granary may not read or write {shown} while {doing}: fix the folder's owner or permissions"
            ),
            io,
        ),
        sled::Error::Io(io) if io.raw_os_error() == Some(28) => Error::backend(
            format!(
                "the disk holding {shown} is full, {doing} was not written: free some space and retry"
            ),
            io,
        ),
        sled::Error::Io(io) => Error::backend(
            format!(
                "an I/O error hit {shown} while {doing}: check that the folder exists, is a folder, and \
                 is writable"
            ),
            io,
        ),
        sled::Error::Corruption { .. } => Error::corrupt(format!(
            "{shown} is damaged (sled found corruption while {doing}): restore it from a backup, or move \
             it away and authorize the instances again"
        )),
        sled::Error::Unsupported(why) => Error::unsupported(format!(
            "{shown} cannot be used ({why}): it was written by another sled version or with other \
             settings; point the data directory elsewhere"
        )),
        other => Error::backend(format!("sled failed while {doing} on {shown}"), other),
    }
}

/// The store error for a panic inside sled (it panics on some damaged files).
pub(crate) fn panicked(doing: &str, path: &Path) -> Error {
    Error::corrupt(format!(
        "sled gave up while {doing} on {} (it panicked; the message is above): the folder is damaged or \
         not a granary sled database; move it away, or restore it from a backup",
        path.display()
    ))
}
