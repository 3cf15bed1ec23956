//! Capturing what `tracing` writes.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `tracing` writer into a shared buffer: give clones of it to the
/// subscriber (`.with_writer(move || capture.clone())`) and read the text
/// back with [`LogCapture::text`].
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far (lossily decoded as UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn bytes(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A test that panicked while writing leaves the text readable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
