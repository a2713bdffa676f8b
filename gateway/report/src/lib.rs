//! Glucose reports shared by the hub's web app and the clinic's dashboard:
//! the consensus metrics ([`metrics`]), the Ambulatory Glucose Profile
//! ([`agp`]) and their HTML with inline SVG ([`html`]).

pub mod agp;
pub mod html;
pub mod metrics;
pub mod synthetic;

pub use agp::{AgpError, AgpOptions, AgpReport, CgmPoint, agp};
pub use metrics::{GlucoseMetrics, TimeInRanges, glucose_metrics};
