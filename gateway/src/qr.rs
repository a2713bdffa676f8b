//! QR codes as PNG images, for the family's emergency shares: qrcode lays
//! out the modules, png writes a grayscale image (8 pixels a module, the
//! 4-module quiet zone the standard asks for).

const SCALE: usize = 8;
const QUIET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the text does not fit a QR code: {0}")]
    Encode(String),
    #[error("writing the PNG: {0}")]
    Png(String),
}

pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| QrError::Encode(e.to_string()))?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for y in 0..width {
        for x in 0..width {
            if colors[y * width + x] == qrcode::Color::Dark {
                for dy in 0..SCALE {
                    let row = (y + QUIET) * SCALE + dy;
                    let start = row * side + (x + QUIET) * SCALE;
                    pixels[start..start + SCALE].fill(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| QrError::Png(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| QrError::Png(e.to_string()))?;
    }
    Ok(out)
}
