//! The MQTT topic scheme (docs/WIRE.md). Each device publishes only to its
//! own readings topic and subscribes only to its own ack topic; the gatekeeper
//! enforces both.

/// Device -> hub: one reading per message, QoS 1.
pub const READINGS_PREFIX: &str = "glyco/v1/readings/";
/// Hub -> device: the application-level acknowledgement of each reading.
pub const ACKS_PREFIX: &str = "glyco/v1/acks/";
/// What the hub's own link subscribes to.
pub const ALL_READINGS: &str = "glyco/v1/readings/+";

pub fn readings_topic(device: &str) -> String {
    format!("{READINGS_PREFIX}{device}")
}

pub fn acks_topic(device: &str) -> String {
    format!("{ACKS_PREFIX}{device}")
}

/// The device name in a readings topic, if the topic is one.
pub fn device_of_readings_topic(topic: &str) -> Option<&str> {
    topic
        .strip_prefix(READINGS_PREFIX)
        .filter(|d| !d.is_empty() && !d.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_topics_name_exactly_one_device() {
        assert_eq!(
            device_of_readings_topic("glyco/v1/readings/cuff-1"),
            Some("cuff-1")
        );
        assert_eq!(
            device_of_readings_topic(&readings_topic("cgm")),
            Some("cgm")
        );
        assert_eq!(device_of_readings_topic("glyco/v1/readings/"), None);
        assert_eq!(device_of_readings_topic("glyco/v1/readings/a/b"), None);
        assert_eq!(device_of_readings_topic("glyco/v1/acks/a"), None);
        assert_eq!(acks_topic("cuff-1"), "glyco/v1/acks/cuff-1");
    }
}
