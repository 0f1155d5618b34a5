//! How error text is written: an I/O error's cause once, lowercase, without the OS error
//! number ("no such file or directory", not "No such file or directory (os error 2)"), so a
//! message built as `reading FILE: CAUSE; FIX` says its cause exactly once.

/// The cause of an I/O error as a message fragment.
pub fn io_cause(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "no such file or directory".to_owned(),
        K::PermissionDenied => "permission denied".to_owned(),
        K::IsADirectory => "it is a directory".to_owned(),
        K::InvalidData => "it is not UTF-8 text".to_owned(),
        _ => {
            let s = e.to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_owned();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => s,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_lowercase_and_said_once() {
        let e = std::fs::read("/nonexistent/rpload-file").unwrap_err();
        assert_eq!(io_cause(&e), "no such file or directory");
        let e = std::fs::read_to_string("/").unwrap_err();
        assert_eq!(io_cause(&e), "it is a directory");
        let e = std::io::Error::other("Disk on fire (os error 99)");
        assert_eq!(io_cause(&e), "disk on fire");
    }
}
