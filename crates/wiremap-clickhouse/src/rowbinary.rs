//! ClickHouse's RowBinary format: little-endian fixed-width numbers, strings and arrays
//! prefixed by a LEB128 length. Writing is infallible; reading checks every length against
//! what is left, because a reply is untrusted input.

use crate::Error;

/// Appends values to a RowBinary body.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(b);
                return;
            }
            self.buf.push(b | 0x80);
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn strs<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a str>) {
        self.varint(items.len() as u64);
        for s in items {
            self.str(s);
        }
    }
    pub(crate) fn u8s(&mut self, items: &[u8]) {
        self.varint(items.len() as u64);
        self.buf.extend_from_slice(items);
    }
    pub(crate) fn i64s(&mut self, items: &[i64]) {
        self.varint(items.len() as u64);
        for v in items {
            self.i64(*v);
        }
    }
}

/// Reads values from a RowBinary reply.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn short() -> Error {
    Error::BadReply("row ends early".into())
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or_else(short)?;
        let s = self.buf.get(self.pos..end).ok_or_else(short)?;
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::BadReply("length prefix too long".into()))
    }

    /// A length that must fit in what is left (each item takes at least `min` bytes), so a
    /// hostile length cannot make us allocate.
    fn len(&mut self, min: usize) -> Result<usize, Error> {
        let n = self.varint()?;
        let left = self.buf.len().saturating_sub(self.pos) as u64;
        if n.saturating_mul(min.max(1) as u64) > left {
            return Err(short());
        }
        Ok(n as usize)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn bool(&mut self) -> Result<bool, Error> {
        Ok(self.u8()? != 0)
    }
    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.fixed()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, Error> {
        Ok(i32::from_le_bytes(self.fixed()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.fixed()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, Error> {
        Ok(i64::from_le_bytes(self.fixed()?))
    }
    pub(crate) fn str(&mut self) -> Result<String, Error> {
        let n = self.len(1)?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::BadReply("text is not UTF-8".into()))
    }
    pub(crate) fn strs(&mut self) -> Result<Vec<String>, Error> {
        let n = self.len(1)?;
        (0..n).map(|_| self.str()).collect()
    }
    pub(crate) fn u8s(&mut self) -> Result<Vec<u8>, Error> {
        let n = self.len(1)?;
        Ok(self.take(n)?.to_vec())
    }
    pub(crate) fn i64s(&mut self) -> Result<Vec<i64>, Error> {
        let n = self.len(8)?;
        (0..n).map(|_| self.i64()).collect()
    }
    pub(crate) fn i32s(&mut self) -> Result<Vec<i32>, Error> {
        let n = self.len(4)?;
        (0..n).map(|_| self.i32()).collect()
    }
    pub(crate) fn u64s(&mut self) -> Result<Vec<u64>, Error> {
        let n = self.len(8)?;
        (0..n).map(|_| self.u64()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_short_or_hostile_input() {
        let mut w = Writer::default();
        w.str("héllo");
        w.u64(u64::MAX);
        w.i64s(&[-1, 2]);
        w.strs(["a", ""].into_iter());
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.str().expect("str"), "héllo");
        assert_eq!(r.u64().expect("u64"), u64::MAX);
        assert_eq!(r.i64s().expect("i64s"), vec![-1, 2]);
        assert_eq!(r.strs().expect("strs"), vec!["a", ""]);
        assert!(r.is_empty());
        // A length far past the body is an error, not an allocation.
        let hostile = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(Reader::new(&hostile).strs().is_err());
        assert!(Reader::new(&hostile).str().is_err());
        assert!(Reader::new(&[0x80; 11]).str().is_err());
        assert!(Reader::new(&[1, 2, 3]).u64().is_err());
        assert!(Reader::new(&[1, 0xff]).str().is_err(), "not UTF-8");
    }
}
