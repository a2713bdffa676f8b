//! Units devices report in, and their conversion to the canonical ones.

use serde::{Deserialize, Serialize};

/// mg/dL per mmol/L of glucose (molar mass 180.156 g/mol).
pub const MGDL_PER_MMOLL: f64 = 18.0156;
const KPA_TO_MMHG: f64 = 7.500_617;
const LB_TO_KG: f64 = 0.453_592_37;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GlucoseUnit {
    #[serde(rename = "mg/dL")]
    MgPerDl,
    #[serde(rename = "mmol/L")]
    MmolPerL,
}

impl GlucoseUnit {
    pub fn to_mg_dl(self, value: f64) -> f64 {
        match self {
            Self::MgPerDl => value,
            Self::MmolPerL => value * MGDL_PER_MMOLL,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MgPerDl => "mg/dL",
            Self::MmolPerL => "mmol/L",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PressureUnit {
    #[serde(rename = "mmHg")]
    MmHg,
    #[serde(rename = "kPa")]
    KPa,
}

impl PressureUnit {
    pub fn to_mmhg(self, value: f64) -> f64 {
        match self {
            Self::MmHg => value,
            Self::KPa => value * KPA_TO_MMHG,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MmHg => "mmHg",
            Self::KPa => "kPa",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightUnit {
    #[serde(rename = "kg")]
    Kg,
    #[serde(rename = "lb")]
    Lb,
}

impl WeightUnit {
    pub fn to_kg(self, value: f64) -> f64 {
        match self {
            Self::Kg => value,
            Self::Lb => value * LB_TO_KG,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kg => "kg",
            Self::Lb => "lb",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemperatureUnit {
    #[serde(rename = "Cel")]
    Celsius,
    #[serde(rename = "degF")]
    Fahrenheit,
}

impl TemperatureUnit {
    pub fn to_celsius(self, value: f64) -> f64 {
        match self {
            Self::Celsius => value,
            Self::Fahrenheit => (value - 32.0) * 5.0 / 9.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Celsius => "Cel",
            Self::Fahrenheit => "degF",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmol_per_l_converts_with_the_molar_mass_factor() {
        assert_eq!(GlucoseUnit::MmolPerL.to_mg_dl(1.0), 18.0156);
        assert!((GlucoseUnit::MmolPerL.to_mg_dl(5.5) - 99.0858).abs() < 1e-9);
        assert_eq!(GlucoseUnit::MgPerDl.to_mg_dl(99.0), 99.0);
    }

    #[test]
    fn other_units_convert_to_canonical() {
        assert!((PressureUnit::KPa.to_mmhg(16.0) - 120.0).abs() < 0.01);
        assert!((WeightUnit::Lb.to_kg(154.0) - 69.853).abs() < 0.001);
        assert!((TemperatureUnit::Fahrenheit.to_celsius(98.6) - 37.0).abs() < 1e-9);
    }
}
