//! A bounds-checked little-endian cursor over one frame: every read either
//! yields the field or a [`ParseError`] with the field's name and offset.

use super::{DateTime, ParseError, ParseErrorKind, Profile};
use crate::crc::crc16_mcrf4xx;
use crate::ieee11073::{MedFloat, decode_float, decode_sfloat};

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    profile: Profile,
}

impl<'a> Reader<'a> {
    /// Refuses an empty frame up front, so every parser reports it alike.
    pub(crate) fn new(profile: Profile, bytes: &'a [u8]) -> Result<Self, ParseError> {
        if bytes.is_empty() {
            return Err(ParseError {
                profile,
                offset: 0,
                reason: ParseErrorKind::Empty,
            });
        }
        Ok(Reader {
            bytes,
            pos: 0,
            profile,
        })
    }

    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// An error at the current offset.
    pub(crate) fn error(&self, reason: ParseErrorKind) -> ParseError {
        self.error_at(self.pos, reason)
    }

    pub(crate) fn error_at(&self, offset: usize, reason: ParseErrorKind) -> ParseError {
        ParseError {
            profile: self.profile,
            offset,
            reason,
        }
    }

    pub(crate) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ParseError> {
        if self.remaining() < n {
            return Err(self.error(ParseErrorKind::Truncated {
                field,
                needed: n,
                available: self.remaining(),
            }));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, ParseError> {
        Ok(i16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u24(&mut self, field: &'static str) -> Result<u32, ParseError> {
        let [a, b, c] = self.array(field)?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    pub(crate) fn sfloat(&mut self, field: &'static str) -> Result<MedFloat, ParseError> {
        Ok(decode_sfloat(self.u16(field)?))
    }

    pub(crate) fn float(&mut self, field: &'static str) -> Result<MedFloat, ParseError> {
        Ok(decode_float(u32::from_le_bytes(self.array(field)?)))
    }

    /// The 7-octet Date Time characteristic layout (0x2A08) used for the
    /// health profiles' time stamps and base times, as sent: an impossible
    /// date dates the reading wrongly but does not unmake it (the hub flags
    /// it; see [`DateTime::is_valid`]).
    pub(crate) fn date_time(&mut self, field: &'static str) -> Result<DateTime, ParseError> {
        Ok(DateTime::decode(self.array(field)?))
    }

    /// Refuses reserved flag bits, reported at the flags' own offset.
    pub(crate) fn check_reserved(
        &self,
        offset: usize,
        flags: u32,
        allowed: u32,
    ) -> Result<(), ParseError> {
        let bits = flags & !allowed;
        if bits != 0 {
            return Err(self.error_at(offset, ParseErrorKind::ReservedFlags { bits }));
        }
        Ok(())
    }

    /// The frame must end here.
    /// Reads an E2E-CRC (CRC-16/MCRF4XX, little-endian) and checks it over
    /// the bytes from `from` up to it.
    pub(crate) fn e2e_crc(&mut self, from: usize) -> Result<(), ParseError> {
        let at = self.pos;
        let received = self.u16("E2E-CRC")?;
        let computed = crc16_mcrf4xx(&self.bytes[from..at]);
        if received != computed {
            return Err(self.error_at(at, ParseErrorKind::CrcMismatch { received, computed }));
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<(), ParseError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(self.error(ParseErrorKind::TrailingBytes { count })),
        }
    }
}
