//! The meme image: the template's drawing with the captions over it.
//!
//! Captions are laid out here, without a font: the width of a line is
//! estimated from its characters, the font shrinks until the caption fits its
//! band, and over-long words are broken. Impact-like fonts are narrow, so the
//! estimate (0.6 em per character) errs on the safe side.

use crate::html::{escape, push_escaped};

/// The image is a 600 × 600 square, like the templates.
pub const SIZE: f32 = 600.0;
/// The width a line may take: the image less a margin on each side.
const LINE_WIDTH: f32 = 540.0;
/// Each caption has a band of this height, at the top and at the bottom.
const BAND: f32 = 140.0;
/// The gap between a caption and the image's edge.
const EDGE: f32 = 12.0;
const MAX_FONT: u32 = 56;
const MIN_FONT: u32 = 28;
const FONT_STEP: usize = 2;
const MAX_LINES: usize = 3;
const LINE_HEIGHT: f32 = 1.1;
/// How far the baseline sits below the top of a line of capitals, in em.
const ASCENT: f32 = 0.86;

const FONT_FAMILY: &str = "Impact, 'Anton', 'Arial Black', sans-serif";

/// A caption broken into lines at a font size.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub font_size: u32,
    pub lines: Vec<String>,
}

/// Lays `text` out in upper case: the largest font size from 56 down to 28
/// at which it fits the band in at most three lines, breaking lines between
/// words (and inside words too long for a line). If no size fits that way,
/// the text is packed at 28 breaking anywhere; text too long even for that
/// keeps its first three lines, the last ending in "…".
pub fn layout_caption(text: &str) -> Caption {
    let text = text.to_uppercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    for font_size in (MIN_FONT..=MAX_FONT).rev().step_by(FONT_STEP) {
        let lines = wrap(&words, max_em(font_size));
        if fits(lines.len(), font_size) {
            return Caption { font_size, lines };
        }
    }
    let max = max_em(MIN_FONT);
    let mut lines = pack(&words, max);
    if lines.len() > MAX_LINES {
        lines.truncate(MAX_LINES);
        let last = &mut lines[MAX_LINES - 1];
        while !last.is_empty() && width_em(last) + width_em("…") > max {
            last.pop();
        }
        let kept = last.trim_end().len();
        last.truncate(kept);
        last.push('…');
    }
    Caption {
        font_size: MIN_FONT,
        lines,
    }
}

fn fits(lines: usize, font_size: u32) -> bool {
    lines <= MAX_LINES && lines as f32 * font_size as f32 * LINE_HEIGHT <= BAND - EDGE
}

/// How many em fit on a line at `font_size`.
fn max_em(font_size: u32) -> f32 {
    LINE_WIDTH / font_size as f32
}

/// The estimated width of a character in em: most are 0.6; emoji and East
/// Asian characters take a full em; combining marks and joiners none.
fn char_em(c: char) -> f32 {
    match c as u32 {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0.0,
        0x1100..=0x115F | 0x2600..=0x27BF | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 => 1.0,
        0xF900..=0xFAFF | 0xFF00..=0xFF60 | 0x1F000.. => 1.0,
        _ => 0.6,
    }
}

fn width_em(s: &str) -> f32 {
    s.chars().map(char_em).sum()
}

/// Greedy word wrap to lines of at most `max` em; a word longer than a line
/// is broken into pieces that fit.
fn wrap(words: &[&str], max: f32) -> Vec<String> {
    let space = char_em(' ');
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_em = 0.0;
    for word in words {
        let word_em = width_em(word);
        if line.is_empty() && word_em <= max {
            line.push_str(word);
            line_em = word_em;
        } else if !line.is_empty() && line_em + space + word_em <= max {
            line.push(' ');
            line.push_str(word);
            line_em += space + word_em;
        } else if word_em <= max {
            lines.push(std::mem::take(&mut line));
            line.push_str(word);
            line_em = word_em;
        } else {
            // Too long for any line: start it on a line of its own and cut it
            // wherever a line fills up.
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            line_em = 0.0;
            for c in word.chars() {
                let c_em = char_em(c);
                if line_em + c_em > max && !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                    line_em = 0.0;
                }
                line.push(c);
                line_em += c_em;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Fills lines to `max` em with the words separated by single spaces,
/// breaking wherever a line is full: the last resort for captions of long
/// words, which word wrapping would spread over too many lines.
fn pack(words: &[&str], max: f32) -> Vec<String> {
    let joined = words.join(" ");
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_em = 0.0;
    for c in joined.chars() {
        let c_em = char_em(c);
        if line_em + c_em > max && !line.is_empty() {
            lines.push(std::mem::take(&mut line).trim_end().to_string());
            line_em = 0.0;
        }
        if c == ' ' && line.is_empty() {
            continue;
        }
        line.push(c);
        line_em += c_em;
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The finished image: `template_svg` (a whole `<svg viewBox="0 0 600 600">`
/// element, embedded from its first `<svg` so an XML declaration or comment
/// before it cannot break the document) with the captions on top.
pub fn meme_svg(template_svg: &str, top_text: &str, bottom_text: &str) -> String {
    let mut out = String::with_capacity(template_svg.len() + 1024);
    out.push_str("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 600 600\" width=\"600\" height=\"600\">\n<title>");
    push_escaped(&mut out, &caption_title(top_text, bottom_text));
    out.push_str("</title>\n<rect width=\"600\" height=\"600\" fill=\"#fff\"/>\n");
    if let Some(start) = template_svg.find("<svg") {
        out.push_str(template_svg[start..].trim_end());
        out.push('\n');
    }
    push_caption(&mut out, &layout_caption(top_text), Band::Top);
    push_caption(&mut out, &layout_caption(bottom_text), Band::Bottom);
    out.push_str("</svg>\n");
    out
}

fn caption_title(top: &str, bottom: &str) -> String {
    match (top.trim(), bottom.trim()) {
        (t, "") => t.to_string(),
        ("", b) => b.to_string(),
        (t, b) => format!("{t} / {b}"),
    }
}

#[derive(Clone, Copy)]
enum Band {
    Top,
    Bottom,
}

fn push_caption(out: &mut String, caption: &Caption, band: Band) {
    if caption.lines.is_empty() {
        return;
    }
    let size = caption.font_size as f32;
    let line_height = size * LINE_HEIGHT;
    let block = caption.lines.len() as f32 * line_height;
    // The top caption hangs from the top edge, the bottom one stands on the
    // bottom edge, as classic memes have them.
    let block_top = match band {
        Band::Top => EDGE,
        Band::Bottom => SIZE - EDGE - block,
    };
    let first_baseline = block_top + (line_height - size) / 2.0 + size * ASCENT;
    let stroke = (size / 9.0).round().max(3.0);
    out.push_str(&format!(
        "<text x=\"300\" y=\"{first_baseline:.1}\" font-family=\"{FONT_FAMILY}\" font-size=\"{}\" font-weight=\"700\" font-stretch=\"condensed\" text-anchor=\"middle\" fill=\"#fff\" stroke=\"#000\" stroke-width=\"{stroke}\" stroke-linejoin=\"round\" paint-order=\"stroke\">",
        caption.font_size
    ));
    for (i, line) in caption.lines.iter().enumerate() {
        let dy = if i == 0 { 0.0 } else { line_height };
        out.push_str(&format!("<tspan x=\"300\" dy=\"{dy:.1}\">"));
        out.push_str(&escape(line));
        out.push_str("</tspan>");
    }
    out.push_str("</text>\n");
}

/// A stand-in image for a meme that does not exist.
pub fn not_found_svg() -> String {
    let mut out = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 600 600\" width=\"600\" height=\"600\">\n<title>Meme not found</title>\n<rect width=\"600\" height=\"600\" fill=\"#e8e4da\"/>\n",
    );
    push_caption(&mut out, &layout_caption("404"), Band::Top);
    push_caption(&mut out, &layout_caption("Meme not found"), Band::Bottom);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "<?xml version=\"1.0\"?>\n<!-- a drawing -->\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 600 600\"><circle cx=\"300\" cy=\"300\" r=\"100\"/></svg>\n";

    /// Parses `svg` and returns the text of each caption's lines.
    fn captions(svg: &str) -> Vec<Vec<String>> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        root.children()
            .filter(|n| n.has_tag_name("text"))
            .map(|t| {
                t.children()
                    .filter(|n| n.has_tag_name("tspan"))
                    .map(|s| s.text().unwrap_or("").to_string())
                    .collect()
            })
            .collect()
    }

    fn check_lines_fit(caption: &Caption) {
        assert!(caption.lines.len() <= MAX_LINES, "{caption:?}");
        assert!((MIN_FONT..=MAX_FONT).contains(&caption.font_size));
        for line in &caption.lines {
            assert!(
                width_em(line) * caption.font_size as f32 <= LINE_WIDTH,
                "{caption:?}"
            );
        }
    }

    #[test]
    fn short_captions_stay_big() {
        let c = layout_caption("peer review");
        assert_eq!(c.font_size, MAX_FONT);
        assert_eq!(c.lines, ["PEER REVIEW"]);
        // Two lines still fit the band at full size; wrapping comes before shrinking.
        let c = layout_caption("one does not simply");
        assert_eq!(c.font_size, MAX_FONT);
        assert_eq!(c.lines, ["ONE DOES NOT", "SIMPLY"]);
    }

    #[test]
    fn long_captions_wrap_and_shrink() {
        let c = layout_caption(
            "when reviewer two asks for three more experiments and a complete rewrite of the introduction",
        );
        check_lines_fit(&c);
        assert!(c.font_size < MAX_FONT);
        assert_eq!(c.lines.join(" "), "WHEN REVIEWER TWO ASKS FOR THREE MORE EXPERIMENTS AND A COMPLETE REWRITE OF THE INTRODUCTION");
    }

    #[test]
    fn eighty_characters_always_fit_without_cutting() {
        let text = "abcdefghi ".repeat(8);
        let c = layout_caption(text.trim());
        check_lines_fit(&c);
        assert!(!c.lines.concat().contains('…'));
        let word = "x".repeat(80);
        let c = layout_caption(&word);
        check_lines_fit(&c);
        assert_eq!(c.lines.concat(), "X".repeat(80));
        // Four words too long to share a line are packed rather than cut.
        let words = ["abcdefghijklmnopq"; 4].join(" ");
        let c = layout_caption(&words);
        check_lines_fit(&c);
        assert_eq!(c.font_size, MIN_FONT);
        let letters = |s: &str| s.replace(' ', "");
        assert_eq!(letters(&c.lines.concat()), letters(&words.to_uppercase()));
    }

    #[test]
    fn over_long_words_are_broken_and_cut() {
        let word = "a".repeat(200);
        let c = layout_caption(&word);
        check_lines_fit(&c);
        assert_eq!(c.font_size, MIN_FONT);
        assert_eq!(c.lines.len(), MAX_LINES);
        assert!(c.lines[2].ends_with('…'));
    }

    #[test]
    fn blank_captions_have_no_lines() {
        assert!(layout_caption("").lines.is_empty());
        assert!(layout_caption(" \t\n ").lines.is_empty());
    }

    #[test]
    fn output_is_well_formed_whatever_the_caption() {
        let nasty = [
            "<script>alert('x')</script>",
            "Tom & Jerry \"quoted\" 'single'",
            "]]> <!-- --> <![CDATA[ x ]]>",
            "emoji 🎓📚🧪 and ÇÀ ça",
            &"w".repeat(200),
            "control\u{0}chars\u{1b}here\u{FFFF}",
            "&amp; &lt;",
        ];
        for top in nasty {
            for bottom in nasty {
                let svg = meme_svg(TEMPLATE, top, bottom);
                let caps = captions(&svg);
                assert_eq!(caps.len(), 2, "{svg}");
                assert!(caps
                    .iter()
                    .all(|lines| !lines.is_empty() && lines.len() <= 3));
            }
        }
    }

    #[test]
    fn captions_read_back_as_typed_in_upper_case() {
        let svg = meme_svg(TEMPLATE, "<script> & \"x\"", "p < 0.05 🎉");
        assert!(svg.contains("&lt;SCRIPT&gt; &amp; &quot;X&quot;"));
        assert!(!svg.contains("<script>"));
        let caps = captions(&svg);
        assert_eq!(caps, [vec!["<SCRIPT> & \"X\""], vec!["P < 0.05 🎉"]]);
    }

    #[test]
    fn embeds_the_template_from_its_svg_element() {
        let svg = meme_svg(TEMPLATE, "top", "bottom");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 600 600\" width=\"600\" height=\"600\">"));
        assert!(!svg.contains("<?xml"));
        assert!(svg
            .contains("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 600 600\"><circle"));
        assert!(svg.contains("paint-order=\"stroke\""));
        assert!(svg.contains("<tspan x=\"300\" dy=\"0.0\">TOP</tspan>"));
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("circle"))
                .count(),
            1
        );
    }

    #[test]
    fn captions_stay_in_their_bands() {
        for text in ["x", "two words", &"word ".repeat(30)] {
            let svg = meme_svg(TEMPLATE, text, text);
            let doc = roxmltree::Document::parse(&svg).unwrap();
            let texts: Vec<_> = doc
                .descendants()
                .filter(|n| n.has_tag_name("text"))
                .collect();
            for (text, (lo, hi)) in texts.iter().zip([(0.0, BAND), (SIZE - BAND, SIZE)]) {
                let size: f32 = text.attribute("font-size").unwrap().parse().unwrap();
                let mut baseline: f32 = text.attribute("y").unwrap().parse().unwrap();
                for tspan in text.children().filter(|n| n.has_tag_name("tspan")) {
                    baseline += tspan.attribute("dy").unwrap().parse::<f32>().unwrap();
                    // Capitals span about [baseline - 0.75 em, baseline].
                    assert!(baseline - 0.75 * size >= lo && baseline <= hi, "{svg}");
                }
            }
        }
    }

    #[test]
    fn template_without_svg_still_gives_an_image() {
        let svg = meme_svg("not a drawing", "a", "b");
        assert_eq!(captions(&svg).len(), 2);
        assert!(!svg.contains("not a drawing"));
    }

    #[test]
    fn not_found_image_is_well_formed() {
        assert_eq!(captions(&not_found_svg()).len(), 2);
    }
}
