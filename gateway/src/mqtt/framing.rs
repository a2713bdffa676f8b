//! MQTT framing as the gatekeeper reads a device's byte stream: the protocol
//! level of the first CONNECT, whole packets within the size limit, each
//! parsed with rumqttd's codec for that level. Pure functions, so the
//! fuzzer can drive them with any bytes ([`packets`]).

use bytes::BytesMut;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::protocol::{Packet, Protocol};

/// The MQTT protocol level of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 3.1.1 (protocol level 4).
    V4,
    /// 5.
    V5,
}

/// Whether a device may send a packet of this type (the high nibble of
/// its first byte): CONNECT, PUBLISH, the acknowledgements, SUBSCRIBE,
/// UNSUBSCRIBE, PINGREQ, DISCONNECT and (5) AUTH. The server's packet types
/// are refused before parsing: rumqttd's 5 codec panics on a CONNACK or
/// UNSUBACK with a body (found by the `mqtt_stream` fuzz target).
pub fn sent_by_clients(packet_type: u8) -> bool {
    matches!(packet_type, 1 | 3..=8 | 10 | 12 | 14 | 15)
}

impl Version {
    pub fn read(self, buf: &mut BytesMut, max: usize) -> Result<Packet, rumqttd::protocol::Error> {
        if let Some(first) = buf.first()
            && !sent_by_clients(first >> 4)
        {
            return Err(rumqttd::protocol::Error::InvalidPacketType(first >> 4));
        }
        match self {
            Self::V4 => V4.read_mut(buf, max),
            Self::V5 => V5.read_mut(buf, max),
        }
    }

    pub fn write(
        self,
        packet: Packet,
        out: &mut BytesMut,
    ) -> Result<usize, rumqttd::protocol::Error> {
        match self {
            Self::V4 => V4.write(packet, out),
            Self::V5 => V5.write(packet, out),
        }
    }
}

/// The protocol level of a complete CONNECT frame: 4 (3.1.1) or 5.
pub fn connect_level(frame: &[u8]) -> Option<u8> {
    if frame.first()? >> 4 != 1 {
        return None;
    }
    // Skip the remaining-length varint (1 to 4 bytes).
    let mut i = 1;
    while frame.get(i)? & 0x80 != 0 {
        i += 1;
        if i > 4 {
            return None;
        }
    }
    i += 1;
    let name_len = u16::from_be_bytes([*frame.get(i)?, *frame.get(i + 1)?]) as usize;
    frame.get(i.checked_add(2)?.checked_add(name_len)?).copied()
}

/// Where the next packet in `buf` ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole packet of this many bytes is in the buffer.
    Whole(usize),
    /// More bytes are needed.
    Incomplete,
    /// Larger than the limit.
    TooLarge(usize),
    /// Not MQTT framing.
    Bad(String),
}

/// Checks the fixed header of the next packet in `buf`.
pub fn next_frame(buf: &[u8], max_packet: usize) -> Frame {
    match rumqttd::protocol::v4::check(buf.iter(), max_packet) {
        Ok(header) => Frame::Whole(header.frame_length()),
        Err(rumqttd::protocol::Error::InsufficientBytes(_)) => Frame::Incomplete,
        Err(rumqttd::protocol::Error::PayloadSizeLimitExceeded(size)) => Frame::TooLarge(size),
        Err(e) => Frame::Bad(e.to_string()),
    }
}

/// What the gatekeeper makes of a whole byte stream from a device: the
/// first packet must be a CONNECT naming level 4 or 5; then every whole
/// packet is parsed with that level's codec, until the first framing or
/// parse error, or the end of the bytes.
pub fn packets(stream: &[u8], max_packet: usize) -> Vec<Result<Packet, String>> {
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    let mut version = None;
    loop {
        let len = match next_frame(&buf, max_packet) {
            Frame::Whole(len) if len <= buf.len() => len,
            Frame::Whole(_) | Frame::Incomplete => return out,
            Frame::TooLarge(size) => {
                out.push(Err(format!("packet of {size} bytes over the limit")));
                return out;
            }
            Frame::Bad(e) => {
                out.push(Err(e));
                return out;
            }
        };
        let frame = buf.split_to(len);
        let level = match version {
            Some(v) => v,
            None => match connect_level(&frame) {
                Some(4) => Version::V4,
                Some(5) => Version::V5,
                other => {
                    out.push(Err(format!(
                        "first packet is not a level 4/5 CONNECT: {other:?}"
                    )));
                    return out;
                }
            },
        };
        version = Some(level);
        let mut copy = frame.clone();
        match level.read(&mut copy, max_packet) {
            Ok(packet) => out.push(Ok(packet)),
            Err(e) => {
                out.push(Err(e.to_string()));
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_level_is_read_from_a_connect_frame() {
        // CONNECT, remaining length 12, "MQTT", level 4, flags, keep-alive, empty client id.
        let v311 = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        assert_eq!(connect_level(&v311), Some(4));
        let mut v5 = v311;
        v5[8] = 5;
        assert_eq!(connect_level(&v5), Some(5));
        assert_eq!(connect_level(&[0x30, 0]), None, "PUBLISH first");
        assert_eq!(connect_level(&[0x10]), None, "truncated");
        assert_eq!(
            connect_level(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None,
            "overlong length"
        );
    }

    #[test]
    fn a_stream_splits_into_its_packets_and_stops_at_the_first_bad_one() {
        let connect = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        let ping = [0xC0, 0x00];
        let mut stream = connect.to_vec();
        stream.extend(ping);
        stream.extend(ping);
        let parsed = packets(&stream, 1024);
        assert_eq!(parsed.len(), 3);
        assert!(matches!(parsed[0], Ok(Packet::Connect(..))));
        assert!(matches!(parsed[2], Ok(Packet::PingReq(_))));
        // A PUBLISH first is refused; an oversized packet is reported.
        assert!(packets(&[0x30, 0x02, 0x00, 0x00], 1024)[0].is_err());
        stream.extend([0x30, 0xFF, 0x7F]);
        assert!(packets(&stream, 1024).last().unwrap().is_err());
    }

    #[test]
    fn server_packets_from_a_device_are_refused_before_parsing() {
        // The fuzzer's find: a level-5 CONNECT, then a CONNACK with a body.
        let mut connect = vec![0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 0];
        for server_packet in [
            [0x20, 2, 0, 0],
            [0xB0, 2, 0, 1],
            [0x90, 2, 0, 1],
            [0xD0, 1, 0, 0],
        ] {
            let mut stream = connect.clone();
            stream.extend(&server_packet[..2 + server_packet[1] as usize]);
            let parsed = packets(&stream, 1024);
            assert!(matches!(parsed[0], Ok(Packet::Connect(..))));
            assert_eq!(
                parsed[1].as_ref().unwrap_err(),
                &format!("Invalid packet type = {}", server_packet[0] >> 4)
            );
        }
        connect[8] = 4;
        connect[1] = 12;
        connect.pop();
        let mut stream = connect;
        stream.extend([0x20, 2, 0, 0]);
        assert!(packets(&stream, 1024)[1].is_err(), "3.1.1 too");
    }
}
