//! MQTT ingestion: an embedded rumqttd broker behind a gatekeeper that
//! authenticates each device and confines it to its own topics, the wire
//! format, and the ingest loop that stores readings before acknowledging them.

pub mod broker;
pub mod framing;
pub mod gatekeeper;
pub mod ingest;
pub mod logins;
pub mod sessions;
pub mod shape;
pub mod slots;
pub mod tls;
pub mod topics;
pub mod wire;
