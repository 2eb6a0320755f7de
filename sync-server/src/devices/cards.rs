//! Printable beneficiary cards as a PDF sheet, for field teams that print on plain A4 and cut.
//!
//! Only base-14 fonts are used so the output stays small and needs no font files on the
//! server; the price is that text is limited to WinAnsi, and other characters print as '?'.

use pdf_writer::{Content, Name, Pdf, Rect, Ref, Str};
use qrcode::{Color, EcLevel, QrCode};

/// What is printed on one card. The QR payload is already signed text (opaque here).
#[derive(Debug, Clone)]
pub struct CardFace {
    /// Printed as "No. 000123" (zero-padded to 6+ digits).
    pub serial: u64,
    /// Beneficiary or recipient full name; characters outside WinAnsi print as '?'.
    pub name: String,
    /// The household code or an external id.
    pub reference: String,
    pub plan: String,
    pub village: String,
    pub issued: chrono::NaiveDate,
    /// ASCII text, typically 150-200 chars, encoded as the card's QR code.
    pub qr_payload: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CardSheetError {
    #[error("card {serial}: its QR code cannot be drawn: {reason}")]
    Qr { serial: u64, reason: String },
}

const MM: f32 = 72.0 / 25.4;
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const CARD_W: f32 = 85.6 * MM;
const CARD_H: f32 = 54.0 * MM;
const QR_SIZE: f32 = 40.0 * MM;
const QUIET: usize = 4;
const PER_PAGE: usize = 8;
const LEFT: f32 = (PAGE_W - 2.0 * CARD_W) / 2.0;
const TOP: f32 = PAGE_H - 48.0;
/// WinAnsi's additions in 0x80..=0x9F, in code order; the five unused codes are skipped below.
const WIN_EXTRAS: &str = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ";

/// Renders cards 8 per A4 page (2 columns x 4 rows of ID-1 cards, 85.6 x 54 mm, with thin cut
/// lines), QR code on the left of each card drawn as vector squares, text on the right.
/// Returns an error (not a panic) if a payload cannot be encoded as a QR code.
pub fn render_pdf(title: &str, cards: &[CardFace]) -> Result<Vec<u8>, CardSheetError> {
    // Encode every QR first so a bad payload fails before any output is built.
    let codes = cards
        .iter()
        .map(|c| {
            let qr = QrCode::with_error_correction_level(&c.qr_payload, EcLevel::M);
            qr.map_err(|e| CardSheetError::Qr {
                serial: c.serial,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n_pages = cards.len().div_ceil(PER_PAGE).max(1);
    let (catalog, tree, regular, bold) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4));
    let page_ids: Vec<Ref> = (0..n_pages).map(|i| Ref::new(5 + 2 * i as i32)).collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(n_pages as i32);
    for (id, base) in [(regular, &b"Helvetica"[..]), (bold, b"Helvetica-Bold")] {
        pdf.type1_font(id)
            .base_font(Name(base))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (i, &page_id) in page_ids.iter().enumerate() {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .contents(content_id);
        page.resources()
            .fonts()
            .pair(Name(b"F1"), regular)
            .pair(Name(b"F2"), bold);
        drop(page);

        let mut c = Content::new();
        let (w, y) = (2.0 * CARD_W, PAGE_H - 30.0);
        text(&mut c, (false, 8.0), [LEFT, y], title, w - 70.0);
        let numbering = format!("page {} / {}", i + 1, n_pages);
        text(&mut c, (false, 8.0), [LEFT + w - 60.0, y], &numbering, 60.0);
        if cards.is_empty() {
            text(&mut c, (true, 14.0), [LEFT, TOP - 30.0], "No cards", w);
        }
        let range = i * PER_PAGE..cards.len().min((i + 1) * PER_PAGE);
        for (k, (card, code)) in cards[range.clone()].iter().zip(&codes[range]).enumerate() {
            let x = LEFT + (k % 2) as f32 * CARD_W;
            let y = TOP - (k / 2 + 1) as f32 * CARD_H;
            draw_card(&mut c, x, y, card, code);
        }
        pdf.stream(content_id, &c.finish());
    }
    Ok(pdf.finish())
}

/// Draws one card whose lower-left corner is at (x, y).
fn draw_card(c: &mut Content, x: f32, y: f32, card: &CardFace, code: &QrCode) {
    c.set_line_width(0.3)
        .set_stroke_gray(0.6)
        .rect(x, y, CARD_W, CARD_H)
        .stroke();

    // The quiet zone is part of the 40 mm square. Drawing in module units keeps the stream
    // small, and merging each row's dark runs avoids hairline seams between modules.
    let width = code.width();
    let module = QR_SIZE / (width + 2 * QUIET) as f32;
    let (qx, qy) = (x + 2.0 * MM, y + (CARD_H - QR_SIZE) / 2.0);
    c.save_state()
        .transform([module, 0.0, 0.0, -module, qx, qy + QR_SIZE]);
    for (row, line) in code.to_colors().chunks(width).enumerate() {
        let mut col = 0;
        while col < width {
            let start = col;
            while col < width && line[col] == Color::Dark {
                col += 1;
            }
            if col > start {
                let (rx, ry) = ((QUIET + start) as f32, (QUIET + row) as f32);
                c.rect(rx, ry, (col - start) as f32, 1.0);
            }
            col += 1;
        }
    }
    c.set_fill_gray(0.0).fill_nonzero().restore_state();

    let (tx, top, max_w) = (x + 44.0 * MM, y + CARD_H, CARD_W - 47.0 * MM);
    let issued = card.issued.format("%Y-%m-%d");
    let lines = [
        (false, 7.0, 22.0, format!("No. {:06}", card.serial)),
        (true, 10.0, 42.0, card.name.clone()),
        (false, 8.0, 62.0, format!("Ref: {}", card.reference)),
        (false, 8.0, 78.0, format!("Plan: {}", card.plan)),
        (false, 8.0, 94.0, format!("Village: {}", card.village)),
        (false, 7.0, 114.0, format!("Issued: {issued}")),
    ];
    for (bold, size, down, line) in lines {
        text(c, (bold, size), [tx, top - down], &line, max_w);
    }
}

/// Writes one line of text, cut with an ellipsis so it never runs past `max_w` points.
fn text(c: &mut Content, (bold, size): (bool, f32), [x, y]: [f32; 2], s: &str, max_w: f32) {
    let bytes = fit(s, size * if bold { 1.05 } else { 1.0 }, max_w);
    let font = Name(if bold { b"F2" } else { b"F1" });
    c.begin_text()
        .set_font(font, size)
        .set_text_matrix([1.0, 0.0, 0.0, 1.0, x, y]);
    c.show(Str(&bytes)).end_text();
}

/// Encodes `s` as WinAnsi and cuts it, adding an ellipsis, to at most `max_w` points.
fn fit(s: &str, scale: f32, max_w: f32) -> Vec<u8> {
    let mut bytes: Vec<u8> = s.chars().map(win_ansi).collect();
    let width = |b: &[u8]| b.iter().map(|&ch| em(ch)).sum::<f32>() * scale;
    if width(&bytes) > max_w {
        while !bytes.is_empty() && width(&bytes) + em(0x85) * scale > max_w {
            bytes.pop();
        }
        bytes.push(0x85);
    }
    bytes
}

/// Maps a char to its WinAnsi code, or '?' when the base-14 fonts cannot show it.
fn win_ansi(ch: char) -> u8 {
    match ch as u32 {
        0x20..=0x7E | 0xA0..=0xFF => ch as u8,
        _ => WIN_EXTRAS
            .chars()
            .zip((0x80u8..=0x9F).filter(|b| ![0x81, 0x8D, 0x8F, 0x90, 0x9D].contains(b)))
            .find_map(|(e, b)| (e == ch).then_some(b))
            .unwrap_or(b'?'),
    }
}

/// Rough Helvetica advance widths in em, erring wide so truncated text still fits.
fn em(b: u8) -> f32 {
    match b {
        b'i' | b'j' | b'l' | b'I' | b'.' | b',' | b':' | b';' | b'\'' | b'!' | b'|' => 0.28,
        b' ' | b'f' | b't' | b'r' | b'(' | b')' | b'-' | b'/' => 0.34,
        b'm' | b'w' | b'M' | b'W' | b'@' | 0x85 | 0x89 | 0x8C | 0x97 | 0x9C | 0xC6 | 0xE6 => 1.0,
        b'A'..=b'Z' | 0xC0..=0xDE | b'?' => 0.74,
        _ => 0.56,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(serial: u64, name: &str, payload: &str) -> CardFace {
        CardFace {
            serial,
            name: name.into(),
            reference: "HH-0042".into(),
            plan: "Cash transfer 2025".into(),
            village: "Kédougou".into(),
            issued: chrono::NaiveDate::from_ymd_opt(2025, 3, 14).unwrap(),
            qr_payload: payload.into(),
        }
    }

    fn cards(n: usize) -> Vec<CardFace> {
        (0..n as u64)
            .map(|i| card(i, "Jane Doe", &"A".repeat(180)))
            .collect()
    }

    /// Counts page objects: pdf-writer writes `/Type /Page` for pages, `/Type /Pages` for the tree.
    fn page_count(pdf: &[u8]) -> usize {
        let pat = b"/Type /Page";
        pdf.windows(pat.len() + 1)
            .filter(|w| w.starts_with(pat) && w[pat.len()] != b's')
            .count()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn page_counts() {
        for (n, pages) in [(0, 1), (1, 1), (8, 1), (9, 2), (17, 3)] {
            let pdf = render_pdf("Outpost cards", &cards(n)).unwrap();
            assert!(pdf.starts_with(b"%PDF"));
            assert_eq!(page_count(&pdf), pages, "{n} cards");
            assert!(contains(&pdf, format!("page {pages} / {pages}").as_bytes()));
        }
        assert!(contains(&render_pdf("t", &[]).unwrap(), b"(No cards)"));
    }

    #[test]
    fn accented_name_is_latin1() {
        let pdf = render_pdf("t", &[card(7, "Aïssatou Ndiaye", "x")]).unwrap();
        // pdf-writer writes non-ASCII strings in hex, so look for the Latin-1 bytes in hex.
        let hex: String = b"A\xEFssatou Ndiaye"
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert!(contains(&pdf, format!("<{hex}>").as_bytes()));
        assert!(contains(&pdf, b"(No. 000007)"));
    }

    #[test]
    fn non_latin_name_becomes_question_marks() {
        let pdf = render_pdf("t", &[card(1, "Ступак", "x")]).unwrap();
        assert!(contains(&pdf, b"(??????)"));
        assert_eq!(win_ansi('€'), 0x80);
        assert_eq!(win_ansi('Ÿ'), 0x9F);
        assert_eq!(win_ansi('\u{81}'), b'?');
    }

    #[test]
    fn long_text_is_truncated() {
        let name_w = CARD_W - 47.0 * MM;
        let cut = fit(&"W".repeat(200), 10.5, name_w);
        assert!(cut.len() < 20 && cut.ends_with(&[0x85]), "{cut:?}");
        assert_eq!(fit("Jane Doe", 10.5, name_w), b"Jane Doe");
        render_pdf("t", &[card(1, &"W".repeat(200), "x")]).unwrap();
    }

    #[test]
    fn oversized_payload_is_an_error() {
        let err = render_pdf("t", &[card(1, "a", "x"), card(99, "b", &"z".repeat(5000))]);
        assert!(matches!(err, Err(CardSheetError::Qr { serial: 99, .. })));
    }
}
