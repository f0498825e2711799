//! `StatusCell`: one part's live status, written by the part and copied out by `status`. A leaf
//! module, so parts and the status model never import each other.

use std::sync::Mutex;

/// A status value behind a lock. One poison policy for every part: a writer that panicked
/// mid-update leaves a value that is still worth showing, so the lock is recovered, never
/// propagated (status must not take the pages down with it).
#[derive(Debug, Default)]
pub struct StatusCell<T>(Mutex<T>);

impl<T: Clone> StatusCell<T> {
    pub fn new(value: T) -> Self {
        StatusCell(Mutex::new(value))
    }

    pub fn snapshot(&self) -> T {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_writer_does_not_take_the_status_down() {
        let cell = std::sync::Arc::new(StatusCell::new(1u32));
        let c = cell.clone();
        let _ = std::thread::spawn(move || {
            c.update(|v| {
                *v = 2;
                panic!("writer bug");
            })
        })
        .join();
        assert_eq!(cell.snapshot(), 2);
        cell.update(|v| *v += 1);
        assert_eq!(cell.snapshot(), 3);
    }
}
