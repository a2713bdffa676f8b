//! Record Access Control Point (0x2A52), Glucose Service 1.0 §3.9 (shared
//! with CGMS, PLXS and others). Every message is
//!
//! | octets   | field                           |
//! |----------|---------------------------------|
//! | 1        | Op Code                         |
//! | 1        | Operator                        |
//! | 0..      | Operand (depends on both)       |
//!
//! Op codes: 0x01 report stored records, 0x02 delete stored records, 0x03
//! abort operation, 0x04 report number of stored records, 0x05 number of
//! stored records response, 0x06 response code. Operators: 0x00 null, 0x01
//! all records, 0x02 ≤, 0x03 ≥, 0x04 within range (inclusive), 0x05 first
//! record, 0x06 last record. Filtered operators take a Filter Type octet
//! first; for the Glucose Service 0x01 is Sequence Number (uint16 operands).
//!
//! The collector writes a request; the server answers with indications: the
//! records themselves as Glucose Measurement notifications, then either a
//! Number of Stored Records response (`05 00 <uint16>`) or a Response Code
//! (`06 00 <request op code> <response code value>`).

use super::reader::Reader;
use super::{ParseError, ParseErrorKind, Profile};

const OP_REPORT: u8 = 0x01;
const OP_DELETE: u8 = 0x02;
const OP_ABORT: u8 = 0x03;
const OP_REPORT_NUMBER: u8 = 0x04;
const OP_NUMBER_RESPONSE: u8 = 0x05;
const OP_RESPONSE_CODE: u8 = 0x06;

const OPERATOR_NULL: u8 = 0x00;
const OPERATOR_ALL: u8 = 0x01;
const OPERATOR_LE: u8 = 0x02;
const OPERATOR_GE: u8 = 0x03;
const OPERATOR_RANGE: u8 = 0x04;
const OPERATOR_FIRST: u8 = 0x05;
const OPERATOR_LAST: u8 = 0x06;

const FILTER_SEQUENCE: u8 = 0x01;

/// Which stored records a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordFilter {
    /// All records.
    All,
    /// Sequence number ≥ n: what a reconnecting collector asks with its
    /// cursor + 1.
    SequenceAtLeast(u16),
    /// Sequence number ≤ n.
    SequenceAtMost(u16),
    /// First ≤ sequence number ≤ last.
    SequenceRange(u16, u16),
    /// The oldest record.
    First,
    /// The newest record.
    Last,
}

/// A request the collector writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RacpRequest {
    /// Op code 0x01: send the selected records as notifications.
    ReportStoredRecords(RecordFilter),
    /// Op code 0x04: say how many records the filter selects.
    ReportNumberOfRecords(RecordFilter),
    /// Op code 0x02: delete the selected records (the hub never sends it;
    /// here for completeness of the encoder).
    DeleteStoredRecords(RecordFilter),
    /// Op code 0x03: abort the running report.
    Abort,
}

impl RacpRequest {
    /// The bytes to write to the RACP.
    pub fn encode(&self) -> Vec<u8> {
        let (op, filter) = match *self {
            RacpRequest::ReportStoredRecords(f) => (OP_REPORT, Some(f)),
            RacpRequest::ReportNumberOfRecords(f) => (OP_REPORT_NUMBER, Some(f)),
            RacpRequest::DeleteStoredRecords(f) => (OP_DELETE, Some(f)),
            RacpRequest::Abort => (OP_ABORT, None),
        };
        let mut out = vec![op];
        match filter {
            None => out.push(OPERATOR_NULL),
            Some(RecordFilter::All) => out.push(OPERATOR_ALL),
            Some(RecordFilter::First) => out.push(OPERATOR_FIRST),
            Some(RecordFilter::Last) => out.push(OPERATOR_LAST),
            Some(RecordFilter::SequenceAtLeast(n)) => {
                out.extend([OPERATOR_GE, FILTER_SEQUENCE]);
                out.extend(n.to_le_bytes());
            }
            Some(RecordFilter::SequenceAtMost(n)) => {
                out.extend([OPERATOR_LE, FILTER_SEQUENCE]);
                out.extend(n.to_le_bytes());
            }
            Some(RecordFilter::SequenceRange(a, b)) => {
                out.extend([OPERATOR_RANGE, FILTER_SEQUENCE]);
                out.extend(a.to_le_bytes());
                out.extend(b.to_le_bytes());
            }
        }
        out
    }

    /// The op code this request carries (what a Response Code echoes).
    pub fn op_code(&self) -> u8 {
        self.encode()[0]
    }
}

/// An indication from the RACP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RacpResponse {
    /// Op code 0x05: the count asked for with op code 0x04.
    NumberOfRecords(u16),
    /// Op code 0x06: how a request ended.
    ResponseCode {
        /// The op code of the request being answered.
        request_op_code: u8,
        /// The outcome.
        code: RacpResponseCode,
    },
}

/// Response Code values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RacpResponseCode {
    /// 0x01: the procedure completed (all selected records were sent).
    Success,
    /// 0x02.
    OpCodeNotSupported,
    /// 0x03.
    InvalidOperator,
    /// 0x04.
    OperatorNotSupported,
    /// 0x05.
    InvalidOperand,
    /// 0x06: nothing matched the filter (nothing new since the cursor).
    NoRecordsFound,
    /// 0x07.
    AbortUnsuccessful,
    /// 0x08.
    ProcedureNotCompleted,
    /// 0x09.
    OperandNotSupported,
    /// Any other value (reserved).
    Reserved(u8),
}

impl RacpResponseCode {
    fn from_u8(v: u8) -> RacpResponseCode {
        use RacpResponseCode::*;
        match v {
            0x01 => Success,
            0x02 => OpCodeNotSupported,
            0x03 => InvalidOperator,
            0x04 => OperatorNotSupported,
            0x05 => InvalidOperand,
            0x06 => NoRecordsFound,
            0x07 => AbortUnsuccessful,
            0x08 => ProcedureNotCompleted,
            0x09 => OperandNotSupported,
            other => Reserved(other),
        }
    }

    /// The report ended normally: records were sent, or there were none.
    pub fn is_complete(self) -> bool {
        matches!(
            self,
            RacpResponseCode::Success | RacpResponseCode::NoRecordsFound
        )
    }
}

/// Parses an RACP indication.
pub fn parse_response(frame: &[u8]) -> Result<RacpResponse, ParseError> {
    let mut r = Reader::new(Profile::Racp, frame)?;
    let op = r.u8("op code")?;
    if op != OP_NUMBER_RESPONSE && op != OP_RESPONSE_CODE {
        return Err(r.error_at(0, ParseErrorKind::UnknownOpCode(op)));
    }
    let at = r.offset();
    let operator = r.u8("operator")?;
    if operator != OPERATOR_NULL {
        return Err(r.error_at(
            at,
            ParseErrorKind::ReservedValue {
                field: "operator (responses use null)",
                value: operator.into(),
            },
        ));
    }
    let response = match op {
        OP_NUMBER_RESPONSE => RacpResponse::NumberOfRecords(r.u16("number of records")?),
        OP_RESPONSE_CODE => {
            let request_op_code = r.u8("request op code")?;
            let code = RacpResponseCode::from_u8(r.u8("response code value")?);
            RacpResponse::ResponseCode {
                request_op_code,
                code,
            }
        }
        other => return Err(r.error_at(0, ParseErrorKind::UnknownOpCode(other))),
    };
    r.finish()?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::fuzz;

    #[test]
    fn encodes_requests() {
        // Report all: 01 01.
        assert_eq!(
            RacpRequest::ReportStoredRecords(RecordFilter::All).encode(),
            [0x01, 0x01]
        );
        // Report records with sequence ≥ 0x0104: 01 03 01 04 01.
        assert_eq!(
            RacpRequest::ReportStoredRecords(RecordFilter::SequenceAtLeast(0x0104)).encode(),
            [0x01, 0x03, 0x01, 0x04, 0x01]
        );
        // Number of records, all: 04 01.
        assert_eq!(
            RacpRequest::ReportNumberOfRecords(RecordFilter::All).encode(),
            [0x04, 0x01]
        );
        assert_eq!(
            RacpRequest::ReportNumberOfRecords(RecordFilter::SequenceRange(5, 9)).encode(),
            [0x04, 0x04, 0x01, 0x05, 0x00, 0x09, 0x00]
        );
        assert_eq!(
            RacpRequest::DeleteStoredRecords(RecordFilter::SequenceAtMost(2)).encode(),
            [0x02, 0x02, 0x01, 0x02, 0x00]
        );
        assert_eq!(
            RacpRequest::ReportStoredRecords(RecordFilter::First).encode(),
            [0x01, 0x05]
        );
        assert_eq!(
            RacpRequest::ReportStoredRecords(RecordFilter::Last).encode(),
            [0x01, 0x06]
        );
        assert_eq!(RacpRequest::Abort.encode(), [0x03, 0x00]);
        assert_eq!(RacpRequest::Abort.op_code(), 0x03);
    }

    #[test]
    fn decodes_responses() {
        assert_eq!(
            parse_response(&[0x05, 0x00, 0x2C, 0x01]),
            Ok(RacpResponse::NumberOfRecords(300))
        );
        assert_eq!(
            parse_response(&[0x06, 0x00, 0x01, 0x01]),
            Ok(RacpResponse::ResponseCode {
                request_op_code: 0x01,
                code: RacpResponseCode::Success
            })
        );
        let none = parse_response(&[0x06, 0x00, 0x01, 0x06]).expect("valid");
        assert!(
            matches!(none, RacpResponse::ResponseCode { code, .. } if code == RacpResponseCode::NoRecordsFound && code.is_complete())
        );
        assert_eq!(
            parse_response(&[0x06, 0x00, 0x04, 0x0A]),
            Ok(RacpResponse::ResponseCode {
                request_op_code: 0x04,
                code: RacpResponseCode::Reserved(0x0A)
            })
        );
        assert!(!RacpResponseCode::ProcedureNotCompleted.is_complete());
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse_response(&[]).expect_err("empty").reason,
            ParseErrorKind::Empty
        );
        assert_eq!(
            parse_response(&[0x01, 0x01])
                .expect_err("a request is no response")
                .reason,
            ParseErrorKind::UnknownOpCode(0x01)
        );
        let err = parse_response(&[0x06, 0x00, 0x01]).expect_err("truncated");
        assert_eq!(err.offset, 3);
        let err = parse_response(&[0x05, 0x01, 0x00, 0x00]).expect_err("operator");
        assert_eq!(err.offset, 1);
        let err = parse_response(&[0x05, 0x00, 0x00, 0x00, 0x00]).expect_err("trailing");
        assert_eq!(err.reason, ParseErrorKind::TrailingBytes { count: 1 });
    }

    fn shape(buf: &mut [u8]) {
        if let Some(op) = buf.first_mut() {
            *op = 0x05 + (*op & 1);
        }
        if let Some(operator) = buf.get_mut(1) {
            *operator = 0;
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A52, 8, 20_000, shape, parse_response);
        assert!(ok > 0);
    }
}
