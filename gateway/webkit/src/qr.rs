//! QR codes: drawn as PNG images (the family's emergency shares, the
//! physician's enrolment code), SVG (the web app) and terminal text, and
//! read back from a PNG (the hub reads an enrolment code's picture).
//! qrcode lays out the modules, png writes a grayscale image (8 pixels a
//! module, the 4-module quiet zone the standard asks for); rqrr finds and
//! decodes codes in a picture.

const SCALE: usize = 8;
const QUIET: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the text does not fit a QR code: {0}")]
    Encode(String),
    #[error("writing the PNG: {0}")]
    Png(String),
    #[error("the picture is not a PNG this reader takes: {0}")]
    NotAPicture(String),
    #[error("the picture is {width}x{height} pixels; at most {MAX_SIDE}x{MAX_SIDE} are read")]
    PictureTooLarge { width: u32, height: u32 },
    #[error("no QR code was found in the picture")]
    NoCode,
    #[error("the QR code in the picture could not be read: {0}")]
    Unreadable(String),
}

/// The largest picture side read, in pixels (a phone photo scaled down).
pub const MAX_SIDE: u32 = 4096;

fn encode(text: &str) -> Result<qrcode::QrCode, QrError> {
    qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| QrError::Encode(e.to_string()))
}

/// The code as an SVG image (one unit a module, quiet zone included), for
/// the web app: one path, no script, no external reference.
pub fn svg(text: &str) -> Result<String, QrError> {
    let code = encode(text)?;
    let width = code.width();
    let colors = code.to_colors();
    let side = width + 2 * QUIET;
    let mut path = String::new();
    for y in 0..width {
        for x in 0..width {
            if colors[y * width + x] == qrcode::Color::Dark {
                path.push_str(&format!("M{} {}h1v1h-1z", x + QUIET, y + QUIET));
            }
        }
    }
    Ok(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" shape-rendering="crispEdges" role="img" aria-label="QR code"><rect width="{side}" height="{side}" fill="#fff"/><path d="{path}" fill="#000"/></svg>"##
    ))
}

pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = encode(text)?;
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

/// The code as terminal text: two modules a character cell (upper and lower
/// half blocks), dark on a light background, with the quiet zone.
pub fn terminal(text: &str) -> Result<String, QrError> {
    let code = encode(text)?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Reads the first QR code found in a PNG picture (any colour type and bit
/// depth png expands to 8 bits): its text.
pub fn decode_png(bytes: &[u8]) -> Result<String, QrError> {
    let not_a_picture = |e: &dyn std::fmt::Display| QrError::NotAPicture(e.to_string());
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let header = decoder.read_header_info().map_err(|e| not_a_picture(&e))?;
    let (width, height) = (header.width, header.height);
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(QrError::PictureTooLarge { width, height });
    }
    let mut reader = decoder.read_info().map_err(|e| not_a_picture(&e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| QrError::NotAPicture("picture too large".into()))?;
    let mut buffer = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buffer)
        .map_err(|e| not_a_picture(&e))?;
    let pixels = &buffer[..frame.buffer_size()];
    let channels = frame.color_type.samples();
    let stride = frame.line_size;
    let luma = |x: usize, y: usize| -> u8 {
        let at = y * stride + x * channels;
        match channels {
            1 | 2 => pixels[at],
            _ => {
                let (r, g, b) = (
                    u32::from(pixels[at]),
                    u32::from(pixels[at + 1]),
                    u32::from(pixels[at + 2]),
                );
                ((r * 299 + g * 587 + b * 114) / 1000) as u8
            }
        }
    };
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(
        frame.width as usize,
        frame.height as usize,
        luma,
    );
    let grids = image.detect_grids();
    let grid = grids.first().ok_or(QrError::NoCode)?;
    let (_, text) = grid
        .decode()
        .map_err(|e| QrError::Unreadable(e.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawn_code_reads_back() {
        let text = format!("GLYCO-ENROL-1:{}", "{\"k\":1}".repeat(150));
        assert_eq!(decode_png(&png(&text).unwrap()).unwrap(), text);
    }

    #[test]
    fn pictures_without_a_code_get_typed_errors() {
        assert!(matches!(
            decode_png(b"not a png"),
            Err(QrError::NotAPicture(_))
        ));
        let blank = {
            let mut out = Vec::new();
            let mut encoder = png::Encoder::new(&mut out, 64, 64);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&[255u8; 64 * 64]).unwrap();
            drop(writer);
            out
        };
        assert!(matches!(decode_png(&blank), Err(QrError::NoCode)));
    }

    #[test]
    fn the_terminal_code_has_a_row_per_two_modules() {
        let art = terminal("hello").unwrap();
        let rows = art.lines().count();
        // Version 1 is 21 modules, plus 4 quiet on each side: 29, in 15 rows.
        assert_eq!(rows, 15, "{art}");
    }
}
