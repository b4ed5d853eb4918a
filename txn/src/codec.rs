//! A small binary encoding: a format-version byte, then LEB128 varints and
//! length-prefixed byte strings. Decoding checks every length against the remaining
//! input, so bad bytes give [`TxnError::Decode`], never a panic or a huge allocation.

use crate::error::TxnError;

/// Builds an encoded buffer.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn with_version(version: u8) -> Self {
        Encoder { buf: vec![version] }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }

    pub fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads an encoded buffer.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Decoder<'a> {
    /// Starts decoding `what`, checking the leading format-version byte.
    pub fn with_version(buf: &'a [u8], version: u8, what: &'static str) -> Result<Self, TxnError> {
        let mut d = Decoder { buf, pos: 0, what };
        let found = d.u8()?;
        if found != version {
            return Err(d.error(&format!("unsupported format version {found}")));
        }
        Ok(d)
    }

    fn error(&self, why: &str) -> TxnError {
        TxnError::Decode(format!("{}: {why} at byte {}", self.what, self.pos))
    }

    pub fn u8(&mut self) -> Result<u8, TxnError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.error("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u64(&mut self) -> Result<u64, TxnError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.error("varint overflow"));
            }
            value |= part << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint too long"))
    }

    /// A count of following items, each at least `min_item_len` bytes long.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, TxnError> {
        let n = self.u64()?;
        let remaining = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_item_len.max(1) as u64) > remaining {
            return Err(self.error("count exceeds input"));
        }
        usize::try_from(n).map_err(|_| self.error("count too large"))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], TxnError> {
        let n = self.count(1)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, TxnError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            other => Err(self.error(&format!("bad option tag {other}"))),
        }
    }

    pub fn end(&self) -> Result<(), TxnError> {
        if self.pos != self.buf.len() {
            return Err(self.error("trailing bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut e = Encoder::with_version(1);
            e.u64(v);
            let buf = e.finish();
            let mut d = Decoder::with_version(&buf, 1, "test").unwrap();
            assert_eq!(d.u64().unwrap(), v);
            d.end().unwrap();
        }
        let overlong = [
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        let mut d = Decoder::with_version(&overlong, 1, "test").unwrap();
        assert!(d.u64().is_err());
        let huge_len = [1, 0xff, 0xff, 0xff, 0xff, 0x0f];
        let mut d = Decoder::with_version(&huge_len, 1, "test").unwrap();
        assert!(d.bytes().is_err());
        assert!(Decoder::with_version(&[2], 1, "test").is_err());
    }
}
