//! Failure injection for the tests of all-or-nothing operations: a named
//! step can be made to fail once, on the current thread. Compiled to nothing
//! outside `cfg(test)`.

use crate::fsutil::IoFailure;

#[cfg(test)]
thread_local! {
    static ARMED: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Makes the step named `step` fail the next time it runs on this thread.
#[cfg(test)]
pub(crate) fn arm(step: &'static str) {
    ARMED.with(|a| a.borrow_mut().push(step));
}

/// Fails when `step` is armed (and disarms it).
#[cfg(test)]
pub(crate) fn check(step: &'static str) -> Result<(), IoFailure> {
    let armed = ARMED.with(|a| {
        let mut a = a.borrow_mut();
        let found = a.iter().position(|s| *s == step);
        found.map(|i| a.remove(i)).is_some()
    });
    if armed {
        return Err(IoFailure {
            path: std::path::PathBuf::from(step),
            action: "run the injected failure of",
            source: std::io::Error::other("injected failure"),
        });
    }
    Ok(())
}

#[cfg(not(test))]
#[inline(always)]
pub(crate) fn check(_step: &'static str) -> Result<(), IoFailure> {
    Ok(())
}
